//! `PATCH /sessions/{id}`: page_context updates, sliding expiry and If-Match.
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::{Caller, Config, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

const SAMPLE_SESSION: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";

async fn new_session(store: &DynamoStore, caller: &Caller) -> Uuid {
    let page_context = json!({"page": "/manga/frieren/vol-3"}).as_object().cloned();
    store.create_session(caller, NewSession { session_id: None, page_context }).await.unwrap().session_id
}

async fn append(store: &DynamoStore, caller: &Caller, session: Uuid, response_id: &str) {
    let turn = NewTurn {
        response_id: response_id.into(),
        role: "user".into(),
        content: "Is volume 3 in stock?".into(),
        intent: None,
        token_count: None,
        item: None,
    };
    store.append_turn(caller, session, turn.validate(store.config()).unwrap()).await.unwrap();
}

async fn patch(store: &DynamoStore, caller: &Caller, session: Uuid, body: &str, if_match: Option<&str>) -> Response<Body> {
    let path = format!("/sessions/{session}");
    let mut request = api_request(Some(caller), "PATCH", "/sessions/{id}", &path, &[], Some(body));
    if let Some(tag) = if_match {
        request.headers_mut().insert("if-match", tag.parse().unwrap());
    }
    update_session::handle(store, &default_redactor(), request).await
}

async fn load(store: &DynamoStore, caller: &Caller, session: Uuid) -> Response<Body> {
    let path = format!("/sessions/{session}/context");
    let request = api_request(Some(caller), "GET", "/sessions/{id}/context", &path, &[("consistent", "true")], None);
    load_context::handle(store, request).await
}

fn etag(response: &Response<Body>) -> String {
    response.headers()["etag"].to_str().unwrap().to_owned()
}

fn page(value: Value) -> String {
    json!({ "page_context": value }).to_string()
}

async fn raw_meta(store: &DynamoStore, session: Uuid) -> std::collections::HashMap<String, AttributeValue> {
    store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key("PK", AttributeValue::S(format!("SESSION#{session}")))
        .key("SK", AttributeValue::S(tidewater::keys::META.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test]
async fn patch_with_the_current_etag_replaces_page_context_slides_expiry_and_keeps_turns() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    append(&store, &alice(), session, "r1").await;
    append(&store, &alice(), session, "r2").await;
    let before = load(&store, &alice(), session).await;
    let before_session = body_json(&before)["session"].clone();
    store.clock().advance(Duration::from_millis(1100));

    let response = patch(&store, &alice(), session, &page(json!({"page": "/cart", "items": 2})), Some(&etag(&before))).await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    let body = body_json(&response);
    assert_eq!(body["page_context"], json!({"page": "/cart", "items": 2}));
    assert_eq!(body["turn_count"], 2, "never resets turn_count");
    assert_eq!(body["session_id"], session.to_string());
    assert_eq!(body["created_at"], before_session["created_at"]);
    assert!(body["updated_at"].as_str() > before_session["updated_at"].as_str());
    assert!(body["expires_at"].as_str() > before_session["expires_at"].as_str(), "expiry slides");
    assert_eq!(etag(&before), "\"3\"");
    assert_eq!(etag(&response), "\"4\"");

    let after = load(&store, &alice(), session).await;
    assert_eq!(body_json(&after)["session"], body);
    assert_eq!(etag(&after), "\"4\"");
    assert_eq!(body_json(&after)["turns"].as_array().unwrap().len(), 2);
    let meta = raw_meta(&store, session).await;
    assert_eq!(meta["GSI1SK"], AttributeValue::S(body["updated_at"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn a_stale_etag_gets_412_and_changes_nothing() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let stale = etag(&load(&store, &alice(), session).await);
    append(&store, &alice(), session, "r1").await;
    store.reset_consumed();

    let response = patch(&store, &alice(), session, &page(json!({"page": "/lost-update"})), Some(&stale)).await;

    assert_error(&response, 412, "precondition_failed");
    assert_eq!(store.consumed().read_units, 0.0, "ALL_OLD told 412 from 404 without a second read");
    let context = body_json(&load(&store, &alice(), session).await);
    assert_eq!(context["session"]["page_context"], json!({"page": "/manga/frieren/vol-3"}));
}

#[tokio::test]
async fn without_if_match_the_last_writer_wins() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    append(&store, &alice(), session, "r1").await;

    let first = patch(&store, &alice(), session, &page(json!({"page": "/a"})), None).await;
    let second = patch(&store, &alice(), session, &page(json!({"page": "/b"})), None).await;

    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 200);
    let context = body_json(&load(&store, &alice(), session).await);
    assert_eq!(context["session"]["page_context"], json!({"page": "/b"}));
    assert_eq!(context["session"]["turn_count"], 1);
}

#[tokio::test]
async fn weak_bare_listed_and_star_etags_are_understood() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;

    for (tag, status) in [("W/\"1\"", 200), ("2", 200), ("\"9\", \"3\"", 200), ("*", 200), ("\"1\"", 412)] {
        let response = patch(&store, &alice(), session, &page(json!({"tag": tag})), Some(tag)).await;
        assert_eq!(response.status(), status, "If-Match: {tag}");
    }
}

#[tokio::test]
async fn a_malformed_if_match_is_412() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;

    for tag in ["\"abc\"", "\"-1\"", "", "\"1"] {
        assert_error(&patch(&store, &alice(), session, &page(json!({})), Some(tag)).await, 412, "precondition_failed");
    }
}

#[tokio::test]
async fn other_customers_support_and_unknown_sessions_get_404() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let support = Caller::new("carol", ["support"]);

    assert_error(&patch(&store, &bob(), session, &page(json!({})), None).await, 404, "not_found");
    assert_error(&patch(&store, &bob(), session, &page(json!({})), Some("\"1\"")).await, 404, "not_found");
    assert_error(&patch(&store, &support, session, &page(json!({})), None).await, 404, "not_found");
    assert_error(&patch(&store, &alice(), Uuid::new_v4(), &page(json!({})), None).await, 404, "not_found");
    assert_error(&patch(&store, &alice(), Uuid::new_v4(), &page(json!({})), Some("\"1\"")).await, 404, "not_found");
    let context = body_json(&load(&store, &alice(), session).await);
    assert_eq!(context["session"]["page_context"], json!({"page": "/manga/frieren/vol-3"}));
}

