//! A fault-injecting proxy for DynamoDB's JSON protocol, between the functions and DynamoDB
//! (Local), for `make chaos`.
//!
//! Each request is forwarded unless the [`Plan`] picks a fault for it. The plan is a list of
//! rules `fault[@Operation|Operation]=rate`, matched against the operation in `X-Amz-Target`
//! (`DynamoDB_20120810.GetItem` is `GetItem`); one seeded draw per request decides, with the
//! rates of the matching rules stacked in order, so at most one fault hits a request:
//!
//! | fault | what the caller sees |
//! |---|---|
//! | `throughput_exceeded` | 400 `ProvisionedThroughputExceededException`, DynamoDB's body |
//! | `throttling` | 400 `ThrottlingException`, DynamoDB's body |
//! | `internal_error` | 500 `InternalServerError`, DynamoDB's body |
//! | `latency` | the real answer, [`Plan::latency`] late |
//! | `reset` | the connection reset (RST) before the request reaches DynamoDB |
//! | `lost_answer` | the request applied by DynamoDB, then the connection reset before the answer |
//! | `stale` | an eventually consistent GetItem or Query answered as a lagging replica would: per item, an older version or none, up to [`Plan::stale_bound`] old (see [`crate::stale`]) |
//!
//! A plan with a `stale` rule makes the proxy keep the recent history of every item it sees
//! written, which costs one strongly consistent BatchGetItem per write and lets writes pass one
//! at a time. The time the history is kept by is the proxy's [`Clock`], which tests move.
//!
//! [`FaultProxy::die_after`] cuts a caller off half-way, after any number of requests, as a
//! function that dies would be; [`FaultProxy::set_plan`] changes the plan between requests.
//!
//! `/_fault-proxy/log` answers what was forwarded and injected, by operation, with each
//! injection's time and the key values it addressed; `POST /_fault-proxy/on` and `.../off`
//! switch the faults on and off (they start on).
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tidewater::clock::Clock;
use tokio::net::{TcpListener, TcpStream};

use crate::forward::{answer, forward};
use crate::stale::{self, History};

/// The kinds of fault the proxy injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    ThroughputExceeded,
    Throttling,
    InternalError,
    Latency,
    Reset,
    LostAnswer,
    Stale,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::ThroughputExceeded,
        Fault::Throttling,
        Fault::InternalError,
        Fault::Latency,
        Fault::Reset,
        Fault::LostAnswer,
        Fault::Stale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::ThroughputExceeded => "throughput_exceeded",
            Fault::Throttling => "throttling",
            Fault::InternalError => "internal_error",
            Fault::Latency => "latency",
            Fault::Reset => "reset",
            Fault::LostAnswer => "lost_answer",
            Fault::Stale => "stale",
        }
    }

    /// The error DynamoDB answers for this fault: status, `__type` and message, as the
    /// service sends them. `None` for the faults that answer late or not at all.
    pub fn error_answer(self) -> Option<(StatusCode, &'static str, &'static str)> {
        match self {
            Fault::ThroughputExceeded => Some((
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            )),
            Fault::Throttling => Some((
                StatusCode::BAD_REQUEST,
                "com.amazon.coral.availability#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            )),
            Fault::InternalError => Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error",
            )),
            Fault::Latency | Fault::Reset | Fault::LostAnswer | Fault::Stale => None,
        }
    }

    /// Whether DynamoDB applied the request (so a retry meets its own effect).
    pub fn applied(self) -> bool {
        matches!(self, Fault::Latency | Fault::LostAnswer | Fault::Stale)
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(name: &str) -> Result<Fault, String> {
        Fault::ALL
            .into_iter()
            .find(|fault| fault.name() == name)
            .ok_or_else(|| format!("unknown fault {name:?}; one of {:?}", Fault::ALL.map(Fault::name)))
    }
}

/// One rule of a plan: `fault` hits this share of the requests to `operations` (all when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub fault: Fault,
    pub operations: Vec<String>,
    pub rate: f64,
}

/// Which faults hit which operations, how often, how late a `latency` answer comes, and how
/// far behind a `stale` read may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rules: Vec<Rule>,
    pub latency: Duration,
    pub stale_bound: Duration,
}

