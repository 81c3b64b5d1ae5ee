//! The simulated world: the store and the handlers against DynamoDB Local through the fault
//! proxy, the stream's queues, the clock, and beside them a model of what must be true. Each
//! step acts on both, and then the README's guarantees are checked against the model.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use lambda_http::http::HeaderValue;
use serde_json::{json, Value};
use tidewater::clock::{self, Clock};
use tidewater::store::customer_hash;
use tidewater::{
    keys, Caller, Config, ContextLoader, CustomerPurger, DynamoStore, Error, ExtractiveSummarizer, MemoryDeleter,
    MemoryReader, NewSession, NewTurn, SessionCreator, SessionDeleter, SummarySource, TurnAppender,
};
use tidewater_local::fault::{FaultProxy, Plan};
use uuid::Uuid;

use super::steps::{IdChoice, Step, CUSTOMERS};
use crate::{api_request, body_json, default_redactor, fresh_store, test_config, TEST_RECEIPT_SALT};

type Item = HashMap<String, AttributeValue>;

/// How far behind an eventually consistent read may be, on the store's clock.
pub const STALE_BOUND: Duration = Duration::from_millis(1_500);
/// Steps that land this close to a session's expiry may see it either way.
const EXPIRY_SLACK_MS: i64 = 2_000;
/// The plan every step runs under: half of the eventually consistent reads are stale.
const BASE_PLAN: &str = "stale@GetItem|Query=0.5";

/// One broken guarantee.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The guarantee, as the README states it.
    pub check: &'static str,
    /// The defect of issue 18 this check finds, if it is one of those.
    pub defect: Option<u8>,
    pub detail: String,
}

fn violation(check: &'static str, defect: Option<u8>, detail: String) -> Violation {
    Violation { check, defect, detail }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// A DELETE answered 204.
    Deleted,
    /// A DELETE cut off that nobody repeated: META may be gone or not (the cut may come
    /// before its delete), other items may remain.
    Abandoned,
    /// TTL removed META; the sweep may not have run.
    Removed,
    /// A purge of its customer answered a receipt.
    Purged,
    /// A purge of its customer was cut off and not repeated: anything goes until it finishes.
    InPurge,
}

#[derive(Debug, Clone)]
struct TurnModel {
    response_id: String,
    role: &'static str,
    content: String,
}

#[derive(Debug, Clone)]
struct SessionModel {
    id: Uuid,
    customer: usize,
    turns: Vec<TurnModel>,
    state: State,
    expires_at_ms: i64,
    last_write_ms: i64,
    /// What each version of the session held, as consistent reads saw it: turn count and
    /// summary watermark.
    versions: HashMap<u64, (u64, u64)>,
    last_etag: Option<String>,
    /// Whether `needs_summary` was last seen set, so that the stream's trigger is its flip.
    armed: bool,
}

#[derive(Debug, Default)]
struct CustomerModel {
    /// fact id → when it was forgotten.
    forgotten: HashMap<String, String>,
    purge_open: bool,
    purged_sessions: HashSet<Uuid>,
    /// The receipt the customer's last purge answered.
    last_receipt: Option<Uuid>,
}

const USER_LINES: [&str; 8] = [
    "I prefer digital",
    "I prefer paperback",
    "I love Frieren",
    "I can't stand Frieren",
    "I already read Berserk",
    "Is volume 3 of Frieren in stock?",
    "I love Dungeon Meshi",
    "Do you ship to Lyon?",
];
const ASSISTANT_LINES: [&str; 3] = ["Yes, 4 copies.", "Noted.", "It ships in two days."];

pub struct World {
    direct: DynamoStore,
    system: DynamoStore,
    proxy: Arc<FaultProxy>,
    clock: Clock,
    config: Config,
    sessions: Vec<SessionModel>,
    customers: Vec<CustomerModel>,
    sweeps: Vec<Value>,
    windows: Vec<(Uuid, usize)>,
    counter: u64,
}

fn caller(customer: usize) -> Caller {
    Caller::new(CUSTOMERS[customer], Vec::<String>::new())
}

fn plan(extra: &str) -> Plan {
    let spec = if extra.is_empty() { BASE_PLAN.to_owned() } else { format!("{BASE_PLAN}, {extra}") };
    Plan::parse(&spec, Duration::ZERO).expect("a valid plan").with_stale_bound(STALE_BOUND)
}

