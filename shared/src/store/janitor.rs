//! The janitor: finishes, within a bounded time, what a destructive operation cut off half-way
//! left behind, without a Scan.
//!
//! # The work partition
//! Every destructive operation that takes more than one write records its intent first, in
//! one small partition: `PK = JANITOR`, `SK = DUE#<epoch seconds>#<task>`, due
//! [`JANITOR_GRACE_SECONDS`] after it starts, and deletes it once it has finished:
//! - a DELETE of a session, and a TTL sweep: `SESSION#<id>`, with the hash of the customer
//!   whose pending marker and registry entry name the session;
//! - a purge: `PURGE#<customer_hash>`, deleted in the transaction that writes the receipt.
//!
//! Only operations in flight or cut off have an item here, so the partition stays small, and
//! a pass reads only what is overdue: one Query of the sort keys up to `DUE#<now>`.
//!
//! # A pass ([`Janitor::janitor_pass`])
//! For each overdue item, in due order:
//! - a session whose `~META` exists is alive (the cut-off DELETE never removed it, or the id
//!   was created again): nothing to do. Otherwise every item left under its partition is
//!   deleted (the sweep stops at a `~META` that reappears), then its registry entry (only while
//!   no `~META` exists) and, unless a purge of that customer is open, its pending marker;
//! - a purge whose ledger is still open is run to the end, as a repeat of the request would:
//!   the same receipt, with exact counts, and creates work again.
//!
//! With several regions the work partition replicates everywhere, so each item carries the slot
//! of its target (the customer's, [`crate::home::customer_slot`], for a purge; the session's,
//! [`crate::home::session_request_slot`], for a DELETE or a sweep), and only the janitor of that
//! slot's home takes it on ([`JanitorReport::elsewhere`] counts the others): nothing is
//! finished twice, nor outside the target's home, where a receipt or ledger would be written.
//! After a failover the slot's new home takes over, and it is the target's home whatever later
//! failovers move (not a slot of the region that wrote the item, which a failover can split
//! from the target's). Guest data keys are destroyed only by the home of the slot
//! their name hashes to ([`crate::home::customer_slot`] of the key's name).
//!
//! The item is deleted once its task is done. A task that fails, and an item that names no
//! task the pass can read, stays for the next pass and does not stop this one: the pass logs
//! it, counts it in [`JanitorReport::failed`], and adds one to the item's `failures` (with the
//! last error and its time). An item that has failed [`STUCK_AFTER_FAILURES`] passes is
//! logged as an error and counted in [`JanitorReport::stuck`], which the scheduled function
//! emits as a metric: it needs someone to look. A purge waiting for another region is counted
//! in [`JanitorReport::waiting`], not failed, until it has waited
//! [`WAITING_WINDOWS_BEFORE_FAILURE`] replication windows past its due time; from then on each
//! pass counts it as a failure, so a replica that never catches up ends stuck.
//!
//! Each pass then destroys the guest data keys whose every session has expired
//! (`store/data_keys.rs`), so a guest's content is unreadable in any copy at most
//! `JANITOR_GRACE_SECONDS` plus a day plus the interval after its session expired.
//!
//! # The bound
//! An operation cut off half-way is finished at most `JANITOR_GRACE_SECONDS` plus the
//! schedule's interval (the template's `JanitorIntervalMinutes`) after it started, plus the
//! pass itself.
use std::future::Future;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{from_item, n, s, to_item, within, DynamoStore};
use crate::{clock, keys, Error};

type Item = HashMap<String, AttributeValue>;

