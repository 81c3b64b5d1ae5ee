//! Home regions over two replicated regions (the replicator of tests/replication.rs): a request
//! that reaches the other region is forwarded to the session's home and answered as home
//! answers it, before anything has replicated; stream work runs only in the home.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_sdk_dynamodb::types::AttributeValue;
use axum::extract::{Path, State};
use lambda_http::Body;
use serde_json::{json, Value};
use tidewater::home::{self, HomeMap, HomeSource, Homes};
use tidewater::store::{Janitor, JANITOR_GRACE_SECONDS, STUCK_AFTER_FAILURES, WAITING_WINDOWS_BEFORE_FAILURE};
use tidewater::{keys, Config, Error, ContextLoader, SummaryWriter, CustomerPurger, DynamoStore, SessionDeleter, ExtractiveSummarizer, NewSession, NewTurn, SessionCreator, TurnAppender};
use tidewater_local::gateway::{issue_token, Gateway};
use tidewater_local::homing::{self, SERVED_BY};
use tidewater_local::mesh::Settings;
use tidewater_local::replicator::failover::Fence;
use tidewater_local::stream::StreamRunner;
use tidewater_local::template;
use tidewater_tests::{default_redactor, test_config, test_hash_key, test_master_keys, test_receipt_salt};
use uuid::Uuid;

use crate::replication::{regions, Regions, EAST, LAG, WEST};

pub(crate) const NAMES: [&str; 2] = ["us-east-1", "eu-west-1"];
pub(crate) const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
pub(crate) const SECRET: &str = "tidewater-test-gateway-secret";

pub(crate) fn homes() -> HomeSource {
    HomeSource::Fixed(Homes::new(&NAMES.join(","), HomeMap::default()).expect("two regions"))
}

/// `region`'s store as its functions run it: knowing the regions and which one it is.
pub(crate) async fn home_store(regions: &Regions, region: usize, config: Config) -> Arc<DynamoStore> {
    home_store_with(regions, region, config, homes()).await
}

async fn home_store_with(regions: &Regions, region: usize, config: Config, homes: HomeSource) -> Arc<DynamoStore> {
    Arc::new(region_store(regions, region, config, homes).await)
}

async fn region_store(regions: &Regions, region: usize, config: Config, homes: HomeSource) -> DynamoStore {
    let config = Config { table_name: regions.table.clone(), region: Some(NAMES[region].to_owned()), homes: Some(homes), ..config };
    let config = config.with_receipt_salt(test_receipt_salt()).with_hash_key(test_hash_key());
    DynamoStore::new(crate::replication::client(&regions.endpoints[region]).await, config)
}

/// `region`'s store as the purge-customer and janitor functions run it: it also reads the
/// other region's replica, through that region's endpoint.
async fn store_reading_replicas(regions: &Regions, region: usize) -> DynamoStore {
    let other = 1 - region;
    let replica = crate::replication::client(&regions.endpoints[other]).await;
    region_store(regions, region, test_config(), homes()).await.with_replicas(vec![(NAMES[other].to_owned(), replica)])
}

/// Lambda's invoke API for one region, running the functions this test calls in-process.
async fn invoke(
    State(store): State<Arc<DynamoStore>>,
    Path(function): Path<String>,
    event: String,
) -> axum::Json<Value> {
    let request = lambda_http::request::from_str(&event).expect("an API Gateway event");
    lambda_answer(run_function(&store, &function, request).await)
}

/// Runs `function`'s handler in-process on `request`, with `store`.
pub(crate) async fn run_function(store: &DynamoStore, function: &str, request: lambda_http::Request) -> lambda_http::Response<Body> {
    match function {
        "create-session" => create_session::handle(store, &default_redactor(), request).await,
        "append-turn" => append_turn::handle(store, &default_redactor(), store.config(), request).await,
        "load-context" => load_context::handle(store, request).await,
        "purge-customer" => purge_customer::handle(store, request).await,
        "update-session" => update_session::handle(store, &default_redactor(), request).await,
        "export-turns" => export_turns::handle(store, &tidewater_tests::test_cursor_key(), request).await,
        other => panic!("this test does not call {other}"),
    }
}

/// A function's answer as Lambda's invoke API returns it to API Gateway.
pub(crate) fn lambda_answer(response: lambda_http::Response<Body>) -> axum::Json<Value> {
    let headers: serde_json::Map<String, Value> = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or_default())))
        .collect();
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    axum::Json(json!({
        "statusCode": response.status().as_u16(), "headers": headers, "multiValueHeaders": {},
        "isBase64Encoded": false, "cookies": [], "body": body,
    }))
}

/// Each region's API: the local gateway in front of its functions, forwarding to the other.
async fn apis(regions: &Regions) -> Vec<String> {
    apis_and_stores(regions).await.0
}

/// [`apis`], and the store each region's functions use.
async fn apis_and_stores(regions: &Regions) -> (Vec<String>, Vec<Arc<DynamoStore>>) {
    apis_with(regions, homes()).await
}

/// [`apis_and_stores`] with the home map from `homes`.
async fn apis_with(regions: &Regions, homes: HomeSource) -> (Vec<String>, Vec<Arc<DynamoStore>>) {
    apis_with_config(regions, homes, test_config()).await
}

/// [`apis_with`], the functions' stores made from `config`.
async fn apis_with_config(regions: &Regions, homes: HomeSource, config: Config) -> (Vec<String>, Vec<Arc<DynamoStore>>) {
    let mut stores = Vec::new();
    let control = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let replication = format!("http://{}", control.local_addr().expect("its address"));
    tokio::spawn(axum::serve(control, Arc::clone(&regions.replicator).control()).into_future());
    let mut listeners = Vec::new();
    let mut apis = BTreeMap::new();
    for name in NAMES {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        apis.insert(name.to_owned(), format!("http://{}", listener.local_addr().expect("its address")));
        listeners.push(listener);
    }
    for (region, listener) in listeners.into_iter().enumerate() {
        let functions = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let functions_url = format!("http://{}", functions.local_addr().expect("its address"));
        let store = home_store_with(regions, region, config.clone(), homes.clone()).await;
        stores.push(Arc::clone(&store));
        let lambda = axum::Router::new()
            .route("/2015-03-31/functions/{function}/invocations", axum::routing::post(invoke))
            .with_state(store);
        tokio::spawn(async move { axum::serve(functions, lambda).await });
        let routes = template::http_routes(&template::load(TEMPLATE).expect("the template"));
        let here = homing::Regions {
            here: NAMES[region].to_owned(),
            apis: apis.clone(),
            homes: homes.clone(),
            replication: Some(replication.clone()),
        };
        let gateway = Gateway::new(routes, SECRET.into(), functions_url)
            .with_region_status(Some(format!("{replication}/regions/{}", NAMES[region])))
            .with_regions(Some(here));
        tokio::spawn(async move { axum::serve(listener, gateway.router()).await });
    }
    (NAMES.iter().map(|name| apis[*name].clone()).collect(), stores)
}

pub(crate) fn token(sub: &str, groups: &[&str]) -> String {
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    issue_token(sub, &groups, SECRET, Duration::from_secs(600)).expect("a token")
}

