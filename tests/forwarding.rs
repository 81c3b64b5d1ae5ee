//! The functions' own hop to a session's home region, as it runs on AWS: each region's API is
//! the local gateway without homing of its own (API Gateway hands every request to the
//! region's function), in front of functions that run through `tidewater::forwarding` with
//! every region's API named (`REGION_APIS`). Two replicated regions (tests/replication.rs).
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use serde_json::{json, Value};
use tidewater::forwarding::{Forwarding, DEFAULT_FORWARD_TIMEOUT, PURGE_FORWARD_TIMEOUT};
use tidewater::routing::{FORWARDED_FROM, SERVED_BY, STALE};
use tidewater::DynamoStore;
use tidewater_local::gateway::Gateway;
use tidewater_local::mesh::Settings;
use tidewater_local::template;
use tidewater_tests::test_config;
use tokio::net::TcpListener;

use crate::homes::{home_store, homes, lambda_answer, run_function, session_items, token, NAMES, SECRET, TEMPLATE};
use crate::replication::{regions, Regions, EAST, LAG, WEST};

/// One region's functions: its store, their hop (PurgeCustomer's with its own bound), and how
/// many requests they served here.
#[derive(Clone)]
struct Functions {
    store: Arc<DynamoStore>,
    forwarding: Arc<Forwarding>,
    purging: Arc<Forwarding>,
    served: Arc<AtomicUsize>,
}

/// Lambda's invoke API for one region: each function runs through the hop, as its main.rs
/// runs it (`tidewater::forwarding::run`, or `run_within` for purge-customer).
async fn invoke(State(functions): State<Functions>, Path(function): Path<String>, event: String) -> axum::Json<Value> {
    let request = lambda_http::request::from_str(&event).expect("an API Gateway event");
    let forwarding = if function == "purge-customer" { &functions.purging } else { &functions.forwarding };
    let answer = forwarding
        .serve(request, |request| async {
            functions.served.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Infallible>(run_function(&functions.store, &function, request).await)
        })
        .await;
    lambda_answer(answer.unwrap_or_else(|never| match never {}))
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    (listener, url)
}

/// Region `region`'s API on `api`: a gateway with no homing, in front of functions that
/// forward to the APIs `apis` names, within `timeout` (a purge within
/// [`PURGE_FORWARD_TIMEOUT`], as its main.rs has it). Returns how many requests they served,
/// and their store.
async fn stack(
    regions: &Regions,
    region: usize,
    api: TcpListener,
    apis: &BTreeMap<String, String>,
    timeout: Duration,
) -> (Arc<AtomicUsize>, Arc<DynamoStore>) {
    let store = home_store(regions, region, test_config()).await;
    let forwarding = Arc::new(Forwarding::new(NAMES[region], homes(), apis.clone(), timeout));
    let purging = Arc::new(Forwarding::new(NAMES[region], homes(), apis.clone(), PURGE_FORWARD_TIMEOUT));
    let served = Arc::new(AtomicUsize::new(0));
    let (functions, functions_url) = listener().await;
    let state = Functions { store: Arc::clone(&store), forwarding, purging, served: Arc::clone(&served) };
    let lambda = axum::Router::new()
        .route("/2015-03-31/functions/{function}/invocations", axum::routing::post(invoke))
        .with_state(state);
    tokio::spawn(axum::serve(functions, lambda).into_future());
    let routes = template::http_routes(&template::load(TEMPLATE).expect("the template"));
    let gateway = Gateway::new(routes, SECRET.into(), functions_url);
    tokio::spawn(axum::serve(api, gateway.router()).into_future());
    (served, store)
}

/// Both regions' APIs, each one's functions knowing both, what each served, and their stores.
async fn two_regions(regions: &Regions) -> (Vec<String>, Vec<(Arc<AtomicUsize>, Arc<DynamoStore>)>) {
    let ((east, east_api), (west, west_api)) = (listener().await, listener().await);
    let apis = BTreeMap::from([(NAMES[EAST].to_owned(), east_api.clone()), (NAMES[WEST].to_owned(), west_api.clone())]);
    let served = vec![
        stack(regions, EAST, east, &apis, DEFAULT_FORWARD_TIMEOUT).await,
        stack(regions, WEST, west, &apis, DEFAULT_FORWARD_TIMEOUT).await,
    ];
    (vec![east_api, west_api], served)
}

