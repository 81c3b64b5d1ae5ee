//! Deleting sessions, purging customers, and the receipts that prove a purge: the traits,
//! the items the procedures share, and their steps ([`erase`], [`ledger`], [`sweep`]).
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
//!    `requested_at`, `request_id`, the counts and its work item; then destroys the
//!    customer's data keys (`CUST#<customer_hash>` and, with several regions, each region's
//!    `CUST#<region>#<customer_hash>`, in the key table, `store/data_keys.rs`):
//!    from then on no copy of their content, in the table, its stream or any backup, opens,
//!    and a purge cut off after it is finished by the janitor, which knows the hash alone;
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
//! 5. destroys the data keys again, in case an append raced a new key into being (the
//!    janitor's finish of a purge too); with several regions, waits for the other regions'
//!    replicas to hold nothing of the customer ([`replicas`]: until then a retryable
//!    [`Error::PurgeReplicating`], the ledger left open); then, in one transaction, writes the receipt, which
//!    states when (`key_destroyed_at`), points `PRIVACY#<customer_hash> / RECEIPT` at it, and
//!    deletes the ledger and the work item.
//!
//! Repeating a purge is safe at any point: a cut-off purge's repeat (or the janitor) finishes
//! the job and answers with the same receipt id and exact counts; a repeat that finds nothing
//! left to delete answers the customer's last receipt, so a caller whose answer was lost gets
//! the receipt it missed. Only a purge that deletes something writes a new receipt.
use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{s, within, DynamoStore};
use crate::model::{Caller, Receipt};
use crate::{keys, Error};

mod erase;
mod ledger;
mod replicas;
mod sweep;

#[cfg(feature = "secrets")]
pub(crate) use replicas::replica_clients;

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
/// Reads of a session's META before a deletion gives up, when META keeps changing hands
/// between the read and the conditional delete.
const MAX_META_ATTEMPTS: u32 = 10;
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
    /// The sessions the purge deleted, whose partitions it reads in the other regions before
    /// its receipt ([`replicas`]).
    #[serde(default)]
    sessions: std::collections::BTreeSet<Uuid>,
    /// When a run of the purge last deleted something: the replication window starts there.
    #[serde(default)]
    swept_at: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_destroyed_at: Option<String>,
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
            key_destroyed_at: item.key_destroyed_at,
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

impl DynamoStore {
    /// Fails closed: a store whose configuration has no receipt salt names no customer.
    pub(crate) fn customer_hash(&self, customer_id: &str) -> Result<String, Error> {
        Ok(customer_hash(self.config.receipt_salt()?.expose(), customer_id))
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
}
