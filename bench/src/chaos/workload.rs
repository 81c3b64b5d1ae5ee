//! The seeded workload: sessions of several customers, appends from concurrent workers (a few
//! hot sessions take most of them, so appends race for the same index), and beside them
//! context loads, PATCHes, exports, session deletes and one customer purge.
//!
//! Every random choice comes from a `fastrand::Rng` seeded from the run's seed, one per task,
//! so a seed always plans the same requests (their interleaving is the machine's).
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tidewater_local::gateway;
use uuid::Uuid;

use crate::client::{Api, Call, Reply};

pub struct Settings {
    pub seed: u64,
    pub sessions: usize,
    pub customers: usize,
    pub appends: usize,
    pub workers: usize,
    /// The workload stops here even when appends are left.
    pub deadline: Duration,
    pub jwt_secret: String,
    /// How far behind the proxy's stale reads may be (`FAULT_STALE_MS`): an eventually
    /// consistent load may not find a session younger than that, so the clients start once
    /// every session is older.
    pub stale_lag: Duration,
    /// Set while `make chaos REGIONS=2` disrupts replication and regions: workers whose queue
    /// is empty wait for the appends given up meanwhile to come back rather than finish.
    pub disrupting: Arc<AtomicBool>,
    /// Counts the appends acknowledged so far, for whoever disrupts to follow.
    pub acked: Arc<AtomicUsize>,
}

/// Turns each purged session gets before the purge.
const PURGED_SESSIONS: usize = 3;
const PURGED_TURNS: usize = 15;
/// Sessions that take most appends: each weighs this many ordinary ones.
const HOT_SESSIONS: usize = 3;
const HOT_WEIGHT: usize = 10;
/// Share of appends after which the deletes and the purge start.
const PURGE_AT: f64 = 0.5;
const DELETE_AT: f64 = 0.6;
/// Share of acknowledged appends the client sends again, as if it had missed the answer.
const PROBE_RATE: f64 = 0.03;
/// How long a request that must happen (a create, a DELETE, the purge) is retried: past a
/// region's outage and a failover's fence.
const PERSIST: Duration = Duration::from_secs(180);

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: Uuid,
    pub owner: String,
    pub hot: bool,
    /// A DELETE was sent (or is about to be): appends may stop at any point.
    pub deleted: bool,
}

/// An append the API acknowledged with a 2xx.
#[derive(Debug, Clone)]
pub struct Acked {
    pub session: Uuid,
    pub response_id: String,
    pub turn_index: u64,
}

