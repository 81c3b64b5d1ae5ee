//! Long-term customer memory in the table: `PK = MEMORY#<customer_hash>`, `SK = FACT#<fact_id>`,
//! where the hash is the salted one of the purge receipts ([`super::customer_hash`]).
//!
//! # Writing one window's facts (the summariser)
//! One `TransactWriteItems`:
//! 1. a `ConditionCheck` that the session's META still exists, belongs to the customer and is
//!    not a guest's: nothing is written for a session a purge has already taken (the purge
//!    deletes META before it erases the memory), nor for a guest;
//! 2. an `Update` of each fact, on condition `attribute_not_exists(PK) OR stated_key < :key`:
//!    only a newer statement replaces a fact, so a redelivered or late window writes nothing,
//!    and a restatement confirms the fact (its `updated_at` moves on). An `Update`, not a
//!    `Put`: it replaces every attribute of the statement and keeps `forgotten_at`.
//!
//! A fact whose condition fails is dropped and the others are sent again. Then the customer's
//! live facts are trimmed to `MEMORY_MAX_FACTS`, the least recently confirmed first.
//!
//! # Deleting one fact (the customer)
//! The fact becomes a tombstone: no text, a stated key of the deletion time, the same stamp in
//! `forgotten_at`, and no `ttl`, so that a window stated before the deletion cannot bring the
//! fact back however late it is summarised, while a new statement can. No time bound would
//! do: a session kept alive by its appends can be summarised (a re-arm, `make redrive`) any
//! time later. A new statement keeps `forgotten_at`, and when the cap trims such a fact it
//! turns back into the tombstone of its last deletion instead of going: a deletion wins over
//! every statement made before it, whatever came in between. The purge removes tombstones with
//! the rest of the customer's memory.
//!
//! # Reading
//! A customer has at most `MEMORY_MAX_FACTS` live facts of about 270 bytes each, so one Query
//! of the partition reads them all (20 facts: 1 RCU, 50 facts: 2 RCU, eventually consistent);
//! they are ordered newest first here. Tombstones and expired facts are left out.
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, ReturnConsumedCapacity, TransactWriteItem, Update};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::transact::Transacted;
use super::{backoff, cancellation_reasons, condition_failed, from_item, s, to_item, within, DynamoStore, ItemKey, BATCH_LIMIT};
use crate::memory::{self, Fact, FactDraft, FactKind, FactPage, FactSource, MemoryPosition};
use crate::{clock, keys, Error};

/// Attempts of a window's fact transaction that lose to concurrent transactions.
const MAX_WRITE_ATTEMPTS: u32 = 10;
/// Rounds of "read the keys, delete them" before a memory purge gives up.
const MAX_PURGE_ROUNDS: u32 = 100;
/// Position of the session check in a window's transaction; fact `i` is at `i + 1`.
const SESSION_CHECK: usize = 0;

