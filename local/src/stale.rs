//! A lagging replica for the fault proxy: what an eventually consistent read may answer.
//!
//! DynamoDB answers a read without `ConsistentRead: true` from any replica of the partition,
//! and a replica can lag the leader by a moment: per item, the read may see an older version
//! of the item, or not see a new item at all. DynamoDB Local never does, so the proxy adds it.
//!
//! How it stays correct:
//! - **Before-images.** Before it forwards a write (PutItem, UpdateItem, DeleteItem, each item
//!   of a TransactWriteItems or BatchWriteItem), the proxy reads every item the write names
//!   with one strongly consistent BatchGetItem, and records that image with the write's time.
//!   Writes pass one at a time while they are read and applied, so the image read is the
//!   version the write replaced, and the history of a key is exact. If that read fails, the
//!   history of those keys is dropped instead: they are then served fresh, never wrongly.
//! - **A version at a time.** The item as it was at time `t` is the before-image of its first
//!   write after `t`; with no write after `t`, it is what the table holds now.
//! - **A stale read.** Each item of the answer is seen as of `now - lag`, with `lag` drawn per
//!   item, uniformly in `[0, bound]`: an older version replaces it, and an item not there yet
//!   at that time is left out. A history older than the bound is forgotten.
//!
//! Limits, stated: a stale Query leaves out what is new but does not bring back items that a
//! write deleted within the lag (a GetItem does); a stale Query page may hold fewer items than
//! its `Limit`. Queries on an index, with a `FilterExpression` or `Select`, and BatchGetItem
//! are answered fresh. A `ProjectionExpression` is applied to an older version by its
//! top-level attribute names.
use std::collections::{BTreeMap, HashMap, VecDeque};

use serde_json::{json, Map, Value};
use tidewater::keys;

/// An item in DynamoDB's JSON shape (`{"PK": {"S": "..."}, ...}`).
pub type Image = Map<String, Value>;

/// An item's address: table, partition key and sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemAddress {
    pub table: String,
    pub pk: String,
    pub sk: String,
}

impl ItemAddress {
    /// The address of an item or key image in `table`, if it has both key attributes as strings.
    pub fn of(table: &str, image: &Image) -> Option<ItemAddress> {
        let string = |name: &str| image.get(name)?.get("S")?.as_str().map(str::to_owned);
        Some(ItemAddress { table: table.to_owned(), pk: string(keys::PK)?, sk: string(keys::SK)? })
    }

    fn key_image(&self) -> Value {
        json!({ keys::PK: {"S": self.pk}, keys::SK: {"S": self.sk} })
    }
}

/// The addresses of every item a write request changes, by operation. `None` for a request
/// that does not write items.
pub fn written_items(operation: &str, request: &Value) -> Option<Vec<ItemAddress>> {
    let table = |value: &Value| value.get("TableName").and_then(Value::as_str).unwrap_or_default().to_owned();
    let address = |table: &str, image: Option<&Value>| image.and_then(Value::as_object).and_then(|i| ItemAddress::of(table, i));
    let mut items = Vec::new();
    match operation {
        "PutItem" => items.extend(address(&table(request), request.get("Item"))),
        "UpdateItem" | "DeleteItem" => items.extend(address(&table(request), request.get("Key"))),
        "TransactWriteItems" => {
            for entry in request.get("TransactItems").and_then(Value::as_array).into_iter().flatten() {
                if let Some(put) = entry.get("Put") {
                    items.extend(address(&table(put), put.get("Item")));
                }
                for kind in ["Update", "Delete"] {
                    if let Some(change) = entry.get(kind) {
                        items.extend(address(&table(change), change.get("Key")));
                    }
                }
            }
        }
        "BatchWriteItem" => {
            for (table, requests) in request.get("RequestItems").and_then(Value::as_object).into_iter().flatten() {
                for entry in requests.as_array().into_iter().flatten() {
                    items.extend(address(table, entry.pointer("/PutRequest/Item")));
                    items.extend(address(table, entry.pointer("/DeleteRequest/Key")));
                }
            }
        }
        _ => return None,
    }
    items.sort();
    items.dedup();
    Some(items)
}

/// The strongly consistent BatchGetItem that reads the current images of `items` (at most
/// 100, which no write request exceeds).
pub fn before_images_request(items: &[ItemAddress]) -> Value {
    let mut tables: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for item in items {
        tables.entry(&item.table).or_default().push(item.key_image());
    }
    let request_items: Map<String, Value> = tables
        .into_iter()
        .map(|(table, keys)| (table.to_owned(), json!({"Keys": keys, "ConsistentRead": true})))
        .collect();
    json!({ "RequestItems": request_items })
}

