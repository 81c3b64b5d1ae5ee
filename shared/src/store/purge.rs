//! Deleting sessions, purging customers, and the receipts that prove a purge.
//!
//! # One procedure deletes a session, whoever asks
//! 1. A pending marker `PRIVACY#<customer_hash> / PENDING#<session_id>` is written first, so
//!    that a deletion cut off half-way is found again by the customer's next purge (once
//!    META is gone the session is no longer in the customer index).
//! 2. META is deleted, on condition that the customer owns it. Every write to a session
//!    (append, summary, metadata update) conditions on META existing, so from here on
//!    nothing can add an item to the session.
//! 3. The keys of everything else under the session's partition are read
//!    with a strongly consistent Query and deleted with BatchWriteItem, 25 at a time,
//!    every `UnprocessedItems` retried. The Query is repeated until it comes back empty,
//!    which also catches items that committed just before META went away.
//! 4. The marker is retired.
//!
//! # A purge
//! 1. opens the customer's ledger (`PRIVACY#<customer_hash> / LEDGER`), or reopens the one a
//!    cut-off purge left: it keeps the receipt id, `requested_at`, `request_id` and the counts;
//! 2. lists the customer's sessions from their registry (`PRIVACY#<customer_hash> /
//!    SESSION#<id>`, written with META, removed only after every item of the session is
//!    gone), so sessions whose META expired or was removed by TTL are found too, and marks
//!    each one pending (guest sessions are never registered, so they are excepted). While
//!    the ledger is open no session of the customer can be created;
//! 3. runs the procedure above on every pending marker, a few sessions at a time; markers a
//!    cut-off purge or delete left behind are among them. Retiring a marker and adding its
//!    counts to the ledger is one transaction, so each session is counted once;
//! 4. deletes the customer's long-term memory (`MEMORY#<customer_hash>`), each transaction of
//!    deletes also adding its count to the ledger's `memory_items_deleted`. Every session's
//!    META is gone by then, and a window's facts are written only while its META exists, so
//!    no fact can arrive after this step;
//! 5. writes the receipt and deletes the ledger in one transaction.
//!
//! Repeating a purge is safe at any point: a cut-off purge's repeat finishes the job and
//! answers with the same receipt id; a repeat after a finished purge starts a new purge,
//! which finds nothing and answers with a new receipt that counts zero.
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, DeleteRequest, PutRequest, ReturnConsumedCapacity, ReturnValue, TransactWriteItem, Update, WriteRequest,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{from_item, n, s, to_item, within, DynamoStore};
use crate::model::{Caller, Receipt};
use crate::{clock, keys, Error};

