//! The fault proxy of `make chaos` in front of DynamoDB Local: the SDK reads its errors as
//! DynamoDB's own, a lost answer leaves the write applied, and a reset never reaches DynamoDB.
use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::keys;
use tidewater_tests::{client_through_proxy, store};

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