impl Plan {
    /// Reads `fault[@Operation|Operation]=rate, ...`, such as
    /// `throttling=0.03, lost_answer@TransactWriteItems|PutItem=0.02`.
    pub fn parse(spec: &str, latency: Duration) -> Result<Plan, String> {
        let mut rules = Vec::new();
        for rule in spec.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            let (target, rate) = rule.split_once('=').ok_or_else(|| format!("{rule:?} is not fault=rate"))?;
            let rate: f64 = rate.trim().parse().map_err(|_| format!("{rule:?}: the rate is not a number"))?;
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{rule:?}: the rate must be between 0 and 1"));
            }
            let (fault, operations) = match target.split_once('@') {
                Some((fault, operations)) => (fault, operations.split('|').map(|o| o.trim().to_owned()).collect()),
                None => (target, Vec::new()),
            };
            rules.push(Rule { fault: fault.trim().parse()?, operations, rate });
        }
        let plan = Plan { rules, latency, stale_bound: DEFAULT_STALE_BOUND };
        let worst = plan.busiest_total();
        if worst > 1.0 {
            return Err(format!("the rates of one operation add up to {worst}, more than 1"));
        }
        Ok(plan)
    }

    /// The same plan with stale reads up to `bound` old.
    pub fn with_stale_bound(self, bound: Duration) -> Plan {
        Plan { stale_bound: bound, ..self }
    }

    /// Whether some rule serves stale reads, so that the history of writes must be kept.
    pub fn keeps_history(&self) -> bool {
        self.rules.iter().any(|rule| rule.fault == Fault::Stale && rule.rate > 0.0)
    }

    /// The fault for a request to `operation`, given a uniform draw in `[0, 1)`.
    pub fn choose(&self, operation: &str, draw: f64) -> Option<Fault> {
        let mut ceiling = 0.0;
        for rule in self.rules.iter().filter(|rule| rule.matches(operation)) {
            ceiling += rule.rate;
            if draw < ceiling {
                return Some(rule.fault);
            }
        }
        None
    }

    /// The largest sum of rates any one operation sees.
    fn busiest_total(&self) -> f64 {
        let named = self.rules.iter().flat_map(|rule| rule.operations.iter().map(String::as_str));
        std::iter::once("")
            .chain(named)
            .map(|operation| self.rules.iter().filter(|rule| rule.matches(operation)).map(|rule| rule.rate).sum())
            .fold(0.0, f64::max)
    }
}

impl Rule {
    fn matches(&self, operation: &str) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == operation)
    }
}

/// How far behind a stale read may be unless the plan says otherwise: AWS's "typically within
/// a second", doubled.
pub const DEFAULT_STALE_BOUND: Duration = Duration::from_secs(2);

/// What the proxy did: requests forwarded and faults injected, by operation.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Log {
    pub forwarded: BTreeMap<String, u64>,
    /// fault name → operation → count.
    pub injected: BTreeMap<String, BTreeMap<String, u64>>,
    pub injections: Vec<Injection>,
}

/// One injected fault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Injection {
    /// Milliseconds since the Unix epoch, when the request arrived.
    pub at_ms: u64,
    pub operation: String,
    pub fault: Fault,
    /// The string values in the request's `Key` and `ExpressionAttributeValues`: which items
    /// (a partition key, say) the request addressed.
    pub keys: Vec<String>,
}

/// The proxy: see the module docs.
pub struct FaultProxy {
    plan: Mutex<Plan>,
    upstream: String,
    client: reqwest::Client,
    rng: Mutex<fastrand::Rng>,
    enabled: AtomicBool,
    log: Mutex<Log>,
    clock: Clock,
    history: Mutex<History>,
    /// Held by a write while its before-images are read and it is applied.
    writing: tokio::sync::Mutex<()>,
    /// Requests left before the caller dies: see [`FaultProxy::die_after`]. Negative: never.
    lives: std::sync::atomic::AtomicI64,
}

/// The answer to a request, or the connection dropped instead of one.
type Answer = Result<Response<Full<Bytes>>, Dropped>;

/// The service "failed": hyper then closes the connection without answering.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

const ADMIN_PREFIX: &str = "/_fault-proxy/";

impl FaultProxy {
    pub fn new(plan: Plan, upstream: &str, seed: u64) -> Arc<FaultProxy> {
        FaultProxy::with_clock(plan, upstream, seed, Clock::system())
    }

