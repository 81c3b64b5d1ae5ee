//! `POST /sessions/{id}/turns`: appends a turn exactly once per `response_id`.
use lambda_http::{Body, Request, Response};
use tidewater::{http, Config, NewTurn, TurnAppender};

pub async fn handle<S: TurnAppender>(store: &S, config: &Config, request: Request) -> Response<Body> {
    http::serve("append-turn", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let turn: NewTurn = http::json_body(&request)?;
        let appended = store.append_turn(&caller, session_id, turn.validate(config)?).await?;
        let status = if appended.duplicate { 200 } else { 201 };
        Ok(http::json(status, &appended))
    })
    .await
}
