//! Benchmark: stream records per second through the summarize function's filter and handler,
//! against DynamoDB Local, with the extractive summariser.
//!
//! It makes a table of its own, creates the sessions that cross the threshold (not timed),
//! generates a batch of `RECORDS` stream records shaped as appends write them (a RESP and a
//! TURN insert and a META modify per append), `CROSSING_PERCENT` of them META records whose
//! flag turns true, then times the template's filter plus the handler in batches of the
//! template's `BatchSize`, as the event source mapping would call it. It drops its table at
//! the end.
//!
//! `DDB_PORT=8000 ./scripts/with-dynamodb.sh cargo run --release -p tidewater-local --bin bench-summarize`
//!
//! | variable | default |
//! |---|---|
//! | `RECORDS` | `1000` |
//! | `CROSSING_PERCENT` | `5` |
//! | `TEMPLATE` | `template.yaml` |
//! | `CUSTOMERS` | one per crossing session | how many customers own the crossing sessions, in turn |
//!
//! Where the timed part's time goes: it also prints the CPU time this process and DynamoDB
//! Local (`DDB_PID`, which `scripts/with-dynamodb.sh` exports) spent in it, from `/proc`.
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType};
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use futures::stream::{self, StreamExt, TryStreamExt};
use tidewater::items::{MetaItem, ResponseItem, TurnItem};
use tidewater::{
    codec, dynamodb_client, keys, Caller, Config, DynamoStore, Error, ExtractiveSummarizer, HashKey, NewSession, NewTurn, Role, Secret,
    SessionCreator, SummarySource, TurnAppender,
};
use tidewater_local::filter::StreamMapping;
use uuid::Uuid;

/// The bench's own salt: its sessions and facts are named under it, like the tests'.
const BENCH_RECEIPT_SALT: &str = "tidewater-bench-receipt-salt-not-deployed";
const BENCH_HASH_KEY: &str = "tidewater-bench-hash-key-not-deployed-anywhere";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env_number =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let total = env_number("RECORDS", 1_000).max(1);
    let crossing = (total * env_number("CROSSING_PERCENT", 5) / 100).clamp(1, total);
    let customers = env_number("CUSTOMERS", crossing).clamp(1, crossing);
    let template = std::env::var("TEMPLATE").unwrap_or_else(|_| "template.yaml".to_owned());
    let mapping = StreamMapping::load(&template, "summarize")?;
    let config = Config { table_name: format!("bench-summarize-{}", Uuid::new_v4().simple()), ..Config::from_env()? }
        .with_receipt_salt(Secret::new("RECEIPT_SALT", BENCH_RECEIPT_SALT)?)
        .with_hash_key(HashKey::new(&Secret::new("HASH_KEY", BENCH_HASH_KEY)?)?);
    let threshold = config.summary_threshold;
    let due = config.summary_due_at(0);
    let store = DynamoStore::new(dynamodb_client().await, config.clone());
    store.create_table().await?;
    let result = run(&store, &mapping, total, crossing, customers, threshold, due).await;
    let _ = store
        .client()
        .delete_table()
        .table_name(&config.table_name)
        .send()
        .await;
    result
}

async fn run(
    store: &DynamoStore,
    mapping: &StreamMapping,
    total: usize,
    crossing: usize,
    customers: usize,
    threshold: u64,
    due: u64,
) -> Result<(), Error> {
    println!("set-up: {crossing} sessions of {due} turns, of {customers} customers (not timed)");
    let owners: Vec<Caller> =
        (0..customers).map(|i| Caller::new(format!("bench-{i}"), Vec::<String>::new())).collect();
    let sessions: Vec<Uuid> = stream::iter(0..crossing)
        .map(|i| session_with_turns(store, &owners[i % customers], due))
        .buffer_unordered(8)
        .try_collect()
        .await?;

    let batch = generate(&sessions, customers, total, due)?;
    let summarizer = ExtractiveSummarizer::default();

    // Timed: the filter over the whole batch, then the handler in the mapping's batches.
    let cpu_before = CpuTime::now();
    let started = Instant::now();
    let matched: Vec<EventRecord> = batch.iter().filter(|r| mapping.filter.matches_record(r)).cloned().collect();
    let filtered_in = started.elapsed();
    let mut failures = 0;
    for chunk in matched.chunks(mapping.batch_size) {
        let mut event = Event::default();
        event.records = chunk.to_vec();
        failures += summarize::handle(store, &summarizer, store.config(), event).await.batch_item_failures.len();
    }
    let elapsed = started.elapsed();
    let cpu = CpuTime::now().since(&cpu_before);

    let mut summarised = 0;
    for session in &sessions {
        if store.summary_state(*session).await?.is_some_and(|s| s.summarized_through == threshold) {
            summarised += 1;
        }
    }

    // Redelivery: the same records again, unfiltered, in the mapping's batches (summaries exist).
    let redelivery_started = Instant::now();
    for chunk in batch.chunks(mapping.batch_size) {
        let mut event = Event::default();
        event.records = chunk.to_vec();
        failures += summarize::handle(store, &summarizer, store.config(), event).await.batch_item_failures.len();
    }
    let redelivery = redelivery_started.elapsed();

    // Written once: each crossing session holds exactly one SUMMARY# item after the redelivery.
    let mut items_per_session = Vec::with_capacity(sessions.len());
    for session in &sessions {
        items_per_session.push(summary_items(store, *session).await?);
    }
    let (fewest, most) = (items_per_session.iter().min().copied(), items_per_session.iter().max().copied());

    println!(
        "records: {total}, passed the filter: {}, summaries written: {summarised}/{crossing}, failures: {failures}",
        matched.len()
    );
    println!("filter alone:                {:>10.0} records/s ({:.2} ms)", rate(total, filtered_in), ms(filtered_in));
    println!("filter + handler:            {:>10.0} records/s ({:.2} ms)", rate(total, elapsed), ms(elapsed));
    println!("  per summary written:       {:>10.2} ms", ms(elapsed) / crossing as f64);
    println!("  CPU in it: {}", cpu.describe(ms(elapsed)));
    println!("redelivery, no filter:       {:>10.0} records/s ({:.2} ms)", rate(total, redelivery), ms(redelivery));
    println!("summary items per crossing session: {}-{}", fewest.unwrap_or(0), most.unwrap_or(0));
    if summarised != crossing || failures != 0 || fewest != Some(1) || most != Some(1) {
        return Err(Error::Conflict("the benchmark did not summarise every crossing session".to_owned()));
    }
    Ok(())
}

