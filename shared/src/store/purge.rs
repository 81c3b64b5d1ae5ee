//! Deleting sessions, purging customers, and the receipts that prove a purge.
//!
//! # One procedure deletes a session, whoever asks
//! 1. A work item for the janitor (`store::janitor`) is written first, then a pending marker
//!    `PRIVACY#<customer_hash> / PENDING#<session_id>` (kept, with what earlier attempts
//!    recorded on it, when there is one), so that a deletion cut off half-way is finished by
//!    the janitor once overdue, or by the customer's next purge.
//! 2. META is deleted, on condition that the caller owns it (read first, to tell another
//!    owner's session from none), in one transaction with `meta_deleted` on the marker. Every
//!    write to a session (append, summary, metadata update) conditions on META existing, so
//!    from here on nothing can add an item to the session. When META is already gone, the
//!    session is claimed only through the caller's registry entry for it, or their own earlier
//!    deletion of its META (the marker): anyone else's DELETE deletes and counts nothing.
//! 3. The keys of everything else under the session's partition are read with a strongly
//!    consistent Query, newest first, their number recorded on the marker (unless an earlier
//!    attempt did), and deleted with BatchWriteItem, 25 at a time, every `UnprocessedItems`
//!    retried. The Query is repeated until it comes back empty, or finds a META: the id was
//!    created again, and what follows is the new session's.
//! 4. The registry entry goes, in a transaction that checks that no META exists (a create of
//!    the same id writes the entry again); then the marker, then the work item.
//!
//! # A purge
//! 1. writes its work item, then opens the customer's ledger (`PRIVACY#<customer_hash> /
//!    LEDGER`), or reopens the one a cut-off purge left: it keeps the receipt id,
//!    `requested_at`, `request_id`, the counts and its work item;
//! 2. lists the customer's sessions from their registry (`PRIVACY#<customer_hash> /
//!    SESSION#<id>`, written with META, removed only after every item of the session is
//!    gone), so sessions whose META expired or was removed by TTL are found too, and marks
//!    each one pending (guest sessions are never registered, so they are excepted). While
//!    the ledger is open no session of the customer can be created;
//! 3. runs the procedure above on every pending marker, a few sessions at a time; markers a
//!    cut-off purge or delete left behind are among them. Retiring a marker and adding its
//!    recorded counts to the ledger is one transaction, so each session is counted once, with
//!    every item its deletion removed, in whichever attempt;
//! 4. deletes the customer's long-term memory (`MEMORY#<customer_hash>`), each transaction of
//!    deletes also adding its count to the ledger's `memory_items_deleted`. Every session's
//!    META is gone by then, and a window's facts are written only while its META exists, so
//!    no fact can arrive after this step;
//! 5. writes the receipt, points `PRIVACY#<customer_hash> / RECEIPT` at it, deletes the ledger
//!    and the work item, in one transaction.
//!
//! Repeating a purge is safe at any point: a cut-off purge's repeat (or the janitor) finishes
//! the job and answers with the same receipt id and exact counts; a repeat that finds nothing
//! left to delete answers the customer's last receipt, so a caller whose answer was lost gets
//! the receipt it missed. Only a purge that deletes something writes a new receipt.
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, ReturnConsumedCapacity, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::janitor::Task;
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
        self.sweep_expired_with(self, session_id, owner).await
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
    /// Written by a purge that found the session in the customer's registry: the session is
    /// counted even when a cut-off attempt already deleted all of it.
    #[serde(default)]
    listed: bool,
    /// Set in the transaction that deleted the session's META: that deletion is counted, and
    /// claims the session for this customer, however often the deletion is cut off.
    #[serde(default)]
    meta_deleted: bool,
    /// The items left under the session's partition once its META was gone, recorded before
    /// the first of them was deleted: the count stays exact however often it is cut off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    children: Option<u64>,
    /// The work item of the first DELETE that began this deletion: whoever finishes it
    /// retires that item too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    work_sk: Option<String>,
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
    /// The janitor's work item for this purge, retired with the ledger.
    #[serde(default)]
    work_sk: Option<String>,
}