/// The items of one session in `region`'s own DynamoDB Local, as (SK, item) text.
pub(crate) async fn session_items(regions: &Regions, region: usize, session: &str) -> Vec<String> {
    let pk = format!("SESSION#{session}");
    let mut items: Vec<String> = regions
        .items(region)
        .await
        .into_iter()
        .filter(|item| item.get("PK").and_then(|pk| pk.as_s().ok()) == Some(&pk))
        .map(|item| format!("{:?}", item.get("SK")))
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn a_session_is_appended_and_loaded_through_the_other_region_before_anything_replicates() {
    // Given two regions whose replication is held, each API in front of its own functions,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, true));
    let apis = apis(&regions).await;
    let http = reqwest::Client::new();
    // and alice, whose home is the west, creating a session there,
    assert_eq!(Homes::new(&NAMES.join(","), HomeMap::default()).unwrap().home_of(tidewater::home::customer_slot("alice")), NAMES[WEST]);
    let alice = token("alice", &[]);
    let created: Value =
        http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let session = created["session_id"].as_str().expect("a session id").to_owned();
    assert_eq!(tidewater::home::carried_slot(&Uuid::parse_str(&session).unwrap()), Some(tidewater::home::customer_slot("alice")));

    // when she appends through the east at once, and retries it there,
    let turn = json!({"response_id": "r1", "role": "user", "content": "Is volume 3 of Frieren in stock?"});
    let append = |api: &str| http.post(format!("{api}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn).send();
    let appended = append(&apis[EAST]).await.unwrap();
    assert_eq!(appended.headers()[SERVED_BY], NAMES[WEST]);
    assert_eq!((appended.status().as_u16(), appended.json::<Value>().await.unwrap()["turn_index"].clone()), (201, json!(1)));
    let retried: Value = append(&apis[EAST]).await.unwrap().json().await.unwrap();
    assert_eq!((&retried["turn_index"], &retried["duplicate"]), (&json!(1), &json!(true)));

    // then a load through the east answers exactly what the west answers, ETag included,
    let load = |api: &str| http.get(format!("{api}/sessions/{session}/context")).bearer_auth(&alice).send();
    let (east, west) = (load(&apis[EAST]).await.unwrap(), load(&apis[WEST]).await.unwrap());
    assert_eq!((east.status(), east.headers()["etag"].clone()), (west.status(), west.headers()["etag"].clone()));
    let (east, west): (Value, Value) = (east.json().await.unwrap(), west.json().await.unwrap());
    assert_eq!(east, west);
    assert_eq!(east["turns"].as_array().map(Vec::len), Some(1));
    // and the turn was written once, in the west only: the east holds nothing of the session yet;
    let west_items = session_items(&regions, WEST, &session).await;
    assert_eq!(west_items.iter().filter(|sk| sk.contains("TURN#")).count(), 1);
    assert!(session_items(&regions, EAST, &session).await.is_empty());
    // once replication resumes the east holds the same items.
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(2 * LAG).await;
    assert_eq!(session_items(&regions, EAST, &session).await, west_items);

    // And a guest's session made in the east (its id carries an east slot) is served through the west.
    let guest = token("guest-7", &["guest"]);
    let created: Value =
        http.post(format!("{}/sessions", apis[EAST])).bearer_auth(&guest).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let session = created["session_id"].as_str().expect("a session id").to_owned();
    let appended = http.post(format!("{}/sessions/{session}/turns", apis[WEST])).bearer_auth(&guest).json(&turn).send().await.unwrap();
    assert_eq!((appended.status().as_u16(), appended.headers()[SERVED_BY].to_str().unwrap()), (201, NAMES[EAST]));
}

#[tokio::test]
async fn a_forwarded_append_costs_the_home_what_a_home_append_costs_and_the_other_region_nothing() {
    // Given alice's session in the west, her home,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, stores) = apis_and_stores(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let created: Value =
        http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let session = created["session_id"].as_str().expect("a session id").to_owned();
    let mut consumed = Vec::new();
    // when a 1 KB turn is appended through the west and another through the east,
    for (n, api) in [(1, &apis[WEST]), (2, &apis[EAST])] {
        stores.iter().for_each(|store| store.reset_consumed());
        let content: String = (0..32).map(|_| Uuid::new_v4().simple().to_string()).collect::<String>()[..1000].to_owned();
        let turn = json!({"response_id": format!("r{n}"), "role": "user", "content": content});
        let appended = http.post(format!("{api}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn).send().await.unwrap();
        assert_eq!(appended.status(), 201);
        consumed.push(stores.iter().map(|store| store.consumed()).collect::<Vec<_>>());
    }
    // then the forwarded one cost the west what the direct one did, and the east nothing: the
    // price of a non-home region is one cross-region HTTP round trip, and no capacity.
    let units = |capacity: &tidewater::Capacity| (capacity.read_units, capacity.write_units);
    assert_eq!(units(&consumed[1][WEST]), units(&consumed[0][WEST]));
    assert!(consumed[0][WEST].write_units > 0.0);
    assert_eq!(units(&consumed[1][EAST]), (0.0, 0.0));
}

#[tokio::test]
async fn with_the_home_down_another_region_serves_reads_marked_stale_and_refuses_appends() {
    // Given alice's session in the west (her home) with two replicated turns and a third
    // acknowledged while west → east was paused,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let apis = apis(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let created: Value =
        http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let session = created["session_id"].as_str().expect("a session id").to_owned();
    let append = |api: &str, n: u32| {
        let turn = json!({"response_id": format!("r{n}"), "role": "user", "content": format!("turn {n}")});
        http.post(format!("{api}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn).send()
    };
    for n in 1..=2 {
        assert_eq!(append(&apis[WEST], n).await.unwrap().status(), 201);
    }
    regions.after(LAG).await;
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    assert_eq!(append(&apis[WEST], 3).await.unwrap().status(), 201);
    // when the west goes down,
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
    // then a load through the east, even a conditional one, is the east's replica: 200,
    // marked stale, without an ETag, and missing the turn that had not replicated;
    let load = http
        .get(format!("{}/sessions/{session}/context", apis[EAST]))
        .bearer_auth(&alice)
        .header("if-none-match", "\"3\"")
        .send()
        .await
        .unwrap();
    assert_eq!(load.status(), 200);
    assert_eq!(load.headers()[homing::STALE], "true");
    assert!(load.headers().get("etag").is_none());
    let context: Value = load.json().await.unwrap();
    assert_eq!(context["turns"].as_array().map(Vec::len), Some(2));
    // an append through the east is 503 with Retry-After and writes nothing,
    let refused = append(&apis[EAST], 4).await.unwrap();
    assert_eq!((refused.status().as_u16(), refused.headers()["retry-after"].to_str().unwrap()), (503, "1"));
    assert_eq!(refused.json::<Value>().await.unwrap()["code"], "home_unavailable");
    // and once the west is back, the third turn reaches the east and nothing else was written.
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false)
    });
    regions.after(LAG).await;
    let turns = session_items(&regions, EAST, &session).await.into_iter().filter(|sk| sk.contains("TURN#")).count();
    assert_eq!(turns, 3);
}

#[tokio::test]
async fn with_two_regions_each_window_is_summarised_once_in_the_home() {
    // Given two regions, and a guest session made in the east (its home) with 25 turns,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let config = Config { summary_keep_recent: 0, ..test_config() };
    let stores = [home_store(&regions, EAST, config.clone()).await, home_store(&regions, WEST, config).await];
    let guest = tidewater::Caller::new("guest-7", ["guest"]);
    let session = stores[EAST].create_session(&guest, NewSession::default()).await.unwrap().session_id;
    for i in 1..=25 {
        let turn = NewTurn { response_id: format!("r{i}"), role: "user".into(), content: format!("turn {i}"), intent: None, token_count: None, item: None };
        stores[EAST].append_turn(&guest, session, turn.validate(stores[EAST].config()).unwrap()).await.unwrap();
    }
    // replicated to the west, whose stream carries META with its flag set,
    regions.after(LAG).await;
    // when each region's stream runner drives its own summarize function,
    let summaries = |region: usize| {
        let session = session.to_string();
        let regions = &regions;
        async move {
            session_items(regions, region, &session).await.into_iter().filter(|sk| sk.contains(keys::SUMMARY_PREFIX)).count()
        }
    };
    for region in [WEST, EAST] {
        run_stream(&regions, region, &stores[region]).await;
    }
    // then only the east wrote a summary, and once it has replicated both hold that one.
    assert_eq!(summaries(WEST).await, 0, "the west saw the replicated flag and left it to the home");
    assert_eq!(summaries(EAST).await, 1);
    regions.after(LAG).await;
    run_stream(&regions, WEST, &stores[WEST]).await;
    assert_eq!((summaries(EAST).await, summaries(WEST).await), (1, 1));
}

/// Runs `region`'s stream runner over its own DynamoDB Local until it has read everything.
async fn run_stream(regions: &Regions, region: usize, store: &Arc<DynamoStore>) {
    let streams = tidewater_local::stream::streams_client_at(Some(regions.upstream_url(region))).await;
    let mapping = tidewater_local::filter::StreamMapping::load(TEMPLATE, "summarize").expect("the summarize mapping");
    let mut runner = StreamRunner::new(regions.upstreams[region].clone(), streams, &regions.table, mapping, None)
        .expect("a runner")
        .with_retry_delay(Duration::from_millis(10));
    let invoke = |event: Event| {
        let store = Arc::clone(store);
        async move { Ok(summarize::handle(&*store, &ExtractiveSummarizer::default(), store.config(), event).await) }
    };
    let mut quiet = 0;
    while quiet < 3 {
        let read = runner.poll_once(&invoke).await.expect("a poll").read;
        quiet = if read == 0 { quiet + 1 } else { 0 };
    }
}

#[tokio::test]
async fn a_purge_receipt_waits_until_the_other_region_holds_nothing_of_the_customer() {
    // Given alice (home: the west) with a session whose first turns reached the east, and a
    // guest's session there too,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: LAG.as_micros() as i64, skew: vec![] }).await;
    let west = Arc::new(store_reading_replicas(&regions, WEST).await);
    let alice = tidewater_tests::alice();
    let guest = tidewater::Caller::new("guest-9", ["guest"]);
    let session = west.create_session(&alice, NewSession::default()).await.unwrap().session_id;
    let guests = west.create_session(&guest, NewSession::default()).await.unwrap().session_id;
    let append = |n: u32| {
        let turn = NewTurn { response_id: format!("r{n}"), role: "user".into(), content: format!("turn {n}"), intent: None, token_count: None, item: None };
        let west = Arc::clone(&west);
        let alice = alice.clone();
        async move { west.append_turn(&alice, session, turn.validate(west.config()).unwrap()).await.unwrap() }
    };
    append(1).await;
    append(2).await;
    regions.after(3 * LAG).await;
    assert!(!session_items(&regions, EAST, &session.to_string()).await.is_empty());
    // and a third turn acknowledged in the west while west → east is paused (a write made
    // before the purge that replicates after it),
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    append(3).await;

    // when the west purges her, the west is clean but the answer is no receipt: first the
    // replication window after its last delete, then, once it has passed, the east still
    // holding her session;
    let first = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(first, Err(Error::PurgeReplicating(s)) if (1..=60).contains(&s)), "{first:?}");
    assert!(session_items(&regions, WEST, &session.to_string()).await.is_empty());
    west.clock().advance(west.config().purge_settle);
    let behind = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(behind, Err(Error::PurgeReplicating(_))), "a receipt while the east holds her session: {behind:?}");
    assert!(!session_items(&regions, EAST, &session.to_string()).await.is_empty());
    let receipts = |region: usize| {
        let regions = &regions;
        async move { regions.items(region).await.iter().filter(|i| i.get("SK").and_then(|sk| sk.as_s().ok()).is_some_and(|sk| sk == "RECEIPT")).count() }
    };
    assert_eq!(receipts(WEST).await, 0);

    // then, once replication resumes and settles, the repeat answers the receipt, with the
    // counts of the first run; nothing of her sessions is left in either region, the late
    // third turn included, and the guest's session is untouched in both;
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(3 * LAG).await;
    let receipt = west.purge_customer(&alice.customer_id, "purge-2").await.expect("a receipt");
    assert_eq!((receipt.sessions_deleted, receipt.items_deleted, receipt.request_id.as_str()), (1, 7, "purge-1"));
    regions.after(3 * LAG).await;
    for region in [EAST, WEST] {
        assert!(session_items(&regions, region, &session.to_string()).await.is_empty());
        assert!(session_items(&regions, region, &guests.to_string()).await.iter().any(|sk| sk.contains(keys::META)));
    }
    assert_eq!(regions.items(EAST).await, regions.items(WEST).await);
    // and a repeat whose first answer was lost gets the same receipt at once, without a window.
    let again = west.purge_customer(&alice.customer_id, "purge-3").await.expect("the same receipt");
    assert_eq!(again.receipt_id, receipt.receipt_id);
}

#[tokio::test]
async fn a_purge_gives_no_receipt_while_the_other_region_is_down_and_finishes_once_it_is_back() {
    // Given alice's session in the west, replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let west = store_reading_replicas(&regions, WEST).await;
    let alice = tidewater_tests::alice();
    let session = tidewater_tests::session_with_turns(&west, &alice, 2).await;
    regions.after(3 * LAG).await;
    // when the east goes down and the west purges her past the replication window,
    regions.replicator.with_mesh(|mesh| mesh.set_down(EAST, true));
    let first = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(first, Err(Error::PurgeReplicating(_))), "{first:?}");
    west.clock().advance(west.config().purge_settle);
    let down = west.purge_customer(&alice.customer_id, "purge-1").await;
    // then no receipt is given while the east cannot be read (a retryable 503),
    assert!(matches!(down, Err(Error::Unavailable(_))), "{down:?}");
    // and once the east is back and has the deletes, the repeat answers the receipt.
    regions.replicator.with_mesh(|mesh| mesh.set_down(EAST, false));
    regions.after(3 * LAG).await;
    let receipt = west.purge_customer(&alice.customer_id, "purge-1").await.expect("a receipt");
    assert_eq!(receipt.sessions_deleted, 1);
    assert!(session_items(&regions, EAST, &session.to_string()).await.is_empty());
}

#[tokio::test]
async fn each_regions_janitor_finishes_only_the_work_its_region_began() {
    // Given a purge of alice cut off half-way in the west, her home, whose work item and open
    // ledger have replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (west, east) = (store_reading_replicas(&regions, WEST).await, store_reading_replicas(&regions, EAST).await);
    let alice = tidewater_tests::alice();
    for _ in 0..2 {
        tidewater_tests::session_with_turns(&west, &alice, 20).await;
    }
    let cut_off = west.purge_customer_with(&tidewater_tests::CutOffAfter::new(&west, 1), &alice.customer_id, "purge-1").await;
    assert!(cut_off.is_err());
    regions.after(3 * LAG).await;
    let grace = Duration::from_secs(JANITOR_GRACE_SECONDS as u64 + 1);
    west.clock().advance(grace);
    east.clock().advance(grace);

    // when each region's janitor runs a pass once the item is overdue,
    let in_east = east.janitor_pass(east.clock().now()).await.unwrap();
    // then the east's leaves it to the west and writes nothing: no receipt outside the home;
    assert_eq!((in_east.purges_finished, in_east.failed, in_east.elsewhere), (0, 0, 1), "{in_east:?}");
    regions.after(3 * LAG).await;
    assert_eq!(regions.items(EAST).await, regions.items(WEST).await);
    // the west's finishes the purge, and its receipt comes once the east has the deletes.
    let in_west = west.janitor_pass(west.clock().now()).await.unwrap();
    assert_eq!((in_west.purges_finished, in_west.failed, in_west.waiting), (0, 0, 1), "the replication window first: {in_west:?}");
    regions.after(3 * LAG).await;
    west.clock().advance(west.config().purge_settle);
    let in_west = west.janitor_pass(west.clock().now()).await.unwrap();
    assert_eq!((in_west.purges_finished, in_west.failed, in_west.elsewhere), (1, 0, 0), "{in_west:?}");
    let receipt = west.purge_customer(&alice.customer_id, "purge-2").await.expect("the janitor's receipt");
    assert_eq!((receipt.sessions_deleted, receipt.request_id.as_str()), (2, "purge-1"));
}

#[tokio::test]
async fn after_a_failover_no_acknowledged_turn_is_lost_or_overwritten_and_the_returning_region_is_reported() {
    // Given the regions reading one home map file that the replicator rewrites,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let path = std::env::temp_dir().join(format!("home-map-{}.json", Uuid::new_v4()));
    regions.replicator.set_home_map(path.clone());
    let (apis, _stores) = apis_with(&regions, HomeSource::File { regions: NAMES.join(","), path: path.clone() }).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let create = || async {
        let created: Value =
            http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap().json().await.unwrap();
        created["session_id"].as_str().expect("a session id").to_owned()
    };
    let append = |api: &str, session: &str, n: u32| {
        let turn = json!({"response_id": format!("r{n}"), "role": "user", "content": format!("turn {n}")});
        http.post(format!("{api}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn).send()
    };
    // and alice (home: the west) with two sessions whose first two turns replicated,
    let (session, quiet) = (create().await, create().await);
    for n in 1..=2 {
        assert_eq!(append(&apis[WEST], &session, n).await.unwrap().status(), 201);
    }
    regions.after(LAG).await;
    // and a third turn acknowledged while west → east was paused, just before the west fails,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    assert_eq!(append(&apis[WEST], &session, 3).await.unwrap().status(), 201);
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
    // when the west's sessions fail over to the east,
    let failover = regions.replicator.fail_over(NAMES[WEST], NAMES[EAST], Fence::Sessions).expect("the failover");
    // then the RPO is that one turn, and its session is fenced in the east: no write, reads marked stale;
    assert_eq!((failover.epoch, failover.unreplicated.turns.len(), failover.fenced), (1, 1, 1));
    let refused = append(&apis[EAST], &session, 4).await.unwrap();
    assert_eq!((refused.status().as_u16(), refused.json::<Value>().await.unwrap()["code"].clone()), (503, json!("session_fenced")));
    let load = http.get(format!("{}/sessions/{session}/context", apis[EAST])).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(load.headers()[homing::STALE], "true");
    assert_eq!(load.json::<Value>().await.unwrap()["turns"].as_array().map(Vec::len), Some(2));
    // while her other session, which lacked nothing, is written in its new home at once;
    let moved = append(&apis[EAST], &quiet, 1).await.unwrap();
    assert_eq!((moved.status().as_u16(), moved.headers().get(SERVED_BY).is_none()), (201, true));
    // when the west returns it is reported with the turn, which is then delivered and the fence lifted,
    let returned = regions.replicator.unreplicated_from(WEST);
    assert_eq!(returned[NAMES[EAST]].turns, failover.unreplicated.turns);
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false);
    });
    regions.after(LAG).await;
    // and the session goes on in the east from the true count: nothing lost, overwritten or doubled.
    let appended: Value = append(&apis[EAST], &session, 4).await.unwrap().json().await.unwrap();
    assert_eq!(appended["turn_index"], 4);
    let retried: Value = append(&apis[EAST], &session, 3).await.unwrap().json().await.unwrap();
    assert_eq!((&retried["turn_index"], &retried["duplicate"]), (&json!(3), &json!(true)));
    regions.after(LAG).await;
    for api in &apis {
        let context: Value =
            http.get(format!("{api}/sessions/{session}/context")).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
        let contents: Vec<&str> = context["turns"].as_array().unwrap().iter().filter_map(|t| t["content"].as_str()).collect();
        assert_eq!(contents, ["turn 1", "turn 2", "turn 3", "turn 4"], "{api}");
    }
    assert_eq!(regions.items(EAST).await, regions.items(WEST).await);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn without_a_fence_as_on_aws_the_new_homes_turns_never_overwrite_the_old_homes_late_ones_which_are_reported_unmerged() {
    // Given the regions reading one home map file, and alice (home: the west) with a session
    // whose first two turns replicated,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let path = std::env::temp_dir().join(format!("home-map-{}.json", Uuid::new_v4()));
    regions.replicator.set_home_map(path.clone());
    let (apis, stores) = apis_with(&regions, HomeSource::File { regions: NAMES.join(","), path: path.clone() }).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let created: Value =
        http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let session = created["session_id"].as_str().expect("a session id").to_owned();
    let append = |api: &str, response: &str, content: &str| {
        let turn = json!({"response_id": response, "role": "user", "content": content});
        let request = http.post(format!("{api}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn);
        async move {
            let answer = request.send().await.unwrap();
            (answer.status().as_u16(), answer.json::<Value>().await.unwrap())
        }
    };
    for n in 1..=2 {
        assert_eq!(append(&apis[WEST], &format!("r{n}"), &format!("turn {n}")).await.0, 201);
    }
    regions.after(LAG).await;
    // and a third turn acknowledged while west → east was paused, just before the west fails,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    assert_eq!(append(&apis[WEST], "r3", "turn 3").await, (201, json!({"turn_index": 3, "duplicate": false})));
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
    // when the west fails over to the east with no fence, as on AWS,
    let failover = regions.replicator.fail_over(NAMES[WEST], NAMES[EAST], Fence::Off).expect("the failover");
    assert_eq!((failover.epoch, failover.unreplicated.turns.len(), failover.fenced), (1, 1, 0));
    // and the east goes on at once from the two turns it has, under the new epoch's keys,
    assert_eq!(append(&apis[EAST], "r4", "turn 4").await, (201, json!({"turn_index": 3, "duplicate": false})));
    assert_eq!(append(&apis[EAST], "r5", "turn 5").await, (201, json!({"turn_index": 4, "duplicate": false})));
    // and the west comes back and delivers its late turn,
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false);
    });
    regions.after(3 * LAG).await;
    // then neither turn 3 overwrote the other: both regions hold both, the same items;
    assert_eq!(regions.items(EAST).await, regions.items(WEST).await);
    for region in [WEST, EAST] {
        let stored = session_items(&regions, region, &session).await;
        let holds = |sk: String| stored.iter().any(|item| item.contains(&format!("\"{sk}\"")));
        assert!(holds(keys::turn_sk(3)) && holds(keys::epoch_turn_sk(3, 1)), "{stored:?}");
    }
    // the session's order is the new home's, in every region, and the old home's late turn is
    // reported by the export as unmerged, never silently dropped;
    let read = |api: &str, route: &str| {
        let request = http.get(format!("{api}/sessions/{session}/{route}")).bearer_auth(&alice);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let contents = |turns: &Value| -> Vec<String> {
        turns.as_array().unwrap().iter().map(|t| t["content"].as_str().unwrap_or_default().to_owned()).collect()
    };
    for api in &apis {
        assert_eq!(contents(&read(api, "context").await["turns"]), ["turn 1", "turn 2", "turn 4", "turn 5"], "{api}");
        let export = read(api, "turns").await;
        assert_eq!(contents(&export["turns"]), ["turn 1", "turn 2", "turn 4", "turn 5"], "{api}");
        let unmerged = &export["unmerged"];
        assert_eq!((&unmerged[0]["turn_index"], &unmerged[0]["content"], &unmerged[0]["epoch"]), (&json!(3), &json!("turn 3"), &json!(0)), "{api}");
        assert_eq!(unmerged.as_array().map(Vec::len), Some(1));
    }
    // and so is it by the operator's report (`make unmerged`) in either region, with no content;
    for store in &stores {
        let report = store.unmerged_turns().await.expect("the report");
        let listed: Vec<_> = report.iter().map(|turn| (turn.session_id.to_string(), turn.turn_index, turn.epoch, turn.session_epoch)).collect();
        assert_eq!(listed, [(session.clone(), 3, 0, 1)]);
    }
    // a retry of a turn the new home wrote is a duplicate, and a retry of the old home's late
    // turn appends it again, once, in the session's order.
    assert_eq!(append(&apis[EAST], "r4", "turn 4").await, (200, json!({"turn_index": 3, "duplicate": true})));
    assert_eq!(append(&apis[EAST], "r3", "turn 3").await, (201, json!({"turn_index": 5, "duplicate": false})));
    assert_eq!(append(&apis[WEST], "r3", "turn 3").await, (200, json!({"turn_index": 5, "duplicate": true})));
    regions.after(3 * LAG).await;
    for api in &apis {
        assert_eq!(contents(&read(api, "context").await["turns"]), ["turn 1", "turn 2", "turn 4", "turn 5", "turn 3"], "{api}");
    }
    assert_eq!(regions.items(EAST).await, regions.items(WEST).await);
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_old_homes_late_summary_of_turns_the_order_does_not_hold_is_left_out_and_replaced_by_the_new_homes() {
    // Given alice's session (home: the west), two turns replicated, then a third turn and a
    // summary of 1..=3 made in the west while west → east was paused,
    // when the west fails over to the east with no fence, the east appends its own turn 3,
    let LateSummary { regions, path, west, east, session } = LateSummary::new().await;
    assert_eq!(appended(&east, session, 4).await, 3);
    // and the west's summary arrives before the east has made its own,
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false);
    });
    regions.after(3 * LAG).await;
    // then no context presents the west's summary of a turn 3 the session's order does not hold,
    let contents = |context: &tidewater::Context| context.turns.iter().map(|t| t.content.clone()).collect::<Vec<_>>();
    for store in [&west, &east] {
        let context = loaded(store, session).await;
        assert_eq!((context.summary.as_ref(), contents(&context)), (None, vec!["turn 1".to_owned(), "turn 2".to_owned(), "turn 4".to_owned()]));
    }
    // and the east's summary of its own turns replaces it, in both regions.
    assert!(east.put_summary(session, 3, "the east's summary of turns 1 to 3").await.expect("not refused for the west's"));
    regions.after(3 * LAG).await;
    for store in [&west, &east] {
        let context = loaded(store, session).await;
        assert_eq!(context.summary.map(|s| s.text).as_deref(), Some("the east's summary of turns 1 to 3"));
    }
    let _ = std::fs::remove_file(path);
}

