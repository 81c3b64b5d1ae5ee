//! Finding the turns no session's order holds after a failover ([`crate::chain`]): the
//! operator's report once an old home has come back, on AWS, where nothing lists what a
//! region had not replicated (`make unmerged`). A one-off batch job, so it pages through the
//! table with Scan, reading only keys and segments: no content.
use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{from_item, s, within, DynamoStore};
use crate::chain::{Chain, Segment};
use crate::{keys, Error};

/// One turn an old home acknowledged that its session's order does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmergedTurnKey {
    pub session_id: Uuid,
    pub turn_index: u64,
    /// The failover epoch it was written under.
    pub epoch: u64,
    /// The session's failover epoch now, whose turns the order holds from some index on.
    pub session_epoch: u64,
}

#[derive(Deserialize)]
struct Head {
    turn_count: u64,
    #[serde(default)]
    segments: Vec<Segment>,
}

impl DynamoStore {
    /// Every turn in the table that its session's chain does not hold: written under another
    /// epoch than the one the chain gives its index (past the count, the chain's last: a turn
    /// in flight there is not listed, an old home's is). Turns of sessions whose META is gone
    /// are not listed: they are being deleted.
    pub async fn unmerged_turns(&self) -> Result<Vec<UnmergedTurnKey>, Error> {
        let mut heads: HashMap<String, Head> = HashMap::new();
        let mut turns: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let scan = self
                .client
                .scan()
                .table_name(self.table())
                .filter_expression("begins_with(SK, :turn) OR SK = :meta")
                .projection_expression("PK, SK, turn_count, #segments")
                .expression_attribute_names("#segments", "segments")
                .expression_attribute_values(":turn", s(keys::TURN_PREFIX))
                .expression_attribute_values(":meta", s(keys::META))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            let page = within(self.config.write_timeout, scan).await?.map_err(Error::from_store)?;
            self.record_read(page.consumed_capacity());
            for item in page.items.unwrap_or_default() {
                let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                let (pk, sk) = (text(keys::PK), text(keys::SK));
                if sk == keys::META {
                    heads.insert(pk, from_item(item)?);
                } else if let Some(parts) = keys::turn_key_parts(&sk) {
                    turns.entry(pk).or_default().push(parts);
                }
            }
            start = page.last_evaluated_key.filter(|key| !key.is_empty());
            if start.is_none() {
                break;
            }
        }
        let mut unmerged = Vec::new();
        let map_epoch = self.config.write_epoch()?;
        for (pk, keys_of_turns) in turns {
            let (Some(head), Some(session_id)) = (heads.get(&pk), keys::session_id_from_pk(&pk)) else { continue };
            let chain = Chain::new(&head.segments);
            for (turn_index, epoch) in keys_of_turns {
                let past_count = turn_index > head.turn_count;
                if past_count && chain.late_past_count(epoch, map_epoch) || !past_count && chain.epoch_of(turn_index) != epoch {
                    unmerged.push(UnmergedTurnKey { session_id, turn_index, epoch, session_epoch: chain.last_epoch() });
                }
            }
        }
        Ok(unmerged)
    }
}
