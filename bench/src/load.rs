//! P2 (warm load-context against a bare Query) and P3 (load-context capacity), in-process,
//! through the load-context handler, against DynamoDB Local.
use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::{keys, DynamoStore};

use crate::item_size::{item_size, read_units, Item};
use crate::seed::Seeded;
use crate::silence::Silenced;
use crate::stats::Samples;
use crate::BoxError;

pub struct LoadLatency {
    pub handler: Samples,
    pub bare: Samples,
    /// The two reads the handler makes (GetItem META ∥ Query), bare: the handler's I/O alone.
    pub bare_pair: Samples,
    pub response_bytes: usize,
}

/// `iterations` rounds, after `warm` untimed ones, each of three calls: the load-context
/// handler answering a `GET /sessions/{id}/context?max_turns=N` event; a bare SDK Query of the
/// same N turns; and the handler's two reads made bare (GetItem META ∥ the Query). The order
/// inside each round rotates, so drift and noise fall on all three alike.
pub async fn latency(
    store: &DynamoStore,
    event_json: &str,
    seeded: &Seeded,
    max_turns: i32,
    iterations: usize,
    warm: usize,
) -> Result<LoadLatency, BoxError> {
    let _quiet = Silenced::stdout();
    let mut result = LoadLatency {
        handler: Samples::default(),
        bare: Samples::default(),
        bare_pair: Samples::default(),
        response_bytes: 0,
    };
    let pk = keys::session_pk(&seeded.session_id);
    for i in 0..(warm + iterations) {
        let timed = i >= warm;
        // Rotate which of the three goes first.
        for step in 0..3 {
            let which = (step + i) % 3;
            if which == 2 {
                let started = Instant::now();
                let (meta, items) =
                    tokio::join!(get_meta(store, &pk), bare_query(store, &pk, max_turns));
                let took = started.elapsed();
                if meta?.is_none() || items?.len() != max_turns as usize {
                    return Err("the bare pair of reads found no session".into());
                }
                if timed {
                    result.bare_pair.push_duration(took);
                }
            } else if which == 0 {
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
                let items = bare_query(store, &pk, max_turns).await?;
                let took = started.elapsed();
                if items.len() != max_turns as usize {
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

/// The newest `limit` turns, eventually consistent: the Query load-context makes, bare.
pub async fn bare_query(store: &DynamoStore, pk: &str, limit: i32) -> Result<Vec<Item>, BoxError> {
    let output = store
        .client()
        .query()
        .table_name(&store.config().table_name)
        .key_condition_expression("PK = :pk AND begins_with(SK, :turn)")
        .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
        .expression_attribute_values(":turn", AttributeValue::S(keys::TURN_PREFIX.to_owned()))
        .scan_index_forward(false)
        .limit(limit)
        .send()
        .await?;
    Ok(output.items.unwrap_or_default())
}

/// META, eventually consistent, as load-context reads it.
async fn get_meta(store: &DynamoStore, pk: &str) -> Result<Option<Item>, BoxError> {
    let output = store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key(keys::PK, AttributeValue::S(pk.to_owned()))
        .key(keys::SK, AttributeValue::S(keys::META.to_owned()))
        .send()
        .await?;
    Ok(output.item)
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
    /// What DynamoDB Local reported for one load (GetItem META + Query).
    pub reported_rcu: f64,
    pub meta_bytes: usize,
    pub turns_bytes: usize,
    pub turn_item_mean_bytes: usize,
    pub turn_gzip_mean_bytes: usize,
    /// By the published rules, for the two reads load-context makes.
    pub computed_rcu: f64,
    /// One read of the same bytes: ceil(bytes / 4 KB) × 0.5.
    pub floor_rcu: f64,
}

/// The capacity of one eventually consistent load, as reported and as computed from the items.
pub async fn capacity(
    store: &DynamoStore,
    event_json: &str,
    seeded: &Seeded,
    max_turns: i32,
) -> Result<LoadCapacity, BoxError> {
    let pk = keys::session_pk(&seeded.session_id);
    store.reset_consumed();
    {
        let _quiet = Silenced::stdout();
        let response =
            load_context::handle(store, lambda_http::request::from_str(event_json)?).await;
        if response.status() != 200 {
            return Err(format!("load-context answered {}", response.status()).into());
        }
    }
    let reported_rcu = store.consumed().read_units;
    let meta = get_item(store, &pk, keys::META).await?;
    let turns = bare_query(store, &pk, max_turns).await?;
    let meta_bytes = item_size(&meta);
    let turns_bytes: usize = turns.iter().map(item_size).sum();
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
        turns_bytes,
        turn_item_mean_bytes: turns_bytes / turns.len().max(1),
        turn_gzip_mean_bytes: content / turns.len().max(1),
        computed_rcu: read_units(meta_bytes, false) + read_units(turns_bytes, false),
        floor_rcu: read_units(meta_bytes + turns_bytes, false),
    })
}
