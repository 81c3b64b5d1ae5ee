//! `DELETE /customers/me/memory/{fact_id}` and `DELETE /customers/{id}/memory/{fact_id}`:
//! forgets one long-term fact. 204, also when there is no such fact (any more). `/customers/{id}`
//! serves the customer themself and `privacy`, and is 404 for anyone else; a `fact_id` that is
//! not 32 hex digits is a 400.
use lambda_http::{Body, Request, Response};
use tidewater::memory::is_fact_id;
use tidewater::{http, Caller, Error, MemoryDeleter};

pub async fn handle<S: MemoryDeleter>(store: &S, request: Request) -> Response<Body> {
    http::serve("delete-memory", &request, async {
        let caller = http::caller(&request)?;
        let customer = http::customer_in_path(&caller, &request, Caller::is_privacy)?;
        let fact_id = http::path_param(&request, "fact_id").unwrap_or_default();
        if !is_fact_id(&fact_id) {
            return Err(Error::BadRequest(format!("fact id {fact_id:?} is not 32 lowercase hex digits")));
        }
        let deleted = store.delete_fact(&customer, &fact_id).await?;
        tracing::info!(deleted, "fact deletion handled");
        Ok(Response::builder().status(204).body(Body::Empty).unwrap_or_default())
    })
    .await
}
