//! Erasing one session, whoever asks: the janitor's work item and the pending marker, META
//! deleted on the owner's condition, every other item of the partition counted and deleted in
//! batches, the registry entry while no META exists, the marker retired; and the janitor's
//! finishing of a deletion cut off.
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::builders::DeleteBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, ReturnConsumedCapacity, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use uuid::Uuid;

use crate::model::Caller;
use crate::store::janitor::Task;
use crate::store::transact::Transacted;
use crate::store::{from_item, n, s, to_item, within, DynamoStore};
use crate::{home, keys, Error};

use super::{BatchDeleter, Erased, ItemKey, MetaOutcome, PendingItem, SessionDeleter};
use super::{BATCH_LIMIT, MAX_BATCH_ATTEMPTS, MAX_META_ATTEMPTS};


impl SessionDeleter for DynamoStore {
    async fn delete_session(&self, caller: &Caller, session_id: Uuid) -> Result<(), Error> {
        self.delete_session_with(self, caller, session_id).await
    }
}

impl BatchDeleter for DynamoStore {
    async fn delete_batch(&self, keys: &[ItemKey]) -> Result<(), Error> {
        let requests = keys
            .iter()
            .map(|key| {
                let delete = DeleteRequest::builder().set_key(Some(to_item(key)?)).build().map_err(Error::unavailable)?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.write_batch(requests).await
    }
}

impl DynamoStore {
    /// [`SessionDeleter::delete_session`], deleting through `deleter`.
    pub async fn delete_session_with<D: BatchDeleter>(
        &self,
        deleter: &D,
        caller: &Caller,
        session_id: Uuid,
    ) -> Result<(), Error> {
        let hash = self.customer_hash(&caller.customer_id)?;
        let asker = home::Asker {
            customer_id: &caller.customer_id,
            guest: caller.is_guest(),
            staff: caller.is_support() || caller.is_privacy(),
        };
        let slot = home::session_request_slot(asker, &session_id);
        let work = self.schedule(&Task::Session { session_id, customer_hash: Some(hash.clone()) }, Some(slot)).await?;
        let marker = self.mark_pending(&hash, &session_id, Some(&work)).await?;
        let erased = self.erase_session(deleter, &hash, &session_id, Some(&marker)).await?;
        self.delete_pending(&hash, &session_id).await?;
        self.retire_session_work(&work).await?;
        if let Some(first) = marker.work_sk.as_deref().filter(|first| *first != work) {
            // A cut-off attempt's work item: this attempt finished its job.
            self.unschedule(first).await?;
        }
        tracing::info!(%session_id, meta = ?erased.meta, items_deleted = erased.items, "session deleted");
        match erased.meta {
            MetaOutcome::OtherOwner => Err(Error::NotFound),
            MetaOutcome::Deleted | MetaOutcome::Absent | MetaOutcome::Unclaimed => Ok(()),
        }
    }

    /// Steps 2 and 3 of the procedure for the customer whose hash is `hash`: META (only if it
    /// is theirs), then everything else under the partition (only if the session is provably
    /// theirs), then the session's entry in their registry. With the session's pending
    /// `marker`, the deletion of META and the number of other items are recorded on it before
    /// anything is deleted, so that the counts stay exact across cut-off attempts.
    pub(super) async fn erase_session<D: BatchDeleter>(
        &self,
        deleter: &D,
        hash: &str,
        session_id: &Uuid,
        marker: Option<&PendingItem>,
    ) -> Result<Erased, Error> {
        let meta = self.take_meta(hash, session_id, marker.is_some()).await?;
        let deleted_earlier = marker.is_some_and(|m| m.meta_deleted);
        match meta {
            MetaOutcome::OtherOwner | MetaOutcome::Unclaimed => return Ok(Erased { meta, items: 0 }),
            MetaOutcome::Absent if !deleted_earlier && !self.is_registered(hash, session_id).await? => {
                return Ok(Erased { meta: MetaOutcome::Unclaimed, items: 0 });
            }
            MetaOutcome::Absent | MetaOutcome::Deleted => {}
        }
        let recorder = marker.map(|_| hash);
        let children = self.sweep(deleter, session_id, recorder).await?;
        self.unregister(hash, session_id).await?;
        let meta_counted = meta == MetaOutcome::Deleted || deleted_earlier;
        Ok(Erased { meta, items: children + u64::from(meta_counted) })
    }

    /// Finishes a deletion or sweep that was cut off (the janitor): when the session's META is
    /// gone, every item left of it, its registry entry, and the pending marker `hash`'s
    /// deletion left (unless a purge of that customer is open: the purge retires and counts
    /// it). Returns the items deleted.
    pub(crate) async fn finish_session(&self, hash: Option<&str>, session_id: &Uuid) -> Result<u64, Error> {
        if self.read_meta(session_id, true, self.config.write_timeout).await?.is_some() {
            // Alive: the cut-off deletion never removed it, it was someone else's, or the id
            // was created again. An expired one is TTL's, whose removal starts a sweep. The
            // cut-off deletion's marker goes all the same: nothing else would ever remove it.
            if let Some(hash) = hash {
                self.retire_abandoned_marker(hash, session_id).await?;
            }
            return Ok(0);
        }
        let deleted = self.sweep(self, session_id, None).await?;
        if let Some(hash) = hash {
            self.unregister(hash, session_id).await?;
            self.retire_abandoned_marker(hash, session_id).await?;
        }
        tracing::info!(%session_id, items_deleted = deleted, "the janitor finished a session's deletion");
        Ok(deleted)
    }

    /// Deletes the pending marker a cut-off DELETE left, unless a purge of the customer is
    /// open or has listed the session: that purge retires and counts it.
    async fn retire_abandoned_marker(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
        if self.ledger(hash).await?.is_some() {
            return Ok(());
        }
        self.delete_marker(hash, session_id, true).await
    }

    /// Deletes the session's META if it belongs to the customer whose hash is `hash`; with
    /// `marked`, in one transaction with `meta_deleted` on the session's pending marker.
    async fn take_meta(&self, hash: &str, session_id: &Uuid, marked: bool) -> Result<MetaOutcome, Error> {
        for _ in 0..MAX_META_ATTEMPTS {
            let Some(meta) = self.read_meta(session_id, true, self.config.write_timeout).await? else {
                return Ok(MetaOutcome::Absent);
            };
            if self.customer_hash(&meta.owner_id)? != hash {
                return Ok(MetaOutcome::OtherOwner);
            }
            if self.delete_meta(hash, session_id, &meta.owner_id, marked).await? {
                return Ok(MetaOutcome::Deleted);
            }
            // META went away or changed hands since it was read: read it again.
        }
        Err(Error::Unavailable("the session's record kept changing while it was deleted".into()))
    }

    /// Deletes META on condition that `owner` owns it; `false` when that condition failed.
    async fn delete_meta(&self, hash: &str, session_id: &Uuid, owner: &str, marked: bool) -> Result<bool, Error> {
        let delete = self
            .delete_of(keys::session_pk(session_id), keys::META)
            .condition_expression("owner_id = :owner")
            .expression_attribute_values(":owner", s(owner))
            .build()
            .map_err(Error::unavailable)?;
        let mut transaction = self.client.transact_write_items().transact_items(TransactWriteItem::builder().delete(delete).build());
        if marked {
            let record = Update::builder()
                .table_name(self.table())
                .key(keys::PK, s(keys::privacy_pk(hash)))
                .key(keys::SK, s(keys::pending_sk(session_id)))
                // A count recorded before is an earlier session's with this id (one is recorded
                // only once META is gone): this deletion counts what it finds. `session_id`
                // keeps the marker whole should a concurrent finisher have removed it.
                .update_expression("SET meta_deleted = :deleted, session_id = :id REMOVE children")
                .expression_attribute_values(":deleted", AttributeValue::Bool(true))
                .expression_attribute_values(":id", s(session_id.to_string()))
                .build()
                .map_err(Error::unavailable)?;
            transaction = transaction.transact_items(TransactWriteItem::builder().update(record).build());
        }
        Ok(matches!(self.transact(transaction).await?, Transacted::Committed))
    }

    /// Removes a session from its owner's registry, once nothing of it is left, and only while
    /// no META exists: an entry that a create of the same id wrote again is the new session's.
    pub(super) async fn unregister(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
        let no_session = ConditionCheck::builder()
            .table_name(self.table())
            .key(keys::PK, s(keys::session_pk(session_id)))
            .key(keys::SK, s(keys::META))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(Error::unavailable)?;
        let delete = self.delete_of(keys::privacy_pk(hash), &keys::registry_sk(session_id)).build().map_err(Error::unavailable)?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(no_session).build())
            .transact_items(TransactWriteItem::builder().delete(delete).build());
        match self.transact(transaction).await? {
            Transacted::Committed => Ok(()),
            Transacted::ConditionFailed => {
                tracing::info!(%session_id, "a session with this id exists again; its registry entry stays");
                Ok(())
            }
        }
    }

    /// Whether the customer's registry holds the session.
    async fn is_registered(&self, hash: &str, session_id: &Uuid) -> Result<bool, Error> {
        let entry: Option<ItemKey> =
            self.get_item(keys::privacy_pk(hash), &keys::registry_sk(session_id), true, self.config.write_timeout).await?;
        Ok(entry.is_some())
    }

    /// Deletes every item left under the session's partition, until a strongly consistent
    /// read finds none, or finds a META: a session created again with the same id, whose items
    /// are not this deletion's. With `recorder` (the customer hash of the session's pending
    /// marker), the number of items is recorded on the marker before the first is deleted, and
    /// the recorded number (an earlier, cut-off attempt's, if any) is returned; otherwise the
    /// number this call deleted.
    pub(super) async fn sweep<D: BatchDeleter>(&self, deleter: &D, session_id: &Uuid, recorder: Option<&str>) -> Result<u64, Error> {
        let pk = keys::session_pk(session_id);
        let Some(mut keys) = self.keys_left(&pk).await? else {
            return Ok(0);
        };
        let recorded = match recorder {
            Some(hash) => Some(self.record_children(hash, session_id, keys.len() as u64).await?),
            None => None,
        };
        let mut deleted = 0;
        while !keys.is_empty() {
            for batch in keys.chunks(BATCH_LIMIT) {
                deleter.delete_batch(batch).await?;
                deleted += batch.len() as u64;
            }
            // What was deleted is gone, so each read returns only what is left.
            keys = self.keys_left(&pk).await?.unwrap_or_default();
        }
        Ok(recorded.unwrap_or(deleted))
    }

    /// The keys of every item under `pk`, every page, strongly consistent; `None` when a META
    /// is among them. Read newest first, so the head (`~SUMMARY`, `~META`) comes first.
    async fn keys_left(&self, pk: &str) -> Result<Option<Vec<ItemKey>>, Error> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(pk))
                .projection_expression("PK, SK")
                .scan_index_forward(false)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
            self.record_read(output.consumed_capacity());
            for item in output.items.unwrap_or_default() {
                let key: ItemKey = from_item(item)?;
                if key.sk == keys::META {
                    return Ok(None);
                }
                keys.push(key);
            }
            start = output.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return Ok(Some(keys));
            }
        }
    }

    /// Records on the session's pending marker how many items its deletion finds once META is
    /// gone, unless an earlier attempt did; returns the recorded number.
    async fn record_children(&self, hash: &str, session_id: &Uuid, found: u64) -> Result<u64, Error> {
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::pending_sk(session_id)))
            .update_expression("SET children = if_not_exists(children, :found)")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":found", n(found))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, update).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                let marker: PendingItem = from_item(output.attributes.unwrap_or_default())?;
                Ok(marker.children.unwrap_or(found))
            }
            // A concurrent run retired the marker: it has counted the session.
            Err(SdkError::ServiceError(e)) if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) => Ok(0),
            Err(e) => Err(Error::from_store(e)),
        }
    }

    /// One BatchWriteItem of up to 25 requests, then its `UnprocessedItems` again, with
    /// backoff, until none are left.
    pub(super) async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), Error> {
        if requests.len() > BATCH_LIMIT {
            return Err(Error::Validation(format!("a batch takes at most {BATCH_LIMIT} requests")));
        }
        for attempt in 0..MAX_BATCH_ATTEMPTS {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(batch_backoff(attempt)).await;
            }
            let call = self
                .client
                .batch_write_item()
                .request_items(self.table(), std::mem::take(&mut requests))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            let output = within(self.config.write_timeout, call).await?.map_err(Error::from_store)?;
            output.consumed_capacity().iter().for_each(|c| self.record_write(Some(c)));
            requests = output.unprocessed_items.and_then(|mut left| left.remove(self.table())).unwrap_or_default();
        }
        if requests.is_empty() {
            return Ok(());
        }
        Err(Error::Unavailable(
            format!("{} batch writes were still unprocessed after {MAX_BATCH_ATTEMPTS} attempts", requests.len()).into(),
        ))
    }

    /// Writes the session's pending marker, keeping what earlier attempts recorded on it: for a
    /// DELETE, with the work item of the first attempt (`work_sk` unless one is there); for a
    /// purge (`None`), marked as listed. Returns the marker as it now is.
    pub(super) async fn mark_pending(&self, hash: &str, session_id: &Uuid, work_sk: Option<&str>) -> Result<PendingItem, Error> {
        let mut update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::pending_sk(session_id)))
            .expression_attribute_values(":id", s(session_id.to_string()))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        update = match work_sk {
            Some(work_sk) => update
                .update_expression("SET session_id = :id, work_sk = if_not_exists(work_sk, :work_sk)")
                .expression_attribute_values(":work_sk", s(work_sk)),
            None => update
                .update_expression("SET session_id = :id, listed = :listed")
                .expression_attribute_values(":listed", AttributeValue::Bool(true)),
        };
        let output = within(self.config.write_timeout, update.send()).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        from_item(output.attributes.unwrap_or_default())
    }

    pub(super) async fn delete_pending(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
        self.delete_marker(hash, session_id, false).await
    }

    /// Deletes the session's pending marker; with `unless_listed`, only if no purge listed it.
    async fn delete_marker(&self, hash: &str, session_id: &Uuid, unless_listed: bool) -> Result<(), Error> {
        let mut delete = self
            .client
            .delete_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::pending_sk(session_id)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if unless_listed {
            delete = delete
                .condition_expression("attribute_not_exists(listed) OR listed = :no")
                .expression_attribute_values(":no", AttributeValue::Bool(false));
        }
        match within(self.config.write_timeout, delete.send()).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                Ok(())
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
            Err(e) => Err(Error::from_store(e)),
        }
    }

    /// A transaction's delete of the item `pk` / `sk`, to which conditions may be added.
    pub(super) fn delete_of(&self, pk: String, sk: &str) -> DeleteBuilder {
        Delete::builder().table_name(self.table()).key(keys::PK, s(pk)).key(keys::SK, s(sk))
    }
}

/// 50 ms, doubling to a 1.6 s ceiling, with jitter: unprocessed items mean throttling.
fn batch_backoff(attempt: u32) -> Duration {
    let ceiling_ms = 50u64 << attempt.min(5);
    let jitter = Uuid::new_v4().as_u128() as u64 % (ceiling_ms / 2);
    Duration::from_millis(ceiling_ms / 2 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_backoff_stays_within_its_ceiling() {
        for attempt in 0..20 {
            let delay = batch_backoff(attempt);
            assert!(delay >= Duration::from_millis(25) && delay < Duration::from_millis(1_600), "{delay:?}");
        }
    }
}
