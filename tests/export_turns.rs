//! `GET /sessions/{id}/turns`: the paged human handoff export.
use std::time::Duration;

use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::{Caller, Config, CursorKey, DynamoStore, NewSession, NewTurn, SessionCreator, SummaryWriter, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

/// Lambda's response payload limit, which the whole JSON envelope must stay under.
const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

fn key() -> CursorKey {
    test_cursor_key()
}

async fn session_with(store: &DynamoStore, caller: &Caller, contents: impl IntoIterator<Item = String>) -> Uuid {
    let page_context = json!({"page": "/manga/frieren"}).as_object().cloned();
    let session = store.create_session(caller, NewSession { session_id: None, page_context }).await.unwrap().session_id;
    for (i, content) in contents.into_iter().enumerate() {
        let turn = NewTurn {
            response_id: format!("r{}", i + 1),
            role: if i % 2 == 0 { "user" } else { "assistant" }.into(),
            content,
            intent: None,
            token_count: None,
            item: None,
        };
        store.append_turn(caller, session, turn.validate(store.config()).unwrap()).await.unwrap();
    }
    session
}

fn numbered(count: usize) -> impl Iterator<Item = String> {
    (1..=count).map(|i| format!("turn number {i}"))
}

async fn export(store: &DynamoStore, caller: &Caller, session: Uuid, query: &[(&str, &str)]) -> Response<Body> {
    let path = format!("/sessions/{session}/turns");
    export_turns::handle(store, &key(), api_request(Some(caller), "GET", "/sessions/{id}/turns", &path, query, None)).await
}

fn indices(body: &Value) -> Vec<u64> {
    body["turns"].as_array().unwrap().iter().map(|t| t["turn_index"].as_u64().unwrap()).collect()
}

/// Follows `next_cursor` to the end; returns each page's body and its size in bytes.
async fn export_all(store: &DynamoStore, caller: &Caller, session: Uuid, limit: &str) -> Vec<(Value, usize)> {
    let (mut pages, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut query = vec![("limit", limit)];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let response = export(store, caller, session, &query).await;
        assert_eq!(response.status(), 200, "{}", body_json(&response));
        let size = response.body().len();
        let body = body_json(&response);
        cursor = body.get("next_cursor").map(|c| c.as_str().unwrap().to_owned());
        pages.push((body, size));
        if cursor.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the export never ended");
    }
}

fn all_indices(pages: &[(Value, usize)]) -> Vec<u64> {
    pages.iter().flat_map(|(body, _)| indices(body)).collect()
}

/// Deterministic text that gzip cannot shrink much: random letters, digits and spaces.
fn incompressible(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// Deterministic English-like chat text of about `len` bytes: words drawn from a shop's vocabulary.
fn english(len: usize, seed: u64) -> String {
    const WORDS: &[&str] = &[
        "the", "a", "volume", "series", "is", "in", "stock", "ships", "tomorrow", "with", "bonus", "postcard", "and",
        "customer", "asked", "whether", "second", "edition", "hardcover", "price", "order", "delivery", "to", "Berlin",
        "Frieren", "manga", "box", "set", "includes", "all", "ten", "volumes", "can", "I", "reserve", "it", "yes",
        "of", "course", "your", "cart", "now", "holds", "three", "items", "discount", "applies", "after", "checkout",
        "we", "also", "recommend", "Dungeon", "Meshi", "for", "fans", "fantasy", "stories", "paperback", "available",
    ];
    const SEPARATORS: &[u8] = b"          .";
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        // One word in eleven ends a sentence.
        text.push(SEPARATORS[((state >> 8) % SEPARATORS.len() as u64) as usize] as char);
    }
    text
}

#[tokio::test]
async fn pages_return_every_turn_in_order_with_the_session_and_summary() {
    let store = store().await;
    let session = session_with(&store, &alice(), numbered(25)).await;
    assert!(store.put_summary(session, 20, "Alice wants Frieren volume 3.").await.unwrap());

    let pages = export_all(&store, &alice(), session, "10").await;

    assert_eq!(pages.len(), 3);
    assert_eq!(pages.iter().map(|(b, _)| indices(b).len()).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(all_indices(&pages), (1..=25).collect::<Vec<_>>());
    let (first, _) = &pages[0];
    assert_eq!(first["session"]["session_id"], session.to_string());
    assert_eq!(first["session"]["turn_count"], 25);
    assert_eq!(first["session"]["page_context"], json!({"page": "/manga/frieren"}));
    assert_eq!(first["summary"], json!({"text": "Alice wants Frieren volume 3.", "through_turn": 20}));
    assert_eq!(first["turns"][0]["content"], "turn number 1");
    assert_eq!(first["turns"][1]["role"], "assistant");
    assert!(pages[2].0.get("next_cursor").is_none());
}

#[tokio::test]
async fn a_session_that_fills_its_last_page_exactly_ends_without_an_empty_page() {
    let store = store().await;
    let session = session_with(&store, &alice(), numbered(20)).await;

    let pages = export_all(&store, &alice(), session, "10").await;

    assert_eq!(pages.len(), 2);
    assert_eq!(all_indices(&pages), (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_empty_session_is_one_page_with_no_turns_and_no_summary() {
    let store = store().await;
    let session = session_with(&store, &alice(), numbered(0)).await;

    let body = body_json(&export(&store, &alice(), session, &[]).await);

    assert_eq!(body["turns"], json!([]));
    assert_eq!(body["summary"], json!(null));
    assert!(body.get("next_cursor").is_none());
}

#[tokio::test]
async fn the_default_limit_is_100_and_outside_1_to_500_is_400() {
    let store = store().await;
    let session = session_with(&store, &alice(), numbered(101)).await;

    let default = body_json(&export(&store, &alice(), session, &[]).await);

    assert_eq!(indices(&default).len(), 100);
    assert!(default.get("next_cursor").is_some());
    for bad in ["0", "501", "-1", "many"] {
        assert_error(&export(&store, &alice(), session, &[("limit", bad)]).await, 400, "bad_request");
    }
    assert_eq!(indices(&body_json(&export(&store, &alice(), session, &[("limit", "500")]).await)).len(), 101);
}

#[tokio::test]
async fn a_page_cut_by_dynamodbs_1_mb_limit_still_has_a_next_cursor() {
    let store = store().await;
    let contents = (0..40).map(|i| incompressible(60 * 1024, i));
    let session = session_with(&store, &alice(), contents).await;

    let pages = export_all(&store, &alice(), session, "100").await;

    let first = indices(&pages[0].0).len();
    println!("1 MB cut: turns per page {:?}", pages.iter().map(|(b, _)| indices(b).len()).collect::<Vec<_>>());
    assert!(first < 40, "DynamoDB returns at most 1 MB of stored items, so {first} turns is a cut page");
    assert!(pages[0].1 < 5 * 1024 * 1024, "it is the 1 MB cut, not the 5 MB budget");
    assert!(pages.len() >= 2);
    assert_eq!(all_indices(&pages), (1..=40).collect::<Vec<_>>());
    assert_eq!(pages[0].0["turns"][0]["content"], incompressible(60 * 1024, 0));
}

#[tokio::test]
async fn pages_stop_before_5_mb_of_decompressed_turns_and_cover_every_turn_once() {
    let store = store().await;
    // 64 KiB that gzip stores in a few hundred bytes: 100 of them are 6.4 MB once decompressed.
    let contents = (0..100).map(|i| format!("{i:05} ") + &"Is volume 3 of Frieren in stock? ".repeat(1985));
    let session = session_with(&store, &alice(), contents).await;

    let pages = export_all(&store, &alice(), session, "100").await;

    println!("5 MiB budget: (turns, body bytes) per page {:?}", pages.iter().map(|(b, n)| (indices(b).len(), *n)).collect::<Vec<_>>());
    assert!(pages.len() >= 2, "6.4 MB does not fit one page");
    assert!(indices(&pages[0].0).len() < 100);
    for (body, size) in &pages {
        assert!(*size <= 5 * 1024 * 1024, "a body of {size} bytes");
        let envelope = serde_json::to_string(&Value::String(body.to_string())).unwrap().len();
        assert!(envelope < LAMBDA_RESPONSE_LIMIT, "an envelope of {envelope} bytes");
    }
    assert_eq!(all_indices(&pages), (1..=100).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_owner_and_support_may_export_anyone_else_gets_404() {
    let store = store().await;
    let session = session_with(&store, &alice(), numbered(3)).await;
    let support = Caller::new("carol", ["support"]);

    assert_eq!(indices(&body_json(&export(&store, &alice(), session, &[]).await)), [1, 2, 3]);
    assert_eq!(indices(&body_json(&export(&store, &support, session, &[]).await)), [1, 2, 3]);
    assert_error(&export(&store, &bob(), session, &[]).await, 404, "not_found");
    assert_error(&export(&store, &alice(), Uuid::new_v4(), &[]).await, 404, "not_found");
}

#[tokio::test]
async fn an_expired_session_is_404_even_for_support() {
    let store = fresh_store(Config { session_ttl: Duration::from_secs(6), ..test_config() }).await;
    let session = session_with(&store, &alice(), numbered(2)).await;
    store.clock().advance(Duration::from_millis(7_100));

    assert_error(&export(&store, &alice(), session, &[]).await, 404, "not_found");
    assert_error(&export(&store, &Caller::new("carol", ["support"]), session, &[]).await, 404, "not_found");
}

#[tokio::test]
async fn a_cursor_from_another_session_or_altered_is_400() {
    let store = store().await;
    let one = session_with(&store, &alice(), numbered(3)).await;
    let other = session_with(&store, &alice(), numbered(3)).await;
    let cursor = body_json(&export(&store, &alice(), one, &[("limit", "1")]).await)["next_cursor"].as_str().unwrap().to_owned();
    let (payload, tag) = cursor.split_once('.').unwrap();
    let altered = format!("f{}.{tag}", &payload[1..]);

    assert_eq!(indices(&body_json(&export(&store, &alice(), one, &[("cursor", &cursor)]).await)), [2, 3]);
    assert_error(&export(&store, &alice(), other, &[("cursor", &cursor)]).await, 400, "bad_request");
    assert_error(&export(&store, &alice(), one, &[("cursor", &altered)]).await, 400, "bad_request");
}

#[tokio::test]
async fn no_identity_is_401_and_a_bad_id_is_400() {
    let store = store().await;

    let anonymous = api_request(None, "GET", "/sessions/{id}/turns", &format!("/sessions/{}/turns", Uuid::new_v4()), &[], None);
    let bad_id = api_request(Some(&alice()), "GET", "/sessions/{id}/turns", "/sessions/nope/turns", &[], None);

    assert_error(&export_turns::handle(&*store, &key(), anonymous).await, 401, "unauthorized");
    assert_error(&export_turns::handle(&*store, &key(), bad_id).await, 400, "bad_request");
}

#[tokio::test]
async fn export_turns_samples_work_on_the_sample_session() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;
    append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn.json"))).await;

    let response = export_turns::handle(&*store, &key(), event_request(include_str!("../events/export-turns.json"))).await;
    let bad = export_turns::handle(&*store, &key(), event_request(include_str!("../events/export-turns-bad-input.json"))).await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    let body = body_json(&response);
    assert_eq!(body["turns"][0]["content"], "Is volume 3 of Frieren back in stock?");
    assert_eq!(body["session"]["page_context"]["page"], "/manga/frieren/vol-3");
    assert!(body.get("next_cursor").is_none());
    assert_error(&bad, 400, "bad_request");
}

#[tokio::test]
async fn capacity_of_one_export_page_of_100_turns() {
    let store = store().await;
    let contents = (0..100).map(|i| english(1024, i));
    let session = session_with(&store, &alice(), contents).await;
    store.reset_consumed();

    let response = export(&store, &alice(), session, &[("limit", "100")]).await;

    assert_eq!(indices(&body_json(&response)).len(), 100);
    let used = store.consumed();
    println!(
        "export page of 100 turns of ~1 KB ({} body bytes): {} RCU, {} WCU",
        response.body().len(),
        used.read_units,
        used.write_units
    );
    assert_eq!(used.write_units, 0.0);
}