fn turn(n: u32) -> Value {
    json!({"response_id": format!("r{n}"), "role": "user", "content": format!("turn {n}")})
}

/// A session of alice's, whose home is the west, made there.
async fn alices_session(http: &reqwest::Client, west: &str) -> String {
    let home = tidewater::home::Homes::new(&NAMES.join(","), Default::default()).expect("two regions");
    assert_eq!(home.home_of(tidewater::home::customer_slot("alice")), NAMES[WEST]);
    let created = http.post(format!("{west}/sessions")).bearer_auth(token("alice", &[])).json(&json!({})).send().await.unwrap();
    assert_eq!(created.status(), 201);
    created.json::<Value>().await.unwrap()["session_id"].as_str().expect("a session id").to_owned()
}

fn count(served: &Arc<AtomicUsize>) -> usize {
    served.load(Ordering::SeqCst)
}

async fn turns_in(regions: &Regions, region: usize, session: &str) -> usize {
    session_items(regions, region, session).await.iter().filter(|sk| sk.contains("TURN#")).count()
}

#[tokio::test]
async fn a_function_forwards_a_request_for_another_regions_session_to_its_home_once() {
    // Given two regions whose replication is held, with no homing in front of the functions,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    regions.replicator.with_mesh(|mesh| mesh.pause(None, None, true));
    let (apis, functions) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    // and a session alice (whose home is the west) has just made in the west,
    let session = alices_session(&http, &apis[WEST]).await;
    functions[EAST].1.reset_consumed();

    // when she appends through the east, and retries it there,
    let append = || http.post(format!("{}/sessions/{session}/turns", apis[EAST])).bearer_auth(&alice).json(&turn(1)).send();
    let appended = append().await.unwrap();
    assert_eq!(appended.headers()[SERVED_BY], NAMES[WEST]);
    assert_eq!((appended.status().as_u16(), appended.json::<Value>().await.unwrap()["turn_index"].clone()), (201, json!(1)));
    let retried: Value = append().await.unwrap().json().await.unwrap();
    assert_eq!((&retried["turn_index"], &retried["duplicate"]), (&json!(1), &json!(true)));

    // then a load through the east is the west's answer, ETag included,
    let load = |api: &str| http.get(format!("{api}/sessions/{session}/context")).bearer_auth(&alice).send();
    let (east, west) = (load(&apis[EAST]).await.unwrap(), load(&apis[WEST]).await.unwrap());
    assert_eq!(east.headers()[SERVED_BY], NAMES[WEST]);
    assert!(east.headers().get(STALE).is_none());
    assert_eq!((east.status(), east.headers()["etag"].clone()), (west.status(), west.headers()["etag"].clone()));
    let (east, west): (Value, Value) = (east.json().await.unwrap(), west.json().await.unwrap());
    assert_eq!(east, west);
    assert_eq!(east["turns"].as_array().map(Vec::len), Some(1));
    // the turn was written once, in the west only, and the east's functions served nothing
    // themselves: one cross-region round trip each, and no capacity in the east.
    assert_eq!(turns_in(&regions, WEST, &session).await, 1);
    assert!(session_items(&regions, EAST, &session).await.is_empty());
    assert_eq!((count(&functions[EAST].0), count(&functions[WEST].0)), (0, 5));
    let east = functions[EAST].1.consumed();
    assert_eq!((east.read_units, east.write_units), (0.0, 0.0));
}

