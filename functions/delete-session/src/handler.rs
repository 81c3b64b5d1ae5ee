//! `DELETE /sessions/{id}`: deletes every item of the caller's session. 204, also when the
//! session is already gone; 404 when it belongs to someone else.
use lambda_http::{Body, Request, Response};
use tidewater::{http, SessionDeleter};

pub async fn handle<S: SessionDeleter>(store: &S, request: Request) -> Response<Body> {
    http::serve("delete-session", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        store.delete_session(&caller, session_id).await?;
        Ok(Response::builder().status(204).body(Body::Empty).unwrap_or_default())
    })
    .await
}
