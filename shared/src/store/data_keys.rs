//! The key table: each customer's (and each guest day's) wrapped data key, the one copy of it.
//!
//! Its item is `PK = CUST#<region>#<customer hash>` (made by that region alone) with several
//! regions and `CUST#<customer hash>` with one, or for guests `GUEST#<region>#<yyyy-mm-dd>`
//! with several regions and `GUEST#<yyyy-mm-dd>` with one ([`keys::regional_customer_data_key`],
//! [`keys::customer_data_key`], [`keys::regional_guest_data_key`], [`keys::guest_data_key`])
//! with the key's random `generation`, the `wrapped` key and the `master_key_id` that wrapped
//! it; a guest key also its `until` (the latest expiry of a session sealed under it) and
//! `guest_keys = GUEST`, which puts it in the sparse index the janitor reads to destroy it once
//! `until` has passed. The table has no PITR and no stream,
//! so deleting the item is the end of the key (see the README's privacy section for its backups).
//!
//! **A warm cache never outlives a destroyed key's receipt.** A use of a key, to seal or to
//! open, reads its item with a strongly consistent GetItem, unless a lease from an earlier
//! read that found it still runs ([`crate::crypto::cache`]: `KEY_LEASE_MS`, dated before that
//! read was sent, measured on the store's [`crate::clock::Clock`]). A purge waits the longest
//! lease any function may hold ([`crate::crypto::MAX_KEY_LEASE`]) and [`KEY_LEASE_MARGIN`] after its last destruction of the key before its receipt
//! ([`DynamoStore::wait_out_key_leases`]), so after the receipt no store, however warm, opens
//! that key's ciphertext again: `tests/crypto_shredding.rs` and `tests/shredding_races.rs`
//! show it.
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ReturnValuesOnConditionCheckFailure, ScalarAttributeType,
};

use super::{s, within, DynamoStore};
use crate::items::MetaItem;
use crate::crypto::{DataKey, Encryption, Generation, KeyWrapper, WrappedKey, GENERATION_LEN};
use crate::clock::Stamp;
use crate::{clock, keys, Error};

/// Keys by reference, as the key table holds them now: `None` for a destroyed key; and when
/// the read that found each was sent (its own, or its lease's).
#[derive(Debug, Default)]
pub(crate) struct OpenKeys {
    keys: HashMap<String, Option<Arc<DataKey>>>,
    found_at: HashMap<String, Stamp>,
}

impl OpenKeys {
    pub(crate) fn get(&self, key_ref: &str) -> Option<&Arc<DataKey>> {
        self.keys.get(key_ref).and_then(Option::as_ref)
    }

    pub(crate) fn contains(&self, key_ref: &str) -> bool {
        self.keys.contains_key(key_ref)
    }

    pub(crate) fn extend(&mut self, other: OpenKeys) {
        self.keys.extend(other.keys);
        self.found_at.extend(other.found_at);
    }

    /// The keys held whose finding no longer vouches for them at `now` (`runs`: a lease's
    /// test), such as one read beside a slow Query of the items it opens.
    pub(crate) fn stale(&self, runs: impl Fn(Stamp) -> bool) -> BTreeSet<String> {
        self.found_at.iter().filter(|(_, at)| !runs(**at)).map(|(key_ref, _)| key_ref.clone()).collect()
    }
}

impl FromIterator<(String, Option<Arc<DataKey>>)> for OpenKeys {
    fn from_iter<I: IntoIterator<Item = (String, Option<Arc<DataKey>>)>>(iter: I) -> Self {
        OpenKeys { keys: iter.into_iter().collect(), found_at: HashMap::new() }
    }
}

/// A key item as read: its generation and wrapped key, plus a guest key's `until`.
struct KeyItem {
    generation: Generation,
    wrapped: WrappedKey,
    until: Option<i64>,
}

/// A key as a use of it finds it: by a read of its item, or under a lease from an earlier one.
struct CurrentKey {
    key: Arc<DataKey>,
    until: Option<i64>,
    /// When the read that found it was sent.
    found_at: Stamp,
}

/// What a purge waits beyond the lease, after destroying a key: the time between a use's
/// check of its lease and its decryption (microseconds of CPU, or a thread descheduled), and
/// the drift between two machines' clocks over one lease (parts per million), many times over.
pub const KEY_LEASE_MARGIN: std::time::Duration = std::time::Duration::from_millis(500);

