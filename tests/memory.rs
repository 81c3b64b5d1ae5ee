//! Long-term customer memory against DynamoDB Local: facts a window states, written by the
//! summary consumer, read in the next session's context and by the listing, forgotten on the
//! customer's request, kept bounded, never shown to anyone else, and gone with the purge.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, RequestExt, Response};
use serde_json::{json, Value};
use tidewater::memory::{FactDraft, FactKind, FactSource};
use tidewater::store::customer_hash;
use tidewater::{
    Caller, Config, CursorKey, DynamoStore, ExtractiveSummarizer, MemoryReader, MemoryWriter, NewSession, NewTurn,
    SessionCreator, SummarySource, TurnAppender,
};
use tidewater_tests::*;
use uuid::Uuid;

#[allow(dead_code)]
#[path = "../bench/src/item_size.rs"]
mod item_size;

type Item = HashMap<String, AttributeValue>;

const SAMPLE_SESSION: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";
/// Two lines (a user turn and its answer each) make one window.
const THRESHOLD: u64 = 4;

fn config() -> Config {
    Config { summary_threshold: THRESHOLD, summary_keep_recent: 0, ..test_config() }
}

fn key() -> CursorKey {
    test_cursor_key()
}

fn support() -> Caller {
    Caller::new("carol", ["support"])
}

fn privacy_officer() -> Caller {
    Caller::new("privacy-officer-1", ["privacy"])
}

fn alice_as_guest() -> Caller {
    Caller::new("alice", ["guest"])
}

async fn new_session(store: &DynamoStore, caller: &Caller) -> Uuid {
    store.create_session(caller, NewSession::default()).await.unwrap().session_id
}

/// Each line is a customer turn, answered by the assistant.
async fn say(store: &DynamoStore, caller: &Caller, session: Uuid, lines: &[&str]) {
    for line in lines {
        for (role, content) in [("user", *line), ("assistant", "Noted.")] {
            let turn = NewTurn {
                response_id: Uuid::new_v4().to_string(),
                role: role.into(),
                content: content.into(),
                intent: None,
                token_count: None,
                item: None,
            };
            store.append_turn(caller, session, turn.validate(store.config()).unwrap()).await.unwrap();
        }
    }
}

/// Runs the summary consumer on the session, as the stream would.
async fn summarise(store: &DynamoStore, session: Uuid) -> summarize::Outcome {
    summarize::summarize_session(store, &ExtractiveSummarizer::default(), store.config(), session).await.unwrap()
}

/// The drafts the offline extraction makes of the session's turns `after + 1 ..= through`.
async fn drafts_of(store: &DynamoStore, session: Uuid, after: u64, through: u64) -> Vec<FactDraft> {
    tidewater::summarizer::facts::extract(session, &store.turns_between(session, &Default::default(), after, through).await.unwrap())
}

async fn list(store: &DynamoStore, caller: &Caller, whose: &str, query: &[(&str, &str)]) -> Response<Body> {
    let request = if whose == "me" {
        api_request(Some(caller), "GET", "/customers/me/memory", "/customers/me/memory", query, None)
    } else {
        let path = format!("/customers/{whose}/memory");
        api_request(Some(caller), "GET", "/customers/{id}/memory", &path, query, None)
    };
    list_memory::handle(store, &key(), request).await
}

/// The facts of a listing's first page.
async fn facts(store: &DynamoStore, caller: &Caller) -> Vec<Value> {
    let response = list(store, caller, "me", &[("limit", "100")]).await;
    assert_eq!(response.status(), 200, "{}", body_json(&response));
    body_json(&response)["facts"].as_array().unwrap().clone()
}

fn texts(facts: &[Value]) -> Vec<&str> {
    facts.iter().map(|f| f["text"].as_str().unwrap()).collect()
}

async fn forget(store: &DynamoStore, caller: &Caller, whose: &str, fact_id: &str) -> Response<Body> {
    let request = if whose == "me" {
        let path = format!("/customers/me/memory/{fact_id}");
        api_request(Some(caller), "DELETE", "/customers/me/memory/{fact_id}", &path, &[], None)
    } else {
        let path = format!("/customers/{whose}/memory/{fact_id}");
        api_request(Some(caller), "DELETE", "/customers/{id}/memory/{fact_id}", &path, &[], None)
    };
    delete_memory::handle(store, request).await
}

async fn context(store: &DynamoStore, caller: &Caller, session: Uuid, query: &[(&str, &str)]) -> Response<Body> {
    let path = format!("/sessions/{session}/context");
    load_context::handle(store, api_request(Some(caller), "GET", "/sessions/{id}/context", &path, query, None)).await
}