#[derive(Debug, Clone)]
pub struct DegradedLoad {
    pub session: Uuid,
    pub started_ms: u64,
    pub finished_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Purge {
    pub customer: String,
    pub sessions: Vec<Uuid>,
    pub receipt: Option<Value>,
}

/// What the workload did and saw, for the checks.
#[derive(Debug, Default)]
pub struct Outcome {
    pub sessions: Vec<SessionRecord>,
    pub acked: Vec<Acked>,
    pub planned_appends: usize,
    pub skipped_appends: usize,
    pub finished: bool,
    pub probes: usize,
    /// Appends the client gave up on (every attempt 503), sent again later with the same
    /// `response_id`, once: an outage's 503 acknowledges nothing.
    pub requeued: usize,
    /// Loads and export pages answered from a replica marked `Tidewater-Stale`.
    pub stale_reads: usize,
    /// Answers that break the contract outright (a retry told another index, a load whose
    /// turns do not follow each other, an unexpected status, ...).
    pub violations: Vec<String>,
    pub loads: usize,
    pub degraded: Vec<DegradedLoad>,
    pub exports: usize,
    pub patches: usize,
    pub purge: Option<Purge>,
    pub elapsed: Duration,
}

/// The customer the `n`th of a run's customers is; the `n`th session (of the first
/// [`HOT_SESSIONS`], hot) belongs to the `n`th customer, round the customers.
pub fn customer(seed: u64, n: usize) -> String {
    format!("chaos-{seed}-customer-{n}")
}

/// The customers of the hot sessions, which take most appends.
pub fn hot_customers(seed: u64, customers: usize) -> Vec<String> {
    (0..HOT_SESSIONS).map(|n| customer(seed, n % customers.max(1))).collect()
}

/// The content of the turn `response_id` names, so that a stored turn tells whose it is.
pub fn content_for(response_id: &str) -> String {
    format!("{response_id} | chaos turn: is volume {} in stock?", response_id.len())
}

pub fn response_id_of(content: &str) -> Option<&str> {
    content.split_once(" | ").map(|(id, _)| id)
}

struct Shared {
    api: Arc<Api>,
    settings: Settings,
    tokens: HashMap<String, String>,
    sessions: Mutex<Vec<SessionRecord>>,
    queue: Mutex<VecDeque<(usize, usize)>>,
    /// The appends already sent again after the client gave up on them.
    requeued: Mutex<std::collections::HashSet<(usize, usize)>>,
    taken: AtomicUsize,
    acked: Mutex<HashMap<String, Acked>>,
    etags: Mutex<HashMap<Uuid, String>>,
    outcome: Mutex<Outcome>,
    appends_done: AtomicBool,
    started: Instant,
}

pub async fn run(api: Arc<Api>, settings: Settings) -> Outcome {
    let mut rng = fastrand::Rng::with_seed(settings.seed);
    let owners: Vec<String> = (0..settings.customers).map(|c| customer(settings.seed, c)).collect();
    let purged_customer = format!("chaos-{}-purged", settings.seed);
    let mut tokens = HashMap::new();
    for customer in owners.iter().chain([&purged_customer]) {
        let token =
            gateway::issue_token(customer, &[], &settings.jwt_secret, Duration::from_secs(3600)).unwrap_or_default();
        tokens.insert(customer.clone(), token);
    }
    let sessions: Vec<SessionRecord> = (0..settings.sessions)
        .map(|i| SessionRecord {
            id: random_uuid(&mut rng),
            owner: owners[i % owners.len()].clone(),
            hot: i < HOT_SESSIONS,
            deleted: false,
        })
        .collect();
    let queue = plan_appends(&mut rng, settings.sessions, settings.appends);
    let purged_sessions: Vec<Uuid> = (0..PURGED_SESSIONS).map(|_| random_uuid(&mut rng)).collect();

    let shared = Arc::new(Shared {
        api,
        tokens,
        sessions: Mutex::new(sessions.clone()),
        queue: Mutex::new(queue),
        requeued: Mutex::default(),
        taken: AtomicUsize::new(0),
        acked: Mutex::default(),
        etags: Mutex::default(),
        outcome: Mutex::new(Outcome { planned_appends: settings.appends, ..Outcome::default() }),
        appends_done: AtomicBool::new(false),
        started: Instant::now(),
        settings,
    });

    for (i, session) in sessions.iter().enumerate() {
        let created = create_session(&shared, session.id, &session.owner, i, &mut rng).await;
        if !created {
            shared.violation(format!("session {} could not be created", session.id));
        }
    }
    tokio::time::sleep(shared.settings.stale_lag).await;

    let mut tasks = Vec::new();
    let seed = shared.settings.seed;
    for worker in 0..shared.settings.workers {
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move { append_worker(&shared, task_rng(seed, worker)).await }));
    }
    let side_tasks = vec![
        tokio::spawn(loader(Arc::clone(&shared), task_rng(seed, 1_000))),
        tokio::spawn(loader(Arc::clone(&shared), task_rng(seed, 1_001))),
        tokio::spawn(loader(Arc::clone(&shared), task_rng(seed, 1_002))),
        tokio::spawn(patcher(Arc::clone(&shared), task_rng(seed, 2_000))),
        tokio::spawn(exporter(Arc::clone(&shared), task_rng(seed, 3_000))),
        tokio::spawn(deleter(Arc::clone(&shared), task_rng(seed, 4_000))),
        tokio::spawn(purger(Arc::clone(&shared), purged_customer, purged_sessions, task_rng(seed, 5_000))),
    ];
    for task in tasks {
        let _ = task.await;
    }
    shared.appends_done.store(true, Ordering::SeqCst);
    for task in side_tasks {
        let _ = task.await;
    }

    let mut outcome = shared.outcome.lock().map(|mut o| std::mem::take(&mut *o)).unwrap_or_default();
    outcome.sessions = shared.sessions.lock().map(|s| s.clone()).unwrap_or_default();
    outcome.acked = shared.acked.lock().map(|a| a.values().cloned().collect()).unwrap_or_default();
    outcome.finished = outcome.finished && shared.queue.lock().is_ok_and(|q| q.is_empty());
    outcome.elapsed = shared.started.elapsed();
    outcome
}

