//! `DELETE /customers/me` and `DELETE /customers/{id}`: deletes every session of a customer
//! (guest sessions excepted) and answers 200 with the deletion receipt. Safe to repeat: a
//! purge cut off half-way is finished by the next call.
//!
//! `/customers/{id}` is for the privacy role (or the customer themself); anyone else gets
//! 404, as for any resource they may not see.
use lambda_http::{Body, Request, Response};
use tidewater::{http, Caller, CustomerPurger, Error};

/// Customer ids are a token's `sub`; anything longer (in characters) is not one.
const MAX_CUSTOMER_ID_LEN: usize = 256;

pub async fn handle<S: CustomerPurger>(store: &S, request: Request) -> Response<Body> {
    http::serve("purge-customer", &request, async {
        let caller = http::caller(&request)?;
        let customer_id = customer_to_purge(&caller, &request)?;
        let receipt = store.purge_customer(&customer_id, &http::request_id(&request)).await?;
        Ok(http::json(200, &receipt))
    })
    .await
}

fn customer_to_purge(caller: &Caller, request: &Request) -> Result<String, Error> {
    // `DELETE /customers/me` has no path parameter; `/customers/{id}` with id `me` is the same.
    match http::path_param(request, "id").as_deref() {
        None | Some("me") => Ok(caller.customer_id.clone()),
        Some(id) if id.is_empty() || id.chars().count() > MAX_CUSTOMER_ID_LEN => {
            Err(Error::BadRequest(format!("a customer id is 1 to {MAX_CUSTOMER_ID_LEN} characters")))
        }
        Some(id) if id == caller.customer_id || caller.is_privacy() => Ok(id.to_owned()),
        Some(_) => Err(Error::NotFound),
    }
}
