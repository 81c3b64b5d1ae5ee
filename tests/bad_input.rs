//! Bad input found by fuzzing the API against openapi.yaml: each answer is a 4xx with a
//! `{"code","message"}` body, and nothing is written; never a 503 for a request that can
//! never succeed.
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::model::MAX_PAGE_CONTEXT_NESTING;
use tidewater::{Caller, Config, DynamoStore, NewSession, SessionCreator};
use tidewater_tests::*;
use uuid::Uuid;

async fn create(store: &DynamoStore, caller: &Caller, body: &str) -> Response<Body> {
    create_session::handle(store, &default_redactor(), api_request(Some(caller), "POST", "/sessions", "/sessions", &[], Some(body))).await
}

async fn patch(store: &DynamoStore, caller: &Caller, session: &str, body: &str, if_match: Option<&str>) -> Response<Body> {
    let path = format!("/sessions/{session}");
    let mut request = api_request(Some(caller), "PATCH", "/sessions/{id}", &path, &[], Some(body));
    if let Some(tag) = if_match {
        request.headers_mut().insert("if-match", tag.parse().unwrap());
    }
    update_session::handle(store, &default_redactor(), request).await
}

async fn append(store: &DynamoStore, caller: &Caller, session: &str, body: &str) -> Response<Body> {
    let path = format!("/sessions/{session}/turns");
    let request = api_request(Some(caller), "POST", "/sessions/{id}/turns", &path, &[], Some(body));
    append_turn::handle(store, &default_redactor(), store.config(), request).await
}

async fn delete(store: &DynamoStore, caller: &Caller, session: Uuid) -> Response<Body> {
    let path = format!("/sessions/{session}");
    delete_session::handle(store, api_request(Some(caller), "DELETE", "/sessions/{id}", &path, &[], None)).await
}

async fn new_session(store: &DynamoStore, caller: &Caller) -> Uuid {
    store.create_session(caller, NewSession::default()).await.unwrap().session_id
}

/// A page_context whose objects nest `levels` deep, the page_context itself included.
fn nested(levels: usize) -> Value {
    let mut value = json!("leaf");
    for _ in 0..levels {
        value = json!({ "k": value });
    }
    value
}

