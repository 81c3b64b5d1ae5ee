//! A session's `page_context` is sealed like the rest of its content (issue 23): stored as
//! ciphertext in META and in the customer index, opened by every reader, opened and compared
//! when a PATCH is retried (no digest of it is kept), and shredded with the customer's key.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::{
    keys, Caller, Config, ContextLoader, CustomerPurger, DynamoStore, Error, NewSession, PageContextReader, SessionCreator,
    SessionLister,
};
use tidewater_tests::*;
use uuid::Uuid;

type Item = HashMap<String, AttributeValue>;

fn context(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().cloned().expect("an object")
}

async fn session(store: &DynamoStore, caller: &Caller, page_context: Value) -> Uuid {
    let request = NewSession { session_id: None, page_context: Some(context(page_context)) };
    store.create_session(caller, request).await.unwrap().session_id
}

async fn stored_meta(store: &DynamoStore, session: Uuid) -> Item {
    session_item(store, session, keys::META).await.expect("META exists")
}

async fn set_page_context(store: &DynamoStore, session: Uuid, value: AttributeValue) {
    let set = update_session_item(store, session, keys::META).update_expression("SET page_context = :p");
    set.expression_attribute_values(":p", value).send().await.unwrap();
}

/// Whether `text` shows anywhere in `item`, in any attribute's bytes.
fn shows(item: &Item, text: &str) -> bool {
    format!("{item:?}").contains(text)
}

async fn patch(store: &DynamoStore, caller: &Caller, session: Uuid, page_context: Value, if_match: &str) -> Response<Body> {
    let path = format!("/sessions/{session}");
    let body = json!({ "page_context": page_context }).to_string();
    let mut request = api_request(Some(caller), "PATCH", "/sessions/{id}", &path, &[], Some(&body));
    request.headers_mut().insert("if-match", if_match.parse().unwrap());
    update_session::handle(store, &default_redactor(), request).await
}

#[tokio::test]
async fn a_page_context_is_stored_sealed_and_every_reader_opens_it() {
    // Given a customer's session and a guest's, each with a page context
    let store = store().await;
    let alices = session(&store, &alice(), json!({"page": "/manga/frieren", "order": "A-1234"})).await;
    let guest = Caller::new("visitor-1", ["guest"]);
    let guests = session(&store, &guest, json!({"page": "/guest-page"})).await;
    let empty = session(&store, &alice(), json!({})).await;

    // Then META holds it as ciphertext, and so does the customer index that projects it
    for (id, text) in [(alices, "A-1234"), (guests, "/guest-page")] {
        let meta = stored_meta(&store, id).await;
        assert!(meta["page_context"].is_b(), "{:?}", meta["page_context"]);
        assert!(!shows(&meta, text), "in the clear: {meta:?}");
    }
    assert_eq!(stored_meta(&store, empty).await["page_context"], AttributeValue::M(HashMap::new()), "nothing to seal");
    let indexed = store
        .client()
        .query()
        .table_name(&store.config().table_name)
        .index_name(keys::GSI1)
        .key_condition_expression("GSI1PK = :c")
        .expression_attribute_values(":c", AttributeValue::S(keys::customer_pk("alice")))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(indexed.len(), 2);
    assert!(indexed.iter().all(|item| !shows(item, "A-1234")), "the index projects it sealed");

    // and every reader shows it clear: load-context, list-sessions, the append's reader, export
    let loaded = store.load_context(&alice(), alices, newest(10, true)).await.unwrap();
    assert_eq!(loaded.session.unwrap().page_context["order"], "A-1234");
    let listed = store.list_sessions(&alice(), 10, None).await.unwrap();
    let listed: Vec<_> = listed.sessions.iter().map(|s| (s.session_id, Value::Object(s.page_context.clone()))).collect();
    assert!(listed.contains(&(alices, json!({"page": "/manga/frieren", "order": "A-1234"}))), "{listed:?}");
    assert!(listed.contains(&(empty, json!({}))));
    assert_eq!(store.page_context(&alice(), alices).await.unwrap().unwrap()["order"], "A-1234");
    assert_eq!(store.page_context(&bob(), alices).await.unwrap(), None, "someone else's: nothing");
    let exported = tidewater::TurnExporter::export_turns(&*store, &alice(), alices, 10, None).await.unwrap();
    assert_eq!(exported.session.page_context["order"], "A-1234");
    assert_eq!(store.load_context(&guest, guests, newest(10, true)).await.unwrap().session.unwrap().page_context["page"], "/guest-page");
    // and support reads it too
    let support = Caller::new("agent-7", ["support"]);
    assert_eq!(store.load_context(&support, alices, newest(10, true)).await.unwrap().session.unwrap().page_context["order"], "A-1234");

    // When a PATCH replaces it, for the customer and the guest
    for (caller, id) in [(alice(), alices), (guest.clone(), guests)] {
        let response = patch(&store, &caller, id, json!({"page": "/cart", "order": "B-777"}), "\"1\"").await;
        assert_eq!(response.status(), 200, "{}", body_json(&response));
        // Then the answer shows it clear, and the table holds it sealed, with no digest beside it
        assert_eq!(body_json(&response)["page_context"]["order"], "B-777");
        let meta = stored_meta(&store, id).await;
        assert!(meta["page_context"].is_b() && !shows(&meta, "B-777"), "{meta:?}");
        assert!(!meta.contains_key("page_context_digest"), "{meta:?}");
        let loaded = store.load_context(&caller, id, newest(10, true)).await.unwrap();
        assert_eq!(loaded.session.unwrap().page_context["order"], "B-777");
    }
}

