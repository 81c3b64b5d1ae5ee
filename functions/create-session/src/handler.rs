//! `POST /sessions`: creates a session, or finds the caller's own on a retry with the same id.
//! Every string of `page_context` is redacted before it is written.
use lambda_http::{Body, Request, Response};
use tidewater::redact::{redact_page_context, Redactor};
use tidewater::{http, NewSession, SessionCreator};

pub async fn handle<S: SessionCreator, R: Redactor>(store: &S, redactor: &R, request: Request) -> Response<Body> {
    http::serve("create-session", &request, async {
        let caller = http::caller(&request)?;
        let mut new_session: NewSession = http::json_body(&request)?;
        new_session.validate()?;
        if let Some(page_context) = new_session.page_context.as_mut() {
            redact_page_context(redactor, page_context).await;
        }
        let session = store.create_session(&caller, new_session).await?;
        let status = if session.created { 201 } else { 200 };
        Ok(http::json(status, &session))
    })
    .await
}