/// The key table's sparse index of guest keys by `until`, which the janitor reads.
pub(crate) const GUEST_KEY_INDEX: &str = "GuestKeys";
/// The one value of a guest key's index hash key (`guest_keys`): a guest key per day makes a
/// few hundred items at most.
const GUEST_KEYS: &str = "GUEST";
/// A guest key's `until` is moved a day past the expiry it must cover, so that a session's
/// appends move it about once a day, not on every append.
const GUEST_KEY_SLACK_SECONDS: i64 = 86_400;

impl KeyItem {
    fn from_item(item: &HashMap<String, AttributeValue>) -> Result<KeyItem, Error> {
        let corrupt = || Error::Corrupt("a key item is malformed".into());
        let generation = item
            .get("generation")
            .and_then(|g| g.as_b().ok())
            .and_then(|b| <Generation>::try_from(b.as_ref()).ok())
            .ok_or_else(corrupt)?;
        let blob = item.get("wrapped").and_then(|w| w.as_b().ok()).ok_or_else(corrupt)?.as_ref().to_vec();
        let master_key_id = item.get("master_key_id").and_then(|m| m.as_s().ok()).ok_or_else(corrupt)?.clone();
        let until = item.get("until").and_then(|u| u.as_n().ok()).and_then(|u| u.parse().ok());
        Ok(KeyItem { generation, wrapped: WrappedKey { master_key_id, blob }, until })
    }
}

impl DynamoStore {
    pub(crate) fn encryption(&self) -> Option<&Encryption> {
        self.config.encryption.as_deref()
    }

    fn key_table(&self) -> String {
        self.config.key_table()
    }

    /// The key table's name of the data key `customer_id`'s content is sealed under here:
    /// `CUST#<region>#<customer hash>` with several regions, `CUST#<customer hash>` with one.
    pub(crate) fn customer_key_ref(&self, customer_id: &str) -> Result<String, Error> {
        let hash = self.customer_hash(customer_id)?;
        Ok(match self.config.customer_key_region() {
            Some(region) => keys::regional_customer_data_key(region, &hash),
            None => keys::customer_data_key(&hash),
        })
    }

    /// Every data key the customer whose hash is `hash` may have content sealed under, named
    /// as the janitor, which knows a customer only by hash, names them too: the one named by
    /// the hash alone (one region, or content sealed before keys named a region) and each
    /// region's.
    pub(crate) fn customer_key_refs(&self, hash: &str) -> Result<Vec<String>, Error> {
        let regional = self.config.regions()?.into_iter().map(|region| keys::regional_customer_data_key(&region, hash));
        Ok(std::iter::once(keys::customer_data_key(hash)).chain(regional).collect())
    }

    /// Destroys every data key of the customer whose hash is `hash` ([`Self::customer_key_refs`]),
    /// in parallel, each forgotten by this store's cache: the purge's, first and last.
    pub(crate) async fn destroy_customer_keys(&self, hash: &str) -> Result<(), Error> {
        let refs = self.customer_key_refs(hash)?;
        futures::future::try_join_all(refs.iter().map(|key_ref| self.destroy_data_key(key_ref))).await?;
        Ok(())
    }

    /// The name of the data key `meta`'s session is sealed under; `None` when this store does
    /// not encrypt.
    pub(crate) fn session_key_ref(&self, meta: &MetaItem) -> Result<Option<String>, Error> {
        match self.encryption() {
            Some(_) => self.meta_key_ref(meta).map(Some),
            None => Ok(None),
        }
    }

    /// The name of the data key `meta`'s session is sealed under. A guest's day key is named
    /// by the region its session's slot belongs to (with several regions), so that only that
    /// slot's home ever writes it.
    pub(crate) fn meta_key_ref(&self, meta: &MetaItem) -> Result<String, Error> {
        let region = match meta.guest {
            true => self.config.guest_key_region(crate::home::id_slot(&meta.session_id))?,
            false => None,
        };
        meta.data_key_ref(region.as_deref(), |owner| self.customer_key_ref(owner))
    }

    /// The key named by `key_ref` as the key table holds it now, never created (an append's
    /// read beside META). `None` when there is none (or this store does not encrypt).
    pub(crate) async fn existing_key(&self, key_ref: &str) -> Result<Option<Arc<DataKey>>, Error> {
        let Some(encryption) = self.encryption() else {
            return Ok(None);
        };
        Ok(self.current_key(encryption, key_ref).await?.map(|current| current.key))
    }

