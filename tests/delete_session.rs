//! `DELETE /sessions/{id}`: every item of the session goes, whatever its kind.
use std::time::Duration;

use tidewater::{
    Caller, Config, ContextLoader, CustomerPurger, DynamoStore, NewSession, NewTurn, SessionCreator, SummaryWriter,
    TurnAppender,
};
use tidewater_tests::*;
use uuid::Uuid;

const SAMPLE_SESSION: &str = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f";

async fn session_with_turns(store: &DynamoStore, caller: &Caller, turns: usize) -> Uuid {
    let session_id = store.create_session(caller, NewSession::default()).await.unwrap().session_id;
    for i in 0..turns {
        let turn = NewTurn {
            response_id: format!("r{i}"),
            role: "user".into(),
            content: format!("turn {i}"),
            intent: None,
            token_count: None,
            item: None,
        };
        store.append_turn(caller, session_id, turn.validate(store.config()).unwrap()).await.unwrap();
    }
    session_id
}

async fn delete(store: &DynamoStore, caller: &Caller, session_id: Uuid) -> lambda_http::Response<lambda_http::Body> {
    let path = format!("/sessions/{session_id}");
    delete_session::handle(store, api_request(Some(caller), "DELETE", "/sessions/{id}", &path, &[], None)).await
}

/// The items still under the session's partition.
async fn items_of(store: &DynamoStore, session_id: Uuid) -> usize {
    let pk = tidewater::keys::session_pk(&session_id);
    scan_table(store).await.iter().filter(|item| item["PK"].as_s().is_ok_and(|p| *p == pk)).count()
}

#[tokio::test]
async fn deleting_a_session_removes_meta_turns_summaries_and_idempotency_records() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 30).await;
    assert!(store.put_summary(session, 20, "Alice asked about Frieren.").await.unwrap());
    assert_eq!(items_of(&store, session).await, 1 + 30 + 30 + 2, "META, turns, idempotency records, the summary and its latest copy");

    let response = delete(&store, &alice(), session).await;

    assert_eq!(response.status(), 204);
    assert!(response.body().is_empty());
    assert_eq!(scan_table(&store).await.len(), 0, "nothing left: no session items and no pending marker");
}

#[tokio::test]
async fn deleting_again_answers_204() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 2).await;

    let first = delete(&store, &alice(), session).await;
    let again = delete(&store, &alice(), session).await;

    assert_eq!((first.status().as_u16(), again.status().as_u16()), (204, 204));
}

#[tokio::test]
async fn deleting_a_session_that_never_existed_answers_204() {
    let store = store().await;

    let response = delete(&store, &alice(), Uuid::new_v4()).await;

    assert_eq!(response.status(), 204);
    assert_eq!(scan_table(&store).await.len(), 0);
}

#[tokio::test]
async fn deleting_someone_elses_session_answers_204_as_for_a_missing_one_and_deletes_nothing() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 3).await;
    let support = Caller::new("carol", ["support"]);

    assert_eq!(delete(&store, &bob(), session).await.status(), 204);
    assert_eq!(delete(&store, &support, session).await.status(), 204);
    assert_eq!(delete(&store, &bob(), Uuid::new_v4()).await.status(), 204, "the same answer as for no session");

    assert_eq!(items_of(&store, session).await, 1 + 3 + 3);
    assert_eq!(
        scan_table(&store).await.len(),
        8,
        "the session and alice's registry entry remain; bob's pending marker is gone"
    );
    let context = store
        .load_context(&alice(), session, tidewater_tests::newest(10, true))
        .await
        .unwrap();
    assert_eq!(context.turns.len(), 3);
}

#[tokio::test]
async fn the_owner_may_delete_an_expired_session() {
    let store = fresh_store(Config { session_ttl: Duration::from_secs(6), ..test_config() }).await;
    let session = session_with_turns(&store, &alice(), 2).await;
    store.clock().advance(Duration::from_millis(7_100));

    let response = delete(&store, &alice(), session).await;

    assert_eq!(response.status(), 204);
    assert_eq!(scan_table(&store).await.len(), 0);
}

#[tokio::test]
async fn appending_to_a_deleted_session_answers_404_and_recreates_nothing() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 2).await;
    delete(&store, &alice(), session).await;

    let turn = NewTurn { response_id: "late".into(), role: "user".into(), content: "hello?".into(), intent: None, token_count: None, item: None };
    let appended = store.append_turn(&alice(), session, turn.validate(store.config()).unwrap()).await;

    assert!(matches!(appended, Err(tidewater::Error::NotFound)), "{appended:?}");
    assert_eq!(scan_table(&store).await.len(), 0);
}

#[tokio::test]
async fn a_deletion_cut_off_half_way_is_finished_by_a_repeat() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 40).await;

    let cut_off = store.delete_session_with(&CutOffAfter::new(&store, 1), &alice(), session).await;
    assert!(matches!(cut_off, Err(tidewater::Error::Unavailable(_))), "{cut_off:?}");
    assert_eq!(items_of(&store, session).await, 80 - 25, "META and one batch went before the cut");

    let repeat = delete(&store, &alice(), session).await;

    assert_eq!(repeat.status(), 204);
    assert_eq!(scan_table(&store).await.len(), 0);
}

#[tokio::test]
async fn a_deletion_cut_off_half_way_is_finished_by_the_customers_purge() {
    let store = store().await;
    let session = session_with_turns(&store, &alice(), 40).await;
    let cut_off = store.delete_session_with(&CutOffAfter::new(&store, 0), &alice(), session).await;
    assert!(cut_off.is_err());
    // META is gone, so the customer index no longer knows the session; the marker does.

    let receipt = store.purge_customer("alice", "req-1").await.unwrap();

    assert_eq!((receipt.sessions_deleted, receipt.items_deleted), (1, 81), "every item of the session, META included");
    let mut left: Vec<String> = scan_table(&store).await.iter().map(|i| i["PK"].as_s().unwrap().clone()).collect();
    left.sort();
    let hash = tidewater::store::customer_hash(TEST_RECEIPT_SALT, "alice");
    assert_eq!(left, vec![tidewater::keys::privacy_pk(&hash), tidewater::keys::receipt_pk(&receipt.receipt_id)], "the receipt and its id");
}

#[tokio::test]
async fn delete_session_sample_deletes_the_sample_session() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;
    append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn.json"))).await;
    assert_eq!(items_of(&store, Uuid::parse_str(SAMPLE_SESSION).unwrap()).await, 3);

    let response = delete_session::handle(&*store, event_request(include_str!("../events/delete-session.json"))).await;

    assert_eq!(response.status(), 204);
    assert_eq!(scan_table(&store).await.len(), 0);
}

#[tokio::test]
async fn delete_session_bad_input_sample_gets_400() {
    let store = store().await;

    let response =
        delete_session::handle(&*store, event_request(include_str!("../events/delete-session-bad-input.json"))).await;

    assert_error(&response, 400, "bad_request");
}
