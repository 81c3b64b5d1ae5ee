//! `DELETE /customers/me` and `DELETE /customers/{id}`: deletes every session of a customer
//! (guest sessions excepted) and answers 200 with the deletion receipt. Safe to repeat: a
//! purge cut off half-way is finished by the next call.
//!
//! `/customers/{id}` is for the privacy role (or the customer themself); anyone else gets
//! 404, as for any resource they may not see. A guest purging themself gets 403: a purge
//! excepts guest sessions and guests have no memory, so it could only write receipts (which
//! never expire) for nothing; a guest deletes each session with `DELETE /sessions/{id}`.
use lambda_http::{Body, Request, Response};
use tidewater::{http, Caller, CustomerPurger, Error};

pub async fn handle<S: CustomerPurger>(store: &S, request: Request) -> Response<Body> {
    http::serve("purge-customer", &request, async {
        let caller = http::caller(&request)?;
        let customer_id = http::customer_in_path(&caller, &request, Caller::is_privacy)?;
        if caller.is_guest() && customer_id == caller.customer_id {
            return Err(Error::Forbidden(
                "a guest has no customer data to purge; delete each session with DELETE /sessions/{id}".into(),
            ));
        }
        let receipt = store.purge_customer(&customer_id, &http::request_id(&request)).await?;
        Ok(http::json(200, &receipt))
    })
    .await
}
