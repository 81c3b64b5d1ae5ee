//! `POST /sessions/{id}/turns/{index}/retract`: takes back the newest turn, only while it is
//! still the newest (409 otherwise). It stays in the export, marked, and keeps its response id.
use lambda_http::{Body, Request, Response};
use tidewater::{http, Error, TurnRetractor};

pub async fn handle<S: TurnRetractor>(store: &S, request: Request) -> Response<Body> {
    http::serve("retract-turn", &request, async {
        let caller = http::caller(&request)?;
        let session_id = http::session_id(&request)?;
        let turn_index = http::path_param(&request, "index")
            .and_then(|raw| raw.parse::<u64>().ok())
            .filter(|index| *index >= 1)
            .ok_or_else(|| Error::BadRequest("the turn index must be a whole number from 1".to_owned()))?;
        let retracted = store.retract_turn(&caller, session_id, turn_index).await?;
        Ok(http::json(200, &retracted))
    })
    .await
}
