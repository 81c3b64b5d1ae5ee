//! Two regions: what serving a request from a region that is not the session's home costs,
//! and the capacity of an append once it has replicated.
//!
//! The bench's DynamoDB Local and a second one (`BENCH_SECOND_DYNAMODB`, which `make bench`
//! starts) are two regions behind the local replicator (`tidewater_local::replicator`), as in
//! `make run REGIONS=...`. A signed-in customer whose home is the second region appends and
//! loads there, through a client that counts its DynamoDB calls: each call would be one
//! cross-region round trip if a non-home region made them itself, against the one round trip
//! of forwarding the whole request to the home (`local/src/homing.rs`; on AWS the functions'
//! own hop, `shared/src/forwarding.rs`), which costs the non-home region no capacity
//! (`a_forwarded_append_costs_the_home_what_a_home_append_costs_and_the_other_region_nothing`,
//! `a_function_forwards_a_request_for_another_regions_session_to_its_home_once`).
//! The append is priced as P4 prices it (billed WCU in the home); the replicator then reports
//! the write units its replicated writes consumed in the other region.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::Client;
use tidewater::clock::Clock;
use tidewater::home::{self, HomeMap, HomeSource, Homes};
use tidewater::{Caller, Config, ContextLoader, ContextRequest, DynamoStore, NewSession, SessionCreator, TurnAppender};
use tidewater_local::mesh::{Mesh, Settings};
use tidewater_local::replicator::{Replica, Replicator};

use crate::report::Report;
use crate::{append, seed, BoxError, TURN_BYTES};

const NAMES: [&str; 2] = ["us-east-1", "eu-west-1"];
/// The region the measured customer lives in: the second DynamoDB Local.
const HOME: usize = 1;
/// Turns in the session before the measured append and load.
const TURNS: u64 = 20;

/// Counts the DynamoDB operations a client starts (retries are not new operations).
#[derive(Debug, Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "BenchCountCalls"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

impl Calls {
    fn take(&self) -> usize {
        self.0.swap(0, Ordering::Relaxed)
    }
}

pub(crate) async fn regions_cost(base: &DynamoStore, second: &str, report: &mut Report) -> Result<(), BoxError> {
    let first = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")?;
    let replicas = [first, second.to_owned()]
        .into_iter()
        .zip(NAMES)
        .map(|(upstream, name)| Replica { name: name.to_owned(), upstream })
        .collect();
    let settings = Settings { lag: 0, jitter: 0, skew: vec![] };
    let clock = Clock::system();
    let names = NAMES.map(str::to_owned).to_vec();
    let replicator = Replicator::new(replicas, Mesh::new(names, settings, 1), clock.clone());
    let mut endpoints = Vec::new();
    for region in 0..NAMES.len() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        endpoints.push(format!("http://{}", listener.local_addr()?));
        tokio::spawn(Arc::clone(&replicator).serve_region(region, listener, std::future::pending()));
    }
    let homes = Homes::new(&NAMES.join(","), HomeMap::default()).ok_or("two regions")?;
    let calls = Calls::default();
    let mut stores = Vec::new();
    for (region, endpoint) in endpoints.iter().enumerate() {
        let config = Config {
            table_name: format!("{}-regions", base.config().table_name),
            region: Some(NAMES[region].to_owned()),
            homes: Some(HomeSource::Fixed(homes.clone())),
            ..base.config().clone()
        };
        let client_config = base.client().config().to_builder().endpoint_url(endpoint).interceptor(calls.clone()).build();
        let store = DynamoStore::new(Client::from_conf(client_config), config);
        store.create_table().await?;
        stores.push(store);
    }
    let deliver = || async {
        clock.advance(Duration::from_secs(1));
        replicator.deliver_due().await;
    };

    // A signed-in customer at home in the second region, with a session of TURNS turns there.
    let customer = (0..)
        .map(|n| format!("bench-regions-{n}"))
        .find(|id| homes.home_of(home::customer_slot(id)) == NAMES[HOME])
        .ok_or("a customer at home there")?;
    let caller = Caller::new(customer, Vec::<String>::new());
    let home = &stores[HOME];
    let session = home.create_session(&caller, NewSession::default()).await?.session_id;
    let mut chat = seed::Chat::new(21);
    for n in 0..TURNS {
        let turn = seed::new_turn(&mut chat, n + 1, format!("regions-{n}"), TURN_BYTES).validate(home.config())?;
        home.append_turn(&caller, session, turn).await?;
    }
    deliver().await;

    // An append: its DynamoDB calls, then P4's price, and what its replicated writes consumed.
    calls.take();
    let turn = seed::new_turn(&mut chat, TURNS + 1, "regions-counted".into(), TURN_BYTES).validate(home.config())?;
    home.append_turn(&caller, session, turn).await?;
    let append_calls = calls.take();
    deliver().await;
    let replicated_before = replicator.replicated_write_units().get(NAMES[1 - HOME]).copied().unwrap_or(0.0);
    let turn = seed::new_turn(&mut chat, TURNS + 2, "regions-priced".into(), TURN_BYTES).validate(home.config())?;
    let price = append::price(home, &caller, session, turn).await?;
    deliver().await;
    let replicated = replicator.replicated_write_units().get(NAMES[1 - HOME]).copied().unwrap_or(0.0) - replicated_before;

    // A load of the newest turns, eventually consistent.
    calls.take();
    home.reset_consumed();
    let request = ContextRequest { max_turns: Some(10), max_tokens: None, consistent: false };
    home.load_context(&caller, session, request).await?;
    let load_calls = calls.take();
    let load_rcu = home.consumed().read_units;

    report.figure("regions.append_calls", "append at home: DynamoDB calls (round trips across regions if made from another region)", append_calls as f64, "");
    report.figure("regions.load_calls", "load at home: DynamoDB calls (round trips across regions if made from another region)", load_calls as f64, "");
    report.figure("regions.append_home_wcu", "append of a ~1 KB turn, billed WCU in the home", price.billed_wcu(), "WCU");
    report.figure("regions.append_replicated_wcu", "the same append, replicated write units in the other region", replicated, "rWCU");
    report.figure("regions.append_total_wcu", "the same append, total write units with two regions", price.billed_wcu() + replicated, "WCU");
    report.figure("regions.load_rcu", "load of 10 turns at home, RCU (none in the region that forwarded it)", load_rcu, "RCU");
    report.note(format!(
        "Regions: a request that reaches a region other than its session's home is forwarded whole to the home's API: one \
         cross-region round trip, and no capacity in the forwarding region. Making the home's DynamoDB calls from the other \
         region instead would cost {append_calls} cross-region round trips for an append and {load_calls} for a load. An \
         append billed {} WCU in the home and {replicated} replicated WCU in the other region: {} in all.",
        price.billed_wcu(),
        price.billed_wcu() + replicated
    ));
    for store in &stores {
        let _ = store.client().delete_table().table_name(&store.config().table_name).send().await;
    }
    Ok(())
}
