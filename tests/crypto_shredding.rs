//! Crypto-shredding (issue 23): content is sealed under a key per customer, and a purge that
//! destroys the key leaves every copy of the content (a restore of the table, an export, the
//! stream's records) unreadable, even to a function instance that had the key cached.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::{
    codec, keys, Caller, Config, ContextLoader, CustomerPurger, DynamoStore, Error, Janitor, NewSession, SessionCreator,
    SessionPatch, SessionUpdater, SummaryWriter,
};
use tidewater_tests::{alice, bob, fresh_store, newest, scan_table, session_with_turns, stream_copy, test_config};
use uuid::Uuid;

type Item = HashMap<String, AttributeValue>;

/// Another function instance: the same table and master key, a cache of its own.
fn another_instance(store: &DynamoStore) -> DynamoStore {
    DynamoStore::new(store.client().clone(), store.config().clone().with_empty_key_cache()).with_clock(store.clock().clone())
}

fn in_session(items: &[Item], session_id: Uuid) -> Vec<Item> {
    let pk = keys::session_pk(&session_id);
    items.iter().filter(|item| item[keys::PK].as_s().is_ok_and(|p| *p == pk)).cloned().collect()
}

fn with_content(items: &[Item]) -> Vec<Item> {
    items.iter().filter(|item| item.contains_key("content") || item.contains_key("text")).cloned().collect()
}

/// The items that hold sealed content: a turn's, a summary's or a fact's, or a page context.
fn sealed(items: &[Item]) -> Vec<Item> {
    let is_sealed = |item: &&Item| ["content", "text", "page_context"].iter().any(|a| item.get(*a).is_some_and(AttributeValue::is_b));
    items.iter().filter(is_sealed).cloned().collect()
}

fn text_of(item: &Item) -> String {
    let bytes = item.get("content").or_else(|| item.get("text")).and_then(|v| v.as_b().ok()).expect("binary content");
    codec::decompress(bytes.as_ref()).expect("gzip")
}

