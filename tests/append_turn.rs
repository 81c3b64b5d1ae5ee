use std::collections::BTreeSet;
use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;
use tidewater::{Config, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

async fn session_of(store: &DynamoStore, caller: &tidewater::Caller) -> Uuid {
    store.create_session(caller, NewSession::default()).await.unwrap().session_id
}

fn append_body(response_id: &str, content: &str) -> String {
    json!({"response_id": response_id, "role": "user", "content": content}).to_string()
}

async fn append(store: &DynamoStore, caller: &tidewater::Caller, session: Uuid, body: &str) -> lambda_http::Response<lambda_http::Body> {
    let path = format!("/sessions/{session}/turns");
    let request = api_request(Some(caller), "POST", "/sessions/{id}/turns", &path, &[], Some(body));
    append_turn::handle(store, &default_redactor(), store.config(), request).await
}

#[tokio::test]
async fn first_append_returns_201_with_index_one() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;

    let response = append(&store, &alice(), session, &append_body("r1", "hello")).await;

    assert_eq!(response.status(), 201);
    assert_eq!(body_json(&response), json!({"turn_index": 1, "duplicate": false}));
}

#[tokio::test]
async fn retry_with_same_response_id_returns_original_turn_and_writes_nothing() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    append(&store, &alice(), session, &append_body("r1", "hello")).await;
    append(&store, &alice(), session, &append_body("r2", "second")).await;
    store.reset_consumed();

    let retry = append(&store, &alice(), session, &append_body("r1", "hello")).await;

    assert_eq!(retry.status(), 200);
    assert_eq!(body_json(&retry), json!({"turn_index": 1, "duplicate": true}));
    assert_eq!(store.consumed().write_units, 0.0, "a duplicate must write nothing");
    let next = append(&store, &alice(), session, &append_body("r3", "third")).await;
    assert_eq!(body_json(&next)["turn_index"], 3);
}

#[tokio::test]
async fn same_response_id_with_different_payload_is_a_conflict() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    append(&store, &alice(), session, &append_body("r1", "hello")).await;

    let response = append(&store, &alice(), session, &append_body("r1", "something else")).await;

    assert_error(&response, 409, "conflict");
}

#[tokio::test]
async fn fifty_concurrent_retries_of_one_append_write_one_turn() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;

    let attempts = (0..50).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let body = append_body("same-response", "hello");
            let response = append(&store, &alice(), session, &body).await;
            (response.status().as_u16(), body_json(&response))
        })
    });
    let results: Vec<_> = join_all(attempts).await.into_iter().map(Result::unwrap).collect();

    let created = results.iter().filter(|(status, _)| *status == 201).count();
    let duplicates = results.iter().filter(|(status, body)| *status == 200 && body["duplicate"] == true).count();
    assert_eq!((created, duplicates), (1, 49), "{results:?}");
    assert!(results.iter().all(|(_, body)| body["turn_index"] == 1));
    let context = tidewater::ContextLoader::load_context(
        &*store,
        &alice(),
        session,
        tidewater_tests::newest(100, true),
    )
    .await
    .unwrap();
    assert_eq!(context.session.unwrap().turn_count, 1);
    assert_eq!(context.turns.len(), 1);
}

#[tokio::test]
async fn twenty_concurrent_distinct_appends_get_gap_free_indices() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;

    let appends = (0..20).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let response = append(&store, &alice(), session, &append_body(&format!("r{i}"), &format!("turn {i}"))).await;
            assert_eq!(response.status(), 201, "{}", body_json(&response));
            body_json(&response)["turn_index"].as_u64().unwrap()
        })
    });
    let indices: BTreeSet<u64> = join_all(appends).await.into_iter().map(Result::unwrap).collect();

    assert_eq!(indices, (1..=20).collect());
    let context = tidewater::ContextLoader::load_context(
        &*store,
        &alice(),
        session,
        tidewater_tests::newest(100, true),
    )
    .await
    .unwrap();
    assert_eq!(context.session.unwrap().turn_count, 20);
    let stored: Vec<u64> = context.turns.iter().map(|t| t.turn_index).collect();
    assert_eq!(stored, (1..=20).collect::<Vec<_>>());
    let mut contents: Vec<String> = context.turns.into_iter().map(|t| t.content).collect();
    contents.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("turn {i}")).collect();
    expected.sort();
    assert_eq!(contents, expected, "no turn lost or doubled");
}