/// Writes the facts a summary window stated (the stream consumer).
pub trait MemoryWriter {
    /// Stores `facts`, stated in `session_id`, as the customer's long-term memory. Returns how
    /// many it wrote: none for a statement no newer than the stored one, and none at all when
    /// the session is gone, a guest's, or not the customer's.
    fn write_facts(
        &self,
        customer_id: &str,
        session_id: Uuid,
        facts: &[FactDraft],
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

/// Reads a customer's long-term memory.
pub trait MemoryReader {
    /// Up to `max` of the customer's facts, newest first, from one Query under the context
    /// load deadline (`LOAD_DEADLINE_MS`): a context load waits for nothing longer.
    fn recent_facts(&self, customer_id: &str, max: usize) -> impl Future<Output = Result<Vec<Fact>, Error>> + Send;

    /// One page of the customer's facts, newest first, after `after`.
    fn list_facts(
        &self,
        customer_id: &str,
        limit: usize,
        after: Option<MemoryPosition>,
    ) -> impl Future<Output = Result<FactPage, Error>> + Send;
}

/// Deletes a customer's facts (`DELETE /customers/me/memory/{fact_id}`).
pub trait MemoryDeleter {
    /// Deletes one fact. `Ok(false)` when the customer has no such fact (any more).
    fn delete_fact(&self, customer_id: &str, fact_id: &str) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// `MEMORY#<customer_hash> / FACT#<fact_id>`: one fact, or the tombstone of a deleted one
/// (`deleted`, no kind or text). Every byte is read by each context load with memory, so
/// nothing is stored twice: the id is the sort key's, and the stating time, session and last
/// turn are the stated key's ([`memory::stated_key`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FactItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    /// Orders statements; a write only replaces a smaller one.
    stated_key: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<FactKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_turn: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ttl: Option<i64>,
    /// The stated key of the fact's last deletion: what the cap turns the fact back into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    forgotten_at: Option<String>,
}

/// The attributes a statement owns: a fact's write sets those it has and removes the others,
/// and leaves `forgotten_at` as it was.
const STATEMENT_ATTRIBUTES: [&str; 6] = ["stated_key", "deleted", "kind", "text", "from_turn", "ttl"];

impl FactItem {
    fn of(pk: &str, fact_id: &str, draft: FactDraft, ttl: Option<i64>) -> FactItem {
        FactItem {
            pk: pk.to_owned(),
            sk: keys::fact_sk(fact_id),
            stated_key: draft.stated_key(),
            deleted: false,
            kind: Some(draft.kind),
            text: Some(draft.text),
            from_turn: Some(draft.source.from_turn),
            ttl,
            forgotten_at: None,
        }
    }

    /// The fact, when the item is a live fact.
    fn into_fact(self, now_secs: i64) -> Option<Fact> {
        if self.deleted || self.ttl.is_some_and(|ttl| ttl <= now_secs) {
            return None;
        }
        let (updated_at, session_id, to_turn) = memory::parse_stated_key(&self.stated_key)?;
        Some(Fact {
            fact_id: self.sk.strip_prefix(keys::FACT_PREFIX)?.to_owned(),
            kind: self.kind?,
            text: self.text?,
            source: FactSource { session_id, from_turn: self.from_turn?, to_turn },
            updated_at,
        })
    }
}

/// What trimming needs of an item.
#[derive(Debug, Deserialize)]
struct FactStamp {
    #[serde(rename = "SK")]
    sk: String,
    stated_key: String,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    ttl: Option<i64>,
    #[serde(default)]
    forgotten_at: Option<String>,
}

impl MemoryWriter for DynamoStore {
    async fn write_facts(&self, customer_id: &str, session_id: Uuid, facts: &[FactDraft]) -> Result<u64, Error> {
        let customer_hash = self.customer_hash(customer_id)?;
        let pk = keys::memory_pk(&customer_hash);
        let key = self.config.hash_key()?;
        let now_secs = self.clock.now_epoch_seconds();
        // A fact expires `memory_ttl` after it was stated, not after its window was written: a
        // window summarised late (a re-arm, `make redrive`) cannot give an old statement a new
        // life, nor bring back a fact whose newer statement TTL has removed.
        let expiry = |draft: &FactDraft| {
            self.config.memory_ttl.map(|ttl| {
                let stated = clock::parse_epoch_seconds(&draft.stated_at).unwrap_or(now_secs);
                stated.saturating_add(ttl.as_secs() as i64)
            })
        };
        let mut pending: Vec<FactItem> = memory::merge_window(facts.to_vec())
            .into_iter()
            .map(|draft| (expiry(&draft), draft))
            .filter(|(ttl, _)| ttl.is_none_or(|ttl| ttl > now_secs))
            .map(|(ttl, draft)| FactItem::of(&pk, &draft.fact_id(key, &customer_hash), draft, ttl))
            .collect();

        // A fact's text is sealed under its customer's data key (`store/sealing.rs`), made only
        // for a live session of the customer's.
        let key_ref = self.customer_key_ref(customer_id)?;
        let owned = |meta: &crate::items::MetaItem| !meta.guest && meta.owner_id == customer_id;
        let data_key = match self.encryption() {
            Some(_) if !pending.is_empty() => match Box::pin(self.key_for_session(&key_ref, &session_id, owned)).await? {
                Some(key) => Some(key),
                None => {
                    tracing::info!(%session_id, "session gone, a guest's or not the customer's; no facts written");
                    return Ok(0);
                }
            },
            _ => None,
        };
        let seal = data_key.as_deref().map(|key| (key_ref.as_str(), key));
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            if pending.is_empty() {
                return Ok(0);
            }
            let mut transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(self.session_check(customer_id, &session_id)?).build())
                .return_consumed_capacity(ReturnConsumedCapacity::Total);
            for item in &pending {
                transaction = transaction.transact_items(TransactWriteItem::builder().update(self.state_newer(item, seal)?).build());
            }
            let reasons = match within(self.config.write_timeout, transaction.send()).await? {
                Ok(output) => {
                    self.record(output.consumed_capacity());
                    let written = pending.len() as u64;
                    tracing::info!(%session_id, facts_written = written, "facts written");
                    self.trim(&pk).await?;
                    return Ok(written);
                }
                Err(e) => cancellation_reasons(e)?,
            };
            if condition_failed(&reasons, SESSION_CHECK) {
                tracing::info!(%session_id, "session gone, a guest's or not the customer's; no facts written");
                return Ok(0);
            }
            let before = pending.len();
            let mut position = SESSION_CHECK;
            pending.retain(|_| {
                position += 1;
                !condition_failed(&reasons, position)
            });
            if pending.len() == before {
                // A conflict with a concurrent transaction: back off, then try again.
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        Err(Error::Unavailable("the facts kept conflicting with concurrent writes".into()))
    }
}

impl MemoryReader for DynamoStore {
    async fn recent_facts(&self, customer_id: &str, max: usize) -> Result<Vec<Fact>, Error> {
        let pk = keys::memory_pk(&self.customer_hash(customer_id)?);
        let (items, more) = self.query_memory::<FactItem>(&pk, false, None, self.config.load_deadline).await?;
        if more {
            tracing::warn!("a customer's memory is larger than one page; the newest facts may be missing");
        }
        let now_secs = self.clock.now_epoch_seconds();
        let mut facts: Vec<Fact> = items.into_iter().filter_map(|item| item.into_fact(now_secs)).collect();
        memory::sort_newest_first(&mut facts);
        facts.truncate(max);
        Ok(facts)
    }

    async fn list_facts(&self, customer_id: &str, limit: usize, after: Option<MemoryPosition>) -> Result<FactPage, Error> {
        let pk = keys::memory_pk(&self.customer_hash(customer_id)?);
        let items: Vec<FactItem> = self.all_memory(&pk, false, None).await?;
        let now_secs = self.clock.now_epoch_seconds();
        let mut facts: Vec<Fact> = items.into_iter().filter_map(|item| item.into_fact(now_secs)).collect();
        memory::sort_newest_first(&mut facts);
        Ok(memory::page_after(facts, after.as_ref(), limit))
    }
}

impl MemoryDeleter for DynamoStore {
    async fn delete_fact(&self, customer_id: &str, fact_id: &str) -> Result<bool, Error> {
        if !memory::is_fact_id(fact_id) {
            return Err(Error::BadRequest(format!("{fact_id:?} is not a fact id")));
        }
        let now = self.clock.now();
        // `~` sorts after the session id of any statement made in the same millisecond.
        let stamp = format!("{}#~", clock::format(now));
        let tombstone = FactItem {
            pk: keys::memory_pk(&self.customer_hash(customer_id)?),
            sk: keys::fact_sk(fact_id),
            stated_key: stamp.clone(),
            deleted: true,
            kind: None,
            text: None,
            from_turn: None,
            // Kept until the purge: see the module's comment.
            ttl: None,
            forgotten_at: Some(stamp),
        };
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(to_item(&tombstone)?))
            .condition_expression("attribute_exists(PK) AND attribute_not_exists(deleted)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, put).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                tracing::info!("fact deleted");
                Ok(true)
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
            Err(e) => Err(Error::from_store(e)),
        }
    }
}

impl DynamoStore {
    /// Deletes every item of a customer's memory, facts and tombstones, and returns how many.
    /// Safe to repeat, and to run while facts are deleted one by one.
    pub async fn purge_memory(&self, customer_hash: &str) -> Result<u64, Error> {
        self.purge_memory_counted(customer_hash, |_| Ok(None)).await
    }

