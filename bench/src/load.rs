//! P2 (warm load-context against a bare Query) and P3 (load-context capacity), in-process,
//! through the load-context handler, against DynamoDB Local.
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::{keys, DynamoStore};

use crate::BoxError;
use crate::item_size::{item_size, read_units, Item};
use crate::report::{Report, Status};
use crate::{seed, MAX_TURNS};
use crate::seed::Seeded;
use crate::silence::Silenced;
use crate::stats::Samples;

pub struct LoadLatency {
    pub handler: Samples,
    /// The handler's own Query, made bare: META, the latest summary and the newest turns.
    pub bare: Samples,
    pub response_bytes: usize,
}

/// `iterations` rounds, after `warm` untimed ones, each of two calls: the load-context handler
/// answering a `GET /sessions/{id}/context?max_turns=N` event, and the one Query it makes, as a
/// bare SDK call. The order inside each round alternates, so drift and noise fall on both alike.
pub async fn latency(
    store: &DynamoStore,
    event_json: &str,
    seeded: &Seeded,
    max_turns: i32,
    iterations: usize,
    warm: usize,
) -> Result<LoadLatency, BoxError> {
    let _quiet = Silenced::stdout();
    let mut result = LoadLatency { handler: Samples::default(), bare: Samples::default(), response_bytes: 0 };
    let pk = keys::session_pk(&seeded.session_id);
    for i in 0..(warm + iterations) {
        let timed = i >= warm;
        for step in 0..2 {
            if (step + i) % 2 == 0 {
                let request = lambda_http::request::from_str(event_json)?;
                let started = Instant::now();
                let response = load_context::handle(store, request).await;
                let took = started.elapsed();
                if response.status() != 200 {
                    return Err(format!("load-context answered {}", response.status()).into());
                }
                result.response_bytes = response.body().len();
                if timed {
                    result.handler.push_duration(took);
                }
            } else {
                let started = Instant::now();
                let items = head_query(store, &pk, max_turns).await?;
                let took = started.elapsed();
                if items.len() != max_turns as usize + 2 {
                    return Err(format!("the bare Query returned {} items", items.len()).into());
                }
                if timed {
                    result.bare.push_duration(took);
                }
            }
        }
    }
    Ok(result)
}

/// The Query load-context makes, bare and eventually consistent: newest first from the
/// latest summary down through META to the newest `max_turns` turns.
pub async fn head_query(store: &DynamoStore, pk: &str, max_turns: i32) -> Result<Vec<Item>, BoxError> {
    let output = store
        .client()
        .query()
        .table_name(&store.config().table_name)
        .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :head")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .expression_attribute_values(":first", AttributeValue::S(keys::turn_sk(1)))
        .expression_attribute_values(":head", AttributeValue::S(keys::LATEST_SUMMARY.to_owned()))
        .scan_index_forward(false)
        .limit(max_turns + 2)
        .send()
        .await?;
    Ok(output.items.unwrap_or_default())
}

