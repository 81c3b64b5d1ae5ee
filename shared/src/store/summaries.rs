//! What the summary consumer reads: a session's summary state and the turns no summary covers.
use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use uuid::Uuid;

use super::{from_item, record_version_epoch, n, s, within, DynamoStore};
use crate::chain::Chain;
use crate::items::TurnItem;
use crate::model::Turn;
use crate::{keys, Error};

/// A session's summary state, read consistently from META.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryState {
    pub session_id: Uuid,
    /// The signed-in customer who owns the session; `None` for a guest's, which gets no
    /// long-term memory.
    pub customer_id: Option<String>,
    pub turn_count: u64,
    pub summarized_through: u64,
    pub needs_summary: bool,
    /// The latest rolling summary, covering turns 1..=`summarized_through`.
    pub summary: Option<String>,
    pub expired: bool,
    /// Which item is each turn ([`crate::chain`]).
    pub chain: Chain,
}

/// Reads what a summary is made from (the stream consumer).
pub trait SummarySource {
    /// The session's summary state, or `None` when the session does not exist.
    fn summary_state(&self, session_id: Uuid) -> impl Future<Output = Result<Option<SummaryState>, Error>> + Send;

    /// Turns `after + 1 ..= through` of `chain`, oldest first; retracted turns are left out,
    /// so no summary or fact comes from a turn that was taken back, and so are turns the
    /// chain does not hold (an earlier home's, unmerged).
    fn turns_between(
        &self,
        session_id: Uuid,
        chain: &Chain,
        after: u64,
        through: u64,
    ) -> impl Future<Output = Result<Vec<Turn>, Error>> + Send;

    /// Clears a `needs_summary` flag that no full window justifies: only while the watermark
    /// is still `summarized_through` and the turn count is below `due_at`. Returns whether it
    /// cleared it.
    fn clear_summary_flag(
        &self,
        session_id: Uuid,
        summarized_through: u64,
        due_at: u64,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

impl SummarySource for DynamoStore {
    async fn summary_state(&self, session_id: Uuid) -> Result<Option<SummaryState>, Error> {
        let (Some(meta), summary) = self
            .read_head(&session_id, true, self.config.write_timeout)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(SummaryState {
            session_id,
            customer_id: (!meta.guest).then(|| meta.owner_id.clone()),
            turn_count: meta.turn_count,
            summarized_through: meta.summarized_through,
            needs_summary: meta.needs_summary,
            summary: summary
                .filter(|s| s.through_turn == meta.summarized_through)
                .map(|s| s.text),
            expired: meta.is_expired(self.clock.now_epoch_seconds()),
            chain: meta.chain(),
        }))
    }

    async fn turns_between(&self, session_id: Uuid, chain: &Chain, after: u64, through: u64) -> Result<Vec<Turn>, Error> {
        if through <= after {
            return Ok(Vec::new());
        }
        let mut turns = Vec::with_capacity((through - after).min(1_000) as usize);
        let mut next_index = after + 1;
        let mut start_key: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = within(
                self.config.write_timeout,
                self.client
                    .query()
                    .table_name(self.table())
                    .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :last")
                    .expression_attribute_values(":pk", s(keys::session_pk(&session_id)))
                    .expression_attribute_values(":first", s(keys::turn_sk(after + 1)))
                    .expression_attribute_values(":last", s(keys::turn_sk_bound(through)))
                    .consistent_read(true)
                    .set_exclusive_start_key(start_key.take())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send(),
            )
            .await?
            .map_err(Error::from_store)?;
            self.record(page.consumed_capacity().into_iter().cloned().collect::<Vec<_>>().as_slice());
            start_key = page.last_evaluated_key.filter(|k| !k.is_empty());
            let mut items = page.items.unwrap_or_default();
            Box::pin(self.open_items(&mut items)).await?;
            let mut gap = false;
            for item in items {
                let item = from_item::<TurnItem>(item)?;
                if !chain.holds(&item.sk, through) {
                    continue;
                }
                let turn = item.into_turn()?;
                if turn.turn_index != next_index {
                    gap = true;
                    break;
                }
                next_index += 1;
                if turn.retracted_at.is_none() {
                    turns.push(turn);
                }
            }
            if gap || start_key.is_none() {
                break;
            }
        }
        if next_index <= through {
            // No summary may claim a turn it did not read: after a failover, a turn of the
            // session's order the old home wrote may not have arrived here yet.
            tracing::warn!(%session_id, missing_turn = next_index, "a turn of the window is not here yet; the window waits");
            return Err(Error::Unavailable(format!("turn {next_index} of the window has not arrived").into()));
        }
        Ok(turns)
    }