/// Alice's session (home: the west), two turns replicated, then a third turn and a summary of
/// 1..=3 made in the west while west → east was paused, and the west failed over to the east
/// with no fence: the stage of the late summary cases.
struct LateSummary {
    regions: Regions,
    path: std::path::PathBuf,
    west: DynamoStore,
    east: DynamoStore,
    session: Uuid,
}

impl LateSummary {
    async fn new() -> LateSummary {
        let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
        let path = std::env::temp_dir().join(format!("home-map-{}.json", Uuid::new_v4()));
        regions.replicator.set_home_map(path.clone());
        let source = || HomeSource::File { regions: NAMES.join(","), path: path.clone() };
        let (west, east) = (region_store(&regions, WEST, test_config(), source()).await, region_store(&regions, EAST, test_config(), source()).await);
        let session = west.create_session(&tidewater_tests::alice(), NewSession::default()).await.unwrap().session_id;
        for n in 1..=2 {
            appended(&west, session, n).await;
        }
        regions.after(3 * LAG).await;
        regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
        assert_eq!(appended(&west, session, 3).await, 3);
        assert!(west.put_summary(session, 3, "the west's summary of turns 1 to 3").await.unwrap());
        regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
        regions.replicator.fail_over(NAMES[WEST], NAMES[EAST], Fence::Off).expect("the failover");
        LateSummary { regions, path, west, east, session }
    }
}