#[tokio::test]
async fn an_expired_session_is_404_even_with_its_etag() {
    let store = fresh_store(Config { session_ttl: Duration::from_secs(1), ..test_config() }).await;
    let session = new_session(&store, &alice()).await;
    store.clock().advance(Duration::from_millis(2100));

    assert_error(&patch(&store, &alice(), session, &page(json!({})), None).await, 404, "not_found");
    assert_error(&patch(&store, &alice(), session, &page(json!({})), Some("\"1\"")).await, 404, "not_found");
}

#[tokio::test]
async fn malformed_bodies_and_ids_get_400() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;

    for body in [
        "".to_owned(),
        "{}".to_owned(),
        "[".to_owned(),
        json!({"page_context": null}).to_string(),
        json!({"page_context": "a string"}).to_string(),
        json!({"page_context": {}, "turn_count": 0}).to_string(),
    ] {
        assert_error(&patch(&store, &alice(), session, &body, None).await, 400, "bad_request");
    }
    let request = api_request(Some(&alice()), "PATCH", "/sessions/{id}", "/sessions/nope", &[], Some(&page(json!({}))));
    assert_error(&update_session::handle(&*store, &default_redactor(), request).await, 400, "bad_request");
}

#[tokio::test]
async fn a_page_context_over_16_kib_is_413() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;

    let response = patch(&store, &alice(), session, &page(json!({"blob": "x".repeat(17 * 1024)})), None).await;

    assert_error(&response, 413, "too_large");
}

#[tokio::test]
async fn no_identity_is_401() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let path = format!("/sessions/{session}");

    let response = update_session::handle(&*store, &default_redactor(), api_request(None, "PATCH", "/sessions/{id}", &path, &[], Some("{}"))).await;

    assert_error(&response, 401, "unauthorized");
}

#[tokio::test]
async fn a_guest_session_is_updated_and_stays_out_of_the_customer_index() {
    let store = store().await;
    let guest = Caller::new("guest-7", ["guest"]);
    let session = new_session(&store, &guest).await;

    let response = patch(&store, &guest, session, &page(json!({"page": "/home"})), Some("\"1\"")).await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    let meta = raw_meta(&store, session).await;
    assert!(!meta.contains_key("GSI1PK") && !meta.contains_key("GSI1SK"), "{meta:?}");
}