    /// [`DynamoStore::purge_memory`], where each transaction of up to 25 conditional deletes
    /// also carries `count(n)`, an update that records the `n` deletions (the purge ledger's),
    /// so that the count stays exact however often a cut-off purge is repeated.
    pub(crate) async fn purge_memory_counted(
        &self,
        customer_hash: &str,
        count: impl Fn(u64) -> Result<Option<Update>, Error>,
    ) -> Result<u64, Error> {
        let pk = keys::memory_pk(customer_hash);
        let mut deleted = 0;
        for _ in 0..MAX_PURGE_ROUNDS {
            let (keys, _) = self.query_memory::<ItemKey>(&pk, true, Some("PK, SK"), self.config.write_timeout).await?;
            if keys.is_empty() {
                return Ok(deleted);
            }
            for chunk in keys.chunks(BATCH_LIMIT) {
                let mut transaction = self.client.transact_write_items();
                for key in chunk {
                    let delete = Delete::builder()
                        .table_name(self.table())
                        .set_key(Some(to_item(key)?))
                        .condition_expression("attribute_exists(PK)")
                        .build()
                        .map_err(Error::unavailable)?;
                    transaction = transaction.transact_items(TransactWriteItem::builder().delete(delete).build());
                }
                if let Some(update) = count(chunk.len() as u64)? {
                    transaction = transaction.transact_items(TransactWriteItem::builder().update(update).build());
                }
                match self.transact(transaction).await? {
                    Transacted::Committed => deleted += chunk.len() as u64,
                    // Someone deleted one of them first: read again what is left.
                    Transacted::ConditionFailed => break,
                }
            }
        }
        Err(Error::Unavailable("the customer's memory kept changing while it was purged; repeat the purge".into()))
    }