/// The index alice's turn `n` (`r<n>`, `turn <n>`) is appended at in `store`.
async fn appended(store: &DynamoStore, session: Uuid, n: u32) -> u64 {
    let turn = NewTurn { response_id: format!("r{n}"), role: "user".into(), content: format!("turn {n}"), intent: None, token_count: None, item: None };
    store.append_turn(&tidewater_tests::alice(), session, turn.validate(store.config()).unwrap()).await.unwrap().turn_index
}

/// Alice's context of `session` in `store`, strongly consistent.
async fn loaded(store: &DynamoStore, session: Uuid) -> tidewater::Context {
    store.load_context(&tidewater_tests::alice(), session, tidewater_tests::newest(10, true)).await.unwrap()
}

/// What DynamoDB's TTL may do in `region` at the clock's now: delete every item whose `ttl`
/// has passed, through the region's endpoint, so the delete replicates as AWS replicates a
/// TTL delete (with a later stamp than any write it raced).
async fn ttl_pass(regions: &Regions, region: usize) -> usize {
    let now = regions.clock.now_epoch_seconds();
    let due: Vec<_> = regions
        .items(region)
        .await
        .into_iter()
        .filter(|item| item.get("ttl").and_then(|ttl| ttl.as_n().ok()?.parse::<i64>().ok()).is_some_and(|ttl| ttl <= now))
        .collect();
    for item in &due {
        regions.clients[region]
            .delete_item()
            .table_name(&regions.table)
            .key(keys::PK, item[keys::PK].clone())
            .key(keys::SK, item[keys::SK].clone())
            .send()
            .await
            .expect("a TTL delete");
    }
    due.len()
}

#[tokio::test]
async fn a_replica_whose_copy_lags_the_homes_ttl_slide_never_expires_the_live_session() {
    // Given alice's session (home: the west) whose first turn reached the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let on_clock = |store: Arc<DynamoStore>| Arc::try_unwrap(store).expect("one owner").with_clock(regions.clock.clone());
    let west = on_clock(home_store(&regions, WEST, test_config()).await);
    let alice = tidewater_tests::alice();
    let session = west.create_session(&alice, NewSession::default()).await.unwrap().session_id;
    let append = |n: u32| {
        let turn = NewTurn { response_id: format!("r{n}"), role: "user".into(), content: format!("turn {n}"), intent: None, token_count: None, item: None };
        west.append_turn(&alice, session, turn.validate(west.config()).unwrap())
    };
    append(1).await.unwrap();
    regions.after(3 * LAG).await;
    assert_eq!(session_items(&regions, EAST, &session.to_string()).await.len(), session_items(&regions, WEST, &session.to_string()).await.len());
    // and west → east paused while, an hour before the session would expire, a second turn
    // slides its expiry in the west,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    let ttl = test_config().session_ttl;
    regions.after(ttl - Duration::from_secs(3_600)).await;
    append(2).await.unwrap();
    // when, two hours later (past the expiry the east's copy knows), TTL runs in the east
    // and replication resumes,
    regions.after(Duration::from_secs(7_200)).await;
    let deleted = ttl_pass(&regions, EAST).await;
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(3 * LAG).await;
    // then TTL deleted nothing, and the session opens in its home with both turns.
    assert_eq!(deleted, 0, "the east's stale copy expired a live session");
    let context = west.load_context(&alice, session, tidewater_tests::newest(10, true)).await.expect("the session is live");
    assert_eq!(context.turns.len(), 2);
    assert_eq!(regions.items(EAST).await, regions.items(WEST).await);
}

#[tokio::test]
async fn a_support_read_of_a_client_chosen_session_is_the_homes_or_marked_stale() {
    // Given alice (home: the west) with a session whose id she chose, and a support agent
    // whose own slot's home is the east
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, _stores) = apis_and_stores(&regions).await;
    let map = match homes() {
        HomeSource::Fixed(homes) => homes,
        _ => unreachable!(),
    };
    let home = |sub: &str| map.home_of(tidewater::home::customer_slot(sub)).to_owned();
    assert_eq!(home("alice"), NAMES[WEST]);
    let agent = (0..100).map(|n| format!("agent-{n}")).find(|sub| home(sub) == NAMES[EAST]).expect("an agent homed in the east");
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let chosen = Uuid::new_v4().to_string();
    let created = http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({"session_id": chosen})).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let append = |n: u32| {
        let turn = json!({"response_id": format!("r{n}"), "role": "user", "content": format!("turn {n}")});
        http.post(format!("{}/sessions/{chosen}/turns", apis[WEST])).bearer_auth(&alice).json(&turn).send()
    };
    assert_eq!(append(1).await.unwrap().status(), 201);
    regions.after(3 * LAG).await;
    // and a second turn acknowledged while west → east is paused
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    assert_eq!(append(2).await.unwrap().status(), 201);

    // When the agent loads the session (through alice's own home region's API, even)
    let load = http
        .get(format!("{}/sessions/{chosen}/context", apis[WEST]))
        .bearer_auth(token(&agent, &["support"]))
        .send()
        .await
        .unwrap();

    // Then the answer is the home's (both turns), or it is marked stale and has no ETag
    let stale = load.headers().get(homing::STALE).is_some();
    let etag = load.headers().get("etag").cloned();
    let served_by = load.headers().get(SERVED_BY).cloned();
    let body: Value = load.json().await.unwrap();
    let turns = body["turns"].as_array().map(Vec::len);
    assert!(
        turns == Some(2) || (stale && etag.is_none()),
        "a replica's read presented as complete: turns {turns:?}, etag {etag:?}, stale {stale}, served by {served_by:?}"
    );
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
}

#[tokio::test]
async fn a_purge_waits_while_a_failover_fence_stands_so_no_session_returns_after_its_receipt() {
    a_purge_waits_for_the_old_home_after_a_failover(Fence::Sessions).await;
}

#[tokio::test]
async fn a_purge_waits_while_a_region_failed_over_without_fences_is_awaited_as_on_aws() {
    a_purge_waits_for_the_old_home_after_a_failover(Fence::Off).await;
}

async fn a_purge_waits_for_the_old_home_after_a_failover(fence: Fence) {
    // Given the regions reading one home map file that the replicator rewrites,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let path = std::env::temp_dir().join(format!("home-map-{}.json", Uuid::new_v4()));
    regions.replicator.set_home_map(path.clone());
    let from_file = || HomeSource::File { regions: NAMES.join(","), path: path.clone() };
    let west = home_store_with(&regions, WEST, test_config(), from_file()).await;
    let east = home_store_with(&regions, EAST, test_config(), from_file()).await;
    let alice = tidewater_tests::alice();
    // and alice (home: the west) making a session with a turn there while west → east is
    // paused, just before the west fails over to the east,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    let session = west.create_session(&alice, NewSession::default()).await.unwrap().session_id;
    let turn = NewTurn { response_id: "r1".into(), role: "user".into(), content: "turn 1".into(), intent: None, token_count: None, item: None };
    west.append_turn(&alice, session, turn.validate(west.config()).unwrap()).await.unwrap();
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
    let failover = regions.replicator.fail_over(NAMES[WEST], NAMES[EAST], fence).expect("the failover");
    let map = || serde_json::from_str::<HomeMap>(&std::fs::read_to_string(&path).unwrap()).unwrap();
    match fence {
        Fence::Sessions => assert_eq!(failover.fenced, 1),
        Fence::Off => assert_eq!((failover.fenced, map().awaiting.into_iter().collect::<Vec<_>>()), (0, vec![NAMES[WEST].to_owned()])),
    }

    // when she asks her new home, the east, to purge her while the fence stands (or the
    // west is awaited),
    let refused = east.purge_customer(&alice.customer_id, "purge-1").await;

    // then it is refused as retryable, and no receipt is issued;
    assert!(matches!(refused, Err(tidewater::Error::PurgeFenced)), "a receipt while the old home may still deliver: {refused:?}");
    // once the west is back and has delivered, the purge runs and nothing of hers remains anywhere.
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false);
    });
    regions.after(LAG).await;
    assert!(map().fenced.is_empty() && map().awaiting.is_empty(), "{:?}", map());
    let receipt = east.purge_customer(&alice.customer_id, "purge-1").await.expect("a receipt");
    assert_eq!(receipt.sessions_deleted, 1);
    regions.after(3 * LAG).await;
    assert!(session_items(&regions, EAST, &session.to_string()).await.is_empty());
    assert!(session_items(&regions, WEST, &session.to_string()).await.is_empty());
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn guest_sessions_made_the_same_day_in_two_regions_keep_their_keys_and_each_region_destroys_its_own() {
    // Given two regions that seal content, with replication paused both ways,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, true));
    let sealing = || test_config().with_master_keys(&tidewater_tests::test_master_keys()).expect("a test master key");
    let stores = [region_store(&regions, EAST, sealing(), homes()).await, region_store(&regions, WEST, sealing(), homes()).await];
    // when a guest in each region makes a session there the same day and appends to it,
    let guests = [tidewater::Caller::new("visitor-east", ["guest"]), tidewater::Caller::new("visitor-west", ["guest"])];
    let mut sessions = Vec::new();
    for region in [EAST, WEST] {
        sessions.push(tidewater_tests::session_with_turns(&stores[region], &guests[region], 2).await);
    }
    // and replication resumes,
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(3 * LAG).await;
    // then both sessions' content opens in both regions: each was sealed under its own
    // region's day key, so last writer wins dropped neither;
    let day = tidewater::clock::format(stores[EAST].clock().now())[..10].to_owned();
    let day_keys: Vec<String> = NAMES.iter().map(|name| keys::regional_guest_data_key(name, &day)).collect();
    let mut both = day_keys.clone();
    both.sort();
    for region in [EAST, WEST] {
        for owner in [EAST, WEST] {
            let context = stores[region].load_context(&guests[owner], sessions[owner], tidewater_tests::newest(10, true)).await;
            let context = context.unwrap_or_else(|e| panic!("{}'s session in {}: {e:?}", NAMES[owner], NAMES[region]));
            let contents: Vec<&str> = context.turns.iter().map(|t| t.content.as_str()).collect();
            assert_eq!(contents, ["turn 0: is volume 0 of Frieren in stock?", "turn 1: is volume 1 of Frieren in stock?"]);
            assert!(!context.degraded);
        }
        assert_eq!(guest_keys(&regions, region).await, both, "both day keys in {}", NAMES[region]);
    }
    // a pass before the sessions expire destroys nothing;
    for store in &stores {
        assert_eq!(store.janitor_pass(store.clock().now()).await.unwrap().guest_keys_destroyed, 0);
    }
    // once they have expired, with replication paused again, each region's janitor destroys
    // its own day key, and only that one,
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, true));
    let later = stores[EAST].config().session_ttl + Duration::from_secs(3 * 86_400);
    for region in [EAST, WEST] {
        let store = &stores[region];
        store.clock().advance(later);
        assert_eq!(store.janitor_pass(store.clock().now()).await.unwrap().guest_keys_destroyed, 1);
        let other = 1 - region;
        assert_eq!(guest_keys(&regions, region).await, [day_keys[other].clone()], "{} kept the other's key", NAMES[region]);
    }
    // and once the deletes have replicated neither region holds a guest key.
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(3 * LAG).await;
    for region in [EAST, WEST] {
        assert!(guest_keys(&regions, region).await.is_empty());
    }
}

/// The names of the guest day keys in `region`'s own key table, sorted.
async fn guest_keys(regions: &Regions, region: usize) -> Vec<String> {
    key_names(regions, region, keys::GUEST_KEY_PREFIX).await
}