#[tokio::test]
async fn a_forwarded_request_that_reaches_a_region_not_its_home_is_refused_never_sent_on() {
    // Given two regions and a session of alice's in the west,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, functions) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    let session = alices_session(&http, &apis[WEST]).await;
    // when an append marked as forwarded (the sender took the east for her home) reaches the east,
    let bounced = http
        .post(format!("{}/sessions/{session}/turns", apis[EAST]))
        .bearer_auth(token("alice", &[]))
        .header(FORWARDED_FROM, NAMES[WEST])
        .json(&turn(1))
        .send()
        .await
        .unwrap();
    // then it is refused with a retryable 503, served nowhere and sent nowhere;
    assert_eq!((bounced.status().as_u16(), bounced.headers()["retry-after"].to_str().unwrap()), (503, "1"));
    assert!(bounced.headers().get(SERVED_BY).is_none());
    assert_eq!(bounced.json::<Value>().await.unwrap()["code"], "home_moved");
    assert_eq!((count(&functions[EAST].0), count(&functions[WEST].0)), (0, 1), "the west served only the create");
    // and nothing was written in either region.
    regions.after(LAG).await;
    assert_eq!((turns_in(&regions, EAST, &session).await, turns_in(&regions, WEST, &session).await), (0, 0));
}

#[tokio::test]
async fn with_the_home_unreachable_a_function_serves_reads_stale_from_its_replica_and_refuses_writes() {
    // Given a session of alice's in the west with two turns, replicated to the east,
    let regions = regions(Settings { lag: LAG.as_micros() as i64, jitter: 0, skew: vec![] }).await;
    let (apis, _) = two_regions(&regions).await;
    let http = reqwest::Client::new();
    let alice = token("alice", &[]);
    let session = alices_session(&http, &apis[WEST]).await;
    for n in 1..=2 {
        let appended = http.post(format!("{}/sessions/{session}/turns", apis[WEST])).bearer_auth(&alice).json(&turn(n)).send().await;
        assert_eq!(appended.unwrap().status(), 201);
    }
    regions.after(LAG).await;
    // and two more east APIs whose functions cannot reach the west: one where the west's API
    // Gateway answers its own 503 (the home's API is down), one where it never answers;
    let (down, down_api) = listener().await;
    let gateway_503 = axum::Router::new().fallback(|| async {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"message": "Service Unavailable"})))
    });
    tokio::spawn(axum::serve(down, gateway_503).into_future());
    let (_silent, silent_api) = listener().await;
    let mut unreachable = Vec::new();
    for west_api in [down_api, silent_api] {
        let (east, east_api) = listener().await;
        let apis = BTreeMap::from([(NAMES[EAST].to_owned(), east_api.clone()), (NAMES[WEST].to_owned(), west_api)]);
        stack(&regions, EAST, east, &apis, Duration::from_millis(300)).await;
        unreachable.push(east_api);
    }
    for (east, code) in unreachable.iter().zip(["home_unavailable", "home_timeout"]) {
        // when a load, even a conditional one, reaches the east,
        let load = http
            .get(format!("{east}/sessions/{session}/context"))
            .bearer_auth(&alice)
            .header("if-none-match", "\"2\"")
            .send()
            .await
            .unwrap();
        // then the east's replica answers it: 200, marked stale, without an ETag;
        assert_eq!(load.status(), 200, "{east}");
        assert_eq!(load.headers()[STALE], "true");
        assert!(load.headers().get("etag").is_none() && load.headers().get(SERVED_BY).is_none());
        assert_eq!(load.json::<Value>().await.unwrap()["turns"].as_array().map(Vec::len), Some(2));
        // and an append is 503 with Retry-After: home_unavailable where the west's API
        // answered for it, home_timeout (it may have been applied) where nothing answered,
        let refused = http.post(format!("{east}/sessions/{session}/turns")).bearer_auth(&alice).json(&turn(3)).send().await.unwrap();
        assert_eq!((refused.status().as_u16(), refused.headers()["retry-after"].to_str().unwrap()), (503, "1"));
        let refused: Value = refused.json().await.unwrap();
        assert_eq!(refused["code"], code, "{refused}");
        if code == "home_timeout" {
            assert!(refused["message"].as_str().is_some_and(|m| m.contains("may have been applied") && m.contains("retry it as is")));
        }
    }
    // written nowhere.
    regions.after(LAG).await;
    assert_eq!((turns_in(&regions, EAST, &session).await, turns_in(&regions, WEST, &session).await), (2, 2));
}

/// The hop attacked as production would (review of issue 21): what it forwards and answers, purges, lost answers, stale absences, CORS and the shared secrets.
mod breaks;