/// Deletes a session (`DELETE /sessions/{id}`).
pub trait SessionDeleter {
    /// Deletes every item of the caller's session: META, turns, summaries and idempotency
    /// records. `Ok` also when there is no such session (any more); `NotFound` when it
    /// belongs to someone else.
    fn delete_session(&self, caller: &Caller, session_id: Uuid) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Purges a customer (`DELETE /customers/me`, `DELETE /customers/{id}`). The caller decides
/// who may purge whom; the store deletes every session of `customer_id` but guest sessions.
pub trait CustomerPurger {
    fn purge_customer(&self, customer_id: &str, request_id: &str) -> impl Future<Output = Result<Receipt, Error>> + Send;
}

/// Sweeps what DynamoDB's TTL left of a session when it removed the session's record (the
/// sweep-expired stream consumer).
pub trait ExpiredSessionSweeper {
    /// Deletes every item of the session, then its entry in `owner`'s registry. Does nothing
    /// while the session's record exists. Returns the items deleted.
    fn sweep_expired_session(
        &self,
        session_id: &Uuid,
        owner: Option<&str>,
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl ExpiredSessionSweeper for DynamoStore {
    async fn sweep_expired_session(&self, session_id: &Uuid, owner: Option<&str>) -> Result<u64, Error> {
        self.sweep_expired(session_id, owner).await
    }
}

/// Reads deletion receipts (`GET /receipts/{receipt_id}`).
pub trait ReceiptReader {
    /// The receipt, for the privacy role or the customer it belongs to; `NotFound` for anyone else.
    fn read_receipt(&self, caller: &Caller, receipt_id: Uuid) -> impl Future<Output = Result<Receipt, Error>> + Send;
}

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ItemKey {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
}

/// Deletes up to [`BATCH_LIMIT`] items in one batch, retrying whatever DynamoDB leaves
/// unprocessed. Deletions are generic over it so that a test can cut a purge off half-way;
/// [`DynamoStore`] is the one real implementation.
pub trait BatchDeleter: Sync {
    fn delete_batch(&self, keys: &[ItemKey]) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The most requests one BatchWriteItem takes.
pub const BATCH_LIMIT: usize = 25;
/// A batch whose unprocessed items have not drained after this many calls fails with 503.
const MAX_BATCH_ATTEMPTS: u32 = 8;
/// Sessions a purge deletes at once.
const SESSIONS_IN_PARALLEL: usize = 4;
/// A transaction that keeps colliding with another one on the ledger gives up after this many tries.
const MAX_TRANSACTION_ATTEMPTS: u32 = 10;
/// Rounds of "read the pending markers, delete their sessions" before a purge gives up.
/// One round is the norm; a marker written by a concurrent delete can make a second.
const MAX_PURGE_ROUNDS: u32 = 5;

/// `hex(SHA-256(salt + customer_id))`: how receipts and the privacy partition name a
/// customer. Check it by hand with `printf '%s%s' "$RECEIPT_SALT" "$CUSTOMER_ID" | sha256sum`.
pub fn customer_hash(salt: &str, customer_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(customer_id.as_bytes());
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `PRIVACY#<customer_hash> / PENDING#<session_id>`: a session whose deletion has begun.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    session_id: Uuid,
    /// Written by a purge that found the session in the customer index: the session is
    /// counted even when a cut-off attempt already deleted all of it.
    listed: bool,
}

/// `PRIVACY#<customer_hash> / LEDGER`: a purge in progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LedgerItem {
    receipt_id: Uuid,
    customer_hash: String,
    requested_at: String,
    request_id: String,
    sessions_deleted: u64,
    items_deleted: u64,
    #[serde(default)]
    memory_items_deleted: u64,
}

/// `RECEIPT#<receipt_id> / RECEIPT`: a finished purge. No ttl: receipts are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReceiptItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    receipt_id: Uuid,
    customer_hash: String,
    requested_at: String,
    completed_at: String,
    sessions_deleted: u64,
    items_deleted: u64,
    #[serde(default)]
    memory_items_deleted: u64,
    request_id: String,
}

impl From<ReceiptItem> for Receipt {
    fn from(item: ReceiptItem) -> Receipt {
        Receipt {
            receipt_id: item.receipt_id,
            customer_hash: item.customer_hash,
            requested_at: item.requested_at,
            completed_at: item.completed_at,
            sessions_deleted: item.sessions_deleted,
            items_deleted: item.items_deleted,
            memory_items_deleted: item.memory_items_deleted,
            request_id: item.request_id,
        }
    }
}

/// What deleting META found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaOutcome {
    Deleted,
    /// No META: the session never existed, or an earlier deletion removed it.
    Absent,
    /// Someone else's session: nothing was deleted.
    OtherOwner,
}

#[derive(Debug, Clone, Copy)]
struct Erased {
    meta: MetaOutcome,
    /// Items deleted, META included.
    items: u64,
}

/// How a transaction ended, once conflicts with concurrent transactions were retried.
pub(super) enum Transacted {
    Committed,
    ConditionFailed,
}

impl SessionDeleter for DynamoStore {
    async fn delete_session(&self, caller: &Caller, session_id: Uuid) -> Result<(), Error> {
        self.delete_session_with(self, caller, session_id).await
    }
}

impl CustomerPurger for DynamoStore {
    async fn purge_customer(&self, customer_id: &str, request_id: &str) -> Result<Receipt, Error> {
        self.purge_customer_with(self, customer_id, request_id).await
    }
}

impl ReceiptReader for DynamoStore {
    async fn read_receipt(&self, caller: &Caller, receipt_id: Uuid) -> Result<Receipt, Error> {
        let callers_hash = self.customer_hash(&caller.customer_id)?;
        let receipt = self.get_receipt(&receipt_id).await?.ok_or(Error::NotFound)?;
        if caller.is_privacy() || receipt.customer_hash == callers_hash {
            Ok(receipt)
        } else {
            Err(Error::NotFound)
        }
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
    /// Fails closed: a store whose configuration has no receipt salt names no customer.
    pub(crate) fn customer_hash(&self, customer_id: &str) -> Result<String, Error> {
        Ok(customer_hash(self.config.receipt_salt()?.expose(), customer_id))
    }

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

    /// [`CustomerPurger::purge_customer`], deleting through `deleter`.
    pub async fn purge_customer_with<D: BatchDeleter>(
        &self,
        deleter: &D,
        customer_id: &str,
        request_id: &str,
    ) -> Result<Receipt, Error> {
        let hash = self.customer_hash(customer_id)?;
        let ledger = self.open_ledger(&hash, request_id).await?;
        let listed = self.registered_sessions(&hash).await?;
        self.mark_listed(&hash, &listed).await?;

        let hash = &hash;
        for _ in 0..MAX_PURGE_ROUNDS {
            let pending = self.pending(hash).await?;
            if pending.is_empty() {
                self.purge_memory_counted(hash, |deleted| self.count_memory_into_ledger(hash, deleted).map(Some)).await?;
                let receipt = self.close_ledger(hash, &ledger.receipt_id).await?;
                tracing::info!(
                    receipt_id = %receipt.receipt_id,
                    sessions_deleted = receipt.sessions_deleted,
                    items_deleted = receipt.items_deleted,
                    memory_items_deleted = receipt.memory_items_deleted,
                    "customer purged"
                );
                return Ok(receipt);
            }
            // After a failure no new session starts, but those under way finish and are
            // counted, rather than being dropped with their requests in flight.
            let failed = &AtomicBool::new(false);
            let outcomes: Vec<Result<(), Error>> = futures::stream::iter(pending)
                .map(|marker| async move {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    let outcome = match self.erase_session(deleter, customer_id, &marker.session_id).await {
                        Ok(erased) => self.retire_into_ledger(hash, &marker, erased).await,
                        Err(e) => Err(e),
                    };
                    if outcome.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    outcome
                })
                .buffer_unordered(SESSIONS_IN_PARALLEL)
                .collect()
                .await;
            outcomes.into_iter().collect::<Result<(), Error>>()?;
        }
        Err(Error::Unavailable("sessions kept appearing while the purge ran; repeat it".into()))
    }

    /// Steps 2 and 3 of the procedure: META, then everything else under the partition, then
    /// the session's entry in the owner's registry.
    async fn erase_session<D: BatchDeleter>(&self, deleter: &D, owner: &str, session_id: &Uuid) -> Result<Erased, Error> {
        let meta = self.delete_meta(session_id, owner).await?;
        if meta == MetaOutcome::OtherOwner {
            return Ok(Erased { meta, items: 0 });
        }
        let children = self.sweep(deleter, session_id).await?;
        self.unregister(&self.customer_hash(owner)?, session_id).await?;
        Ok(Erased { meta, items: children + u64::from(meta == MetaOutcome::Deleted) })
    }

    /// What the TTL of a session's META leaves behind: every other item of the session, then
    /// its registry entry (for a signed-in owner). Safe to repeat. Returns the items deleted.
    async fn sweep_expired(&self, session_id: &Uuid, owner: Option<&str>) -> Result<u64, Error> {
        if self.read_meta(session_id, true, self.config.write_timeout).await?.is_some() {
            // The session lives (its META is back, or was never removed): nothing to sweep.
            return Ok(0);
        }
        let deleted = self.sweep(self, session_id).await?;
        if let Some(owner) = owner {
            self.unregister(&self.customer_hash(owner)?, session_id).await?;
        }
        tracing::info!(%session_id, items_deleted = deleted, "expired session swept");
        Ok(deleted)
    }

    /// Removes a session from its owner's registry, once nothing of it is left.
    async fn unregister(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
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

    /// Every session in the customer's registry: live, expired, or with only leftovers.
    async fn registered_sessions(&self, hash: &str) -> Result<Vec<Uuid>, Error> {
        let items = self.privacy_items(hash, keys::REGISTRY_PREFIX, Some("SK")).await?;
        items
            .iter()
            .map(|item| {
                let sk = item.get(keys::SK).and_then(|sk| sk.as_s().ok()).map(String::as_str).unwrap_or_default();
                let id = sk.strip_prefix(keys::REGISTRY_PREFIX).and_then(|id| Uuid::parse_str(id).ok());
                id.ok_or_else(|| Error::Corrupt(format!("bad registry key {sk:?}").into()))
            })
            .collect()
    }

    /// Every item of the customer's privacy partition whose sort key starts with `prefix`,
    /// every page, strongly consistent.
    async fn privacy_items(
        &self,
        hash: &str,
        prefix: &str,
        projection: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Error> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let query = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("PK = :pk AND begins_with(SK, :prefix)")
                .expression_attribute_values(":pk", s(keys::privacy_pk(hash)))
                .expression_attribute_values(":prefix", s(prefix))
                .set_projection_expression(projection.map(str::to_owned))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
            self.record_read(output.consumed_capacity());
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn delete_meta(&self, session_id: &Uuid, owner: &str) -> Result<MetaOutcome, Error> {
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
    async fn sweep<D: BatchDeleter>(&self, deleter: &D, session_id: &Uuid) -> Result<u64, Error> {
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
    async fn child_keys(&self, pk: &str) -> Result<Vec<ItemKey>, Error> {
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
    async fn write_batch(&self, mut requests: Vec<WriteRequest>) -> Result<(), Error> {
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

    fn pending_item(hash: &str, session_id: &Uuid, listed: bool) -> PendingItem {
        PendingItem { pk: keys::privacy_pk(hash), sk: keys::pending_sk(session_id), session_id: *session_id, listed }
    }

    /// The marker of a single deletion. One already there (a purge's) is left as it is.
    async fn put_pending(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
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

    async fn delete_pending(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
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

    /// Marks the sessions a purge found in the customer index, 25 to a batch.
    async fn mark_listed(&self, hash: &str, sessions: &[Uuid]) -> Result<(), Error> {
        for batch in sessions.chunks(BATCH_LIMIT) {
            let requests = batch
                .iter()
                .map(|session_id| {
                    let item = to_item(&Self::pending_item(hash, session_id, true))?;
                    let put = PutRequest::builder().set_item(Some(item)).build().map_err(Error::unavailable)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, Error>>()?;
            self.write_batch(requests).await?;
        }
        Ok(())
    }

    /// Every pending marker of the customer.
    async fn pending(&self, hash: &str) -> Result<Vec<PendingItem>, Error> {
        self.privacy_items(hash, keys::PENDING_PREFIX, None).await?.into_iter().map(from_item).collect()
    }

    /// Creates the customer's ledger, or returns the one a cut-off purge left, as it is.
    async fn open_ledger(&self, hash: &str, request_id: &str) -> Result<LedgerItem, Error> {
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::PURGE_LEDGER))
            .update_expression(
                "SET receipt_id = if_not_exists(receipt_id, :receipt_id), customer_hash = :hash, \
                 requested_at = if_not_exists(requested_at, :now), request_id = if_not_exists(request_id, :request_id) \
                 ADD sessions_deleted :zero, items_deleted :zero, memory_items_deleted :zero",
            )
            .expression_attribute_values(":receipt_id", s(Uuid::new_v4().to_string()))
            .expression_attribute_values(":hash", s(hash))
            .expression_attribute_values(":now", s(clock::format(self.clock.now())))
            .expression_attribute_values(":request_id", s(request_id))
            .expression_attribute_values(":zero", n(0))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, update).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        from_item(output.attributes.unwrap_or_default())
    }

    /// Step 4 of the procedure for a purge: the marker goes, and the ledger counts the
    /// session, in one transaction, so that a session is counted once however many purges
    /// run over it. A marker someone else retired first is not counted again.
    async fn retire_into_ledger(&self, hash: &str, marker: &PendingItem, erased: Erased) -> Result<(), Error> {
        if erased.meta == MetaOutcome::OtherOwner {
            // A marker a single deletion left for a session that is not the customer's.
            return self.delete_pending(hash, &marker.session_id).await;
        }
        let counted = marker.listed || erased.items > 0;
        let add = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::PURGE_LEDGER))
            .update_expression("ADD sessions_deleted :sessions, items_deleted :items")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":sessions", n(u64::from(counted)))
            .expression_attribute_values(":items", n(erased.items))
            .build()
            .map_err(Error::unavailable)?;
        let retire = Delete::builder()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::pending_sk(&marker.session_id)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(Error::unavailable)?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(add).build())
            .transact_items(TransactWriteItem::builder().delete(retire).build());
        match self.transact(transaction).await? {
            Transacted::Committed => Ok(()),
            // The marker or the ledger is already gone: a concurrent run finished first.
            Transacted::ConditionFailed => self.delete_pending(hash, &marker.session_id).await,
        }
    }

    /// Step 4's ledger update: `deleted` more memory items, while the ledger exists.
    fn count_memory_into_ledger(&self, hash: &str, deleted: u64) -> Result<Update, Error> {
        Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::PURGE_LEDGER))
            .update_expression("ADD memory_items_deleted :deleted")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":deleted", n(deleted))
            .build()
            .map_err(Error::unavailable)
    }

    /// Writes the receipt from the ledger and deletes the ledger, in one transaction. When
    /// a concurrent run of the same purge did it first, answers with that run's receipt.
    async fn close_ledger(&self, hash: &str, receipt_id: &Uuid) -> Result<Receipt, Error> {
        let ledger_key = || {
            HashMap::from([(keys::PK.to_owned(), s(keys::privacy_pk(hash))), (keys::SK.to_owned(), s(keys::PURGE_LEDGER))])
        };
        let ledger: Option<LedgerItem> =
            self.get_item(keys::privacy_pk(hash), keys::PURGE_LEDGER, true, self.config.write_timeout).await?;

        if let Some(ledger) = ledger.filter(|l| l.receipt_id == *receipt_id) {
            let receipt = ReceiptItem {
                pk: keys::receipt_pk(receipt_id),
                sk: keys::RECEIPT.to_owned(),
                receipt_id: *receipt_id,
                customer_hash: ledger.customer_hash,
                requested_at: ledger.requested_at,
                completed_at: clock::format(self.clock.now()),
                sessions_deleted: ledger.sessions_deleted,
                items_deleted: ledger.items_deleted,
                memory_items_deleted: ledger.memory_items_deleted,
                request_id: ledger.request_id,
            };
            let close = Delete::builder()
                .table_name(self.table())
                .set_key(Some(ledger_key()))
                .condition_expression("receipt_id = :receipt_id")
                .expression_attribute_values(":receipt_id", s(receipt_id.to_string()))
                .build()
                .map_err(Error::unavailable)?;
            let transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(self.put_new(to_item(&receipt)?, false)?).build())
                .transact_items(TransactWriteItem::builder().delete(close).build());
            if let Transacted::Committed = self.transact(transaction).await? {
                return Ok(receipt.into());
            }
        }
        self.get_receipt(receipt_id)
            .await?
            .ok_or_else(|| Error::Unavailable("the purge's ledger changed under it; repeat the purge".into()))
    }

