//! `GET /sessions/{id}/context`: the session, its latest summary and the recent turns.
//! When DynamoDB fails or misses the deadline it answers 200 with `degraded: true`.
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use tidewater::model::{DEFAULT_MAX_TURNS, MAX_MAX_TURNS};
use tidewater::metrics::Metrics;
use tidewater::{http, Context, ContextLoader, Error};

pub async fn handle<S: ContextLoader>(store: &S, request: Request) -> Response<Body> {
    http::serve("load-context", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let max_turns: usize = http::query_param(&request, "max_turns", DEFAULT_MAX_TURNS)?;
        if !(1..=MAX_MAX_TURNS).contains(&max_turns) {
            return Err(Error::BadRequest(format!("max_turns must be between 1 and {MAX_MAX_TURNS}")));
        }
        let consistent: bool = http::query_param(&request, "consistent", false)?;
        let context = match store.load_context(&caller, session_id, max_turns, consistent).await {
            Err(Error::Unavailable(source)) => {
                tracing::warn!(%source, outcome = "degraded", "answering without memory");
                Metrics::new("load-context").count("DegradedLoads", 1).emit();
                Context::degraded()
            }
            other => other?,
        };
        let mut response = http::json(200, &context);
        if let Some(version) = context.version {
            if let Ok(etag) = format!("\"{version}\"").parse() {
                response.headers_mut().insert(header::ETAG, etag);
            }
        }
        Ok(response)
    })
    .await
}
