//! API Gateway HTTP API events, as the JWT authorizer delivers them, serialised once.
use tidewater::Caller;
use tidewater_local::apigw::caller_event;

pub fn api_event(
    caller: &Caller,
    method: &str,
    route: &str,
    path: &str,
    raw_query: &str,
    body: Option<String>,
) -> String {
    serde_json::to_string(&caller_event(caller, method, route, path, raw_query, body)).unwrap_or_default()
}
