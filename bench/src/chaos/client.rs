//! The workload's HTTP client: every exchange recorded, and a retry policy like a careful
//! chatbot's: a 503 or a dropped connection is sent again, unchanged, after a backoff.
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Attempts of one logical request before the client gives up on it.
pub const MAX_ATTEMPTS: u32 = 12;

/// One request and what came back.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub route: &'static str,
    /// `None` when the connection failed before a status arrived.
    pub status: Option<u16>,
    pub retry_after: bool,
    pub session: Option<Uuid>,
    pub started_ms: u64,
    pub finished_ms: u64,
    pub elapsed_ms: f64,
    /// The start of the body of a 5xx, to report it.
    pub error_body: Option<String>,
}

/// An answer: status, ETag and JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    /// Marked `Tidewater-Stale`: read from a replica while the home could not answer, so it
    /// may lack what the home acknowledged.
    pub stale: bool,
    pub body: Value,
    pub started_ms: u64,
    pub finished_ms: u64,
}

/// A request as the workload describes it.
pub struct Call<'a> {
    pub route: &'static str,
    pub method: Method,
    pub path: String,
    pub token: &'a str,
    pub session: Option<Uuid>,
    pub body: Option<Value>,
    pub if_match: Option<String>,
}

impl<'a> Call<'a> {
    /// A request without body or `If-Match`; `route` names it in the report.
    pub fn new(route: &'static str, method: Method, path: String, token: &'a str, session: Option<Uuid>) -> Call<'a> {
        Call { route, method, path, token, session, body: None, if_match: None }
    }

    pub fn with_body(self, body: Value) -> Call<'a> {
        Call { body: Some(body), ..self }
    }

    pub fn with_if_match(self, etag: Option<String>) -> Call<'a> {
        Call { if_match: etag, ..self }
    }
}

pub struct Api {
    http: reqwest::Client,
    /// Each attempt goes to one of these at random: every region's API, or the one API.
    bases: Vec<String>,
    pick: Mutex<fastrand::Rng>,
    exchanges: Mutex<Vec<Exchange>>,
    retries: Mutex<Vec<(&'static str, u32)>>,
    gave_up: Mutex<Vec<&'static str>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api::spread(&[base], 0)
    }

    /// An API whose every attempt goes to one of `bases` at random (`make chaos REGIONS=2`).
    pub fn spread(bases: &[&str], seed: u64) -> Api {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Api {
            http,
            bases: bases.iter().map(|base| base.trim_end_matches('/').to_owned()).collect(),
            pick: Mutex::new(fastrand::Rng::with_seed(seed)),
            exchanges: Mutex::default(),
            retries: Mutex::default(),
            gave_up: Mutex::default(),
        }
    }

    /// Sends `call` once. `Err` when no answer came (a dropped connection).
    pub async fn once(&self, call: &Call<'_>) -> Result<Reply, String> {
        let base = match self.bases.len() {
            1 => &self.bases[0],
            n => &self.bases[self.pick.lock().map(|mut rng| rng.usize(0..n)).unwrap_or(0)],
        };
        let mut request =
            self.http.request(call.method.clone(), format!("{base}{}", call.path)).bearer_auth(call.token);
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        if let Some(etag) = &call.if_match {
            request = request.header("if-match", etag);
        }
        let started_ms = now_ms();
        let clock = Instant::now();
        let sent = request.send().await;
        let (reply, exchange_status, retry_after, error_body) = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let etag = response.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let stale = response.headers().get(tidewater_local::homing::STALE).is_some_and(|v| v == "true");
                match response.bytes().await {
                    Ok(bytes) => {
                        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let error_body =
                            (status >= 500).then(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
                        let reply = Reply { status, etag, stale, body, started_ms, finished_ms: now_ms() };
                        (Ok(reply), Some(status), retry_after, error_body)
                    }
                    Err(error) => (Err(error.to_string()), None, false, None),
                }
            }
            Err(error) => (Err(error.to_string()), None, false, None),
        };
        self.record(Exchange {
            route: call.route,
            status: exchange_status,
            retry_after,
            session: call.session,
            started_ms,
            finished_ms: now_ms(),
            elapsed_ms: clock.elapsed().as_secs_f64() * 1_000.0,
            error_body,
        });
        reply
    }

    /// Sends `call` until it gets an answer other than 503, backing off between attempts.
    /// `None` after [`MAX_ATTEMPTS`].
    pub async fn retrying(&self, call: &Call<'_>, rng: &mut fastrand::Rng) -> Option<Reply> {
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt, rng)).await;
            }
            match self.once(call).await {
                Ok(reply) if reply.status != 503 => {
                    if attempt > 0 {
                        self.retries.lock().map(|mut r| r.push((call.route, attempt))).ok();
                    }
                    return Some(reply);
                }
                _ => continue,
            }
        }
        self.gave_up.lock().map(|mut g| g.push(call.route)).ok();
        None
    }

    /// [`Api::retrying`] again and again, for up to `limit`: for a request that must happen,
    /// and may wait out a region's outage or a failover's fence (503 with `Retry-After`).
    pub async fn persisting(&self, call: &Call<'_>, rng: &mut fastrand::Rng, limit: Duration) -> Option<Reply> {
        let started = Instant::now();
        loop {
            if let Some(reply) = self.retrying(call, rng).await {
                return Some(reply);
            }
            if started.elapsed() >= limit {
                return None;
            }
        }
    }

    fn record(&self, exchange: Exchange) {
        if let Ok(mut exchanges) = self.exchanges.lock() {
            exchanges.push(exchange);
        }
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Requests that needed more than one attempt: route and the attempts it took beyond the first.
    pub fn retries(&self) -> Vec<(&'static str, u32)> {
        self.retries.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn gave_up(&self) -> Vec<&'static str> {
        self.gave_up.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Full jitter over an exponential ceiling: 50 ms, 100 ms, ... at most 1.6 s.
fn backoff(attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let ceiling_ms = 50u64 << attempt.min(5);
    Duration::from_millis(10 + rng.u64(0..ceiling_ms))
}
