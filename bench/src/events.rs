//! API Gateway HTTP API events, as the JWT authorizer delivers them, serialised once.
use lambda_http::http::{HeaderMap, HeaderValue};
use serde_json::json;
use tidewater::Caller;
use tidewater_local::apigw::{request_event, HttpRequest};

pub fn api_event(
    caller: &Caller,
    method: &str,
    route: &str,
    path: &str,
    raw_query: &str,
    body: Option<String>,
) -> String {
    let path_parameters = route
        .split('/')
        .zip(path.split('/'))
        .filter_map(|(pattern, actual)| {
            let name = pattern.strip_prefix('{')?.strip_suffix('}')?;
            Some((name.to_owned(), actual.to_owned()))
        })
        .collect();
    let claims = json!({"sub": caller.customer_id, "cognito:groups": caller.roles, "iss": "tidewater-local", "aud": "tidewater"});
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let event = request_event(
        HttpRequest {
            method,
            route_path: route,
            path,
            raw_query,
            path_parameters,
            headers,
            body,
            request_id: uuid::Uuid::new_v4().to_string(),
        },
        claims.as_object(),
    );
    serde_json::to_string(&event).unwrap_or_default()
}
