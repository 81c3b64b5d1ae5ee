//! Properties of the HTTP adapter and validation, for any request at all: arbitrary bodies
//! (bytes that are not UTF-8, JSON of the wrong shape, nested hundreds deep, hundreds of KiB),
//! headers, path parameters and query strings, on every route and as every kind of caller.
//!
//! - no handler panics;
//! - no answer is a 5xx;
//! - every error is a `{"code","message"}` body;
//! - a refused request (4xx) writes nothing.
//!
//! The handlers run against DynamoDB Local, each case on the same table. The seed is fixed,
//! so a run is repeatable; a failure prints the smallest request that shows it.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use lambda_http::http::{HeaderName, HeaderValue};
use lambda_http::{Body, Response};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use serde_json::{json, Value};
use tidewater::{Caller, Config, CursorKey, DynamoStore, NewSession, SessionCreator};
use tidewater_tests::*;
use uuid::Uuid;

/// Every route of the API: method and path template.
const ROUTES: [(&str, &str); 15] = [
    ("POST", "/sessions"),
    ("PATCH", "/sessions/{id}"),
    ("DELETE", "/sessions/{id}"),
    ("POST", "/sessions/{id}/turns"),
    ("GET", "/sessions/{id}/turns"),
    ("GET", "/sessions/{id}/context"),
    ("GET", "/customers/me/sessions"),
    ("DELETE", "/customers/me"),
    ("DELETE", "/customers/{id}"),
    ("GET", "/receipts/{receipt_id}"),
    ("GET", "/customers/me/memory"),
    ("GET", "/customers/{id}/memory"),
    ("DELETE", "/customers/me/memory/{fact_id}"),
    ("DELETE", "/customers/{id}/memory/{fact_id}"),
    ("POST", "/sessions/{id}/turns/{index}/retract"),
];

const CASES: u32 = 256;
const SEED: u64 = 0x7_1DE_0A7E;

#[derive(Debug, Clone)]
struct ArbitraryRequest {
    route: usize,
    caller: Option<Caller>,
    path_parameter: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

fn callers() -> impl Strategy<Value = Option<Caller>> {
    prop_oneof![
        Just(Some(alice())),
        Just(Some(bob())),
        Just(Some(Caller::new("carol", ["support"]))),
        Just(Some(Caller::new("privacy-officer-1", ["privacy"]))),
        Just(Some(Caller::new("alice", ["guest"]))),
        Just(None),
        "\\PC{0,12}".prop_map(|sub| Some(Caller::new(sub, Vec::<String>::new()))),
    ]
}

/// Text that is often near what the API expects, and sometimes far from it.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("alice".to_owned()),
        Just("5.0".to_owned()),
        Just("-1".to_owned()),
        Just("1e300".to_owned()),
        Just("true".to_owned()),
        Just("%FF%FE".to_owned()),
        Just("auth0%7C42".to_owned()),
        Just("\u{0}".to_owned()),
        "[0-9]{1,4}",
        "\\PC{0,24}",
        any::<String>(),
        (1usize..200_000).prop_map(|n| "x".repeat(n)),
    ]
}

fn path_parameters(session: Uuid) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(session.to_string()),
        1 => Just(session.simple().to_string()),
        1 => Just(session.urn().to_string()),
        1 => Just(session.braced().to_string()),
        1 => Just(session.to_string().to_uppercase()),
        1 => Just(format!("{session}%00")),
        1 => Just(Uuid::new_v4().to_string()),
        1 => Just("me".to_owned()),
        1 => text(),
    ]
}

/// JSON of any shape, with the API's field names among its keys so that some of it gets past
/// parsing and into validation.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("session_id".to_owned()),
        Just("page_context".to_owned()),
        Just("response_id".to_owned()),
        Just("role".to_owned()),
        Just("content".to_owned()),
        Just("intent".to_owned()),
        Just("token_count".to_owned()),
        Just(String::new()),
        "\\PC{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        Just(json!(1e200)),
        Just(json!(5.0)),
        Just(json!("user")),
        Just(json!("assistant")),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8).prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// An object nested `depth` deep, as a body and as a page_context.
