//! `POST /sessions`: creates a session, or finds the caller's own on a retry with the same id.
use lambda_http::{Body, Request, Response};
use tidewater::{http, NewSession, SessionCreator};

pub async fn handle<S: SessionCreator>(store: &S, request: Request) -> Response<Body> {
    http::serve("create-session", &request, async {
        let caller = http::caller(&request)?;
        let new_session: NewSession = http::json_body(&request)?;
        let session = store.create_session(&caller, new_session).await?;
        let status = if session.created { 201 } else { 200 };
        Ok(http::json(status, &session))
    })
    .await
}
