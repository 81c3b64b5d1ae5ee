//! A purge across regions: its receipt waits until no other region's replica holds anything
//! of the customer, and until the replication window after the purge's last delete has passed.
//!
//! The purge runs in the customer's home, where every write of their data was made, so its
//! deletes there reach everything; each replicates to the other regions with a later stamp than
//! what it removes, and its tombstone stops an older write that arrives after it. What can
//! still show after the home is clean is a write the home made before the purge that has not
//! reached another region yet, or a delete that has not. So, before the receipt:
//! 1. the purge waits [`crate::Config::purge_settle`] after its last delete (from the ledger's
//!    `swept_at`), a bound on replication lag, answering [`Error::PurgeReplicating`] with the
//!    seconds left; a purge that deleted nothing has nothing in flight and does not wait;
//! 2. it reads each other region's replica: the customer's registry entries and pending
//!    markers (`PRIVACY#<hash>`), their memory (`MEMORY#<hash>`), and the partition of every
//!    session the purge deleted (the ledger's `sessions`). Anything there is a replica still
//!    behind: [`Error::PurgeReplicating`]. A region that does not answer is a 503 too.
//!
//! The ledger and the purge's work item stay open meanwhile, so a repeat of the request (or the
//! janitor) finishes the purge with the same receipt id and counts.
use std::collections::BTreeSet;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use futures::StreamExt;
use uuid::Uuid;

use crate::store::{s, within, DynamoStore};
use crate::{clock, keys, Config, Error};

/// Seconds a purge that found another region behind asks the caller to wait.
const BEHIND_RETRY_SECONDS: u64 = 5;
/// Session partitions read at once in one region.
const READS_IN_PARALLEL: usize = 8;

/// A client of each region other than this one ([`Config::other_regions`]): its own region,
/// and the endpoint `REGION_ENDPOINTS` names for it (locally); on AWS, the region's own.
#[cfg(feature = "secrets")]
pub(crate) fn replica_clients(shared: &aws_config::SdkConfig, config: &Config) -> Result<Vec<(String, Client)>, Error> {
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
        deleted_anything: bool,
        swept_at: Option<&str>,
        sessions: &BTreeSet<Uuid>,
    ) -> Result<(), Error> {
        if deleted_anything {
            let now = self.clock.now().unix_timestamp();
            let swept = swept_at.and_then(clock::parse_epoch_seconds).unwrap_or(now);
            let left = swept + self.config.purge_settle.as_secs() as i64 - now;
            if left > 0 {
                return Err(Error::PurgeReplicating(left as u64));
            }
        }
        for (region, client) in &self.replicas {
            if self.replica_holds(client, hash, sessions).await? {
                tracing::info!(%region, "a purge waits for a region that still holds some of the customer");
                return Err(Error::PurgeReplicating(BEHIND_RETRY_SECONDS));
            }
        }
        Ok(())
    }

    /// Whether the replica behind `client` holds a registry entry, pending marker or memory
    /// item of the customer, or any item of one of `sessions`.
    async fn replica_holds(&self, client: &Client, hash: &str, sessions: &BTreeSet<Uuid>) -> Result<bool, Error> {
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

    /// The sort keys under `pk` in another region's replica (up to `limit`, or all).
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