    async fn get_receipt(&self, receipt_id: &Uuid) -> Result<Option<Receipt>, Error> {
        let receipt: Option<ReceiptItem> =
            self.get_item(keys::receipt_pk(receipt_id), keys::RECEIPT, true, self.config.write_timeout).await?;
        Ok(receipt.map(Receipt::from))
    }

    /// Sends a transaction, retrying it while it collides with another transaction on the
    /// same items (the ledger is shared by the sessions a purge deletes in parallel).
    pub(super) async fn transact(&self, transaction: TransactWriteItemsFluentBuilder) -> Result<Transacted, Error> {
        let transaction = transaction.return_consumed_capacity(ReturnConsumedCapacity::Total);
        for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
            match within(self.config.write_timeout, transaction.clone().send()).await? {
                Ok(output) => {
                    output.consumed_capacity().iter().for_each(|c| self.record_write(Some(c)));
                    return Ok(Transacted::Committed);
                }
                Err(e) => {
                    let reasons = super::cancellation_reasons(e)?;
                    if reasons.iter().any(|reason| reason.code() == Some("ConditionalCheckFailed")) {
                        return Ok(Transacted::ConditionFailed);
                    }
                }
            }
            tokio::time::sleep(super::backoff(attempt)).await;
        }
        Err(Error::Unavailable("a transaction kept conflicting with concurrent ones".into()))
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
    fn the_customer_hash_is_salted_sha256_in_hex() {
        // printf '%s%s' salt alice | sha256sum
        let hash = customer_hash("salt", "alice");
        assert_eq!(hash, "3baa379b47fbc36edfe4f8aa050d10d0c63d69e10e2f393ef568b995f8f83f57");
        assert_ne!(hash, customer_hash("other salt", "alice"));
        assert!(!hash.contains("alice"));
    }

    #[test]
    fn batch_backoff_stays_within_its_ceiling() {
        for attempt in 0..20 {
            let delay = batch_backoff(attempt);
            assert!(delay >= Duration::from_millis(25) && delay < Duration::from_millis(1_600), "{delay:?}");
        }
    }
}