/// The appends, in the order the workers take them: (session, its turn number).
fn plan_appends(rng: &mut fastrand::Rng, sessions: usize, appends: usize) -> VecDeque<(usize, usize)> {
    let weights: Vec<usize> = (0..sessions).map(|s| if s < HOT_SESSIONS { HOT_WEIGHT } else { 1 }).collect();
    let total: usize = weights.iter().sum();
    let mut next_turn = vec![0usize; sessions];
    (0..appends)
        .map(|_| {
            let mut pick = rng.usize(0..total);
            let session = weights
                .iter()
                .position(|&w| {
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .unwrap_or(0);
            next_turn[session] += 1;
            (session, next_turn[session])
        })
        .collect()
}

fn random_uuid(rng: &mut fastrand::Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.u128(..).to_le_bytes()).into_uuid()
}

fn task_rng(seed: u64, task: usize) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(task as u64))
}

impl Shared {
    fn violation(&self, text: String) {
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.violations.push(text);
        }
    }

    /// Puts an append the client gave up on back at the end of the queue, once.
    fn send_again_later(&self, index: usize, turn: usize) {
        let first = self.requeued.lock().is_ok_and(|mut requeued| requeued.insert((index, turn)));
        if first {
            self.queue.lock().map(|mut queue| queue.push_back((index, turn))).ok();
            self.outcome.lock().map(|mut outcome| outcome.requeued += 1).ok();
        }
    }

    fn stale_read(&self) {
        self.outcome.lock().map(|mut outcome| outcome.stale_reads += 1).ok();
    }

    fn token(&self, customer: &str) -> &str {
        self.tokens.get(customer).map(String::as_str).unwrap_or_default()
    }

    fn progress(&self) -> f64 {
        self.taken.load(Ordering::SeqCst) as f64 / self.settings.appends.max(1) as f64
    }

    fn past_deadline(&self) -> bool {
        self.started.elapsed() >= self.settings.deadline
    }

    /// A session not being deleted, at random; hot ones as likely as the others.
    fn live_session(&self, rng: &mut fastrand::Rng) -> Option<SessionRecord> {
        let sessions = self.sessions.lock().ok()?;
        let live: Vec<&SessionRecord> = sessions.iter().filter(|s| !s.deleted).collect();
        (!live.is_empty()).then(|| live[rng.usize(0..live.len())].clone())
    }

    fn is_deleted(&self, session: Uuid) -> bool {
        self.sessions.lock().map(|s| s.iter().any(|r| r.id == session && r.deleted)).unwrap_or(false)
    }

    /// Checks a turn the API returned against the appends acknowledged so far.
    fn check_turn(&self, where_: &str, session: Uuid, turn: &Value) {
        let (Some(index), Some(content)) = (turn["turn_index"].as_u64(), turn["content"].as_str()) else {
            return self.violation(format!("{where_} of {session}: a turn without index or content: {turn}"));
        };
        let Some(response_id) = response_id_of(content) else {
            return self
                .violation(format!("{where_} of {session}: turn {index} holds content the workload never sent"));
        };
        let known = self.acked.lock().ok().and_then(|acked| acked.get(response_id).cloned());
        if let Some(acked) = known {
            if acked.session != session || acked.turn_index != index {
                self.violation(format!(
                    "{where_} of {session}: {response_id} is turn {index}, but its append was told {} in {}",
                    acked.turn_index, acked.session
                ));
            }
        }
    }
}

async fn create_session(shared: &Shared, id: Uuid, owner: &str, n: usize, rng: &mut fastrand::Rng) -> bool {
    let call = Call::new("POST /sessions", Method::POST, "/sessions".to_owned(), shared.token(owner), Some(id))
        .with_body(json!({"session_id": id, "page_context": {"page": format!("/chaos/{n}")}}));
    matches!(shared.api.persisting(&call, rng, PERSIST).await, Some(Reply { status: 200 | 201, .. }))
}