/// Every item of the customer's memory partition.
async fn memory_items(store: &DynamoStore, customer_id: &str) -> Vec<Item> {
    let pk = tidewater::keys::memory_pk(&customer_hash(store.config().receipt_salt().unwrap().expose(), customer_id));
    scan_table(store).await.into_iter().filter(|item| item["PK"].as_s().is_ok_and(|p| *p == pk)).collect()
}

#[tokio::test]
async fn facts_from_one_session_reach_the_next_sessions_context_with_provenance() {
    let store = fresh_store(config()).await;
    let first = new_session(&store, &alice()).await;
    say(&store, &alice(), first, &["I already read Frieren. What else is like it?", "I prefer digital"]).await;

    let outcome = summarise(&store, first).await;
    let second = new_session(&store, &alice()).await;
    let with_memory = context(&store, &alice(), second, &[("include", "memory")]).await;
    let without = context(&store, &alice(), second, &[]).await;

    assert_eq!((outcome.written, outcome.facts_written), (1, 2));
    assert_eq!(with_memory.status(), 200);
    let body = body_json(&with_memory);
    assert_eq!(body["degraded"], false);
    assert_eq!(body["session"]["session_id"], second.to_string());
    let memory = body["customer_memory"].as_array().unwrap();
    assert_eq!(texts(memory), ["prefers digital", "has read Frieren"], "newest first");
    assert_eq!(memory[0]["kind"], "preference");
    assert_eq!(memory[1]["kind"], "owns");
    assert_eq!(memory[0]["source"], json!({"session_id": first, "from_turn": 3, "to_turn": 3}));
    assert_eq!(memory[1]["source"], json!({"session_id": first, "from_turn": 1, "to_turn": 1}));
    let mut fields: Vec<&str> = memory[0].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["fact_id", "kind", "source", "text", "updated_at"]);
    let first_turns = store.turns_between(first, &Default::default(), 0, 3).await.unwrap();
    assert_eq!(memory[0]["updated_at"], first_turns[2].created_at, "the time the customer said it");
    assert!(body_json(&without).get("customer_memory").is_none(), "only asked for");
}

#[tokio::test]
async fn a_redelivered_window_writes_nothing_twice() {
    let store = fresh_store(config()).await;
    let session = new_session(&store, &alice()).await;
    say(&store, &alice(), session, &["I love Frieren", "I have volumes 1-3 of Vinland Saga"]).await;
    let drafts = drafts_of(&store, session, 0, 4).await;
    assert_eq!(store.write_facts("alice", session, &drafts).await.unwrap(), 2);
    let stored = memory_items(&store, "alice").await;

    // The window again, as a record redelivered before its summary was written, then the
    // whole consumer twice.
    let again = store.write_facts("alice", session, &drafts).await.unwrap();
    let consumer = summarise(&store, session).await;
    let redelivered = summarise(&store, session).await;

    assert_eq!(again, 0);
    assert_eq!((consumer.written, consumer.facts_written), (1, 0));
    assert_eq!((redelivered.written, redelivered.facts_written), (0, 0));
    assert_eq!(memory_items(&store, "alice").await, stored, "not one attribute changed");
    assert_eq!(texts(&facts(&store, &alice()).await), ["owns volumes 1-3 of Vinland Saga", "loves Frieren"]);
}

#[tokio::test]
async fn a_newer_statement_supersedes_and_the_cap_drops_the_least_recently_confirmed() {
    let store = fresh_store(Config { memory_max_facts: 3, ..config() }).await;
    let session = new_session(&store, &alice()).await;
    say(&store, &alice(), session, &["I prefer paperbacks", "I love Berserk"]).await;
    summarise(&store, session).await;
    say(&store, &alice(), session, &["I love Frieren", "As I said, I prefer paperbacks"]).await;
    summarise(&store, session).await;
    let paperback = facts(&store, &alice()).await[0].clone();
    assert_eq!(paperback["text"], "prefers paperback");
    assert_eq!(paperback["source"]["from_turn"], 7, "restated: confirmed again");

    say(&store, &alice(), session, &["I prefer digital now", "I love Vinland Saga"]).await;
    summarise(&store, session).await;

    let kept = facts(&store, &alice()).await;
    assert_eq!(texts(&kept), ["loves Vinland Saga", "prefers digital", "loves Frieren"]);
    assert_eq!(kept[1]["fact_id"], paperback["fact_id"], "digital replaced paperback: one subject, the format");
    assert_eq!(kept[1]["source"], json!({"session_id": session, "from_turn": 9, "to_turn": 9}));
    assert_eq!(memory_items(&store, "alice").await.len(), 3, "Berserk, the least recently confirmed, is gone");

    // A late delivery of the first window replaces nothing newer; what it brings back is the
    // least recently confirmed again, and goes again.
    let late = drafts_of(&store, session, 0, 4).await;
    store.write_facts("alice", session, &late).await.unwrap();
    assert_eq!(texts(&facts(&store, &alice()).await), ["loves Vinland Saga", "prefers digital", "loves Frieren"]);
}

