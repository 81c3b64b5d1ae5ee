//! Writing a summary: the summary item, the latest-summary head and META's watermark in one
//! transaction, refused when the watermark has moved; it leaves a next window that is already
//! due flagged, and starts the re-arm afresh.

use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use uuid::Uuid;

use crate::clock;
use std::collections::HashMap;

use crate::items::{LatestSummaryItem, MetaItem, SummaryItem};
use crate::{codec, keys, Error};

use super::{cancellation_reasons, record_version_epoch, condition_failed, failed_item, n, s, to_item, within};
use super::sealing::seal_item;
use super::{DynamoStore, SummaryWriter};
use crate::crypto::DataKey;

/// The positions of a summary transaction.
mod summary_position {
    pub const LATEST: usize = 1;
    pub const META: usize = 2;
}

impl SummaryWriter for DynamoStore {
    async fn put_summary(&self, session_id: Uuid, through_turn: u64, text: &str) -> Result<bool, Error> {
        let now = clock::format(self.clock.now());
        let compressed = codec::compress(text);
        // The next window may already be due: then the flag stays set, so `make redrive`
        // finds it and the re-arm fires ten appends on. Which holds is known only from META,
        // so the first attempt assumes the usual case and a refusal tells the other.
        let mut next_due = false;
        // The session's owner names the key the summary is sealed under.
        let Some(meta) = self.read_meta(&session_id, false, self.config.write_timeout).await? else {
            tracing::info!(%session_id, through_turn, "session is gone; summary not written");
            return Ok(false);
        };
        // The key the session's turns are sealed under, made only for a live session.
        let key_ref = self.session_key_ref(&meta)?;
        let key = match &key_ref {
            Some(key_ref) => match Box::pin(self.key_for_session(key_ref, &session_id, |_| true)).await? {
                Some(key) => Some(key),
                None => {
                    tracing::info!(%session_id, through_turn, "session is gone; summary not written");
                    return Ok(false);
                }
            },
            None => None,
        };
        let seal = key_ref.as_deref().zip(key.as_deref());
        let window = Window { through_turn, epoch: meta.chain().epoch_of(through_turn) };
        for _ in 0..MAX_SUMMARY_ATTEMPTS {
            let transaction = self.summary_transaction(&session_id, window, &compressed, &now, next_due, seal)?;
            let reasons = match within(self.config.write_timeout, transaction.send()).await? {
                Ok(output) => {
                    self.record(output.consumed_capacity());
                    tracing::info!(%session_id, through_turn, next_due, "summary written");
                    return Ok(true);
                }
                Err(e) => cancellation_reasons(e)?,
            };
            if condition_failed(&reasons, summary_position::META) {
                match failed_item::<MetaItem>(&reasons, summary_position::META)? {
                    None => {
                        tracing::info!(%session_id, through_turn, "session is gone; summary not written");
                        return Ok(false);
                    }
                    Some(meta) if meta.summarized_through >= through_turn => {
                        tracing::info!(%session_id, through_turn, "summary already written");
                        return Ok(false);
                    }
                    Some(meta) if meta.turn_count < through_turn => {
                        return Err(Error::Conflict(format!(
                            "a summary through turn {through_turn} was refused: the session has {} turns",
                            meta.turn_count
                        )))
                    }
                    Some(meta) => {
                        next_due = meta.turn_count >= self.config.summary_due_at(through_turn);
                        continue;
                    }
                }
            }
            if condition_failed(&reasons, summary_position::LATEST) {
                return Err(Error::Corrupt(
                    format!("the latest summary is past turn {through_turn} while the session's watermark is not").into(),
                ));
            }
            return Err(Error::Unavailable("the summary write conflicted with another write".into()));
        }
        Err(Error::Unavailable("the session kept changing during the summary write".into()))
    }
}

/// The window a summary covers: through which turn, and that turn's failover epoch.
#[derive(Clone, Copy)]
struct Window {
    through_turn: u64,
    epoch: u64,
}

/// A summary write refused only because the next window's state changed under it is tried
/// again, this many times in all.
const MAX_SUMMARY_ATTEMPTS: u32 = 3;

impl DynamoStore {
    /// One transaction: the window's summary item, the latest summary, and META's watermark
    /// moved to `through_turn`. The flag stays set when `next_due` (the next window is due
    /// already; the condition checks it) and is cleared otherwise; the re-arm starts afresh.
    fn summary_transaction(
        &self,
        session_id: &Uuid,
        Window { through_turn, epoch }: Window,
        compressed: &[u8],
        now: &str,
        next_due: bool,
        seal: Option<(&str, &DataKey)>,
    ) -> Result<TransactWriteItemsFluentBuilder, Error> {
        let pk = keys::session_pk(session_id);
        // The window's history item is plain put: a repeat of the same window rewrites it.
        let history = SummaryItem {
            pk: pk.clone(),
            sk: keys::summary_sk(through_turn),
            through_turn,
            text: compressed.to_vec(),
            created_at: now.to_owned(),
            epoch,
        };
        let latest = LatestSummaryItem {
            pk: pk.clone(),
            sk: keys::LATEST_SUMMARY.to_owned(),
            through_turn,
            text: compressed.to_vec(),
            created_at: now.to_owned(),
            epoch,
        };
        let (mut history, mut latest) = (to_item(&history)?, to_item(&latest)?);
        if let Some((key_ref, key)) = seal {
            seal_item(&mut history, key_ref, key)?;
            seal_item(&mut latest, key_ref, key)?;
        }
        let history = Put::builder().table_name(self.table()).set_item(Some(history)).build().map_err(Error::unavailable)?;
        let latest = Put::builder()
            .table_name(self.table())
            .set_item(Some(latest))
            // An old home's summary of turns a failover left unmerged is made under an
            // earlier epoch: the new home's replaces it, whatever it covers.
            .condition_expression(
                "attribute_not_exists(PK) OR through_turn < :through OR epoch < :epoch OR (attribute_not_exists(epoch) AND :epoch > :zero)",
            )
            .expression_attribute_values(":through", n(through_turn))
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(":zero", n(0))
            .build()
            .map_err(Error::unavailable)?;
        let next_window = if next_due { "turn_count >= :next_due" } else { "turn_count < :next_due" };
        let mut set = vec!["summarized_through = :through", "needs_summary = :due", "summary_rearm = :rearm", "version = version + :one"];
        let mut values = HashMap::new();
        record_version_epoch(self.config.write_epoch()?, &mut set, &mut values);
        let meta_update = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::META))
            .update_expression(format!("SET {}", set.join(", ")))
            .set_expression_attribute_values(Some(values))
            .condition_expression(format!(
                "attribute_exists(PK) AND summarized_through < :through AND turn_count >= :through AND {next_window}"
            ))
            .expression_attribute_values(":through", n(through_turn))
            .expression_attribute_values(":next_due", n(self.config.summary_due_at(through_turn)))
            .expression_attribute_values(":due", AttributeValue::Bool(next_due))
            .expression_attribute_values(":rearm", AttributeValue::Bool(false))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)?;
        Ok(self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(history).build())
            .transact_items(TransactWriteItem::builder().put(latest).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total))
    }
}
