//! Test support: a fresh table in DynamoDB Local per test, and API Gateway requests as the
//! HTTP API's JWT authorizer delivers them.
use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};
use tidewater::{Caller, Config, DynamoStore};
use uuid::Uuid;

/// A store on a table of its own, so tests run in parallel without seeing each other.
pub async fn fresh_store(config: Config) -> Arc<DynamoStore> {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "these tests need DynamoDB Local; run them with `make test`"
    );
    let config = Config { table_name: format!("test-{}", Uuid::new_v4()), ..config };
    let store = DynamoStore::new(tidewater::dynamodb_client().await, config);
    store.create_table().await.expect("create the test table");
    Arc::new(store)
}

pub async fn store() -> Arc<DynamoStore> {
    fresh_store(Config::default()).await
}

pub fn alice() -> Caller {
    Caller::new("alice", Vec::<String>::new())
}

pub fn bob() -> Caller {
    Caller::new("bob", Vec::<String>::new())
}

/// An API Gateway HTTP API (payload 2.0) request carrying `caller`'s verified claims.
pub fn api_request(
    caller: Option<&Caller>,
    method: &str,
    route: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&str>,
) -> Request {
    let mut path_parameters = serde_json::Map::new();
    for (pattern, actual) in route.split('/').zip(path.split('/')) {
        if let Some(name) = pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            path_parameters.insert(name.to_owned(), Value::String(actual.to_owned()));
        }
    }
    let raw_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let query_parameters: serde_json::Map<String, Value> =
        query.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect();
    let authorizer = caller.map(|c| {
        json!({"jwt": {"claims": {
            "sub": c.customer_id,
            "cognito:groups": format!("[{}]", c.roles.join(" ")),
            "iss": "tidewater-local",
            "aud": "tidewater",
        }, "scopes": null}})
    });
    let event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {route}"),
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {"content-type": "application/json", "host": "localhost"},
        "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query_parameters) },
        "pathParameters": if path_parameters.is_empty() { Value::Null } else { Value::Object(path_parameters) },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "authorizer": authorizer,
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": Uuid::new_v4().to_string(),
            "routeKey": format!("{method} {route}"),
            "stage": "$default",
            "time": "26/Nov/2026:19:00:00 +0000",
            "timeEpoch": 1_795_719_600_000u64,
        },
        "body": body,
        "isBase64Encoded": false,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway event")
}

/// Parses an `events/*.json` sample exactly as Lambda would hand it to the function.
pub fn event_request(event_json: &str) -> Request {
    lambda_http::request::from_str(event_json).expect("a valid API Gateway event")
}

pub fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

/// Asserts an error response: the status, and the `{"code","message"}` body.
pub fn assert_error(response: &Response<Body>, status: u16, code: &str) {
    let body = body_json(response);
    assert_eq!(response.status(), status, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
}
