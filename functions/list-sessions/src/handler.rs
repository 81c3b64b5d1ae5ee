//! `GET /customers/me/sessions?limit=&cursor=`: the caller's live sessions, newest activity
//! first, from one Query on the sparse customer index. `cursor` is the signed `next_cursor`
//! of the previous page; an altered one, or another customer's, is a 400.
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tidewater::cursor::resume_scope;
use tidewater::model::{ResumePosition, DEFAULT_RESUME_LIMIT, MAX_RESUME_LIMIT};
use tidewater::{http, CursorKey, Error, ResumableSession, SessionLister};

#[derive(Serialize)]
struct Page<'a> {
    sessions: &'a [ResumableSession],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn handle<S: SessionLister>(store: &S, key: &CursorKey, request: Request) -> Response<Body> {
    http::serve("list-sessions", &request, async {
        let caller = http::caller(&request)?;
        let limit: usize = http::query_param(&request, "limit", DEFAULT_RESUME_LIMIT)?;
        if !(1..=MAX_RESUME_LIMIT).contains(&limit) {
            return Err(Error::BadRequest(format!("limit must be between 1 and {MAX_RESUME_LIMIT}")));
        }
        let scope = resume_scope(&caller.customer_id);
        let cursor: String = http::query_param(&request, "cursor", String::new())?;
        let after = Some(cursor).filter(|c| !c.is_empty()).map(|c| key.open::<ResumePosition>(&scope, &c)).transpose()?;
        let page = store.list_sessions(&caller, limit, after).await?;
        let next_cursor = page.next.as_ref().map(|position| key.seal(&scope, position));
        Ok(http::json(200, &Page { sessions: &page.sessions, next_cursor }))
    })
    .await
}