/// `PRIVACY#<customer_hash> / RECEIPT`: the customer's last receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LastReceiptItem {
    receipt_id: Uuid,
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
    /// No META, and nothing shows the session was the caller's (neither their registry nor
    /// their own earlier deletion of its META): nothing was deleted; what is left is the
    /// owner's, the TTL sweep's or the janitor's to delete.
    Unclaimed,
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
        let work = self.schedule(&Task::Session { session_id, customer_hash: Some(hash.clone()) }).await?;
        let marker = self.mark_pending(&hash, &session_id, Some(&work)).await?;
        let erased = self.erase_session(deleter, &hash, &session_id, Some(&marker)).await?;
        self.delete_pending(&hash, &session_id).await?;
        self.unschedule(&work).await?;
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

    /// [`CustomerPurger::purge_customer`], deleting through `deleter`.
    pub async fn purge_customer_with<D: BatchDeleter>(
        &self,
        deleter: &D,
        customer_id: &str,
        request_id: &str,
    ) -> Result<Receipt, Error> {
        let hash = self.customer_hash(customer_id)?;
        self.purge_by_hash(deleter, &hash, request_id).await
    }

    /// Runs an abandoned purge of the customer to its end (the janitor): `None` when no purge
    /// of theirs is open.
    pub(crate) async fn finish_purge(&self, hash: &str) -> Result<Option<Receipt>, Error> {
        match self.ledger(hash).await? {
            Some(ledger) => Ok(Some(self.purge_by_hash(self, hash, &ledger.request_id).await?)),
            None => Ok(None),
        }
    }

    /// The purge of the customer whose hash is `hash`.
    async fn purge_by_hash<D: BatchDeleter>(&self, deleter: &D, hash: &str, request_id: &str) -> Result<Receipt, Error> {
        let work = self.schedule(&Task::Purge { customer_hash: hash.to_owned() }).await?;
        let ledger = self.open_ledger(hash, request_id, &work).await?;
        if ledger.work_sk.as_deref() != Some(work.as_str()) {
            // An earlier run of this purge left its own work item, which the ledger names.
            self.unschedule(&work).await?;
        }
        let listed = self.registered_sessions(hash).await?;
        self.mark_listed(hash, &listed).await?;

        for _ in 0..MAX_PURGE_ROUNDS {
            let pending = self.pending(hash).await?;
            if pending.is_empty() {
                self.purge_memory_counted(hash, |deleted| self.count_memory_into_ledger(hash, deleted).map(Some)).await?;
                let receipt = self.close_ledger(hash, &ledger).await?;
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
                    let outcome = match self.erase_session(deleter, hash, &marker.session_id, Some(&marker)).await {
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

    /// Steps 2 and 3 of the procedure for the customer whose hash is `hash`: META (only if it
    /// is theirs), then everything else under the partition (only if the session is provably
    /// theirs), then the session's entry in their registry. With the session's pending
    /// `marker`, the deletion of META and the number of other items are recorded on it before
    /// anything is deleted, so that the counts stay exact across cut-off attempts.
    async fn erase_session<D: BatchDeleter>(
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

    /// What the TTL of a session's META leaves behind: every other item of the session, then
    /// its registry entry (for a signed-in owner), deleting through `deleter`. Safe to repeat.
    /// Returns the items deleted.
    pub async fn sweep_expired_with<D: BatchDeleter>(
        &self,
        deleter: &D,
        session_id: &Uuid,
        owner: Option<&str>,
    ) -> Result<u64, Error> {
        if self.read_meta(session_id, true, self.config.write_timeout).await?.is_some() {
            // The session lives (its META is back, or was never removed): nothing to sweep.
            return Ok(0);
        }
        let hash = owner.map(|owner| self.customer_hash(owner)).transpose()?;
        let work = self.schedule(&Task::Session { session_id: *session_id, customer_hash: hash.clone() }).await?;
        let deleted = self.sweep(deleter, session_id, None).await?;
        if let Some(hash) = &hash {
            self.unregister(hash, session_id).await?;
        }
        self.unschedule(&work).await?;
        tracing::info!(%session_id, items_deleted = deleted, "expired session swept");
        Ok(deleted)
    }

    /// Finishes a deletion or sweep that was cut off (the janitor): when the session's META is
    /// gone, every item left of it, its registry entry, and the pending marker `hash`'s
    /// deletion left (unless a purge of that customer is open: the purge retires and counts
    /// it). Returns the items deleted.
    pub(crate) async fn finish_session(&self, hash: Option<&str>, session_id: &Uuid) -> Result<u64, Error> {
        if self.read_meta(session_id, true, self.config.write_timeout).await?.is_some() {
            // Alive: the cut-off deletion never removed it, it was someone else's, or the id
            // was created again. An expired one is TTL's, whose removal starts a sweep.
            return Ok(0);
        }
        let deleted = self.sweep(self, session_id, None).await?;
        if let Some(hash) = hash {
            self.unregister(hash, session_id).await?;
            if self.ledger(hash).await?.is_none() {
                self.delete_pending(hash, session_id).await?;
            }
        }
        tracing::info!(%session_id, items_deleted = deleted, "the janitor finished a session's deletion");
        Ok(deleted)
    }

    /// Removes a session from its owner's registry, once nothing of it is left, and only while
    /// no META exists: an entry that a create of the same id wrote again is the new session's.
    async fn unregister(&self, hash: &str, session_id: &Uuid) -> Result<(), Error> {
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

    /// Deletes the session's META if it belongs to the customer whose hash is `hash`; with
    /// `marked`, in one transaction with `meta_deleted` on the session's pending marker.
    async fn take_meta(&self, hash: &str, session_id: &Uuid, marked: bool) -> Result<MetaOutcome, Error> {
        for _ in 0..MAX_TRANSACTION_ATTEMPTS {
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
                .update_expression("SET meta_deleted = :deleted")
                .expression_attribute_values(":deleted", AttributeValue::Bool(true))
                .build()
                .map_err(Error::unavailable)?;
            transaction = transaction.transact_items(TransactWriteItem::builder().update(record).build());
        }
        Ok(matches!(self.transact(transaction).await?, Transacted::Committed))
    }

    /// Deletes every item left under the session's partition, until a strongly consistent
    /// read finds none, or finds a META: a session created again with the same id, whose items
    /// are not this deletion's. With `recorder` (the customer hash of the session's pending
    /// marker), the number of items is recorded on the marker before the first is deleted, and
    /// the recorded number (an earlier, cut-off attempt's, if any) is returned; otherwise the
    /// number this call deleted.
    async fn sweep<D: BatchDeleter>(&self, deleter: &D, session_id: &Uuid, recorder: Option<&str>) -> Result<u64, Error> {
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

    /// Writes the session's pending marker, keeping what earlier attempts recorded on it: for a
    /// DELETE, with the work item of the first attempt (`work_sk` unless one is there); for a
    /// purge (`None`), marked as listed. Returns the marker as it now is.
    async fn mark_pending(&self, hash: &str, session_id: &Uuid, work_sk: Option<&str>) -> Result<PendingItem, Error> {
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

    /// Marks the sessions a purge found in the customer's registry, a few at a time.
    async fn mark_listed(&self, hash: &str, sessions: &[Uuid]) -> Result<(), Error> {
        let marked: Vec<Result<PendingItem, Error>> = futures::stream::iter(sessions.iter().copied())
            .map(|session_id| async move { self.mark_pending(hash, &session_id, None).await })
            .buffer_unordered(SESSIONS_IN_PARALLEL)
            .collect()
            .await;
        marked.into_iter().try_for_each(|m| m.map(|_| ()))
    }

    /// Every pending marker of the customer.
    async fn pending(&self, hash: &str) -> Result<Vec<PendingItem>, Error> {
        self.privacy_items(hash, keys::PENDING_PREFIX, None).await?.into_iter().map(from_item).collect()
    }

    /// Creates the customer's ledger, or returns the one a cut-off purge left, as it is.
    async fn open_ledger(&self, hash: &str, request_id: &str, work_sk: &str) -> Result<LedgerItem, Error> {
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::PURGE_LEDGER))
            .update_expression(
                "SET receipt_id = if_not_exists(receipt_id, :receipt_id), customer_hash = :hash, \
                 requested_at = if_not_exists(requested_at, :now), request_id = if_not_exists(request_id, :request_id), \
                 work_sk = if_not_exists(work_sk, :work_sk) \
                 ADD sessions_deleted :zero, items_deleted :zero, memory_items_deleted :zero",
            )
            .expression_attribute_values(":receipt_id", s(Uuid::new_v4().to_string()))
            .expression_attribute_values(":hash", s(hash))
            .expression_attribute_values(":now", s(clock::format(self.clock.now())))
            .expression_attribute_values(":request_id", s(request_id))
            .expression_attribute_values(":work_sk", s(work_sk))
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
        if let Some(work_sk) = &marker.work_sk {
            // The work item of a DELETE that was cut off: the purge finishes its job.
            self.unschedule(work_sk).await?;
        }
        if matches!(erased.meta, MetaOutcome::OtherOwner | MetaOutcome::Unclaimed) {
            // A marker a single deletion left for a session that is not provably the customer's.
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
        let retire = self
            .delete_of(keys::privacy_pk(hash), &keys::pending_sk(&marker.session_id))
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

    /// The customer's open ledger, if any.
    async fn ledger(&self, hash: &str) -> Result<Option<LedgerItem>, Error> {
        self.get_item(keys::privacy_pk(hash), keys::PURGE_LEDGER, true, self.config.write_timeout).await
    }

    /// Closes the ledger: writes the receipt, points the customer's last receipt at it,
    /// deletes the ledger and retires the purge's work item, in one transaction. A purge that
    /// deleted nothing writes no receipt when the customer has one: it answers that one, so a
    /// repeat of a purge whose answer was lost gets its receipt, with its counts. When a
    /// concurrent run of the same purge closed the ledger first, answers with that run's receipt.
    async fn close_ledger(&self, hash: &str, opened: &LedgerItem) -> Result<Receipt, Error> {
        let receipt_id = opened.receipt_id;
        let last: Option<LastReceiptItem> =
            self.get_item(keys::privacy_pk(hash), keys::LAST_RECEIPT, true, self.config.write_timeout).await?;
        if let Some(ledger) = self.ledger(hash).await?.filter(|l| l.receipt_id == receipt_id) {
            let close = self
                .delete_of(keys::privacy_pk(hash), keys::PURGE_LEDGER)
                .condition_expression("receipt_id = :receipt_id")
                .expression_attribute_values(":receipt_id", s(receipt_id.to_string()))
                .build()
                .map_err(Error::unavailable)?;
            let mut transaction =
                self.client.transact_write_items().transact_items(TransactWriteItem::builder().delete(close).build());
            if let Some(work_sk) = &ledger.work_sk {
                let retire = self.delete_of(keys::WORK_PK.to_owned(), work_sk).build().map_err(Error::unavailable)?;
                transaction = transaction.transact_items(TransactWriteItem::builder().delete(retire).build());
            }
            let nothing_deleted = ledger.sessions_deleted == 0 && ledger.items_deleted == 0 && ledger.memory_items_deleted == 0;
            let answered = match &last {
                Some(last) if nothing_deleted => last.receipt_id,
                _ => {
                    let receipt = ReceiptItem {
                        pk: keys::receipt_pk(&receipt_id),
                        sk: keys::RECEIPT.to_owned(),
                        receipt_id,
                        customer_hash: ledger.customer_hash,
                        requested_at: ledger.requested_at,
                        completed_at: clock::format(self.clock.now()),
                        sessions_deleted: ledger.sessions_deleted,
                        items_deleted: ledger.items_deleted,
                        memory_items_deleted: ledger.memory_items_deleted,
                        request_id: ledger.request_id,
                    };
                    let pointer = HashMap::from([
                        (keys::PK.to_owned(), s(keys::privacy_pk(hash))),
                        (keys::SK.to_owned(), s(keys::LAST_RECEIPT)),
                        ("receipt_id".to_owned(), s(receipt_id.to_string())),
                    ]);
                    let pointer = Put::builder().table_name(self.table()).set_item(Some(pointer)).build().map_err(Error::unavailable)?;
                    transaction = transaction
                        .transact_items(TransactWriteItem::builder().put(self.put_new(to_item(&receipt)?, false)?).build())
                        .transact_items(TransactWriteItem::builder().put(pointer).build());
                    receipt_id
                }
            };
            if let Transacted::Committed = self.transact(transaction).await? {
                if let Some(receipt) = self.get_receipt(&answered).await? {
                    return Ok(receipt);
                }
            }
        }
        // Closed by a concurrent run (or by this one, whose answer was lost): its receipt, or
        // the last one when it found nothing to delete.
        if let Some(receipt) = self.get_receipt(&receipt_id).await? {
            return Ok(receipt);
        }
        let last: Option<LastReceiptItem> =
            self.get_item(keys::privacy_pk(hash), keys::LAST_RECEIPT, true, self.config.write_timeout).await?;
        match last {
            Some(last) => self.get_receipt(&last.receipt_id).await?.ok_or_else(|| Error::Corrupt("the last receipt is missing".into())),
            None => Err(Error::Unavailable("the purge's ledger changed under it; repeat the purge".into())),
        }
    }

    /// A transaction's delete of the item `pk` / `sk`, to which conditions may be added.
    fn delete_of(&self, pk: String, sk: &str) -> aws_sdk_dynamodb::types::builders::DeleteBuilder {
        Delete::builder().table_name(self.table()).key(keys::PK, s(pk)).key(keys::SK, s(sk))
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