#[tokio::test]
async fn a_session_created_as_guest_is_found_when_the_same_sub_signs_in() {
    let store = store().await;
    let session = new_session(&store, &Caller::new("dana", ["guest"])).await;

    let response = patch(&store, &Caller::new("dana", Vec::<String>::new()), session, &page(json!({"p": 1})), None).await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    assert!(!raw_meta(&store, session).await.contains_key("GSI1SK"));
}

#[tokio::test]
async fn update_session_sample_updates_the_sample_session() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;

    let response = update_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/update-session.json"))).await;
    let replay = update_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/update-session.json"))).await;
    let bad = update_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/update-session-bad-input.json"))).await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    assert_eq!(body_json(&response)["session_id"], SAMPLE_SESSION);
    assert_eq!(body_json(&response)["page_context"]["page"], "/manga/frieren/vol-4");
    assert_eq!(etag(&response), "\"2\"");
    assert_eq!((replay.status().as_u16(), etag(&replay)), (200, "\"2\"".to_owned()), "a replay is a retry: applied once");
    assert_eq!(body_json(&replay), body_json(&response));
    assert_error(&bad, 400, "bad_request");
}

#[tokio::test]
async fn capacity_of_a_metadata_update() {
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let guest = Caller::new("guest-9", ["guest"]);
    let guest_session = new_session(&store, &guest).await;
    let body = page(json!({"page": "/manga/frieren/vol-4", "locale": "en-GB", "cart_items": 2}));

    store.reset_consumed();
    assert_eq!(patch(&store, &alice(), session, &body, Some("\"1\"")).await.status(), 200);
    let customer = store.consumed();
    store.reset_consumed();
    assert_eq!(patch(&store, &guest, guest_session, &body, None).await.status(), 200);
    let guest_used = store.consumed();

    println!("PATCH of a customer session: {} RCU, {} WCU", customer.read_units, customer.write_units);
    println!("PATCH of a guest session: {} RCU, {} WCU", guest_used.read_units, guest_used.write_units);
    assert_eq!(customer.read_units, 0.0);
}

#[tokio::test]
async fn a_retried_patch_whose_first_answer_was_lost_succeeds() {
    // Given a PATCH with If-Match that DynamoDB applied but whose answer never came back,
    let store = store().await;
    let session = new_session(&store, &alice()).await;
    let lossy = store_through_proxy(&store, "lost_answer@UpdateItem=1").await;
    let change = page(json!({"page": "/cart", "items": 2}));
    let first = patch(&lossy, &alice(), session, &change, Some("\"1\"")).await;
    assert_error(&first, 503, "unavailable");
    assert_eq!(raw_meta(&store, session).await["version"], AttributeValue::N("2".into()), "the first attempt was applied");

    // when the client retries the same change with the same If-Match,
    let retry = patch(&store, &alice(), session, &change, Some("\"1\"")).await;

    // then it gets the answer the first attempt would have had, and nothing is written twice.
    assert_eq!(retry.status(), 200, "{}", body_json(&retry));
    assert_eq!(body_json(&retry)["page_context"], json!({"page": "/cart", "items": 2}));
    assert_eq!(etag(&retry), "\"2\"");
    assert_eq!(raw_meta(&store, session).await["version"], AttributeValue::N("2".into()));

    // A retry after an append still succeeds, and answers the session as it now is;
    append(&store, &alice(), session, "r1").await;
    let later = patch(&store, &alice(), session, &change, Some("\"1\"")).await;
    assert_eq!(later.status(), 200, "{}", body_json(&later));
    assert_eq!((etag(&later), body_json(&later)["turn_count"].clone()), ("\"3\"".to_owned(), json!(1)));
    // another change with the same stale ETag is still refused.
    let other = patch(&store, &alice(), session, &page(json!({"page": "/other"})), Some("\"1\"")).await;
    assert_error(&other, 412, "precondition_failed");
    assert_eq!(body_json(&load(&store, &alice(), session).await)["session"]["page_context"], json!({"page": "/cart", "items": 2}));
}