#[tokio::test]
async fn a_guest_days_key_named_by_its_day_alone_lives_as_long_as_its_sessions_and_is_destroyed_by_one_region_alone() {
    // Given a guest's session sealed in the west under the day's key named by its day alone
    // (as before day keys named a region), replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let sealing = || test_config().with_master_keys(&tidewater_tests::test_master_keys()).expect("a test master key");
    let stores = [region_store(&regions, EAST, sealing(), homes()).await, region_store(&regions, WEST, sealing(), homes()).await];
    let before = DynamoStore::new(
        crate::replication::client(&regions.endpoints[WEST]).await,
        Config { homes: None, ..stores[WEST].config().clone() },
    );
    let guest = tidewater::Caller::new("visitor-1", ["guest"]);
    let session = tidewater_tests::session_with_turns(&before, &guest, 1).await;
    regions.after(3 * LAG).await;
    let day = tidewater::clock::format(stores[WEST].clock().now())[..10].to_owned();
    let older = keys::guest_data_key(&day);
    assert_eq!(guest_keys(&regions, EAST).await, std::slice::from_ref(&older));
    // when its home appends to it nearly a day later (sealed under the day's key of its
    // region) and again nearly a day after that, sliding its expiry each time,
    let slot = tidewater::home::id_slot(&session);
    let home = NAMES.iter().position(|name| *name == homes().homes().unwrap().home_of(slot)).expect("a home");
    let advance = |by: Duration| {
        for store in &stores {
            store.clock().advance(by);
        }
    };
    for late in ["late-1", "late-2"] {
        advance(Duration::from_secs(23 * 3_600));
        let turn = NewTurn { response_id: late.into(), role: "user".into(), content: late.into(), intent: None, token_count: None, item: None };
        stores[home].append_turn(&guest, session, turn.validate(stores[home].config()).unwrap()).await.expect("appended");
    }
    regions.after(3 * LAG).await;
    // the older key's `until` moved at least as far as the regional key's, so it outlives it,
    let untils = key_untils(&regions, home).await;
    assert_eq!(untils.len(), 2, "the older key and the regional key: {untils:?}");
    assert!(untils[0].0 == older && untils[0].1 >= untils[1].1, "{untils:?}");
    // then past the older key's first `until`, no janitor destroys either key, and every
    // turn still opens in both regions;
    advance(Duration::from_secs(4 * 3_600));
    for store in &stores {
        assert_eq!(store.janitor_pass(store.clock().now()).await.unwrap().guest_keys_destroyed, 0);
        let context = store.load_context(&guest, session, tidewater_tests::newest(10, true)).await.expect("the session opens");
        assert_eq!(context.turns.len(), 3);
    }
    // once the session has long expired and each region's janitor passes before the other's
    // deletes arrive, the older key is destroyed only by the home of the slot its name hashes
    // to, and the region's key only by its region.
    advance(Duration::from_secs(4 * 86_400));
    let mut destroyed = Vec::new();
    for store in &stores {
        destroyed.push(store.janitor_pass(store.clock().now()).await.unwrap().guest_keys_destroyed);
    }
    let owners = homes().homes().unwrap();
    let older_owner = owners.home_of(tidewater::home::customer_slot(&older));
    let regional_owner = owners.region_of(slot);
    let expected: Vec<u64> = NAMES.iter().map(|name| u64::from(*name == older_owner) + u64::from(*name == regional_owner)).collect();
    assert_eq!(destroyed, expected);
    regions.after(3 * LAG).await;
    assert!(guest_keys(&regions, EAST).await.is_empty());
}

/// Alice (home: the west) with two sessions: the first's turn sealed in the west within the
/// lag just before the west fails over to the east, the second's in the east after it, and
/// replication settled. Each region's API and functions' store, her sessions, and the home map
/// file the replicator rewrites.
async fn turns_sealed_on_both_sides_of_a_failover(regions: &Regions) -> (Vec<String>, Vec<Arc<DynamoStore>>, Vec<String>, std::path::PathBuf) {
    // Given content sealed in both regions under one master key, and a home map the replicator rewrites,
    let path = std::env::temp_dir().join(format!("home-map-{}.json", Uuid::new_v4()));
    regions.replicator.set_home_map(path.clone());
    let sealed = test_config().with_master_keys(&test_master_keys()).expect("the test master key");
    let homes = HomeSource::File { regions: NAMES.join(","), path: path.clone() };
    let (apis, stores) = apis_with_config(regions, homes, sealed).await;
    let (http, alice) = (reqwest::Client::new(), token("alice", &[]));
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let created = http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap();
        sessions.push(created.json::<Value>().await.unwrap()["session_id"].as_str().expect("a session id").to_owned());
    }
    let append = |api: &str, session: &str| {
        let turn = json!({"response_id": "r1", "role": "user", "content": format!("turn 1 of {session}")});
        http.post(format!("{api}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn).send()
    };
    // and alice (home: the west) with two sessions replicated before she wrote any turn,
    regions.after(LAG).await;
    // when her first turn, which makes her data key, is acknowledged in the west while west → east is paused,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    assert_eq!(append(&apis[WEST], &sessions[0]).await.unwrap().status(), 201);
    // and the west fails over to the east, where her other session (nothing of it unreplicated) takes a turn,
    regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
    regions.replicator.fail_over(NAMES[WEST], NAMES[EAST], Fence::Sessions).expect("the failover");
    assert_eq!(append(&apis[EAST], &sessions[1]).await.unwrap().status(), 201);
    // and the west comes back and delivers,
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false);
    });
    regions.after(LAG).await;
    (apis, stores, sessions, path)
}

#[tokio::test]
async fn a_data_key_made_in_the_old_home_just_before_a_failover_still_opens_its_turns_after_it() {
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, _stores, sessions, path) = turns_sealed_on_both_sides_of_a_failover(&regions).await;
    // then, once the west is back and has delivered, both acknowledged turns open in both regions.
    let (http, alice) = (reqwest::Client::new(), token("alice", &[]));
    for api in &apis {
        for session in &sessions {
            let load = http.get(format!("{api}/sessions/{session}/context")).bearer_auth(&alice).send().await.unwrap();
            assert_eq!(load.status(), 200, "{session} through {api}");
            let context: Value = load.json().await.unwrap();
            let contents: Vec<&str> = context["turns"].as_array().unwrap().iter().filter_map(|t| t["content"].as_str()).collect();
            assert_eq!(contents, [format!("turn 1 of {session}")], "{api}");
        }
    }
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn a_purge_after_a_failover_destroys_both_regions_keys_so_no_copy_of_either_table_opens() {
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (_apis, stores, sessions, path) = turns_sealed_on_both_sides_of_a_failover(&regions).await;
    // and a copy of each region's table, as a restore or an export holds it, whose turns of
    // hers are sealed under the key of the west and of the east and open in both regions,
    let pks: Vec<String> = sessions.iter().map(|session| format!("SESSION#{session}")).collect();
    let mut copies = Vec::new();
    for region in [EAST, WEST] {
        let theirs = |item: &HashMap<String, AttributeValue>| item.get("content").is_some_and(AttributeValue::is_b) && item.get(keys::PK).and_then(|pk| pk.as_s().ok()).is_some_and(|pk| pks.contains(pk));
        copies.push(regions.items(region).await.into_iter().filter(|item| theirs(item)).collect::<Vec<_>>());
    }
    let named: BTreeSet<String> = copies.iter().flatten().map(regional_key_of).collect();
    let hash = tidewater::store::customer_hash(tidewater_tests::TEST_RECEIPT_SALT, "alice");
    let expected: BTreeSet<String> = NAMES.iter().map(|name| keys::regional_customer_data_key(name, &hash)).collect();
    assert_eq!(named, expected, "sealed under one key per region");
    for (store, copy) in stores.iter().zip(&copies) {
        assert_eq!(copy.len(), 2, "both turns in each region's table");
        for item in copy {
            store.open_copied_item(item).await.expect("opens before the purge");
        }
    }
    // when her new home, the east, purges her (reading the west's replica),
    let hers = tidewater_tests::alice();
    let homes = HomeSource::File { regions: NAMES.join(","), path: path.clone() };
    let west = crate::replication::client(&regions.endpoints[WEST]).await;
    let east = region_store(&regions, EAST, test_config(), homes).await.with_replicas(vec![(NAMES[WEST].to_owned(), west)]);
    let mut receipt = None;
    for _ in 0..10 {
        match east.purge_customer(&hers.customer_id, "purge-1").await {
            Ok(done) => {
                receipt = Some(done);
                break;
            }
            Err(Error::PurgeReplicating(_) | Error::PurgeFenced) => {
                east.clock().advance(east.config().purge_settle);
                regions.after(LAG).await;
            }
            Err(e) => panic!("the purge failed: {e:?}"),
        }
    }
    assert_eq!(receipt.expect("a receipt").sessions_deleted, 2);
    regions.after(3 * LAG).await;
    // then neither region's key table holds a key of hers, and nothing of hers opens from
    // either copy in either region, for its warm functions too.
    for region in [EAST, WEST] {
        assert_eq!(customer_keys(&regions, region).await, Vec::<String>::new(), "{}", NAMES[region]);
        for store in &stores {
            for item in copies.iter().flatten() {
                let opened = store.open_copied_item(item).await;
                assert!(matches!(opened, Err(Error::NotFound)), "{} opened {}: {opened:?}", NAMES[region], regional_key_of(item));
            }
        }
    }
    let _ = std::fs::remove_file(path);
}

/// The name of the key a sealed turn's content names in its envelope.
fn regional_key_of(item: &HashMap<String, AttributeValue>) -> String {
    let sealed = item["content"].as_b().expect("sealed content");
    let header = tidewater::crypto::envelope::header(sealed.as_ref()).expect("a well-formed envelope");
    header.expect("an envelope").key_ref.to_owned()
}

/// The names of the customer keys in `region`'s own key table, sorted.
async fn customer_keys(regions: &Regions, region: usize) -> Vec<String> {
    key_names(regions, region, &keys::customer_data_key("")).await
}

/// The names in `region`'s own key table that start with `prefix`, sorted.
async fn key_names(regions: &Regions, region: usize, prefix: &str) -> Vec<String> {
    key_items(regions, region).await.into_iter().map(|(name, _)| name).filter(|name| name.starts_with(prefix)).collect()
}

/// Each guest key in `region`'s own key table with its `until`, sorted by name.
async fn key_untils(regions: &Regions, region: usize) -> Vec<(String, Option<i64>)> {
    let items = key_items(regions, region).await.into_iter().filter(|(name, _)| name.starts_with(keys::GUEST_KEY_PREFIX));
    items.map(|(name, item)| (name, item.get("until").and_then(|u| u.as_n().ok()).and_then(|u| u.parse().ok()))).collect()
}