    /// The key `key_ref` as the key table holds it: under a running lease without a read,
    /// else by a consistent read, which grants a new lease when it finds the key and ends any
    /// when it does not.
    async fn current_key(&self, encryption: &Encryption, key_ref: &str) -> Result<Option<CurrentKey>, Error> {
        let leased = encryption.cache.lock().ok().and_then(|mut c| c.leased(key_ref, self.clock.stamp(), self.clock.now_epoch_millis()));
        if let Some((key, until, found_at)) = leased {
            return Ok(Some(CurrentKey { key, until, found_at }));
        }
        // Dated before the read is sent: the key existed at some moment after it.
        let read_at = self.clock.stamp();
        match self.read_key_item(key_ref).await? {
            Some(item) => Ok(Some(self.leased_from(encryption, key_ref, &item, read_at).await?)),
            None => {
                self.forget_cached(key_ref);
                Ok(None)
            }
        }
    }

    /// `item`'s key, unwrapped (or cached), under a lease dated `read_at`.
    async fn leased_from(&self, encryption: &Encryption, key_ref: &str, item: &KeyItem, read_at: Stamp) -> Result<CurrentKey, Error> {
        let key = self.unwrapped(encryption, key_ref, item).await?;
        if let Ok(mut cache) = encryption.cache.lock() {
            cache.grant(key_ref, item.generation, item.until, read_at);
        }
        Ok(CurrentKey { key, until: item.until, found_at: read_at })
    }

    /// Waits out every lease a warm instance may hold on a key destroyed just now: a purge's
    /// last step before its receipt ([`KEY_LEASE_MARGIN`]). The longest lease any function may
    /// hold ([`crate::crypto::MAX_KEY_LEASE`]), not this one's `KEY_LEASE_MS`: nothing else
    /// ties the functions' settings together. On the store's clock, from the
    /// purge's own destruction: a duration, so no two machines' clocks are compared.
    pub(crate) async fn wait_out_key_leases(&self) {
        self.clock.sleep(crate::crypto::MAX_KEY_LEASE + KEY_LEASE_MARGIN).await;
    }

    /// The key named by `key_ref`, for a writer of `session_id` (a summary, facts): made only
    /// once a strongly consistent read finds the session's META live and `fits` it, as an
    /// append makes its key only after reading META, so that a writer racing a purge does not
    /// leave its customer a key after the receipt (the purge destroys the key once every META
    /// of the customer is gone). `Ok(None)` when the session is gone or does not fit.
    pub(crate) async fn key_for_session(
        &self,
        key_ref: &str,
        session_id: &uuid::Uuid,
        fits: impl FnOnce(&MetaItem) -> bool,
    ) -> Result<Option<Arc<DataKey>>, Error> {
        if let Some(key) = self.existing_key(key_ref).await? {
            return Ok(Some(key));
        }
        match self.read_meta(session_id, true, self.config.write_timeout).await? {
            // A guest's day key made here covers the session's expiry, as an append's does.
            Some(meta) if fits(&meta) && !meta.is_expired(self.clock.now_epoch_seconds()) => {
                Box::pin(self.sealing_key_until(key_ref, meta.guest.then_some(meta.ttl))).await
            }
            _ => Ok(None),
        }
    }