#[tokio::test]
async fn a_guest_gets_no_long_term_memory() {
    let store = fresh_store(config()).await;
    let session = new_session(&store, &alice_as_guest()).await;
    say(&store, &alice_as_guest(), session, &["I love Frieren", "I prefer digital"]).await;

    let outcome = summarise(&store, session).await;
    // Even asked directly, the store writes nothing for a guest's session.
    let direct = store.write_facts("alice", session, &drafts_of(&store, session, 0, 4).await).await.unwrap();

    assert_eq!((outcome.written, outcome.facts_written), (1, 0));
    assert_eq!(direct, 0);
    assert!(memory_items(&store, "alice").await.is_empty());
    assert!(scan_table(&store).await.iter().all(|item| !item["PK"].as_s().unwrap().starts_with("MEMORY#")));
    assert_eq!(body_json(&list(&store, &alice_as_guest(), "me", &[]).await), json!({"facts": []}));
    let body = body_json(&context(&store, &alice_as_guest(), session, &[("include", "memory")]).await);
    assert_eq!(body["customer_memory"], json!([]));
    assert_eq!(body["session"]["session_id"], session.to_string());
}

/// Alice states two facts in one window of a session; returns the session, the window's
/// drafts and the id of the newest fact ("prefers digital").
async fn alice_states_two_facts(store: &DynamoStore) -> (Uuid, Vec<FactDraft>, String) {
    let session = new_session(store, &alice()).await;
    say(store, &alice(), session, &["I love Frieren", "I prefer digital"]).await;
    let window = drafts_of(store, session, 0, 4).await;
    store.write_facts("alice", session, &window).await.unwrap();
    let digital = facts(store, &alice()).await[0]["fact_id"].as_str().unwrap().to_owned();
    (session, window, digital)
}

#[tokio::test]
async fn a_customer_forgets_a_fact_and_an_earlier_statement_cannot_bring_it_back() {
    let store = fresh_store(config()).await;
    let (session, window, digital) = alice_states_two_facts(&store).await;

    let forgotten = forget(&store, &alice(), "me", &digital).await;
    let again = forget(&store, &alice(), "me", &digital).await;
    let replayed = store.write_facts("alice", session, &window).await.unwrap();

    assert_eq!(forgotten.status(), 204);
    assert!(forgotten.body().is_empty());
    assert_eq!(again.status(), 204, "also when already gone");
    assert_eq!(replayed, 0, "the window stated it before the deletion");
    assert_eq!(texts(&facts(&store, &alice()).await), ["loves Frieren"]);
    let sk = tidewater::keys::fact_sk(&digital);
    let tombstone = memory_items(&store, "alice").await.into_iter().find(|i| i["SK"].as_s().unwrap() == &sk).unwrap();
    assert!(!tombstone.contains_key("text"), "no text: {tombstone:?}");

    // A new statement brings it back.
    say(&store, &alice(), session, &["I prefer digital, really", "Thanks"]).await;
    store.write_facts("alice", session, &drafts_of(&store, session, 4, 8).await).await.unwrap();
    let now = facts(&store, &alice()).await;
    assert_eq!(texts(&now), ["prefers digital", "loves Frieren"]);
    assert_eq!(now[0]["source"]["from_turn"], 5);
}

