//! The replicator's control API, on `REPLICATION_PORT` (127.0.0.1 only): `GET /status`,
//! `POST /pause` and `/resume` (optionally `?from=<region>&to=<region>`),
//! `POST /regions/<region>/down` and `/up` (whose answer adds `returned_with`: what the region
//! had written that each other region lacks, [`super::failover`]), `GET /regions/<region>`,
//! and `POST /failover?from=<region>&to=<region>[&fence=off]`. Errors are `{"code","message"}` JSON.
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::failover::{Fence, FailoverError};
use super::Replicator;

impl Replicator {
    /// The control API: see the module docs.
    pub fn control(self: Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route("/status", get(status))
            .route("/pause", post(pause))
            .route("/resume", post(resume))
            .route("/regions/{region}", get(region_status))
            .route("/regions/{region}/{state}", post(region_state))
            .route("/failover", post(failover))
            .fallback(|| async { control_error(StatusCode::NOT_FOUND, "not_found", "no such control route") })
            .with_state(self)
    }
}

type Shared = State<Arc<Replicator>>;

#[derive(Debug, Deserialize)]
struct Directions {
    from: Option<String>,
    to: Option<String>,
    /// `off`: a failover fences nothing, as on AWS ([`Fence::Off`]).
    fence: Option<String>,
}

async fn status(State(replicator): Shared) -> Response<Body> {
    status_of(&replicator)
}

/// What `GET /status` answers, and every call that changes the state answers after it.
fn status_of(replicator: &Replicator) -> Response<Body> {
    Json(status_json(replicator)).into_response()
}

fn status_json(replicator: &Replicator) -> serde_json::Value {
    let mut status = serde_json::to_value(replicator.mesh().status()).unwrap_or_default();
    status["replicated_write_units"] = json!(replicator.replicated_write_units());
    status
}

/// `POST /failover?from=&to=`: the new home map and what `to` lacked of `from` at the move.
async fn failover(State(replicator): Shared, Query(directions): Query<Directions>) -> Response<Body> {
    let (Some(from), Some(to)) = (directions.from, directions.to) else {
        return control_error(StatusCode::BAD_REQUEST, "bad_request", "POST /failover?from=<region>&to=<region>");
    };
    let fence = match directions.fence.as_deref() {
        None | Some("sessions") => Fence::Sessions,
        Some("off") => Fence::Off,
        Some(_) => return control_error(StatusCode::BAD_REQUEST, "bad_request", "fence is `sessions` (the default) or `off`"),
    };
    match replicator.fail_over(&from, &to, fence) {
        Ok(failover) => {
            println!("replicator: failover {from} -> {to}: {}", json!(failover));
            Json(failover).into_response()
        }
        Err(e @ FailoverError::UnknownRegion(_)) => control_error(StatusCode::BAD_REQUEST, "unknown_region", &e.to_string()),
        Err(e @ FailoverError::SameRegion) => control_error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        Err(e) => control_error(StatusCode::CONFLICT, "no_home_map", &e.to_string()),
    }
}

async fn pause(State(replicator): Shared, Query(directions): Query<Directions>) -> Response<Body> {
    set_paused(&replicator, directions, true)
}

async fn resume(State(replicator): Shared, Query(directions): Query<Directions>) -> Response<Body> {
    set_paused(&replicator, directions, false)
}

fn set_paused(replicator: &Replicator, directions: Directions, on: bool) -> Response<Body> {
    let mut mesh = replicator.mesh();
    let region = |name: Option<String>| match name {
        None => Ok(None),
        Some(name) => mesh.region(&name).map(Some).ok_or(name),
    };
    let (from, to) = match (region(directions.from), region(directions.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(name), _) | (_, Err(name)) => {
            return control_error(StatusCode::BAD_REQUEST, "unknown_region", &format!("no region {name:?}"))
        }
    };
    mesh.pause(from, to, on);
    drop(mesh);
    status_of(replicator)
}

