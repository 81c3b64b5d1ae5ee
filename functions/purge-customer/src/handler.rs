//! `DELETE /customers/me` and `DELETE /customers/{id}`: deletes every session of a customer
//! (guest sessions excepted) and answers 200 with the deletion receipt. Safe to repeat: a
//! purge cut off half-way is finished by the next call.
//!
//! `/customers/{id}` is for the privacy role (or the customer themself); anyone else gets
//! 404, as for any resource they may not see.
use lambda_http::{Body, Request, Response};
use tidewater::{http, Caller, CustomerPurger};

pub async fn handle<S: CustomerPurger>(store: &S, request: Request) -> Response<Body> {
    http::serve("purge-customer", &request, async {
        let caller = http::caller(&request)?;
        let customer_id = http::customer_in_path(&caller, &request, Caller::is_privacy)?;
        let receipt = store.purge_customer(&customer_id, &http::request_id(&request)).await?;
        Ok(http::json(200, &receipt))
    })
    .await
}
