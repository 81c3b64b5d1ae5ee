//! The janitor: what a DELETE, a TTL sweep or a purge cut off half-way leaves behind is found
//! in the work partition, without a Scan, and finished once it is overdue.
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::store::{Janitor, JANITOR_GRACE_SECONDS, STUCK_AFTER_FAILURES};
use tidewater::store::ExpiredSessionSweeper;
use tidewater::{keys, Caller, CustomerPurger, DynamoStore, NewSession, SessionCreator};
use tidewater_tests::*;

fn alice_as_guest() -> Caller {
    Caller::new("alice", ["guest"])
}

/// Moves the store's clock just past the janitor's grace.
fn let_the_grace_pass(store: &DynamoStore) {
    store.clock().advance(Duration::from_secs(JANITOR_GRACE_SECONDS as u64 + 1));
}

#[tokio::test]
async fn a_guest_delete_cut_off_after_the_record_went_is_finished_by_the_janitor_once_overdue() {
    let store = store().await;
    let session = session_with_turns(&store, &alice_as_guest(), 30).await;

    let cut_off = store.delete_session_with(&CutOffAfter::new(&store, 1), &alice_as_guest(), session).await;
    assert!(matches!(cut_off, Err(tidewater::Error::Unavailable(_))), "{cut_off:?}");
    let left = session_item_count(&store, session).await;
    assert!(left > 0 && left < 61, "{left}");

    let early = store.janitor_pass(store.clock().now()).await.unwrap();
    assert_eq!(session_item_count(&store, session).await, left, "nothing is touched while the delete may still run: {early:?}");

    let_the_grace_pass(&store);
    let report = store.janitor_pass(store.clock().now()).await.unwrap();

    assert_eq!(report.sessions_finished, 1, "{report:?}");
    assert_eq!(report.items_deleted, left as u64, "{report:?}");
    assert!(scan_table(&store).await.is_empty(), "nothing is left, work item and marker included");
}

#[tokio::test]
async fn a_ttl_sweep_cut_off_half_way_is_finished_by_the_janitor() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 30).await;
    delete_meta_as_ttl_would(&store, session).await;

    let cut_off = store.sweep_expired_with(&CutOffAfter::new(&store, 1), &session, Some("alice")).await;
    assert!(cut_off.is_err());
    assert!(session_item_count(&store, session).await > 0);

    let_the_grace_pass(&store);
    let report = store.janitor_pass(store.clock().now()).await.unwrap();

    assert_eq!(report.sessions_finished, 1, "{report:?}");
    assert!(scan_table(&store).await.is_empty(), "turns, registry entry and work item are gone");
}

#[tokio::test]
async fn an_abandoned_purge_is_finished_by_the_janitor_and_creates_work_again() {
    let store = store().await;
    for _ in 0..2 {
        session_with_turns(&store, &alice(), 20).await;
    }
    let cut_off = store.purge_customer_with(&CutOffAfter::new(&store, 1), "alice", "req-abandoned").await;
    assert!(cut_off.is_err());
    let locked = store.create_session(&alice(), NewSession::default()).await;
    assert!(matches!(locked, Err(tidewater::Error::Conflict(_))), "{locked:?}");

    let early = store.janitor_pass(store.clock().now()).await.unwrap();
    assert_eq!(early.purges_finished, 0, "the purge may still be running: {early:?}");
    let_the_grace_pass(&store);
    let report = store.janitor_pass(store.clock().now()).await.unwrap();

    assert_eq!(report.purges_finished, 1, "{report:?}");
    // The caller who comes back gets the receipt the janitor wrote, with exact counts.
    let receipt = store.purge_customer("alice", "req-back").await.unwrap();
    assert_eq!(receipt.request_id, "req-abandoned");
    assert_eq!((receipt.sessions_deleted, receipt.items_deleted), (2, 2 * 41), "{receipt:?}");
    store.create_session(&alice(), NewSession::default()).await.expect("the customer can create sessions again");
}

#[tokio::test]
async fn a_pass_with_nothing_overdue_reads_one_page_and_writes_nothing() {
    let store = store().await;
    session_with_turns(&store, &alice(), 2).await;
    let before = scan_table(&store).await.len();
    store.reset_consumed();

    let report = store.janitor_pass(store.clock().now()).await.unwrap();

    assert_eq!((report.sessions_finished, report.purges_finished, report.items_deleted), (0, 0, 0));
    assert_eq!(store.consumed().write_units, 0.0);
    assert!(store.consumed().read_units <= 1.0, "{:?}", store.consumed());
    assert_eq!(scan_table(&store).await.len(), before);
}

