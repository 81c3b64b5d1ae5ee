//! Writing a summary: the summary item, the latest-summary head and META's watermark in one
//! transaction, refused when the watermark has moved.

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use uuid::Uuid;

use crate::clock;
use crate::items::{LatestSummaryItem, MetaItem, SummaryItem};
use crate::{codec, keys, Error};

use super::{cancellation_reasons, condition_failed, failed_item, n, s, to_item, within};
use super::{DynamoStore, SummaryWriter};


/// The positions of a summary transaction.
mod summary_position {
    pub const LATEST: usize = 1;
    pub const META: usize = 2;
}

impl SummaryWriter for DynamoStore {
    async fn put_summary(&self, session_id: Uuid, through_turn: u64, text: &str) -> Result<bool, Error> {
        let now = clock::format(self.clock.now());
        let pk = keys::session_pk(&session_id);
        let compressed = codec::compress(text);
        // The window's history item is plain put: a repeat of the same window rewrites it.
        let history = SummaryItem {
            pk: pk.clone(),
            sk: keys::summary_sk(through_turn),
            through_turn,
            text: compressed.clone(),
            created_at: now.clone(),
        };
        let latest = LatestSummaryItem {
            pk: pk.clone(),
            sk: keys::LATEST_SUMMARY.to_owned(),
            through_turn,
            text: compressed,
            created_at: now,
        };
        let history = Put::builder().table_name(self.table()).set_item(Some(to_item(&history)?)).build().map_err(Error::unavailable)?;
        let latest = Put::builder()
            .table_name(self.table())
            .set_item(Some(to_item(&latest)?))
            .condition_expression("attribute_not_exists(PK) OR through_turn < :through")
            .expression_attribute_values(":through", n(through_turn))
            .build()
            .map_err(Error::unavailable)?;
        let meta_update = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::META))
            .update_expression("SET summarized_through = :through, needs_summary = :done, version = version + :one")
            .condition_expression("attribute_exists(PK) AND summarized_through < :through AND turn_count >= :through")
            .expression_attribute_values(":through", n(through_turn))
            .expression_attribute_values(":done", AttributeValue::Bool(false))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(history).build())
            .transact_items(TransactWriteItem::builder().put(latest).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let reasons = match within(self.config.write_timeout, transaction).await? {
            Ok(output) => {
                self.record(output.consumed_capacity());
                tracing::info!(%session_id, through_turn, "summary written");
                return Ok(true);
            }
            Err(e) => cancellation_reasons(e)?,
        };
        if condition_failed(&reasons, summary_position::META) {
            return match failed_item::<MetaItem>(&reasons, summary_position::META)? {
                None => {
                    tracing::info!(%session_id, through_turn, "session is gone; summary not written");
                    Ok(false)
                }
                Some(meta) if meta.summarized_through >= through_turn => {
                    tracing::info!(%session_id, through_turn, "summary already written");
                    Ok(false)
                }
                Some(meta) => Err(Error::Conflict(format!(
                    "a summary through turn {through_turn} was refused: the session has {} turns",
                    meta.turn_count
                ))),
            };
        }
        if condition_failed(&reasons, summary_position::LATEST) {
            return Err(Error::Corrupt(
                format!("the latest summary is past turn {through_turn} while the session's watermark is not").into(),
            ));
        }
        Err(Error::Unavailable("the summary write conflicted with another write".into()))
    }
}
