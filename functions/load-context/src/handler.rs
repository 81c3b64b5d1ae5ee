//! `GET /sessions/{id}/context`: the session, its latest summary and the turns after it.
//! With `If-None-Match` holding the current ETag it answers 304 from META alone, unless
//! it asks for memory, which the ETag does not cover. When DynamoDB fails or misses the
//! deadline it answers 200 with `degraded: true`.
//!
//! With `include=memory` it also answers `customer_memory`: the caller's long-term facts,
//! newest first, at most `max_memory` (1 to 50, default 20). They come from one Query run in
//! parallel with the context's read, under the same deadline; when that Query fails or is
//! late the answer carries `customer_memory: []` and is otherwise as it would have been. The
//! facts count toward `max_tokens` and the 5 MiB body: older turns make room for them, and
//! when the facts alone exceed `max_tokens`, the oldest facts go too. Only the owner of a
//! signed-in session gets facts: a guest, or support reading another customer's session,
//! gets `[]`.
use lambda_http::http::header;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use tidewater::memory::{self, DEFAULT_MAX_MEMORY, MAX_MAX_MEMORY};
use tidewater::metrics::Metrics;
use tidewater::model::{envelope_len, etag, ContextRequest, IfMatch, MAX_MAX_TOKENS, MAX_MAX_TURNS};
use tidewater::{http, Context, ContextLoader, Error, Fact, MemoryReader};

/// What `include=` may ask for, comma separated.
#[derive(Debug, Default, PartialEq, Eq)]
struct Include {
    memory: bool,
}

impl Include {
    fn parse(raw: &str) -> Result<Include, Error> {
        let mut include = Include::default();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "memory" => include.memory = true,
                other => return Err(Error::BadRequest(format!("include={other:?} is unknown; it may name: memory"))),
            }
        }
        Ok(include)
    }
}

/// The context with the customer's long-term facts beside it.
#[derive(Serialize)]
struct WithMemory<'a> {
    #[serde(flatten)]
    context: &'a Context,
    customer_memory: &'a [Fact],
}

pub async fn handle<S: ContextLoader + MemoryReader>(store: &S, request: Request) -> Response<Body> {
    http::serve("load-context", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let context_request = ContextRequest {
            max_turns: optional_in_range(&request, "max_turns", MAX_MAX_TURNS as u64)?.map(|n| n as usize),
            max_tokens: optional_in_range(&request, "max_tokens", MAX_MAX_TOKENS)?,
            consistent: http::query_param(&request, "consistent", false)?,
        };
        let include = Include::parse(&http::query_param(&request, "include", String::new())?)?;
        let max_memory = optional_in_range(&request, "max_memory", MAX_MAX_MEMORY as u64)?
            .map_or(DEFAULT_MAX_MEMORY, |n| n as usize);
        // The facts are not part of the session's version: with memory, never a 304.
        if let Some(known) = if_none_match(&request).filter(|_| !include.memory) {
            match store.context_version(&caller, session_id, context_request.consistent).await {
                Ok(version) if known.allows(version) => return Ok(not_modified(version)),
                Ok(_) | Err(Error::Unavailable(_)) => {}
                Err(other) => return Err(other),
            }
        }

        let memory = async {
            match include.memory && !caller.is_guest() {
                true => store.recent_facts(&caller.customer_id, max_memory).await,
                false => Ok(Vec::new()),
            }
        };
        // Boxed: both reads' SDK futures would otherwise sit side by side in this one.
        let loaded = Box::pin(store.load_context(&caller, session_id, context_request));
        let (loaded, memory) = tokio::join!(loaded, Box::pin(memory));
        let mut context = match loaded {
            Err(Error::Unavailable(source)) => {
                tracing::warn!(%source, outcome = "degraded", "answering without memory");
                Metrics::new("load-context").count("DegradedLoads", 1).emit();
                Context::degraded()
            }
            other => other?,
        };
        let mut response = if include.memory {
            let owner = context.session.as_ref().and_then(|s| s.customer_id.as_deref());
            let facts = match memory {
                Ok(facts) if owner == Some(caller.customer_id.as_str()) => facts,
                Ok(_) => Vec::new(),
                Err(error) => {
                    tracing::warn!(%error, outcome = "memory_degraded", "answering without long-term memory");
                    Metrics::new("load-context").count("MemoryDegradedLoads", 1).emit();
                    Vec::new()
                }
            };
            let facts = memory::within_tokens(facts, context_request.max_tokens);
            let fact_tokens = facts.iter().map(Fact::tokens).sum();
            context.make_room(fact_tokens, envelope_len(&facts), context_request.max_tokens);
            http::json(200, &WithMemory { context: &context, customer_memory: &facts })
        } else {
            http::json(200, &context)
        };
        if let Some(tag) = context.version.and_then(|version| etag(version).parse().ok()) {
            response.headers_mut().insert(header::ETAG, tag);
        }
        Ok(response)
    })
    .await
}

/// A query parameter that, when present, must be an integer in `1..=max`.
fn optional_in_range(request: &Request, name: &str, max: u64) -> Result<Option<u64>, Error> {
    let Some(raw) = request.query_string_parameters_ref().and_then(|q| q.first(name).map(str::to_owned)) else {
        return Ok(None);
    };
    match raw.parse::<u64>() {
        Ok(value) if (1..=max).contains(&value) => Ok(Some(value)),
        _ => Err(Error::BadRequest(format!("{name} must be an integer between 1 and {max}, got {raw:?}"))),
    }
}

/// The ETags of `If-None-Match`; `None` when absent or unreadable, which means "load".
fn if_none_match(request: &Request) -> Option<IfMatch> {
    let header = request.headers().get(header::IF_NONE_MATCH)?.to_str().ok()?;
    Some(IfMatch::parse(header))
}

fn not_modified(version: u64) -> Response<Body> {
    let mut response = Response::builder().status(304).body(Body::Empty).unwrap_or_default();
    if let Ok(tag) = etag(version).parse() {
        response.headers_mut().insert(header::ETAG, tag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_names_memory_or_nothing() {
        assert_eq!(Include::parse("").unwrap(), Include { memory: false });
        assert_eq!(Include::parse("memory").unwrap(), Include { memory: true });
        assert_eq!(Include::parse(" memory ,").unwrap(), Include { memory: true });
        assert!(matches!(Include::parse("memory,secrets"), Err(Error::BadRequest(_))));
    }
}