    /// The check that makes a window's facts depend on its session: it must exist, be the
    /// customer's, and not a guest's.
    fn session_check(&self, customer_id: &str, session_id: &Uuid) -> Result<ConditionCheck, Error> {
        ConditionCheck::builder()
            .table_name(self.table())
            .key(keys::PK, s(keys::session_pk(session_id)))
            .key(keys::SK, s(keys::META))
            .condition_expression("owner_id = :owner AND guest = :guest")
            .expression_attribute_values(":owner", s(customer_id))
            .expression_attribute_values(":guest", AttributeValue::Bool(false))
            .build()
            .map_err(Error::unavailable)
    }

    /// A fact's write, which only replaces an older statement: it sets the statement's
    /// attributes (its text sealed when `seal` names a key), removes those the statement
    /// lacks, and keeps `forgotten_at`.
    fn state_newer(&self, item: &FactItem, seal: Option<(&str, &crate::crypto::DataKey)>) -> Result<Update, Error> {
        let mut attributes = to_item(item)?;
        if let Some((key_ref, key)) = seal {
            super::sealing::seal_item(&mut attributes, key_ref, key)?;
        }
        let key: HashMap<String, AttributeValue> =
            [keys::PK, keys::SK].into_iter().filter_map(|k| attributes.remove_entry(k)).collect();
        let mut update = Update::builder()
            .table_name(self.table())
            .set_key(Some(key))
            .condition_expression("attribute_not_exists(PK) OR stated_key < :stated_key")
            .expression_attribute_values(":stated_key", s(&item.stated_key));
        let (mut set, mut remove) = (Vec::new(), Vec::new());
        for (i, name) in STATEMENT_ATTRIBUTES.iter().enumerate() {
            update = update.expression_attribute_names(format!("#a{i}"), *name);
            match attributes.remove(*name) {
                Some(value) => {
                    set.push(format!("#a{i} = :a{i}"));
                    update = update.expression_attribute_values(format!(":a{i}"), value);
                }
                None => remove.push(format!("#a{i}")),
            }
        }
        if let Some(name) = attributes.keys().next() {
            return Err(Error::Corrupt(format!("a fact's write would drop its {name:?}").into()));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression += &format!(" REMOVE {}", remove.join(", "));
        }
        update.update_expression(expression).build().map_err(Error::unavailable)
    }