#[tokio::test]
async fn after_a_purge_no_copy_of_the_customer_opens_even_for_a_warm_instance_and_others_still_do() {
    // Given alice's and bob's sessions, with a summary of alice's
    let store = fresh_store(Config { summary_threshold: 2, summary_keep_recent: 0, ..test_config() }).await;
    let alices = session_with_turns(&store, &alice(), 3).await;
    let bobs = session_with_turns(&store, &bob(), 2).await;
    assert!(store.put_summary(alices, 2, "alice asked about Frieren volumes 0 and 1").await.unwrap());
    // and a session of each whose page context was changed (the stream holds both images)
    let mut with_pages = Vec::new();
    for caller in [alice(), bob()] {
        let page_context = serde_json::json!({"page": "/manga/frieren"}).as_object().cloned();
        let id = store.create_session(&caller, NewSession { session_id: None, page_context }).await.unwrap().session_id;
        let patch = SessionPatch { page_context: serde_json::json!({"page": "/cart"}).as_object().cloned().unwrap() };
        store.update_session(&caller, id, patch, None).await.unwrap();
        with_pages.push(id);
    }

    // and a copy of every item, as a restore or an export holds them, and of every record
    // of the stream, new and old images, as its 24 hours hold them
    let table_copy = scan_table(&store).await;
    let stream_copy = stream_copy(&store).await;
    let alices_stream: Vec<Item> = [alices, with_pages[0]].iter().flat_map(|id| sealed(&in_session(&stream_copy, *id))).collect();
    let bobs_stream: Vec<Item> = [bobs, with_pages[1]].iter().flat_map(|id| sealed(&in_session(&stream_copy, *id))).collect();
    // 3 turns and 2 summary items, META's sealed page context created, then changed (new and old)
    assert_eq!(alices_stream.len(), 3 + 2 + 3, "{alices_stream:?}");
    assert_eq!(bobs_stream.len(), 2 + 3);
    for image in &alices_stream {
        assert!(store.open_copied_item(image).await.is_ok(), "alice's stream images open before the purge");
    }
    let alices_copy = with_content(&in_session(&table_copy, alices));
    let bobs_copy = with_content(&in_session(&table_copy, bobs));
    assert_eq!(alices_copy.len(), 3 + 2, "turns and both summary items");
    for item in alices_copy.iter().chain(&bobs_copy) {
        assert!(!tidewater::store::has_plain_content(item), "stored in the clear: {item:?}");
    }

    // and a warm instance that has opened alice's content
    let warm = another_instance(&store);
    for item in &alices_copy {
        let opened = warm.open_copied_item(item).await.expect("opens before the purge");
        assert!(text_of(&opened).contains("Frieren"));
    }

    // When alice is purged (its wait for key leases moves the shared clock past the warm
    // instance's lease, as the time it waits would pass)
    let receipt = store.purge_customer("alice", "req-shred").await.unwrap();
    assert!(receipt.key_destroyed_at.is_some(), "the receipt states the key's destruction");

    // Then nothing of alice's opens from the copy, for the warm instance or a new one
    for instance in [&warm, &another_instance(&store)] {
        for item in &alices_copy {
            let opened = instance.open_copied_item(item).await;
            assert!(matches!(opened, Err(Error::NotFound)), "alice's content opened after the purge: {opened:?}");
        }
        // and bob's content still does
        for item in &bobs_copy {
            let opened = instance.open_copied_item(item).await.expect("bob's content opens");
            assert!(text_of(&opened).contains("Frieren"));
        }
        // and the same from the stream's records: nothing of alice's, all of bob's
        for image in &alices_stream {
            let opened = instance.open_copied_item(image).await;
            assert!(matches!(opened, Err(Error::NotFound)), "alice's stream image opened after the purge: {opened:?}");
        }
        for image in &bobs_stream {
            let opened = instance.open_copied_item(image).await.expect("bob's stream images open");
            assert!(!tidewater::store::has_plain_content(image) && opened != *image);
        }
    }

    // and a restore of alice's items into the table gives a session nobody can read
    for item in in_session(&table_copy, alices) {
        store.client().put_item().table_name(&store.config().table_name).set_item(Some(item)).send().await.unwrap();
    }
    let loaded = warm.load_context(&alice(), alices, newest(10, true)).await;
    assert!(matches!(loaded, Err(Error::NotFound)), "a restored session opened: {loaded:?}");
    let loaded = warm.load_context(&bob(), bobs, newest(10, true)).await.unwrap();
    assert_eq!(loaded.turns.len(), 2);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_item_or_session_fails_to_open() {
    // Given two sessions of alice's
    let store = fresh_store(test_config()).await;
    let first = session_with_turns(&store, &alice(), 2).await;
    let second = session_with_turns(&store, &alice(), 2).await;
    let items = scan_table(&store).await;
    let turn = |session: Uuid, index: u64| {
        in_session(&items, session).into_iter().find(|i| i[keys::SK].as_s().is_ok_and(|sk| *sk == keys::turn_sk(index))).unwrap()
    };
    let sealed = turn(first, 1)["content"].clone();

    // When its sealed content is copied to another turn, or a turn of another session
    for mut target in [turn(first, 2), turn(second, 1)] {
        target.insert("content".to_owned(), sealed.clone());
        // Then it does not open there
        let opened = store.open_copied_item(&target).await;
        assert!(matches!(opened, Err(Error::Corrupt(_))), "{opened:?}");
    }
    // while in its own item it does
    assert!(store.open_copied_item(&turn(first, 1)).await.is_ok());
}

#[tokio::test]
async fn turns_written_before_encryption_stay_readable_beside_sealed_ones() {
    // Given a store that wrote in the clear, then one that encrypts and serves plaintext
    // (PLAINTEXT_READABLE=true, until the migration), on the same table
    let store = fresh_store(Config { plaintext_readable: true, ..test_config() }).await;
    let plain = DynamoStore::new(store.client().clone(), Config { encryption: None, ..store.config().clone() });
    let session = session_with_turns(&plain, &alice(), 2).await;
    let stored = in_session(&scan_table(&store).await, session);
    assert!(with_content(&stored).iter().all(tidewater::store::has_plain_content));

    // When the encrypting store appends and loads
    let turn = tidewater::NewTurn {
        response_id: "r-sealed".into(),
        role: "assistant".into(),
        content: "volume 2 is in stock".into(),
        intent: None,
        token_count: None,
        item: None,
    };
    tidewater::TurnAppender::append_turn(&*store, &alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
    let context = store.load_context(&alice(), session, newest(10, true)).await.unwrap();

    // Then the old turns and the new one read back, and only the new one is sealed
    let contents: Vec<&str> = context.turns.iter().map(|t| t.content.as_str()).collect();
    assert_eq!(contents, ["turn 0: is volume 0 of Frieren in stock?", "turn 1: is volume 1 of Frieren in stock?", "volume 2 is in stock"]);
    let stored = with_content(&in_session(&scan_table(&store).await, session));
    assert_eq!(stored.iter().filter(|i| tidewater::store::has_plain_content(i)).count(), 2);
    // and a store without the master key refuses the sealed turn rather than show it
    let unkeyed = plain.load_context(&alice(), session, newest(10, true)).await;
    assert!(matches!(unkeyed, Err(Error::Config(_))), "{unkeyed:?}");
}

#[tokio::test]
async fn a_guests_content_stops_opening_from_a_copy_once_every_session_of_its_day_has_expired() {
    // Given a guest session of today, and another guest's session of today that stays active
    let store = fresh_store(test_config()).await;
    let guest = Caller::new("visitor-1", ["guest"]);
    let regular = Caller::new("visitor-2", ["guest"]);
    let session = session_with_turns(&store, &guest, 1).await;
    let lasting = session_with_turns(&store, &regular, 1).await;
    let copy = with_content(&in_session(&scan_table(&store).await, session));
    assert!(!tidewater::store::has_plain_content(&copy[0]), "a guest's turn is sealed too");
    assert!(store.open_copied_item(&copy[0]).await.is_ok());
    let ttl = store.config().session_ttl;

    // When the second guest keeps writing past the first session's expiry
    for day in 0..3 {
        store.clock().advance(ttl / 2);
        let turn = tidewater::NewTurn {
            response_id: format!("later-{day}"),
            role: "user".into(),
            content: "still here".into(),
            intent: None,
            token_count: None,
            item: None,
        };
        tidewater::TurnAppender::append_turn(&*store, &regular, lasting, turn.validate(store.config()).unwrap()).await.unwrap();
        store.janitor_pass(store.clock().now()).await.unwrap();
    }
    // Then the day's key lives on, and both sessions' content opens
    assert!(store.open_copied_item(&copy[0]).await.is_ok(), "the key outlives its day while a session of that day lives");
    assert_eq!(store.load_context(&regular, lasting, newest(10, true)).await.unwrap().turns.len(), 4);

    // When that session expires too, and the janitor passes
    store.clock().advance(ttl + std::time::Duration::from_secs(2 * 86_400));
    let report = store.janitor_pass(store.clock().now()).await.unwrap();

    // Then the day's key is destroyed, and no copy of either guest's content opens
    assert_eq!(report.guest_keys_destroyed, 1);
    for instance in [&*store, &another_instance(&store)] {
        let opened = instance.open_copied_item(&copy[0]).await;
        assert!(matches!(opened, Err(Error::NotFound)), "{opened:?}");
    }
}

#[tokio::test]
async fn migrating_seals_plain_content_in_place_page_by_page_and_a_second_run_finds_nothing() {
    use tidewater::{FactDraft, FactKind, FactSource, MemoryReader, MemoryWriter};
    // Given turns, a summary and a fact written before encryption, a customer's and a guest's,
    // read by a store that serves plaintext until the migration is done
    let store = fresh_store(Config { plaintext_readable: true, ..test_config() }).await;
    let plain = DynamoStore::new(store.client().clone(), Config { encryption: None, ..store.config().clone() });
    let session = session_with_turns(&plain, &alice(), 3).await;
    let guest = Caller::new("visitor-1", ["guest"]);
    let guests = session_with_turns(&plain, &guest, 1).await;
    assert!(plain.put_summary(session, 2, "alice asked about Frieren").await.unwrap());
    let source = FactSource { session_id: session, from_turn: 1, to_turn: 1 };
    let stated_at = tidewater::clock::format(plain.clock().now());
    let fact = FactDraft::new(FactKind::Preference, "likes Frieren", "likes Frieren", source, &stated_at).unwrap();
    plain.write_facts("alice", session, &[fact]).await.unwrap();
    let before = store.load_context(&alice(), session, newest(10, true)).await.unwrap();
    let plain_items = || async { scan_table(&store).await.into_iter().filter(tidewater::store::has_plain_content).count() };
    assert_eq!(plain_items().await, 3 + 1 + 2 + 1);

    // When the migration runs, two items a page, resuming from each page's last key
    let (mut sealed, mut start, mut pages) = (0, None, 0);
    loop {
        let page = store.seal_plain_items(start, 2).await.unwrap();
        sealed += page.sealed;
        pages += 1;
        match page.next {
            Some(next) => start = Some(next),
            None => break,
        }
    }

    // Then every item is sealed, and reads back as before
    assert!(pages > 3, "{pages} pages");
    assert_eq!(sealed, 7);
    assert_eq!(plain_items().await, 0);
    // to a store that serves nothing unsealed
    let store = DynamoStore::new(store.client().clone(), Config { plaintext_readable: false, ..store.config().clone() });
    let after = store.load_context(&alice(), session, newest(10, true)).await.unwrap();
    assert_eq!(serde_json::to_value(&after.turns).unwrap(), serde_json::to_value(&before.turns).unwrap());
    assert_eq!(after.summary.map(|s| s.text), before.summary.map(|s| s.text));
    assert_eq!(store.recent_facts("alice", 10).await.unwrap()[0].text, "likes Frieren");
    assert_eq!(store.load_context(&guest, guests, newest(10, true)).await.unwrap().turns.len(), 1);
    // and a second run finds nothing to do
    let again = store.seal_plain_items(None, 100).await.unwrap();
    assert_eq!((again.sealed, again.next), (0, None));
}

#[tokio::test]
async fn migrating_a_meta_does_not_roll_back_an_append_that_raced_it() {
    // Given alice's data key (so that the migration's only write is META's) and a session
    // written in the clear, with a page context, before encryption
    let store = fresh_store(Config { plaintext_readable: true, ..test_config() }).await;
    let first = NewSession { session_id: None, page_context: serde_json::json!({"page": "/first"}).as_object().cloned() };
    store.create_session(&alice(), first).await.unwrap();
    let plain = DynamoStore::new(store.client().clone(), Config { encryption: None, ..store.config().clone() });
    let request = NewSession { session_id: None, page_context: serde_json::json!({"page": "/manga"}).as_object().cloned() };
    let id = plain.create_session(&alice(), request).await.unwrap().session_id;
    assert!(tidewater_tests::session_item(&store, id, keys::META).await.unwrap()["page_context"].is_m());

    // When the migration runs with its writes held 2 s on the way (a slow network, a GC pause)
    let plan = tidewater_local::fault::Plan::parse("latency@PutItem|UpdateItem=1", std::time::Duration::from_secs(2)).unwrap();
    let (client, _proxy) = tidewater_tests::client_through_proxy_with(plan, tidewater::clock::Clock::system()).await;
    let migrating = DynamoStore::new(client, store.config().clone());
    let migration = tokio::spawn(async move { migrating.seal_plain_items(None, 100).await });
    // and alice appends meanwhile, acknowledged
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let turn = tidewater::NewTurn { response_id: "msg-1".into(), role: "user".into(), content: "turn 1".into(), intent: None, token_count: None, item: None };
    let appended = tidewater::TurnAppender::append_turn(&*store, &alice(), id, turn.validate(store.config()).unwrap()).await.unwrap();
    assert_eq!(appended.turn_index, 1);
    let page = migration.await.unwrap().unwrap();

    // Then the page context is sealed, and META still counts the acknowledged turn
    let meta = tidewater_tests::session_item(&store, id, keys::META).await.unwrap();
    assert_eq!(page.sealed, 1, "{page:?}");
    assert!(meta["page_context"].is_b(), "{meta:?}");
    assert_eq!(meta["turn_count"], AttributeValue::N("1".into()), "migration {page:?} rolled META back: {meta:?}");
    assert_eq!(store.load_context(&alice(), id, newest(10, true)).await.unwrap().turns.len(), 1);
}
