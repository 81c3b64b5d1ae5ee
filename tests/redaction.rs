//! Privacy at write time, against DynamoDB Local: what the handlers redact never reaches any
//! item, compressed or not, and shows as its placeholder in the context, the export and the
//! summary. The Comprehend redactor falls back to the offline detector when the service fails.
use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_comprehend::config::retry::RetryConfig;
use aws_sdk_comprehend::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Response};
use serde_json::{json, Value};
use tidewater::redact::{ComprehendRedactor, Kinds, OrderNumbers, Redactor};
use tidewater::{codec, Caller, Config, DynamoStore, ExtractiveSummarizer, NewTurn, OfflineRedactor};
use tidewater_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

const PAN: &str = "4111111111111111";
const PAN_SPACED: &str = "4111 1111 1111 1111";
const PAGE_PAN: &str = "5105105105105100";
const PAGE_PAN_SPACED: &str = "5105 1051 0510 5100";

async fn create<R: Redactor>(store: &DynamoStore, redactor: &R, caller: &Caller, page_context: Value) -> Uuid {
    let body = json!({ "page_context": page_context }).to_string();
    let request = api_request(Some(caller), "POST", "/sessions", "/sessions", &[], Some(&body));
    let response = create_session::handle(store, redactor, request).await;
    assert_eq!(response.status(), 201, "{}", body_json(&response));
    body_json(&response)["session_id"].as_str().unwrap().parse().unwrap()
}

async fn append<R: Redactor>(store: &DynamoStore, redactor: &R, session: Uuid, id: &str, role: &str, content: &str) -> Response<Body> {
    let body = json!({"response_id": id, "role": role, "content": content}).to_string();
    let path = format!("/sessions/{session}/turns");
    let request = api_request(Some(&alice()), "POST", "/sessions/{id}/turns", &path, &[], Some(&body));
    append_turn::handle(store, redactor, store.config(), request).await
}

async fn get(store: &DynamoStore, session: Uuid, route: &str, suffix: &str, query: &[(&str, &str)]) -> Value {
    let path = format!("/sessions/{session}{suffix}");
    let request = api_request(Some(&alice()), "GET", route, &path, query, None);
    let response = if suffix == "/context" {
        load_context::handle(store, request).await
    } else {
        export_turns::handle(store, &test_cursor_key(), request).await
    };
    assert_eq!(response.status(), 200, "{}", body_json(&response));
    body_json(&response)
}

/// Every text an item holds: strings, numbers, and binary both raw and gunzipped.
fn texts_of(value: &AttributeValue, out: &mut Vec<String>) {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
        AttributeValue::B(blob) => {
            out.push(String::from_utf8_lossy(blob.as_ref()).into_owned());
            if let Ok(text) = codec::decompress(blob.as_ref()) {
                out.push(text);
            }
        }
        AttributeValue::M(map) => map.values().for_each(|v| texts_of(v, out)),
        AttributeValue::L(list) => list.iter().for_each(|v| texts_of(v, out)),
        AttributeValue::Ss(list) | AttributeValue::Ns(list) => out.extend(list.iter().cloned()),
        _ => {}
    }
}

fn item_texts(item: &HashMap<String, AttributeValue>) -> Vec<String> {
    let mut texts = Vec::new();
    item.values().for_each(|v| texts_of(v, &mut texts));
    texts
}

