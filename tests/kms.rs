//! Crypto-shredding with data keys wrapped by KMS (feature `kms`, issue 23), against the local
//! KMS stand-in (`tidewater_local::kms`) reached by endpoint as the SDK reaches KMS: sealing
//! and opening, rotation of the KMS key with no rewrite of the table, a purge, the migration,
//! and a KMS that does not answer.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use tidewater::crypto::kms::KmsWrapper;
use tidewater::crypto::{AnyWrapper, Encryption, KeyCache};
use tidewater::{Config, ContextLoader, CustomerPurger, DynamoStore, Error, NewSession, SessionCreator};
use tidewater_local::kms::KmsStandIn;
use tidewater_tests::*;

type Item = HashMap<String, AttributeValue>;

const KEY_ID: &str = "0b5c3a8e-7d21-4f6a-9c1e-2a4b6c8d0e1f";
const ALIAS: &str = "alias/tidewater-data-keys";

/// The stand-in, serving on a port of its own until the test ends.
async fn kms() -> (KmsStandIn, String) {
    let kms = KmsStandIn::new(KEY_ID, "us-east-1", &[ALIAS]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(kms.clone().serve(listener));
    (kms, url)
}

/// Data keys wrapped by the KMS key `ALIAS` at `url`, in a fresh cache.
async fn kms_encryption(url: &str) -> Arc<Encryption> {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(url).load().await;
    Arc::new(Encryption::new(AnyWrapper::Kms(KmsWrapper::new(&shared, ALIAS.to_owned())), KeyCache::new(100, Duration::from_secs(300), Config::default().key_lease)))
}

async fn kms_store(url: &str, config: Config) -> Arc<DynamoStore> {
    fresh_store(Config { encryption: Some(kms_encryption(url).await), ..config }).await
}

/// Appends alice's turn `content` to `session`.
async fn append(store: &DynamoStore, session: uuid::Uuid, content: &str) {
    let turn = tidewater::NewTurn {
        response_id: "r1".into(),
        role: "user".into(),
        content: content.into(),
        intent: None,
        token_count: None,
        item: None,
    };
    tidewater::TurnAppender::append_turn(store, &alice(), session, turn.validate(store.config()).unwrap()).await.unwrap();
}

/// The same table through a new function instance: a cache of its own.
fn another_instance(store: &DynamoStore) -> DynamoStore {
    DynamoStore::new(store.client().clone(), store.config().clone().with_empty_key_cache()).with_clock(store.clock().clone())
}

async fn key_items(store: &DynamoStore) -> Vec<Item> {
    let scan = store.client().scan().table_name(store.config().key_table()).consistent_read(true).send().await.unwrap();
    scan.items.unwrap_or_default()
}

fn sealed_turns(items: &[Item]) -> Vec<Item> {
    items.iter().filter(|item| item.get("content").is_some_and(AttributeValue::is_b)).cloned().collect()
}

#[tokio::test]
async fn with_kms_content_is_sealed_opened_and_shredded_by_a_purge() {
    // Given a store whose data keys KMS wraps
    let (kms, url) = kms().await;
    let store = kms_store(&url, test_config()).await;

    // When alice and bob write
    let page_context = json!({"order": "A-1"}).as_object().cloned();
    let alices = store.create_session(&alice(), NewSession { session_id: None, page_context }).await.unwrap().session_id;
    append(&store, alices, "is volume 3 of Frieren in stock?").await;
    let bobs = session_with_turns(&store, &bob(), 1).await;

    // Then each key is wrapped by KMS (one Encrypt each), named by the key's ARN
    let keys = key_items(&store).await;
    assert_eq!(keys.len(), 2);
    assert!(keys.iter().all(|k| k["master_key_id"] == AttributeValue::S(kms.key_arn().to_owned())), "{keys:?}");
    // and a new instance opens the content with one Decrypt, then serves it from its cache
    let cold = another_instance(&store);
    let before = kms.calls();
    let loaded = cold.load_context(&alice(), alices, newest(10, true)).await.unwrap();
    assert_eq!((loaded.turns.len(), loaded.session.unwrap().page_context["order"].clone()), (1, json!("A-1")));
    assert_eq!(kms.calls(), before + 1);
    cold.load_context(&alice(), alices, newest(10, true)).await.unwrap();
    assert_eq!(kms.calls(), before + 1, "a cached key costs no KMS call");

    // When alice is purged, with a copy of every item taken before
    let copy = scan_table(&store).await;
    store.purge_customer("alice", "req-kms").await.unwrap();

    // Then nothing of hers opens from the copy, for the warm instance or a new one; bob's does
    let pk = |id: uuid::Uuid| AttributeValue::S(tidewater::keys::session_pk(&id));
    for instance in [&cold, &another_instance(&store)] {
        for item in copy.iter().filter(|i| i[tidewater::keys::PK] == pk(alices)) {
            let opened = instance.open_copied_item(item).await;
            assert!(matches!(opened, Err(Error::NotFound)) || opened.as_ref().is_ok_and(|o| o == item), "{opened:?}");
        }
        assert_eq!(instance.load_context(&bob(), bobs, newest(10, true)).await.unwrap().turns.len(), 1);
    }
    assert!(sealed_turns(&copy).iter().any(|i| i[tidewater::keys::PK] == pk(alices)), "the copy held alice's sealed turn");
}

#[tokio::test]
async fn rotating_the_kms_key_needs_no_rewrite_of_the_table() {
    // Given alice's content, her data key wrapped by the KMS key's first backing key
    let (kms, url) = kms().await;
    let store = kms_store(&url, test_config()).await;
    let alices = session_with_turns(&store, &alice(), 2).await;
    let table_before = scan_table(&store).await;
    let keys_before = key_items(&store).await;

    // When the KMS key is rotated, and bob's key is made after
    kms.rotate();
    let bobs = session_with_turns(&store, &bob(), 1).await;

    // Then neither alice's items nor her wrapped key were rewritten
    let alices_now: Vec<Item> = scan_table(&store).await.into_iter().filter(|i| table_before.contains(i)).collect();
    assert_eq!(alices_now.len(), table_before.len(), "every item from before is unchanged");
    let keys_now = key_items(&store).await;
    assert!(keys_before.iter().all(|k| keys_now.contains(k)));
    // and bob's key was wrapped by the new backing key, alice's by the old one
    let backing = |item: &Item| item["wrapped"].as_b().unwrap().as_ref()[2..4].to_vec();
    let mut versions: Vec<Vec<u8>> = keys_now.iter().map(backing).collect();
    versions.sort();
    assert_eq!(versions, [b"v1".to_vec(), b"v2".to_vec()]);
    // and a new instance opens both, each key unwrapped by the backing key that wrapped it
    let cold = another_instance(&store);
    assert_eq!(cold.load_context(&alice(), alices, newest(10, true)).await.unwrap().turns.len(), 2);
    assert_eq!(cold.load_context(&bob(), bobs, newest(10, true)).await.unwrap().turns.len(), 1);
}

#[tokio::test]
async fn a_wrapped_key_moved_to_another_customer_is_refused_by_kms_as_corrupt_not_retried() {
    // Given alice's and bob's keys
    let (_kms, url) = kms().await;
    let store = kms_store(&url, test_config()).await;
    session_with_turns(&store, &alice(), 1).await;
    let bobs = session_with_turns(&store, &bob(), 1).await;
    let keys = key_items(&store).await;
    let bob_ref = AttributeValue::S(tidewater::keys::customer_data_key(&tidewater::store::customer_hash(TEST_RECEIPT_SALT, "bob")));
    let (bobs_key, alices_key): (Vec<Item>, Vec<Item>) = keys.into_iter().partition(|k| k["PK"] == bob_ref);

    // When alice's wrapped key (and its generation) is put in bob's key item
    let mut forged = alices_key[0].clone();
    forged.insert("PK".to_owned(), bobs_key[0]["PK"].clone());
    store.client().put_item().table_name(store.config().key_table()).set_item(Some(forged)).send().await.unwrap();

    // Then KMS refuses to unwrap it for bob (its encryption context names alice): corrupt, a 500
    let loaded = another_instance(&store).load_context(&bob(), bobs, newest(10, true)).await;
    assert!(matches!(loaded, Err(Error::Corrupt(_))), "{loaded:?}");
}

#[tokio::test]
async fn a_kms_that_does_not_answer_gives_a_retryable_503_within_the_deadline() {
    // Given a session written while KMS answered, and a new instance with nothing cached
    let (kms, url) = kms().await;
    let store = kms_store(&url, test_config()).await;
    let session = session_with_turns(&store, &alice(), 1).await;
    let config = store.config().clone().with_empty_key_cache();
    let cold = DynamoStore::new(store.client().clone(), Config { write_timeout: Duration::from_secs(2), ..config });

    // When KMS stops answering
    kms.stop_answering();

    // Then an append (which must unwrap alice's key) answers 503, retryable, within its deadline
    let body = json!({"response_id": "r-late", "role": "user", "content": "still there?"}).to_string();
    let path = format!("/sessions/{session}/turns");
    let request = api_request(Some(&alice()), "POST", "/sessions/{id}/turns", &path, &[], Some(&body));
    let appended = tokio::time::timeout(Duration::from_secs(30), append_turn::handle(&cold, &default_redactor(), cold.config(), request))
        .await
        .expect("answered, not hung");
    assert_error(&appended, 503, "unavailable");
    // and so does a new customer's first session, whose key KMS must wrap
    let page_context = json!({"page": "/cart"}).as_object().cloned();
    let created = tokio::time::timeout(
        Duration::from_secs(30),
        cold.create_session(&bob(), NewSession { session_id: None, page_context }),
    )
    .await
    .expect("answered, not hung");
    assert!(matches!(created, Err(Error::Unavailable(_))), "{created:?}");
    // and a load fails the same way rather than show sealed bytes
    let loaded = tokio::time::timeout(Duration::from_secs(30), cold.load_context(&alice(), session, newest(10, true)))
        .await
        .expect("answered, not hung");
    assert!(matches!(loaded, Err(Error::Unavailable(_))), "{loaded:?}");
}

#[tokio::test]
async fn migrating_with_kms_seals_plain_content_under_kms_wrapped_keys() {
    // Given content written before encryption
    let (kms, url) = kms().await;
    let store = kms_store(&url, Config { plaintext_readable: true, ..test_config() }).await;
    let plain = DynamoStore::new(store.client().clone(), Config { encryption: None, ..store.config().clone() });
    let page_context = json!({"order": "A-1"}).as_object().cloned();
    let session = plain.create_session(&alice(), NewSession { session_id: None, page_context }).await.unwrap().session_id;
    append(&plain, session, "is volume 3 in stock?").await;

    // When the migration runs with the KMS-wrapping store, the KMS key rotated halfway
    kms.rotate();
    let page = store.seal_plain_items(None, 100).await.unwrap();

    // Then META's page context and the turn are sealed, under a key KMS wrapped
    assert_eq!((page.sealed, page.next), (2, None));
    assert_eq!(scan_table(&store).await.iter().filter(|i| tidewater::store::has_plain_content(i)).count(), 0);
    let keys = key_items(&store).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["master_key_id"], AttributeValue::S(kms.key_arn().to_owned()));
    // and everything reads back to a store that serves only sealed content
    let sealed_only = DynamoStore::new(
        store.client().clone(),
        Config { plaintext_readable: false, ..store.config().clone().with_empty_key_cache() },
    );
    let loaded = sealed_only.load_context(&alice(), session, newest(10, true)).await.unwrap();
    assert_eq!(loaded.turns[0].content, "is volume 3 in stock?");
    assert_eq!(loaded.session.unwrap().page_context["order"], "A-1");
}