fn deeply_nested() -> impl Strategy<Value = Vec<u8>> {
    (0usize..400, any::<bool>()).prop_map(|(depth, as_page_context)| {
        let nested = format!("{}1{}", "{\"k\":".repeat(depth), "}".repeat(depth));
        if as_page_context {
            format!("{{\"page_context\":{{\"k\":{nested}}}}}").into_bytes()
        } else {
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
        }
    })
}

/// A body each route would accept, with one field replaced by anything.
fn nearly_valid() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(json!({"page_context": {"page": "/manga/frieren"}})),
        Just(json!({"response_id": "r1", "role": "user", "content": "Is volume 3 in stock?", "intent": "stock", "token_count": 3})),
    ];
    (valid, json_value(), 0usize..5).prop_map(|(mut body, value, field)| {
        if let Value::Object(fields) = &mut body {
            let name = fields.keys().nth(field % fields.len()).cloned().unwrap_or_default();
            fields.insert(name, value);
        }
        body.to_string().into_bytes()
    })
}

fn bodies() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Some),
        json_value().prop_map(|v| Some(v.to_string().into_bytes())),
        deeply_nested().prop_map(Some),
        nearly_valid().prop_map(Some),
        (1usize..300_000).prop_map(|n| Some(format!("{{\"page_context\":{{\"k\":\"{}\"}}}}", "y".repeat(n)).into_bytes())),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop_oneof![
        Just("if-match".to_owned()),
        Just("content-type".to_owned()),
        Just("content-encoding".to_owned()),
        Just("authorization".to_owned()),
        "x-[a-z]{1,8}",
    ];
    let value = prop_oneof![
        Just(b"\"1\"".to_vec()),
        Just(b"*".to_vec()),
        Just(b"W/\"1\", \"2\"".to_vec()),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..64),
    ];
    prop::collection::vec((name, value), 0..4)
}

fn requests(session: Uuid) -> impl Strategy<Value = ArbitraryRequest> {
    let query = prop::collection::vec(
        (
            prop_oneof![
                Just("max_turns"),
                Just("max_tokens"),
                Just("consistent"),
                Just("include"),
                Just("max_memory"),
                Just("limit"),
                Just("cursor"),
                Just("x")
            ],
            text(),
        ),
        0..3,
    );
    (0..ROUTES.len(), callers(), path_parameters(session), query, headers(), bodies()).prop_map(
        |(route, caller, path_parameter, query, headers, body)| ArbitraryRequest {
            route,
            caller,
            path_parameter,
            query: query.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            headers,
            body,
        },
    )
}

fn lambda_request(arbitrary: &ArbitraryRequest) -> lambda_http::Request {
    let (method, route) = ROUTES[arbitrary.route];
    let parameter = route.split('/').find_map(|s| s.strip_prefix('{')?.strip_suffix('}'));
    let fact_id = route.contains("{fact_id}").then(|| ("fact_id".to_owned(), arbitrary.path_parameter.clone()));
    // A path and query API Gateway could have sent; the parameters themselves, whatever they
    // hold, go into pathParameters and queryStringParameters, which is what the handlers read.
    let path = route.replace("{id}", "p").replace("{receipt_id}", "p").replace("{fact_id}", "p");
    let anonymous = Caller::new("", Vec::<String>::new());
    let caller = arbitrary.caller.as_ref().unwrap_or(&anonymous);
    let mut event = tidewater_local::apigw::caller_event(caller, method, route, &path, "", None);
    if arbitrary.caller.is_none() {
        event.request_context.authorizer = None;
    }
    event.path_parameters =
        parameter.map(|name| HashMap::from([(name.to_owned(), arbitrary.path_parameter.clone())])).unwrap_or_default();
    // A memory route with both parameters: the fact id is the same arbitrary text.
    event.path_parameters.extend(fact_id);
    // The retract route: the session's first turn when the id is the session's, else the same text.
    if route.contains("{index}") {
        let index = if Uuid::parse_str(&arbitrary.path_parameter).is_ok() { "1".to_owned() } else { arbitrary.path_parameter.clone() };
        event.path_parameters.insert("index".to_owned(), index);
    }
    event.query_string_parameters = arbitrary.query.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>().into();
    match &arbitrary.body {
        None => {}
        Some(bytes) => match String::from_utf8(bytes.clone()) {
            Ok(text) => event.body = Some(text),
            Err(_) => {
                event.body = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
                event.is_base64_encoded = true;
            }
        },
    }
    let mut request = event_request(&serde_json::to_string(&event).expect("a serialisable event"));
    for (name, value) in &arbitrary.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_bytes(value)) {
            request.headers_mut().insert(name, value);
        }
    }
    request
}