    /// Drops the live facts beyond `MEMORY_MAX_FACTS`, least recently confirmed first: a fact
    /// once forgotten turns back into the tombstone of its last deletion, any other is
    /// deleted. A fact confirmed again since it was read is kept, so the read may be
    /// eventually consistent: what it misses, the next window's trim finds. Returns how many
    /// it dropped.
    async fn trim(&self, pk: &str) -> Result<u64, Error> {
        let stamps: Vec<FactStamp> = self.all_memory(pk, false, Some("SK, stated_key, deleted, #ttl, forgotten_at")).await?;
        let now_secs = self.clock.now_epoch_seconds();
        let mut live: Vec<FactStamp> =
            stamps.into_iter().filter(|s| !s.deleted && s.ttl.is_none_or(|ttl| ttl > now_secs)).collect();
        if live.len() <= self.config.memory_max_facts {
            return Ok(0);
        }
        live.sort_by(|a, b| b.stated_key.cmp(&a.stated_key));
        let mut dropped = 0;
        for stamp in &live[self.config.memory_max_facts..] {
            dropped += u64::from(self.drop_fact(pk, stamp).await?);
        }
        tracing::info!(facts_dropped = dropped, "memory trimmed to its cap");
        Ok(dropped)
    }

    /// Drops one live fact beyond the cap, unless it was stated again since `stamp` was read:
    /// a fact once forgotten turns back into the tombstone of its last deletion, any other is
    /// deleted. Returns whether it did. A transaction of one write (2 WCU rather than 1), so
    /// that both kinds of write share one handling of their condition.
    async fn drop_fact(&self, pk: &str, stamp: &FactStamp) -> Result<bool, Error> {
        let write = match &stamp.forgotten_at {
            Some(forgotten_at) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(self.table())
                        .key(keys::PK, s(pk))
                        .key(keys::SK, s(&stamp.sk))
                        .update_expression("SET stated_key = :forgotten, deleted = :deleted REMOVE #kind, #text, from_turn, #ttl")
                        .condition_expression("stated_key = :seen")
                        .expression_attribute_names("#kind", "kind")
                        .expression_attribute_names("#text", "text")
                        .expression_attribute_names("#ttl", "ttl")
                        .expression_attribute_values(":forgotten", s(forgotten_at))
                        .expression_attribute_values(":deleted", AttributeValue::Bool(true))
                        .expression_attribute_values(":seen", s(&stamp.stated_key))
                        .build()
                        .map_err(Error::unavailable)?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(self.table())
                        .key(keys::PK, s(pk))
                        .key(keys::SK, s(&stamp.sk))
                        .condition_expression("stated_key = :seen")
                        .expression_attribute_values(":seen", s(&stamp.stated_key))
                        .build()
                        .map_err(Error::unavailable)?,
                )
                .build(),
        };
        match self.transact(self.client.transact_write_items().transact_items(write)).await? {
            Transacted::Committed => Ok(true),
            Transacted::ConditionFailed => Ok(false),
        }
    }

    /// One Query of a memory partition, within `limit`; `true` beside the items when the
    /// partition did not fit in one page.
    async fn query_memory<T: DeserializeOwned>(
        &self,
        pk: &str,
        consistent: bool,
        projection: Option<&str>,
        limit: Duration,
    ) -> Result<(Vec<T>, bool), Error> {
        let page = self.memory_page(pk, consistent, projection, None, limit).await?;
        let more = page.1.is_some();
        Ok((page.0, more))
    }

    /// Every page of a memory partition; each page within the write timeout.
    async fn all_memory<T: DeserializeOwned>(&self, pk: &str, consistent: bool, projection: Option<&str>) -> Result<Vec<T>, Error> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let (page, next) = self.memory_page(pk, consistent, projection, start, self.config.write_timeout).await?;
            items.extend(page);
            start = next;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    async fn memory_page<T: DeserializeOwned>(
        &self,
        pk: &str,
        consistent: bool,
        projection: Option<&str>,
        start: Option<HashMap<String, AttributeValue>>,
        limit: Duration,
    ) -> Result<(Vec<T>, Option<HashMap<String, AttributeValue>>), Error> {
        let mut query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND begins_with(SK, :fact)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":fact", s(keys::FACT_PREFIX))
            .consistent_read(consistent)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if let Some(projection) = projection {
            query = query.projection_expression(projection);
            if projection.contains("#ttl") {
                query = query.expression_attribute_names("#ttl", "ttl");
            }
        }
        let output = within(limit, query.send()).await?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        let mut items = output.items.unwrap_or_default();
        Box::pin(self.open_items(&mut items)).await?;
        let items = items.into_iter().map(from_item).collect::<Result<Vec<T>, Error>>()?;
        Ok((items, output.last_evaluated_key.filter(|k| !k.is_empty())))
    }
}
