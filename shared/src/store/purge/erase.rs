//! Erasing one session, whoever asks: the pending marker, META deleted on the owner's
//! condition, every other item of the partition deleted in batches, the marker retired.
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, ReturnConsumedCapacity, ReturnValue, WriteRequest};
use uuid::Uuid;

use crate::model::Caller;
use crate::store::{from_item, s, to_item, within, DynamoStore};
use crate::{keys, Error};

use super::{BatchDeleter, Erased, ItemKey, MetaOutcome, PendingItem, SessionDeleter};
use super::{BATCH_LIMIT, MAX_BATCH_ATTEMPTS};


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
        self.put_pending(&hash, &session_id).await?;
        let erased = self.erase_session(deleter, &caller.customer_id, &session_id).await?;
        self.delete_pending(&hash, &session_id).await?;
        tracing::info!(%session_id, meta = ?erased.meta, items_deleted = erased.items, "session deleted");
        match erased.meta {
            MetaOutcome::OtherOwner => Err(Error::NotFound),
            MetaOutcome::Deleted | MetaOutcome::Absent => Ok(()),
        }
    }

    /// Steps 2 and 3 of the procedure: META, then everything else under the partition, then
    /// the session's entry in the owner's registry.
    pub(super) async fn erase_session<D: BatchDeleter>(&self, deleter: &D, owner: &str, session_id: &Uuid) -> Result<Erased, Error> {
        let meta = self.delete_meta(session_id, owner).await?;
        if meta == MetaOutcome::OtherOwner {
            return Ok(Erased { meta, items: 0 });
        }
        let children = self.sweep(deleter, session_id).await?;
        self.unregister(&self.customer_hash(owner)?, session_id).await?;
        Ok(Erased { meta, items: children + u64::from(meta == MetaOutcome::Deleted) })
    }

    /// Removes a session from its owner's registry, once nothing of it is left.
    pub(super) async fn unregister(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
        let delete = self
            .client
            .delete_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::registry_sk(session_id)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, delete).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        Ok(())
    }

    pub(super) async fn delete_meta(&self, session_id: &Uuid, owner: &str) -> Result<MetaOutcome, Error> {
        let delete = self
            .client
            .delete_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::session_pk(session_id)))
            .key(keys::SK, s(keys::META))
            .condition_expression("attribute_not_exists(PK) OR owner_id = :owner")
            .expression_attribute_values(":owner", s(owner))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, delete).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                Ok(if output.attributes.is_some() { MetaOutcome::Deleted } else { MetaOutcome::Absent })
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) => {
                Ok(MetaOutcome::OtherOwner)
            }
            Err(e) => Err(Error::from_store(e)),
        }
    }

    /// Deletes every item left under the session's partition, until a strongly consistent
    /// read finds none.
    /// Each read starts from the top: what was deleted is gone, so it reads only what is left.
    pub(super) async fn sweep<D: BatchDeleter>(&self, deleter: &D, session_id: &Uuid) -> Result<u64, Error> {
        let pk = keys::session_pk(session_id);
        let mut deleted = 0;
        loop {
            let keys = self.child_keys(&pk).await?;
            if keys.is_empty() {
                return Ok(deleted);
            }
            for batch in keys.chunks(BATCH_LIMIT) {
                deleter.delete_batch(batch).await?;
                deleted += batch.len() as u64;
            }
        }
    }

    /// One page (up to 1 MB) of the keys under `pk`.
    pub(super) async fn child_keys(&self, pk: &str) -> Result<Vec<ItemKey>, Error> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(pk))
            .projection_expression("PK, SK")
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        output.items.unwrap_or_default().into_iter().map(from_item).collect()
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

    pub(super) fn pending_item(hash: &str, session_id: &Uuid, listed: bool) -> PendingItem {
        PendingItem { pk: keys::privacy_pk(hash), sk: keys::pending_sk(session_id), session_id: *session_id, listed }
    }

    /// The marker of a single deletion. One already there (a purge's) is left as it is.
    pub(super) async fn put_pending(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(to_item(&Self::pending_item(hash, session_id, false))?))
            .condition_expression("attribute_not_exists(PK)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, put).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                Ok(())
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => Ok(()),
            Err(e) => Err(Error::from_store(e)),
        }
    }

    pub(super) async fn delete_pending(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
        let delete = self
            .client
            .delete_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::pending_sk(session_id)))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, delete).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        Ok(())
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
