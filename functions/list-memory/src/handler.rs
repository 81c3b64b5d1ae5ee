//! `GET /customers/me/memory?limit=&cursor=` and `GET /customers/{id}/memory`: a customer's
//! long-term facts, newest first, each with where it was stated. `/customers/me` is the
//! caller's own; `/customers/{id}` serves the customer themself, `support` and `privacy`, and
//! is 404 for anyone else. A guest has no long-term memory: `{"facts": []}`. `cursor` is the
//! signed `next_cursor` of the previous page of the same customer's listing; any other is a 400.
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tidewater::cursor::memory_scope;
use tidewater::memory::{DEFAULT_MEMORY_PAGE, MAX_MEMORY_PAGE};
use tidewater::{http, Caller, CursorKey, Fact, MemoryPosition, MemoryReader};

#[derive(Serialize)]
struct Page<'a> {
    facts: &'a [Fact],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn handle<S: MemoryReader>(store: &S, key: &CursorKey, request: Request) -> Response<Body> {
    http::serve("list-memory", &request, async {
        let caller = http::caller(&request)?;
        let customer = http::customer_in_path(&caller, &request, |c: &Caller| c.is_support() || c.is_privacy())?;
        let scope = memory_scope(&customer);
        let (limit, after) = http::page_params::<MemoryPosition>(&request, key, &scope, DEFAULT_MEMORY_PAGE, MAX_MEMORY_PAGE)?;
        if caller.is_guest() && customer == caller.customer_id {
            return Ok(http::json(200, &Page { facts: &[], next_cursor: None }));
        }
        let page = store.list_facts(&customer, limit, after).await?;
        let next_cursor = page.next.as_ref().map(|position| key.seal(&scope, position));
        Ok(http::json(200, &Page { facts: &page.facts, next_cursor }))
    })
    .await
}