/// The SUMMARY# items of one session, counted with a consistent Query.
async fn summary_items(store: &DynamoStore, session: Uuid) -> Result<i32, Error> {
    let output = store
        .client()
        .query()
        .table_name(&store.config().table_name)
        .key_condition_expression("PK = :pk AND begins_with(SK, :summary)")
        .expression_attribute_values(":pk", AttributeValue::S(keys::session_pk(&session)))
        .expression_attribute_values(":summary", AttributeValue::S(keys::SUMMARY_PREFIX.to_owned()))
        .select(Select::Count)
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| Error::Unavailable(Box::new(e)))?;
    Ok(output.count)
}

/// CPU time (user and system, every thread) of this process and of DynamoDB Local, in
/// milliseconds, from `/proc/<pid>/stat`; `None` where it cannot be read (not Linux, no
/// `DDB_PID`).
struct CpuTime {
    ours: Option<f64>,
    dynamodb: Option<f64>,
}

impl CpuTime {
    fn now() -> CpuTime {
        CpuTime { ours: process_cpu_ms("self"), dynamodb: std::env::var("DDB_PID").ok().and_then(|pid| process_cpu_ms(&pid)) }
    }

    fn since(&self, before: &CpuTime) -> CpuTime {
        let minus = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CpuTime { ours: minus(self.ours, before.ours), dynamodb: minus(self.dynamodb, before.dynamodb) }
    }

    fn describe(&self, wall_ms: f64) -> String {
        let part = |name: &str, value: Option<f64>| match value {
            Some(cpu) => format!("{name} {cpu:.0} ms ({:.0} % of the wall time)", cpu / wall_ms.max(1e-9) * 100.0),
            None => format!("{name} unknown"),
        };
        format!("{}, {}", part("bench-summarize", self.ours), part("DynamoDB Local", self.dynamodb))
    }
}

/// utime + stime of a process, in ms (Linux counts them in USER_HZ, 100 a second).
fn process_cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // 14th and 15th of the line are the 12th and 13th after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10.0)
}