    /// The key to seal new content named by `key_ref`, created on first use; `None` when this
    /// store does not encrypt. Two racing creations agree on one key: the second loses its
    /// condition and reads the first's. A guest key (`until`: epoch seconds, the expiry of the
    /// session being written; `None` for a customer's key) must live until then: its `until`
    /// is moved that far (and a day more) when it falls short, so the janitor destroys it only
    /// once every session sealed under it has expired.
    pub(crate) async fn sealing_key_until(&self, key_ref: &str, until: Option<i64>) -> Result<Option<Arc<DataKey>>, Error> {
        let Some(encryption) = self.encryption() else {
            return Ok(None);
        };
        if let Some(current) = self.current_key(encryption, key_ref).await? {
            self.cover_until(key_ref, current.until, until).await?;
            return Ok(Some(current.key));
        }
        let (key, material) = DataKey::generate_with_material();
        // A KMS call gets the deadline every DynamoDB call gets.
        let wrapped = within(self.config.write_timeout, encryption.wrapper.wrap(key_ref, &key.generation, &material)).await??;
        let put = self
            .client
            .put_item()
            .table_name(self.key_table())
            .item(keys::PK, s(key_ref))
            .item("generation", AttributeValue::B(Blob::new(key.generation.to_vec())))
            .item("wrapped", AttributeValue::B(Blob::new(wrapped.blob)))
            .item("master_key_id", s(wrapped.master_key_id))
            .item("created_at", s(clock::format(self.clock.now())))
            .condition_expression("attribute_not_exists(PK)");
        let put_at = self.clock.stamp();
        let put = match until {
            Some(until) => put
                .item("guest_keys", s(GUEST_KEYS))
                .item("until", AttributeValue::N((until + GUEST_KEY_SLACK_SECONDS).to_string())),
            None => put,
        }
        .send();
        match within(self.config.write_timeout, put).await? {
            Ok(_) => {
                if let Some(until) = until {
                    self.cover_unregioned(key_ref, until).await?;
                }
                let key = Arc::new(key);
                self.remember(encryption, key_ref, &key);
                if let Ok(mut cache) = encryption.cache.lock() {
                    cache.grant(key_ref, key.generation, until.map(|u| u + GUEST_KEY_SLACK_SECONDS), put_at);
                }
                tracing::info!(key_ref = %redacted(key_ref), "data key created");
                Ok(Some(key))
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                let current = self.current_key(encryption, key_ref).await?.ok_or_else(|| {
                    Error::Unavailable("a data key was created and destroyed while this one was made".into())
                })?;
                self.cover_until(key_ref, current.until, until).await?;
                Ok(Some(current.key))
            }
            Err(e) => Err(Error::from_store(e)),
        }
    }

    /// The keys that open the envelopes among `refs`, as the key table holds them now: one
    /// consistent GetItem each (in parallel) unless under a lease, an unwrap only on a cache miss.
    pub(crate) async fn opening_keys(&self, refs: BTreeSet<String>) -> Result<OpenKeys, Error> {
        if refs.is_empty() {
            return Ok(OpenKeys::default());
        }
        let encryption = self.encryption().ok_or_else(|| {
            Error::Config("MASTER_KEYS was not loaded at init, so encrypted content cannot be read".to_owned())
        })?;
        let reads = refs.into_iter().map(|key_ref| async move {
            let current = self.current_key(encryption, &key_ref).await?;
            Ok::<_, Error>((key_ref, current))
        });
        let mut keys = OpenKeys::default();
        for (key_ref, current) in futures::future::try_join_all(reads).await? {
            if let Some(current) = &current {
                keys.found_at.insert(key_ref.clone(), current.found_at);
            }
            keys.keys.insert(key_ref, current.map(|c| c.key));
        }
        Ok(keys)
    }

    /// Whether a key found by a read sent at `found_at` may still be used now: within the
    /// lease (any time, with no lease: every use reads then).
    pub(crate) fn still_vouched(&self, found_at: Stamp) -> bool {
        match self.encryption().and_then(|e| e.cache.lock().ok()) {
            Some(cache) if !self.config.key_lease.is_zero() => cache.runs(found_at, self.clock.stamp()),
            _ => true,
        }
    }

    /// Deletes the data key `key_ref`: everything sealed under it, wherever a copy lies, can
    /// no longer be opened. Deleting a key that is gone already is no error.
    async fn destroy_data_key(&self, key_ref: &str) -> Result<(), Error> {
        let delete = self.client.delete_item().table_name(self.key_table()).key(keys::PK, s(key_ref)).send();
        within(self.config.write_timeout, delete).await?.map_err(Error::from_store)?;
        self.forget_cached(key_ref);
        tracing::info!(key_ref = %redacted(key_ref), "data key destroyed");
        Ok(())
    }