/// Every item of `region`'s own key table by name, sorted.
async fn key_items(regions: &Regions, region: usize) -> Vec<(String, HashMap<String, AttributeValue>)> {
    let table = format!("{}-keys", regions.table);
    let scan = regions.upstreams[region].scan().table_name(table).consistent_read(true).send().await.expect("scan the key table");
    let mut items: Vec<(String, HashMap<String, AttributeValue>)> = scan
        .items
        .unwrap_or_default()
        .into_iter()
        .filter_map(|item| Some((item.get(keys::PK)?.as_s().ok()?.clone(), item)))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

#[tokio::test]
async fn guests_served_in_two_regions_within_the_lag_both_read_their_turns_after_it() {
    // Given content sealed in both regions under one master key,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let sealed = test_config().with_master_keys(&test_master_keys()).expect("the test master key");
    let (apis, _stores) = apis_with_config(&regions, homes(), sealed).await;
    let http = reqwest::Client::new();
    // when a guest in each region writes a first turn, the day's first sealed content there, within the lag,
    let mut guests = Vec::new();
    for (region, name) in [(EAST, "guest-east"), (WEST, "guest-west")] {
        let guest = token(name, &["guest"]);
        let created = http.post(format!("{}/sessions", apis[region])).bearer_auth(&guest).json(&json!({})).send().await.unwrap();
        let session = created.json::<Value>().await.unwrap()["session_id"].as_str().expect("a session id").to_owned();
        let turn = json!({"response_id": "r1", "role": "user", "content": format!("turn 1 of {name}")});
        let appended = http.post(format!("{}/sessions/{session}/turns", apis[region])).bearer_auth(&guest).json(&turn).send().await.unwrap();
        assert_eq!(appended.status(), 201);
        guests.push((guest, session, name));
    }
    regions.after(LAG).await;
    regions.after(LAG).await;
    // then, once both have replicated, each guest's turn opens through either region.
    for api in &apis {
        for (guest, session, name) in &guests {
            let load = http.get(format!("{api}/sessions/{session}/context")).bearer_auth(guest).send().await.unwrap();
            assert_eq!(load.status(), 200, "{name} through {api}");
        }
    }
}

/// A store of region `region` of the regions `homes` names, over `table`'s table and clock.
fn store_in_region(table: &DynamoStore, region: &str, homes: &Homes) -> DynamoStore {
    let config = Config { region: Some(region.to_owned()), homes: Some(HomeSource::Fixed(homes.clone())), ..table.config().clone() };
    DynamoStore::new(table.client().clone(), config).with_clock(table.clock().clone())
}

/// A customer homed in b (the second of `homes`' regions) by their own slot, with two sessions
/// of 20 turns made there, whose purge in b was cut off half-way, leaving its work item: the
/// table.
async fn purge_cut_off_in_b(homes: &Homes) -> Arc<DynamoStore> {
    let regions = homes.regions.len();
    let customer = (0..).map(|i| format!("customer-{i}")).find(|c| usize::from(home::customer_slot(c)) % regions == 1).unwrap();
    let caller = tidewater::Caller::new(customer.clone(), Vec::<String>::new());
    let table = tidewater_tests::store().await;
    let b = store_in_region(&table, "b", homes);
    for _ in 0..2 {
        tidewater_tests::session_with_turns(&b, &caller, 20).await;
    }
    let cut_off = b.purge_customer_with(&tidewater_tests::CutOffAfter::new(&b, 1), &customer, "purge-1").await;
    assert!(cut_off.is_err());
    table
}

#[tokio::test]
async fn a_purges_work_item_stays_with_the_customers_home_through_failovers() {
    // Given three regions, a failed over to b, and a customer homed in b by their own slot,
    let mut homes = Homes::new("a,b,c", HomeMap::default()).unwrap();
    homes.fail_over("a", "b");
    // whose purge in b was cut off half-way, leaving its work item,
    let table = purge_cut_off_in_b(&homes).await;

    // when c fails over to a (back up by now), which gives a back its own slots, and the work
    // item falls due,
    homes.fail_over("c", "a");
    table.clock().advance(Duration::from_secs(JANITOR_GRACE_SECONDS as u64 + 1));
    let now = table.clock().now();

    // then a's janitor leaves it alone, and b's, still the customer's home, finishes the purge.
    let in_a = store_in_region(&table, "a", &homes).janitor_pass(now).await.unwrap();
    assert_eq!((in_a.purges_finished, in_a.failed, in_a.elsewhere), (0, 0, 1), "a ran b's customer's purge: {in_a:?}");
    let in_b = store_in_region(&table, "b", &homes).janitor_pass(now).await.unwrap();
    assert_eq!((in_b.purges_finished, in_b.failed, in_b.elsewhere), (1, 0, 0), "{in_b:?}");
}

#[tokio::test]
async fn a_purge_waiting_for_a_region_far_longer_than_replication_explains_is_counted_as_failed_then_stuck() {
    // Given alice's session in the west, replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let west = store_reading_replicas(&regions, WEST).await;
    let alice = tidewater_tests::alice();
    tidewater_tests::session_with_turns(&west, &alice, 2).await;
    regions.after(3 * LAG).await;
    // when west → east stops replicating and the west purges her,
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    let first = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(first, Err(Error::PurgeReplicating(_))), "{first:?}");
    // then the janitor counts it waiting once its work item is due,
    let settle = west.config().purge_settle;
    west.clock().advance(Duration::from_secs(JANITOR_GRACE_SECONDS as u64 + 1) + settle);
    let pass = west.janitor_pass(west.clock().now()).await.unwrap();
    assert_eq!((pass.waiting, pass.failed, pass.stuck), (1, 0, 0), "{pass:?}");
    // and once it has waited ten windows past its due time, a failure at each pass, then stuck.
    west.clock().advance(settle * WAITING_WINDOWS_BEFORE_FAILURE);
    for failures in 1..=STUCK_AFTER_FAILURES {
        let pass = west.janitor_pass(west.clock().now()).await.unwrap();
        let stuck = u64::from(failures >= STUCK_AFTER_FAILURES);
        assert_eq!((pass.waiting, pass.failed, pass.stuck), (0, 1, stuck), "pass {failures}: {pass:?}");
    }
}

#[tokio::test]
async fn a_purge_gives_its_receipt_without_a_region_lost_for_good_once_it_has_failed_over() {
    // Given alice's session in the west, replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let mut moved = Homes::new(&NAMES.join(","), HomeMap::default()).expect("two regions");
    moved.fail_over(NAMES[EAST], NAMES[WEST]);
    let replica = crate::replication::client(&regions.endpoints[EAST]).await;
    let west = region_store(&regions, WEST, test_config(), HomeSource::Fixed(moved)).await.with_replicas(vec![(NAMES[EAST].to_owned(), replica)]);
    let alice = tidewater_tests::alice();
    tidewater_tests::session_with_turns(&west, &alice, 2).await;
    regions.after(3 * LAG).await;
    // when the east is lost and failed over to the west, and the west purges her,
    regions.replicator.with_mesh(|mesh| mesh.set_down(EAST, true));
    let first = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(first, Err(Error::PurgeReplicating(_))), "the window first: {first:?}");
    west.clock().advance(west.config().purge_settle);
    // then, past the window, the receipt comes without the east (which gets the deletes if it returns).
    let receipt = west.purge_customer(&alice.customer_id, "purge-1").await.expect("a receipt without the lost region");
    assert_eq!((receipt.sessions_deleted, receipt.request_id.as_str()), (1, "purge-1"));
}

#[tokio::test]
async fn a_purge_just_after_a_session_delete_waits_the_window_though_it_deleted_nothing() {
    // Given alice's session in the west, replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let west = store_reading_replicas(&regions, WEST).await;
    let alice = tidewater_tests::alice();
    let session = tidewater_tests::session_with_turns(&west, &alice, 2).await;
    regions.after(3 * LAG).await;
    // when she DELETEs it while west → east is paused, and of that only her registry entry's
    // delete reaches the east (replication keeps no order between items),
    regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    west.delete_session(&alice, session).await.expect("deleted");
    let hash = tidewater::store::customer_hash(tidewater_tests::TEST_RECEIPT_SALT, &alice.customer_id);
    regions.upstreams[EAST]
        .delete_item()
        .table_name(&regions.table)
        .key("PK", AttributeValue::S(keys::privacy_pk(&hash)))
        .key("SK", AttributeValue::S(keys::registry_sk(&session)))
        .send()
        .await
        .expect("the registry entry's delete, arrived");
    // and she purges at once, which finds nothing left in the west,
    let first = west.purge_customer(&alice.customer_id, "purge-1").await;
    // then no receipt is given while the east still holds the session: the window first;
    assert!(matches!(first, Err(Error::PurgeReplicating(s)) if (1..=60).contains(&s)), "{first:?}");
    assert!(!session_items(&regions, EAST, &session.to_string()).await.is_empty());
    // and once the deletes have arrived and the window has passed, the receipt comes.
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, false));
    regions.after(3 * LAG).await;
    west.clock().advance(west.config().purge_settle);
    let receipt = west.purge_customer(&alice.customer_id, "purge-1").await.expect("a receipt");
    assert_eq!(receipt.sessions_deleted, 0);
    assert!(session_items(&regions, EAST, &session.to_string()).await.is_empty());
}

#[tokio::test]
async fn a_purge_receipt_waits_until_the_other_regions_key_table_no_longer_holds_the_customers_key() {
    // Given alice's sealed session in the west, her data key replicated to the east's key table,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let sealed = test_config().with_master_keys(&test_master_keys()).expect("the test master key");
    let replica = crate::replication::client(&regions.endpoints[EAST]).await;
    let west = region_store(&regions, WEST, sealed, homes()).await.with_replicas(vec![(NAMES[EAST].to_owned(), replica)]);
    let alice = tidewater_tests::alice();
    tidewater_tests::session_with_turns(&west, &alice, 2).await;
    regions.after(3 * LAG).await;
    let key_table = west.config().key_table();
    let hash = tidewater::store::customer_hash(tidewater_tests::TEST_RECEIPT_SALT, &alice.customer_id);
    let key_ref = keys::regional_customer_data_key(NAMES[WEST], &hash);
    let east_key = || {
        regions.upstreams[EAST].get_item().table_name(&key_table).key("PK", AttributeValue::S(key_ref.clone())).consistent_read(true).send()
    };
    let copy = east_key().await.unwrap().item.expect("her key reached the east");
    // when the west purges her and every delete has arrived in the east but the key's,
    let first = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(first, Err(Error::PurgeReplicating(_))), "{first:?}");
    regions.after(3 * LAG).await;
    west.clock().advance(west.config().purge_settle);
    regions.upstreams[EAST].put_item().table_name(&key_table).set_item(Some(copy)).send().await.expect("the key, still in the east");
    // then no receipt is given while the east's key table holds her key,
    let behind = west.purge_customer(&alice.customer_id, "purge-1").await;
    assert!(matches!(behind, Err(Error::PurgeReplicating(_))), "a receipt while the east holds her key: {behind:?}");
    // and once its delete has arrived, the receipt comes.
    regions.upstreams[EAST].delete_item().table_name(&key_table).key("PK", AttributeValue::S(key_ref.clone())).send().await.unwrap();
    let receipt = west.purge_customer(&alice.customer_id, "purge-1").await.expect("a receipt");
    assert_eq!(receipt.sessions_deleted, 1);
    assert!(east_key().await.unwrap().item.is_none());
}

/// Alice's session (home: the west) on regions reading one home map file, with turns 1 and 2
/// replicated: the stage of the epoch-scoped turn keys' failover cases below.
struct Takeover {
    regions: Regions,
    apis: Vec<String>,
    path: std::path::PathBuf,
    http: reqwest::Client,
    alice: String,
    session: String,
}