async fn handle(store: &DynamoStore, key: &CursorKey, route: usize, request: lambda_http::Request) -> Response<Body> {
    let redactor = default_redactor();
    match ROUTES[route] {
        ("POST", "/sessions") => create_session::handle(store, &redactor, request).await,
        ("PATCH", _) => update_session::handle(store, &redactor, request).await,
        ("DELETE", "/sessions/{id}") => delete_session::handle(store, request).await,
        ("POST", route) if route.ends_with("/retract") => retract_turn::handle(store, request).await,
        ("POST", _) => append_turn::handle(store, &redactor, store.config(), request).await,
        ("GET", "/sessions/{id}/turns") => export_turns::handle(store, key, request).await,
        ("GET", "/sessions/{id}/context") => load_context::handle(store, request).await,
        ("GET", "/customers/me/sessions") => list_sessions::handle(store, key, request).await,
        ("GET", _) if ROUTES[route].1.ends_with("/memory") => list_memory::handle(store, key, request).await,
        ("DELETE", route) if route.contains("/memory/") => delete_memory::handle(store, request).await,
        ("DELETE", _) => purge_customer::handle(store, request).await,
        _ => get_receipt::handle(store, request).await,
    }
}

/// The table's items, in key order.
async fn snapshot(store: &DynamoStore) -> Vec<HashMap<String, AttributeValue>> {
    let mut items = scan_table(store).await;
    let key = |item: &HashMap<String, AttributeValue>| {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        (text("PK"), text("SK"))
    };
    items.sort_by_key(key);
    items
}

#[test]
fn any_request_gets_a_4xx_or_a_success_and_a_refused_one_writes_nothing() {
    // A debug build polls futures in very large stack frames (this test's own future takes
    // 0.8 MB), more than the test harness's 2 MiB threads hold; a release build's are small.
    let property = std::thread::Builder::new().stack_size(64 << 20).spawn(check_any_request).expect("a thread");
    if let Err(panic) = property.join() {
        std::panic::resume_unwind(panic);
    }
}

fn check_any_request() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // Generous deadlines: a slow, shared machine must not turn into 503s here.
    let config = Config { write_timeout: Duration::from_secs(30), load_deadline: Duration::from_secs(30), ..test_config() };
    let store = runtime.block_on(fresh_store(config));
    let key = test_cursor_key();
    let session = runtime
        .block_on(store.create_session(&alice(), NewSession::default()))
        .expect("alice's session")
        .session_id;

    let mut runner = TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(SEED),
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&requests(session), |arbitrary| {
        let request = lambda_request(&arbitrary);
        let (before, response, after) = runtime.block_on(async {
            let before = snapshot(&store).await;
            let response = handle(&store, &key, arbitrary.route, request).await;
            let after = if response.status().is_client_error() { snapshot(&store).await } else { before.clone() };
            (before, response, after)
        });
        let status = response.status();
        prop_assert!(status.as_u16() < 500, "status {status}: {}", String::from_utf8_lossy(response.body().as_ref()));
        if status.is_client_error() {
            let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
            let fields = body.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            prop_assert_eq!(fields, vec!["code".to_owned(), "message".to_owned()], "{} body {}", status, body);
            prop_assert!(before == after, "a {} answer changed the table", status);
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