impl World {
    /// A fresh table, a proxy in front of it seeded with `seed`, and an empty model.
    pub async fn new(seed: u64) -> World {
        // Short windows, so that summaries come often; sessions that live 20 days unless left
        // alone, so that a session can outlive a fact's tombstone; a cap of two facts (of the
        // four subjects the lines state), so that the cap trims restated facts.
        let config = Config {
            summary_threshold: 4,
            summary_keep_recent: 2,
            session_ttl: Duration::from_secs(20 * 86_400),
            memory_max_facts: 2,
            ..test_config()
        };
        let direct = fresh_store(config).await;
        let clock = Clock::manual();
        let direct_with_clock = DynamoStore::new(direct.client().clone(), direct.config().clone()).with_clock(clock.clone());
        let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with DynamoDB Local");
        let proxy = FaultProxy::with_clock(plan(""), &upstream, seed, clock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let address = listener.local_addr().expect("its address");
        tokio::spawn(Arc::clone(&proxy).serve(listener, std::future::pending()));
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(format!("http://{address}"))
            .retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
            .load()
            .await;
        let system = DynamoStore::new(aws_sdk_dynamodb::Client::new(&shared), direct.config().clone()).with_clock(clock.clone());
        World {
            config: direct.config().clone(),
            direct: direct_with_clock,
            system,
            proxy,
            clock,
            sessions: Vec::new(),
            customers: (0..CUSTOMERS.len()).map(|_| CustomerModel::default()).collect(),
            sweeps: Vec::new(),
            windows: Vec::new(),
            counter: 0,
        }
    }

    fn now_ms(&self) -> i64 {
        (self.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// The session a step picks, counting back from the newest; an id used again stands for
    /// its newest session.
    fn pick_session(&self, pick: u32) -> Option<usize> {
        let len = self.sessions.len();
        let index = (len > 0).then(|| len - 1 - (pick as usize % len))?;
        self.latest_with_id(self.sessions[index].id)
    }

    /// The model's newest session with this id.
    fn latest_with_id(&self, id: Uuid) -> Option<usize> {
        self.sessions.iter().rposition(|s| s.id == id)
    }

    fn expired(&self, s: &SessionModel) -> bool {
        self.now_ms() > s.expires_at_ms
    }

    /// Whether DynamoDB's TTL may have removed the session's META: its `ttl` lies
    /// `TTL_AFTER_EXPIRY_SECONDS` past the expiry.
    fn ttl_due(&self, s: &SessionModel) -> bool {
        self.now_ms() > s.expires_at_ms + tidewater::items::TTL_AFTER_EXPIRY_SECONDS * 1_000 + EXPIRY_SLACK_MS
    }

    fn near_expiry(&self, s: &SessionModel) -> bool {
        (self.now_ms() - s.expires_at_ms).abs() < EXPIRY_SLACK_MS
    }

    /// The model's view of a session, for a failure's report.
    fn describe(&self, index: usize) -> String {
        let s = &self.sessions[index];
        format!(
            "model: {} of {}, {:?}, {} turns, expires in {} ms, last write {} ms ago, {} sessions with its id",
            s.id,
            CUSTOMERS[s.customer],
            s.state,
            s.turns.len(),
            s.expires_at_ms - self.now_ms(),
            self.now_ms() - s.last_write_ms,
            self.sessions.iter().filter(|o| o.id == s.id).count()
        )
    }

    /// Whether reads of the session may still be stale.
    fn within_lag(&self, s: &SessionModel) -> bool {
        self.now_ms() - s.last_write_ms <= STALE_BOUND.as_millis() as i64 + 50
    }

    /// A session whose DELETE was cut off before its `~META` went took a write: it lives.
    fn alive(&mut self, index: usize) {
        if self.sessions[index].state == State::Abandoned {
            self.sessions[index].state = State::Live;
        }
    }

    /// Notes a write to the session that does not slide its expiry: its reads may lag now.
    fn wrote(&mut self, index: usize) {
        self.sessions[index].last_write_ms = self.now_ms();
    }

    fn touch(&mut self, index: usize) {
        let now = self.now_ms();
        let ttl = self.config.session_ttl.as_millis() as i64;
        let s = &mut self.sessions[index];
        s.last_write_ms = now;
        s.expires_at_ms = now + ttl;
    }

    /// Runs one step and checks what it touched. Returns every broken guarantee. Each kind of
    /// step is boxed: inline, their futures together overflow a test thread's stack.
    pub async fn step(&mut self, step: Step) -> Vec<Violation> {
        let mut found = Vec::new();
        let touched = match step {
            Step::Create { customer, id } => Box::pin(self.create(customer as usize, id, &mut found)).await,
            Step::Append { session, lost } => Box::pin(self.append(session, lost, &mut found)).await,
            Step::RetryAppend { session, turn } => Box::pin(self.retry_append(session, turn, &mut found)).await,
            Step::Load { session, consistent, if_none_match, memory } => {
                // A load writes nothing: the session it read needs no check of its own.
                Box::pin(self.load(session, consistent, if_none_match, memory, &mut found)).await;
                None
            }
            Step::Patch { session, if_match, lost } => Box::pin(self.patch(session, if_match, lost, &mut found)).await,
            Step::Delete { session, cut_after, retry } => Box::pin(self.delete(session, cut_after, retry, &mut found)).await,
            Step::Purge { customer, cut_after, retry } => {
                Box::pin(self.purge(customer as usize, cut_after, retry, &mut found)).await;
                None
            }
            Step::Advance { millis } => {
                self.clock.advance(Duration::from_millis(millis));
                None
            }
            Step::TtlRemove { session } => Box::pin(self.ttl_remove(session, &mut found)).await,
            Step::DeliverSweep { pick, cut } => Box::pin(self.deliver_sweep(pick, cut, &mut found)).await,
            Step::DropSweep { pick } => {
                if !self.sweeps.is_empty() {
                    let index = pick as usize % self.sweeps.len();
                    self.sweeps.remove(index);
                }
                None
            }
            Step::DeliverWindow { pick, twice } => Box::pin(self.deliver_window(pick, twice, &mut found)).await,
            Step::DropWindow { pick } => {
                if !self.windows.is_empty() {
                    let index = pick as usize % self.windows.len();
                    self.windows.remove(index);
                }
                None
            }
            Step::Redrive => {
                Box::pin(self.redrive(&mut found)).await;
                None
            }
            Step::SweepRacingCreate { pick } => Box::pin(self.sweep_racing_create(pick, &mut found)).await,
            Step::DeleteRacingCreate { session } => Box::pin(self.delete_racing_create(session, &mut found)).await,
            Step::WindowRacingAppend { pick, appends } => Box::pin(self.window_racing_append(pick, appends, &mut found)).await,
            Step::ForgetFact { customer, pick } => {
                Box::pin(self.forget_fact(customer as usize, pick, &mut found)).await;
                None
            }
            Step::TtlMemory => {
                Box::pin(self.ttl_memory()).await;
                None
            }
            Step::Settle => {
                Box::pin(self.settle(&mut found)).await;
                None
            }
        };
        if let Some(index) = touched {
            Box::pin(self.check_session(index, &mut found)).await;
        }
        found
    }

    async fn create(&mut self, customer: usize, id: IdChoice, found: &mut Vec<Violation>) -> Option<usize> {
        let session_id = match id {
            IdChoice::Server => None,
            IdChoice::Fresh(bits) => Some(uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid()),
            IdChoice::Reuse(pick) => self.pick_session(pick).map(|i| self.sessions[i].id),
        };
        let earlier = session_id.and_then(|id| self.latest_with_id(id));
        let answer = self.system.create_session(&caller(customer), NewSession { session_id, ..NewSession::default() }).await;
        let purge_open = self.customers[customer].purge_open;
        match (answer, earlier) {
            (Ok(created), earlier) if created.created => {
                if let Some(e) = earlier.map(|e| &self.sessions[e]) {
                    if e.state == State::Live && !self.expired(e) && !self.near_expiry(e) {
                        found.push(violation(
                            "an id already in use is never created again",
                            Some(3),
                            format!("{} of {} was created anew for {}", e.id, CUSTOMERS[e.customer], CUSTOMERS[customer]),
                        ));
                    }
                }
                if purge_open {
                    found.push(violation("no session is created while a purge runs", None, format!("{}", created.session_id)));
                }
                Some(self.created(created.session_id, customer))
            }
            (Ok(created), Some(e)) => {
                let s = &self.sessions[e];
                let same = s.customer == customer && s.state == State::Live && !self.expired(s);
                if !same && !self.near_expiry(s) {
                    found.push(violation(
                        "a create answers 200 only to the owner's retry",
                        None,
                        format!("{} answered 200 to {} (state {:?}, owner {})", created.session_id, CUSTOMERS[customer], s.state, CUSTOMERS[s.customer]),
                    ));
                }
                Some(e)
            }
            (Ok(created), None) => {
                found.push(violation("a new id is created", None, format!("{} answered 200", created.session_id)));
                None
            }
            (Err(Error::Conflict(_) | Error::SessionIdUnavailable), earlier) => {
                let in_use = earlier.is_some_and(|e| {
                    let s = &self.sessions[e];
                    s.customer != customer || s.state != State::Live || self.expired(s) || self.near_expiry(s)
                });
                if !in_use && !purge_open {
                    found.push(violation("a create answers 409 only for an id in use", Some(7), format!("{session_id:?} for {}", CUSTOMERS[customer])));
                }
                None
            }
            (Err(e), _) => {
                found.push(violation("a create without faults succeeds", None, format!("{e:?}")));
                None
            }
        }
    }

    fn next_turn(&mut self, index: usize) -> NewTurn {
        self.counter += 1;
        let n = self.counter as usize;
        let next_index = self.sessions[index].turns.len() + 1;
        let (role, content) = if next_index % 2 == 1 {
            ("user", USER_LINES[n % USER_LINES.len()])
        } else {
            ("assistant", ASSISTANT_LINES[n % ASSISTANT_LINES.len()])
        };
        NewTurn { response_id: format!("r{n}"), role: role.into(), content: content.into(), intent: None, token_count: None, item: None }
    }

    /// Whether the model expects the session to take writes now (`None`: either way).
    fn writable(&self, s: &SessionModel) -> Option<bool> {
        if matches!(s.state, State::InPurge | State::Abandoned) || self.near_expiry(s) {
            return None;
        }
        Some(s.state == State::Live && !self.expired(s))
    }

    async fn append(&mut self, pick: u32, lost: bool, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let turn = self.next_turn(index);
        let draft = turn.clone().validate(&self.config).expect("a valid turn");
        let s = &self.sessions[index];
        let (id, customer, expected_index) = (s.id, s.customer, s.turns.len() as u64 + 1);
        let writable = self.writable(s);
        if lost {
            self.proxy.set_plan(plan("lost_answer@TransactWriteItems=1"));
            let first = self.system.append_turn(&caller(customer), id, draft.clone()).await;
            self.proxy.set_plan(plan(""));
            if first.is_ok() {
                found.push(violation("a lost answer is never an acknowledgement", None, format!("{first:?}")));
            }
        }
        let answer = self.system.append_turn(&caller(customer), id, draft).await;
        match (answer, writable) {
            (Ok(appended), Some(true) | None) => {
                if appended.turn_index != expected_index || (appended.duplicate && !lost) {
                    found.push(violation(
                        "an acknowledged turn is there exactly once, in order",
                        None,
                        format!("append to {id} answered {appended:?}, the model expected index {expected_index}"),
                    ));
                }
                let role = if turn.role == "user" { "user" } else { "assistant" };
                self.sessions[index].turns.push(TurnModel { response_id: turn.response_id, role, content: turn.content });
                self.touch(index);
                self.alive(index);
                // An append can turn the flag on, never off: once seen on, nothing to watch.
                if !self.sessions[index].armed {
                    self.watch_flag(index).await;
                }
            }
            (Err(Error::NotFound), Some(false) | None) => {}
            (answer, writable) => found.push(violation(
                "an append answers 201 to a live session and 404 to a gone one",
                None,
                format!("append to {id} (writable {writable:?}) answered {answer:?}; {}", self.describe(index)),
            )),
        }
        Some(index)
    }

    /// Reads the session's summary flag, and queues the stream's record when it flips on.
    /// Returns whether a window is due and the flag is off (once a summary has landed, a
    /// defect: nothing but a re-arm 20 appends later would summarise it).
    async fn watch_flag(&mut self, index: usize) -> bool {
        let id = self.sessions[index].id;
        let Ok(Some(state)) = self.direct.summary_state(id).await else { return false };
        if state.needs_summary && !self.sessions[index].armed && !self.windows.iter().any(|(w, _)| *w == id) {
            self.windows.push((id, self.sessions[index].customer));
        }
        self.sessions[index].armed = state.needs_summary;
        let (threshold, keep) = (self.config.summary_threshold, self.config.summary_keep_recent);
        let due = tidewater::summarizer::next_window_end(state.summarized_through, state.turn_count, threshold, keep);
        due.is_some() && !state.needs_summary && !state.expired
    }

    /// A new session the model learns of after a create answered 201.
    fn created(&mut self, id: Uuid, customer: usize) -> usize {
        let now = self.now_ms();
        self.sessions.push(SessionModel {
            id,
            customer,
            turns: Vec::new(),
            state: State::Live,
            expires_at_ms: now + self.config.session_ttl.as_millis() as i64,
            last_write_ms: now,
            versions: HashMap::new(),
            last_etag: None,
            armed: false,
        });
        self.sessions.len() - 1
    }

    /// One item, read consistently and directly.
    async fn read_item(&self, pk: String, sk: String) -> Option<Item> {
        self.direct
            .client()
            .get_item()
            .table_name(&self.config.table_name)
            .key(keys::PK, AttributeValue::S(pk))
            .key(keys::SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .ok()
            .and_then(|answer| answer.item)
    }

    /// Whether the session's `~META` and its registry entry are there, read consistently.
    async fn meta_and_entry(&self, id: Uuid, customer: usize) -> (bool, bool) {
        let hash = customer_hash(TEST_RECEIPT_SALT, CUSTOMERS[customer]);
        let meta = self.read_item(keys::session_pk(&id), keys::META.to_owned()).await.is_some();
        let entry = self.read_item(keys::privacy_pk(&hash), keys::registry_sk(&id)).await.is_some();
        (meta, entry)
    }

    async fn sweep_racing_create(&mut self, pick: u32, found: &mut Vec<Violation>) -> Option<usize> {
        if self.sweeps.is_empty() {
            return None;
        }
        let position = pick as usize % self.sweeps.len();
        let record = self.sweeps.remove(position);
        let id: Uuid = record.pointer("/dynamodb/OldImage/session_id/S").and_then(Value::as_str)?.parse().ok()?;
        let customer = self.sessions[self.latest_with_id(id)?].customer;
        let event: Event = serde_json::from_value(json!({"Records": [record.clone()]})).expect("a stream event");
        let request = NewSession { session_id: Some(id), ..NewSession::default() };
        let owner = caller(customer);
        let (swept, created) =
            tokio::join!(sweep_expired::handle(&self.system, event), self.system.create_session(&owner, request));
        if !swept.batch_item_failures.is_empty() {
            self.sweeps.push(record);
        }
        let created = created.ok().filter(|c| c.created)?;
        let index = self.created(id, customer);
        let (meta, entry) = self.meta_and_entry(id, customer).await;
        if !meta || !entry {
            found.push(violation(
                "a sweep never touches a session created again with its id",
                Some(3),
                format!("{}: created 201 while the old one was swept; META there: {meta}, registry entry there: {entry}", created.session_id),
            ));
        }
        Some(index)
    }

    async fn delete_racing_create(&mut self, pick: u32, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let s = &self.sessions[index];
        if !matches!(s.state, State::Deleted | State::Removed | State::Abandoned) {
            return None;
        }
        let (id, customer) = (s.id, s.customer);
        let request = NewSession { session_id: Some(id), ..NewSession::default() };
        let owner = caller(customer);
        let (deleted, created) =
            tokio::join!(self.system.delete_session(&owner, id), self.system.create_session(&owner, request));
        let (meta, entry) = self.meta_and_entry(id, customer).await;
        let left = self.partition(id).await;
        let whole = (meta && entry) || (!meta && !entry && left.is_empty());
        if deleted.is_ok() && !whole {
            found.push(violation(
                "a DELETE racing a create of the same id leaves the session whole or gone",
                Some(3),
                format!("{id}: create {:?}; META there: {meta}, registry entry there: {entry}, {} items", created.as_ref().map(|c| c.created), left.len()),
            ));
        }
        match created {
            Ok(c) if c.created && meta => {
                let index = self.created(id, customer);
                Some(index)
            }
            Ok(c) if c.created => {
                // The DELETE came second: the new session is gone.
                let index = self.created(id, customer);
                self.sessions[index].state = State::Deleted;
                Some(index)
            }
            _ => Some(index),
        }
    }

    /// A queued window is summarised while `appends` turns are appended one after another to
    /// its session.
    async fn window_racing_append(&mut self, pick: u32, appends: u8, found: &mut Vec<Violation>) -> Option<usize> {
        if self.windows.is_empty() {
            return None;
        }
        let position = pick as usize % self.windows.len();
        let (id, customer) = self.windows[position];
        let index = self.latest_with_id(id)?;
        let turns: Vec<NewTurn> = (0..appends.max(1)).map(|_| self.next_turn(index)).collect();
        let drafts: Vec<_> = turns.iter().map(|turn| turn.clone().validate(&self.config).expect("a valid turn")).collect();
        let writable = self.writable(&self.sessions[index]);
        let event: Event = serde_json::from_value(json!({"Records": [crate::meta_record(id, "100", (0, false), (0, true))]})).expect("a stream event");
        let (owner, summarizer) = (caller(customer), ExtractiveSummarizer::default());
        let system = &self.system;
        let appending = async {
            let mut answers = Vec::new();
            for draft in drafts {
                answers.push(system.append_turn(&owner, id, draft).await);
            }
            answers
        };
        let (summarized, answers) = tokio::join!(summarize::handle(system, &summarizer, &self.config, event), appending);
        if summarized.batch_item_failures.is_empty() {
            self.windows.remove(position);
        }
        for (turn, appended) in turns.into_iter().zip(answers) {
            let expected_index = self.sessions[index].turns.len() as u64 + 1;
            match (appended, writable) {
                (Ok(appended), Some(true) | None) if appended.turn_index == expected_index && !appended.duplicate => {
                    let role = if turn.role == "user" { "user" } else { "assistant" };
                    self.sessions[index].turns.push(TurnModel { response_id: turn.response_id, role, content: turn.content });
                    self.touch(index);
                }
                (Err(Error::NotFound), Some(false) | None) => {}
                (answer, writable) => found.push(violation(
                    "an append answers 201 to a live session and 404 to a gone one",
                    None,
                    format!("append to {id} racing its window (writable {writable:?}) answered {answer:?}; {}", self.describe(index)),
                )),
            }
        }
        self.wrote(index);
        self.watch_due_flag(index, found).await;
        self.check_facts(customer, found).await;
        Some(index)
    }

    /// [`World::watch_flag`] after a summary may have landed: a due window must be flagged.
    async fn watch_due_flag(&mut self, index: usize, found: &mut Vec<Violation>) {
        if self.watch_flag(index).await {
            found.push(violation(
                "a summary that lands when the next window is due leaves it flagged",
                Some(8),
                format!("{}: a window is due and needs_summary is off", self.sessions[index].id),
            ));
        }
    }

    async fn retry_append(&mut self, pick: u32, turn: u32, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let s = &self.sessions[index];
        if s.turns.is_empty() {
            return None;
        }
        let position = turn as usize % s.turns.len();
        let t = &s.turns[position];
        let retry = NewTurn { response_id: t.response_id.clone(), role: t.role.into(), content: t.content.clone(), intent: None, token_count: None, item: None };
        let draft = retry.validate(&self.config).expect("a valid turn");
        let writable = self.writable(s);
        let answer = self.system.append_turn(&caller(s.customer), s.id, draft).await;
        match (answer, writable) {
            (Ok(appended), _) if appended.duplicate && appended.turn_index == position as u64 + 1 => {}
            (Err(Error::NotFound), Some(false) | None) => {}
            (answer, _) => found.push(violation(
                "a retry of an acknowledged append is always duplicate:true, with the original index",
                None,
                format!("retry of turn {} of {} answered {answer:?}", position + 1, s.id),
            )),
        }
        Some(index)
    }

    fn context_request(id: Uuid, customer: usize, consistent: bool, if_none_match: Option<&str>, memory: Option<u8>) -> lambda_http::Request {
        let path = format!("/sessions/{id}/context");
        let consistent = if consistent { "true" } else { "false" };
        let max_tokens = memory.map(|max| max.to_string());
        let mut query = vec![("max_turns", "100"), ("consistent", consistent)];
        if let Some(max) = &max_tokens {
            query.extend([("include", "memory"), ("max_tokens", max.as_str())]);
        }
        let mut request = api_request(Some(&caller(customer)), "GET", "/sessions/{id}/context", &path, &query, None);
        if let Some(etag) = if_none_match.and_then(|e| HeaderValue::from_str(e).ok()) {
            request.headers_mut().insert("if-none-match", etag);
        }
        request
    }

    async fn load(&mut self, pick: u32, consistent: bool, if_none_match: bool, memory: Option<u8>, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let s = &self.sessions[index];
        let (id, customer) = (s.id, s.customer);
        let sent = if if_none_match { s.last_etag.clone() } else { None };
        // Whether the read may be stale is decided when it starts: the lag only runs out later.
        let stale = !consistent && self.within_lag(s);
        let response = load_context::handle(&self.system, Self::context_request(id, customer, consistent, sent.as_deref(), memory)).await;
        let status = response.status().as_u16();
        let s = &self.sessions[index];
        let readable = s.state == State::Live && !self.expired(s);
        let either = matches!(s.state, State::InPurge | State::Abandoned) || self.near_expiry(s) || stale;
        match status {
            304 => {
                let Some(etag) = sent else {
                    found.push(violation("a 304 only where the body would be the same", None, "a 304 without If-None-Match".into()));
                    return Some(index);
                };
                let now = self.direct.context_version(&caller(customer), id, true).await.ok();
                if !either && now.map(|v| format!("\"{v}\"")) != Some(etag.clone()) {
                    found.push(violation(
                        "a 304 only where the body would be the same",
                        None,
                        format!("{id}: 304 for {etag} past the lag, where the version is {now:?}"),
                    ));
                }
            }
            200 => {
                let body = body_json(&response);
                if body["degraded"] == json!(true) {
                    found.push(violation("no degraded load without a read fault", None, format!("{id}")));
                    return Some(index);
                }
                if !readable && !either {
                    found.push(violation("a gone session is never loaded", None, format!("{id} ({:?}) loaded: {}", s.state, digest(&body))));
                }
                if let Some(max) = memory {
                    let quarter = |text: &Value| (text.as_str().unwrap_or_default().len() as u64).div_ceil(4);
                    let turns: u64 = body["turns"].as_array().into_iter().flatten().map(|t| quarter(&t["content"])).sum();
                    let facts: u64 = body["customer_memory"].as_array().into_iter().flatten().map(|f| quarter(&f["text"])).sum();
                    if turns + facts > u64::from(max) {
                        found.push(violation(
                            "include=memory never exceeds max_tokens",
                            Some(11),
                            format!("{id}: turns {turns} and facts {facts} tokens under max_tokens {max}"),
                        ));
                    }
                }
                if readable {
                    let turns = s.turns.clone();
                    for problem in context_problems(&body, &turns, !stale) {
                        found.push(violation("a context covers 1..=T exactly once, with the acknowledged turns", None, format!("{id}: {problem}")));
                    }
                }
                let etag = response.headers().get("etag").and_then(|e| e.to_str().ok()).map(str::to_owned);
                let version = etag.as_deref().and_then(|e| e.trim_matches('"').parse::<u64>().ok());
                let held = (body["session"]["turn_count"].as_u64().unwrap_or(0), body["summary"]["through_turn"].as_u64().unwrap_or(0));
                if let Some(complete) = version.and_then(|v| s.versions.get(&v)) {
                    if *complete != held {
                        found.push(violation(
                            "a 304 only where the body would be the same: an ETag only on a body complete for its version",
                            Some(2),
                            format!("{id}: ETag {etag:?} on {}, where that version holds {} turns, summary through {}", digest(&body), complete.0, complete.1),
                        ));
                    }
                }
                if consistent {
                    if let Some(v) = version {
                        self.sessions[index].versions.insert(v, held);
                    }
                }
                if etag.is_some() {
                    self.sessions[index].last_etag = etag;
                }
            }
            404 if !readable || either => {}
            _ => found.push(violation("a load answers 200, 304 or 404", None, format!("{id}: {status} {}", String::from_utf8_lossy(response.body().as_ref())))),
        }
        Some(index)
    }

    async fn patch(&mut self, pick: u32, if_match: bool, lost: bool, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let s = &self.sessions[index];
        let (id, customer) = (s.id, s.customer);
        let writable = self.writable(s);
        let etag = if if_match {
            match self.direct.context_version(&caller(customer), id, true).await {
                Ok(version) => Some(format!("\"{version}\"")),
                Err(_) => Some("\"1\"".to_owned()),
            }
        } else {
            None
        };
        self.counter += 1;
        let body = json!({"page_context": {"page": "/sim", "step": self.counter}}).to_string();
        let request = || {
            let path = format!("/sessions/{id}");
            let mut request = api_request(Some(&caller(customer)), "PATCH", "/sessions/{id}", &path, &[], Some(&body));
            if let Some(etag) = etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
                request.headers_mut().insert("if-match", etag);
            }
            request
        };
        if lost {
            self.proxy.set_plan(plan("lost_answer@UpdateItem|PutItem|TransactWriteItems=1"));
            let first = update_session::handle(&self.system, &default_redactor(), request()).await;
            self.proxy.set_plan(plan(""));
            // A gone session may be answered 404 before any write: the PATCH reads the data key
            // that seals its page context, made only for a live session of the caller's.
            let gone_before_writing = first.status() == 404 && writable == Some(false);
            if first.status() != 503 && !gone_before_writing {
                found.push(violation("a lost answer is a 503", None, format!("PATCH of {id}: {}", first.status())));
            }
            if writable == Some(true) {
                // Applied, whatever the caller heard: the expiry slid.
                self.touch(index);
            }
        }
        let response = update_session::handle(&self.system, &default_redactor(), request()).await;
        match (response.status().as_u16(), writable) {
            (200, Some(true) | None) => {
                self.touch(index);
                self.alive(index);
            }
            (404, Some(false) | None) => {}
            (412, Some(true)) if lost => found.push(violation("a retried PATCH succeeds", Some(9), format!("{id}: 412 for its own change"))),
            (status, writable) => found.push(violation(
                "a PATCH with the current ETag answers 200 to a live session and 404 to a gone one",
                None,
                format!("{id} (writable {writable:?}): {status} {}; {}", String::from_utf8_lossy(response.body().as_ref()), self.describe(index)),
            )),
        }
        Some(index)
    }

    async fn delete(&mut self, pick: u32, cut_after: Option<u8>, retry: bool, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let s = &self.sessions[index];
        let (id, customer) = (s.id, s.customer);
        let caller = caller(customer);
        let mut answer = match cut_after {
            Some(cut_after) => {
                self.proxy.die_after(Some(u64::from(cut_after)));
                let answer = self.system.delete_session(&caller, id).await;
                self.proxy.die_after(None);
                answer
            }
            // A DELETE reads only consistently: without a cut-off, the proxy has nothing to do.
            None => self.direct.delete_session(&caller, id).await,
        };
        self.wrote(index);
        let cut = answer.is_err();
        if cut && retry {
            answer = self.direct.delete_session(&caller, id).await;
        }
        let reused = self.sessions.iter().filter(|s| s.id == id).count() > 1;
        match answer {
            Ok(()) => {
                if self.sessions[index].state != State::InPurge {
                    self.sessions[index].state = State::Deleted;
                }
                let left = self.partition(id).await;
                if !left.is_empty() && !reused {
                    found.push(violation(
                        "a DELETE removes everything before it answers",
                        None,
                        format!("{id}: {} items left: {:?}", left.len(), sort_keys(&left)),
                    ));
                }
            }
            Err(Error::Unavailable(_)) if cut && !retry => {
                let s = &mut self.sessions[index];
                if s.state == State::Live {
                    s.state = State::Abandoned;
                }
            }
            Err(e) => found.push(violation("a DELETE of one's own session answers 204", None, format!("{id}: {e:?}"))),
        }
        Some(index)
    }

    async fn partition(&self, id: Uuid) -> Vec<Item> {
        self.direct
            .client()
            .query()
            .table_name(&self.config.table_name)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(keys::session_pk(&id)))
            .consistent_read(true)
            .send()
            .await
            .map(|page| page.items.unwrap_or_default())
            .unwrap_or_default()
    }

    async fn count(&self, pk: &str) -> u64 {
        self.direct
            .client()
            .query()
            .table_name(&self.config.table_name)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
            .consistent_read(true)
            .select(Select::Count)
            .send()
            .await
            .map(|page| page.count as u64)
            .unwrap_or_default()
    }

    /// What an earlier deletion of the session, cut off, recorded on its pending marker:
    /// whether it deleted `~META`, and how many other items it found once `~META` was gone.
    async fn earlier_deletion(&self, hash: &str, id: &Uuid) -> (bool, Option<u64>) {
        let marker = self.read_item(keys::privacy_pk(hash), keys::pending_sk(id)).await.unwrap_or_default();
        let meta_deleted = marker.get("meta_deleted").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
        let children = marker.get("children").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
        (meta_deleted, children)
    }

    async fn purge(&mut self, customer: usize, cut_after: Option<u8>, retry: bool, found: &mut Vec<Violation>) {
        let name = CUSTOMERS[customer];
        let hash = customer_hash(TEST_RECEIPT_SALT, name);
        let ids: HashSet<Uuid> = self.sessions.iter().filter(|s| s.customer == customer).map(|s| s.id).collect();
        let mut items = 0;
        for id in &ids {
            // An id another customer holds now counts only what this customer's abandoned
            // DELETE of it left to finish.
            let own = self.latest_with_id(*id).is_some_and(|i| self.sessions[i].customer == customer);
            let abandoned = self.sessions.iter().any(|s| s.id == *id && s.customer == customer && s.state == State::Abandoned);
            if !own && !abandoned {
                continue;
            }
            // A DELETE cut off after it removed `~META` left its claim on the pending marker,
            // with the number of items it found: the purge that finishes that session counts
            // what that DELETE found, `~META` included, not only what is left.
            let (meta_deleted, children) = self.earlier_deletion(&hash, id).await;
            let live = own && self.meta_and_entry(*id, customer).await.0;
            items += match (live, children) {
                (false, Some(children)) => u64::from(meta_deleted) + children,
                (false, None) if own => u64::from(meta_deleted) + self.count(&keys::session_pk(id)).await,
                (false, None) => u64::from(meta_deleted),
                (true, _) => self.count(&keys::session_pk(id)).await,
            };
        }
        let memory = self.count(&keys::memory_pk(&hash)).await;
        self.counter += 1;
        let request_id = format!("purge-{}", self.counter);
        let mut answer = match cut_after {
            Some(cut_after) => {
                self.proxy.die_after(Some(u64::from(cut_after)));
                let answer = self.system.purge_customer(name, &request_id).await;
                self.proxy.die_after(None);
                answer
            }
            // A purge reads only consistently: without a cut-off, the proxy has nothing to do.
            None => self.direct.purge_customer(name, &request_id).await,
        };
        for index in 0..self.sessions.len() {
            if self.sessions[index].customer == customer {
                self.wrote(index);
            }
        }
        let cut = answer.is_err();
        if cut && retry {
            answer = self.direct.purge_customer(name, &request_id).await;
        }
        match answer {
            Ok(receipt) => {
                // The previous abandoned purge may have deleted some before this one counted.
                let counted_everything = !self.customers[customer].purge_open;
                // A purge that finds nothing to delete answers the customer's last receipt.
                let last = self.customers[customer].last_receipt.filter(|_| items == 0 && memory == 0);
                if counted_everything && last.is_some_and(|last| last != receipt.receipt_id) {
                    found.push(violation(
                        "a purge that finds nothing answers the last receipt",
                        Some(5),
                        format!("purge of {name} (cut off: {cut}): receipt {} where the last was {last:?}", receipt.receipt_id),
                    ));
                }
                if counted_everything && last.is_none() && (receipt.items_deleted != items || receipt.memory_items_deleted != memory) {
                    found.push(violation(
                        "a receipt's counts equal what was deleted",
                        Some(5),
                        format!(
                            "purge of {name} (cut off: {cut}): receipt {} items, {} memory items; {items} and {memory} were there",
                            receipt.items_deleted, receipt.memory_items_deleted
                        ),
                    ));
                }
                match self.direct.purge_customer(name, &request_id).await {
                    Ok(again) if again.receipt_id == receipt.receipt_id && again.items_deleted == receipt.items_deleted => {}
                    again => found.push(violation(
                        "a repeat of a purge returns the same receipt",
                        Some(5),
                        format!("purge of {name}: {} then {:?}", receipt.receipt_id, again.map(|r| (r.receipt_id, r.items_deleted))),
                    )),
                }
                for s in self.sessions.iter_mut().filter(|s| s.customer == customer) {
                    s.state = State::Purged;
                }
                let c = &mut self.customers[customer];
                c.purge_open = false;
                c.last_receipt = Some(receipt.receipt_id);
                c.purged_sessions.extend(ids);
                let mut leftovers = Vec::new();
                for id in &self.customers[customer].purged_sessions {
                    if self.count(&keys::session_pk(id)).await > 0 && self.latest_with_id(*id).is_some_and(|i| self.sessions[i].customer == customer) {
                        leftovers.push(*id);
                    }
                }
                if !leftovers.is_empty() {
                    found.push(violation("a purge deletes every session of its customer", None, format!("{name}: {leftovers:?}")));
                }
            }
            Err(Error::Unavailable(_)) if cut && !retry => {
                for s in self.sessions.iter_mut().filter(|s| s.customer == customer) {
                    s.state = State::InPurge;
                }
                self.customers[customer].purge_open = true;
            }
            Err(e) => found.push(violation("a purge without faults answers a receipt", None, format!("{name}: {e:?}"))),
        }
    }

    /// The model after the janitor finished the customer's abandoned purge.
    async fn janitor_finished_purge(&mut self, customer: usize) {
        let hash = customer_hash(TEST_RECEIPT_SALT, CUSTOMERS[customer]);
        let pointer = self.read_item(keys::privacy_pk(&hash), keys::LAST_RECEIPT.to_owned()).await;
        let last = pointer.and_then(|item| item.get("receipt_id").and_then(|v| v.as_s().ok()).and_then(|id| id.parse().ok()));
        let mut ids = HashSet::new();
        for s in self.sessions.iter_mut().filter(|s| s.customer == customer && s.state == State::InPurge) {
            s.state = State::Purged;
            ids.insert(s.id);
        }
        let c = &mut self.customers[customer];
        c.purge_open = false;
        c.last_receipt = last;
        c.purged_sessions.extend(ids);
    }

    async fn ttl_remove(&mut self, pick: u32, found: &mut Vec<Violation>) -> Option<usize> {
        let index = self.pick_session(pick)?;
        let s = &self.sessions[index];
        if s.state != State::Live || !self.ttl_due(s) {
            return None;
        }
        let id = s.id;
        let now = self.clock.now_epoch_seconds();
        let removed = self
            .direct
            .client()
            .delete_item()
            .table_name(&self.config.table_name)
            .key(keys::PK, AttributeValue::S(keys::session_pk(&id)))
            .key(keys::SK, AttributeValue::S(keys::META.to_owned()))
            .condition_expression("#ttl < :now")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match removed {
            Ok(output) => {
                if let Some(old) = output.attributes {
                    self.sweeps.push(crate::ttl_removal(&old, true));
                }
                self.sessions[index].state = State::Removed;
            }
            Err(e) => found.push(violation(
                "a session expires SESSION_TTL_SECONDS after its last activity",
                None,
                format!("{id}: TTL could not remove META: {:?}", e.into_service_error()),
            )),
        }
        Some(index)
    }

    async fn deliver_sweep(&mut self, pick: u32, cut: Option<u8>, found: &mut Vec<Violation>) -> Option<usize> {
        if self.sweeps.is_empty() {
            return None;
        }
        let position = pick as usize % self.sweeps.len();
        let record = self.sweeps[position].clone();
        self.proxy.die_after(cut.map(u64::from));
        let event: Event = serde_json::from_value(json!({"Records": [record.clone()]})).expect("a stream event");
        let response = sweep_expired::handle(&self.system, event).await;
        self.proxy.die_after(None);
        let id = record.pointer("/dynamodb/OldImage/session_id/S").and_then(Value::as_str).and_then(|s| s.parse().ok());
        if response.batch_item_failures.is_empty() {
            self.sweeps.remove(position);
            if let Some(id) = id {
                let live = self.latest_with_id(id).is_some_and(|i| self.sessions[i].state == State::Live);
                let left = self.partition(id).await;
                if !live && !left.is_empty() {
                    found.push(violation(
                        "a TTL removal of the session record sweeps every other item",
                        None,
                        format!("{id}: {:?}", sort_keys(&left)),
                    ));
                }
            }
        }
        None
    }

    async fn deliver_window(&mut self, pick: u32, twice: bool, found: &mut Vec<Violation>) -> Option<usize> {
        if self.windows.is_empty() {
            return None;
        }
        let position = pick as usize % self.windows.len();
        let (id, customer) = self.windows[position];
        let mut failed = false;
        for _ in 0..if twice { 2 } else { 1 } {
            let event: Event = serde_json::from_value(json!({"Records": [crate::meta_record(id, "100", (0, false), (0, true))]})).expect("a stream event");
            let response = summarize::handle(&self.system, &ExtractiveSummarizer::default(), &self.config, event).await;
            failed |= !response.batch_item_failures.is_empty();
        }
        if !failed {
            self.windows.remove(position);
        }
        let index = self.latest_with_id(id);
        if let Some(index) = index {
            self.wrote(index);
            self.watch_due_flag(index, found).await;
        }
        self.check_facts(customer, found).await;
        index
    }

    async fn redrive(&mut self, found: &mut Vec<Violation>) {
        if let Err(e) = self.direct.rearm_due_summaries().await {
            found.push(violation("make redrive runs", None, format!("{e:?}")));
        }
        for index in 0..self.sessions.len() {
            let s = &self.sessions[index];
            if s.state == State::Live && !self.expired(s) {
                self.sessions[index].armed = false;
                self.watch_flag(index).await;
            }
        }
    }

    async fn forget_fact(&mut self, customer: usize, pick: u32, found: &mut Vec<Violation>) {
        let name = CUSTOMERS[customer];
        let Ok(page) = self.direct.list_facts(name, 100, None).await else { return };
        if page.facts.is_empty() {
            return;
        }
        let fact = &page.facts[pick as usize % page.facts.len()];
        match self.system.delete_fact(name, &fact.fact_id).await {
            Ok(_) => {
                let at = clock::format(self.clock.now());
                self.customers[customer].forgotten.insert(fact.fact_id.clone(), at);
            }
            Err(e) => found.push(violation("a fact can be forgotten", None, format!("{name}: {e:?}"))),
        }
        self.check_facts(customer, found).await;
    }

    /// Deletes every memory item whose `ttl` has passed, as DynamoDB's TTL would (some time
    /// after it passed; here, when this step comes).
    async fn ttl_memory(&self) {
        let now = self.clock.now_epoch_seconds();
        for item in crate::scan_table(&self.direct).await {
            let memory = item.get(keys::PK).and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("MEMORY#"));
            let expired = item.get("ttl").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()).is_some_and(|ttl| ttl < now);
            if memory && expired {
                let key = [keys::PK, keys::SK].map(|k| (k.to_owned(), item[k].clone()));
                let _ = self.direct.client().delete_item().table_name(&self.config.table_name).set_key(Some(key.into_iter().collect())).send().await;
            }
        }
    }