/// Deletes what DynamoDB's TTL would have deleted of the customer's memory by `epoch_seconds`.
async fn expire_memory_as_ttl_would(store: &DynamoStore, customer_id: &str, epoch_seconds: i64) {
    for item in memory_items(store, customer_id).await {
        let ttl = item.get("ttl").and_then(|ttl| ttl.as_n().ok()).and_then(|ttl| ttl.parse::<i64>().ok());
        if ttl.is_some_and(|ttl| ttl <= epoch_seconds) {
            let key = HashMap::from([("PK".to_owned(), item["PK"].clone()), ("SK".to_owned(), item["SK"].clone())]);
            store.client().delete_item().table_name(&store.config().table_name).set_key(Some(key)).send().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_forgotten_fact_stays_forgotten_however_late_a_window_that_stated_it_arrives() {
    let store = fresh_store(config()).await;
    let (session, window, digital) = alice_states_two_facts(&store).await;
    assert_eq!(forget(&store, &alice(), "me", &digital).await.status(), 204);

    // A year on, the session kept alive by its appends, the window is summarised again
    // (a re-arm or `make redrive`), after whatever DynamoDB's TTL removed in between.
    let a_year_on = tidewater::clock::now().unix_timestamp() + 365 * 86_400;
    expire_memory_as_ttl_would(&store, "alice", a_year_on).await;
    let replayed = store.write_facts("alice", session, &window).await.unwrap();

    assert_eq!(replayed, 0, "the deletion wins over every earlier statement");
    assert_eq!(texts(&facts(&store, &alice()).await), ["loves Frieren"]);
}

#[tokio::test]
async fn only_the_customer_and_the_privacy_role_may_forget_and_a_bad_id_is_400() {
    let store = fresh_store(config()).await;
    let session = new_session(&store, &alice()).await;
    say(&store, &alice(), session, &["I love Frieren", "I love Berserk"]).await;
    store.write_facts("alice", session, &drafts_of(&store, session, 0, 4).await).await.unwrap();
    let ids: Vec<String> = facts(&store, &alice()).await.iter().map(|f| f["fact_id"].as_str().unwrap().to_owned()).collect();

    assert_error(&forget(&store, &bob(), "alice", &ids[0]).await, 404, "not_found");
    assert_error(&forget(&store, &support(), "alice", &ids[0]).await, 404, "not_found");
    assert_eq!(forget(&store, &bob(), "me", &ids[0]).await.status(), 204, "bob has no such fact: nothing happens");
    assert_eq!(facts(&store, &alice()).await.len(), 2);
    for bad in ["not-a-fact", "ABCDEF0123456789ABCDEF0123456789", &"a".repeat(33)] {
        assert_error(&forget(&store, &alice(), "me", bad).await, 400, "bad_request");
    }
    assert_eq!(forget(&store, &privacy_officer(), "alice", &ids[0]).await.status(), 204);
    assert_eq!(forget(&store, &alice(), "alice", &ids[1]).await.status(), 204, "a customer may name themself");
    assert!(facts(&store, &alice()).await.is_empty());
}

#[tokio::test]
async fn the_purge_removes_every_fact_and_the_receipt_counts_them() {
    let store = fresh_store(config()).await;
    let first = new_session(&store, &alice()).await;
    say(&store, &alice(), first, &["I love Frieren", "I prefer digital"]).await;
    summarise(&store, first).await;
    let second = new_session(&store, &alice()).await;
    say(&store, &alice(), second, &["I love Berserk", "Thanks"]).await;
    summarise(&store, second).await;
    let berserk = facts(&store, &alice()).await[0]["fact_id"].as_str().unwrap().to_owned();
    assert_eq!(forget(&store, &alice(), "me", &berserk).await.status(), 204);
    let bobs = new_session(&store, &bob()).await;
    say(&store, &bob(), bobs, &["I love Dandadan", "I prefer paperbacks"]).await;
    summarise(&store, bobs).await;
    let bobs_memory = memory_items(&store, "bob").await;
    let alices_items = memory_items(&store, "alice").await.len() as u64;
    assert_eq!(alices_items, 3, "two facts and a tombstone");

    let request = api_request(Some(&alice()), "DELETE", "/customers/me", "/customers/me", &[], None);
    let response = purge_customer::handle(&*store, request).await;
    let repeat = store.purge_customer_with(&*store, "alice", "req-repeat").await.unwrap();

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    let receipt = body_json(&response);
    assert_eq!(receipt["memory_items_deleted"], alices_items);
    assert_eq!(receipt["sessions_deleted"], 2);
    assert!(memory_items(&store, "alice").await.is_empty(), "a Scan finds none of her facts");
    assert_eq!(memory_items(&store, "bob").await, bobs_memory, "another customer's memory stays");
    assert_eq!(repeat.receipt_id.to_string(), receipt["receipt_id"].as_str().unwrap(), "a repeat answers the same receipt");
    assert_eq!(repeat.memory_items_deleted, alices_items);
    assert!(facts(&store, &alice()).await.is_empty());

    // A window of a purged session summarised late writes nothing: its META is gone.
    let late = store.write_facts("alice", first, &[draft(first, "loves Frieren")]).await.unwrap();
    assert_eq!(late, 0);
    assert!(memory_items(&store, "alice").await.is_empty());
}

/// A fact stated now at turn 1 of `session`.
fn draft(session: Uuid, text: &str) -> FactDraft {
    let source = FactSource { session_id: session, from_turn: 1, to_turn: 1 };
    FactDraft::new(FactKind::Preference, text, text, source, &tidewater::clock::format(tidewater::clock::now())).unwrap()
}

#[tokio::test]
async fn purge_memory_deletes_a_whole_partition_in_batches_and_counts_it() {
    let store = fresh_store(Config { memory_max_facts: 100, ..config() }).await;
    let session = new_session(&store, &alice()).await;
    for batch in 0..3 {
        let drafts: Vec<FactDraft> = (0..20).map(|i| draft(session, &format!("likes series {batch}-{i}"))).collect();
        store.write_facts("alice", session, &drafts).await.unwrap();
    }
    assert_eq!(memory_items(&store, "alice").await.len(), 60);

    let deleted = store.purge_memory(&customer_hash(store.config().receipt_salt().unwrap().expose(), "alice")).await.unwrap();

    assert_eq!(deleted, 60);
    assert!(memory_items(&store, "alice").await.is_empty());
}

#[tokio::test]
async fn another_customer_never_sees_them() {
    let store = fresh_store(config()).await;
    let alices = new_session(&store, &alice()).await;
    say(&store, &alice(), alices, &["I love Frieren", "I prefer digital"]).await;
    summarise(&store, alices).await;
    let bobs = new_session(&store, &bob()).await;
    say(&store, &bob(), bobs, &["I love Dandadan", "Thanks"]).await;
    summarise(&store, bobs).await;

    assert_eq!(texts(&facts(&store, &bob()).await), ["loves Dandadan"]);
    assert_error(&list(&store, &bob(), "alice", &[]).await, 404, "not_found");
    let bobs_context = body_json(&context(&store, &bob(), bobs, &[("include", "memory")]).await);
    assert_eq!(texts(bobs_context["customer_memory"].as_array().unwrap()), ["loves Dandadan"]);
    assert_error(&context(&store, &bob(), alices, &[("include", "memory")]).await, 404, "not_found");
    // Support may read a customer's memory through the listing, but a context load shows the
    // memory of the session's owner to the owner only.
    let by_support = body_json(&list(&store, &support(), "alice", &[]).await);
    assert_eq!(texts(by_support["facts"].as_array().unwrap()), ["prefers digital", "loves Frieren"]);
    let support_context = body_json(&context(&store, &support(), alices, &[("include", "memory")]).await);
    assert_eq!(support_context["customer_memory"], json!([]));
    assert_eq!(list(&store, &privacy_officer(), "alice", &[]).await.status(), 200);
    // Alice's cursor is refused in Bob's listing.
    let page = body_json(&list(&store, &alice(), "me", &[("limit", "1")]).await);
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_error(&list(&store, &bob(), "me", &[("cursor", cursor)]).await, 400, "bad_request");
}

#[tokio::test]
async fn the_listing_pages_newest_first_and_refuses_bad_limits_and_cursors() {
    let store = fresh_store(config()).await;
    let session = new_session(&store, &alice()).await;
    say(&store, &alice(), session, &["I love Frieren", "I love Berserk", "I love Dandadan", "I love Monster", "I love Pluto", "Bye"]).await;
    store.write_facts("alice", session, &drafts_of(&store, session, 0, 12).await).await.unwrap();

    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut query = vec![("limit", "2")];
        if let Some(c) = cursor.as_deref() {
            query.push(("cursor", c));
        }
        let body = body_json(&list(&store, &alice(), "me", &query).await);
        seen.extend(texts(body["facts"].as_array().unwrap()).into_iter().map(str::to_owned));
        pages += 1;
        match body.get("next_cursor") {
            Some(next) => cursor = Some(next.as_str().unwrap().to_owned()),
            None => break,
        }
    }

    assert_eq!(seen, ["loves Pluto", "loves Monster", "loves Dandadan", "loves Berserk", "loves Frieren"]);
    assert_eq!(pages, 3);
    for bad in ["0", "101", "many"] {
        assert_error(&list(&store, &alice(), "me", &[("limit", bad)]).await, 400, "bad_request");
    }
    assert_error(&list(&store, &alice(), "me", &[("cursor", "forged.cursor")]).await, 400, "bad_request");
}

#[tokio::test]
async fn max_memory_bounds_the_facts_and_include_names_only_memory() {
    let store = fresh_store(config()).await;
    let session = new_session(&store, &alice()).await;
    say(&store, &alice(), session, &["I love Frieren", "I prefer digital"]).await;
    summarise(&store, session).await;

    let one = body_json(&context(&store, &alice(), session, &[("include", "memory"), ("max_memory", "1")]).await);

    assert_eq!(texts(one["customer_memory"].as_array().unwrap()), ["prefers digital"]);
    for bad in ["0", "51", "x"] {
        let response = context(&store, &alice(), session, &[("include", "memory"), ("max_memory", bad)]).await;
        assert_error(&response, 400, "bad_request");
    }
    assert_error(&context(&store, &alice(), session, &[("include", "everything")]).await, 400, "bad_request");
}

#[tokio::test]
async fn when_the_store_fails_the_context_still_answers_with_no_memory() {
    let store = unreachable_store().await;
    let session = Uuid::new_v4();

    let response = context(&store, &alice(), session, &[("include", "memory")]).await;

    assert_eq!(response.status(), 200);
    let body = body_json(&response);
    assert_eq!((body["degraded"].clone(), body["customer_memory"].clone()), (json!(true), json!([])));
}

#[tokio::test]
async fn facts_expire_only_when_memory_ttl_days_is_set() {
    let forever = fresh_store(config()).await;
    let session = new_session(&forever, &alice()).await;
    forever.write_facts("alice", session, &[draft(session, "likes Frieren")]).await.unwrap();
    assert!(!memory_items(&forever, "alice").await[0].contains_key("ttl"));

    let month = DynamoStore::new(
        forever.client().clone(),
        Config { memory_ttl: Some(Duration::from_secs(30 * 86_400)), ..forever.config().clone() },
    );
    let bobs = new_session(&month, &bob()).await;
    month.write_facts("bob", bobs, &[draft(bobs, "likes Berserk")]).await.unwrap();
    let ttl: i64 = memory_items(&month, "bob").await[0]["ttl"].as_n().unwrap().parse().unwrap();
    let expected = tidewater::clock::now().unix_timestamp() + 30 * 86_400;
    assert!((expected - 60..=expected).contains(&ttl), "{ttl} vs {expected}");

    // A fact past its ttl is never read, whether or not DynamoDB has deleted it yet.
    let expired = DynamoStore::new(forever.client().clone(), Config { memory_ttl: Some(Duration::ZERO), ..forever.config().clone() });
    let carol = Caller::new("carol", Vec::<String>::new());
    let carols = new_session(&expired, &carol).await;
    expired.write_facts("carol", carols, &[draft(carols, "likes Monster")]).await.unwrap();
    assert!(expired.recent_facts("carol", 20).await.unwrap().is_empty());
    assert!(facts(&expired, &carol).await.is_empty());
}

#[tokio::test]
async fn memory_samples_run_through_their_handlers() {
    // The sample's fact id is the one `make run` gives alice's format preference.
    let store = fresh_store(with_local_secrets(config())).await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;
    let session = Uuid::parse_str(SAMPLE_SESSION).unwrap();
    say(&store, &alice(), session, &["I already read Frieren", "I prefer digital"]).await;
    summarise(&store, session).await;

    let listed = list_memory::handle(&*store, &key(), event_request(include_str!("../events/list-memory.json"))).await;
    let by_support =
        list_memory::handle(&*store, &key(), event_request(include_str!("../events/list-memory-support.json"))).await;
    let bad_list =
        list_memory::handle(&*store, &key(), event_request(include_str!("../events/list-memory-bad-input.json"))).await;
    let loaded = load_context::handle(&*store, event_request(include_str!("../events/load-context-memory.json"))).await;
    let forgotten = delete_memory::handle(&*store, event_request(include_str!("../events/delete-memory.json"))).await;
    let bad_forget = delete_memory::handle(&*store, event_request(include_str!("../events/delete-memory-bad-input.json"))).await;

    assert_eq!(listed.status(), 200, "{}", body_json(&listed));
    assert_eq!(texts(body_json(&listed)["facts"].as_array().unwrap()), ["prefers digital", "has read Frieren"]);
    assert_eq!(body_json(&by_support), body_json(&listed));
    assert_error(&bad_list, 400, "bad_request");
    assert_eq!(loaded.status(), 200);
    assert_eq!(texts(body_json(&loaded)["customer_memory"].as_array().unwrap()), ["prefers digital", "has read Frieren"]);
    assert_eq!(forgotten.status(), 204, "the sample names the format preference");
    assert_eq!(texts(&facts(&store, &alice()).await), ["has read Frieren"]);
    assert_error(&bad_forget, 400, "bad_request");
    let sample = event_request(include_str!("../events/delete-memory.json"));
    assert_eq!(sample.path_parameters_ref().and_then(|p| p.first("fact_id")).map(str::len), Some(32));
}

/// The capacity of long-term memory, as DynamoDB Local reports it, with the price of the
/// window's transaction worked out from item sizes (DynamoDB Local under-reports
/// transactions). Run with `--nocapture` to see the figures.
#[tokio::test]
async fn capacity_of_reading_memory_and_of_a_window_with_facts() {
    let store = fresh_store(config()).await;
    let session = new_session(&store, &alice()).await;
    let realistic = |i: usize| format!("owns volumes 1-{} of A Manga Series Title Number {i}", i % 9 + 1);

    // A window of three facts.
    store.reset_consumed();
    let three: Vec<FactDraft> = (0..3).map(|i| draft(session, &realistic(i))).collect();
    store.write_facts("alice", session, &three).await.unwrap();
    let window = store.consumed();
    let items = memory_items(&store, "alice").await;
    let meta = scan_table(&store).await.into_iter().find(|i| i["SK"].as_s().unwrap() == tidewater::keys::META).unwrap();
    let units = |size: usize| size.div_ceil(item_size::WRITE_UNIT_BYTES) as f64;
    let priced = 2.0 * items.iter().map(|i| units(item_size::item_size(i))).sum::<f64>()
        + 2.0 * units(item_size::item_size(&meta));

    // Reads: 20 facts of 20, and 20 of 50 (the default cap).
    for i in 3..20 {
        store.write_facts("alice", session, &[draft(session, &realistic(i))]).await.unwrap();
    }
    store.reset_consumed();
    let twenty = store.recent_facts("alice", 20).await.unwrap();
    let read_20 = store.consumed().read_units;
    for i in 20..50 {
        store.write_facts("alice", session, &[draft(session, &realistic(i))]).await.unwrap();
    }
    store.reset_consumed();
    let of_fifty = store.recent_facts("alice", 20).await.unwrap();
    let read_50 = store.consumed().read_units;
    let sizes: Vec<usize> = memory_items(&store, "alice").await.iter().map(item_size::item_size).collect();
    let query_of = |sizes: &[usize]| sizes.iter().sum::<usize>().div_ceil(item_size::READ_UNIT_BYTES) as f64 * 0.5;

    println!(
        "memory: a fact item is {}-{} bytes; one Query of 20 facts {read_20} RCU, of 50 facts {read_50} RCU \
         (eventually consistent); a window of 3 facts: {} WCU as DynamoDB Local reports it, {priced} WCU as \
         billed (2 per KB of each fact and of the {}-byte META its ConditionCheck reads), and {} RCU for the \
         trim's read",
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        window.write_units,
        item_size::item_size(&meta),
        window.read_units,
    );
    assert_eq!((twenty.len(), of_fifty.len()), (20, 20));
    assert!(sizes.iter().all(|s| *s < 1024), "a fact is one write unit: {sizes:?}");
    assert_eq!(read_50, query_of(&sizes), "one eventually consistent Query of every fact");
    // A sealed fact's text carries its envelope (about 70 bytes): 50 facts pass 16 KB.
    assert!(read_20 <= 1.0 && read_50 <= 2.5, "{read_20} / {read_50} RCU");
    assert_eq!(priced, 8.0, "three facts and META, each under 1 KB, at 2 WCU each");
}

#[tokio::test]
async fn facts_expire_by_the_stores_clock() {
    // Given facts that live 30 days, written by a store whose clock is ten days ahead,
    let store = fresh_store(Config { memory_ttl: Some(Duration::from_secs(30 * 86_400)), ..config() }).await;
    store.clock().advance(Duration::from_secs(10 * 86_400));
    let session = new_session(&store, &alice()).await;
    let source = FactSource { session_id: session, from_turn: 1, to_turn: 1 };
    let stated_at = tidewater::clock::format(store.clock().now());
    let liked = FactDraft::new(FactKind::Preference, "likes Frieren", "likes Frieren", source, &stated_at).unwrap();
    store.write_facts("alice", session, &[liked]).await.unwrap();

    // then their ttl counts from their statement, by that clock,
    let ttl: i64 = memory_items(&store, "alice").await[0]["ttl"].as_n().unwrap().parse().unwrap();
    let expected = store.clock().now_epoch_seconds() + 30 * 86_400;
    assert!((expected - 60..=expected).contains(&ttl), "{ttl} vs {expected}");
    assert_eq!(store.recent_facts("alice", 20).await.unwrap().len(), 1);

    // and once that clock has moved past it, no read returns them.
    store.clock().advance(Duration::from_secs(31 * 86_400));
    assert!(store.recent_facts("alice", 20).await.unwrap().is_empty());
    assert!(facts(&store, &alice()).await.is_empty());
}

#[tokio::test]
async fn facts_never_push_a_context_past_max_tokens() {
    // Given two facts of four tokens each, and a session of two short turns,
    let store = fresh_store(config()).await;
    let first = new_session(&store, &alice()).await;
    say(&store, &alice(), first, &["I love Frieren", "I prefer digital"]).await;
    summarise(&store, first).await;
    let second = new_session(&store, &alice()).await;
    say(&store, &alice(), second, &["Hello"]).await;

    // when a context with memory may hold only five tokens,
    let body = body_json(&context(&store, &alice(), second, &[("include", "memory"), ("max_tokens", "5")]).await);

    // then every turn makes room first, then the oldest facts, until it fits.
    let memory = body["customer_memory"].as_array().unwrap();
    let tokens = |items: &[Value], field: &str| -> u64 {
        items.iter().map(|item| (item[field].as_str().unwrap().len() as u64).div_ceil(4)).sum()
    };
    let turns = body["turns"].as_array().unwrap();
    assert!(tokens(memory, "text") + tokens(turns, "content") <= 5, "{body}");
    assert_eq!(texts(memory), ["prefers digital"], "the newest fact that fits");
    assert!(turns.is_empty());
    assert_eq!(body["omitted"], json!({"from_turn": 1, "to_turn": 2}));
}

#[tokio::test]
async fn a_forgotten_fact_is_never_pinned_by_a_304() {
    // Given a context with memory, and its ETag,
    let store = fresh_store(config()).await;
    let first = new_session(&store, &alice()).await;
    say(&store, &alice(), first, &["I love Frieren", "I prefer digital"]).await;
    summarise(&store, first).await;
    let second = new_session(&store, &alice()).await;
    let loaded = context(&store, &alice(), second, &[("include", "memory")]).await;
    let tag = loaded.headers()["etag"].to_str().unwrap().to_owned();
    let digital = body_json(&loaded)["customer_memory"][0]["fact_id"].as_str().unwrap().to_owned();

    // when the customer forgets a fact, which leaves the session's version as it was,
    assert_eq!(forget(&store, &alice(), "me", &digital).await.status(), 204);
    let path = format!("/sessions/{second}/context");
    let mut request = api_request(Some(&alice()), "GET", "/sessions/{id}/context", &path, &[("include", "memory")], None);
    request.headers_mut().insert("if-none-match", tag.parse().unwrap());
    let reloaded = load_context::handle(&*store, request).await;

    // then a conditional reload with memory answers the facts as they are now.
    assert_eq!(reloaded.status(), 200, "the facts are not part of the session's version");
    assert_eq!(texts(body_json(&reloaded)["customer_memory"].as_array().unwrap()), ["loves Frieren"]);
}

#[tokio::test]
async fn a_forgotten_fact_stays_forgotten_after_a_new_statement_of_it_expires() {
    let month = Duration::from_secs(30 * 86_400);
    let store = fresh_store(Config { memory_ttl: Some(month), session_ttl: Duration::from_secs(86_400), ..config() }).await;
    let (session, window, digital) = alice_states_two_facts(&store).await;
    assert_eq!(forget(&store, &alice(), "me", &digital).await.status(), 204);

    // An hour on she says it again, in another session: the new statement wins over the deletion.
    store.clock().advance(Duration::from_secs(3_600));
    let later = new_session(&store, &alice()).await;
    say(&store, &alice(), later, &["I prefer digital"]).await;
    store.write_facts("alice", later, &drafts_of(&store, later, 0, 2).await).await.unwrap();
    assert_eq!(texts(&facts(&store, &alice()).await), ["prefers digital", "loves Frieren"]);
    // That statement expires unconfirmed, while the first session is kept alive by its appends.
    for _ in 0..34 {
        store.clock().advance(Duration::from_secs(80_000));
        say(&store, &alice(), session, &["Thanks"]).await;
    }
    expire_memory_as_ttl_would(&store, "alice", store.clock().now().unix_timestamp()).await;

    // The first session's window, stated before the deletion, is summarised again.
    let replayed = store.write_facts("alice", session, &window).await.unwrap();

    assert_eq!(replayed, 0, "a statement made before the deletion never brings the fact back");
    assert!(!texts(&facts(&store, &alice()).await).contains(&"prefers digital"));
}

#[tokio::test]
async fn a_forgotten_fact_stays_forgotten_after_a_new_statement_of_it_is_trimmed_by_the_cap() {
    let store = fresh_store(Config { memory_max_facts: 2, ..config() }).await;
    let (session, window, digital) = alice_states_two_facts(&store).await;
    assert_eq!(forget(&store, &alice(), "me", &digital).await.status(), 204);

    // An hour on she says it again, then two newer facts push it past the cap of two.
    store.clock().advance(Duration::from_secs(3_600));
    let later = new_session(&store, &alice()).await;
    say(&store, &alice(), later, &["I prefer digital"]).await;
    store.write_facts("alice", later, &drafts_of(&store, later, 0, 2).await).await.unwrap();
    store.clock().advance(Duration::from_secs(3_600));
    say(&store, &alice(), later, &["I love Berserk", "I love Vinland Saga"]).await;
    store.write_facts("alice", later, &drafts_of(&store, later, 2, 6).await).await.unwrap();
    assert!(!texts(&facts(&store, &alice()).await).contains(&"prefers digital"));
    // She forgets the two newer ones, which leaves room under the cap.
    for fact in facts(&store, &alice()).await {
        assert_eq!(forget(&store, &alice(), "me", fact["fact_id"].as_str().unwrap()).await.status(), 204);
    }

    // The first session's window, stated before the deletion, is summarised again.
    store.write_facts("alice", session, &window).await.unwrap();

    assert!(!texts(&facts(&store, &alice()).await).contains(&"prefers digital"), "the deletion wins over every earlier statement");
}