async fn region_status(State(replicator): Shared, Path(name): Path<String>) -> Response<Body> {
    let mesh = replicator.mesh();
    match mesh.region(&name) {
        Some(region) => Json(json!({"region": name, "down": mesh.is_down(region)})).into_response(),
        None => control_error(StatusCode::NOT_FOUND, "unknown_region", &format!("no region {name:?}")),
    }
}

async fn region_state(State(replicator): Shared, Path((name, state)): Path<(String, String)>) -> Response<Body> {
    let down = match state.as_str() {
        "down" => true,
        "up" => false,
        _ => return control_error(StatusCode::NOT_FOUND, "not_found", "POST /regions/<region>/down or /up"),
    };
    let mesh = replicator.mesh();
    let Some(region) = mesh.region(&name) else {
        return control_error(StatusCode::NOT_FOUND, "unknown_region", &format!("no region {name:?}"));
    };
    drop(mesh);
    // What the region acknowledged and the others lack, found before any of it is delivered.
    let returned_with = (!down).then(|| replicator.unreplicated_from(region));
    replicator.with_mesh(|mesh| mesh.set_down(region, down));
    let mut status = status_json(&replicator);
    if let Some(returned_with) = returned_with {
        println!("replicator: {name} is back with what the others lack: {}", json!(returned_with));
        status["returned_with"] = json!(returned_with);
    }
    Json(status).into_response()
}

fn control_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tidewater::clock::Clock;
    use tokio::net::TcpListener;

    use crate::mesh::Mesh;
    use crate::replicator::Replica;

    #[tokio::test]
    async fn the_control_api_pauses_directions_and_takes_regions_down_by_name() {
        // Given a replicator of two regions serving its control API,
        let names = vec!["us-east-1".to_owned(), "eu-west-1".to_owned()];
        let replicas = names.iter().map(|name| Replica { name: name.clone(), upstream: "http://127.0.0.1:1".into() });
        let replicator = Replicator::new(replicas.collect(), Mesh::new(names, Default::default(), 1), Clock::system());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, replicator.control()).await });
        let client = reqwest::Client::new();
        let call = |method: reqwest::Method, path: &str| client.request(method, format!("{base}{path}")).send();

        // when one direction is paused and a region taken down, then status shows both,
        let paused: Value =
            call(reqwest::Method::POST, "/pause?from=us-east-1&to=eu-west-1").await.unwrap().json().await.unwrap();
        assert_eq!(paused["paused"], json!([{"from": "us-east-1", "to": "eu-west-1"}]), "a change answers the status");
        call(reqwest::Method::POST, "/regions/eu-west-1/down").await.unwrap();
        let status: Value = call(reqwest::Method::GET, "/status").await.unwrap().json().await.unwrap();
        assert_eq!(status["paused"], json!([{"from": "us-east-1", "to": "eu-west-1"}]));
        assert_eq!(status["down"], json!(["eu-west-1"]));
        assert_eq!(status["replicated_write_units"], json!({"us-east-1": 0.0, "eu-west-1": 0.0}));
        let region: Value = call(reqwest::Method::GET, "/regions/eu-west-1").await.unwrap().json().await.unwrap();
        assert_eq!(region, json!({"region": "eu-west-1", "down": true}));
        // and resuming everything and bringing it up clears them;
        call(reqwest::Method::POST, "/resume").await.unwrap();
        call(reqwest::Method::POST, "/regions/eu-west-1/up").await.unwrap();
        let status: Value = call(reqwest::Method::GET, "/status").await.unwrap().json().await.unwrap();
        assert_eq!((&status["pending"], &status["paused"], &status["down"]), (&json!(0), &json!([]), &json!([])));
        // an unknown region is a JSON 4xx.
        let unknown = call(reqwest::Method::POST, "/pause?from=mars").await.unwrap();
        assert_eq!(unknown.status(), 400);
        assert_eq!(unknown.json::<Value>().await.unwrap()["code"], "unknown_region");
        assert_eq!(call(reqwest::Method::POST, "/regions/mars/down").await.unwrap().status(), 404);
    }
}