/// A stream record of the session record whose summary is due, built from the item itself.
fn summary_due_record(items: &[HashMap<String, AttributeValue>]) -> Event {
    let meta = items
        .iter()
        .find(|item| item.get("needs_summary") == Some(&AttributeValue::Bool(true)))
        .expect("a session record with a summary due")
        .clone();
    let mut old = meta.clone();
    old.insert("needs_summary".to_owned(), AttributeValue::Bool(false));
    let keys: HashMap<String, AttributeValue> =
        meta.iter().filter(|(k, _)| *k == "PK" || *k == "SK").map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut event: Event = serde_json::from_value(json!({"Records": [{
        "eventID": "1",
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {"SequenceNumber": "100", "SizeBytes": 300, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tidewater/stream/2026-11-26T19:00:00.000",
    }]}))
    .unwrap();
    let change = &mut event.records[0].change;
    change.keys = keys.into();
    change.new_image = meta.into();
    change.old_image = old.into();
    event
}

#[tokio::test]
async fn a_card_number_reaches_no_item_and_shows_redacted_in_context_export_and_summary() {
    // Given a session whose page context carries a card, with summaries every two turns
    let store = fresh_store(Config { summary_threshold: 2, ..Config::default() }).await;
    let redactor = default_redactor();
    let session = create(&store, &redactor, &alice(), json!({"page": "/checkout", "note": format!("card {PAGE_PAN_SPACED}")})).await;

    // When the customer pastes a card number, and the append is retried
    let content = format!("my card is {PAN_SPACED}, can you charge it?");
    let appended = append(&store, &redactor, session, "r1", "user", &content).await;
    let retried = append(&store, &redactor, session, "r1", "user", &content).await;
    for i in 2..=12 {
        let role = if i % 2 == 0 { "assistant" } else { "user" };
        let response = append(&store, &redactor, session, &format!("r{i}"), role, &format!("Volume {i} is in stock.")).await;
        assert_eq!(response.status(), 201);
    }
    let due = summary_due_record(&scan_table(&store).await);
    let summarized = summarize::handle(&*store, &ExtractiveSummarizer::default(), store.config(), due).await;

    // Then the answers count the card, and the retry is a duplicate
    assert_eq!(appended.status(), 201);
    assert_eq!(body_json(&appended), json!({"turn_index": 1, "duplicate": false, "redactions": {"card": 1}}));
    assert_eq!(retried.status(), 200);
    assert_eq!(body_json(&retried), json!({"turn_index": 1, "duplicate": true, "redactions": {"card": 1}}));
    assert!(summarized.batch_item_failures.is_empty());

    // And no item holds either card, in any form; the placeholders are there instead
    // (as stored, sealed, and opened with the key)
    let mut items = scan_table(&store).await;
    for item in items.clone() {
        items.push(store.open_copied_item(&item).await.unwrap());
    }
    let texts: Vec<String> = items.iter().flat_map(item_texts).collect();
    for secret in [PAN, PAN_SPACED, PAGE_PAN, PAGE_PAN_SPACED] {
        assert!(!texts.iter().any(|t| t.contains(secret)), "{secret} was written");
    }
    let with_placeholder = texts.iter().filter(|t| t.contains("[card ••••1111]")).count();
    assert!(with_placeholder >= 2, "the turn and a summary hold the placeholder: {with_placeholder}");

    // And the context, the export and the summary show the placeholder
    let context = get(&store, session, "/sessions/{id}/context", "/context", &[("consistent", "true")]).await;
    let export = get(&store, session, "/sessions/{id}/turns", "/turns", &[]).await;
    let redacted = "my card is [card ••••1111], can you charge it?";
    assert_eq!(export["turns"][0]["content"], redacted);
    assert_eq!(export["session"]["page_context"]["note"], "card [card ••••5100]");
    let summary = export["summary"]["text"].as_str().expect("a summary");
    assert!(summary.contains("[card ••••1111]"), "{summary}");
    assert!(context.to_string().contains("[card ••••1111]"), "{context}");
    for body in [&context, &export] {
        assert!(!body.to_string().contains(PAN) && !body.to_string().contains(PAN_SPACED));
    }

    // And the idempotency record keeps the keyed digest of the payload as sent
    let turn = NewTurn { response_id: "r1".into(), role: "user".into(), content, intent: None, token_count: None, item: None };
    let expected_hash = turn.validate(store.config()).unwrap().payload_hash(&test_hash_key(), &session);
    let hashes: Vec<String> = items.iter().filter_map(|i| i.get("payload_hash")?.as_s().ok().cloned()).collect();
    assert!(hashes.contains(&expected_hash), "{hashes:?}");
}

#[tokio::test]
async fn with_every_kind_on_emails_and_phones_go_but_declared_order_numbers_stay() {
    // Given every kind, and a session that declares an order number
    let store = store().await;
    let redactor = OfflineRedactor::new(Kinds::ALL);
    let page_context = json!({"order_id": "0123456789", "contact": "jane@example.com, +44 20 7946 0958"});
    let session = create(&store, &redactor, &alice(), page_context).await;

    // When a turn holds the order number, a phone number, an e-mail address and an IBAN
    let content = "Order 0123456789: call 06 12 34 56 78 or mail jane@example.com; refund to GB82 WEST 1234 5698 7654 32.";
    let appended = append(&store, &redactor, session, "r1", "user", content).await;

    // Then each is counted and replaced, but the declared order number is kept
    assert_eq!(appended.status(), 201, "{}", body_json(&appended));
    assert_eq!(body_json(&appended)["redactions"], json!({"iban": 1, "email": 1, "phone": 1}));
    let export = get(&store, session, "/sessions/{id}/turns", "/turns", &[]).await;
    assert_eq!(export["turns"][0]["content"], "Order 0123456789: call [phone] or mail [email]; refund to [iban].");
    assert_eq!(export["session"]["page_context"], json!({"order_id": "0123456789", "contact": "[email], [phone]"}));

    // And a PATCH declares a new order number, which later turns keep
    let path = format!("/sessions/{session}");
    let body = json!({"page_context": {"orders": ["0612345678"], "note": "mail jane@example.com"}}).to_string();
    let patch = api_request(Some(&alice()), "PATCH", "/sessions/{id}", &path, &[], Some(&body));
    let patched = update_session::handle(&*store, &redactor, patch).await;
    assert_eq!(patched.status(), 200);
    assert_eq!(body_json(&patched)["page_context"], json!({"orders": ["0612345678"], "note": "mail [email]"}));
    let second = append(&store, &redactor, session, "r2", "user", "Where is 0612345678?").await;
    assert_eq!(body_json(&second), json!({"turn_index": 2, "duplicate": false}));
}

#[tokio::test]
async fn the_card_sample_event_is_appended_redacted() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;

    let event = include_str!("../events/append-turn-with-card.json");
    let response = append_turn::handle(&*store, &default_redactor(), store.config(), event_request(event)).await;

    assert_eq!(response.status(), 201, "{}", body_json(&response));
    assert_eq!(body_json(&response)["redactions"], json!({"card": 1}));
    let session: Uuid = "6f1c2a9e-3b4d-4c8a-9e21-5a7b8c9d0e1f".parse().unwrap();
    let export = get(&store, session, "/sessions/{id}/turns", "/turns", &[]).await;
    assert_eq!(export["turns"][0]["content"], "Please charge my card [card ••••1111] for volume 3.");
}

