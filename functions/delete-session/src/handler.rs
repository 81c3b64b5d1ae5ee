//! `DELETE /sessions/{id}`: deletes every item of the caller's session. 204 also when there
//! is no such session of the caller's: it is already gone, never existed, or is someone
//! else's (which is left alone). One answer for all three, so that it tells nothing about
//! sessions that are not the caller's.
use lambda_http::{Body, Request, Response};
use tidewater::{http, Error, SessionDeleter};

pub async fn handle<S: SessionDeleter>(store: &S, request: Request) -> Response<Body> {
    http::serve("delete-session", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        match store.delete_session(&caller, session_id).await {
            Ok(()) | Err(Error::NotFound) => {}
            Err(error) => return Err(error),
        }
        Ok(Response::builder().status(204).body(Body::Empty).unwrap_or_default())
    })
    .await
}