/// How long after an operation starts its work item falls due: Lambda's longest timeout
/// (900 s), so that no invocation that wrote the item can still be running when the janitor
/// takes it over.
pub const JANITOR_GRACE_SECONDS: i64 = 15 * 60;
/// Work items read in one page of a pass.
const PAGE: i32 = 50;
/// Pages one pass takes on at most; what is left waits for the next pass.
const MAX_PAGES: usize = 20;
/// Passes in a row a work item may fail before it is reported stuck: one failure can be a
/// throttle or a timeout, three at the schedule's interval (15 minutes) are not.
pub const STUCK_AFTER_FAILURES: u64 = 3;
/// Replication windows (`PURGE_SETTLE_SECONDS`) past its work item's due time a purge may
/// still wait for another region before each pass counts it as a failure (and, after
/// [`STUCK_AFTER_FAILURES`] of them, stuck): a replica that never catches up (replication
/// stopped for it, or an item there the purge cannot delete) needs someone to look, and would
/// otherwise keep the customer's ledger open forever.
pub const WAITING_WINDOWS_BEFORE_FAILURE: u32 = 10;
/// How much of a failure's message a work item keeps.
const MAX_ERROR_CHARS: usize = 300;

/// Runs the janitor (the scheduled `janitor` function, `make run`'s scheduler, `make redrive`).
pub trait Janitor {
    /// The store's time, which the scheduled function passes to [`Janitor::janitor_pass`].
    fn now(&self) -> OffsetDateTime;

    /// Finishes every task whose work item was due at `now`.
    fn janitor_pass(&self, now: OffsetDateTime) -> impl Future<Output = Result<JanitorReport, Error>> + Send;
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct JanitorReport {
    /// Session deletions and sweeps finished (or found to have nothing left).
    pub sessions_finished: u64,
    /// Purges run to their receipt.
    pub purges_finished: u64,
    /// Items of sessions the janitor deleted (a purge's are in its receipt).
    pub items_deleted: u64,
    /// Tasks that failed, and work items naming no task; they stay for the next pass.
    pub failed: u64,
    /// Of those, the ones that have failed [`STUCK_AFTER_FAILURES`] passes or more.
    pub stuck: u64,
    /// Guest data keys destroyed: every session of their day had expired.
    #[serde(default)]
    pub guest_keys_destroyed: u64,
    /// Overdue work items left to the janitor of the region that wrote them.
    #[serde(default)]
    pub elsewhere: u64,
    /// Purges done in the home whose receipt waits for the other regions (the replication
    /// window, or a replica still behind): they stay for the next pass, and are not failures
    /// until they have waited [`WAITING_WINDOWS_BEFORE_FAILURE`] windows past their due time.
    #[serde(default)]
    pub waiting: u64,
}

/// What a work item asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Task {
    /// Finish deleting a session. `customer_hash` names the partition holding its pending
    /// marker and, for a signed-in owner, its registry entry (none for a guest's TTL sweep).
    Session { session_id: Uuid, customer_hash: Option<String> },
    /// Finish a purge.
    Purge { customer_hash: String },
}

/// `JANITOR / DUE#<epoch seconds>#<task>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorkItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_hash: Option<String>,
    /// With several regions, the slot of its target (customer or session): only the janitor of
    /// that slot's home takes it on (the work partition replicates to every region). None in a
    /// single-region deployment, and in items written before regions: any janitor takes those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slot: Option<u8>,
}

impl WorkItem {
    fn task(&self) -> Result<Task, Error> {
        match (self.session_id, &self.customer_hash) {
            (Some(session_id), hash) => Ok(Task::Session { session_id, customer_hash: hash.clone() }),
            (None, Some(hash)) => Ok(Task::Purge { customer_hash: hash.clone() }),
            (None, None) => Err(Error::Corrupt(format!("work item {} names no task", self.sk).into())),
        }
    }
}

