//! What the table holds, read by a direct Scan that bypasses the fault proxy. Item keys are
//! read only through `tidewater::keys`: the `PK = SESSION#<id>` partition and the `TURN#`,
//! `RESP#` and `SUMMARY#` sort keys, so this follows the key scheme wherever it moves.
use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use tidewater::chain::Chain;
use tidewater::items::{MetaItem, ResponseItem};
use tidewater::keys;
use uuid::Uuid;

/// The items of one session partition.
#[derive(Debug, Default, Clone)]
pub struct Partition {
    pub items: usize,
    /// Turn indices of the `TURN#` items the session's chain holds, ascending.
    pub turns: Vec<u64>,
    /// `RESP#` items of those turns: response id → the turn index it records.
    pub responses: HashMap<String, u64>,
    /// Turns, and `RESP#` items, that an old home acknowledged and the chain does not hold
    /// (after a failover without fences, `tidewater::chain`): (index, epoch) and id → index.
    pub unmerged: Vec<(u64, u64)>,
    pub unmerged_responses: HashMap<String, u64>,
    /// Every `TURN#` key, (index, epoch), and every `RESP#` record, before they are told apart.
    pub(crate) turn_keys: Vec<(u64, u64)>,
    pub(crate) records: Vec<(String, ResponseItem)>,
    pub(crate) chain: Chain,
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
            stored.sessions.values_mut().for_each(Partition::tell_apart);
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

impl Partition {
    /// Sorts the turns and records read into the chain's and the unmerged.
    fn tell_apart(&mut self) {
        for (index, epoch) in std::mem::take(&mut self.turn_keys) {
            match self.chain.epoch_of(index) == epoch {
                true => self.turns.push(index),
                false => self.unmerged.push((index, epoch)),
            }
        }
        self.turns.sort_unstable();
        self.unmerged.sort_unstable();
        for (response_id, record) in std::mem::take(&mut self.records) {
            match self.chain.epoch_of(record.turn_index) == record.epoch {
                true => self.responses.insert(response_id, record.turn_index),
                false => self.unmerged_responses.insert(response_id, record.turn_index),
            };
        }
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
    if let Some(turn) = keys::turn_key_parts(&sort_key) {
        partition.turn_keys.push(turn);
    } else if let Some(response_id) = sort_key.strip_prefix(keys::RESPONSE_PREFIX) {
        let record: ResponseItem =
            serde_dynamo::from_item(item.clone()).map_err(|e| format!("{sort_key} of {session}: {e}"))?;
        partition.records.push((response_id.to_owned(), record));
    } else if sort_key == keys::META {
        let meta: MetaItem = serde_dynamo::from_item(item.clone()).map_err(|e| format!("META of {session}: {e}"))?;
        partition.chain = meta.chain();
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
