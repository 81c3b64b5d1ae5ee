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
            item: None,
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
async fn without_max_turns_every_unsummarised_turn_comes_back() {
    let store = store().await;
    let long = session_with_turns(&store, &alice(), 12).await;
    let short = session_with_turns(&store, &alice(), 3).await;

    let body = body_json(&load(&store, &alice(), long, &[]).await);
    assert_eq!(body["turns"].as_array().unwrap().len(), 12);
    assert_eq!(body["omitted"], json!(null));
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
    let store = fresh_store(Config { session_ttl: Duration::from_secs(5), ..test_config() }).await;
    let session = session_with_turns(&store, &alice(), 1).await;
    assert_eq!(load(&store, &alice(), session, &[]).await.status(), 200);

    store.clock().advance(Duration::from_millis(6100));

    assert_error(&load(&store, &alice(), session, &[]).await, 404, "not_found");
}

#[tokio::test]
async fn etag_changes_with_every_write_to_meta() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 1).await;
    let etag = |r: &lambda_http::Response<lambda_http::Body>| r.headers()["etag"].to_str().unwrap().to_owned();

    let first = etag(&load(&store, &alice(), session, &[]).await);
    assert_eq!(first, etag(&load(&store, &alice(), session, &[]).await), "reads do not change it");
    let turn = NewTurn { response_id: "next".into(), role: "user".into(), content: "more".into(), intent: None, token_count: None, item: None };
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
    assert_eq!(body_json(&response), json!({"session": null, "summary": null, "omitted": null, "turns": [], "degraded": true}));
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

/// Appends up to `turns`, then lets the summary consumer settle, as the stream would.
async fn settled_session(store: &DynamoStore, turns: u64) -> Uuid {
    let session = session_with_turns(store, &alice(), turns).await;
    let summarizer = tidewater::ExtractiveSummarizer::default();
    summarize::summarize_session(store, &summarizer, store.config(), session).await.unwrap();
    session
}

/// Checks the coverage contract on one answer and returns (S, omitted, first turn, T).
fn check_coverage(body: &serde_json::Value) -> (u64, Option<(u64, u64)>, Vec<u64>, u64) {
    let t = body["session"]["turn_count"].as_u64().unwrap();
    let s = body["summary"]["through_turn"].as_u64().unwrap_or(0);
    let turns: Vec<u64> = body["turns"].as_array().unwrap().iter().map(|t| t["turn_index"].as_u64().unwrap()).collect();
    let omitted = body["omitted"].as_object().map(|o| (o["from_turn"].as_u64().unwrap(), o["to_turn"].as_u64().unwrap()));
    let mut covered: Vec<u64> = (1..=s).collect();
    if let Some((from, to)) = omitted {
        assert_eq!(from, s + 1, "omitted starts right after the summary: {body}");
        covered.extend(from..=to);
    }
    covered.extend(&turns);
    assert_eq!(covered, (1..=t).collect::<Vec<_>>(), "summary, omitted and turns account for 1..=T once each");
    (s, omitted, turns, t)
}

#[tokio::test]
async fn summary_omitted_and_turns_account_for_every_turn_exactly_once() {
    let store = store().await;
    for total in [5u64, 29, 30, 45, 59, 250] {
        let session = settled_session(&store, total).await;
        let (threshold, keep) = (store.config().summary_threshold, store.config().summary_keep_recent);

        let body = body_json(&load(&store, &alice(), session, &[]).await);
        let (s, omitted, turns, t) = check_coverage(&body);
        assert_eq!(t, total);
        assert!(t < threshold + keep || (t - threshold - keep < s && s <= t - keep), "settled at T={t}: S={s}");
        assert_eq!(omitted, None, "the default load leaves nothing out at T={t}");
        assert!(t < keep || turns.len() as u64 >= keep, "at least the kept turns verbatim at T={t}");

        for max_turns in ["1", "10", "30", "100"] {
            let body = body_json(&load(&store, &alice(), session, &[("max_turns", max_turns)]).await);
            let (_, _, turns, _) = check_coverage(&body);
            assert!(turns.len() <= max_turns.parse().unwrap());
        }
        for max_tokens in ["1", "300", "2000"] {
            let body = body_json(&load(&store, &alice(), session, &[("max_tokens", max_tokens)]).await);
            let (_, _, turns, _) = check_coverage(&body);
            // token_count of turn i is i in this session.
            assert!(turns.iter().sum::<u64>() <= max_tokens.parse().unwrap(), "T={total} max_tokens={max_tokens}");
        }
        let body = body_json(&load(&store, &alice(), session, &[("max_turns", "5"), ("max_tokens", "1000")]).await);
        check_coverage(&body);
    }
}