    /// A forgotten fact never returns with a statement made before it was forgotten, and no
    /// fact outlives the purge of its session.
    async fn check_facts(&self, customer: usize, found: &mut Vec<Violation>) {
        let name = CUSTOMERS[customer];
        let Ok(page) = self.direct.list_facts(name, 100, None).await else { return };
        let c = &self.customers[customer];
        for fact in &page.facts {
            if let Some(forgotten_at) = c.forgotten.get(&fact.fact_id) {
                if fact.updated_at < *forgotten_at {
                    found.push(violation(
                        "a forgotten fact never returns",
                        Some(1),
                        format!("{name}: {:?} stated at {} came back after it was forgotten at {forgotten_at}", fact.text, fact.updated_at),
                    ));
                }
            }
            if c.purged_sessions.contains(&fact.source.session_id) && self.latest_with_id(fact.source.session_id).is_some_and(|i| self.sessions[i].state == State::Purged) {
                found.push(violation("long-term memory is gone with the purge", None, format!("{name}: {:?}", fact.text)));
            }
        }
    }

    /// The session against the model, read directly and consistently.
    async fn check_session(&mut self, index: usize, found: &mut Vec<Violation>) {
        let s = &self.sessions[index];
        if matches!(s.state, State::InPurge | State::Abandoned) || self.near_expiry(s) || self.latest_with_id(s.id) != Some(index) {
            return;
        }
        let loaded = self.direct.load_context(&caller(s.customer), s.id, crate::newest(100, true)).await;
        let readable = s.state == State::Live && !self.expired(s);
        match (loaded, readable) {
            (Ok(context), true) => {
                let body = serde_json::to_value(&context).unwrap_or_default();
                for problem in context_problems(&body, &s.turns, true) {
                    found.push(violation("an acknowledged turn is there exactly once, in order", None, format!("{}: {problem}", s.id)));
                }
                let held = (body["session"]["turn_count"].as_u64().unwrap_or(0), body["summary"]["through_turn"].as_u64().unwrap_or(0));
                if let Some(version) = context.version {
                    self.sessions[index].versions.insert(version, held);
                }
            }
            (Err(Error::NotFound), false) => {}
            (loaded, readable) => found.push(violation(
                "a session is readable exactly while it lives",
                None,
                format!("{} ({:?}, readable {readable}): {:?}", s.id, s.state, loaded.map(|c| c.session.map(|s| s.turn_count))),
            )),
        }
    }

