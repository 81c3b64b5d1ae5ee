//! Key leases (issue 23): a read of a key item spares the next reads of it for `KEY_LEASE_MS`,
//! never longer, and a purge waits out every lease before its receipt, so a warm instance
//! opens nothing of a purged customer's after the receipt. The clock moves; nothing sleeps.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::crypto::MAX_KEY_LEASE;
use tidewater::store::KEY_LEASE_MARGIN;
use tidewater::{keys, ContextLoader, CustomerPurger, DynamoStore, Error, Janitor, NewTurn, TurnAppender};
use tidewater_tests::{alice, client_through_proxy_with, fresh_store, newest, scan_table, session_with_turns, test_config, AppendsThenDies};

type Item = HashMap<String, AttributeValue>;

/// Another function instance: the same table, master key and clock, a cache of its own.
fn another_instance(store: &DynamoStore) -> DynamoStore {
    DynamoStore::new(store.client().clone(), store.config().clone().with_empty_key_cache()).with_clock(store.clock().clone())
}

fn turn(response_id: &str) -> NewTurn {
    NewTurn {
        response_id: response_id.into(),
        role: "user".into(),
        content: "my card number is 4111".into(),
        intent: None,
        token_count: None,
        item: None,
    }
}

/// Every item of the table holding sealed content: a backup's copy.
async fn copy_of_content(store: &DynamoStore) -> Vec<Item> {
    scan_table(store).await.into_iter().filter(|item| item.contains_key("content")).collect()
}

/// Deletes alice's key item, as a purge's first step does, without a purge's wait.
async fn delete_alices_key(store: &DynamoStore) {
    let salt = store.config().receipt_salt().unwrap().expose().to_owned();
    let key_ref = keys::customer_data_key(&tidewater::store::customer_hash(&salt, "alice"));
    store.client().delete_item().table_name(store.config().key_table()).key(keys::PK, AttributeValue::S(key_ref)).send().await.unwrap();
}

#[tokio::test]
async fn a_lease_spares_the_key_read_until_its_bound_and_not_after() {
    // Given alice's session, and a warm instance that has just opened it, with the longest
    // lease (the real time the test takes, which the clock counts too, is a sliver of it)
    let lease = MAX_KEY_LEASE;
    let store = fresh_store(tidewater::Config { key_lease: lease, ..test_config() }).await;
    let session = session_with_turns(&store, &alice(), 2).await;
    let copy = copy_of_content(&store).await;
    let warm = another_instance(&store);
    warm.open_copied_item(&copy[0]).await.expect("opens while the key exists");

    // When the key item is deleted behind its back (with no purge to wait out the lease)
    delete_alices_key(&store).await;

    // Then the warm instance's lease still vouches for the key before its bound
    assert!(warm.open_copied_item(&copy[0]).await.is_ok(), "the lease spares the read");
    // and past its bound, the next use reads the key item and finds it gone
    store.clock().advance(lease);
    let opened = warm.open_copied_item(&copy[0]).await;
    assert!(matches!(opened, Err(Error::NotFound)), "a lease outlived its bound: {opened:?}");
    let loaded = warm.load_context(&alice(), session, newest(10, true)).await;
    assert!(matches!(loaded, Err(Error::NotFound)), "{loaded:?}");
}

#[tokio::test]
async fn a_clock_set_back_ends_a_lease() {
    // Given a warm instance that has just opened alice's content
    let store = fresh_store(test_config()).await;
    session_with_turns(&store, &alice(), 1).await;
    let copy = copy_of_content(&store).await;
    let warm = another_instance(&store);
    warm.open_copied_item(&copy[0]).await.expect("opens while the key exists");

    // When the key item is deleted and the clock is set back (its lease would look young for ever)
    delete_alices_key(&store).await;
    store.clock().rewind(Duration::from_secs(3_600));

    // Then the warm instance trusts no lease and finds the key gone
    let opened = warm.open_copied_item(&copy[0]).await;
    assert!(matches!(opened, Err(Error::NotFound)), "a lease survived a clock set back: {opened:?}");
}

