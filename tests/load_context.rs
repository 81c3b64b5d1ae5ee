use std::time::Duration;

use serde_json::json;
use tidewater::{Caller, Config, DynamoStore, NewSession, NewTurn, SessionCreator, SummaryWriter, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

async fn session_with_turns(store: &DynamoStore, caller: &Caller, turns: u64) -> Uuid {
    let session = store.create_session(caller, NewSession::default()).await.unwrap().session_id;
    for i in 1..=turns {
        let turn = NewTurn {
            response_id: format!("r{i}"),
            role: if i % 2 == 1 { "user" } else { "assistant" }.into(),
            content: format!("turn number {i}"),
            intent: (i % 2 == 1).then(|| "browse".to_owned()),
            token_count: Some(i as i64),
        };
        store.append_turn(caller, session, turn.validate(store.config()).unwrap()).await.unwrap();
    }
    session
}

async fn load(store: &DynamoStore, caller: &Caller, session: Uuid, query: &[(&str, &str)]) -> lambda_http::Response<lambda_http::Body> {
    let path = format!("/sessions/{session}/context");
    load_context::handle(store, api_request(Some(caller), "GET", "/sessions/{id}/context", &path, query, None)).await
}

#[tokio::test]
async fn a_250_turn_session_with_a_summary_returns_session_summary_and_recent_turns() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 250).await;
    assert!(store.put_summary(session, 240, "Alice is collecting Frieren.").await.unwrap());

    let response = load(&store, &alice(), session, &[("max_turns", "10")]).await;

    assert_eq!(response.status(), 200);
    let body = body_json(&response);
    assert_eq!(body["degraded"], false);
    assert_eq!(body["session"]["session_id"], session.to_string());
    assert_eq!(body["session"]["turn_count"], 250);
    assert_eq!(body["session"]["customer_id"], "alice");
    assert_eq!(body["summary"], json!({"text": "Alice is collecting Frieren.", "through_turn": 240}));
    let indices: Vec<u64> = body["turns"].as_array().unwrap().iter().map(|t| t["turn_index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (241..=250).collect::<Vec<_>>(), "oldest to newest");
    assert_eq!(body["turns"][9]["content"], "turn number 250");
    assert_eq!(body["turns"][9]["role"], "assistant");
    assert_eq!(body["turns"][0]["intent"], "browse");
    assert_eq!(body["turns"][0]["token_count"], 241);
}

#[tokio::test]
async fn default_max_turns_is_ten_and_a_short_session_returns_all() {
    let store = store().await;
    let long = session_with_turns(&store, &alice(), 12).await;
    let short = session_with_turns(&store, &alice(), 3).await;

    assert_eq!(body_json(&load(&store, &alice(), long, &[]).await)["turns"].as_array().unwrap().len(), 10);
    let body = body_json(&load(&store, &alice(), short, &[]).await);
    assert_eq!(body["turns"].as_array().unwrap().len(), 3);
    assert_eq!(body["summary"], json!(null));
}

#[tokio::test]
async fn max_turns_outside_1_to_100_gets_400() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 1).await;

    for bad in ["0", "101", "-1", "ten", ""] {
        assert_error(&load(&store, &alice(), session, &[("max_turns", bad)]).await, 400, "bad_request");
    }
    assert_eq!(load(&store, &alice(), session, &[("max_turns", "100")]).await.status(), 200);
}

#[tokio::test]
async fn another_customers_session_is_404_but_support_may_read_it() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 2).await;

    assert_error(&load(&store, &bob(), session, &[]).await, 404, "not_found");
    let support = Caller::new("carol", ["support"]);
    assert_eq!(load(&store, &support, session, &[]).await.status(), 200);
    assert_error(&load(&store, &alice(), Uuid::new_v4(), &[]).await, 404, "not_found");
}

#[tokio::test]
async fn an_expired_session_is_404_before_dynamodb_deletes_it() {
    let store = fresh_store(Config { session_ttl: Duration::from_secs(5), ..Config::default() }).await;
    let session = session_with_turns(&store, &alice(), 1).await;
    assert_eq!(load(&store, &alice(), session, &[]).await.status(), 200);

    tokio::time::sleep(Duration::from_millis(6100)).await;

    assert_error(&load(&store, &alice(), session, &[]).await, 404, "not_found");
}

#[tokio::test]
async fn etag_changes_with_every_write_to_meta() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 1).await;
    let etag = |r: &lambda_http::Response<lambda_http::Body>| r.headers()["etag"].to_str().unwrap().to_owned();

    let first = etag(&load(&store, &alice(), session, &[]).await);
    assert_eq!(first, etag(&load(&store, &alice(), session, &[]).await), "reads do not change it");
    let turn = NewTurn { response_id: "next".into(), role: "user".into(), content: "more".into(), intent: None, token_count: None };
    store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
    let second = etag(&load(&store, &alice(), session, &[]).await);
    store.put_summary(session, 2, "short").await.unwrap();
    let third = etag(&load(&store, &alice(), session, &[]).await);

    assert_ne!(first, second);
    assert_ne!(second, third);
}

#[tokio::test]
async fn an_unreachable_dynamodb_gives_a_degraded_200() {
    let store = unreachable_store().await;

    let response = load(&store, &alice(), Uuid::new_v4(), &[]).await;

    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response), json!({"session": null, "summary": null, "turns": [], "degraded": true}));
}

#[tokio::test]
async fn writes_to_an_unreachable_dynamodb_give_a_retryable_503() {
    let store = unreachable_store().await;

    let response = create_session::handle(&store, &default_redactor(), api_request(Some(&alice()), "POST", "/sessions", "/sessions", &[], None)).await;

    assert_error(&response, 503, "unavailable");
    assert_eq!(response.headers()["retry-after"], "1");
}

#[tokio::test]
async fn summaries_only_move_forward() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 40).await;

    assert!(store.put_summary(session, 20, "first window").await.unwrap());
    assert!(!store.put_summary(session, 20, "first window again").await.unwrap());
    assert!(store.put_summary(session, 40, "second window").await.unwrap());
    assert!(!store.put_summary(session, 20, "late redelivery").await.unwrap());

    let body = body_json(&load(&store, &alice(), session, &[]).await);
    assert_eq!(body["summary"], json!({"text": "second window", "through_turn": 40}));
}