impl Janitor for DynamoStore {
    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    async fn janitor_pass(&self, now: OffsetDateTime) -> Result<JanitorReport, Error> {
        let mut report = JanitorReport::default();
        let mut start = None;
        for _ in 0..MAX_PAGES {
            let (items, next) = self.overdue(now.unix_timestamp(), start).await?;
            for raw in items {
                let sk = raw.get(keys::SK).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
                match self.owns(&raw) {
                    Ok(true) => {}
                    Ok(false) => {
                        report.elsewhere += 1;
                        continue;
                    }
                    // An unreadable home map: neither run twice nor skip; the next pass tries again.
                    Err(error) => {
                        tracing::warn!(work_item = %sk, %error, "the janitor cannot tell whose work item this is");
                        report.failed += 1;
                        continue;
                    }
                }
                match self.work_on(raw).await {
                    Ok(done) => {
                        report.items_deleted += done.items;
                        report.sessions_finished += done.sessions;
                        report.purges_finished += done.purges;
                    }
                    // A purge done in the home, waiting for the other regions: not a failure,
                    // until it has waited longer than replication can explain.
                    Err(Error::PurgeReplicating(_)) if !self.waited_too_long(&sk, now) => report.waiting += 1,
                    // A failover fence stands, or a region is awaited: the purge waits for it.
                    Err(Error::PurgeFenced) => report.waiting += 1,
                    Err(error) => {
                        report.failed += 1;
                        let failures = self.note_failure(&sk, &error, now).await;
                        if failures >= STUCK_AFTER_FAILURES {
                            report.stuck += 1;
                            tracing::error!(work_item = %sk, failures, %error, "a janitor task keeps failing; it needs someone to look");
                        } else {
                            tracing::warn!(work_item = %sk, failures, %error, "the janitor could not finish a task; it stays for the next pass");
                        }
                    }
                }
            }
            start = next;
            if start.is_none() {
                break;
            }
        }
        match self.destroy_expired_guest_keys(now.unix_timestamp()).await {
            Ok(destroyed) => report.guest_keys_destroyed = destroyed,
            Err(error) => {
                tracing::warn!(%error, "the janitor could not destroy expired guest keys; the next pass tries again");
                report.failed += 1;
            }
        }
        tracing::info!(?report, "janitor pass");
        Ok(report)
    }
}

/// What finishing one task did.
struct Done {
    sessions: u64,
    purges: u64,
    items: u64,
}