#[tokio::test]
async fn a_patch_retried_after_a_lost_answer_is_applied_once_and_a_different_change_is_refused() {
    // Given a PATCH that DynamoDB applied but whose answer was lost
    let store = store().await;
    let id = session(&store, &alice(), json!({"page": "/manga"})).await;
    let lossy = store_through_proxy(&store, "lost_answer@UpdateItem=1").await;
    let first = patch(&lossy, &alice(), id, json!({"page": "/cart", "items": 2}), "\"1\"").await;
    assert_error(&first, 503, "unavailable");
    let applied = stored_meta(&store, id).await;
    assert_eq!(applied["version"], AttributeValue::N("2".into()));

    // When the same change is retried with the same ETag, keys in another order
    let retry = patch(&store, &alice(), id, json!({"items": 2, "page": "/cart"}), "\"1\"").await;

    // Then it is answered as applied, with the clear page context, and nothing is written again
    assert_eq!(retry.status(), 200, "{}", body_json(&retry));
    assert_eq!(body_json(&retry)["page_context"], json!({"page": "/cart", "items": 2}));
    assert_eq!(retry.headers()["etag"], "\"2\"");
    assert_eq!(stored_meta(&store, id).await, applied);

    // When a different change is sent with that stale ETag
    let other = patch(&store, &alice(), id, json!({"page": "/cart", "items": 3}), "\"1\"").await;
    // Then it is refused, and the stored page context stays
    assert_error(&other, 412, "precondition_failed");
    assert_eq!(stored_meta(&store, id).await, applied);

    // When the stored value is the same page context sealed for another session (copied from it)
    let other = session(&store, &alice(), json!({"page": "/cart", "items": 2})).await;
    set_page_context(&store, id, stored_meta(&store, other).await["page_context"].clone()).await;
    // Then it does not open as this session's, so a retry cannot prove it is the same change,
    // and is refused rather than guessed
    let blind = patch(&store, &alice(), id, json!({"page": "/cart", "items": 2}), "\"1\"").await;
    assert_error(&blind, 412, "precondition_failed");
}

#[tokio::test]
async fn a_sealed_page_context_moved_to_another_session_does_not_open() {
    // Given two of alice's sessions
    let store = store().await;
    let first = session(&store, &alice(), json!({"order": "A-1"})).await;
    let second = session(&store, &alice(), json!({"order": "A-2"})).await;

    // When the first's sealed page context is copied onto the second's META
    set_page_context(&store, second, stored_meta(&store, first).await["page_context"].clone()).await;

    // Then it does not open there, for any reader, and the first still does
    let loaded = store.load_context(&alice(), second, newest(10, true)).await;
    assert!(matches!(loaded, Err(Error::Corrupt(_))), "{loaded:?}");
    assert!(matches!(store.list_sessions(&alice(), 10, None).await, Err(Error::Corrupt(_))));
    assert!(matches!(store.page_context(&alice(), second).await, Err(Error::Corrupt(_))));
    assert_eq!(store.load_context(&alice(), first, newest(10, true)).await.unwrap().session.unwrap().page_context["order"], "A-1");
}

#[tokio::test]
async fn a_plaintext_page_context_in_place_of_a_sealed_one_is_refused_unless_plaintext_is_readable() {
    // Given a sealed page context, replaced in the table by a plaintext one
    let store = store().await;
    let id = session(&store, &alice(), json!({"order": "A-1"})).await;
    let forged = serde_dynamo::to_attribute_value(json!({"order": "FORGED"})).unwrap();
    set_page_context(&store, id, forged).await;

    // Then a store that serves only sealed content refuses it
    let loaded = store.load_context(&alice(), id, newest(10, true)).await;
    assert!(matches!(loaded, Err(Error::Corrupt(_))), "{loaded:?}");
    assert!(matches!(store.page_context(&alice(), id).await, Err(Error::Corrupt(_))));
    // and one that serves content written before encryption (PLAINTEXT_READABLE) shows it
    let readable = DynamoStore::new(store.client().clone(), Config { plaintext_readable: true, ..store.config().clone() });
    assert_eq!(readable.load_context(&alice(), id, newest(10, true)).await.unwrap().session.unwrap().page_context["order"], "FORGED");
}

