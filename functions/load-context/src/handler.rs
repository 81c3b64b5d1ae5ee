//! `GET /sessions/{id}/context`: the session, its latest summary and the turns after it.
//! With `If-None-Match` holding the current ETag it answers 304 from META alone. When
//! DynamoDB fails or misses the deadline it answers 200 with `degraded: true`.
use lambda_http::http::header;
use lambda_http::{Body, Request, RequestExt, Response};
use tidewater::metrics::Metrics;
use tidewater::model::{etag, ContextRequest, IfMatch, MAX_MAX_TOKENS, MAX_MAX_TURNS};
use tidewater::{http, Context, ContextLoader, Error};

pub async fn handle<S: ContextLoader>(store: &S, request: Request) -> Response<Body> {
    http::serve("load-context", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let context_request = ContextRequest {
            max_turns: optional_in_range(&request, "max_turns", MAX_MAX_TURNS as u64)?
                .map(|n| n as usize),
            max_tokens: optional_in_range(&request, "max_tokens", MAX_MAX_TOKENS)?,
            consistent: http::query_param(&request, "consistent", false)?,
        };
        if let Some(known) = if_none_match(&request) {
            match store
                .context_version(&caller, session_id, context_request.consistent)
                .await
            {
                Ok(version) if known.allows(version) => return Ok(not_modified(version)),
                Ok(_) | Err(Error::Unavailable(_)) => {}
                Err(other) => return Err(other),
            }
        }
        let context = match store
            .load_context(&caller, session_id, context_request)
            .await
        {
            Err(Error::Unavailable(source)) => {
                tracing::warn!(%source, outcome = "degraded", "answering without memory");
                Metrics::new("load-context").count("DegradedLoads", 1).emit();
                Context::degraded()
            }
            other => other?,
        };
        let mut response = http::json(200, &context);
        if let Some(tag) = context
            .version
            .and_then(|version| etag(version).parse().ok())
        {
            response.headers_mut().insert(header::ETAG, tag);
        }
        Ok(response)
    })
    .await
}

/// A query parameter that, when present, must be an integer in `1..=max`.
fn optional_in_range(request: &Request, name: &str, max: u64) -> Result<Option<u64>, Error> {
    let Some(raw) = request
        .query_string_parameters_ref()
        .and_then(|q| q.first(name).map(str::to_owned))
    else {
        return Ok(None);
    };
    match raw.parse::<u64>() {
        Ok(value) if (1..=max).contains(&value) => Ok(Some(value)),
        _ => Err(Error::BadRequest(format!(
            "{name} must be an integer between 1 and {max}, got {raw:?}"
        ))),
    }
}

/// The ETags of `If-None-Match`; `None` when absent or unreadable, which means "load".
fn if_none_match(request: &Request) -> Option<IfMatch> {
    let header = request
        .headers()
        .get(header::IF_NONE_MATCH)?
        .to_str()
        .ok()?;
    IfMatch::parse(header).ok()
}

fn not_modified(version: u64) -> Response<Body> {
    let mut response = Response::builder()
        .status(304)
        .body(Body::Empty)
        .unwrap_or_default();
    if let Ok(tag) = etag(version).parse() {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}
