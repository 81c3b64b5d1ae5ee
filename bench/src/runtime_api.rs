//! A minimal Lambda Runtime API, enough for aws-lambda-rust-runtime: `GET .../invocation/next`,
//! `POST .../invocation/{id}/response`, `.../{id}/error` and `.../init/error`.
//!
//! Each [`RuntimeApi`] serves one function process on a port of its own, so a process that
//! is killed while it waits on `next` can never take an event meant for the next one.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// What the function posted back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Response,
    Error,
    InitError,
}

#[derive(Debug)]
pub struct Reply {
    pub request_id: String,
    pub outcome: Outcome,
    pub at: Instant,
    pub body: Bytes,
}

struct Invocation {
    request_id: String,
    body: String,
}

#[derive(Clone)]
struct ApiState {
    function_arn: Arc<str>,
    next_calls: mpsc::UnboundedSender<Instant>,
    events: Arc<Mutex<mpsc::UnboundedReceiver<Invocation>>>,
    replies: mpsc::UnboundedSender<Reply>,
}

pub struct RuntimeApi {
    pub address: SocketAddr,
    next_calls: mpsc::UnboundedReceiver<Instant>,
    events: mpsc::UnboundedSender<Invocation>,
    replies: mpsc::UnboundedReceiver<Reply>,
    server: JoinHandle<()>,
    sequence: u64,
}

impl RuntimeApi {
    /// Serves the Runtime API on 127.0.0.1, on a free port.
    pub async fn start(function_name: &str) -> std::io::Result<RuntimeApi> {
        let (next_tx, next_calls) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel();
        let (replies_tx, replies) = mpsc::unbounded_channel();
        let state = ApiState {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}")
                .into(),
            next_calls: next_tx,
            events: Arc::new(Mutex::new(events_rx)),
            replies: replies_tx,
        };
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            address,
            next_calls,
            events,
            replies,
            server,
            sequence: 0,
        })
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.address.to_string()
    }

    /// When the function next asked for an invocation.
    pub async fn next_call(&mut self, limit: Duration) -> Option<Instant> {
        tokio::time::timeout(limit, self.next_calls.recv())
            .await
            .ok()
            .flatten()
    }

    /// Queues one event; the function gets it from its (pending or next) `next` call.
    pub fn invoke(&mut self, body: String) -> String {
        self.sequence += 1;
        let request_id = format!("00000000-0000-4000-8000-{:012}", self.sequence);
        let _ = self.events.send(Invocation {
            request_id: request_id.clone(),
            body,
        });
        request_id
    }

    /// The next response or error the function posted.
    pub async fn reply(&mut self, limit: Duration) -> Option<Reply> {
        tokio::time::timeout(limit, self.replies.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(state): State<ApiState>) -> Response {
    let _ = state.next_calls.send(Instant::now());
    // Only one process talks to this API; the lock just makes the receiver shareable.
    let invocation = state.events.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        + 30_000;
    let mut response = invocation.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", invocation.request_id);
    set("lambda-runtime-deadline-ms", deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        state.function_arn.to_string(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0".to_owned(),
    );
    response
}

async fn response(state: State<ApiState>, id: Path<String>, body: Bytes) -> StatusCode {
    record(state, Some(id), Outcome::Response, body)
}

async fn error(state: State<ApiState>, id: Path<String>, body: Bytes) -> StatusCode {
    record(state, Some(id), Outcome::Error, body)
}

async fn init_error(state: State<ApiState>, body: Bytes) -> StatusCode {
    record(state, None, Outcome::InitError, body)
}

fn record(
    State(state): State<ApiState>,
    id: Option<Path<String>>,
    outcome: Outcome,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    let request_id = id.map(|Path(id)| id).unwrap_or_default();
    let _ = state.replies.send(Reply {
        request_id,
        outcome,
        at,
        body,
    });
    StatusCode::ACCEPTED
}