    /// A proxy whose stale reads lag behind `clock`, which a test moves.
    pub fn with_clock(plan: Plan, upstream: &str, seed: u64, clock: Clock) -> Arc<FaultProxy> {
        Arc::new(FaultProxy {
            plan: Mutex::new(plan),
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).build().unwrap_or_default(),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            enabled: AtomicBool::new(true),
            log: Mutex::new(Log::default()),
            clock,
            history: Mutex::new(History::default()),
            writing: tokio::sync::Mutex::new(()),
            lives: std::sync::atomic::AtomicI64::new(-1),
        })
    }

    /// Cuts the caller off after `requests` more requests, as a function that dies half-way:
    /// those pass, the next one is applied but its answer lost, and every later one is reset
    /// before it reaches DynamoDB, until `die_after(None)`.
    pub fn die_after(&self, requests: Option<u64>) {
        let lives = requests.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        self.lives.store(lives, Ordering::SeqCst);
    }

    /// What [`FaultProxy::die_after`] does to this request: `None` to go on as planned.
    fn cut_off(&self) -> Option<Fault> {
        const OFF: i64 = -1;
        const DEAD: i64 = -2;
        let before = self.lives.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| match n {
            OFF => None,
            0 | DEAD => Some(DEAD),
            n => Some(n - 1),
        });
        match before {
            Ok(0) => Some(Fault::LostAnswer),
            Ok(DEAD) => Some(Fault::Reset),
            Ok(_) | Err(_) => None,
        }
    }

    /// Replaces the plan from the next request on. A plan without `stale` forgets the history.
    pub fn set_plan(&self, plan: Plan) {
        if !plan.keeps_history() {
            if let Ok(mut history) = self.history.lock() {
                *history = History::default();
            }
        }
        if let Ok(mut current) = self.plan.lock() {
            *current = plan;
        }
    }

    fn plan(&self) -> Plan {
        self.plan.lock().map_or_else(|poisoned| poisoned.into_inner().clone(), |plan| plan.clone())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().unix_timestamp_nanos() / 1_000_000).unwrap_or_default()
    }

    pub fn log(&self) -> Log {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Serves connections from `listener` until `stop` completes.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                _ = &mut stop => return Ok(()),
                accepted = listener.accept() => accepted?,
            };
            let proxy = Arc::clone(&self);
            tokio::spawn(async move {
                let reset = Arc::new(AtomicBool::new(false));
                let connection = Connection { stream, reset: Arc::clone(&reset) };
                let service = service_fn(move |request| {
                    let proxy = Arc::clone(&proxy);
                    let reset = Arc::clone(&reset);
                    async move {
                        let answer = proxy.handle(request).await;
                        if answer.is_err() {
                            reset.store(true, Ordering::SeqCst);
                        }
                        answer
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(connection), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>) -> Answer {
        if request.uri().path().starts_with(ADMIN_PREFIX) {
            return Ok(self.admin(request.method(), request.uri().path()));
        }
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Err(Dropped),
        };
        let operation = parts
            .headers
            .get("x-amz-target")
            .and_then(|target| target.to_str().ok())
            .map(|target| target.rsplit('.').next().unwrap_or(target).to_owned())
            .unwrap_or_default();
        let plan = self.plan();
        let fault = self.cut_off().or_else(|| self.draw(&plan, &operation));
        if fault != Some(Fault::Stale) {
            self.record(&operation, fault, &body);
        }

        if let Some((status, error_type, message)) = fault.and_then(Fault::error_answer) {
            let body = serde_json::json!({"__type": error_type, "message": message}).to_string();
            return Ok(answer(status, Bytes::from(body)));
        }
        match fault {
            Some(Fault::Reset) => return Err(Dropped),
            Some(Fault::Latency) => tokio::time::sleep(plan.latency).await,
            _ => {}
        }
        let forwarded = if plan.keeps_history() {
            self.forward_keeping_history(&plan, &operation, &parts.method, parts.uri.path(), &parts.headers, body.clone())
                .await
        } else {
            forward(&self.client, &self.upstream, &parts.method, parts.uri.path(), &parts.headers, body.clone()).await
        };
        match (fault, forwarded) {
            (Some(Fault::LostAnswer), _) | (_, Err(_)) => Err(Dropped),
            (Some(Fault::Stale), Ok(response)) => Ok(self.aged(&plan, &operation, &body, response)),
            (_, Ok(response)) => Ok(response),
        }
    }

    /// Forwards a request; a write first has the images it replaces read and then recorded.
    async fn forward_keeping_history(
        &self,
        plan: &Plan,
        operation: &str,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response<Full<Bytes>>, reqwest::Error> {
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let Some(items) = stale::written_items(operation, &request).filter(|items| !items.is_empty()) else {
            return forward(&self.client, &self.upstream, method, path, headers, body).await;
        };
        let _writing = self.writing.lock().await;
        let read = stale::before_images_request(&items).to_string();
        let mut read_headers = headers.clone();
        read_headers.insert("x-amz-target", HeaderValue::from_static("DynamoDB_20120810.BatchGetItem"));
        let images = match forward(&self.client, &self.upstream, method, path, &read_headers, Bytes::from(read)).await {
            Ok(response) if response.status() == StatusCode::OK => {
                let answer = response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                serde_json::from_slice(&answer).ok().and_then(|answer: Value| stale::before_images(&answer))
            }
            _ => None,
        };
        let forwarded = forward(&self.client, &self.upstream, method, path, headers, body).await;
        let at_ms = self.now_ms();
        let bound_ms = plan.stale_bound.as_millis() as u64;
        if let Ok(mut history) = self.history.lock() {
            for item in items {
                match &images {
                    Some(images) => {
                        let before = images.get(&item).cloned();
                        history.record(item, before, at_ms, bound_ms);
                    }
                    None => history.forget(&item),
                }
            }
        }
        forwarded
    }

    /// The answer to an eventually consistent read as a lagging replica gives it.
    fn aged(&self, plan: &Plan, operation: &str, body: &[u8], response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(table) = stale::stale_table(operation, &request) else { return response };
        if response.status() != StatusCode::OK {
            return response;
        }
        let (mut parts, full) = response.into_parts();
        let Some(bytes) = futures::FutureExt::now_or_never(full.collect()).and_then(Result::ok).map(|c| c.to_bytes())
        else {
            return Response::from_parts(parts, Full::new(Bytes::new()));
        };
        let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
            return Response::from_parts(parts, Full::new(bytes));
        };
        let bound_ms = plan.stale_bound.as_millis() as u64;
        let now_ms = self.now_ms();
        let changed = match (self.history.lock(), self.rng.lock()) {
            (Ok(history), Ok(mut rng)) => {
                stale::age_answer(&history, &table, &request, &mut answer, now_ms, || rng.u64(0..=bound_ms))
            }
            _ => false,
        };
        if !changed {
            return Response::from_parts(parts, Full::new(bytes));
        }
        self.record(operation, Some(Fault::Stale), body);
        // The checksum of the body DynamoDB sent no longer holds.
        parts.headers.remove("x-amz-crc32");
        Response::from_parts(parts, Full::new(Bytes::from(answer.to_string())))
    }

    fn draw(&self, plan: &Plan, operation: &str) -> Option<Fault> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let draw = self.rng.lock().map(|mut rng| rng.f64()).unwrap_or(1.0);
        plan.choose(operation, draw)
    }

    fn record(&self, operation: &str, fault: Option<Fault>, body: &[u8]) {
        let Ok(mut log) = self.log.lock() else { return };
        *log.forwarded.entry(operation.to_owned()).or_default() += u64::from(fault.is_none_or(Fault::applied));
        if let Some(fault) = fault {
            *log.injected.entry(fault.name().to_owned()).or_default().entry(operation.to_owned()).or_default() += 1;
            let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
            log.injections.push(Injection {
                at_ms,
                operation: operation.to_owned(),
                fault,
                keys: addressed_keys(body),
            });
        }
    }

    fn admin(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let switch = |on: bool| {
            self.enabled.store(on, Ordering::SeqCst);
            answer(StatusCode::OK, Bytes::from(serde_json::json!({"faults": on}).to_string()))
        };
        match (method, &path[ADMIN_PREFIX.len()..]) {
            (&Method::GET, "log") => {
                answer(StatusCode::OK, Bytes::from(serde_json::to_vec(&self.log()).unwrap_or_default()))
            }
            (&Method::POST, "on") => switch(true),
            (&Method::POST, "off") => switch(false),
            _ => answer(StatusCode::NOT_FOUND, Bytes::from_static(b"{\"message\":\"GET log, POST on or off\"}")),
        }
    }
}

/// The string values a request addresses items by: under `Key` and `ExpressionAttributeValues`,
/// at any depth (a transaction nests them).
pub fn addressed_keys(body: &[u8]) -> Vec<String> {
    fn strings(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(text)) = map.get("S") {
                    into.push(text.clone());
                }
                map.values().for_each(|value| strings(value, into));
            }
            Value::Array(values) => values.iter().for_each(|value| strings(value, into)),
            _ => {}
        }
    }
    fn addressing(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (name, value) in map {
                    if name == "Key" || name == "ExpressionAttributeValues" {
                        strings(value, into);
                    } else {
                        addressing(value, into);
                    }
                }
            }
            Value::Array(values) => values.iter().for_each(|value| addressing(value, into)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    if let Ok(request) = serde_json::from_slice::<Value>(body) {
        addressing(&request, &mut keys);
    }
    keys.sort();
    keys.dedup();
    keys
}

