//! `POST /sessions/{id}/turns`: appends a turn exactly once per `response_id`, its content
//! redacted first, so the original never reaches the table.
use lambda_http::{Body, Request, Response};
use tidewater::redact::{needs_order_numbers, redact_turn, OrderNumbers, Redactor};
use tidewater::{http, AppendAnswer, Config, NewTurn, PageContextReader, TurnAppender};

pub async fn handle<S, R>(store: &S, redactor: &R, config: &Config, request: Request) -> Response<Body>
where
    S: TurnAppender + PageContextReader,
    R: Redactor,
{
    http::serve("append-turn", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let turn: NewTurn = http::json_body(&request)?;
        let turn = turn.validate(config)?;
        let orders = if needs_order_numbers(redactor) {
            store.page_context(&caller, session_id).await?.map(|p| OrderNumbers::declared_in(&p)).unwrap_or_default()
        } else {
            OrderNumbers::default()
        };
        let (turn, redactions) = redact_turn(redactor, &orders, turn).await;
        let appended = store.append_turn(&caller, session_id, turn).await?;
        let status = if appended.duplicate { 200 } else { 201 };
        Ok(http::json(status, &AppendAnswer { appended, redactions }))
    })
    .await
}