fn append_call<'a>(token: &'a str, session: Uuid, response_id: &str, turn: usize) -> Call<'a> {
    let mut body = json!({
        "response_id": response_id,
        "role": if turn % 2 == 1 { "user" } else { "assistant" },
        "content": content_for(response_id),
    });
    if turn % 5 == 0 {
        body["intent"] = json!("stock_check");
    }
    Call::new("POST /sessions/{id}/turns", Method::POST, format!("/sessions/{session}/turns"), token, Some(session))
        .with_body(body)
}

async fn append_worker(shared: &Shared, mut rng: fastrand::Rng) {
    loop {
        if shared.past_deadline() {
            return;
        }
        let Some((index, turn)) = shared.queue.lock().ok().and_then(|mut q| q.pop_front()) else {
            if shared.settings.disrupting.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if let Ok(mut outcome) = shared.outcome.lock() {
                outcome.finished = true;
            }
            return;
        };
        shared.taken.fetch_add(1, Ordering::SeqCst);
        let Some(session) = shared.sessions.lock().ok().map(|s| s[index].clone()) else { return };
        if session.deleted {
            if let Ok(mut outcome) = shared.outcome.lock() {
                outcome.skipped_appends += 1;
            }
            continue;
        }
        let response_id = format!("s{index}-t{turn}");
        let call = append_call(shared.token(&session.owner), session.id, &response_id, turn);
        let Some(reply) = shared.api.retrying(&call, &mut rng).await else {
            shared.send_again_later(index, turn);
            continue;
        };
        match (reply.status, reply.body["turn_index"].as_u64()) {
            (200 | 201, Some(turn_index)) => {
                let acked = Acked { session: session.id, response_id: response_id.clone(), turn_index };
                if let Ok(mut all) = shared.acked.lock() {
                    all.insert(response_id.clone(), acked);
                }
                shared.settings.acked.fetch_add(1, Ordering::SeqCst);
                if rng.f64() < PROBE_RATE {
                    probe(shared, &call, turn_index, &mut rng).await;
                }
            }
            (404, _) if shared.is_deleted(session.id) => {}
            (status, _) => shared.violation(format!("append {response_id} answered {status}: {}", reply.body)),
        }
    }
}

/// Sends an acknowledged append again: it must answer 200, duplicate, with the same index.
async fn probe(shared: &Shared, call: &Call<'_>, turn_index: u64, rng: &mut fastrand::Rng) {
    if let Ok(mut outcome) = shared.outcome.lock() {
        outcome.probes += 1;
    }
    let Some(reply) = shared.api.retrying(call, rng).await else { return };
    let told = reply.body["turn_index"].as_u64();
    let ok = reply.status == 200 && reply.body["duplicate"] == json!(true) && told == Some(turn_index);
    if !ok && !(reply.status == 404 && call.session.is_some_and(|s| shared.is_deleted(s))) {
        shared.violation(format!(
            "a repeated append to {} answered {} {} where turn {turn_index} was told",
            call.path, reply.status, reply.body
        ));
    }
}

async fn loader(shared: Arc<Shared>, mut rng: fastrand::Rng) {
    while !shared.appends_done.load(Ordering::SeqCst) {
        let Some(session) = shared.live_session(&mut rng) else { return };
        let consistent = rng.f64() < 0.25;
        let call = Call::new(
            "GET /sessions/{id}/context",
            Method::GET,
            format!("/sessions/{}/context?max_turns=10&consistent={consistent}", session.id),
            shared.token(&session.owner),
            Some(session.id),
        );
        let Some(reply) = shared.api.retrying(&call, &mut rng).await else { continue };
        if let Ok(mut outcome) = shared.outcome.lock() {
            outcome.loads += 1;
        }
        match reply.status {
            200 if reply.body["degraded"] == json!(true) => {
                if let Ok(mut outcome) = shared.outcome.lock() {
                    outcome.degraded.push(DegradedLoad {
                        session: session.id,
                        started_ms: reply.started_ms,
                        finished_ms: reply.finished_ms,
                    });
                }
            }
            200 if reply.stale => {
                // A replica's copy may lack turns, or hold a turn without the ones before it:
                // only whose each turn is can be checked.
                shared.stale_read();
                for turn in reply.body["turns"].as_array().into_iter().flatten() {
                    shared.check_turn("stale load", session.id, turn);
                }
            }
            200 => {
                if let Some(etag) = reply.etag.clone() {
                    shared.etags.lock().map(|mut e| e.insert(session.id, etag)).ok();
                }
                check_loaded_context(&shared, session.id, &reply.body);
            }
            404 if shared.is_deleted(session.id) => {}
            status => shared.violation(format!("load of {} answered {status}: {}", session.id, reply.body)),
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(5..30))).await;
    }
}