    /// Makes the guest key `key_ref`, whose `until` was `held` when read (or leased), about to
    /// seal content, cover `until`. A key the janitor destroyed between its read and now is
    /// not brought back, and nothing is sealed under it: a retryable error, whose retry makes
    /// a new key. A key whose `until` covers `until` needs no write, leased or not: the
    /// janitor destroys a key only once its `until` has passed by the grace, and `until`
    /// (the session's new expiry) lies ahead.
    async fn cover_until(&self, key_ref: &str, held: Option<i64>, until: Option<i64>) -> Result<(), Error> {
        let Some(needed) = until.filter(|needed| held.is_some_and(|held| held < *needed)) else {
            return Ok(());
        };
        if self.extend_guest_key(key_ref, needed).await? {
            if let Some(mut cache) = self.encryption().and_then(|e| e.cache.lock().ok()) {
                cache.moved_until(key_ref, needed + GUEST_KEY_SLACK_SECONDS);
            }
            self.cover_unregioned(key_ref, needed).await
        } else {
            self.forget_cached(key_ref);
            Err(Error::Unavailable("the guest data key was destroyed while this write read it; retry".into()))
        }
    }

    /// Before a guest's session slides its expiry without sealing anything (a PATCH): moves
    /// the `until` of the day key its content is sealed under to cover the new expiry, so the
    /// janitor never destroys the key of a live session. A session with no key (no content
    /// sealed yet), or gone (the update answers 404), needs nothing.
    pub(crate) async fn cover_guest_session(&self, session_id: &uuid::Uuid) -> Result<(), Error> {
        // Without a key wrapper of its own (update-session seals nothing), still: the
        // functions that seal may have sealed this session's content.
        let Some(meta) = self.read_meta(session_id, true, self.config.write_timeout).await?.filter(|m| m.guest) else {
            return Ok(());
        };
        let key_ref = self.meta_key_ref(&meta)?;
        let needed = self.now_with_expiry().2;
        match self.read_key_item(&key_ref).await? {
            Some(item) if item.until.is_some_and(|held| held < needed) => {
                self.extend_guest_key(&key_ref, needed).await?;
                self.cover_unregioned(&key_ref, needed).await
            }
            Some(_) => Ok(()),
            // Its content, if any, is sealed under the day's key named by the day alone.
            None => self.cover_unregioned(&key_ref, needed).await,
        }
    }

    /// A guest day's key named by its region (`key_ref`) now covers `needed` and a day more:
    /// so must, if it exists, the key of the same day named by the day alone, which a session
    /// made that day before day keys named a region (or before `REGIONS` was set) sealed its
    /// older content under. Moved at least as far as the regional key, it outlives it, and
    /// both outlive every session that uses them; the regional key's `until` moves about once
    /// a day, and so does this write.
    async fn cover_unregioned(&self, key_ref: &str, needed: i64) -> Result<(), Error> {
        if let Some(older) = keys::unregioned_guest_key(key_ref) {
            self.extend_guest_key(&older, needed + GUEST_KEY_SLACK_SECONDS).await?;
        }
        Ok(())
    }

    /// Moves a guest key's `until` to `needed` and a day more, unless it is there already:
    /// `false` when the key is gone (the janitor destroyed it meanwhile; never brought back).
    async fn extend_guest_key(&self, key_ref: &str, needed: i64) -> Result<bool, Error> {
        let update = self
            .client
            .update_item()
            .table_name(self.key_table())
            .key(keys::PK, s(key_ref))
            .update_expression("SET #until = :until")
            .condition_expression("attribute_exists(PK) AND #until < :needed")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":until", AttributeValue::N((needed + GUEST_KEY_SLACK_SECONDS).to_string()))
            .expression_attribute_values(":needed", AttributeValue::N(needed.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send();
        match within(self.config.write_timeout, update).await? {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                // Moved as far by another write already, or gone.
                UpdateItemError::ConditionalCheckFailedException(failed) => Ok(failed.item.is_some()),
                other => Err(Error::from_store(other)),
            },
            Err(e) => Err(Error::from_store(e)),
        }
    }