#[tokio::test]
async fn a_turn_without_token_count_counts_a_quarter_of_its_bytes() {
    let store = store().await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    for (i, content) in ["a".repeat(40), "b".repeat(41)].into_iter().enumerate() {
        let turn = NewTurn { response_id: format!("r{i}"), role: "user".into(), content, intent: None, token_count: None, item: None };
        store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
    }

    let fits_both = body_json(&load(&store, &alice(), session, &[("max_tokens", "21")]).await);
    let fits_one = body_json(&load(&store, &alice(), session, &[("max_tokens", "20")]).await);
    let fits_none = body_json(&load(&store, &alice(), session, &[("max_tokens", "10")]).await);

    assert_eq!(fits_both["turns"].as_array().unwrap().len(), 2);
    assert_eq!(fits_one["turns"].as_array().unwrap().len(), 1);
    assert_eq!(fits_one["omitted"], json!({"from_turn": 1, "to_turn": 1}));
    assert_eq!(fits_none["turns"], json!([]));
    assert_eq!(fits_none["omitted"], json!({"from_turn": 1, "to_turn": 2}));
}

#[tokio::test]
async fn max_tokens_outside_1_to_a_million_gets_400() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 1).await;

    for bad in ["0", "1000001", "-5", "many", ""] {
        assert_error(&load(&store, &alice(), session, &[("max_tokens", bad)]).await, 400, "bad_request");
    }
}

#[tokio::test]
async fn a_load_right_after_an_append_always_shows_the_new_turn() {
    let store = store().await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    for i in 1..=60u64 {
        let turn = NewTurn { response_id: format!("r{i}"), role: "user".into(), content: format!("turn {i}"), intent: None, token_count: None, item: None };
        store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();

        let body = body_json(&load(&store, &alice(), session, &[("max_turns", "1")]).await);

        assert_eq!(body["turns"][0]["turn_index"], i, "round {i}: {body}");
        assert_eq!(body["session"]["turn_count"], i);
    }
}

#[tokio::test]
async fn the_body_stays_under_5_mib_and_the_cut_is_reported() {
    let store = fresh_store(Config { summary_threshold: 1_000, load_deadline: Duration::from_secs(10), ..test_config() }).await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    let big = "Frieren volume three is in stock. ".repeat(2_000);
    let big = &big[..64 * 1024];
    for i in 1..=100u64 {
        let turn = NewTurn { response_id: format!("r{i}"), role: "user".into(), content: big.to_owned(), intent: None, token_count: None, item: None };
        store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
    }

    let response = load(&store, &alice(), session, &[("max_turns", "100")]).await;

    assert_eq!(response.status(), 200);
    let body_bytes = match response.body() {
        lambda_http::Body::Text(text) => text.len(),
        other => panic!("a text body, got {other:?}"),
    };
    assert!(body_bytes <= 5 * 1024 * 1024, "{body_bytes} bytes");
    let body = body_json(&response);
    let (_, omitted, turns, t) = check_coverage(&body);
    assert_eq!(t, 100);
    assert!(turns.len() < 100 && !turns.is_empty());
    assert_eq!(omitted, Some((1, 100 - turns.len() as u64)));
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_is_304_until_the_session_changes() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 2).await;
    let path = format!("/sessions/{session}/context");
    let conditional = |tag: String| {
        let mut request = api_request(Some(&alice()), "GET", "/sessions/{id}/context", &path, &[], None);
        request.headers_mut().insert("if-none-match", tag.parse().unwrap());
        request
    };
    let first = load(&store, &alice(), session, &[]).await;
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();

    let unchanged = load_context::handle(&*store, conditional(tag.clone())).await;
    assert_eq!(unchanged.status(), 304);
    assert!(matches!(unchanged.body(), lambda_http::Body::Empty));
    assert_eq!(unchanged.headers()["etag"].to_str().unwrap(), tag);

    let turn = NewTurn { response_id: "r3".into(), role: "user".into(), content: "and volume 4?".into(), intent: None, token_count: None, item: None };
    store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
    let changed = load_context::handle(&*store, conditional(tag.clone())).await;
    assert_eq!(changed.status(), 200);
    assert_eq!(body_json(&changed)["turns"].as_array().unwrap().len(), 3);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), tag);

    let foreign = {
        let mut request = api_request(Some(&bob()), "GET", "/sessions/{id}/context", &path, &[], None);
        request.headers_mut().insert("if-none-match", tag.parse().unwrap());
        load_context::handle(&*store, request).await
    };
    assert_error(&foreign, 404, "not_found");
}

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Writes `item` back as it was: the lagging replica has caught up.
async fn restore(store: &DynamoStore, item: Item) {
    store.client().put_item().table_name(&store.config().table_name).set_item(Some(item)).send().await.unwrap();
}

