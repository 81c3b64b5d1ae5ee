//! The session lifecycle: no item of a live session dies early, nothing outlives its
//! session, a purge receipt is always true, an id never comes back with old items, and a
//! due summary always gets written in the end. Time moves through the store's clock.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use tidewater::store::{BatchDeleter, ItemKey};
use tidewater::{
    keys, Caller, DynamoStore, Error, NewSession, NewTurn, SessionCreator, SummaryWriter, TurnAppender,
};
use tidewater_local::filter::StreamMapping;
use tidewater_tests::*;
use uuid::Uuid;

type Item = HashMap<String, AttributeValue>;

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");

fn turn(i: u64) -> tidewater::TurnDraft {
    let turn = NewTurn { response_id: format!("msg-{i}"), role: "user".into(), content: format!("turn {i}"), intent: None, token_count: None, item: None };
    turn.validate(&tidewater::Config::default()).unwrap()
}

async fn session_with_turns(store: &DynamoStore, caller: &Caller, turns: u64) -> Uuid {
    let session = store.create_session(caller, NewSession::default()).await.unwrap().session_id;
    for i in 1..=turns {
        store.append_turn(caller, session, turn(i)).await.unwrap();
    }
    session
}

/// Every item whose partition is the session's, or whose key names it (registry, markers).
async fn items_of(store: &DynamoStore, session: Uuid) -> Vec<Item> {
    let id = session.to_string();
    scan_table(store)
        .await
        .into_iter()
        .filter(|item| {
            [keys::PK, keys::SK].iter().any(|k| item.get(*k).and_then(|v| v.as_s().ok()).is_some_and(|v| v.contains(&id)))
        })
        .collect()
}

#[tokio::test]
async fn thirty_days_of_daily_activity_keep_every_turn_and_idempotency_record() {
    let store = store().await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;

    for day in 1..=30 {
        store.append_turn(&alice(), session, turn(day)).await.unwrap();
        store.clock().advance(Duration::from_secs(23 * 3_600));
    }

    let items = items_of(&store, session).await;
    let with_prefix = |prefix: &str| items.iter().filter(|i| i[keys::SK].as_s().unwrap().starts_with(prefix)).count();
    assert_eq!(with_prefix(keys::TURN_PREFIX), 30);
    assert_eq!(with_prefix(keys::RESPONSE_PREFIX), 30);
    let expiring: Vec<&Item> = items.iter().filter(|i| i.contains_key("ttl") && i[keys::SK].as_s().unwrap() != keys::META).collect();
    assert!(expiring.is_empty(), "only the session record carries a ttl: {expiring:?}");
    let retry = store.append_turn(&alice(), session, turn(1)).await.unwrap();
    assert_eq!((retry.turn_index, retry.duplicate), (1, true));
}

#[tokio::test]
async fn a_ttl_removal_of_the_session_record_sweeps_every_other_item() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 12).await;
    store.put_summary(session, 10, "Alice asked about Frieren.").await.unwrap();
    let old_image = delete_meta_as_ttl_would(&store, session).await;
    assert!(items_of(&store, session).await.len() > 20);

    let by_user: Event = serde_json::from_value(json!({"Records": [ttl_removal(&old_image, false)]})).unwrap();
    assert!(sweep_expired::handle(&*store, by_user).await.batch_item_failures.is_empty());
    assert!(items_of(&store, session).await.len() > 20, "only TTL removals are swept");

    let by_ttl: Event = serde_json::from_value(json!({"Records": [ttl_removal(&old_image, true)]})).unwrap();
    let mapping = StreamMapping::load(TEMPLATE, "sweep-expired").unwrap();
    assert!(mapping.filter.matches_record(&by_ttl.records[0]), "the template's filter passes a TTL removal");
    let response = sweep_expired::handle(&*store, by_ttl.clone()).await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(items_of(&store, session).await, Vec::<Item>::new(), "turns, records, summaries and the registry entry are gone");
    assert!(sweep_expired::handle(&*store, by_ttl).await.batch_item_failures.is_empty(), "a redelivery is harmless");
}

#[tokio::test]
async fn the_sweep_sample_runs_through_its_handler() {
    let store = store().await;
    let event: Event = serde_json::from_str(include_str!("../events/sweep-expired.json")).unwrap();
    assert!(StreamMapping::load(TEMPLATE, "sweep-expired").unwrap().filter.matches_record(&event.records[0]));
    assert!(sweep_expired::handle(&*store, event).await.batch_item_failures.is_empty());
}

/// Creates a session for the customer in the middle of the purge's first batch delete.
struct CreatesDuringPurge<'a> {
    store: &'a DynamoStore,
    outcome: Mutex<Option<Result<Uuid, Error>>>,
}

impl BatchDeleter for CreatesDuringPurge<'_> {
    async fn delete_batch(&self, keys: &[ItemKey]) -> Result<(), Error> {
        let first = self.outcome.lock().unwrap().is_none();
        if first {
            let created = self.store.create_session(&alice(), NewSession::default()).await.map(|c| c.session_id);
            *self.outcome.lock().unwrap() = Some(created);
        }
        BatchDeleter::delete_batch(self.store, keys).await
    }
}

