//! A customer's purge: its work item and the ledger that survive a cut-off purge, the
//! sessions it marks and erases, the counts it adds up, and the receipt that closes it (or
//! the customer's last one, when it found nothing left to delete).
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_dynamodb::types::{Put, ReturnConsumedCapacity, ReturnValue, TransactWriteItem, Update};
use futures::StreamExt;
use uuid::Uuid;

use crate::model::{Caller, Receipt};
use crate::store::transact::Transacted;
use crate::store::{from_item, n, s, to_item, within, DynamoStore};
use crate::{clock, keys, Error};

use super::{BatchDeleter, CustomerPurger, Erased, LastReceiptItem, LedgerItem, MetaOutcome, PendingItem, ReceiptItem, ReceiptReader};
use super::replicas::session_set;
use super::{MAX_PURGE_ROUNDS, SESSIONS_IN_PARALLEL};
use crate::store::janitor::Task;


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

impl DynamoStore {
    /// [`CustomerPurger::purge_customer`], deleting through `deleter`.
    pub async fn purge_customer_with<D: BatchDeleter>(
        &self,
        deleter: &D,
        customer_id: &str,
        request_id: &str,
    ) -> Result<Receipt, Error> {
        let hash = self.customer_hash(customer_id)?;
        Box::pin(self.purge_by_hash(deleter, &hash, request_id)).await
    }

    /// Runs an abandoned purge of the customer to its end (the janitor): `None` when no purge
    /// of theirs is open.
    pub(crate) async fn finish_purge(&self, hash: &str) -> Result<Option<Receipt>, Error> {
        match self.ledger(hash).await? {
            Some(ledger) => Ok(Some(self.purge_by_hash(self, hash, &ledger.request_id).await?)),
            None => Ok(None),
        }
    }