/// A context accounts for every turn once: the summary covers `1..=S`, `omitted` (if any)
/// `S+1..=O`, and the turns follow, contiguous, up to the session's `turn_count`.
fn check_loaded_context(shared: &Shared, session: Uuid, body: &Value) {
    let turn_count = body["session"]["turn_count"].as_u64().unwrap_or(0);
    let summarized = body["summary"]["through_turn"].as_u64().unwrap_or(0);
    let omitted = (body["omitted"]["from_turn"].as_u64(), body["omitted"]["to_turn"].as_u64());
    let turns = body["turns"].as_array().cloned().unwrap_or_default();
    let indices: Vec<u64> = turns.iter().filter_map(|t| t["turn_index"].as_u64()).collect();
    let first_due = match omitted {
        (Some(from), Some(to)) if from == summarized + 1 && to >= from => to + 1,
        (None, None) => summarized + 1,
        _ => {
            return shared.violation(format!(
                "load of {session}: omitted {} after a summary through {summarized}",
                body["omitted"]
            ))
        }
    };
    let expected: Vec<u64> = (first_due..=turn_count).collect();
    if indices != expected {
        shared.violation(format!(
            "load of {session}: turns {} with summary through {summarized}, omitted {}, turn_count {turn_count}",
            span(&indices),
            body["omitted"]
        ));
    }
    for turn in &turns {
        shared.check_turn("load", session, turn);
    }
}

fn span(indices: &[u64]) -> String {
    match (indices.first(), indices.last()) {
        (Some(first), Some(last)) => format!("{first}..={last} ({} turns)", indices.len()),
        _ => "none".to_owned(),
    }
}

async fn patcher(shared: Arc<Shared>, mut rng: fastrand::Rng) {
    let mut step = 0u64;
    while !shared.appends_done.load(Ordering::SeqCst) {
        let Some(session) = shared.live_session(&mut rng) else { return };
        step += 1;
        let if_match =
            if rng.f64() < 0.25 { shared.etags.lock().ok().and_then(|e| e.get(&session.id).cloned()) } else { None };
        let conditional = if_match.is_some();
        let call = Call::new(
            "PATCH /sessions/{id}",
            Method::PATCH,
            format!("/sessions/{}", session.id),
            shared.token(&session.owner),
            Some(session.id),
        )
        .with_body(json!({"page_context": {"page": "/chaos/cart", "step": step}}))
        .with_if_match(if_match);
        if let Some(reply) = shared.api.retrying(&call, &mut rng).await {
            if let Ok(mut outcome) = shared.outcome.lock() {
                outcome.patches += 1;
            }
            match reply.status {
                200 => {}
                412 if conditional => {}
                404 if shared.is_deleted(session.id) => {}
                status => shared.violation(format!("PATCH of {} answered {status}: {}", session.id, reply.body)),
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(20..60))).await;
    }
}

async fn exporter(shared: Arc<Shared>, mut rng: fastrand::Rng) {
    while !shared.appends_done.load(Ordering::SeqCst) {
        let Some(session) = shared.live_session(&mut rng) else { return };
        export_session(&shared, &session, &mut rng).await;
        if let Ok(mut outcome) = shared.outcome.lock() {
            outcome.exports += 1;
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(20..60))).await;
    }
}

