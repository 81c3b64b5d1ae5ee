//! `GET /sessions/{id}/turns?cursor=&limit=`: the human handoff export. Every turn in
//! order, paged (limit 1..=500, default 100), with the session and its latest summary.
//! `next_cursor` is present on every page but the last. Owner and support only.
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use tidewater::cursor::export_scope;
use tidewater::model::{ExportPosition, DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT};
use tidewater::{http, CursorKey, TurnExporter, TurnPage};

#[derive(Serialize)]
struct Page<'a> {
    #[serde(flatten)]
    page: &'a TurnPage,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

pub async fn handle<S: TurnExporter>(store: &S, key: &CursorKey, request: Request) -> Response<Body> {
    http::serve("export-turns", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let scope = export_scope(&session_id);
        let (limit, after) = http::page_params::<ExportPosition>(&request, key, &scope, DEFAULT_EXPORT_LIMIT, MAX_EXPORT_LIMIT)?;
        let page = store.export_turns(&caller, session_id, limit, after).await?;
        let next_cursor = page.next.as_ref().map(|position| key.seal(&scope, position));
        let mut response = http::json(200, &Page { page: &page, next_cursor });
        if page.incomplete {
            // A turn of the order has not arrived here (after a failover): never complete.
            response.headers_mut().insert(tidewater::routing::STALE, lambda_http::http::HeaderValue::from_static("true"));
        }
        Ok(response)
    })
    .await
}
