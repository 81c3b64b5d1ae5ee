//! A purge across regions: its receipt waits until no other region's replica holds anything
//! of the customer, and until the replication window after the purge's last delete has passed.
//!
//! The purge runs in the customer's home, where every write of their data was made, so its
//! deletes there reach everything; each replicates to the other regions with a later stamp than
//! what it removes, and its tombstone stops an older write that arrives after it. What can
//! still show after the home is clean is a write the home made before the purge that has not
//! reached another region yet, or a delete that has not. So, before the receipt:
//! 1. the purge waits [`crate::Config::purge_settle`] after its last delete (from the ledger's
//!    `swept_at`, stamped by its first run when it deleted nothing), a bound on replication
//!    lag, answering [`Error::PurgeReplicating`] with the seconds left. A purge that deleted
//!    nothing waits too, since a DELETE of a session just before it may still be on its way;
//!    only one that answers the customer's last receipt (the repeat of a purge whose answer was
//!    lost) does not;
//! 2. it reads each other region's replica, strongly consistent: the customer's registry
//!    entries and pending markers (`PRIVACY#<hash>`), their memory (`MEMORY#<hash>`), the
//!    partition of every session the purge deleted (the ledger's `sessions`), and, when the
//!    store encrypts, each of the customer's data keys in that region's key table. Anything there is a
//!    replica still behind: [`Error::PurgeReplicating`]. A region that does not answer is a 503
//!    too. A region the home map moved away from (failed over) is not read: it may be gone
//!    for good, a standing fence refuses the purge, and it gets the deletes if it returns.
//!
//! The ledger and the purge's work item stay open meanwhile, so a repeat of the request (or the
//! janitor) finishes the purge with the same receipt id and counts.
use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use uuid::Uuid;

use crate::store::{s, within, DynamoStore};
use crate::{clock, keys, Error};

/// Seconds a purge that found another region behind asks the caller to wait.
const BEHIND_RETRY_SECONDS: u64 = 5;
/// Session partitions read at once in one region.
const READS_IN_PARALLEL: usize = 8;

/// A client of each region other than this one ([`Config::other_regions`]): its own region,
/// and the endpoint `REGION_ENDPOINTS` names for it (locally); on AWS, the region's own.
#[cfg(feature = "secrets")]
pub(crate) fn replica_clients(shared: &aws_config::SdkConfig, config: &crate::Config) -> Result<Vec<(String, Client)>, Error> {
    Ok(config
        .other_regions()?
        .into_iter()
        .map(|region| {
            let mut builder =
                aws_sdk_dynamodb::config::Builder::from(shared).region(aws_config::Region::new(region.clone()));
            if let Some(url) = config.region_endpoints.get(&region) {
                builder = builder.endpoint_url(url);
            }
            (region, Client::from_conf(builder.build()))
        })
        .collect())
}

impl DynamoStore {
    /// Whether other regions hold replicas of this table (a multi-region deployment).
    pub(super) fn has_replicas(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// Whether the purge of `hash` may answer its receipt now: `Ok` when there is one region,
    /// or when the window after `swept_at` has passed (for a purge that deleted something) and
    /// no other region's replica holds anything of the customer.
    pub(super) async fn await_replicas(
        &self,
        hash: &str,
        wait_window: bool,
        swept_at: Option<&str>,
        sessions: &BTreeSet<Uuid>,
    ) -> Result<(), Error> {
        if wait_window {
            let now = self.clock.now().unix_timestamp();
            let swept = swept_at.and_then(clock::parse_epoch_seconds).unwrap_or(now);
            let left = swept + self.config.purge_settle.as_secs() as i64 - now;
            if left > 0 {
                return Err(Error::PurgeReplicating(left as u64));
            }
        }
        for (region, client) in &self.replicas {
            // A region the home map moved away from (it failed over) may be gone for good: its
            // unreplicated writes are the failover fence's to wait for (a purge is refused
            // while one stands), and it gets the purge's deletes by replication if it returns.
            if self.config.failed_over(region)? {
                tracing::info!(%region, "a purge does not wait for a region that failed over");
                continue;
            }
            if self.replica_holds(client, hash, sessions).await? {
                tracing::info!(%region, "a purge waits for a region that still holds some of the customer");
                return Err(Error::PurgeReplicating(BEHIND_RETRY_SECONDS));
            }
        }
        Ok(())
    }

    /// Whether the replica behind `client` holds a registry entry, pending marker or memory
    /// item of the customer, any item of one of `sessions`, or (when this store encrypts) one of
    /// the customer's data keys in its key table (every name the purge destroys,
    /// [`DynamoStore::customer_key_refs`]).
    async fn replica_holds(&self, client: &Client, hash: &str, sessions: &BTreeSet<Uuid>) -> Result<bool, Error> {
        if self.encryption().is_some() {
            let refs = self.customer_key_refs(hash)?;
            let held = futures::future::try_join_all(refs.iter().map(|key_ref| self.replica_has_key(client, key_ref))).await?;
            if held.into_iter().any(|held| held) {
                return Ok(true);
            }
        }
        let privacy = self.replica_keys(client, keys::privacy_pk(hash), None).await?;
        let behind = privacy.iter().any(|sk| sk.starts_with(keys::REGISTRY_PREFIX) || sk.starts_with(keys::PENDING_PREFIX));
        if behind || !self.replica_keys(client, keys::memory_pk(hash), Some(1)).await?.is_empty() {
            return Ok(true);
        }
        let held: Vec<Result<bool, Error>> = futures::stream::iter(sessions.iter().copied())
            .map(|session| async move {
                Ok(!self.replica_keys(client, keys::session_pk(&session), Some(1)).await?.is_empty())
            })
            .buffer_unordered(READS_IN_PARALLEL)
            .collect()
            .await;
        held.into_iter().try_fold(false, |any, held| Ok(any || held?))
    }

    /// Whether another region's replica of the key table still holds the data key `key_ref`
    /// (a strongly consistent read).
    async fn replica_has_key(&self, client: &Client, key_ref: &str) -> Result<bool, Error> {
        let get = client
            .get_item()
            .table_name(self.config.key_table())
            .key(keys::PK, s(key_ref))
            .projection_expression(keys::PK)
            .consistent_read(true)
            .send();
        let output = within(self.config.write_timeout, get).await?.map_err(Error::from_store)?;
        Ok(output.item.is_some_and(|item| !item.is_empty()))
    }

    /// The sort keys under `pk` in another region's replica (up to `limit`, or all), read
    /// strongly consistent: an eventually consistent read could miss an item replication has
    /// just applied there.
    async fn replica_keys(&self, client: &Client, pk: String, limit: Option<i32>) -> Result<Vec<String>, Error> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let query = client
                .query()
                .table_name(self.table())
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(pk.clone()))
                .projection_expression("SK")
                .consistent_read(true)
                .set_limit(limit)
                .set_exclusive_start_key(start)
                .send();
            let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
            let keys = output.items.unwrap_or_default().into_iter();
            found.extend(keys.filter_map(|item| item.get(keys::SK).and_then(|sk| sk.as_s().ok()).cloned()));
            start = output.last_evaluated_key;
            if start.is_none() || limit.is_some_and(|limit| found.len() >= limit as usize) {
                return Ok(found);
            }
        }
    }
}

/// A set of one session id, as the ledger's `sessions` grows by.
pub(super) fn session_set(session_id: &Uuid) -> AttributeValue {
    AttributeValue::Ss(vec![session_id.to_string()])
}
