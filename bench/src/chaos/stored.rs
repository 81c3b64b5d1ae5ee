//! What the table holds, read by a direct Scan that bypasses the fault proxy. Item keys are
//! read only through `tidewater::keys`: the `PK = SESSION#<id>` partition and the `TURN#`,
//! `RESP#` and `SUMMARY#` sort keys, so this follows the key scheme wherever it moves.
use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::items::ResponseItem;
use tidewater::keys;
use uuid::Uuid;

/// The items of one session partition.
#[derive(Debug, Default, Clone)]
pub struct Partition {
    pub items: usize,
    /// Turn indices of the `TURN#` items, ascending.
    pub turns: Vec<u64>,
    /// `RESP#` items: response id → the turn index it records.
    pub responses: HashMap<String, u64>,
    /// `through_turn` of the `SUMMARY#` items, ascending.
    pub summaries: Vec<u64>,
}

#[derive(Debug, Default)]
pub struct Table {
    pub sessions: HashMap<Uuid, Partition>,
    /// Items whose customer-index key names each customer.
    pub indexed_by_customer: HashMap<String, usize>,
    /// Every item, `PK SK` → its attributes, each written out: two regions hold the same item
    /// when these are equal.
    pub items: BTreeMap<String, BTreeMap<String, String>>,
}

impl Table {
    pub fn partition(&self, session: &Uuid) -> Partition {
        self.sessions.get(session).cloned().unwrap_or_default()
    }

    pub fn indexed_for(&self, customer: &str) -> usize {
        self.indexed_by_customer.get(&keys::customer_pk(customer)).copied().unwrap_or(0)
    }
}

pub async fn scan(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<Table, String> {
    let mut stored = Table::default();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| format!("scanning {table}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        for item in page.items.unwrap_or_default() {
            add(&mut stored, item)?;
        }
        start = page.last_evaluated_key.filter(|key| !key.is_empty());
        if start.is_none() {
            return Ok(stored);
        }
    }
}

/// `value` written out the same way whatever order its maps and sets arrive in (a map's
/// `Debug` follows its hash order, which differs from one map to the next).
fn canonical(value: &AttributeValue) -> String {
    let sorted = |mut items: Vec<String>| {
        items.sort();
        items
    };
    match value {
        AttributeValue::M(map) => {
            let entries: BTreeMap<&String, String> = map.iter().map(|(name, value)| (name, canonical(value))).collect();
            format!("M{entries:?}")
        }
        AttributeValue::L(list) => format!("L{:?}", list.iter().map(canonical).collect::<Vec<_>>()),
        AttributeValue::Ss(set) => format!("SS{:?}", sorted(set.clone())),
        AttributeValue::Ns(set) => format!("NS{:?}", sorted(set.clone())),
        AttributeValue::Bs(set) => format!("BS{:?}", sorted(set.iter().map(|blob| format!("{blob:?}")).collect())),
        other => format!("{other:?}"),
    }
}

fn add(stored: &mut Table, item: HashMap<String, AttributeValue>) -> Result<(), String> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let attributes = item.iter().map(|(name, value)| (name.clone(), canonical(value))).collect();
    stored.items.insert(format!("{} {}", text(keys::PK), text(keys::SK)), attributes);
    let index_key = text(keys::GSI1PK);
    if !index_key.is_empty() {
        *stored.indexed_by_customer.entry(index_key).or_default() += 1;
    }
    let Some(session) = keys::session_id_from_pk(&text(keys::PK)) else { return Ok(()) };
    let sort_key = text(keys::SK);
    let partition = stored.sessions.entry(session).or_default();
    partition.items += 1;
    if let Some(turn) = keys::turn_index_from_sk(&sort_key) {
        partition.turns.push(turn);
        partition.turns.sort_unstable();
    } else if let Some(response_id) = sort_key.strip_prefix(keys::RESPONSE_PREFIX) {
        let record: ResponseItem =
            serde_dynamo::from_item(item.clone()).map_err(|e| format!("{sort_key} of {session}: {e}"))?;
        partition.responses.insert(response_id.to_owned(), record.turn_index);
    } else if let Some(through) = sort_key.strip_prefix(keys::SUMMARY_PREFIX) {
        let through = through.parse().map_err(|_| format!("{sort_key} of {session} names no turn"))?;
        partition.summaries.push(through);
        partition.summaries.sort_unstable();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_written_out_the_same_whatever_its_order() {
        let entries = [("page", "/cart"), ("step", "3"), ("z", "1"), ("a", "2")];
        let forward: HashMap<String, AttributeValue> =
            entries.iter().map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned()))).collect();
        let backward: HashMap<String, AttributeValue> =
            entries.iter().rev().map(|(k, v)| ((*k).to_owned(), AttributeValue::S((*v).to_owned()))).collect();
        assert_eq!(canonical(&AttributeValue::M(forward)), canonical(&AttributeValue::M(backward)));
        let set = |items: [&str; 2]| AttributeValue::Ss(items.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(canonical(&set(["a", "b"])), canonical(&set(["b", "a"])));
    }
}