fn rate(records: usize, elapsed: Duration) -> f64 {
    records as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn ms(elapsed: Duration) -> f64 {
    elapsed.as_secs_f64() * 1_000.0
}

async fn session_with_turns(store: &DynamoStore, owner: &Caller, turns: u64) -> Result<Uuid, Error> {
    let session = store.create_session(owner, NewSession::default()).await?.session_id;
    for i in 1..=turns {
        let (role, content, intent) = if i % 2 == 1 {
            (
                "user",
                format!("Do you have volume {i} of \"Dungeon Meshi\" in paperback?"),
                Some("availability".to_owned()),
            )
        } else {
            ("assistant", format!("Yes, volume {} of Dungeon Meshi ships tomorrow.", i - 1), None)
        };
        let turn = NewTurn { response_id: format!("r{i}"), role: role.to_owned(), content, intent, token_count: None, item: None };
        store.append_turn(owner, session, turn.validate(store.config())?).await?;
    }
    Ok(session)
}

/// `total` records: every `total / crossing`-th one a META whose flag turns true for one of
/// `sessions` (session `i` owned by customer `bench-{i % customers}`); the rest the three
/// records of ordinary appends to other sessions.
fn generate(sessions: &[Uuid], customers: usize, total: usize, threshold: u64) -> Result<Vec<EventRecord>, Error> {
    let every = (total / sessions.len().max(1)).max(1);
    let mut crossing = sessions.iter().enumerate();
    let mut records = Vec::with_capacity(total);
    let mut other = Uuid::new_v4();
    let mut turn = 0u64;
    let mut step = 0usize;
    for position in 0..total {
        let sequence_number = format!("{:021}", 100_000_000_000_000_000_000u128 + position as u128);
        if position % every == every / 2 {
            if let Some((i, session)) = crossing.next() {
                let owner = format!("bench-{}", i % customers);
                let old = meta(*session, &owner, threshold - 1, false);
                let new = meta(*session, &owner, threshold, true);
                records.push(record(
                    "MODIFY",
                    &new.pk,
                    &new.sk,
                    Some(to_item(&new)?),
                    Some(to_item(&old)?),
                    sequence_number,
                ));
                continue;
            }
        }
        // Ordinary appends, three records each, to sessions well below the threshold.
        let pk = keys::session_pk(&other);
        step += 1;
        match step % 3 {
            1 => {
                turn += 1;
                let item = ResponseItem {
                    pk: pk.clone(),
                    sk: keys::response_sk(&format!("r{turn}")),
                    turn_index: turn,
                    payload_hash: "0123456789abcdef0123456789abcdef".to_owned(),
                    epoch: 0,
                };
                records.push(record("INSERT", &item.pk, &item.sk, Some(to_item(&item)?), None, sequence_number));
            }
            2 => {
                let item = TurnItem {
                    pk: pk.clone(),
                    sk: keys::turn_sk(turn),
                    role: Role::User,
                    content: codec::compress("Is volume 3 of Frieren in stock? I would like the special edition."),
                    intent: Some("availability".to_owned()),
                    token_count: Some(14),
                    created_at: "2026-11-26T19:00:00Z".to_owned(),
                    item: None,
                    retracted_at: None,
                };
                records.push(record("INSERT", &item.pk, &item.sk, Some(to_item(&item)?), None, sequence_number));
            }
            _ => {
                let old = meta(other, "bench", turn.saturating_sub(1), false);
                let new = meta(other, "bench", turn, false);
                records.push(record(
                    "MODIFY",
                    &new.pk,
                    &new.sk,
                    Some(to_item(&new)?),
                    Some(to_item(&old)?),
                    sequence_number,
                ));
                if turn >= threshold / 2 {
                    other = Uuid::new_v4();
                    turn = 0;
                }
            }
        }
    }
    Ok(records)
}

fn meta(session: Uuid, owner: &str, turn_count: u64, needs_summary: bool) -> MetaItem {
    MetaItem {
        pk: keys::session_pk(&session),
        sk: keys::META.to_owned(),
        session_id: session,
        owner_id: owner.to_owned(),
        guest: false,
        page_context: Default::default(),
        turn_count,
        summarized_through: 0,
        needs_summary,
        retracted_turns: 0,
        summary_rearm: false,
        created_at: "2026-11-26T19:00:00Z".to_owned(),
        updated_at: "2026-11-26T19:20:00Z".to_owned(),
        ttl: 1_795_806_000,
        ttl_margin: None,
        version: turn_count + 1,
        gsi1pk: Some(keys::customer_pk(owner)),
        gsi1sk: Some("2026-11-26T19:20:00Z".to_owned()),
        listed_turn_count: Some(0),
        patched_from: None,
        segments: Vec::new(),
        version_epoch: 0,
        patched_from_epoch: 0,
    }
}

fn to_item(value: &impl serde::Serialize) -> Result<serde_dynamo::Item, Error> {
    serde_dynamo::to_item(value).map_err(|e| Error::Corrupt(Box::new(e)))
}

fn record(
    event_name: &str,
    pk: &str,
    sk: &str,
    new_image: Option<serde_dynamo::Item>,
    old_image: Option<serde_dynamo::Item>,
    sequence_number: String,
) -> EventRecord {
    #[derive(serde::Serialize)]
    struct Keys<'a> {
        #[serde(rename = "PK")]
        pk: &'a str,
        #[serde(rename = "SK")]
        sk: &'a str,
    }
    let mut change = StreamRecord::default();
    change.keys = serde_dynamo::to_item(Keys { pk, sk }).unwrap_or_default();
    change.new_image = new_image.unwrap_or_default();
    change.old_image = old_image.unwrap_or_default();
    change.sequence_number = Some(sequence_number);
    change.size_bytes = 400;
    change.stream_view_type = Some(StreamViewType::NewAndOldImages);
    let mut record = EventRecord::default();
    record.event_id = Uuid::new_v4().simple().to_string();
    record.event_name = event_name.to_owned();
    record.event_version = Some("1.1".to_owned());
    record.event_source = Some("aws:dynamodb".to_owned());
    record.aws_region = "us-east-1".to_owned();
    record.event_source_arn =
        Some("arn:aws:dynamodb:us-east-1:123456789012:table/bench/stream/2026-11-26T19:00:00.000".to_owned());
    record.change = change;
    record
}
