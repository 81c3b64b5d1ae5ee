//! Capacity units are exact, so these budgets are tested (timings never are).
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::{keys, Caller, Config, ContextLoader, DynamoStore, NewSession, NewTurn, SessionCreator, SummaryWriter, TurnAppender};
use tidewater_tests::*;
use uuid::Uuid;

#[path = "../bench/src/item_size.rs"]
#[allow(dead_code)]
mod item_size;

/// About 1 KB of English chat text, different for every turn.
fn chat_text(turn: u64) -> String {
    const SENTENCES: [&str; 8] = [
        "I am looking for the next volume of the series my daughter started last month.",
        "The shop has the deluxe hardcover edition in stock, and the paperback arrives on Friday.",
        "Could you tell me whether the box set includes the bonus chapter that was published online?",
        "Shipping to Manchester usually takes two working days, and tracking is sent by email.",
        "We also recommend a similar fantasy adventure with a quiet, thoughtful main character.",
        "If the order is placed before noon, it leaves the warehouse on the same afternoon.",
        "The first printing came with a poster, but later printings only include the cover art.",
        "Gift wrapping is available at the checkout for a small extra charge per item.",
    ];
    let mut text = format!("Turn {turn}. ");
    let mut i = turn as usize;
    while text.len() < 1000 {
        text.push_str(SENTENCES[i % SENTENCES.len()]);
        text.push(' ');
        i = i * 7 + 3;
    }
    text.truncate(1000);
    text
}

fn chat_turn(turn: u64) -> tidewater::TurnDraft {
    let draft = NewTurn {
        response_id: format!("r{turn}"),
        role: if turn % 2 == 1 { "user" } else { "assistant" }.into(),
        content: chat_text(turn),
        intent: None,
        token_count: Some(250),
        item: None,
    };
    draft.validate(&tidewater::Config::default()).unwrap()
}

/// The benchmark workload: 200 turns of about 1 KB, and a settled summary through turn 180.
async fn long_session(store: &DynamoStore, caller: &Caller) -> Uuid {
    let session = store.create_session(caller, NewSession::default()).await.unwrap().session_id;
    for turn in 1..=200 {
        store.append_turn(caller, session, chat_turn(turn)).await.unwrap();
    }
    store.put_summary(session, 180, &chat_text(0)).await.unwrap();
    session
}

#[tokio::test]
async fn a_context_load_of_a_long_session_costs_one_rcu_and_a_304_half() {
    let store = store().await;
    let session = long_session(&store, &alice()).await;
    store.reset_consumed();

    let context = store.load_context(&alice(), session, newest(10, false)).await.unwrap();
    let load = store.consumed();
    store.reset_consumed();
    store.context_version(&alice(), session, false).await.unwrap();
    let not_modified = store.consumed();

    println!("load-context, 200 turns of 1 KB, N=10, with summary: {} RCU; 304: {} RCU", load.read_units, not_modified.read_units);
    assert_eq!(context.turns.len(), 10);
    assert!(context.summary.is_some());
    // Sealed, the eleven envelopes (56 bytes each with a key named `CUST#alice`) take META, the
    // summary and ten compressed turns past one 4 KB read unit; the key's own consistent
    // GetItem (1 RCU, in the key table) comes on top.
    assert_eq!(load.read_units, 1.0);
    assert_eq!(load.write_units, 0.0);
    assert_eq!(not_modified.read_units, 0.5);

    // In the clear (written before encryption), they fit one.
    let plain = DynamoStore::new(store.client().clone(), Config { encryption: None, ..store.config().clone() });
    let session = long_session(&plain, &bob()).await;
    plain.reset_consumed();
    plain.load_context(&bob(), session, newest(10, false)).await.unwrap();
    assert_eq!(plain.consumed().read_units, 0.5);
}

/// What an append of `turn` bills on DynamoDB: 2 WCU per KB of each transactional item
/// (META priced on the larger of its images), plus the customer index's writes.
async fn billed_append(store: &DynamoStore, caller: &Caller, session: Uuid, turn: tidewater::TurnDraft) -> f64 {
    let read = |sk: String| {
        let client = store.client().clone();
        let table = store.config().table_name.clone();
        async move {
            client
                .get_item()
                .table_name(table)
                .key(keys::PK, AttributeValue::S(keys::session_pk(&session)))
                .key(keys::SK, AttributeValue::S(sk))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .unwrap()
        }
    };
    let meta_before = read(keys::META.to_owned()).await;
    let response_id = turn.response_id.clone();
    let appended = store.append_turn(caller, session, turn).await.unwrap();
    assert!(!appended.duplicate);
    let meta_after = read(keys::META.to_owned()).await;
    let sizes = [
        item_size::item_size(&read(keys::response_sk(&response_id)).await),
        item_size::item_size(&read(keys::turn_sk(appended.turn_index)).await),
        item_size::item_size(&meta_before).max(item_size::item_size(&meta_after)),
    ];
    let index_moved = meta_before.get(keys::GSI1SK) != meta_after.get(keys::GSI1SK);
    let projected_changed = tidewater::store::RESUME_PROJECTION.iter().any(|a| meta_before.get(*a) != meta_after.get(*a));
    assert!(!projected_changed || index_moved, "the index entry changes only when it moves");
    sizes.iter().map(|&size| item_size::transactional_write_units(size)).sum::<f64>() + if index_moved { 2.0 } else { 0.0 }
}

#[tokio::test]
async fn an_append_bills_six_wcu_for_guests_and_customers_with_a_summary() {
    let store = store().await;
    let guest = Caller::new("visitor", ["guest"]);
    let guest_session = store.create_session(&guest, NewSession::default()).await.unwrap().session_id;
    let customer_session = long_session(&store, &alice()).await;

    let guest_bill = billed_append(&store, &guest, guest_session, chat_turn(1)).await;
    let customer_bill = billed_append(&store, &alice(), customer_session, chat_turn(201)).await;
    store.clock().advance(Duration::from_secs(3_600));
    let hourly_bill = billed_append(&store, &alice(), customer_session, chat_turn(202)).await;

    println!("append of a 1 KB turn as billed: guest {guest_bill} WCU, customer with a summary {customer_bill} WCU, first append of a new hour {hourly_bill} WCU");
    assert_eq!(guest_bill, 6.0);
    assert_eq!(customer_bill, 6.0);
    assert_eq!(hourly_bill, 8.0, "the customer index moves at most once per resume step");
}

#[tokio::test]
async fn an_append_of_a_1_kb_turn_and_its_retry() {
    let store = store().await;
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    let draft = || {
        NewTurn { response_id: "r1".into(), role: "user".into(), content: chat_text(1), intent: None, token_count: None, item: None }
            .validate(store.config())
            .unwrap()
    };
    store.reset_consumed();

    store.append_turn(&alice(), session, draft()).await.unwrap();
    let append = store.consumed();
    store.reset_consumed();
    let retry = store.append_turn(&alice(), session, draft()).await.unwrap();
    let duplicate = store.consumed();

    println!(
        "append of a 1 KB turn as DynamoDB Local reports it: {} RCU, {} WCU; duplicate retry: {} RCU, {} WCU",
        append.read_units, append.write_units, duplicate.read_units, duplicate.write_units
    );
    assert!(retry.duplicate);
    assert_eq!(duplicate.write_units, 0.0);
}