/// The images a BatchGetItem answered, by address; `None` when it left keys unprocessed, so
/// that the caller does not take a missing image for an absent item.
pub fn before_images(answer: &Value) -> Option<HashMap<ItemAddress, Image>> {
    let unprocessed = answer.get("UnprocessedKeys").and_then(Value::as_object).is_some_and(|keys| !keys.is_empty());
    if unprocessed {
        return None;
    }
    let mut images = HashMap::new();
    for (table, items) in answer.get("Responses")?.as_object()? {
        for item in items.as_array()?.iter().filter_map(Value::as_object) {
            images.insert(ItemAddress::of(table, item)?, item.clone());
        }
    }
    Some(images)
}

/// One write of one item: when it was applied, and the item before it (`None`: absent).
#[derive(Debug, Clone)]
struct Version {
    replaced_at_ms: u64,
    before: Option<Image>,
}

/// The recent history of every item written within the lag bound.
#[derive(Debug, Default)]
pub struct History {
    versions: HashMap<ItemAddress, VecDeque<Version>>,
    /// Writes since what is older than the bound was last forgotten.
    writes: u64,
}

impl History {
    /// Records that `item`, which was `before`, was written at `at_ms`; forgets what is older
    /// than `bound_ms`.
    pub fn record(&mut self, item: ItemAddress, before: Option<Image>, at_ms: u64, bound_ms: u64) {
        let versions = self.versions.entry(item).or_default();
        versions.push_back(Version { replaced_at_ms: at_ms, before });
        self.writes += 1;
        if self.writes >= 1_024 {
            self.writes = 0;
            self.forget_before(at_ms.saturating_sub(bound_ms));
        }
    }

    /// Drops what is known about `item`, so that it is served fresh.
    pub fn forget(&mut self, item: &ItemAddress) {
        self.versions.remove(item);
    }

    fn forget_before(&mut self, oldest_ms: u64) {
        self.versions.retain(|_, versions| {
            while versions.front().is_some_and(|v| v.replaced_at_ms < oldest_ms) {
                versions.pop_front();
            }
            !versions.is_empty()
        });
    }

    /// The item as it was at `at_ms`, given what it is now: `Some(None)` when it was absent,
    /// `None` when no write since `at_ms` is known, so the current version stands.
    pub fn as_of(&self, item: &ItemAddress, at_ms: u64) -> Option<Option<&Image>> {
        let versions = self.versions.get(item)?;
        versions.iter().find(|v| v.replaced_at_ms > at_ms).map(|v| v.before.as_ref())
    }
}

/// Whether a read request may be answered stale, and on which table: an eventually consistent
/// GetItem, or an eventually consistent Query on the table itself with no filter.
pub fn stale_table(operation: &str, request: &Value) -> Option<String> {
    let consistent = request.get("ConsistentRead").and_then(Value::as_bool).unwrap_or(false);
    let plain_query = ["IndexName", "FilterExpression", "Select", "QueryFilter"].iter().all(|f| request.get(f).is_none());
    let readable = match operation {
        "GetItem" => true,
        "Query" => plain_query,
        _ => false,
    };
    if consistent || !readable {
        return None;
    }
    request.get("TableName").and_then(Value::as_str).map(str::to_owned)
}

/// Rewrites the answer of a stale read: each item seen as of `now_ms - lag`, `lag` from
/// `draw_lag` per item. Returns whether any item changed.
pub fn age_answer(
    history: &History,
    table: &str,
    request: &Value,
    answer: &mut Value,
    now_ms: u64,
    mut draw_lag: impl FnMut() -> u64,
) -> bool {
    let projection = projected_names(request);
    let mut seen_as_of = |item: Image| -> (Option<Image>, bool) {
        let Some(address) = ItemAddress::of(table, &item) else { return (Some(item), false) };
        match history.as_of(&address, now_ms.saturating_sub(draw_lag())) {
            None => (Some(item), false),
            Some(before) => (before.map(|image| project(image, projection.as_deref())), true),
        }
    };
    let mut changed = false;
    if let Some(Value::Object(item)) = answer.get("Item").cloned() {
        let (aged, differs) = seen_as_of(item);
        changed |= differs;
        match aged {
            Some(item) => answer["Item"] = Value::Object(item),
            None => {
                answer.as_object_mut().map(|a| a.remove("Item"));
            }
        }
    } else if let Some(Value::Array(items)) = answer.get("Items").cloned() {
        let mut aged_items = Vec::with_capacity(items.len());
        for item in items {
            let Value::Object(item) = item else { continue };
            let (aged, differs) = seen_as_of(item);
            changed |= differs;
            aged_items.extend(aged.map(Value::Object));
        }
        answer["Count"] = json!(aged_items.len());
        answer["Items"] = Value::Array(aged_items);
    } else if answer.get("Item").is_none() && request.get("Key").is_some() {
        // A GetItem of an item absent now may meet one that a write deleted within the lag.
        let key = request.get("Key").and_then(Value::as_object);
        if let Some(address) = key.and_then(|key| ItemAddress::of(table, key)) {
            if let Some(Some(before)) = history.as_of(&address, now_ms.saturating_sub(draw_lag())) {
                answer["Item"] = Value::Object(project(before, projection.as_deref()));
                changed = true;
            }
        }
    }
    changed
}

