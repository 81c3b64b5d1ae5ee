//! The fault proxy of `make chaos` in front of DynamoDB Local: the SDK reads its errors as
//! DynamoDB's own, a lost answer leaves the write applied, a reset never reaches DynamoDB,
//! and a stale read reaches the project as a lagging replica's answer would.
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::clock::Clock;
use tidewater::{keys, ContextLoader, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
use tidewater_local::fault::Plan;
use tidewater_tests::{alice, client_through_proxy, client_through_proxy_with, newest, store};

fn key(sort_key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (keys::PK.to_owned(), AttributeValue::S("FAULT#1".into())),
        (keys::SK.to_owned(), AttributeValue::S(sort_key.into())),
    ])
}

#[tokio::test]
async fn throttling_and_server_errors_reach_the_sdk_as_dynamodbs_own() {
    let store = store().await;
    let table = &store.config().table_name;
    let (client, proxy) =
        client_through_proxy("throughput_exceeded@GetItem=1, throttling@Query=1, internal_error@Scan=1").await;

    let get = client.get_item().table_name(table).set_key(Some(key("a"))).send().await;
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("FAULT#1".into()))
        .send()
        .await;
    let scan = client.scan().table_name(table).send().await;

    assert!(get.expect_err("throttled").into_service_error().is_provisioned_throughput_exceeded_exception());
    assert_eq!(query.expect_err("throttled").code(), Some("ThrottlingException"));
    assert!(scan.expect_err("failed").into_service_error().is_internal_server_error());
    let log = proxy.log();
    assert_eq!(log.injected["throughput_exceeded"]["GetItem"], 1);
    let get_fault = log.injections.iter().find(|i| i.operation == "GetItem").map(|i| i.keys.clone());
    assert_eq!(get_fault, Some(vec!["FAULT#1".to_owned(), "a".to_owned()]));
}

#[tokio::test]
async fn a_lost_answer_leaves_the_write_applied() {
    let store = store().await;
    let table = &store.config().table_name;
    let (client, proxy) = client_through_proxy("lost_answer@PutItem=1").await;

    let put = client.put_item().table_name(table).set_item(Some(key("lost"))).send().await;

    assert!(put.is_err(), "the answer never came");
    let stored =
        store.client().get_item().table_name(table).set_key(Some(key("lost"))).consistent_read(true).send().await;
    assert!(stored.expect("a direct read").item.is_some(), "the write was applied");
    assert_eq!(proxy.log().injected["lost_answer"]["PutItem"], 1);
}

#[tokio::test]
async fn a_reset_never_reaches_dynamodb() {
    let store = store().await;
    let table = &store.config().table_name;
    let (client, _proxy) = client_through_proxy("reset@PutItem=1").await;

    let put = client.put_item().table_name(table).set_item(Some(key("reset"))).send().await;

    assert!(put.is_err());
    let stored =
        store.client().get_item().table_name(table).set_key(Some(key("reset"))).consistent_read(true).send().await;
    assert!(stored.expect("a direct read").item.is_none());
}

fn turn(i: u64) -> tidewater::TurnDraft {
    let turn = NewTurn { response_id: format!("msg-{i}"), role: "user".into(), content: format!("turn {i}"), intent: None, token_count: None };
    turn.validate(&tidewater::Config::default()).expect("a valid turn")
}

#[tokio::test]
async fn a_stale_read_reaches_the_project_a_load_misses_a_fresh_turn_while_the_lag_holds() {
    let direct = store().await;
    let clock = Clock::system();
    let lag = Duration::from_secs(60);
    let plan = Plan::parse("stale@GetItem|Query=1", Duration::ZERO).expect("a valid plan").with_stale_bound(lag);
    let (client, proxy) = client_through_proxy_with(plan, clock.clone()).await;
    let store = DynamoStore::new(client, direct.config().clone()).with_clock(clock.clone());
    let session = store.create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    for i in 1..=3 {
        store.append_turn(&alice(), session, turn(i)).await.unwrap();
    }
    clock.advance(lag + Duration::from_secs(1));

    store.append_turn(&alice(), session, turn(4)).await.unwrap();
    let eventual = store.load_context(&alice(), session, newest(10, false)).await.unwrap();
    let consistent = store.load_context(&alice(), session, newest(10, true)).await.unwrap();
    clock.advance(lag + Duration::from_secs(1));
    let after_the_lag = store.load_context(&alice(), session, newest(10, false)).await.unwrap();

    let indices = |context: &tidewater::Context| context.turns.iter().map(|t| t.turn_index).collect::<Vec<_>>();
    assert_eq!(indices(&eventual), [1, 2, 3], "the eventual load misses turn 4 while the lag holds");
    assert_eq!(eventual.session.as_ref().map(|s| s.turn_count), Some(3), "and says so by its turn count");
    assert_eq!(indices(&consistent), [1, 2, 3, 4], "a consistent load is never stale");
    assert_eq!(indices(&after_the_lag), [1, 2, 3, 4], "once the lag has passed, the eventual load shows it");
    assert!(proxy.log().injected["stale"]["Query"] >= 1);
}

#[tokio::test]
async fn a_stale_get_serves_the_version_before_a_write_and_an_item_deleted_within_the_lag() {
    let direct = store().await;
    let table = &direct.config().table_name;
    let clock = Clock::system();
    let plan = Plan::parse("stale@GetItem=1", Duration::ZERO).expect("a valid plan").with_stale_bound(Duration::from_secs(60));
    let (client, _proxy) = client_through_proxy_with(plan, clock.clone()).await;
    let put = |version: &str| {
        let mut item = key("stale");
        item.insert("version".into(), AttributeValue::N(version.into()));
        client.put_item().table_name(table).set_item(Some(item)).send()
    };
    put("1").await.unwrap();
    clock.advance(Duration::from_secs(61));
    put("2").await.unwrap();
    let get = || client.get_item().table_name(table).set_key(Some(key("stale"))).send();

    let stale = get().await.unwrap().item.expect("the item existed before the write");
    client.delete_item().table_name(table).set_key(Some(key("stale"))).send().await.unwrap();
    let deleted = get().await.unwrap().item;
    clock.advance(Duration::from_secs(61));
    let settled = get().await.unwrap().item;

    assert_eq!(stale["version"], AttributeValue::N("1".into()));
    assert!(deleted.is_some(), "a lagging replica still holds the deleted item");
    assert_eq!(settled, None);
}
