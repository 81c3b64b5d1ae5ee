//! `PATCH /sessions/{id}`: replaces the session's `page_context` and slides its expiry.
//! With `If-Match: "<version>"` (the ETag load-context sends) it answers 412 once the
//! session has changed; without it the last writer wins. Every string of the new
//! `page_context` is redacted before it is written.
use lambda_http::http::header;
use lambda_http::{Body, Request, Response};
use tidewater::model::etag;
use tidewater::redact::{redact_page_context, Redactor};
use tidewater::{http, IfMatch, SessionPatch, SessionUpdater};

pub async fn handle<S: SessionUpdater, R: Redactor>(store: &S, redactor: &R, request: Request) -> Response<Body> {
    http::serve("update-session", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let if_match =
            request.headers().get(header::IF_MATCH).map(|value| value.to_str().map_or(IfMatch::Never, IfMatch::parse));
        let mut patch: SessionPatch = http::json_body(&request)?;
        patch.validate()?;
        redact_page_context(redactor, &mut patch.page_context).await;
        let updated = store.update_session(&caller, session_id, patch, if_match).await?;
        let mut response = http::json(200, &updated.session);
        if let Ok(value) = etag(updated.version).parse() {
            response.headers_mut().insert(header::ETAG, value);
        }
        Ok(response)
    })
    .await
}