#[tokio::test]
async fn a_purge_racing_a_warm_load_and_append_leaves_them_nothing_to_open_after_the_receipt() {
    // Given alice's session and a warm instance that keeps loading it and appending to it
    let store = fresh_store(test_config()).await;
    let session = session_with_turns(&store, &alice(), 2).await;
    let warm = another_instance(&store);
    warm.load_context(&alice(), session, newest(10, true)).await.expect("loads before the purge");
    let copy = copy_of_content(&store).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let racing = async {
        let mut at = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = warm.load_context(&alice(), session, newest(10, true)).await;
            let draft = turn(&format!("racing-{at}")).validate(store.config()).unwrap();
            let _ = TurnAppender::append_turn(&warm, &alice(), session, draft).await;
            at += 1;
        }
    };
    let started = store.clock().stamp();

    // When alice is purged meanwhile
    let purge = async {
        let receipt = store.purge_customer("alice", "req-race").await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        receipt
    };
    let (receipt, ()) = tokio::join!(purge, racing);
    receipt.expect("the purge finishes");

    // Then the receipt came no sooner than a lease and its margin after the purge began
    let waited = started.elapsed_to(store.clock().stamp()).unwrap();
    assert!(waited >= store.config().key_lease + KEY_LEASE_MARGIN, "{waited:?}");
    // and after it the warm instance opens nothing of alice's, old or raced
    for item in copy.iter().chain(&copy_of_content(&store).await) {
        let opened = warm.open_copied_item(item).await;
        assert!(matches!(opened, Err(Error::NotFound)), "opened after the receipt: {opened:?}");
    }
    let draft = turn("late").validate(store.config()).unwrap();
    assert!(matches!(TurnAppender::append_turn(&warm, &alice(), session, draft).await, Err(Error::NotFound)));
}

#[tokio::test]
async fn the_janitor_finishing_a_cut_off_purge_waits_out_the_lease_of_a_key_raced_into_being() {
    // Given more sessions of alice's than the purge erases at once
    let store = fresh_store(test_config()).await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(session_with_turns(&store, &alice(), 1).await);
    }

    // When another instance's appends race the purge after it destroyed the key (making a
    // new key, which that instance then holds a lease on), and the purge dies
    let appender = another_instance(&store);
    let racing = AppendsThenDies::new(&store, &appender, sessions.clone());
    assert!(store.purge_customer_with(&racing, "alice", "req-raced").await.is_err());
    let copy = copy_of_content(&store).await;
    let mut raced = 0;
    for item in &copy {
        raced += usize::from(appender.open_copied_item(item).await.is_ok());
    }
    assert!(raced > 0, "an append landed under a key made during the purge");
    // and the janitor finishes the purge once it is overdue
    store.clock().advance(Duration::from_secs(tidewater::store::JANITOR_GRACE_SECONDS as u64 + 1));
    let started = store.clock().stamp();
    assert_eq!(store.janitor_pass(store.clock().now()).await.unwrap().purges_finished, 1);

    // Then its receipt waited out the lease
    let waited = started.elapsed_to(store.clock().stamp()).unwrap();
    assert!(waited >= store.config().key_lease + KEY_LEASE_MARGIN, "{waited:?}");
    // and the instance that made the raced key opens none of its content any more
    for item in &copy {
        let opened = appender.open_copied_item(item).await;
        assert!(matches!(opened, Err(Error::NotFound)), "opened after the janitor's receipt: {opened:?}");
    }
    let loaded = appender.load_context(&alice(), sessions[5], newest(10, true)).await;
    assert!(matches!(loaded, Err(Error::NotFound)), "{loaded:?}");
}

#[tokio::test]
async fn a_key_whose_reads_answer_past_their_lease_is_not_used_and_the_open_is_retryable() {
    // Given alice's content, and an instance whose key reads answer later than its lease (a
    // stalled network, a starved instance), so a purge's receipt may come before the answer
    let lease = Duration::from_millis(200);
    let store = fresh_store(tidewater::Config { key_lease: lease, ..test_config() }).await;
    session_with_turns(&store, &alice(), 1).await;
    let copy = copy_of_content(&store).await;
    let plan = tidewater_local::fault::Plan::parse("latency@GetItem=1", lease * 2).unwrap();
    let (client, _proxy) = client_through_proxy_with(plan, store.clock().clone()).await;
    let slow = DynamoStore::new(client, store.config().clone().with_empty_key_cache()).with_clock(store.clock().clone());

    // When it opens the content: the key's read answers past the lease, and so does its read again
    let opened = slow.open_copied_item(&copy[0]).await;

    // Then it decrypts nothing and answers retryable
    assert!(matches!(opened, Err(Error::Unavailable(_))), "decrypted with a key no lease vouched for: {opened:?}");
    // while an instance whose reads answer in time opens it
    assert!(another_instance(&store).open_copied_item(&copy[0]).await.is_ok());
}

#[tokio::test]
async fn a_purge_waits_out_the_longest_lease_whatever_its_own_setting() {
    // Given a purging function set with no lease of its own, beside others that may hold the longest
    let store = fresh_store(tidewater::Config { key_lease: Duration::ZERO, ..test_config() }).await;
    session_with_turns(&store, &alice(), 1).await;
    let started = store.clock().stamp();

    // When it purges alice
    store.purge_customer("alice", "req-own-lease").await.expect("the purge finishes");

    // Then its receipt came no sooner than the longest lease and its margin after the purge began
    let waited = started.elapsed_to(store.clock().stamp()).unwrap();
    assert!(waited >= MAX_KEY_LEASE + KEY_LEASE_MARGIN, "{waited:?}");
}