/// A client's connection. When a fault drops it, it is closed with a reset (RST), as a
/// crashed or cut-off peer would, rather than an orderly close.
struct Connection {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_cut_off_gets_its_requests_then_one_applied_and_lost_then_none() {
        let proxy = FaultProxy::new(Plan::parse("", Duration::ZERO).unwrap(), "http://127.0.0.1:1", 1);
        assert_eq!(proxy.cut_off(), None, "off by default");
        proxy.die_after(Some(2));
        let seen: Vec<Option<Fault>> = (0..5).map(|_| proxy.cut_off()).collect();
        assert_eq!(seen, [None, None, Some(Fault::LostAnswer), Some(Fault::Reset), Some(Fault::Reset)]);
        proxy.die_after(None);
        assert_eq!(proxy.cut_off(), None);
    }

    #[test]
    fn a_plan_reads_faults_operations_and_rates() {
        let plan = Plan::parse("throttling=0.1, lost_answer@TransactWriteItems|PutItem=0.05", Duration::from_millis(5))
            .unwrap();
        assert_eq!(plan.rules.len(), 2);
        assert_eq!(plan.rules[0], Rule { fault: Fault::Throttling, operations: vec![], rate: 0.1 });
        assert_eq!(plan.rules[1].operations, ["TransactWriteItems", "PutItem"]);
        assert!(Plan::parse("flood=0.1", Duration::ZERO).is_err());
        assert!(Plan::parse("reset=1.5", Duration::ZERO).is_err());
        assert!(Plan::parse("reset=0.6, latency=0.6", Duration::ZERO).is_err());
    }

