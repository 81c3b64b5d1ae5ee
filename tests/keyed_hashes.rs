//! No hash of customer text is stored unkeyed: the idempotency record holds an HMAC of the
//! original payload under the hash key (so a retry is a duplicate whatever redaction did in
//! between), and a fact's id is an HMAC scoped to its customer.
use serde_json::json;
use tidewater::redact::Kinds;
use tidewater::OfflineRedactor;
use tidewater_tests::*;
use uuid::Uuid;

fn append_request(session: Uuid, content: &str) -> lambda_http::Request {
    let body = json!({"response_id": "r1", "role": "user", "content": content}).to_string();
    let path = format!("/sessions/{session}/turns");
    api_request(Some(&alice()), "POST", "/sessions/{id}/turns", &path, &[], Some(&body))
}

#[tokio::test]
async fn a_retry_after_a_patch_that_changes_phone_redaction_is_a_duplicate() {
    // Given phone redaction, and a session that declares an order number
    let store = store().await;
    let redactor = OfflineRedactor::new(Kinds::ALL);
    let body = json!({"page_context": {"orders": ["0612345678"]}}).to_string();
    let created =
        create_session::handle(&*store, &redactor, api_request(Some(&alice()), "POST", "/sessions", "/sessions", &[], Some(&body)))
            .await;
    let session: Uuid = body_json(&created)["session_id"].as_str().unwrap().parse().unwrap();

    // When a turn naming the order is appended, its answer is lost, a PATCH drops the order
    // (so the same text would now be redacted as a phone number), and the client retries
    let content = "Where is 0612345678?";
    let first = append_turn::handle(&*store, &redactor, store.config(), append_request(session, content)).await;
    assert_eq!(body_json(&first), json!({"turn_index": 1, "duplicate": false}));
    let path = format!("/sessions/{session}");
    let body = json!({"page_context": {"note": "no orders"}}).to_string();
    let patched = update_session::handle(&*store, &redactor, api_request(Some(&alice()), "PATCH", "/sessions/{id}", &path, &[], Some(&body))).await;
    assert_eq!(patched.status(), 200, "{}", body_json(&patched));
    let retried = append_turn::handle(&*store, &redactor, store.config(), append_request(session, content)).await;

    // Then the retry is the original turn, not a conflict
    assert_eq!(retried.status(), 200, "{}", body_json(&retried));
    assert_eq!(body_json(&retried)["turn_index"], 1);
    assert_eq!(body_json(&retried)["duplicate"], true);
}

/// The digests earlier versions stored: the first 16 bytes, in hex, of SHA-256 over
/// length-prefixed parts.
fn plain_sha256(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn strings(items: &[std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>], attribute: &str, pk_prefix: &str) -> Vec<String> {
    items
        .iter()
        .filter(|item| item.get("PK").and_then(|pk| pk.as_s().ok()).is_some_and(|pk| pk.starts_with(pk_prefix)))
        .filter_map(|item| item.get(attribute)?.as_s().ok().cloned())
        .collect()
}

#[tokio::test]
async fn the_idempotency_record_keeps_an_hmac_of_the_original_payload_and_no_plain_hash() {
    // Given card redaction, and a turn holding a card number
    let store = store().await;
    let redactor = default_redactor();
    let created =
        create_session::handle(&*store, &redactor, api_request(Some(&alice()), "POST", "/sessions", "/sessions", &[], None)).await;
    let session: Uuid = body_json(&created)["session_id"].as_str().unwrap().parse().unwrap();
    let original = "charge my card 4111111111111111 please";

    // When it is appended
    let appended = append_turn::handle(&*store, &redactor, store.config(), append_request(session, original)).await;
    assert_eq!(appended.status(), 201, "{}", body_json(&appended));

    // Then the record holds the keyed digest of what the client sent, scoped to the session,
    // and neither the unkeyed digest of the original nor of the redacted text
    let items = scan_table(&store).await;
    let stored = strings(&items, "payload_hash", "SESSION#");
    assert_eq!(stored, [test_hash_key().payload(&session, "user", original, None, None, None)]);
    let redacted = "charge my card [card ••••1111] please";
    for unkeyed in [plain_sha256(&["user", original, "\u{0}", ""]), plain_sha256(&["user", redacted, "\u{0}", ""])] {
        assert_ne!(stored[0], unkeyed);
    }
}

#[tokio::test]
async fn a_fact_id_is_keyed_and_differs_between_customers_with_the_same_subject() {
    use tidewater::{FactDraft, FactKind, FactSource, MemoryWriter, NewSession, SessionCreator};
    // Given two customers, each with a session
    let store = store().await;
    let mut ids = Vec::new();
    for customer in [alice(), bob()] {
        let session = store.create_session(&customer, NewSession::default()).await.unwrap().session_id;
        // When each states the same fact
        let source = FactSource { session_id: session, from_turn: 1, to_turn: 1 };
        let draft = FactDraft::new(FactKind::Owns, "owns Frieren", "owns Frieren", source, "2026-12-07T03:00:00.000Z").unwrap();
        assert_eq!(store.write_facts(&customer.customer_id, session, &[draft]).await.unwrap(), 1);
        let listed = store_facts(&store, &customer).await;
        ids.push(listed);
    }

    // Then the two ids differ, and neither is the unkeyed digest of the kind and subject
    assert_ne!(ids[0], ids[1]);
    let unkeyed = plain_sha256(&["owns", "owns frieren"]);
    for id in &ids {
        assert!(tidewater::memory::is_fact_id(id), "{id}");
        assert_ne!(*id, unkeyed);
    }
    // And the table holds no unkeyed id either
    let items = scan_table(&store).await;
    for sk in strings(&items, "SK", "MEMORY#") {
        assert!(!sk.contains(&unkeyed), "{sk}");
    }
}

/// The one fact id a customer's memory lists.
async fn store_facts(store: &tidewater::DynamoStore, customer: &tidewater::Caller) -> String {
    let path = "/customers/me/memory";
    let response = list_memory::handle(store, &test_cursor_key(), api_request(Some(customer), "GET", path, path, &[], None)).await;
    let body = body_json(&response);
    assert_eq!(response.status(), 200, "{body}");
    let facts = body["facts"].as_array().unwrap();
    assert_eq!(facts.len(), 1, "{body}");
    facts[0]["fact_id"].as_str().unwrap().to_owned()
}
