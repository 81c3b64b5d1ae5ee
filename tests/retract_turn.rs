//! `POST /sessions/{id}/turns/{index}/retract` and structured turns (`item`, the `system` and
//! `tool` roles): the server side of the Python adapters' `pop_item` and tool-call history.
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::{Caller, DynamoStore, NewSession, SessionCreator};
use tidewater_tests::*;
use uuid::Uuid;

async fn session_of(store: &DynamoStore, caller: &Caller) -> Uuid {
    store.create_session(caller, NewSession::default()).await.unwrap().session_id
}

async fn append(store: &DynamoStore, caller: &Caller, session: Uuid, body: Value) -> Response<Body> {
    let path = format!("/sessions/{session}/turns");
    let request = api_request(Some(caller), "POST", "/sessions/{id}/turns", &path, &[], Some(&body.to_string()));
    append_turn::handle(store, &default_redactor(), store.config(), request).await
}

async fn say(store: &DynamoStore, session: Uuid, response_id: &str, content: &str) {
    let response = append(store, &alice(), session, json!({"response_id": response_id, "role": "user", "content": content})).await;
    assert_eq!(response.status(), 201, "{}", body_json(&response));
}

async fn retract(store: &DynamoStore, caller: &Caller, session: Uuid, index: &str) -> Response<Body> {
    let path = format!("/sessions/{session}/turns/{index}/retract");
    retract_turn::handle(store, api_request(Some(caller), "POST", "/sessions/{id}/turns/{index}/retract", &path, &[], None)).await
}

async fn context(store: &DynamoStore, session: Uuid, query: &[(&str, &str)]) -> Response<Body> {
    let path = format!("/sessions/{session}/context");
    load_context::handle(store, api_request(Some(&alice()), "GET", "/sessions/{id}/context", &path, query, None)).await
}

async fn export(store: &DynamoStore, session: Uuid) -> Value {
    let path = format!("/sessions/{session}/turns");
    let request = api_request(Some(&alice()), "GET", "/sessions/{id}/turns", &path, &[], None);
    body_json(&export_turns::handle(store, &test_cursor_key(), request).await)
}

fn contents(body: &Value) -> Vec<String> {
    body["turns"].as_array().unwrap().iter().map(|t| t["content"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn retracting_the_newest_turn_leaves_it_out_of_the_context_and_marks_it_in_the_export() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    say(&store, session, "r1", "one").await;
    say(&store, session, "r2", "two").await;

    let retracted = retract(&store, &alice(), session, "2").await;

    assert_eq!(retracted.status(), 200, "{}", body_json(&retracted));
    assert_eq!(body_json(&retracted)["turn_index"], 2);
    let loaded = body_json(&context(&store, session, &[]).await);
    assert_eq!(contents(&loaded), ["one"]);
    assert_eq!(loaded["omitted"], Value::Null);
    assert_eq!(loaded["session"]["turn_count"], 2, "the retracted turn keeps its index");
    let exported = export(&store, session).await;
    assert_eq!(contents(&exported), ["one", "two"]);
    assert_eq!(exported["turns"][1]["retracted_at"], body_json(&retracted)["retracted_at"]);
    assert!(exported["turns"][0].get("retracted_at").is_none());
}

#[tokio::test]
async fn only_the_newest_turn_not_yet_retracted_can_be_retracted() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    for i in 1..=3 {
        say(&store, session, &format!("r{i}"), &format!("turn {i}")).await;
    }

    assert_error(&retract(&store, &alice(), session, "2").await, 409, "conflict");
    assert_eq!(retract(&store, &alice(), session, "3").await.status(), 200);
    assert_eq!(retract(&store, &alice(), session, "2").await.status(), 200);
    assert_error(&retract(&store, &alice(), session, "4").await, 404, "not_found");

    let newest = body_json(&context(&store, session, &[("max_turns", "1")]).await);
    assert_eq!(contents(&newest), ["turn 1"], "a load of one turn skips the retracted ones");
    assert_eq!(newest["omitted"], Value::Null);
}

#[tokio::test]
async fn a_retry_of_a_retracted_turns_append_still_answers_duplicate() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    say(&store, session, "r1", "one").await;
    retract(&store, &alice(), session, "1").await;

    let retry = append(&store, &alice(), session, json!({"response_id": "r1", "role": "user", "content": "one"})).await;

    assert_eq!(retry.status(), 200);
    assert_eq!(body_json(&retry), json!({"turn_index": 1, "duplicate": true}));
    assert!(contents(&body_json(&context(&store, session, &[]).await)).is_empty());
}

#[tokio::test]
async fn retracting_a_retracted_turn_answers_as_the_first_time_and_writes_nothing() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    say(&store, session, "r1", "one").await;
    let first = body_json(&retract(&store, &alice(), session, "1").await);
    store.reset_consumed();

    let again = retract(&store, &alice(), session, "1").await;

    assert_eq!(again.status(), 200);
    assert_eq!(body_json(&again), first);
    assert_eq!(store.consumed().write_units, 0.0);
}

