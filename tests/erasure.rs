//! Erasing a session against what races it: a create of the same id while a DELETE or a TTL
//! sweep is under way, and a DELETE by someone else of a session whose `~META` is gone.
use std::sync::atomic::{AtomicBool, Ordering};

use tidewater::store::{customer_hash, BatchDeleter, ItemKey};
use tidewater::{
    Caller, ContextLoader, CustomerPurger, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender,
};
use tidewater_tests::*;
use uuid::Uuid;

async fn append(store: &DynamoStore, caller: &Caller, session_id: Uuid, response_id: &str) {
    let turn = NewTurn {
        response_id: response_id.into(),
        role: "user".into(),
        content: format!("{response_id}: is volume 3 of Frieren in stock?"),
        intent: None,
        token_count: None,
        item: None,
    };
    store.append_turn(caller, session_id, turn.validate(store.config()).unwrap()).await.unwrap();
}

/// A session of `caller`'s with the id `session_id` and `turns` turns.
async fn session_with_id(store: &DynamoStore, caller: &Caller, session_id: Uuid, turns: usize) {
    let request = NewSession { session_id: Some(session_id), page_context: None };
    store.create_session(caller, request).await.unwrap();
    for i in 0..turns {
        append(store, caller, session_id, &format!("r{i}")).await;
    }
}

/// Whether `customer`'s registry holds the session.
async fn registered(store: &DynamoStore, customer: &str, session_id: Uuid) -> bool {
    let pk = tidewater::keys::privacy_pk(&customer_hash(TEST_RECEIPT_SALT, customer));
    let sk = tidewater::keys::registry_sk(&session_id);
    scan_table(store).await.iter().any(|item| item["PK"].as_s().is_ok_and(|p| *p == pk) && item["SK"].as_s().is_ok_and(|s| *s == sk))
}

/// Lets every batch through; right after the first, the customer creates a session with the
/// same id (the earlier one's items are all gone by then) and appends to it.
struct CreateAfterFirstBatch<'a> {
    store: &'a DynamoStore,
    caller: Caller,
    session_id: Uuid,
    done: AtomicBool,
}

impl BatchDeleter for CreateAfterFirstBatch<'_> {
    async fn delete_batch(&self, keys: &[ItemKey]) -> Result<(), tidewater::Error> {
        BatchDeleter::delete_batch(self.store, keys).await?;
        if !self.done.swap(true, Ordering::SeqCst) {
            session_with_id(self.store, &self.caller, self.session_id, 0).await;
            append(self.store, &self.caller, self.session_id, "new-1").await;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_delete_racing_a_create_of_the_same_id_leaves_the_new_session_whole() {
    let store = store().await;
    let session_id = Uuid::new_v4();
    session_with_id(&store, &alice(), session_id, 3).await;
    let racer = CreateAfterFirstBatch { store: &store, caller: alice(), session_id, done: AtomicBool::new(false) };

    store.delete_session_with(&racer, &alice(), session_id).await.unwrap();

    assert!(racer.done.load(Ordering::SeqCst), "the create ran while the delete was under way");
    let context = store.load_context(&alice(), session_id, newest(10, true)).await;
    let turns: Vec<String> = context.expect("the new session lives").turns.into_iter().map(|t| t.content).collect();
    assert_eq!(turns, ["new-1: is volume 3 of Frieren in stock?"]);
    assert!(registered(&store, "alice", session_id).await, "the new session stays in its owner's registry");
    let receipt = store.purge_customer("alice", "req").await.unwrap();
    assert_eq!((receipt.sessions_deleted, receipt.items_deleted), (1, 3), "a later purge finds it");
}

#[tokio::test]
async fn a_ttl_sweep_racing_a_create_of_the_same_id_leaves_the_new_session_whole() {
    let store = store().await;
    let session_id = Uuid::new_v4();
    session_with_id(&store, &alice(), session_id, 3).await;
    delete_meta_as_ttl_would(&store, session_id).await;
    let racer = CreateAfterFirstBatch { store: &store, caller: alice(), session_id, done: AtomicBool::new(false) };

    store.sweep_expired_with(&racer, &session_id, Some("alice")).await.unwrap();

    assert!(racer.done.load(Ordering::SeqCst));
    let context = store.load_context(&alice(), session_id, newest(10, true)).await.expect("the new session lives");
    assert_eq!(context.turns.len(), 1);
    assert_eq!(session_item_count(&store, session_id).await, 3, "META, its turn and the turn's idempotency record");
    assert!(registered(&store, "alice", session_id).await, "the new session stays in its owner's registry");
}

#[tokio::test]
async fn a_delete_by_someone_else_of_a_session_whose_record_is_gone_deletes_and_counts_nothing() {
    let store = store().await;
    let session_id = Uuid::new_v4();
    session_with_id(&store, &alice(), session_id, 3).await;
    delete_meta_as_ttl_would(&store, session_id).await;

    let by_bob = store.delete_session_with(&CutOffAfter::new(&store, 100), &bob(), session_id).await;
    let bobs_receipt = store.purge_customer("bob", "req-bob").await.unwrap();

    assert!(by_bob.is_ok(), "{by_bob:?}");
    assert_eq!(session_item_count(&store, session_id).await, 6, "alice's turns are left to her registry and the sweep");
    assert_eq!((bobs_receipt.sessions_deleted, bobs_receipt.items_deleted), (0, 0));
    assert!(registered(&store, "alice", session_id).await);

    // Her own DELETE claims it through her registry.
    store.delete_session_with(&CutOffAfter::new(&store, 100), &alice(), session_id).await.unwrap();
    assert_eq!(session_item_count(&store, session_id).await, 0);
    assert!(!registered(&store, "alice", session_id).await);
}

#[tokio::test]
async fn a_cut_off_delete_by_someone_else_never_lands_in_their_receipt() {
    let store = store().await;
    let session_id = Uuid::new_v4();
    session_with_id(&store, &alice(), session_id, 30).await;
    delete_meta_as_ttl_would(&store, session_id).await;

    let cut_off = store.delete_session_with(&CutOffAfter::new(&store, 1), &bob(), session_id).await;
    let bobs_receipt = store.purge_customer("bob", "req-bob").await.unwrap();

    assert!(cut_off.is_ok() || matches!(cut_off, Err(tidewater::Error::Unavailable(_))), "{cut_off:?}");
    assert_eq!((bobs_receipt.sessions_deleted, bobs_receipt.items_deleted), (0, 0), "{bobs_receipt:?}");
}

#[tokio::test]
async fn a_purge_after_a_delete_whose_answer_was_lost_and_a_create_of_the_same_id_counts_what_it_deleted() {
    let store = store().await;
    let session_id = Uuid::new_v4();
    session_with_id(&store, &alice(), session_id, 3).await;
    let lost = store.delete_session_with(&AnswerLost { store: &store }, &alice(), session_id).await;
    assert!(matches!(lost, Err(tidewater::Error::Unavailable(_))), "{lost:?}");
    assert_eq!(session_item_count(&store, session_id).await, 0, "the delete was applied");

    // The client starts over with the same id, and later the customer is purged.
    session_with_id(&store, &alice(), session_id, 0).await;
    append(&store, &alice(), session_id, "new-1").await;
    let receipt = store.purge_customer("alice", "req").await.unwrap();

    assert_eq!(session_item_count(&store, session_id).await, 0);
    assert_eq!((receipt.sessions_deleted, receipt.items_deleted), (1, 3), "META, one turn and its idempotency record: {receipt:?}");
}