    #[test]
    fn rates_stack_in_order_and_only_for_matching_operations() {
        let plan = Plan::parse("throttling=0.1, lost_answer@TransactWriteItems=0.2", Duration::ZERO).unwrap();
        assert_eq!(plan.choose("GetItem", 0.05), Some(Fault::Throttling));
        assert_eq!(plan.choose("GetItem", 0.15), None);
        assert_eq!(plan.choose("TransactWriteItems", 0.15), Some(Fault::LostAnswer));
        assert_eq!(plan.choose("TransactWriteItems", 0.35), None);
    }

    #[test]
    fn error_faults_answer_with_dynamodbs_status_and_type() {
        let (status, error_type, _) = Fault::ThroughputExceeded.error_answer().unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(error_type.ends_with("#ProvisionedThroughputExceededException"));
        assert_eq!(Fault::InternalError.error_answer().unwrap().0, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(Fault::LostAnswer.error_answer().is_none());
    }

    #[test]
    fn the_keys_a_request_addresses_are_found_at_any_depth() {
        let body = br#"{"TransactItems":[{"Update":{"Key":{"PK":{"S":"SESSION#1"},"SK":{"S":"META"}},
            "ExpressionAttributeValues":{":n":{"N":"1"}}}},{"Put":{"Item":{"PK":{"S":"SESSION#1"},"body":{"S":"x"}}}}]}"#;
        assert_eq!(addressed_keys(body), ["META", "SESSION#1"]);
        let query = br#"{"ExpressionAttributeValues":{":pk":{"S":"SESSION#2"},":turn":{"S":"TURN#"}}}"#;
        assert_eq!(addressed_keys(query), ["SESSION#2", "TURN#"]);
    }
}