/// Reads every page of a session's export; the turns must follow each other from 1.
async fn export_session(shared: &Shared, session: &SessionRecord, rng: &mut fastrand::Rng) {
    let mut cursor = String::new();
    let mut expected = 1u64;
    loop {
        let call = Call::new(
            "GET /sessions/{id}/turns",
            Method::GET,
            format!("/sessions/{}/turns?limit=40&cursor={cursor}", session.id),
            shared.token(&session.owner),
            Some(session.id),
        );
        let Some(reply) = shared.api.retrying(&call, rng).await else { return };
        match reply.status {
            200 => {}
            404 if shared.is_deleted(session.id) => return,
            status => return shared.violation(format!("export of {} answered {status}: {}", session.id, reply.body)),
        }
        if reply.stale {
            shared.stale_read();
        }
        for turn in reply.body["turns"].as_array().into_iter().flatten() {
            if !reply.stale && turn["turn_index"].as_u64() != Some(expected) {
                return shared.violation(format!(
                    "export of {}: turn {} where {expected} was due",
                    session.id, turn["turn_index"]
                ));
            }
            shared.check_turn("export", session.id, turn);
            expected += 1;
        }
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return,
        }
    }
}

async fn deleter(shared: Arc<Shared>, mut rng: fastrand::Rng) {
    while shared.progress() < DELETE_AT {
        if shared.appends_done.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every twelfth session that is not hot, at least two.
    let victims: Vec<SessionRecord> = {
        let Ok(mut sessions) = shared.sessions.lock() else { return };
        let count = (sessions.len() / 12).max(2);
        let mut chosen = Vec::new();
        for record in sessions.iter_mut().filter(|s| !s.hot).rev().take(count) {
            record.deleted = true;
            chosen.push(record.clone());
        }
        chosen
    };
    for session in victims {
        let call = Call::new(
            "DELETE /sessions/{id}",
            Method::DELETE,
            format!("/sessions/{}", session.id),
            shared.token(&session.owner),
            Some(session.id),
        );
        match shared.api.persisting(&call, &mut rng, PERSIST).await {
            Some(Reply { status: 204, .. }) => {}
            Some(reply) => {
                shared.violation(format!("DELETE of {} answered {}: {}", session.id, reply.status, reply.body))
            }
            None => shared.violation(format!("DELETE of {} never succeeded", session.id)),
        }
    }
}

async fn purger(shared: Arc<Shared>, customer: String, sessions: Vec<Uuid>, mut rng: fastrand::Rng) {
    for (n, &id) in sessions.iter().enumerate() {
        if !create_session(&shared, id, &customer, 1_000 + n, &mut rng).await {
            shared.violation(format!("the purged customer's session {id} could not be created"));
        }
        for turn in 1..=PURGED_TURNS {
            let response_id = format!("p{n}-t{turn}");
            let call = append_call(shared.token(&customer), id, &response_id, turn);
            shared.api.retrying(&call, &mut rng).await;
        }
    }
    while shared.progress() < PURGE_AT && !shared.appends_done.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call =
        Call::new("DELETE /customers/me", Method::DELETE, "/customers/me".to_owned(), shared.token(&customer), None);
    let receipt = match shared.api.persisting(&call, &mut rng, PERSIST).await {
        Some(reply) if reply.status == 200 => Some(reply.body),
        Some(reply) => {
            shared.violation(format!("the purge answered {}: {}", reply.status, reply.body));
            None
        }
        None => {
            shared.violation("the purge never succeeded".to_owned());
            None
        }
    };
    if let Ok(mut outcome) = shared.outcome.lock() {
        outcome.purge = Some(Purge { customer, sessions, receipt });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_names_its_response_id() {
        assert_eq!(response_id_of(&content_for("s3-t14")), Some("s3-t14"));
    }

    #[test]
    fn a_seed_plans_the_same_appends_and_hot_sessions_take_most() {
        let plan = |seed| plan_appends(&mut fastrand::Rng::with_seed(seed), 20, 2_000);
        assert_eq!(plan(7), plan(7));
        let appends = plan(7);
        let hot = appends.iter().filter(|(session, _)| *session < HOT_SESSIONS).count();
        assert!(hot > appends.len() / 2, "{hot} of {}", appends.len());
        let turns_of_first: Vec<usize> = appends.iter().filter(|(s, _)| *s == 0).map(|(_, t)| *t).collect();
        assert_eq!(turns_of_first, (1..=turns_of_first.len()).collect::<Vec<_>>());
    }
}