pub async fn get_item(store: &DynamoStore, pk: &str, sk: &str) -> Result<Item, BoxError> {
    let output = store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key(keys::PK, AttributeValue::S(pk.to_owned()))
        .key(keys::SK, AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await?;
    output
        .item
        .ok_or_else(|| format!("no item {pk} {sk}").into())
}

pub struct LoadCapacity {
    /// What DynamoDB Local reported for one load.
    pub reported_rcu: f64,
    pub meta_bytes: usize,
    pub summary_bytes: usize,
    pub turns_bytes: usize,
    pub turn_item_mean_bytes: usize,
    pub turn_gzip_mean_bytes: usize,
    /// By the published rules, for the one Query load-context makes.
    pub computed_rcu: f64,
    /// What a conditional load that finds the session unchanged (304) reported.
    pub not_modified_rcu: f64,
}

/// The capacity of one eventually consistent load, as reported and as computed from the items,
/// and of a 304.
pub async fn capacity(
    store: &DynamoStore,
    event_json: &str,
    seeded: &Seeded,
    max_turns: i32,
) -> Result<LoadCapacity, BoxError> {
    let pk = keys::session_pk(&seeded.session_id);
    let etag = {
        let _quiet = Silenced::stdout();
        store.reset_consumed();
        let response = load_context::handle(store, lambda_http::request::from_str(event_json)?).await;
        if response.status() != 200 {
            return Err(format!("load-context answered {}", response.status()).into());
        }
        response.headers().get("etag").cloned().ok_or("load-context sent no ETag")?
    };
    let reported_rcu = store.consumed().read_units;
    let not_modified_rcu = {
        let _quiet = Silenced::stdout();
        let mut request = lambda_http::request::from_str(event_json)?;
        request.headers_mut().insert("if-none-match", etag);
        store.reset_consumed();
        let response = load_context::handle(store, request).await;
        if response.status() != 304 {
            return Err(format!("a conditional load answered {}", response.status()).into());
        }
        store.consumed().read_units
    };
    let items = head_query(store, &pk, max_turns).await?;
    let sort_key = |item: &Item| match item.get(keys::SK) {
        Some(AttributeValue::S(sk)) => sk.clone(),
        _ => String::new(),
    };
    let bytes_of = |wanted: &dyn Fn(&str) -> bool| -> usize {
        items.iter().filter(|item| wanted(&sort_key(item))).map(item_size).sum()
    };
    let meta_bytes = bytes_of(&|sk| sk == keys::META);
    let summary_bytes = bytes_of(&|sk| sk == keys::LATEST_SUMMARY);
    let turns: Vec<&Item> = items.iter().filter(|item| sort_key(item).starts_with(keys::TURN_PREFIX)).collect();
    let turns_bytes: usize = turns.iter().map(|item| item_size(item)).sum();
    let content: usize = turns
        .iter()
        .filter_map(|t| match t.get("content") {
            Some(AttributeValue::B(b)) => Some(b.as_ref().len()),
            _ => None,
        })
        .sum();
    Ok(LoadCapacity {
        reported_rcu,
        meta_bytes,
        summary_bytes,
        turns_bytes,
        turn_item_mean_bytes: turns_bytes / turns.len().max(1),
        turn_gzip_mean_bytes: content / turns.len().max(1),
        computed_rcu: read_units(meta_bytes + summary_bytes + turns_bytes, false),
        not_modified_rcu,
    })
}

pub(crate) async fn capacity_of_loads(
    store: &DynamoStore,
    report: &mut Report,
    event: &str,
    seeded: &seed::Seeded,
) -> Result<(), BoxError> {
    let c = capacity(store, event, seeded, MAX_TURNS).await?;
    report.figure("p3.reported_rcu", "load-context RCU, reported by DynamoDB Local (one Query)", c.reported_rcu, "RCU");
    report.figure("p3.computed_rcu", "load-context RCU, computed from item sizes", c.computed_rcu, "RCU");
    report.figure("p3.not_modified_rcu", "conditional load answered 304, reported", c.not_modified_rcu, "RCU");
    report.figure("p3.meta_bytes", "~META item", c.meta_bytes as f64, "B");
    report.figure("p3.summary_bytes", "~SUMMARY item (the gzip summary)", c.summary_bytes as f64, "B");
    report.figure("p3.turns_bytes", "the 10 newest TURN items, together", c.turns_bytes as f64, "B");
    report.figure("p3.turn_item_mean_bytes", "one TURN item, mean", c.turn_item_mean_bytes as f64, "B");
    report.figure("p3.turn_gzip_mean_bytes", "one turn's gzip content, mean", c.turn_gzip_mean_bytes as f64, "B");
    let total = c.meta_bytes + c.summary_bytes + c.turns_bytes;
    let note = format!(
        "One Query, newest first, over `SK BETWEEN TURN#0000000001 AND ~SUMMARY` with Limit N+2, reads the latest \
         summary ({} B), META ({} B) and the 10 newest turns ({} B): {} B, which costs {} RCU by the published rules \
         (0.5 per started 4 KB, eventually consistent), the floor of those bytes. A 304 reads META alone: {} RCU.",
        c.summary_bytes, c.meta_bytes, c.turns_bytes, total, c.computed_rcu, c.not_modified_rcu
    );
    report.check(
        "P3",
        "load-context capacity (200 turns of ~1 KB, N=10, with a summary); a 304",
        "≤ 1.0 RCU, the floor of its bytes; 304 ≤ 0.5 RCU",
        format!("{} RCU (computed {}); 304: {} RCU", c.reported_rcu, c.computed_rcu, c.not_modified_rcu),
        Status::of(c.reported_rcu <= 1.0 && c.reported_rcu <= c.computed_rcu && c.not_modified_rcu <= 0.5),
        note,
    );
    Ok(())
}

pub(crate) async fn load_latency(
    store: &DynamoStore,
    report: &mut Report,
    event: &str,
    seeded: &seed::Seeded,
    iterations: usize,
) -> Result<(), BoxError> {
    let l = latency(store, event, seeded, MAX_TURNS, iterations, 50).await?;
    let ratio = l.handler.median() / l.bare.median();
    report.figure(
        "p2.handler_p50_ms",
        "load-context handler, p50",
        l.handler.median(),
        "ms",
    );
    report.figure(
        "p2.handler_p90_ms",
        "load-context handler, p90",
        l.handler.percentile(90.0),
        "ms",
    );
    report.figure(
        "p2.handler_p99_ms",
        "load-context handler, p99",
        l.handler.percentile(99.0),
        "ms",
    );
    report.figure("p2.bare_p50_ms", "bare SDK Query of the same items (the handler's Query), p50", l.bare.median(), "ms");
    report.figure("p2.bare_p90_ms", "bare SDK Query, p90", l.bare.percentile(90.0), "ms");
    report.figure("p2.bare_p99_ms", "bare SDK Query, p99", l.bare.percentile(99.0), "ms");
    report.figure("p2.ratio_p50", "handler p50 / bare Query p50", ratio, "×");
    report.figure("p2.response_bytes", "load-context response body", l.response_bytes as f64, "B");
    report.check(
        "P2",
        "warm load-context vs a bare Query of the same items (200 turns, N=10), p50",
        "≤ 1.10×",
        format!("{ratio:.2}× ({:.2} ms vs {:.2} ms, {} rounds)", l.handler.median(), l.bare.median(), l.handler.len()),
        Status::of(ratio <= 1.10),
        format!(
            "In-process, alternating rounds against DynamoDB Local. The handler makes the same one Query as the bare \
             call; what it adds ({:.2} ms at p50) is its own work: parsing the event, the checks, gunzipping 11 blobs \
             and serialising the answer once.",
            l.handler.median() - l.bare.median()
        ),
    );
    Ok(())
}