    /// Destroys every guest key whose sessions have all expired by `now_secs` (its `until`
    /// passed [`super::JANITOR_GRACE_SECONDS`] ago, the time an append that read it may still
    /// run): the janitor's, each pass. Returns how many it destroyed.
    pub(crate) async fn destroy_expired_guest_keys(&self, now_secs: i64) -> Result<u64, Error> {
        let bound = now_secs - super::JANITOR_GRACE_SECONDS;
        let query = self
            .client
            .query()
            .table_name(self.key_table())
            .index_name(GUEST_KEY_INDEX)
            .key_condition_expression("guest_keys = :guest AND #until <= :bound")
            .expression_attribute_names("#until", "until")
            .expression_attribute_values(":guest", s(GUEST_KEYS))
            .expression_attribute_values(":bound", AttributeValue::N(bound.to_string()))
            .send();
        let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
        let mut destroyed = 0;
        for item in output.items.unwrap_or_default() {
            let Some(key_ref) = item.get(keys::PK).and_then(|pk| pk.as_s().ok()) else { continue };
            // With several regions the key table replicates everywhere: one region destroys
            // each key, the home of the region its name carries, which alone wrote it; an
            // older key named by its day alone, the home of the slot its name hashes to.
            let ours = match keys::guest_key_region(key_ref) {
                Some(region) => self.config.is_home_of_region(region)?,
                None => self.config.is_home(crate::home::customer_slot(key_ref))?,
            };
            if !ours {
                continue;
            }
            // The index lags the table: the table's own `until` decides.
            let delete = self
                .client
                .delete_item()
                .table_name(self.key_table())
                .key(keys::PK, s(key_ref))
                .condition_expression("#until <= :bound")
                .expression_attribute_names("#until", "until")
                .expression_attribute_values(":bound", AttributeValue::N(bound.to_string()))
                .send();
            match within(self.config.write_timeout, delete).await? {
                Ok(_) => {
                    destroyed += 1;
                    self.forget_cached(key_ref);
                    tracing::info!(key_ref = %key_ref, "guest data key destroyed");
                }
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(Error::from_store(e)),
            }
        }
        Ok(destroyed)
    }

    async fn read_key_item(&self, key_ref: &str) -> Result<Option<KeyItem>, Error> {
        let get = self
            .client
            .get_item()
            .table_name(self.key_table())
            .key(keys::PK, s(key_ref))
            .consistent_read(true)
            .send();
        let output = within(self.config.write_timeout, get).await?.map_err(Error::from_store)?;
        output.item.as_ref().map(KeyItem::from_item).transpose()
    }

    async fn unwrapped(&self, encryption: &Encryption, key_ref: &str, item: &KeyItem) -> Result<Arc<DataKey>, Error> {
        let now_ms = self.clock.now_epoch_millis();
        if let Some(key) = encryption.cache.lock().ok().and_then(|mut c| c.get(key_ref, &item.generation, now_ms)) {
            return Ok(key);
        }
        let material = within(self.config.write_timeout, encryption.wrapper.unwrap(key_ref, &item.generation, &item.wrapped)).await??;
        let key = Arc::new(DataKey::from_parts(item.generation, material.as_ref())?);
        self.remember(encryption, key_ref, &key);
        Ok(key)
    }

    fn forget_cached(&self, key_ref: &str) {
        if let Some(mut cache) = self.encryption().and_then(|e| e.cache.lock().ok()) {
            cache.forget(key_ref);
        }
    }

    fn remember(&self, encryption: &Encryption, key_ref: &str, key: &Arc<DataKey>) {
        if let Ok(mut cache) = encryption.cache.lock() {
            cache.insert(key_ref, Arc::clone(key), self.clock.now_epoch_millis());
        }
    }

    /// Creates the key table as `template.yaml` declares it (hash key only, no stream, the
    /// sparse index of guest keys). For DynamoDB Local and tests.
    pub async fn create_key_table(&self) -> Result<(), Error> {
        let key = |name: &str, key_type| {
            KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(Error::unavailable)
        };
        let attribute = |name: &str, kind| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().map_err(Error::unavailable)
        };
        let guests = GlobalSecondaryIndex::builder()
            .index_name(GUEST_KEY_INDEX)
            .key_schema(key("guest_keys", KeyType::Hash)?)
            .key_schema(key("until", KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(Error::unavailable)?;
        self.client
            .create_table()
            .table_name(self.key_table())
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(keys::PK, KeyType::Hash)?)
            .attribute_definitions(attribute(keys::PK, ScalarAttributeType::S)?)
            .attribute_definitions(attribute("guest_keys", ScalarAttributeType::S)?)
            .attribute_definitions(attribute("until", ScalarAttributeType::N)?)
            .global_secondary_indexes(guests)
            .send()
            .await
            .map_err(Error::unavailable)?;
        Ok(())
    }
}

/// A key reference for the logs: the kind and day, never a customer id.
fn redacted(key_ref: &str) -> &str {
    if key_ref.starts_with(keys::GUEST_KEY_PREFIX) {
        key_ref
    } else {
        "CUST#…"
    }
}

const _: () = assert!(GENERATION_LEN == 16);