#[tokio::test]
async fn an_append_after_a_retraction_takes_the_next_index() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    say(&store, session, "r1", "one").await;
    say(&store, session, "r2", "two").await;
    retract(&store, &alice(), session, "2").await;

    let next = append(&store, &alice(), session, json!({"response_id": "r3", "role": "user", "content": "three"})).await;

    assert_eq!(body_json(&next)["turn_index"], 3);
    assert_eq!(contents(&body_json(&context(&store, session, &[]).await)), ["one", "three"]);
    assert_eq!(contents(&body_json(&context(&store, session, &[("max_turns", "2")]).await)), ["one", "three"]);
}

#[tokio::test]
async fn a_retraction_changes_the_etag() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    say(&store, session, "r1", "one").await;
    let before = context(&store, session, &[]).await.headers()["etag"].clone();

    retract(&store, &alice(), session, "1").await;

    assert_ne!(context(&store, session, &[]).await.headers()["etag"], before);
}

#[tokio::test]
async fn another_customers_session_or_a_bad_index_is_refused_and_nothing_is_written() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    say(&store, session, "r1", "one").await;
    store.reset_consumed();

    assert_error(&retract(&store, &bob(), session, "1").await, 404, "not_found");
    for index in ["0", "x", "-1", "1.5"] {
        assert_error(&retract(&store, &alice(), session, index).await, 400, "bad_request");
    }

    assert_eq!(store.consumed().write_units, 0.0);
    assert_eq!(contents(&body_json(&context(&store, session, &[]).await)), ["one"]);
}

#[tokio::test]
async fn an_item_is_stored_and_returned_as_sent_with_its_strings_redacted() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    let call = json!({"type": "function_call", "call_id": "call-1", "name": "stock", "arguments": "{\"isbn\":\"978-1\"}", "n": [1, 2.5, true, null]});
    let result = json!({"type": "function_call_output", "call_id": "call-1", "output": "paid with 4111 1111 1111 1111"});

    let first = append(&store, &alice(), session, json!({"response_id": "c1", "role": "assistant", "content": "calls stock", "item": call})).await;
    let second = append(&store, &alice(), session, json!({"response_id": "c2", "role": "tool", "content": "paid", "item": result})).await;
    let system = append(&store, &alice(), session, json!({"response_id": "c3", "role": "system", "content": "You sell manga."})).await;

    assert_eq!(first.status(), 201);
    assert_eq!(body_json(&second)["redactions"], json!({"card": 1}));
    assert_eq!(system.status(), 201);
    let loaded = body_json(&context(&store, session, &[]).await);
    assert_eq!(loaded["turns"][0]["item"], call);
    assert_eq!(loaded["turns"][1]["item"]["output"], "paid with [card ••••1111]");
    assert_eq!(loaded["turns"][1]["role"], "tool");
    assert_eq!(loaded["turns"][2]["role"], "system");
    assert!(loaded["turns"][2].get("item").is_none());
}

#[tokio::test]
async fn the_item_is_part_of_the_payload_a_retry_must_repeat() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    let body = |id: &str| json!({"response_id": "r1", "role": "tool", "content": "4 copies", "item": {"call_id": id}});
    append(&store, &alice(), session, body("call-1")).await;

    assert_eq!(body_json(&append(&store, &alice(), session, body("call-1")).await)["duplicate"], true);
    assert_error(&append(&store, &alice(), session, body("call-2")).await, 409, "conflict");
}

#[tokio::test]
async fn an_item_dynamodb_cannot_store_or_too_large_is_refused_and_nothing_is_written() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    let with = |item: Value| json!({"response_id": "r1", "role": "user", "content": "hi", "item": item});
    let mut deep = json!("leaf");
    for _ in 0..17 {
        deep = json!({"k": deep});
    }
    store.reset_consumed();

    assert_error(&append(&store, &alice(), session, with(json!({"": 1}))).await, 422, "validation_failed");
    assert_error(&append(&store, &alice(), session, with(json!({"n": 1e-200}))).await, 422, "validation_failed");
    assert_error(&append(&store, &alice(), session, with(deep)).await, 422, "validation_failed");
    assert_error(&append(&store, &alice(), session, with(json!({"text": "x".repeat(64 * 1024)}))).await, 413, "too_large");
    assert_error(&append(&store, &alice(), session, with(json!(["not", "an", "object"]))).await, 400, "bad_request");
    assert_error(&append(&store, &alice(), session, json!({"response_id": "r1", "role": "bot", "content": "hi"})).await, 422, "validation_failed");

    assert_eq!(store.consumed().write_units, 0.0);
}

#[tokio::test]
async fn the_sample_events_run_through_the_handler() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;
    append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn.json"))).await;

    let retracted = retract_turn::handle(&*store, event_request(include_str!("../events/retract-turn.json"))).await;
    let bad = retract_turn::handle(&*store, event_request(include_str!("../events/retract-turn-bad-input.json"))).await;

    assert_eq!(retracted.status(), 200, "{}", body_json(&retracted));
    assert_eq!(body_json(&retracted)["turn_index"], 1);
    assert_error(&bad, 400, "bad_request");
}