async fn load_if_none_match(store: &DynamoStore, session: Uuid, tag: &str) -> lambda_http::Response<lambda_http::Body> {
    let path = format!("/sessions/{session}/context");
    let mut request = api_request(Some(&alice()), "GET", "/sessions/{id}/context", &path, &[], None);
    request.headers_mut().insert("if-none-match", tag.parse().unwrap());
    load_context::handle(store, request).await
}

fn turn_indices(response: &lambda_http::Response<lambda_http::Body>) -> Vec<u64> {
    body_json(response)["turns"].as_array().unwrap().iter().map(|t| t["turn_index"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_context_read_before_its_newest_turn_is_visible_carries_no_etag_so_it_is_never_pinned() {
    // Given META at turn 3 while the read does not see TURN#3 yet (a lagging replica).
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 3).await;
    let turn_3 = take_item(&store, session, &tidewater::keys::turn_sk(3)).await;

    // When the context is loaded,
    let stale = load(&store, &alice(), session, &[]).await;

    // then it answers what it saw, with no ETag that would vouch for turn 3.
    assert_eq!(stale.status(), 200);
    assert_eq!(turn_indices(&stale), [1, 2]);
    assert_eq!(body_json(&stale)["session"]["turn_count"], 2, "the newest turn the read can vouch for");
    assert!(stale.headers().get("etag").is_none(), "an ETag names version 4, whose body has turn 3");

    // Once the turn is visible, the reload shows it, and that complete body may be cached.
    restore(&store, turn_3).await;
    let fresh = load(&store, &alice(), session, &[]).await;
    assert_eq!(turn_indices(&fresh), [1, 2, 3]);
    assert_eq!(fresh.headers()["etag"].to_str().unwrap(), "\"4\"");
    assert_eq!(load_if_none_match(&store, session, "\"4\"").await.status(), 304);
}

#[tokio::test]
async fn a_context_read_before_its_summary_is_visible_carries_no_etag() {
    // Given META with a summary through turn 4 while the read still sees the summary through 2.
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 6).await;
    assert!(store.put_summary(session, 2, "through two").await.unwrap());
    let older = take_item(&store, session, tidewater::keys::LATEST_SUMMARY).await;
    restore(&store, older.clone()).await;
    assert!(store.put_summary(session, 4, "through four").await.unwrap());
    let newer = take_item(&store, session, tidewater::keys::LATEST_SUMMARY).await;
    restore(&store, older).await;

    let stale = load(&store, &alice(), session, &[]).await;

    assert_eq!(stale.status(), 200);
    assert_eq!(body_json(&stale)["summary"]["through_turn"], 2);
    assert_eq!(turn_indices(&stale), [3, 4, 5, 6], "every turn is still accounted for");
    assert!(stale.headers().get("etag").is_none(), "version 9 names the body with the summary through 4");

    restore(&store, newer).await;
    let fresh = load(&store, &alice(), session, &[]).await;
    assert_eq!(body_json(&fresh)["summary"]["through_turn"], 4);
    assert_eq!(turn_indices(&fresh), [5, 6]);
    assert_eq!(fresh.headers()["etag"].to_str().unwrap(), "\"9\"");
}