    /// The purge of the customer whose hash is `hash`, by the customer's request or by the
    /// janitor finishing one: both destroy the customer's data key, first and last.
    async fn purge_by_hash<D: BatchDeleter>(&self, deleter: &D, hash: &str, request_id: &str) -> Result<Receipt, Error> {
        // A fence means a region that failed over may still deliver a session of any customer
        // homed there, registry entry and all: a receipt now could be followed by its data.
        if self.config.any_fence()? {
            return Err(Error::PurgeFenced);
        }
        let work = self.schedule(&Task::Purge { customer_hash: hash.to_owned() }).await?;
        let ledger = self.open_ledger(hash, request_id, &work).await?;
        if ledger.work_sk.as_deref() != Some(work.as_str()) {
            // An earlier run of this purge left its own work item, which the ledger names.
            self.unschedule(&work).await?;
        }
        // The key goes once the work item and ledger stand (a purge cut off from here on is
        // finished by the janitor): no copy of the customer's content opens any more, wherever
        // it lies (a backup, the stream, an export), whatever the rest of the purge meets.
        // Every region's key goes, and the one named by the hash alone.
        self.destroy_customer_keys(hash).await?;
        let listed = self.registered_sessions(hash).await?;
        self.mark_listed(hash, &listed).await?;

        let mut erased_any = false;
        for _ in 0..MAX_PURGE_ROUNDS {
            let pending = self.pending(hash).await?;
            if pending.is_empty() {
                let memory_deleted = self.purge_memory_counted(hash, |deleted| self.count_memory_into_ledger(hash, deleted).map(Some)).await?;
                // A key an append raced into being while the purge ran goes too, so that from
                // the receipt's `key_destroyed_at` on no key of the customer exists.
                self.destroy_customer_keys(hash).await?;
                let key_destroyed_at = clock::format(self.clock.now());
                // With several regions, every other one must hold nothing of the customer before
                // the receipt. A ledger already closed is a concurrent run's, which checked.
                if self.has_replicas() {
                    if let Some(swept) = self.mark_swept(hash, erased_any || memory_deleted > 0).await? {
                        let deleted = swept.sessions_deleted + swept.items_deleted + swept.memory_items_deleted > 0;
                        self.await_replicas(hash, deleted, swept.swept_at.as_deref(), &swept.sessions).await?;
                    }
                }
                // No receipt while a warm instance may still hold a lease on the key; last, so that
                // the wait for other regions comes before it.
                self.wait_out_key_leases().await;
                let receipt = self.close_ledger(hash, &ledger, &key_destroyed_at).await?;
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
            let erased_here = &AtomicBool::new(false);
            let outcomes: Vec<Result<(), Error>> = futures::stream::iter(pending)
                .map(|marker| async move {
                    if failed.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                    erased_here.store(true, Ordering::Relaxed);
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
            erased_any |= erased_here.load(Ordering::Relaxed);
            outcomes.into_iter().collect::<Result<(), Error>>()?;
        }
        Err(Error::Unavailable("sessions kept appearing while the purge ran; repeat it".into()))
    }

    /// Every session in the customer's registry: live, expired, or with only leftovers.
    pub(super) async fn registered_sessions(&self, hash: &str) -> Result<Vec<Uuid>, Error> {
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

    /// Marks the sessions a purge found in the customer's registry, a few at a time.
    pub(super) async fn mark_listed(&self, hash: &str, sessions: &[Uuid]) -> Result<(), Error> {
        let marked: Vec<Result<PendingItem, Error>> = futures::stream::iter(sessions.iter().copied())
            .map(|session_id| async move { self.mark_pending(hash, &session_id, None).await })
            .buffer_unordered(SESSIONS_IN_PARALLEL)
            .collect()
            .await;
        marked.into_iter().try_for_each(|m| m.map(|_| ()))
    }

    /// Every pending marker of the customer.
    pub(super) async fn pending(&self, hash: &str) -> Result<Vec<PendingItem>, Error> {
        self.privacy_items(hash, keys::PENDING_PREFIX, None).await?.into_iter().map(from_item).collect()
    }

    /// An UpdateItem of the customer's ledger.
    fn ledger_update(&self, hash: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(hash)))
            .key(keys::SK, s(keys::PURGE_LEDGER))
    }

    /// Creates the customer's ledger, or returns the one a cut-off purge left, as it is.
    pub(super) async fn open_ledger(
        &self,
        hash: &str,
        request_id: &str,
        work_sk: &str,
    ) -> Result<LedgerItem, Error> {
        let update = self
            .ledger_update(hash)
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
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let output = within(self.config.write_timeout, update.send()).await?.map_err(Error::from_store)?;
        self.record_write(output.consumed_capacity());
        from_item(output.attributes.unwrap_or_default())
    }

    /// Step 4 of the procedure for a purge: the marker goes, and the ledger counts the
    /// session, in one transaction, so that a session is counted once however many purges
    /// run over it. A marker someone else retired first is not counted again.
    pub(super) async fn retire_into_ledger(&self, hash: &str, marker: &PendingItem, erased: Erased) -> Result<(), Error> {
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
            .update_expression("ADD sessions_deleted :sessions, items_deleted :items, sessions :session")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":sessions", n(u64::from(counted)))
            .expression_attribute_values(":items", n(erased.items))
            .expression_attribute_values(":session", session_set(&marker.session_id))
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

    /// Stamps the ledger `swept_at` now when this run deleted something (the replication
    /// window starts again), and answers the ledger as it stands; `None` when it is closed.
    pub(super) async fn mark_swept(&self, hash: &str, deleted: bool) -> Result<Option<LedgerItem>, Error> {
        let expression = if deleted { "SET swept_at = :now" } else { "SET swept_at = if_not_exists(swept_at, :now)" };
        let update = self
            .ledger_update(hash)
            .update_expression(expression)
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_values(":now", s(clock::format(self.clock.now())))
            .return_values(ReturnValue::AllNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let output = match within(self.config.write_timeout, update.send()).await? {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => return Ok(None),
            Err(e) => return Err(Error::from_store(e)),
        };
        self.record_write(output.consumed_capacity());
        from_item(output.attributes.unwrap_or_default()).map(Some)
    }

    /// Step 4's ledger update: `deleted` more memory items, while the ledger exists.
    pub(super) fn count_memory_into_ledger(&self, hash: &str, deleted: u64) -> Result<Update, Error> {
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
    pub(super) async fn ledger(&self, hash: &str) -> Result<Option<LedgerItem>, Error> {
        self.get_item(keys::privacy_pk(hash), keys::PURGE_LEDGER, true, self.config.write_timeout).await
    }

    /// Closes the ledger: writes the receipt, points the customer's last receipt at it,
    /// deletes the ledger and retires the purge's work item, in one transaction. A purge that
    /// deleted nothing writes no receipt when the customer has one: it answers that one, so a
    /// repeat of a purge whose answer was lost gets its receipt, with its counts. When a
    /// concurrent run of the same purge closed the ledger first, answers with that run's receipt.
    pub(super) async fn close_ledger(&self, hash: &str, opened: &LedgerItem, key_destroyed_at: &str) -> Result<Receipt, Error> {
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
                        key_destroyed_at: Some(key_destroyed_at.to_owned()),
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

    pub(super) async fn get_receipt(&self, receipt_id: &Uuid) -> Result<Option<Receipt>, Error> {
        let receipt: Option<ReceiptItem> =
            self.get_item(keys::receipt_pk(receipt_id), keys::RECEIPT, true, self.config.write_timeout).await?;
        Ok(receipt.map(Receipt::from))
    }
}
