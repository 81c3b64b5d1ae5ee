//! `GET /customers/me/sessions?limit=&cursor=`: the caller's live sessions, newest activity
//! first, from one Query on the sparse customer index. `cursor` is the signed `next_cursor`
//! of the previous page; an altered one, or another customer's, is a 400.
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tidewater::cursor::resume_scope;
use tidewater::model::{ResumePosition, DEFAULT_RESUME_LIMIT, MAX_RESUME_LIMIT};
use tidewater::{http, CursorKey, ResumableSession, SessionLister};

#[derive(Serialize)]
struct Page<'a> {
    sessions: &'a [ResumableSession],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn handle<S: SessionLister>(store: &S, key: &CursorKey, request: Request) -> Response<Body> {
    http::serve("list-sessions", &request, async {
        let caller = http::caller(&request)?;
        let scope = resume_scope(&caller.customer_id);
        let (limit, after) = http::page_params::<ResumePosition>(&request, key, &scope, DEFAULT_RESUME_LIMIT, MAX_RESUME_LIMIT)?;
        let page = store.list_sessions(&caller, limit, after).await?;
        let next_cursor = page.next.as_ref().map(|position| key.seal(&scope, position));
        Ok(http::json(200, &Page { sessions: &page.sessions, next_cursor }))
    })
    .await
}