/// The top-level attribute names of a request's `ProjectionExpression`, `#names` resolved.
fn projected_names(request: &Value) -> Option<Vec<String>> {
    let expression = request.get("ProjectionExpression")?.as_str()?;
    let names = request.get("ExpressionAttributeNames");
    Some(
        expression
            .split(',')
            .map(|path| {
                let top = path.trim().split(['.', '[']).next().unwrap_or_default();
                names.and_then(|n| n.get(top)).and_then(Value::as_str).unwrap_or(top).to_owned()
            })
            .collect(),
    )
}

fn project(image: &Image, names: Option<&[String]>) -> Image {
    match names {
        None => image.clone(),
        Some(names) => image.iter().filter(|(name, _)| names.contains(name)).map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sk: &str, version: u64) -> Image {
        json!({"PK": {"S": "SESSION#1"}, "SK": {"S": sk}, "version": {"N": version.to_string()}})
            .as_object()
            .cloned()
            .unwrap()
    }

    fn address(sk: &str) -> ItemAddress {
        ItemAddress { table: "t".into(), pk: "SESSION#1".into(), sk: sk.into() }
    }

    #[test]
    fn the_items_of_every_kind_of_write_are_found() {
        let transaction = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": item("TURN#1", 1)}},
            {"Update": {"TableName": "t", "Key": {"PK": {"S": "SESSION#1"}, "SK": {"S": "~META"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": {"PK": {"S": "SESSION#1"}, "SK": {"S": "X"}}}},
        ]});
        assert_eq!(written_items("TransactWriteItems", &transaction), Some(vec![address("TURN#1"), address("~META")]));
        let batch = json!({"RequestItems": {"t": [{"DeleteRequest": {"Key": item("A", 0)}}, {"PutRequest": {"Item": item("B", 0)}}]}});
        assert_eq!(written_items("BatchWriteItem", &batch), Some(vec![address("A"), address("B")]));
        assert_eq!(written_items("GetItem", &json!({})), None);
    }

    #[test]
    fn an_item_is_seen_as_it_was_before_its_first_write_after_the_time() {
        let mut history = History::default();
        history.record(address("~META"), None, 100, 1_000);
        history.record(address("~META"), Some(item("~META", 1)), 200, 1_000);
        assert_eq!(history.as_of(&address("~META"), 50), Some(None), "not there yet");
        assert_eq!(history.as_of(&address("~META"), 150), Some(Some(&item("~META", 1))));
        assert_eq!(history.as_of(&address("~META"), 200), None, "the current version");
        assert_eq!(history.as_of(&address("TURN#1"), 0), None);
    }

    #[test]
    fn a_stale_query_drops_what_is_new_and_ages_what_changed() {
        let mut history = History::default();
        history.record(address("TURN#2"), None, 100, 1_000);
        history.record(address("~META"), Some(item("~META", 1)), 100, 1_000);
        let request = json!({"TableName": "t"});
        let mut answer = json!({"Items": [item("~META", 2), item("TURN#2", 1), item("TURN#1", 1)], "Count": 3});
        assert!(age_answer(&history, "t", &request, &mut answer, 150, || 100));
        assert_eq!(answer["Items"], json!([item("~META", 1), item("TURN#1", 1)]));
        assert_eq!(answer["Count"], 2);
        let mut fresh = json!({"Items": [item("~META", 2)], "Count": 1});
        assert!(!age_answer(&history, "t", &request, &mut fresh, 150, || 0), "no lag: the current version");
    }

    #[test]
    fn a_stale_get_can_meet_a_deleted_item_and_keeps_its_projection() {
        let mut history = History::default();
        history.record(address("~META"), Some(item("~META", 3)), 100, 1_000);
        let request = json!({"TableName": "t", "Key": {"PK": {"S": "SESSION#1"}, "SK": {"S": "~META"}},
            "ProjectionExpression": "#v, PK", "ExpressionAttributeNames": {"#v": "version"}});
        let mut answer = json!({});
        assert!(age_answer(&history, "t", &request, &mut answer, 150, || 60));
        assert_eq!(answer["Item"], json!({"PK": {"S": "SESSION#1"}, "version": {"N": "3"}}));
    }

    #[test]
    fn only_plain_eventually_consistent_reads_may_be_stale() {
        assert_eq!(stale_table("GetItem", &json!({"TableName": "t"})), Some("t".into()));
        assert_eq!(stale_table("Query", &json!({"TableName": "t", "ConsistentRead": true})), None);
        assert_eq!(stale_table("Query", &json!({"TableName": "t", "IndexName": "GSI1"})), None);
        assert_eq!(stale_table("Scan", &json!({"TableName": "t"})), None);
    }
}