#[tokio::test]
async fn a_purge_shreds_a_sealed_page_context_from_a_copy_of_the_table() {
    // Given alice's and bob's sessions with page contexts, and a copy of every item
    let store = store().await;
    let alices = session(&store, &alice(), json!({"order": "A-1"})).await;
    let bobs = session(&store, &bob(), json!({"order": "B-1"})).await;
    let copy = scan_table(&store).await;
    let meta_of = |id: Uuid| {
        copy.iter().find(|i| i[keys::PK] == AttributeValue::S(keys::session_pk(&id)) && i[keys::SK] == AttributeValue::S(keys::META.into())).cloned().unwrap()
    };
    assert!(store.open_copied_item(&meta_of(alices)).await.is_ok());

    // When alice is purged
    store.purge_customer("alice", "req-page-context").await.unwrap();

    // Then her page context no longer opens from the copy, and bob's does
    let opened = store.open_copied_item(&meta_of(alices)).await;
    assert!(matches!(opened, Err(Error::NotFound)), "{opened:?}");
    let bobs_meta = store.open_copied_item(&meta_of(bobs)).await.unwrap();
    assert_eq!(bobs_meta["page_context"], serde_dynamo::to_attribute_value(json!({"order": "B-1"})).unwrap());
}

#[tokio::test]
async fn migrating_seals_a_plain_page_context_so_a_retried_patch_still_matches() {
    // Given a session PATCHed by a store that did not encrypt
    let store = fresh_store(Config { plaintext_readable: true, ..test_config() }).await;
    let plain = DynamoStore::new(store.client().clone(), Config { encryption: None, ..store.config().clone() });
    let id = session(&plain, &alice(), json!({"page": "/manga"})).await;
    let patched = patch(&plain, &alice(), id, json!({"page": "/cart"}), "\"1\"").await;
    assert_eq!(patched.status(), 200);
    assert!(stored_meta(&store, id).await["page_context"].is_m(), "written in the clear");

    // When the migration runs
    let page = store.seal_plain_items(None, 100).await.unwrap();

    // Then the page context is sealed, with no digest of it beside it
    assert_eq!(page.sealed, 1);
    let meta = stored_meta(&store, id).await;
    assert!(meta["page_context"].is_b() && !meta.contains_key("page_context_digest"), "{meta:?}");
    // and reads back clear to a store that serves only sealed content
    let sealed_only = DynamoStore::new(store.client().clone(), Config { plaintext_readable: false, ..store.config().clone() });
    assert_eq!(sealed_only.load_context(&alice(), id, newest(10, true)).await.unwrap().session.unwrap().page_context["page"], "/cart");
    // and a retry of the PATCH made before the migration is still answered as applied
    let retry = patch(&sealed_only, &alice(), id, json!({"page": "/cart"}), "\"1\"").await;
    assert_eq!((retry.status().as_u16(), body_json(&retry)["page_context"].clone()), (200, json!({"page": "/cart"})));
}

#[tokio::test]
async fn after_a_purge_a_copy_of_meta_confirms_no_guess_of_its_page_context() {
    // Given alice's session whose page context a PATCH set to an order number
    let store = store().await;
    let id = session(&store, &alice(), json!({"page": "/start"})).await;
    let before = stored_meta(&store, id).await;
    let patched = patch(&store, &alice(), id, json!({"order": "A-1042"}), "\"1\"").await;
    assert_eq!(patched.status(), 200);
    // and a copy of the table (a PITR restore, an export)
    let copy = scan_table(&store).await;

    // When alice is purged
    store.purge_customer("alice", "req-page-context-guess").await.unwrap();

    // Then her page context does not open from the copy
    let meta = copy
        .iter()
        .find(|i| i[keys::PK] == AttributeValue::S(keys::session_pk(&id)) && i[keys::SK] == AttributeValue::S(keys::META.into()))
        .cloned()
        .expect("META in the copy");
    assert!(matches!(store.open_copied_item(&meta).await, Err(Error::NotFound)));
    // and nothing else in it was derived from the page context, so no guess of it can be
    // confirmed with the same code and secrets either: the PATCH changed only the sealed value
    // and the attributes every PATCH sets, whatever it holds
    let every_patch_sets = ["page_context", "updated_at", "ttl", "ttl_margin", "patched_from", "version", "GSI1SK", "listed_turn_count"];
    let changed: Vec<&String> = meta.keys().chain(before.keys()).filter(|a| meta.get(*a) != before.get(*a)).collect();
    assert!(changed.iter().all(|a| every_patch_sets.contains(&a.as_str())), "derived from the page context: {changed:?}");
    assert!(!meta.contains_key("page_context_digest"));
}
