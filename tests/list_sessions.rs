//! `GET /customers/me/sessions`: resuming by customer from the sparse customer index.
use std::time::Duration;

use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::{Caller, Config, CursorKey, DynamoStore, NewSession, NewTurn, Secret, SessionCreator, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

const SAMPLE_SESSION: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";

fn key() -> CursorKey {
    test_cursor_key()
}

/// A store whose customer index moves on every second of newer activity.
async fn listing_store() -> std::sync::Arc<DynamoStore> {
    fresh_store(Config { resume_order_step: Duration::from_secs(1), ..test_config() }).await
}

async fn new_session(store: &DynamoStore, caller: &Caller, page: &str) -> Uuid {
    // Keep creations a full resume step apart, so that the order is certain.
    store.clock().advance(Duration::from_millis(1_100));
    let page_context = json!({ "page": page }).as_object().cloned();
    store.create_session(caller, NewSession { session_id: None, page_context }).await.unwrap().session_id
}

async fn list(store: &DynamoStore, caller: &Caller, query: &[(&str, &str)]) -> Response<Body> {
    let request = api_request(Some(caller), "GET", "/customers/me/sessions", "/customers/me/sessions", query, None);
    list_sessions::handle(store, &key(), request).await
}

fn ids(body: &Value) -> Vec<String> {
    body["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].as_str().unwrap().to_owned()).collect()
}

/// Follows `next_cursor` to the end; returns every session id and the number of pages.
async fn list_all(store: &DynamoStore, caller: &Caller, limit: &str) -> (Vec<String>, usize) {
    let (mut all, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let mut query = vec![("limit", limit)];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let response = list(store, caller, &query).await;
        assert_eq!(response.status(), 200, "{}", body_json(&response));
        let body = body_json(&response);
        all.extend(ids(&body));
        pages += 1;
        match body.get("next_cursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
            None => return (all, pages),
        }
        assert!(pages < 50, "the listing never ended");
    }
}

#[tokio::test]
async fn sessions_come_newest_activity_first_and_an_append_moves_one_to_the_front() {
    let store = listing_store().await;
    let first = new_session(&store, &alice(), "/a").await;
    let second = new_session(&store, &alice(), "/b").await;
    let third = new_session(&store, &alice(), "/c").await;
    store.clock().advance(Duration::from_millis(1_100));
    let turn = NewTurn { response_id: "r1".into(), role: "user".into(), content: "hi".into(), intent: None, token_count: None, item: None };
    store.append_turn(&alice(), first, turn.validate(store.config()).unwrap()).await.unwrap();

    let response = list(&store, &alice(), &[]).await;

    assert_eq!(response.status(), 200);
    let body = body_json(&response);
    assert_eq!(ids(&body), [first, third, second].map(|s| s.to_string()));
    assert!(body.get("next_cursor").is_none());
    let entry = body["sessions"][0].as_object().unwrap();
    let mut fields: Vec<&str> = entry.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["expires_at", "page_context", "session_id", "turn_count", "updated_at"]);
    assert_eq!(entry["turn_count"], 1);
    assert_eq!(entry["page_context"], json!({"page": "/a"}));
}

#[tokio::test]
async fn a_metadata_update_also_moves_a_session_to_the_front() {
    let store = listing_store().await;
    let older = new_session(&store, &alice(), "/a").await;
    let newer = new_session(&store, &alice(), "/b").await;
    store.clock().advance(Duration::from_millis(1_100));
    let path = format!("/sessions/{older}");
    let body = json!({"page_context": {"page": "/cart"}}).to_string();
    let patch = api_request(Some(&alice()), "PATCH", "/sessions/{id}", &path, &[], Some(&body));
    assert_eq!(update_session::handle(&*store, &default_redactor(), patch).await.status(), 200);

    let body = body_json(&list(&store, &alice(), &[]).await);

    assert_eq!(ids(&body), [older, newer].map(|s| s.to_string()));
    assert_eq!(body["sessions"][0]["page_context"], json!({"page": "/cart"}));
}

#[tokio::test]
async fn cursors_page_through_every_session_exactly_once() {
    let store = listing_store().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(new_session(&store, &alice(), &format!("/{i}")).await.to_string());
    }

    let (seen, pages) = list_all(&store, &alice(), "3").await;

    created.reverse();
    assert_eq!(seen, created);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn expired_sessions_are_left_out_and_short_pages_still_lead_on() {
    let store = listing_store().await;
    let day = store.config().session_ttl;
    new_session(&store, &alice(), "/gone-1").await;
    new_session(&store, &alice(), "/gone-2").await;
    store.clock().advance(day - Duration::from_secs(60));
    let live = new_session(&store, &alice(), "/live").await;
    store.clock().advance(Duration::from_secs(120));

    let (seen, _) = list_all(&store, &alice(), "1").await;

    assert_eq!(seen, [live.to_string()]);
    assert_eq!(ids(&body_json(&list(&store, &alice(), &[]).await)), [live.to_string()]);
}

#[tokio::test]
async fn within_one_resume_step_an_append_does_not_rewrite_the_customer_index() {
    let store = fresh_store(Config::default()).await;
    let first = new_session(&store, &alice(), "/a").await;
    let second = new_session(&store, &alice(), "/b").await;
    let turn = NewTurn { response_id: "r1".into(), role: "user".into(), content: "hi".into(), intent: None, token_count: None, item: None };
    store.reset_consumed();
    store.append_turn(&alice(), first, turn.validate(store.config()).unwrap()).await.unwrap();
    let body = body_json(&list(&store, &alice(), &[]).await);

    assert_eq!(ids(&body), [second, first].map(|s| s.to_string()), "order exact to the hour-long step");
    assert_eq!(body["sessions"][1]["turn_count"], 0, "turn_count as of the last index move");

    store.clock().advance(Duration::from_secs(3_600));
    let turn = NewTurn { response_id: "r2".into(), role: "user".into(), content: "again".into(), intent: None, token_count: None, item: None };
    store.append_turn(&alice(), first, turn.validate(store.config()).unwrap()).await.unwrap();
    let body = body_json(&list(&store, &alice(), &[]).await);
    assert_eq!(ids(&body), [first, second].map(|s| s.to_string()));
    assert_eq!(body["sessions"][0]["turn_count"], 2);
}

#[tokio::test]
async fn guest_sessions_and_other_customers_sessions_never_appear() {
    let store = listing_store().await;
    let own = new_session(&store, &alice(), "/mine").await;
    new_session(&store, &Caller::new("alice", ["guest"]), "/as-guest").await;
    new_session(&store, &bob(), "/bobs").await;

    assert_eq!(ids(&body_json(&list(&store, &alice(), &[]).await)), [own.to_string()]);
    let as_guest = body_json(&list(&store, &Caller::new("alice", ["guest"]), &[]).await);
    assert_eq!(as_guest, json!({"sessions": []}));
}

#[tokio::test]
async fn a_tampered_or_foreign_cursor_is_400() {
    let store = listing_store().await;
    for i in 0..3 {
        new_session(&store, &alice(), &format!("/{i}")).await;
        new_session(&store, &bob(), &format!("/{i}")).await;
    }
    let page = body_json(&list(&store, &alice(), &[("limit", "1")]).await);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (payload, tag) = cursor.split_once('.').unwrap();
    let tampered = format!("f{}.{tag}", &payload[1..]);
    let another_deployment = Secret::new("CURSOR_SECRET", "another-deployment-with-its-own-secret").unwrap();
    let other_key = CursorKey::new(&another_deployment).unwrap().seal("resume:alice", &json!({}));

    assert_eq!(list(&store, &alice(), &[("cursor", &cursor)]).await.status(), 200);
    assert_error(&list(&store, &bob(), &[("cursor", &cursor)]).await, 400, "bad_request");
    for bad in [tampered.as_str(), "garbage", "e30.AAAA", other_key.as_str()] {
        assert_error(&list(&store, &alice(), &[("cursor", bad)]).await, 400, "bad_request");
    }
}

#[tokio::test]
async fn a_limit_outside_1_to_100_is_400() {
    let store = listing_store().await;

    for bad in ["0", "101", "-1", "ten"] {
        assert_error(&list(&store, &alice(), &[("limit", bad)]).await, 400, "bad_request");
    }
    assert_eq!(list(&store, &alice(), &[("limit", "100")]).await.status(), 200);
}

#[tokio::test]
async fn no_identity_is_401() {
    let store = listing_store().await;
    let request = api_request(None, "GET", "/customers/me/sessions", "/customers/me/sessions", &[], None);

    assert_error(&list_sessions::handle(&*store, &key(), request).await, 401, "unauthorized");
}

#[tokio::test]
async fn list_sessions_samples_list_the_sample_session_and_refuse_a_forged_cursor() {
    let store = listing_store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;

    let response = list_sessions::handle(&*store, &key(), event_request(include_str!("../events/list-sessions.json"))).await;
    let forged = list_sessions::handle(&*store, &key(), event_request(include_str!("../events/list-sessions-bad-input.json"))).await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    assert_eq!(ids(&body_json(&response)), [SAMPLE_SESSION]);
    assert_error(&forged, 400, "bad_request");
}

#[tokio::test]
async fn capacity_of_resuming_ten_sessions() {
    let store = listing_store().await;
    for i in 0..10 {
        new_session(&store, &alice(), &format!("/manga/frieren/vol-{i}")).await;
    }
    store.reset_consumed();

    let response = list(&store, &alice(), &[("limit", "20")]).await;

    assert_eq!(body_json(&response)["sessions"].as_array().unwrap().len(), 10);
    let used = store.consumed();
    println!("resume of 10 sessions: {} RCU, {} WCU", used.read_units, used.write_units);
    assert_eq!(used.write_units, 0.0);
}