#[tokio::test]
async fn a_purge_leaves_nothing_of_expired_removed_live_or_racing_sessions() {
    let store = store().await;
    let expired = session_with_turns(&store, &alice(), 3).await;
    store.clock().advance(Duration::from_secs(2 * 86_400));
    let meta_gone = session_with_turns(&store, &alice(), 4).await;
    delete_meta_as_ttl_would(&store, meta_gone).await;
    let live = session_with_turns(&store, &alice(), 5).await;
    let guest = session_with_turns(&store, &Caller::new("alice", ["guest"]), 2).await;
    let racing = CreatesDuringPurge { store: &store, outcome: Mutex::new(None) };

    let receipt = store.purge_customer_with(&racing, "alice", "req-lifecycle").await.unwrap();

    for session in [expired, meta_gone, live] {
        assert_eq!(items_of(&store, session).await, Vec::<Item>::new(), "session {session} left items");
    }
    match racing.outcome.into_inner().unwrap().expect("a create raced the purge") {
        Err(Error::Conflict(_)) => {}
        Ok(created) => assert_eq!(items_of(&store, created).await, Vec::<Item>::new(), "a session created in time is purged"),
        Err(other) => panic!("a racing create must be refused cleanly, got {other:?}"),
    }
    let hash = tidewater::store::customer_hash(store.config().receipt_salt().unwrap().expose(), "alice");
    let privacy_items: Vec<Item> = scan_table(&store)
        .await
        .into_iter()
        .filter(|i| i[keys::PK].as_s().unwrap() == &keys::privacy_pk(&hash))
        .filter(|i| i[keys::SK].as_s().unwrap() != keys::LAST_RECEIPT)
        .collect();
    assert_eq!(privacy_items, Vec::<Item>::new(), "no registry entry, marker or ledger is left, only the receipt's id");
    assert_eq!(receipt.sessions_deleted, 3);
    assert!(!items_of(&store, guest).await.is_empty(), "guest sessions stay out of purges");
}

#[tokio::test]
async fn an_id_whose_old_items_remain_cannot_be_created_again() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 2).await;
    delete_meta_as_ttl_would(&store, session).await;
    let body = json!({"session_id": session}).to_string();

    let response =
        create_session::handle(&*store, &default_redactor(), api_request(Some(&alice()), "POST", "/sessions", "/sessions", &[], Some(&body))).await;

    assert_error(&response, 409, "session_id_unavailable");
    let retry = store.append_turn(&alice(), session, turn(1)).await;
    assert!(matches!(retry, Err(Error::NotFound)), "no duplicate from the old incarnation: {retry:?}");
}

#[tokio::test]
async fn a_turn_item_beyond_the_count_is_reported_not_retried() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 1).await;
    store
        .client()
        .put_item()
        .table_name(&store.config().table_name)
        .item(keys::PK, AttributeValue::S(keys::session_pk(&session)))
        .item(keys::SK, AttributeValue::S(keys::turn_sk(2)))
        .send()
        .await
        .unwrap();
    store.reset_consumed();

    let outcome = store.append_turn(&alice(), session, turn(2)).await;

    assert!(matches!(outcome, Err(Error::SessionIdUnavailable)), "{outcome:?}");
    assert!(store.consumed().read_units <= 2.0, "one refusal and one read, not 60 rounds: {:?}", store.consumed());
}

/// A MODIFY record of META from its images before and after one append.
fn meta_change(before: &Item, after: &Item) -> aws_lambda_events::dynamodb::EventRecord {
    let image = |item: &Item| -> serde_dynamo::Item { item.clone().into() };
    let mut record = aws_lambda_events::dynamodb::EventRecord::default();
    record.event_name = "MODIFY".to_owned();
    record.change.keys = image(&HashMap::from([(keys::PK.to_owned(), before[keys::PK].clone()), (keys::SK.to_owned(), before[keys::SK].clone())]));
    record.change.old_image = image(before);
    record.change.new_image = image(after);
    record
}

async fn meta(store: &DynamoStore, session: Uuid) -> Item {
    store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key(keys::PK, AttributeValue::S(keys::session_pk(&session)))
        .key(keys::SK, AttributeValue::S(keys::META.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test]
async fn a_due_summary_whose_trigger_was_lost_is_asked_for_again() {
    let store = store().await;
    let filter = StreamMapping::load(TEMPLATE, "summarize").unwrap().filter;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    let due = store.config().summary_due_at(0);
    let mut triggers = Vec::new();
    for i in 1..=due + 25 {
        let before = meta(&store, session).await;
        store.append_turn(&alice(), session, turn(i)).await.unwrap();
        if filter.matches_record(&meta_change(&before, &meta(&store, session).await)) {
            triggers.push(i);
        }
    }
    // The trigger at the due turn was "lost" (nothing consumed it); ten and twenty appends later it fires again.
    assert_eq!(triggers, vec![due, due + 10, due + 20]);

    let redriven = store.rearm_due_summaries().await.unwrap();
    assert_eq!(redriven, 1, "make redrive re-arms the session");
}

#[tokio::test]
async fn a_summary_already_written_is_told_apart_from_a_refused_one() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 25).await;

    assert!(store.put_summary(session, 20, "first").await.unwrap());
    assert!(!store.put_summary(session, 20, "again").await.unwrap(), "already written");
    assert!(!store.put_summary(session, 10, "older").await.unwrap(), "a summary this far exists");
    assert!(matches!(store.put_summary(session, 40, "ahead").await, Err(Error::Conflict(_))), "past the turn count");
}