#[tokio::test]
async fn with_redact_empty_nothing_is_replaced() {
    let store = store().await;
    let redactor = OfflineRedactor::new(Kinds::NONE);
    let session = create(&store, &redactor, &alice(), json!({"page": "/cart"})).await;

    let appended = append(&store, &redactor, session, "r1", "user", "4111111111111111").await;

    assert_eq!(body_json(&appended), json!({"turn_index": 1, "duplicate": false}));
}

// ---- Amazon Comprehend ----------------------------------------------------------------

fn comprehend_at(endpoint: &str, kinds: Kinds, timeout: Duration) -> ComprehendRedactor {
    let config = aws_sdk_comprehend::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(RetryConfig::disabled())
        .build();
    ComprehendRedactor::new(aws_sdk_comprehend::Client::from_conf(config), OfflineRedactor::new(kinds), timeout)
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// A stand-in for Comprehend that answers DetectPiiEntities with `entity_type` wherever
/// `needle` occurs in the text it is sent, at character offsets as Comprehend gives them.
async fn fake_comprehend(needle: &'static str, entity_type: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    let Some(body) = read_request(&mut socket, &mut buffer).await else { return };
                    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let text = request["Text"].as_str().unwrap_or_default();
                    let entities: Vec<Value> = text
                        .match_indices(needle)
                        .map(|(at, _)| {
                            let begin = text[..at].chars().count();
                            json!({"Score": 0.99, "Type": entity_type, "BeginOffset": begin, "EndOffset": begin + needle.chars().count()})
                        })
                        .collect();
                    let answer = json!({ "Entities": entities }).to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Reads one HTTP/1.1 request from `socket` and returns its body.
async fn read_request(socket: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() >= head_end + 4 + length {
                let body = buffer[head_end + 4..head_end + 4 + length].to_vec();
                buffer.drain(..head_end + 4 + length);
                return Some(body);
            }
        }
        let mut chunk = [0u8; 4096];
        let read = socket.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn comprehend_at_a_closed_port_falls_back_to_the_offline_detector() {
    // Given Comprehend at a port that nothing listens on
    let comprehend = comprehend_at(&format!("http://127.0.0.1:{}", closed_port()), Kinds::ALL, Duration::from_secs(5));
    let text = "card 4111 1111 1111 1111, mail jane@example.com";

    // When it redacts
    let redacted = comprehend.redact(text, &OrderNumbers::default()).await;

    // Then the answer is the offline detector's
    let offline = OfflineRedactor::new(Kinds::ALL).redact_now(text, &OrderNumbers::default());
    assert_eq!(redacted, offline);
    assert_eq!(redacted.text, "card [card ••••1111], mail [email]");
}

#[tokio::test]
async fn comprehend_that_does_not_answer_in_time_falls_back() {
    // Given a server that accepts connections and never answers
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let comprehend = comprehend_at(&format!("http://127.0.0.1:{port}"), Kinds::DEFAULT, Duration::from_millis(300));

    let redacted = comprehend.redact("card 4111111111111111", &OrderNumbers::default()).await;

    assert_eq!((redacted.text.as_str(), redacted.counts.card), ("card [card ••••1111]", 1));
    server.abort();
}

#[tokio::test]
async fn what_comprehend_finds_is_redacted_too_and_a_retry_during_an_outage_is_still_a_duplicate() {
    // Given Comprehend that finds a phone number the offline rules do not (seven digits)
    let endpoint = fake_comprehend("555 0199", "PHONE").await;
    let comprehend = comprehend_at(&endpoint, Kinds::ALL, Duration::from_secs(5));
    let store = store().await;
    let session = create(&store, &default_redactor(), &alice(), json!({"page": "/help"})).await;
    let content = "card 4111 1111 1111 1111, or call 555 0199";

    // When a turn is appended through it, then retried while Comprehend is unreachable
    let appended = append(&store, &comprehend, session, "r1", "user", content).await;
    let unreachable = comprehend_at(&format!("http://127.0.0.1:{}", closed_port()), Kinds::ALL, Duration::from_secs(5));
    let retried = append(&store, &unreachable, session, "r1", "user", content).await;

    // Then both kinds are replaced, and the retry is a duplicate: the digest is over the
    // content as sent, which does not depend on the service
    assert_eq!(body_json(&appended), json!({"turn_index": 1, "duplicate": false, "redactions": {"card": 1, "phone": 1}}));
    assert_eq!(retried.status(), 200, "{}", body_json(&retried));
    assert_eq!(body_json(&retried)["duplicate"], true);
    let export = get(&store, session, "/sessions/{id}/turns", "/turns", &[]).await;
    assert_eq!(export["turns"][0]["content"], "card [card ••••1111], or call [phone]");
}