#[tokio::test]
async fn invalid_turns_get_422_and_write_nothing() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    store.reset_consumed();

    for body in [
        json!({"response_id": "r1", "role": "user", "content": ""}),
        json!({"response_id": "r1", "role": "bot", "content": "hi"}),
        json!({"response_id": "bad id!", "role": "user", "content": "hi"}),
        json!({"response_id": "x".repeat(129), "role": "user", "content": "hi"}),
        json!({"response_id": "r1", "role": "user", "content": "hi", "token_count": -1}),
        json!({"response_id": "r1", "role": "user", "content": "hi", "token_count": 1_000_001}),
    ] {
        let response = append(&store, &alice(), session, &body.to_string()).await;
        assert_error(&response, 422, "validation_failed");
    }
    assert_eq!(store.consumed().write_units, 0.0);
}

#[tokio::test]
async fn content_over_64_kib_gets_413() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;

    let response = append(&store, &alice(), session, &append_body("r1", &"a".repeat(64 * 1024 + 1))).await;

    assert_error(&response, 413, "too_large");
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;

    for body in [
        "{not json".to_owned(),
        json!({"response_id": "r1", "role": "user", "content": 42}).to_string(),
        json!({"response_id": "r1", "role": "user", "content": "hi", "extra": true}).to_string(),
        json!({"role": "user", "content": "hi"}).to_string(),
    ] {
        let response = append(&store, &alice(), session, &body).await;
        assert_error(&response, 400, "bad_request");
    }
    let request = api_request(Some(&alice()), "POST", "/sessions/{id}/turns", "/sessions/not-a-uuid/turns", &[], Some(&append_body("r1", "hi")));
    assert_error(&append_turn::handle(&*store, &default_redactor(), store.config(), request).await, 400, "bad_request");
}

#[tokio::test]
async fn appending_to_an_unknown_or_foreign_session_gets_404() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;

    assert_error(&append(&store, &alice(), Uuid::new_v4(), &append_body("r1", "hi")).await, 404, "not_found");
    assert_error(&append(&store, &bob(), session, &append_body("r1", "hi")).await, 404, "not_found");
}

#[tokio::test]
async fn appending_to_an_expired_session_gets_404() {
    let store = fresh_store(Config { session_ttl: std::time::Duration::from_secs(1), ..test_config() }).await;
    let session = session_of(&store, &alice()).await;
    store.clock().advance(std::time::Duration::from_millis(2100));

    assert_error(&append(&store, &alice(), session, &append_body("r1", "hi")).await, 404, "not_found");
}

#[tokio::test]
async fn a_request_without_claims_is_unauthorized() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    let request = api_request(None, "POST", "/sessions/{id}/turns", &format!("/sessions/{session}/turns"), &[], Some(&append_body("r1", "hi")));

    assert_error(&append_turn::handle(&*store, &default_redactor(), store.config(), request).await, 401, "unauthorized");
}

#[tokio::test]
async fn turns_are_stored_gzip_compressed() {
    let store = store().await;
    let session = session_of(&store, &alice()).await;
    let content = "Do you have the deluxe edition of Vinland Saga? ".repeat(10);
    let draft = NewTurn { response_id: "r1".into(), role: "user".into(), content: content.clone(), intent: None, token_count: Some(12), item: None }
        .validate(store.config())
        .unwrap();
    store.append_turn(&alice(), session, draft).await.unwrap();

    let item = store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(tidewater::keys::session_pk(&session)))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S(tidewater::keys::turn_sk(1)))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    // Compressed, then sealed: opened as a restore would open it, the gzip is what is left.
    let item = store.open_copied_item(&item).await.unwrap();
    let stored = item["content"].as_b().expect("content is binary").as_ref().to_vec();
    assert!(stored.len() < content.len() / 3);
    assert_eq!(tidewater::codec::decompress(&stored).unwrap(), content);
}