#[tokio::test]
async fn the_scheduled_sample_runs_through_the_handler() {
    let store = store().await;
    let session = session_with_turns(&store, &alice_as_guest(), 30).await;
    let _ = store.delete_session_with(&CutOffAfter::new(&store, 1), &alice_as_guest(), session).await;
    let_the_grace_pass(&store);
    let event: serde_json::Value = serde_json::from_str(include_str!("../events/janitor.json")).unwrap();

    let report = janitor::handle(&*store, event).await.unwrap();

    assert_eq!(report.sessions_finished, 1);
    assert_eq!(session_item_count(&store, session).await, 0);
}

#[tokio::test]
async fn a_marker_the_janitor_finds_on_a_live_session_does_not_outlive_it() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 3).await;
    // A DELETE whose last answer is lost leaves its marker; the client creates the same id again.
    let lost = store.delete_session_with(&AnswerLost { store: &store }, &alice(), session).await;
    assert!(lost.is_err());
    assert_eq!(session_item_count(&store, session).await, 0);
    let again = NewSession { session_id: Some(session), page_context: None };
    store.create_session(&alice(), again).await.unwrap();

    let_the_grace_pass(&store);
    let report = store.janitor_pass(store.clock().now()).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    // The new session expires, and its sweep runs.
    delete_meta_as_ttl_would(&store, session).await;
    store.sweep_expired_session(&session, Some("alice")).await.unwrap();

    let left: Vec<String> =
        scan_table(&store).await.iter().map(|item| format!("{:?} {:?}", item["PK"], item["SK"])).collect();
    assert!(left.is_empty(), "nothing outlives the session: {left:?}");
}

/// Writes a work item (or any item) as it is, bypassing the store.
async fn put_raw(store: &DynamoStore, item: &[(&str, &str)]) {
    let item = item.iter().map(|(name, value)| (name.to_string(), AttributeValue::S(value.to_string()))).collect();
    store.client().put_item().table_name(&store.config().table_name).set_item(Some(item)).send().await.unwrap();
}

#[tokio::test]
async fn a_work_item_the_pass_cannot_finish_is_counted_and_kept_and_the_items_after_it_are_finished() {
    let store = store().await;
    // Two poisoned work items, due before anything else: one whose session id is no id, and a
    // purge whose ledger cannot be read.
    let unreadable = keys::work_sk(1, "SESSION#not-an-id");
    put_raw(&store, &[("PK", keys::WORK_PK), ("SK", &unreadable), ("session_id", "not-an-id")]).await;
    let broken = keys::work_sk(2, &keys::purge_task("poisoned"));
    put_raw(&store, &[("PK", keys::WORK_PK), ("SK", &broken), ("customer_hash", "poisoned")]).await;
    put_raw(&store, &[("PK", &keys::privacy_pk("poisoned")), ("SK", keys::PURGE_LEDGER), ("receipt_id", "not-a-uuid")]).await;
    // After them, two guest DELETEs cut off half-way.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let session = session_with_turns(&store, &alice_as_guest(), 30).await;
        let cut_off = store.delete_session_with(&CutOffAfter::new(&store, 1), &alice_as_guest(), session).await;
        assert!(cut_off.is_err());
        sessions.push(session);
    }
    let_the_grace_pass(&store);

    let first = store.janitor_pass(store.clock().now()).await.expect("a pass goes on past a failing item");

    assert_eq!((first.sessions_finished, first.failed, first.stuck), (2, 2, 0), "{first:?}");
    for session in &sessions {
        assert_eq!(session_item_count(&store, *session).await, 0);
    }
    let left = scan_table(&store).await.into_iter().filter(|i| i["PK"].as_s().unwrap() == keys::WORK_PK).collect::<Vec<_>>();
    let stamped: Vec<(&str, &str, bool)> = left
        .iter()
        .map(|i| (i["SK"].as_s().unwrap().as_str(), i["failures"].as_n().unwrap().as_str(), i.contains_key("last_error")))
        .collect();
    assert_eq!(stamped, [(unreadable.as_str(), "1", true), (broken.as_str(), "1", true)], "kept, with a failure counted");

    // They fail the next passes too, and the third reports them stuck; the function answers
    // an error, so that its alarm fires.
    store.janitor_pass(store.clock().now()).await.unwrap();
    let third = store.janitor_pass(store.clock().now()).await.unwrap();
    assert_eq!(STUCK_AFTER_FAILURES, 3);
    assert_eq!((third.failed, third.stuck), (2, 2), "{third:?}");
    assert!(janitor::handle(&*store, serde_json::json!({})).await.is_err());
}