    /// Delivers everything queued, runs `make redrive`, and checks what must hold once things
    /// have settled.
    pub async fn settle(&mut self, found: &mut Vec<Violation>) {
        for _ in 0..3 {
            while !self.sweeps.is_empty() {
                let before = self.sweeps.len();
                self.deliver_sweep(0, None, found).await;
                if self.sweeps.len() == before {
                    break;
                }
            }
            self.redrive(found).await;
            while !self.windows.is_empty() {
                let before = self.windows.len();
                self.deliver_window(0, false, found).await;
                if self.windows.len() == before {
                    break;
                }
            }
        }
        // The janitor finishes what a cut-off DELETE, sweep or purge left, once its work items
        // are due.
        self.clock.advance(Duration::from_secs(tidewater::store::JANITOR_GRACE_SECONDS as u64 + 1));
        match tidewater::Janitor::janitor_pass(&self.system, self.clock.now()).await {
            Ok(report) if report.failed > 0 => found.push(violation("the janitor finishes every overdue task", None, format!("{report:?}"))),
            Ok(_) => {}
            Err(e) => found.push(violation("the janitor runs", None, format!("{e:?}"))),
        }
        // It has finished every abandoned purge: the customer's last receipt is its.
        for customer in 0..CUSTOMERS.len() {
            if self.customers[customer].purge_open {
                self.janitor_finished_purge(customer).await;
            }
        }
        let table = crate::scan_table(&self.direct).await;
        let mut partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for item in &table {
            let pk = item.get(keys::PK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let sk = item.get(keys::SK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            partitions.entry(pk).or_default().push(sk);
        }
        let mut orphans = Vec::new();
        for (pk, sks) in &partitions {
            if let Some(id) = keys::session_id_from_pk(pk) {
                if !sks.iter().any(|sk| sk == keys::META) {
                    orphans.push(format!("{id}: {} items", sks.len()));
                }
                let model = self.latest_with_id(id).map(|i| &self.sessions[i]);
                if model.is_some_and(|s| matches!(s.state, State::Deleted | State::Purged)) && sks.iter().any(|sk| sk == keys::META) {
                    found.push(violation("a deleted session never comes back", Some(3), format!("{id} has META again")));
                }
            }
            if pk.starts_with("PRIVACY#") && sks.iter().any(|sk| sk == keys::PURGE_LEDGER) {
                found.push(violation("an abandoned purge is finished by the system", Some(7), format!("{pk} holds a ledger")));
            }
            // A registry entry or a pending marker lives only as long as its session.
            for sk in sks.iter().filter(|_| pk.starts_with("PRIVACY#")) {
                let of_session = |prefix: &str| sk.strip_prefix(prefix).and_then(|id| id.parse::<Uuid>().ok());
                let leftover = match (of_session(keys::REGISTRY_PREFIX), of_session(keys::PENDING_PREFIX)) {
                    (Some(id), _) => (!partitions.get(&keys::session_pk(&id)).is_some_and(|s| s.iter().any(|sk| sk == keys::META))).then_some("registry entry"),
                    (None, Some(_)) => Some("pending marker"),
                    (None, None) => None,
                };
                if let Some(what) = leftover {
                    found.push(violation("once settled, no item outlives its session", Some(6), format!("{pk} keeps a {what}: {sk}")));
                }
            }
        }
        if !orphans.is_empty() {
            found.push(violation("once settled, no item outlives its session", Some(6), orphans.join(", ")));
        }
        for index in 0..self.sessions.len() {
            let s = &self.sessions[index];
            if s.state != State::Live || self.expired(s) || self.latest_with_id(s.id) != Some(index) {
                continue;
            }
            let Ok(Some(state)) = self.direct.summary_state(s.id).await else { continue };
            let (threshold, keep) = (self.config.summary_threshold, self.config.summary_keep_recent);
            let due = tidewater::summarizer::next_window_end(state.summarized_through, state.turn_count, threshold, keep);
            if let Some(due) = due {
                found.push(violation(
                    "a due summary is written in the end",
                    Some(8),
                    format!("{}: {} turns, summarised through {}, window through {due} never written", s.id, state.turn_count, state.summarized_through),
                ));
            }
        }
        for customer in 0..CUSTOMERS.len() {
            self.check_facts(customer, found).await;
        }
    }
}

/// What is wrong with a context body against the acknowledged turns: it must cover `1..=T`
/// exactly once (summary, then `omitted`, then contiguous turns ending at `T`), `T` must be
/// the acknowledged count (or at most it, when `exact` is false), and every turn must be the
/// acknowledged one.
fn context_problems(body: &Value, acked: &[TurnModel], exact: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let turn_count = body["session"]["turn_count"].as_u64().unwrap_or(0);
    let summarized = body["summary"]["through_turn"].as_u64().unwrap_or(0);
    let turns = body["turns"].as_array().cloned().unwrap_or_default();
    let indices: Vec<u64> = turns.iter().filter_map(|t| t["turn_index"].as_u64()).collect();
    let first_due = match (body["omitted"]["from_turn"].as_u64(), body["omitted"]["to_turn"].as_u64()) {
        (Some(from), Some(to)) if from == summarized + 1 && to >= from => to + 1,
        (None, None) => summarized + 1,
        _ => {
            problems.push(format!("omitted {} after a summary through {summarized}", body["omitted"]));
            return problems;
        }
    };
    if indices != (first_due..=turn_count).collect::<Vec<_>>() {
        problems.push(format!("turns {indices:?} with summary through {summarized}, omitted {}, turn_count {turn_count}", body["omitted"]));
    }
    let acked_count = acked.len() as u64;
    if (exact && turn_count != acked_count) || turn_count > acked_count {
        problems.push(format!("turn_count {turn_count} where {acked_count} turns were acknowledged"));
    }
    for turn in &turns {
        let index = turn["turn_index"].as_u64().unwrap_or(0);
        let expected = index.checked_sub(1).and_then(|i| acked.get(i as usize));
        if expected.is_none_or(|t| turn["content"] != json!(t.content)) {
            problems.push(format!("turn {index} is {:?}, acknowledged as {:?}", turn["content"], expected.map(|t| &t.content)));
        }
    }
    problems
}

fn digest(body: &Value) -> String {
    format!(
        "turn_count {} summary {} turns {}",
        body["session"]["turn_count"],
        body["summary"]["through_turn"],
        body["turns"].as_array().map_or(0, Vec::len)
    )
}

fn sort_keys(items: &[Item]) -> Vec<String> {
    items.iter().filter_map(|i| i.get(keys::SK).and_then(|v| v.as_s().ok()).cloned()).collect()
}

