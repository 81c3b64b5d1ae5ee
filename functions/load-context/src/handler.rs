//! `GET /sessions/{id}/context`: the session, its latest summary and the recent turns.
//! When DynamoDB fails or misses the deadline it answers 200 with `degraded: true`.
//!
//! With `include=memory` it also answers `customer_memory`: the caller's long-term facts,
//! newest first, at most `max_memory` (1 to 50, default 20). They come from one Query run in
//! parallel with the context's reads, under the same deadline; when that Query fails or is
//! late the answer carries `customer_memory: []` and is otherwise as it would have been. Only
//! the owner of a signed-in session gets facts: a guest, or support reading another
//! customer's session, gets `[]`.
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tidewater::memory::{DEFAULT_MAX_MEMORY, MAX_MAX_MEMORY};
use tidewater::metrics::Metrics;
use tidewater::model::{DEFAULT_MAX_TURNS, MAX_MAX_TURNS};
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
        let max_turns: usize = http::query_param(&request, "max_turns", DEFAULT_MAX_TURNS)?;
        if !(1..=MAX_MAX_TURNS).contains(&max_turns) {
            return Err(Error::BadRequest(format!("max_turns must be between 1 and {MAX_MAX_TURNS}")));
        }
        let consistent: bool = http::query_param(&request, "consistent", false)?;
        let include = Include::parse(&http::query_param(&request, "include", String::new())?)?;
        let max_memory: usize = http::query_param(&request, "max_memory", DEFAULT_MAX_MEMORY)?;
        if !(1..=MAX_MAX_MEMORY).contains(&max_memory) {
            return Err(Error::BadRequest(format!("max_memory must be between 1 and {MAX_MAX_MEMORY}")));
        }

        let memory = async {
            match include.memory && !caller.is_guest() {
                true => store.recent_facts(&caller.customer_id, max_memory).await,
                false => Ok(Vec::new()),
            }
        };
        // Boxed: both reads' SDK futures would otherwise sit side by side in this one.
        let loaded = Box::pin(store.load_context(&caller, session_id, max_turns, consistent));
        let (loaded, memory) = tokio::join!(loaded, Box::pin(memory));
        let context = match loaded {
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
            http::json(200, &WithMemory { context: &context, customer_memory: &facts })
        } else {
            http::json(200, &context)
        };
        if let Some(version) = context.version {
            if let Ok(etag) = format!("\"{version}\"").parse() {
                response.headers_mut().insert(header::ETAG, etag);
            }
        }
        Ok(response)
    })
    .await
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