/// Appends turns `from..=to`, and the indices whose META change passes the summarize filter.
async fn append_and_trigger(store: &DynamoStore, session: Uuid, turns: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    let filter = StreamMapping::load(TEMPLATE, "summarize").unwrap().filter;
    let mut triggers = Vec::new();
    for i in turns {
        let before = meta(store, session).await;
        store.append_turn(&alice(), session, turn(i)).await.unwrap();
        if filter.matches_record(&meta_change(&before, &meta(store, session).await)) {
            triggers.push(i);
        }
    }
    triggers
}

#[tokio::test]
async fn a_summary_that_lands_when_the_next_window_is_already_due_leaves_it_due() {
    // Given a session whose second window became due before the first summary landed,
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 0).await;
    let next_due = store.config().summary_due_at(20);
    append_and_trigger(&store, session, 1..=next_due + 5).await;

    // when the first window's summary lands,
    assert!(store.put_summary(session, 20, "the first window").await.unwrap());

    // then the session is still flagged: ten appends after the window became due the trigger
    // fires again, and `make redrive` finds it.
    assert_eq!(meta(&store, session).await["needs_summary"], AttributeValue::Bool(true));
    let triggers = append_and_trigger(&store, session, next_due + 6..=next_due + 10).await;
    assert_eq!(triggers, vec![next_due + 10]);
    assert_eq!(store.rearm_due_summaries().await.unwrap(), 1, "make redrive re-arms the due window");
}

#[tokio::test]
async fn after_a_summary_lands_the_rearm_starts_afresh() {
    // Given a session whose re-arm flag was flipped while its first summary was late,
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 0).await;
    let due = store.config().summary_due_at(0);
    assert_eq!(append_and_trigger(&store, session, 1..=due + 15).await, vec![due, due + 10]);
    assert_eq!(meta(&store, session).await["summary_rearm"], AttributeValue::Bool(true));

    // when the summary lands,
    assert!(store.put_summary(session, 20, "the first window").await.unwrap());

    // then the flag is reset, so the next window's trigger and its first re-arm both fire.
    let meta_now = meta(&store, session).await;
    assert_eq!((meta_now["needs_summary"].clone(), meta_now["summary_rearm"].clone()), (AttributeValue::Bool(false), AttributeValue::Bool(false)));
    let next_due = store.config().summary_due_at(20);
    let triggers = append_and_trigger(&store, session, due + 16..=next_due + 10).await;
    assert_eq!(triggers, vec![next_due, next_due + 10]);
}

#[tokio::test]
async fn a_session_written_before_the_ttl_margin_keeps_its_expiry_and_gains_the_margin_on_its_next_write() {
    // Given a session whose META was written before the margin: `ttl` = its expiry, no `ttl_margin`,
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 1).await;
    let as_before_the_margin = || {
        update_session_item(&store, session, keys::META)
            .update_expression("SET #ttl = #ttl - ttl_margin REMOVE ttl_margin")
            .expression_attribute_names("#ttl", "ttl")
            .send()
    };
    as_before_the_margin().await.unwrap();
    // when an hour passes and she appends,
    store.clock().advance(Duration::from_secs(3_600));
    let ttl_at = |now: i64| now + store.config().session_ttl.as_secs() as i64 + tidewater::items::TTL_AFTER_EXPIRY_SECONDS;
    let earliest = ttl_at(store.clock().now_epoch_seconds());
    let appended = store.append_turn(&alice(), session, turn(2)).await;
    let latest = ttl_at(store.clock().now_epoch_seconds());

    // then the session was live and the append slid its expiry, now with the margin;
    assert_eq!(appended.expect("a live session").turn_index, 2);
    let meta = meta(&store, session).await;
    let number = |name: &str| meta[name].as_n().unwrap().parse::<i64>().unwrap();
    assert!((earliest..=latest).contains(&number("ttl")), "ttl {} outside {earliest}..={latest}", number("ttl"));
    assert_eq!(number("ttl_margin"), tidewater::items::TTL_AFTER_EXPIRY_SECONDS);
    // and such a META is held to its own ttl: once it passes, the session is gone.
    as_before_the_margin().await.unwrap();
    store.clock().advance(store.config().session_ttl + Duration::from_secs(1));
    assert!(matches!(store.append_turn(&alice(), session, turn(3)).await, Err(Error::NotFound)));
}