    async fn clear_summary_flag(&self, session_id: Uuid, summarized_through: u64, due_at: u64) -> Result<bool, Error> {
        let mut set = vec!["needs_summary = :clear", "version = version + :one"];
        let mut values = HashMap::new();
        record_version_epoch(self.config.write_epoch()?, &mut set, &mut values);
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::session_pk(&session_id)))
            .key(keys::SK, s(keys::META))
            .update_expression(format!("SET {}", set.join(", ")))
            .set_expression_attribute_values(Some(values))
            .condition_expression(
                "attribute_exists(PK) AND needs_summary = :set AND summarized_through = :through AND turn_count < :due",
            )
            .expression_attribute_values(":clear", AttributeValue::Bool(false))
            .expression_attribute_values(":set", AttributeValue::Bool(true))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":through", n(summarized_through))
            .expression_attribute_values(":due", n(due_at))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, update).await? {
            Ok(output) => {
                self.record(output.consumed_capacity().into_iter().cloned().collect::<Vec<_>>().as_slice());
                tracing::info!(%session_id, summarized_through, "stale summary flag cleared");
                Ok(true)
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::from_store(e)),
        }
    }
}

impl DynamoStore {
    /// The runbook's re-drive (`make redrive`): every session whose summary is due and not
    /// written (a trigger that failed, was dropped, or sits in the DLQ) gets its
    /// `summary_rearm` flag flipped, which the stream filter matches, so the summariser is
    /// asked again. One Scan of the table and one small update per such session. Returns
    /// how many were re-armed.
    pub async fn rearm_due_summaries(&self) -> Result<u64, Error> {
        let mut rearmed = 0;
        let mut start = None;
        loop {
            let scan = self
                .client
                .scan()
                .table_name(self.table())
                .filter_expression("SK = :meta AND needs_summary = :due")
                .expression_attribute_values(":meta", s(keys::META))
                .expression_attribute_values(":due", AttributeValue::Bool(true))
                .projection_expression("PK, SK, summary_rearm")
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            let page = within(self.config.write_timeout, scan).await?.map_err(Error::from_store)?;
            self.record_read(page.consumed_capacity());
            for item in page.items() {
                let flag = item.get("summary_rearm").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
                let (Some(pk), Some(sk)) = (item.get(keys::PK), item.get(keys::SK)) else { continue };
                let update = self
                    .client
                    .update_item()
                    .table_name(self.table())
                    .key(keys::PK, pk.clone())
                    .key(keys::SK, sk.clone())
                    .update_expression("SET summary_rearm = :flipped")
                    .condition_expression("needs_summary = :due")
                    .expression_attribute_values(":flipped", AttributeValue::Bool(!flag))
                    .expression_attribute_values(":due", AttributeValue::Bool(true))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send();
                match within(self.config.write_timeout, update).await? {
                    Ok(output) => {
                        self.record_write(output.consumed_capacity());
                        rearmed += 1;
                    }
                    Err(SdkError::ServiceError(e)) if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) => {}
                    Err(e) => return Err(Error::from_store(e)),
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(rearmed);
            }
        }
    }
}
