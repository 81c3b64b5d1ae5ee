//! Retracting the newest turn (`POST /sessions/{id}/turns/{index}/retract`): one transaction
//! that marks the turn retracted, while every later turn is retracted already and the
//! session's count has not moved. The turn keeps its index, its content and its response id.
use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{
    ConditionCheck, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use uuid::Uuid;

use super::{cancellation_reasons, record_version_epoch, condition_failed, failed_item, n, request_token, s, within, DynamoStore};
use crate::items::{self, MetaItem, TurnItem};
use crate::model::{Caller, Retracted};
use crate::{clock, keys, Error};

/// Takes back the newest turn of a session (the OpenAI Agents SDK's `pop_item`).
pub trait TurnRetractor {
    /// Retracts turn `turn_index` of the caller's session, only while it is the newest turn
    /// not yet retracted: every later turn is retracted and no append lands meanwhile (409
    /// otherwise, and for a turn a summary already covers). The turn is left out of every
    /// context from then on, stays in the export with `retracted_at`, and keeps its response
    /// id, so a retry of its append still answers `duplicate: true`. Retracting a retracted
    /// turn answers as the first retraction did; 404 for no such turn or session.
    fn retract_turn(
        &self,
        caller: &Caller,
        session_id: Uuid,
        turn_index: u64,
    ) -> impl Future<Output = Result<Retracted, Error>> + Send;
}

/// A transaction holds at most 100 items: the turn, META and the later turns checked.
pub const MAX_RETRACTED_TAIL: u64 = 98;

/// The positions of a retract transaction.
mod position {
    pub const TURN: usize = 0;
    pub const META: usize = 1;
    /// The later turns, from here on.
    pub const LATER: usize = 2;
}

impl TurnRetractor for DynamoStore {
    async fn retract_turn(&self, caller: &Caller, session_id: Uuid, turn_index: u64) -> Result<Retracted, Error> {
        let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?;
        let now_secs = self.clock.now_epoch_seconds();
        if meta.owner_id != caller.customer_id || meta.is_expired(now_secs) {
            return Err(Error::NotFound);
        }
        if turn_index == 0 || turn_index > meta.turn_count {
            return Err(Error::NotFound);
        }
        if turn_index <= meta.summarized_through {
            return Err(Error::Conflict(format!("turn {turn_index} is summarised already and cannot be retracted")));
        }
        if meta.turn_count - turn_index > MAX_RETRACTED_TAIL {
            return Err(Error::Conflict(format!("turn {turn_index} is not the newest turn")));
        }

        let pk = keys::session_pk(&session_id);
        let chain = meta.chain();
        let now = clock::format(self.clock.now());
        let turn = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(chain.turn_sk(turn_index)))
            .update_expression("SET retracted_at = :now")
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(retracted_at)")
            .expression_attribute_values(":now", s(&now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)?;
        // The version moves, so a cached context (ETag) is stale; the count does not.
        let mut set = vec!["version = version + :one", "retracted_turns = if_not_exists(retracted_turns, :zero) + :one"];
        let mut values = HashMap::from([
            (":one".to_owned(), n(1)),
            (":zero".to_owned(), n(0)),
            (":count".to_owned(), n(meta.turn_count)),
            (":owner".to_owned(), s(&caller.customer_id)),
            (":live_ttl".to_owned(), n(items::ttl_for_expiry(now_secs))),
            (":now_secs".to_owned(), n(now_secs)),
            (":index".to_owned(), n(turn_index)),
        ]);
        record_version_epoch(self.config.write_epoch()?, &mut set, &mut values);
        let meta_update = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::META))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(format!(
                "turn_count = :count AND owner_id = :owner AND {} \
                 AND (attribute_not_exists(summarized_through) OR summarized_through < :index)",
                items::LIVE_CONDITION
            ))
            .expression_attribute_names("#ttl", "ttl")
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)?;
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(turn).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build());
        for later in turn_index + 1..=meta.turn_count {
            let check = ConditionCheck::builder()
                .table_name(self.table())
                .key(keys::PK, s(&pk))
                .key(keys::SK, s(chain.turn_sk(later)))
                .condition_expression("attribute_exists(retracted_at)")
                .build()
                .map_err(Error::unavailable)?;
            transaction = transaction.transact_items(TransactWriteItem::builder().condition_check(check).build());
        }
        let sent = within(
            self.config.write_timeout,
            transaction
                .client_request_token(request_token(&[&pk, "retract", &turn_index.to_string(), &now]))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await?;
        let reasons = match sent {
            Ok(output) => {
                self.record(output.consumed_capacity());
                tracing::info!(%session_id, turn_index, "turn retracted");
                return Ok(Retracted { turn_index, retracted_at: now });
            }
            Err(e) => cancellation_reasons(e)?,
        };
        if condition_failed(&reasons, position::TURN) {
            // Retracted already (a retry of this retraction, or a concurrent one): answer as it did.
            let old: Option<TurnItem> = failed_item(&reasons, position::TURN)?;
            return match old {
                Some(TurnItem { retracted_at: Some(retracted_at), .. }) => Ok(Retracted { turn_index, retracted_at }),
                Some(_) => Err(Error::NotFound),
                // META counts it, yet its item is not here: after a failover, the old home's
                // turn has not arrived (or a deletion is running). Never 404 for a turn that is.
                None => Err(Error::Unavailable(format!("turn {turn_index} has not arrived in this region yet; retry").into())),
            };
        }
        if condition_failed(&reasons, position::META) {
            let old: MetaItem = failed_item(&reasons, position::META)?.ok_or(Error::NotFound)?;
            if old.owner_id != caller.customer_id || old.is_expired(self.clock.now_epoch_seconds()) {
                return Err(Error::NotFound);
            }
            return Err(Error::Conflict(format!("turn {turn_index} is no longer the newest turn")));
        }
        if (position::LATER..reasons.len()).any(|p| condition_failed(&reasons, p)) {
            return Err(Error::Conflict(format!("turn {turn_index} is not the newest turn")));
        }
        Err(Error::Unavailable("another write to this session was in flight; retry".into()))
    }
}