impl Takeover {
    async fn new(skew: Vec<i64>) -> Takeover {
        let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew }).await;
        let path = std::env::temp_dir().join(format!("home-map-{}.json", Uuid::new_v4()));
        regions.replicator.set_home_map(path.clone());
        let (apis, _stores) = apis_with(&regions, HomeSource::File { regions: NAMES.join(","), path: path.clone() }).await;
        let http = reqwest::Client::new();
        let alice = token("alice", &[]);
        let created: Value =
            http.post(format!("{}/sessions", apis[WEST])).bearer_auth(&alice).json(&json!({})).send().await.unwrap().json().await.unwrap();
        let session = created["session_id"].as_str().expect("a session id").to_owned();
        let stage = Takeover { regions, apis, path, http, alice, session };
        for n in 1..=2 {
            assert_eq!(stage.append(WEST, &format!("r{n}"), &format!("turn {n}")).await.0, 201);
        }
        stage.regions.after(LAG).await;
        stage
    }

    /// Appends through `region`'s API: the status and the body.
    async fn append(&self, region: usize, response: &str, content: &str) -> (u16, Value) {
        let turn = json!({"response_id": response, "role": "user", "content": content});
        let url = format!("{}/sessions/{}/turns", self.apis[region], self.session);
        let answer = self.http.post(url).bearer_auth(&self.alice).json(&turn).send().await.unwrap();
        (answer.status().as_u16(), answer.json::<Value>().await.unwrap_or(Value::Null))
    }

    /// `GET /sessions/{id}/<route>` through `region`'s API, with `If-None-Match` when given.
    async fn read(&self, region: usize, route: &str, if_none_match: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/sessions/{}/{route}", self.apis[region], self.session)).bearer_auth(&self.alice);
        if let Some(tag) = if_none_match {
            request = request.header("If-None-Match", tag);
        }
        request.send().await.unwrap()
    }

    /// Every page of the export through `region`'s API at `limit`: the turns' and the unmerged
    /// turns' contents.
    async fn export(&self, region: usize, limit: usize) -> (Vec<String>, Vec<String>) {
        let (mut turns, mut unmerged) = (Vec::new(), Vec::new());
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let route = match &cursor {
                Some(cursor) => format!("turns?limit={limit}&cursor={cursor}"),
                None => format!("turns?limit={limit}"),
            };
            let page: Value = self.read(region, &route, None).await.json().await.unwrap();
            let contents = |field: &str| -> Vec<String> {
                page[field].as_array().into_iter().flatten().map(|t| t["content"].as_str().unwrap_or_default().to_owned()).collect()
            };
            turns.extend(contents("turns"));
            unmerged.extend(contents("unmerged"));
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return (turns, unmerged),
            }
        }
        panic!("the export never ended");
    }

    /// With west → east paused, the west acknowledges turns `turns` (`r<n>`, "turn <n>").
    async fn west_acknowledges_unreplicated(&self, turns: std::ops::RangeInclusive<u64>) {
        self.regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
        for n in turns {
            assert_eq!(self.append(WEST, &format!("r{n}"), &format!("turn {n}")).await.0, 201);
        }
    }

    /// [`Takeover::new`], then the west acknowledges turns `late` unreplicated and fails over
    /// to the east with no fence.
    async fn west_failed_after(skew: Vec<i64>, late: std::ops::RangeInclusive<u64>) -> Takeover {
        let stage = Takeover::new(skew).await;
        stage.west_acknowledges_unreplicated(late).await;
        stage.west_fails();
        stage
    }

    /// The west, with west → east paused, fails; the east takes over with no fence, as on AWS.
    fn west_fails(&self) {
        self.regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, true));
        let failover = self.regions.replicator.fail_over(NAMES[WEST], NAMES[EAST], Fence::Off).expect("the failover");
        assert_eq!(failover.epoch, 1);
    }

    /// [`Takeover::new`]; the west acknowledges r3 and nothing replicates; the east takes over
    /// with no fence (epoch 1) and appends the client's retry of r3 as its own turn 3; of the
    /// east's writes only its record of r3 reaches the west (items replicate one by one); then
    /// the session fails back to the west with no fence (epoch 2).
    async fn r3_in_both_homes_then_back_west() -> Takeover {
        let stage = Takeover::new(vec![]).await;
        stage.regions.replicator.with_mesh(|mesh| mesh.pause(None, None, true));
        assert_eq!(stage.append(WEST, "r3", "turn 3").await.0, 201);
        stage.west_fails();
        assert_eq!(stage.append(EAST, "r3", "turn 3").await, (201, json!({"turn_index": 3, "duplicate": false})));
        let key = HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(format!("SESSION#{}", stage.session))),
            (keys::SK.to_owned(), AttributeValue::S("RESP#r3".to_owned())),
        ]);
        let record = stage.regions.upstreams[EAST].get_item().table_name(&stage.regions.table).set_key(Some(key)).send().await;
        let record = record.unwrap().item.expect("the east's record of r3");
        stage.regions.upstreams[WEST].put_item().table_name(&stage.regions.table).set_item(Some(record)).send().await.unwrap();
        stage.back_west();
        stage
    }

    /// [`Takeover::new`]; the east takes over with no fence (epoch 1), the west up again; the
    /// east appends turns 3 and 4, of which the west gets META (turn_count 4) and turn 3 only
    /// (META's change, queued with turn 3's, carries turn 4's write); then the session fails
    /// back to the west with no fence (epoch 2).
    async fn east_turn_4_not_arrived_then_back_west() -> Takeover {
        let stage = Takeover::new(vec![]).await;
        stage.west_fails();
        stage.regions.replicator.with_mesh(|mesh| mesh.set_down(WEST, false));
        assert_eq!(stage.append(EAST, "r3", "turn 3").await.0, 201);
        stage.regions.after(LAG / 2).await;
        assert_eq!(stage.append(EAST, "r4", "turn 4").await.0, 201);
        stage.regions.after(LAG / 2 + Duration::from_millis(100)).await;
        stage.regions.replicator.with_mesh(|mesh| mesh.pause(Some(EAST), Some(WEST), true));
        let west_has = session_items(&stage.regions, WEST, &stage.session).await;
        assert!(west_has.iter().any(|sk| sk.contains(&keys::epoch_turn_sk(3, 1))), "{west_has:?}");
        assert!(!west_has.iter().any(|sk| sk.contains(&keys::epoch_turn_sk(4, 1))), "{west_has:?}");
        stage.back_west();
        stage
    }

    /// The east goes down, the west is up, and the session fails back to the west with no
    /// fence (epoch 2).
    fn back_west(&self) {
        self.regions.replicator.with_mesh(|mesh| {
            mesh.set_down(WEST, false);
            mesh.set_down(EAST, true);
        });
        assert_eq!(self.regions.replicator.fail_over(NAMES[EAST], NAMES[WEST], Fence::Off).expect("the failover back").epoch, 2);
    }

    /// Every region up, nothing paused, and everything queued delivered.
    async fn heal(&self) {
        self.regions.replicator.with_mesh(|mesh| {
            mesh.set_down(WEST, false);
            mesh.set_down(EAST, false);
            mesh.pause(None, None, false);
        });
        self.regions.after(3 * LAG).await;
    }
}

impl Drop for Takeover {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test]
async fn after_a_failover_without_a_fence_an_etag_the_old_home_gave_never_matches_the_new_homes_different_body() {
    // Given alice's session whose turns 3 and 4 the west acknowledged and did not replicate,
    let stage = Takeover::new(vec![]).await;
    stage.west_acknowledges_unreplicated(3..=4).await;
    // and a context of turns 1 to 4 loaded in the west, with its ETag,
    let loaded = stage.read(WEST, "context", None).await;
    let tag = loaded.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = loaded.json().await.unwrap();
    assert_eq!(body["turns"].as_array().map(Vec::len), Some(4));
    // when the west fails over to the east with no fence and the east appends two other turns,
    stage.west_fails();
    for n in 5..=6 {
        assert_eq!(stage.append(EAST, &format!("r{n}"), &format!("turn {n}")).await.0, 201);
    }
    // then a conditional load with the west's ETag is not answered "not modified": the east's
    // body (turns 1, 2, 5, 6) is not the one that ETag named.
    let again = stage.read(EAST, "context", Some(&tag)).await;
    assert_eq!(again.status().as_u16(), 200, "a 304 for ETag {tag}, whose body held turns 3 and 4 the east never had");
}

#[tokio::test]
async fn an_old_homes_late_turns_past_the_new_homes_count_are_listed_unmerged() {
    // Given alice's session whose turns 3 and 4 the west acknowledged and did not replicate,
    let stage = Takeover::west_failed_after(vec![], 3..=4).await;
    // when the east takes over with no fence and appends one turn (its turn 3),
    assert_eq!(stage.append(EAST, "r5", "turn 5").await, (201, json!({"turn_index": 3, "duplicate": false})));
    // and the west returns and delivers its late turns,
    stage.heal().await;
    // then the export lists both of the west's late turns as unmerged, also the one past the
    // east's count (openapi.yaml: "or past its count").
    for region in [EAST, WEST] {
        let (turns, unmerged) = stage.export(region, 100).await;
        assert_eq!(turns, ["turn 1", "turn 2", "turn 5"]);
        assert_eq!(unmerged, ["turn 3", "turn 4"], "the west's acknowledged turn 4 is silently missing in region {region}");
    }
}

#[tokio::test]
async fn an_unmerged_turn_sorting_after_the_held_one_at_its_index_is_listed_whatever_the_page_size() {
    // Given alice's session whose turn 3 the west acknowledged and did not replicate,
    let stage = Takeover::west_failed_after(vec![], 3..=3).await;
    // when the east takes over with no fence (epoch 1) and writes its own turn 3,
    assert_eq!(stage.append(EAST, "r4", "turn 4").await, (201, json!({"turn_index": 3, "duplicate": false})));
    // and the west returns while nothing replicates either way, takes the session back with no
    // fence (epoch 2) and writes turn 4 on its own chain, where turn 3 is its own,
    stage.regions.replicator.with_mesh(|mesh| {
        mesh.pause(None, None, true);
        mesh.set_down(WEST, false);
        mesh.set_down(EAST, true);
    });
    let back = stage.regions.replicator.fail_over(NAMES[EAST], NAMES[WEST], Fence::Off).expect("the failover back");
    assert_eq!(back.epoch, 2);
    assert_eq!(stage.append(WEST, "r5", "turn 5").await, (201, json!({"turn_index": 4, "duplicate": false})));
    // and then everything replicates,
    stage.heal().await;
    // then every page size lists the east's turn 3 (keyed TURN#3#1, after the west's TURN#3) as
    // unmerged, as the one-page export does.
    let (turns, unmerged) = stage.export(WEST, 100).await;
    assert_eq!(turns, ["turn 1", "turn 2", "turn 3", "turn 5"]);
    assert_eq!(unmerged, ["turn 4"]);
    for limit in [1, 2, 3] {
        let (turns, unmerged) = stage.export(WEST, limit).await;
        assert_eq!(turns, ["turn 1", "turn 2", "turn 3", "turn 5"], "limit={limit}");
        assert_eq!(unmerged, ["turn 4"], "limit={limit}: the east's acknowledged turn 3 is on no page");
    }
}

#[tokio::test]
async fn after_two_failovers_a_context_missing_a_turn_of_the_chain_that_has_not_arrived_gets_no_etag_and_the_export_is_marked_stale() {
    // Given alice's session taken over by the east with no fence (epoch 1), the east's turns 3
    // and 4, of which the west has META (turn_count 4) and turn 3 only,
    // when the session fails back to the west with no fence (epoch 2) and the west appends turn 5,
    let stage = Takeover::east_turn_4_not_arrived_then_back_west().await;
    assert_eq!(stage.append(WEST, "r5", "turn 5").await, (201, json!({"turn_index": 5, "duplicate": false})));
    // then the west's context, which cannot hold turn 4, carries no ETag,
    let loaded = stage.read(WEST, "context", None).await;
    let tag = loaded.headers().get("etag").map(|tag| tag.to_str().unwrap().to_owned());
    let body: Value = loaded.json().await.unwrap();
    let indices: Vec<u64> = body["turns"].as_array().unwrap().iter().filter_map(|t| t["turn_index"].as_u64()).collect();
    assert_eq!(tag, None, "an ETag for turns {indices:?}, omitted {}", body["omitted"]);
    // and its export, which lacks turn 4, is marked stale, never complete;
    let export = stage.read(WEST, "turns", None).await;
    assert_eq!(export.headers().get(homing::STALE).map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("true"));
    // once turn 4 has arrived, no ETag of before pins the old body, and the export is whole.
    stage.heal().await;
    let again = stage.read(WEST, "context", tag.as_deref()).await;
    assert_eq!(again.status().as_u16(), 200);
    let export = stage.read(WEST, "turns", None).await;
    assert!(export.headers().get(homing::STALE).is_none());
}