fn page_contexts_that_break_a_storage_rule() -> Vec<(&'static str, String)> {
    vec![
        ("empty key", r#"{"page_context": {"": 1}}"#.to_owned()),
        ("nested empty key", r#"{"page_context": {"cart": [{"items": {"": "x"}}]}}"#.to_owned()),
        ("number too large", r#"{"page_context": {"n": 1e200}}"#.to_owned()),
        ("number too small", r#"{"page_context": {"n": -1e-200}}"#.to_owned()),
        ("nested too deep for DynamoDB", json!({ "page_context": nested(32) }).to_string()),
        ("nested deeper than our limit", json!({ "page_context": nested(MAX_PAGE_CONTEXT_NESTING + 1) }).to_string()),
    ]
}

#[tokio::test]
async fn a_page_context_that_breaks_a_storage_rule_is_422_on_create_and_writes_nothing() {
    let store = store().await;

    for (rule, body) in page_contexts_that_break_a_storage_rule() {
        let response = create(&store, &alice(), &body).await;

        assert_error(&response, 422, "validation_failed");
        let message = body_json(&response)["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("page_context"), "{rule}: {message}");
    }
    assert!(scan_table(&store).await.is_empty());
}

#[tokio::test]
async fn a_page_context_that_breaks_a_storage_rule_is_422_on_patch_and_changes_nothing() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let before = scan_table(&store).await;

    for (rule, body) in page_contexts_that_break_a_storage_rule() {
        let response = patch(&store, &alice(), &session.to_string(), &body, None).await;
        assert_error(&response, 422, "validation_failed");
        assert!(body_json(&response)["message"].as_str().unwrap_or_default().contains("page_context"), "{rule}");
    }
    assert_eq!(scan_table(&store).await, before);
}

#[tokio::test]
async fn a_page_context_at_each_limit_is_stored_faithfully() {
    let store = store().await;
    let page_context = json!({
        "deep": nested(MAX_PAGE_CONTEXT_NESTING - 1),
        "big": 9.999_999_999_999_99e125,
        "small": -2e-130,
        "zero": -0.0,
        "huge_integer": u64::MAX,
        "empty_value": "",
    });

    let created = create(&store, &alice(), &json!({ "page_context": page_context }).to_string()).await;

    assert_eq!(created.status(), 201, "{}", body_json(&created));
    let session = body_json(&created)["session_id"].as_str().unwrap().parse::<Uuid>().unwrap();
    let context = tidewater::ContextLoader::load_context(&*store, &alice(), session, newest(1, true)).await.unwrap();
    let stored = Value::Object(context.session.unwrap().page_context);
    assert_eq!(stored["deep"], page_context["deep"]);
    // Within one unit in the last place: serde_json's default float parsing is not exact.
    let close = |value: &Value, expected: f64| value.as_f64().is_some_and(|v| ((v - expected) / expected).abs() < 1e-15);
    assert!(close(&stored["big"], 9.999_999_999_999_99e125), "{}", stored["big"]);
    assert!(close(&stored["small"], -2e-130), "{}", stored["small"]);
    assert_eq!(stored["huge_integer"].as_u64(), Some(u64::MAX));
    assert_eq!(stored["empty_value"], "");
}

#[tokio::test]
async fn a_value_dynamodb_refuses_past_our_own_checks_is_422_not_503() {
    // A `sub` over 2 KiB makes a customer-index key DynamoDB refuses with a ValidationException.
    let store = store().await;
    let long_sub = Caller::new("x".repeat(3000), Vec::<String>::new());

    let response = create(&store, &long_sub, "{}").await;

    assert_error(&response, 422, "validation_failed");
    assert!(response.headers().get("retry-after").is_none());
    assert!(scan_table(&store).await.is_empty());
}

#[tokio::test]
async fn json_arrays_are_not_request_objects() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let before = scan_table(&store).await;

    assert_error(&create(&store, &alice(), "[null,null]").await, 400, "bad_request");
    assert_error(&create(&store, &alice(), "[]").await, 400, "bad_request");
    assert_error(&append(&store, &alice(), &session.to_string(), r#"["r1","user","hello",null,null]"#).await, 400, "bad_request");
    assert_error(&patch(&store, &alice(), &session.to_string(), r#"[{"page": "/"}]"#, None).await, 400, "bad_request");
    for scalar in ["1", "\"text\"", "true", "null"] {
        assert_error(&create(&store, &alice(), scalar).await, 400, "bad_request");
    }
    assert_eq!(scan_table(&store).await, before);
}

#[tokio::test]
async fn null_is_refused_for_every_field() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let before = scan_table(&store).await;

    for body in [r#"{"session_id": null}"#, r#"{"page_context": null}"#] {
        let response = create(&store, &alice(), body).await;
        assert_error(&response, 400, "bad_request");
        assert!(body_json(&response)["message"].as_str().unwrap_or_default().contains("null"));
    }
    for field in ["intent", "token_count"] {
        let mut body = json!({"response_id": "r1", "role": "user", "content": "hi"});
        body[field] = Value::Null;
        assert_error(&append(&store, &alice(), &session.to_string(), &body.to_string()).await, 400, "bad_request");
    }
    assert_error(&patch(&store, &alice(), &session.to_string(), r#"{"page_context": null}"#, None).await, 400, "bad_request");
    assert_eq!(scan_table(&store).await, before);
}

#[tokio::test]
async fn null_inside_page_context_is_still_free_form_json() {
    let store = store().await;

    let response = create(&store, &alice(), r#"{"page_context": {"coupon": null}}"#).await;

    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_token_count_with_a_zero_fraction_is_an_integer() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let body = |token_count: &str| format!(r#"{{"response_id": "r{}", "role": "user", "content": "hi", "token_count": {token_count}}}"#, token_count.len());

    assert_eq!(append(&store, &alice(), &session.to_string(), &body("5.0")).await.status(), 201);
    assert_error(&append(&store, &alice(), &session.to_string(), &body("5.5")).await, 400, "bad_request");
    assert_error(&append(&store, &alice(), &session.to_string(), &body("1e300")).await, 422, "validation_failed");

    let context = tidewater::ContextLoader::load_context(&*store, &alice(), session, newest(10, true)).await.unwrap();
    assert_eq!(context.turns.len(), 1);
    assert_eq!(context.turns[0].token_count, Some(5));
}

#[tokio::test]
async fn intent_is_limited_in_characters_not_bytes() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let body = |id: &str, intent: String| json!({"response_id": id, "role": "user", "content": "hi", "intent": intent}).to_string();

    // 256 characters of 3 bytes each: 768 bytes, within the schema's maxLength of 256.
    assert_eq!(append(&store, &alice(), &session.to_string(), &body("r1", "在".repeat(256))).await.status(), 201);
    assert_error(&append(&store, &alice(), &session.to_string(), &body("r2", "在".repeat(257))).await, 422, "validation_failed");
}

#[tokio::test]
async fn only_the_hyphenated_uuid_form_is_a_session_id() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let forms = [
        session.simple().to_string(),
        session.urn().to_string(),
        session.braced().to_string(),
    ];

    for form in &forms {
        assert_error(&append(&store, &alice(), form, r#"{"response_id":"r1","role":"user","content":"hi"}"#).await, 400, "bad_request");
        assert_error(&patch(&store, &alice(), form, r#"{"page_context": {}}"#, None).await, 400, "bad_request");
        assert_error(&create(&store, &alice(), &json!({ "session_id": form }).to_string()).await, 400, "bad_request");
    }
    let upper = session.hyphenated().to_string().to_uppercase();
    assert_eq!(patch(&store, &alice(), &upper, r#"{"page_context": {}}"#, None).await.status(), 200);
}

#[tokio::test]
async fn a_malformed_if_match_on_a_missing_or_foreign_session_is_404() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let body = r#"{"page_context": {}}"#;

    for tag in ["\"abc\"", "", "\"1", "W/x"] {
        assert_error(&patch(&store, &bob(), &session.to_string(), body, Some(tag)).await, 404, "not_found");
        assert_error(&patch(&store, &alice(), &Uuid::new_v4().to_string(), body, Some(tag)).await, 404, "not_found");
        assert_error(&patch(&store, &alice(), &session.to_string(), body, Some(tag)).await, 412, "precondition_failed");
    }
}

#[tokio::test]
async fn deleting_a_missing_or_a_foreign_session_answers_the_same() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;

    let foreign = delete(&store, &bob(), session).await;
    let missing = delete(&store, &bob(), Uuid::new_v4()).await;

    assert_eq!((foreign.status(), foreign.body().as_ref().to_vec()), (missing.status(), missing.body().as_ref().to_vec()));
    assert_eq!(foreign.status(), 204);
    let session_pk = tidewater::keys::session_pk(&session);
    let keys: Vec<String> = scan_table(&store)
        .await
        .iter()
        .filter(|item| item["PK"].as_s().is_ok_and(|pk| *pk == session_pk))
        .filter_map(|item| item["SK"].as_s().ok().cloned())
        .collect();
    assert_eq!(keys, ["~META"], "alice's session is untouched");
}

#[tokio::test]
async fn a_percent_encoded_customer_id_is_decoded_whether_or_not_the_gateway_did() {
    for path in ["/customers/auth0%7C42", "/customers/auth0|42"] {
        let store = store().await;
        let customer = Caller::new("auth0|42", Vec::<String>::new());
        new_session(&store, &customer).await;
        let officer = Caller::new("privacy-officer-1", ["privacy"]);

        let response =
            purge_customer::handle(&*store, api_request(Some(&officer), "DELETE", "/customers/{id}", path, &[], None)).await;

        assert_eq!(response.status(), 200, "{path}: {}", body_json(&response));
        assert_eq!(body_json(&response)["sessions_deleted"], 1, "{path}");
        let left = scan_table(&store).await;
        assert!(left.iter().all(|item| !item["PK"].as_s().is_ok_and(|pk| pk.starts_with("SESSION#"))), "{path}");
    }
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_once_decoded_is_taken_as_it_is() {
    let store = store().await;
    let customer = Caller::new("%FF%FE", Vec::<String>::new());
    new_session(&store, &customer).await;
    let officer = Caller::new("privacy-officer-1", ["privacy"]);

    let response =
        purge_customer::handle(&*store, api_request(Some(&officer), "DELETE", "/customers/{id}", "/customers/%FF%FE", &[], None)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response)["sessions_deleted"], 1);
}

#[tokio::test]
async fn a_validation_exception_from_any_write_is_a_client_error() {
    // A table name DynamoDB refuses: every call is a ValidationException.
    let refused = DynamoStore::new(tidewater::dynamodb_client().await, Config { table_name: "x".into(), ..test_config() }.with_receipt_salt(test_receipt_salt()));

    let response = create(&refused, &alice(), "{}").await;

    assert_error(&response, 422, "validation_failed");
}

