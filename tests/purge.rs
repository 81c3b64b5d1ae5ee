//! `DELETE /customers/me`, `DELETE /customers/{id}` and `GET /receipts/{receipt_id}`: a
//! customer's purge deletes every item of every session of theirs, guest sessions
//! excepted, and leaves a receipt that holds no personal data.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::RequestExt;
use tidewater::{Caller, Config, CustomerPurger, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

type Item = HashMap<String, AttributeValue>;

fn privacy_officer() -> Caller {
    Caller::new("privacy-officer-1", ["privacy"])
}

/// `alice` signed in as a guest: the same `sub`, but her sessions stay out of the customer index.
fn alice_as_guest() -> Caller {
    Caller::new("alice", ["guest"])
}

fn turn(i: usize, content: &str) -> NewTurn {
    NewTurn { response_id: format!("r{i}"), role: "user".into(), content: content.into(), intent: None, token_count: None, item: None }
}

async fn session_with_turns(store: &DynamoStore, caller: &Caller, turns: usize) -> Uuid {
    let session_id = store.create_session(caller, NewSession::default()).await.unwrap().session_id;
    for i in 0..turns {
        let content = format!("turn {i}: is volume {i} of Frieren in stock? ({})", caller.customer_id);
        store.append_turn(caller, session_id, turn(i, &content).validate(store.config()).unwrap()).await.unwrap();
    }
    session_id
}

async fn purge(store: &DynamoStore, caller: &Caller, whom: &str) -> lambda_http::Response<lambda_http::Body> {
    let request = if whom == "me" {
        api_request(Some(caller), "DELETE", "/customers/me", "/customers/me", &[], None)
    } else {
        api_request(Some(caller), "DELETE", "/customers/{id}", &format!("/customers/{whom}"), &[], None)
    };
    purge_customer::handle(store, request).await
}

async fn get_receipt(store: &DynamoStore, caller: &Caller, receipt_id: &str) -> lambda_http::Response<lambda_http::Body> {
    let path = format!("/receipts/{receipt_id}");
    get_receipt::handle(store, api_request(Some(caller), "GET", "/receipts/{receipt_id}", &path, &[], None)).await
}

fn pk(item: &Item) -> String {
    item["PK"].as_s().cloned().unwrap_or_default()
}

/// The items under the partitions of these sessions.
fn items_of<'a>(items: &'a [Item], sessions: &[Uuid]) -> Vec<&'a Item> {
    let pks: HashSet<String> = sessions.iter().map(tidewater::keys::session_pk).collect();
    items.iter().filter(|item| pks.contains(&pk(item))).collect()
}

/// Items that name the customer in any attribute: owner, index key, content-free ids.
fn naming(items: &[Item], customer_id: &str) -> usize {
    items.iter().filter(|item| format!("{item:?}").contains(customer_id)).count()
}