#[tokio::test]
async fn a_session_deleted_in_the_new_home_before_the_old_homes_late_turns_arrive_leaves_nothing_in_either_region() {
    // Given alice's session whose turn 3 the west acknowledged and did not replicate,
    let stage = Takeover::west_failed_after(vec![], 3..=3).await;
    // when the east takes over with no fence, appends a turn, and alice deletes the session there,
    assert_eq!(stage.append(EAST, "r4", "turn 4").await.0, 201);
    let homes = HomeSource::File { regions: NAMES.join(","), path: stage.path.clone() };
    let east = home_store_with(&stage.regions, EAST, test_config(), homes).await;
    let session = stage.session.parse().expect("a session id");
    east.delete_session(&tidewater_tests::alice(), session).await.expect("deleted");
    // and the west returns and delivers its late turn,
    stage.heal().await;
    // then neither region holds anything of the session, also after each region's janitor ran.
    for region in [EAST, WEST] {
        let store = stage.regions.store(region).await;
        store.clock().advance(Duration::from_secs(JANITOR_GRACE_SECONDS as u64 + 3600));
        store.janitor_pass(store.clock().now()).await.unwrap();
    }
    stage.regions.after(3 * LAG).await;
    for region in [EAST, WEST] {
        assert_eq!(session_items(&stage.regions, region, &stage.session).await, Vec::<String>::new(), "region {region}");
    }
}

#[tokio::test]
async fn an_old_homes_turn_that_arrived_before_its_meta_joins_the_order_when_its_retry_reaches_the_new_home() {
    // Given alice's turn 3 (r3) acknowledged in the west while west → east was paused, of
    // which only the record and the turn reached the east (items replicate one by one), not META,
    let stage = Takeover::new(vec![]).await;
    stage.regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    assert_eq!(stage.append(WEST, "r3", "turn 3").await.0, 201);
    for sk in ["RESP#r3".to_owned(), keys::turn_sk(3)] {
        let key = HashMap::from([
            (keys::PK.to_owned(), AttributeValue::S(format!("SESSION#{}", stage.session))),
            (keys::SK.to_owned(), AttributeValue::S(sk)),
        ]);
        let item = stage.regions.upstreams[WEST].get_item().table_name(&stage.regions.table).set_key(Some(key)).send().await;
        let item = item.unwrap().item.expect("the west's item");
        stage.regions.upstreams[EAST].put_item().table_name(&stage.regions.table).set_item(Some(item)).send().await.unwrap();
    }
    // when the west fails over to the east with no fence and the client, whose answer was
    // lost, retries r3 there,
    stage.west_fails();
    let retried = stage.append(EAST, "r3", "turn 3").await;
    // then it is the duplicate of turn 3, which joins the east's order instead of being
    // appended again; the east's next turn follows it,
    assert_eq!(retried, (200, json!({"turn_index": 3, "duplicate": true})));
    assert_eq!(stage.append(EAST, "r4", "turn 4").await, (201, json!({"turn_index": 4, "duplicate": false})));
    // and once the west is back, both regions hold turns 1 to 4 and nothing unmerged.
    stage.heal().await;
    for region in [WEST, EAST] {
        assert_eq!(stage.export(region, 100).await, (vec!["turn 1".into(), "turn 2".into(), "turn 3".into(), "turn 4".into()], vec![]));
    }
}

#[tokio::test]
async fn after_two_failovers_a_retry_is_a_duplicate_when_the_other_homes_record_arrived_without_its_meta() {
    // Given alice's session whose turn 3 (r3) the west acknowledged and did not replicate,
    // when the east takes over with no fence (epoch 1) and the client's retry of r3 is appended
    // there as the east's turn 3, and of the east's writes only its record of r3 reaches the
    // west (items replicate one by one), before the session fails back to the west (epoch 2),
    let stage = Takeover::r3_in_both_homes_then_back_west().await;
    // then a retry of r3 in the west, whose record names the east's epoch that the west's META
    // does not know yet, is refused as retryable, never appended again,
    let (status, body) = stage.append(WEST, "r3", "turn 3").await;
    assert_eq!((status, &body["code"]), (503, &json!("unavailable")), "{body}");
    // and once everything has replicated, the retry is a duplicate and r3 is in the order once.
    stage.heal().await;
    assert_eq!(stage.append(WEST, "r3", "turn 3").await, (200, json!({"turn_index": 3, "duplicate": true})));
    let (turns, _unmerged) = stage.export(WEST, 100).await;
    assert_eq!(turns, ["turn 1", "turn 2", "turn 3"]);
}

#[tokio::test]
async fn an_old_homes_late_turns_past_the_count_are_listed_unmerged_when_the_new_home_only_patched_the_session() {
    // Given alice's session whose turns 3 and 4 the west acknowledged and did not replicate,
    let stage = Takeover::west_failed_after(vec![], 3..=4).await;
    // when the east takes over with no fence and alice only updates the session's page context
    // there (a META write later than the west's, so the east's count of 2 wins everywhere),
    let url = format!("{}/sessions/{}", stage.apis[EAST], stage.session);
    let patched = stage.http.patch(url).bearer_auth(&stage.alice).json(&json!({"page_context": {"page": "/cart"}})).send().await.unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    // and the west returns and delivers its late turns,
    stage.heal().await;
    // then the export lists both of the west's acknowledged turns as unmerged in either region,
    for region in [EAST, WEST] {
        let (turns, unmerged) = stage.export(region, 100).await;
        assert_eq!(turns, ["turn 1", "turn 2"], "region {region}");
        assert_eq!(unmerged, ["turn 3", "turn 4"], "the west's acknowledged turns 3 and 4 are on no page in region {region}");
    }
    // and so does the operator's report (`make unmerged`, with the stacks' home map).
    let homes = HomeSource::File { regions: NAMES.join(","), path: stage.path.clone() };
    let report = home_store_with(&stage.regions, EAST, test_config(), homes).await.unmerged_turns().await.expect("the report");
    let listed: Vec<u64> = report.iter().map(|turn| turn.turn_index).collect();
    assert_eq!(listed, [3, 4], "{report:?}");
}

#[tokio::test]
async fn an_old_homes_late_summary_past_the_new_homes_count_is_left_out_when_the_new_home_only_patched_the_session() {
    // Given alice's session (home: the west), two turns replicated, then a third turn and a
    // summary of 1..=3 made in the west while west → east was paused,
    // when the west fails over to the east with no fence and alice only updates the session's
    // page context there (a META write later than the west's: the east's count of 2 wins),
    let LateSummary { regions, path, west, east, session } = LateSummary::new().await;
    let alice = tidewater_tests::alice();
    let patch = tidewater::SessionPatch { page_context: serde_json::from_value(json!({"page": "/cart"})).unwrap() };
    tidewater::SessionUpdater::update_session(&east, &alice, session, patch, None).await.expect("updated");
    // and the west's late turn and summary arrive,
    regions.replicator.with_mesh(|mesh| {
        mesh.set_down(WEST, false);
        mesh.pause(None, None, false);
    });
    regions.after(3 * LAG).await;
    // then no context presents the west's summary of a turn 3 the session's order does not hold.
    for store in [&west, &east] {
        let context = loaded(store, session).await;
        let contents: Vec<String> = context.turns.iter().map(|t| t.content.clone()).collect();
        assert_eq!((context.summary.map(|s| s.text), contents), (None, vec!["turn 1".to_owned(), "turn 2".to_owned()]));
    }
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn an_old_homes_late_turns_past_the_count_are_all_listed_unmerged_beyond_one_query_page() {
    // Given alice's session whose turns 3 to 42, of 60 KB each (over 1 MB in all), the west
    // acknowledged and did not replicate,
    let stage = Takeover::new(vec![]).await;
    stage.regions.replicator.with_mesh(|mesh| mesh.pause(Some(WEST), Some(EAST), true));
    let big = |n: u64| format!("turn {n} ") + &(0..1_900).map(|_| Uuid::new_v4().simple().to_string()).collect::<String>()[..60_000];
    for n in 3..=42 {
        assert_eq!(stage.append(WEST, &format!("r{n}"), &big(n)).await.0, 201);
    }
    stage.west_fails();
    // when the east takes over with no fence and appends one turn (its turn 3),
    assert_eq!(stage.append(EAST, "r100", "turn 100").await, (201, json!({"turn_index": 3, "duplicate": false})));
    // and the west returns and delivers its late turns,
    stage.heal().await;
    // then the export lists all forty of the west's acknowledged turns as unmerged.
    let (turns, unmerged) = stage.export(EAST, 500).await;
    assert_eq!(turns, ["turn 1", "turn 2", "turn 100"]);
    assert_eq!(unmerged.len(), 40, "only {} of the west's 40 late turns are listed", unmerged.len());
}

#[tokio::test]
async fn after_two_failovers_retracting_a_turn_of_the_order_that_has_not_arrived_is_retryable_never_404() {
    // Given alice's session taken over by the east with no fence (epoch 1), the east's turns 3
    // and 4, of which the west has META (turn_count 4) and turn 3 only,
    // when the session fails back to the west with no fence (epoch 2) and alice retracts turn 4,
    let stage = Takeover::east_turn_4_not_arrived_then_back_west().await;
    let homes = HomeSource::File { regions: NAMES.join(","), path: stage.path.clone() };
    let west = region_store(&stage.regions, WEST, test_config(), homes).await;
    let session = stage.session.parse().expect("a session id");
    let retracted = tidewater::TurnRetractor::retract_turn(&west, &tidewater_tests::alice(), session, 4).await;
    // then the answer is retryable (the turn exists; it has not arrived), never "no such turn".
    assert!(matches!(retracted, Err(Error::Unavailable(_))), "{retracted:?}");
}

#[tokio::test]
async fn a_cut_off_purge_waiting_for_an_awaited_region_is_counted_waiting_never_stuck() {
    // Given two regions and a customer homed in b, whose purge in b was cut off half-way,
    // leaving its work item,
    let mut homes = Homes::new("a,b", HomeMap::default()).unwrap();
    let table = purge_cut_off_in_b(&homes).await;
    // when a fails over to b with no fence, as on AWS (a is awaited), and the item falls due,
    homes.fail_over("a", "b");
    homes.map.awaiting.insert("a".to_owned());
    let b = store_in_region(&table, "b", &homes);
    table.clock().advance(Duration::from_secs(JANITOR_GRACE_SECONDS as u64 + 1));
    // then each of b's janitor passes counts the purge waiting, as one waiting for replication,
    // never failed nor stuck: nothing is wrong until the region is back.
    for pass in 1..=STUCK_AFTER_FAILURES {
        let report = b.janitor_pass(table.clock().now()).await.unwrap();
        assert_eq!((report.failed, report.stuck), (0, 0), "pass {pass}: {report:?}");
    }
}