impl DynamoStore {
    /// Records the intent of a destructive operation starting now; returns the work item's
    /// sort key, for [`DynamoStore::unschedule`] once it has finished. `slot` is the slot of the
    /// task's target, stamped on the item with several regions; `None` (an item written before
    /// regions, run again) leaves it to any region.
    pub(crate) async fn schedule(&self, task: &Task, slot: Option<u8>) -> Result<String, Error> {
        let due = self.clock.now_epoch_seconds() + JANITOR_GRACE_SECONDS;
        let (sk, session_id, customer_hash) = match task {
            Task::Session { session_id, customer_hash } => {
                (keys::work_sk(due, &keys::session_pk(session_id)), Some(*session_id), customer_hash.clone())
            }
            Task::Purge { customer_hash } => {
                (keys::work_sk(due, &keys::purge_task(customer_hash)), None, Some(customer_hash.clone()))
            }
        };
        let slot = slot.filter(|_| self.config.homes.is_some());
        let item = WorkItem { pk: keys::WORK_PK.to_owned(), sk: sk.clone(), session_id, customer_hash, slot };
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(to_item(&item)?))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, put).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        Ok(sk)
    }

    /// Retires a work item: its operation has finished.
    pub(crate) async fn unschedule(&self, sk: &str) -> Result<(), Error> {
        let delete = self
            .client
            .delete_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::WORK_PK))
            .key(keys::SK, s(sk))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, delete).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        Ok(())
    }

    /// Whether the purge of work item `sk` has waited for the other regions longer than
    /// [`WAITING_WINDOWS_BEFORE_FAILURE`] replication windows past its due time.
    fn waited_too_long(&self, sk: &str, now: OffsetDateTime) -> bool {
        let bound = self.config.purge_settle.saturating_mul(WAITING_WINDOWS_BEFORE_FAILURE).as_secs() as i64;
        keys::work_due(sk).is_some_and(|due| now.unix_timestamp() - due > bound)
    }

    /// Whether this region's janitor takes on a work item: the home of the slot it carries
    /// (any region, for an item without one).
    fn owns(&self, raw: &Item) -> Result<bool, Error> {
        match raw.get("slot").and_then(|slot| slot.as_n().ok()).map(|slot| slot.parse::<u8>()) {
            None => Ok(true),
            Some(Ok(slot)) => self.config.is_home(slot),
            Some(Err(_)) => Err(Error::Corrupt("a work item's slot is not a slot".into())),
        }
    }

    /// Finishes the task of one work item, then retires the item.
    async fn work_on(&self, raw: Item) -> Result<Done, Error> {
        let item: WorkItem = from_item(raw)?;
        let task = item.task()?;
        let done = self.finish(&task, item.slot).await?;
        match task {
            Task::Session { .. } => self.retire_session_work(&item.sk).await?,
            Task::Purge { .. } => self.unschedule(&item.sk).await?,
        }
        Ok(done)
    }

    /// Retires the work item of a session's deletion or sweep, unless a failover left a
    /// region awaited (or a session fenced): that region's late writes of the session may
    /// still arrive, with no META to own them, so the item stays and a later pass sweeps the
    /// partition again once nothing is awaited ([`crate::home::HomeMap::awaiting`]).
    pub(crate) async fn retire_session_work(&self, sk: &str) -> Result<(), Error> {
        if self.config.any_fence()? {
            tracing::info!(work_item = %sk, "a failed-over region is awaited: the deletion's work item stays for a later sweep");
            return Ok(());
        }
        self.unschedule(sk).await
    }

    /// Adds one to a work item's failures, with the error and its time; returns how many
    /// passes it has failed (0 when that could not be recorded: the next pass tries again).
    async fn note_failure(&self, sk: &str, error: &Error, now: OffsetDateTime) -> u64 {
        let message: String = error.to_string().chars().take(MAX_ERROR_CHARS).collect();
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::WORK_PK))
            .key(keys::SK, s(sk))
            .update_expression("ADD failures :one SET last_error = :error, last_failed_at = :at")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":error", s(message))
            .expression_attribute_values(":at", s(clock::format(now)))
            .return_values(ReturnValue::UpdatedNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, update).await.and_then(|answer| answer.map_err(Error::from_store)) {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                output.attributes.as_ref().and_then(|a| a.get("failures")).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
            }
            Err(error) => {
                tracing::warn!(work_item = %sk, %error, "could not count a janitor task's failure");
                0
            }
        }
    }

    /// One page of the work items due at `now_secs`, oldest first, as stored: each is read on
    /// its own, so that one the pass cannot read does not hide the others.
    async fn overdue(&self, now_secs: i64, start: Option<Item>) -> Result<(Vec<Item>, Option<Item>), Error> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :due")
            .expression_attribute_values(":pk", s(keys::WORK_PK))
            .expression_attribute_values(":first", s(keys::WORK_PREFIX))
            .expression_attribute_values(":due", s(keys::work_due_bound(now_secs)))
            .limit(PAGE)
            // Items fall due minutes after they were written: an eventually consistent read sees them.
            .consistent_read(false)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key.filter(|k| !k.is_empty())))
    }

    async fn finish(&self, task: &Task, slot: Option<u8>) -> Result<Done, Error> {
        match task {
            Task::Session { session_id, customer_hash } => {
                let items = self.finish_session(customer_hash.as_deref(), session_id).await?;
                Ok(Done { sessions: 1, purges: 0, items })
            }
            Task::Purge { customer_hash } => match self.finish_purge(customer_hash, slot).await? {
                Some(receipt) => {
                    tracing::info!(receipt_id = %receipt.receipt_id, "the janitor finished an abandoned purge");
                    Ok(Done { sessions: 0, purges: 1, items: 0 })
                }
                None => Ok(Done { sessions: 0, purges: 0, items: 0 }),
            },
        }
    }
}