#[tokio::test]
async fn purging_deletes_every_session_of_the_customer_and_spares_guest_and_other_sessions() {
    let store = store().await;
    let mine = vec![
        session_with_turns(&store, &alice(), 5).await,
        session_with_turns(&store, &alice(), 0).await,
        session_with_turns(&store, &alice(), 12).await,
    ];
    let guest = session_with_turns(&store, &alice_as_guest(), 3).await;
    let bobs = session_with_turns(&store, &bob(), 4).await;
    let before = scan_table(&store).await;

    let response = purge(&store, &alice(), "me").await;

    assert_eq!(response.status(), 200, "{}", body_json(&response));
    let receipt = body_json(&response);
    assert_eq!(receipt["sessions_deleted"], 3);
    assert_eq!(receipt["items_deleted"], items_of(&before, &mine).len() as u64);
    assert_eq!(receipt["customer_hash"], tidewater::store::customer_hash(TEST_RECEIPT_SALT, "alice"));
    assert!(receipt["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(receipt["requested_at"].as_str().unwrap() <= receipt["completed_at"].as_str().unwrap());

    let after = scan_table(&store).await;
    assert!(items_of(&after, &mine).is_empty(), "left over: {:?}", items_of(&after, &mine));
    assert_eq!(items_of(&after, &[guest]).len(), items_of(&before, &[guest]).len(), "guest sessions are excepted");
    assert_eq!(items_of(&after, &[bobs]).len(), items_of(&before, &[bobs]).len());
    let mut kept: HashSet<String> = [guest, bobs].iter().map(tidewater::keys::session_pk).collect();
    kept.insert(tidewater::keys::privacy_pk(&tidewater::store::customer_hash(TEST_RECEIPT_SALT, "bob")));
    let not_kept: Vec<Item> = after.iter().filter(|item| !kept.contains(&pk(item))).cloned().collect();
    assert_eq!(not_kept.len(), 2, "only the receipt and its id under the customer's hash are added: {not_kept:?}");
    let receipt_pk = format!("RECEIPT#{}", receipt["receipt_id"].as_str().unwrap());
    let receipt_item = not_kept.iter().find(|item| pk(item) == receipt_pk).expect("the receipt");
    let last = not_kept.iter().find(|item| pk(item) != receipt_pk).expect("the customer's last receipt");
    assert_eq!(last["SK"].as_s().unwrap(), tidewater::keys::LAST_RECEIPT);
    assert_eq!(last["receipt_id"].as_s().ok(), receipt["receipt_id"].as_str().map(String::from).as_ref());
    assert_eq!(naming(&not_kept, "alice"), 0, "the receipt holds no customer id");
    assert!(!receipt_item.contains_key("ttl"), "receipts never expire");
}

#[tokio::test]
async fn expired_sessions_are_purged_too() {
    let store = fresh_store(Config { session_ttl: Duration::from_secs(6), ..test_config() }).await;
    let session = session_with_turns(&store, &alice(), 2).await;
    store.clock().advance(Duration::from_millis(7_100));

    let receipt = body_json(&purge(&store, &alice(), "me").await);

    assert_eq!((receipt["sessions_deleted"].as_u64(), receipt["items_deleted"].as_u64()), (Some(1), Some(5)));
    assert!(items_of(&scan_table(&store).await, &[session]).is_empty());
}

#[tokio::test]
async fn a_purge_cut_off_half_way_is_finished_by_a_repeat() {
    let store = store().await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(session_with_turns(&store, &alice(), 20).await);
    }

    let cut_off = store.purge_customer_with(&CutOffAfter::new(&store, 2), "alice", "req-cut-off").await;
    assert!(matches!(cut_off, Err(tidewater::Error::Unavailable(_))), "{cut_off:?}");
    let between = scan_table(&store).await;
    let left = items_of(&between, &mine).len();
    assert!(left > 0 && left < 3 * 41, "the cut-off purge deleted some and not all: {left} left");
    // The deleted METAs took their sessions out of the customer index; the markers remember them.

    let repeat = purge(&store, &alice(), "me").await;

    assert_eq!(repeat.status(), 200, "{}", body_json(&repeat));
    let receipt = body_json(&repeat);
    assert_eq!(receipt["sessions_deleted"], 3, "every session counted once: {receipt}");
    assert_eq!(receipt["request_id"], "req-cut-off", "the receipt is the first request's");
    assert_eq!(receipt["items_deleted"], 3 * 41, "the items the cut-off attempt deleted count too: {left} were left, {receipt}");
    let after = scan_table(&store).await;
    assert!(items_of(&after, &mine).is_empty());
    assert_eq!(after.len(), 2, "only the receipt and its id under the customer's hash are left: {after:?}");
}

#[tokio::test]
async fn appends_racing_a_purge_cannot_bring_a_purged_session_back() {
    let store = store().await;
    let mut mine = Vec::new();
    for _ in 0..3 {
        mine.push(session_with_turns(&store, &alice(), 10).await);
    }

    // Each appender keeps appending to its session until the purge has removed it.
    let appenders: Vec<_> = mine
        .iter()
        .map(|&session| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 10..1_000 {
                    let draft = turn(i, "still there?").validate(store.config()).unwrap();
                    match store.append_turn(&alice(), session, draft).await {
                        Ok(appended) => statuses.push((201, appended.turn_index)),
                        Err(tidewater::Error::NotFound) => {
                            statuses.push((404, 0));
                            break;
                        }
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;

    let receipt = store.purge_customer("alice", "req-race").await.unwrap();

    let mut appended_during_purge = 0;
    for appender in appenders {
        let statuses = appender.await.unwrap();
        assert_eq!(statuses.last().map(|s| s.0), Some(404), "the purge ended every session: {statuses:?}");
        appended_during_purge += statuses.len() - 1;
    }
    assert!(appended_during_purge > 0, "the appends overlapped the purge");
    assert_eq!(receipt.sessions_deleted, 3);
    // An append after the purge finds no session and writes nothing.
    for session in &mine {
        let draft = turn(5_000, "after the purge").validate(store.config()).unwrap();
        assert!(matches!(store.append_turn(&alice(), *session, draft).await, Err(tidewater::Error::NotFound)));
    }
    assert!(items_of(&scan_table(&store).await, &mine).is_empty(), "an append brought a purged session back");
}

#[tokio::test]
async fn the_receipt_is_readable_by_its_customer_and_the_privacy_role_only() {
    let store = store().await;
    session_with_turns(&store, &alice(), 2).await;
    let purged = body_json(&purge(&store, &alice(), "me").await);
    let receipt_id = purged["receipt_id"].as_str().unwrap();

    let by_owner = get_receipt(&store, &alice(), receipt_id).await;
    let by_privacy = get_receipt(&store, &privacy_officer(), receipt_id).await;
    let by_bob = get_receipt(&store, &bob(), receipt_id).await;
    let by_support = get_receipt(&store, &Caller::new("carol", ["support"]), receipt_id).await;
    let unknown = get_receipt(&store, &privacy_officer(), &Uuid::new_v4().to_string()).await;

    assert_eq!(by_owner.status(), 200);
    assert_eq!(body_json(&by_owner), purged);
    assert_eq!(by_privacy.status(), 200);
    assert_eq!(body_json(&by_privacy), purged);
    assert_error(&by_bob, 404, "not_found");
    assert_error(&by_support, 404, "not_found");
    assert_error(&unknown, 404, "not_found");
}

#[tokio::test]
async fn purging_someone_else_needs_the_privacy_role() {
    let store = store().await;
    let alices = session_with_turns(&store, &alice(), 2).await;

    let by_bob = purge(&store, &bob(), "alice").await;
    let by_support = purge(&store, &Caller::new("carol", ["support"]), "alice").await;
    assert_error(&by_bob, 404, "not_found");
    assert_error(&by_support, 404, "not_found");
    assert_eq!(items_of(&scan_table(&store).await, &[alices]).len(), 5);

    let by_privacy = purge(&store, &privacy_officer(), "alice").await;

    assert_eq!(by_privacy.status(), 200);
    assert_eq!(body_json(&by_privacy)["sessions_deleted"], 1);
    assert!(items_of(&scan_table(&store).await, &[alices]).is_empty());
}

#[tokio::test]
async fn a_customer_may_name_themself_in_the_path() {
    let store = store().await;
    session_with_turns(&store, &alice(), 1).await;

    let response = purge(&store, &alice(), "alice").await;

    assert_eq!(response.status(), 200);
    assert_eq!(body_json(&response)["sessions_deleted"], 1);
}

#[tokio::test]
async fn repeating_a_finished_purge_answers_the_same_receipt() {
    let store = store().await;
    session_with_turns(&store, &alice(), 2).await;
    let first = body_json(&purge(&store, &alice(), "me").await);

    let again = purge(&store, &alice(), "me").await;

    assert_eq!(again.status(), 200);
    assert_eq!(body_json(&again), first, "the caller whose answer was lost gets the receipt, with its counts");
    assert_eq!((first["sessions_deleted"].as_u64(), first["items_deleted"].as_u64()), (Some(1), Some(5)));
    let receipts = scan_table(&store).await.iter().filter(|item| pk(item).starts_with("RECEIPT#")).count();
    assert_eq!(receipts, 1);
}

#[tokio::test]
async fn a_purge_whose_answer_was_lost_answers_the_same_receipt_when_repeated() {
    let store = store().await;
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with `make test`");
    // A customer with nothing stored: the purge's one transaction writes the receipt, and its
    // answer is lost (the SDK's retries are off, so the caller sees the failure).
    let plan = tidewater_local::fault::Plan::parse("lost_answer@TransactWriteItems=1", Duration::from_millis(5)).unwrap();
    let proxy = tidewater_local::fault::FaultProxy::new(plan, &upstream, 1);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(Arc::clone(&proxy).serve(listener, std::future::pending()));
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{address}"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .load()
        .await;
    let proxied = DynamoStore::new(aws_sdk_dynamodb::Client::new(&shared), store.config().clone());
    let lost = proxied.purge_customer("alice", "req-lost").await;
    assert!(lost.is_err(), "the answer never came: {lost:?}");
    assert_eq!(proxy.log().injected["lost_answer"]["TransactWriteItems"], 1);

    let repeat = purge(&store, &alice(), "me").await;

    assert_eq!(repeat.status(), 200, "{}", body_json(&repeat));
    let receipt = body_json(&repeat);
    let receipts: Vec<String> = scan_table(&store).await.iter().map(pk).filter(|pk| pk.starts_with("RECEIPT#")).collect();
    assert_eq!(receipts, [format!("RECEIPT#{}", receipt["receipt_id"].as_str().unwrap())], "one receipt, the one answered");
    assert_eq!(receipt["request_id"], "req-lost", "the receipt whose answer was lost");
}

#[tokio::test]
async fn purge_and_receipt_samples_run_against_the_sample_customer() {
    let store = store().await;
    create_session::handle(&*store, &default_redactor(), event_request(include_str!("../events/create-session.json"))).await;
    append_turn::handle(&*store, &default_redactor(), store.config(), event_request(include_str!("../events/append-turn.json"))).await;
    session_with_turns(&store, &alice(), 3).await;

    let refused = purge_customer::handle(&*store, event_request(include_str!("../events/purge-customer-bad-input.json"))).await;
    assert_error(&refused, 404, "not_found");
    let by_privacy =
        purge_customer::handle(&*store, event_request(include_str!("../events/purge-customer-privacy.json"))).await;
    let by_alice = purge_customer::handle(&*store, event_request(include_str!("../events/purge-customer.json"))).await;

    assert_eq!(by_privacy.status(), 200, "{}", body_json(&by_privacy));
    let receipt = body_json(&by_privacy);
    assert_eq!((receipt["sessions_deleted"].as_u64(), receipt["items_deleted"].as_u64()), (Some(2), Some(3 + 7)));
    assert_eq!(receipt["request_id"], "c0ffee00-0000-4000-8000-000000000023");
    assert_eq!(by_alice.status(), 200);
    assert_eq!(body_json(&by_alice), receipt, "nothing was left to delete: the same receipt");
    assert_eq!(naming(&scan_table(&store).await, "alice"), 0);

    // The sample names a fixed receipt id; point it at the receipt the purge wrote.
    let sample = event_request(include_str!("../events/get-receipt.json"));
    let receipt_id = receipt["receipt_id"].as_str().unwrap().to_owned();
    let read = get_receipt::handle(&*store, sample.with_path_parameters(HashMap::from([("receipt_id".to_owned(), receipt_id)]))).await;
    assert_eq!(read.status(), 200);
    assert_eq!(body_json(&read), receipt);
    let unknown = get_receipt::handle(&*store, event_request(include_str!("../events/get-receipt.json"))).await;
    assert_error(&unknown, 404, "not_found");
    let bad = get_receipt::handle(&*store, event_request(include_str!("../events/get-receipt-bad-input.json"))).await;
    assert_error(&bad, 400, "bad_request");
}

/// The capacity of purging a customer with 3 sessions of 50 turns, as DynamoDB Local
/// reports it with `ReturnConsumedCapacity: TOTAL`. Run with `--nocapture` to see it.
#[tokio::test]
async fn capacity_of_purging_three_sessions_of_fifty_turns() {
    let store = store().await;
    for _ in 0..3 {
        session_with_turns(&store, &alice(), 50).await;
    }
    store.reset_consumed();

    let receipt = store.purge_customer("alice", "req-capacity").await.unwrap();

    let consumed = store.consumed();
    println!(
        "purge of 3 sessions x 50 turns ({} items): {} RCU, {} WCU as reported",
        receipt.items_deleted, consumed.read_units, consumed.write_units
    );
    assert_eq!((receipt.sessions_deleted, receipt.items_deleted), (3, 3 * 101));
    assert!(consumed.write_units >= 303.0, "every deleted item is a write: {consumed:?}");
    assert!(consumed.read_units > 0.0, "{consumed:?}");
}

#[tokio::test]
async fn a_receipt_is_stamped_by_the_stores_clock() {
    // Given a store whose clock runs ten days ahead of the system's,
    let store = store().await;
    store.clock().advance(Duration::from_secs(10 * 86_400));
    let started = tidewater::clock::format(store.clock().now());
    session_with_turns(&store, &alice(), 1).await;

    // when the customer is purged,
    let receipt = body_json(&purge(&store, &alice(), "me").await);

    // then the receipt's times are that clock's.
    let (requested, completed) = (receipt["requested_at"].as_str().unwrap(), receipt["completed_at"].as_str().unwrap());
    assert!(started.as_str() <= requested && requested <= completed, "{started} {receipt}");
    assert!(completed <= tidewater::clock::format(store.clock().now()).as_str(), "{receipt}");
}
