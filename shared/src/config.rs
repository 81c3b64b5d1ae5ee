//! The configuration: every setting, read once from the environment at start-up.
use std::time::Duration;

use crate::home::HomeSource;
use crate::keyed_hash::HashKey;
use crate::secret::Secret;
use crate::Error;

/// `MEMORY_MAX_FACTS` when unset: live facts kept per customer.
pub const DEFAULT_MEMORY_MAX_FACTS: usize = 50;

/// Settings read once from the environment at start-up. Every setting has a default; the
/// secrets have none: the receipt salt is added with [`Config::with_receipt_salt`], the hash
/// key with [`Config::with_hash_key`].
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `TABLE_NAME` | `tidewater` | the DynamoDB table |
/// | `SESSION_TTL_SECONDS` | `86400` | a session expires this long after its last activity |
/// | `MAX_CONTENT_BYTES` | `65536` | the largest turn content, in bytes of UTF-8 |
/// | `LOAD_DEADLINE_MS` | `300` | deadline of a context load before it answers degraded |
/// | `WRITE_TIMEOUT_MS` | `3000` | timeout of each DynamoDB write call |
/// | `SUMMARY_THRESHOLD` | `20` | turns per summary window |
/// | `SUMMARY_KEEP_RECENT` | `10` | the newest turns a summary never covers |
/// | `RESUME_ORDER_STEP_SECONDS` | `3600` | how much newer activity must be to move a session up the resume list |
/// | `AWS_LAMBDA_FUNCTION_NAME` | unset | set by Lambda; turns on consumed-capacity metrics |
/// | `WARM_UP` | `0` | `1`: one cheap DynamoDB call during init ([`crate::DynamoStore::warm_up`]) |
/// | `MEMORY_MAX_FACTS` | `50` | live long-term facts kept per customer; the least recently confirmed go first |
/// | `MEMORY_TTL_DAYS` | unset | facts expire this many days after their last confirmation; unset, empty or `0`: never |
/// | `KEY_TABLE_NAME` | `<TABLE_NAME>-keys` | the table of wrapped data keys (crypto-shredding) |
/// | `KEY_CACHE_SECONDS` | `300` | how long an unwrapped data key stays in a function's memory |
/// | `KEY_CACHE_ENTRIES` | `10000` | how many unwrapped data keys a function keeps at most |
/// | `KEY_LEASE_MS` | `3000` | how long a read of a key item vouches for the key ([`crate::crypto::cache`]); at most [`crate::crypto::MAX_KEY_LEASE`] (3000; more is refused), which a purge waits, with [`crate::store::KEY_LEASE_MARGIN`], before its receipt whatever its own setting |
/// | `REGIONS`, `HOME_MAP`, `HOME_MAP_FILE` | unset | multi-region: the regions in their fixed order and the home map ([`crate::home`]); unset: one region |
/// | `AWS_REGION` | unset | this region, set by Lambda |
/// | `REGION_ENDPOINTS` | unset | `region=url,...`: each region's DynamoDB endpoint, for the reads a purge makes in the other regions (locally; on AWS each region's own) |
/// | `PURGE_SETTLE_SECONDS` | `60` | with several regions: how long after its last delete a purge waits before its receipt ([`Config::purge_settle`]) |
/// | `PLAINTEXT_READABLE` | `false` | `true`: content written before encryption (not sealed) is served; until `make migrate` reports no plain item left |
#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    pub session_ttl: Duration,
    pub max_content_bytes: usize,
    pub load_deadline: Duration,
    pub write_timeout: Duration,
    pub summary_threshold: u64,
    /// A window is summarised only once this many newer turns follow it, so the newest turns
    /// always reach the model verbatim.
    pub summary_keep_recent: u64,
    /// The customer index's sort key moves only when a session's activity is at least this
    /// much newer than it, so most appends do not rewrite the index.
    pub resume_order_step: Duration,
    /// Receipts, the session registry and the memory partition name a customer by
    /// `hex(SHA-256(receipt_salt + customer_id))`. Changing it orphans older receipts from
    /// their customers (the privacy role still reads them). Only the functions that name
    /// customers load it (`RECEIPT_SALT`, [`crate::secret`]); a store without it refuses
    /// those calls rather than hash with a guessable salt.
    pub receipt_salt: Option<Secret>,
    /// The key of every stored hash of customer text ([`crate::keyed_hash`]): idempotency
    /// records and fact ids. Only append-turn and summarize load it (`HASH_KEY`); a store
    /// without it refuses those writes rather than store an unkeyed hash.
    pub hash_key: Option<HashKey>,
    /// Emit consumed capacity as EMF metrics under this function name (`AWS_LAMBDA_FUNCTION_NAME`,
    /// set by Lambda); off when unset.
    pub metrics_function: Option<String>,
    /// `WARM_UP=1`: one GetItem during init, so that the first request finds the credentials
    /// resolved and the connection (on AWS, its TLS session) open. See `make bench` for what it buys.
    pub warm_up: bool,
    /// Live long-term facts kept per customer (`MEMORY_MAX_FACTS`).
    pub memory_max_facts: usize,
    /// How long a fact lives after it was last written (`MEMORY_TTL_DAYS`); `None`: for ever.
    pub memory_ttl: Option<Duration>,
    /// The key table (`KEY_TABLE_NAME`); `None`: the table's name with `-keys`.
    pub key_table_name: Option<String>,
    /// Bounds of the cache of unwrapped data keys (`KEY_CACHE_SECONDS`, `KEY_CACHE_ENTRIES`).
    pub key_cache_ttl: Duration,
    pub key_cache_entries: usize,
    /// How long a read of a key item that found the key spares the next reads of it (`KEY_LEASE_MS`).
    pub key_lease: Duration,
    /// `PLAINTEXT_READABLE=true`: a store that encrypts still serves content that is not sealed
    /// (written before encryption). Off, such a value is refused as corrupt, so that whoever can
    /// write the table cannot put chosen plaintext in place of a sealed value. On only until
    /// `make migrate` has sealed every plain item.
    pub plaintext_readable: bool,
    /// The master keys and the key cache: content of customers and guests is encrypted
    /// ([`crate::crypto`]). Only the functions that read or write content load them
    /// (`MASTER_KEYS`); a store without them refuses to open an encrypted value.
    pub encryption: Option<std::sync::Arc<crate::crypto::Encryption>>,
    /// This region (`AWS_REGION`).
    pub region: Option<String>,
    /// With several regions: which region is home to each session ([`crate::home`]); `None`
    /// in a single-region deployment, where every session is at home everywhere.
    pub homes: Option<HomeSource>,
    /// Each region's DynamoDB endpoint when it is not the region's own (`REGION_ENDPOINTS`,
    /// locally); a purge reads the other regions' replicas there.
    pub region_endpoints: std::collections::BTreeMap<String, String>,
    /// With several regions, a purge that deleted something answers its receipt only this
    /// long after its last delete, and only once every other region's replica holds nothing of
    /// the customer (`PURGE_SETTLE_SECONDS`). It bounds the replication lag: a write the home
    /// made before the purge may still be on its way to another region when the purge first
    /// finds that region clean, and it must have arrived, with the purge's delete after it,
    /// before the last look. AWS gives no bound on `ReplicationLatency` ("typically within a
    /// second"); 60 s is a margin of over an order of magnitude, and an alarm on the metric
    /// above it says when it does not hold.
    pub purge_settle: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            table_name: "tidewater".to_owned(),
            session_ttl: Duration::from_secs(86_400),
            max_content_bytes: 64 * 1024,
            load_deadline: Duration::from_millis(300),
            write_timeout: Duration::from_millis(3_000),
            summary_threshold: 20,
            summary_keep_recent: 10,
            resume_order_step: Duration::from_secs(3_600),
            receipt_salt: None,
            hash_key: None,
            metrics_function: None,
            warm_up: false,
            memory_max_facts: DEFAULT_MEMORY_MAX_FACTS,
            memory_ttl: None,
            key_table_name: None,
            key_cache_ttl: Duration::from_secs(300),
            key_cache_entries: 10_000,
            key_lease: Duration::from_millis(3_000),
            plaintext_readable: false,
            encryption: None,
            region: None,
            homes: None,
            region_endpoints: Default::default(),
            purge_settle: Duration::from_secs(60),
        }
    }
}

impl Config {
    /// Reads the configuration, falling back to the defaults above for unset variables.
    pub fn from_env() -> Result<Config, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let defaults = Config::default();
        let number = |name: &str, default: u64| positive_number(&lookup, name, default);
        Ok(Config {
            table_name: lookup("TABLE_NAME").filter(|t| !t.is_empty()).unwrap_or(defaults.table_name),
            session_ttl: Duration::from_secs(number("SESSION_TTL_SECONDS", defaults.session_ttl.as_secs())?),
            max_content_bytes: number("MAX_CONTENT_BYTES", defaults.max_content_bytes as u64)? as usize,
            load_deadline: Duration::from_millis(number("LOAD_DEADLINE_MS", defaults.load_deadline.as_millis() as u64)?),
            write_timeout: Duration::from_millis(number("WRITE_TIMEOUT_MS", defaults.write_timeout.as_millis() as u64)?),
            summary_threshold: number("SUMMARY_THRESHOLD", defaults.summary_threshold)?,
            summary_keep_recent: whole_number(
                &lookup,
                "SUMMARY_KEEP_RECENT",
                defaults.summary_keep_recent,
            )?,
            resume_order_step: Duration::from_secs(number(
                "RESUME_ORDER_STEP_SECONDS",
                defaults.resume_order_step.as_secs(),
            )?),
            receipt_salt: None,
            hash_key: None,
            metrics_function: lookup("AWS_LAMBDA_FUNCTION_NAME").filter(|f| !f.is_empty()),
            warm_up: lookup("WARM_UP").is_some_and(|v| matches!(v.trim(), "1" | "true")),
            memory_max_facts: number("MEMORY_MAX_FACTS", defaults.memory_max_facts as u64)? as usize,
            memory_ttl: match lookup("MEMORY_TTL_DAYS").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty() && v != "0") {
                None => None,
                Some(days) => Some(Duration::from_secs(number_from(&days, "MEMORY_TTL_DAYS")?.saturating_mul(86_400))),
            },
            key_table_name: lookup("KEY_TABLE_NAME").filter(|t| !t.is_empty()),
            key_cache_ttl: Duration::from_secs(number("KEY_CACHE_SECONDS", defaults.key_cache_ttl.as_secs())?),
            key_cache_entries: number("KEY_CACHE_ENTRIES", defaults.key_cache_entries as u64)? as usize,
            key_lease: key_lease(number("KEY_LEASE_MS", defaults.key_lease.as_millis() as u64)?)?,
            plaintext_readable: lookup("PLAINTEXT_READABLE").is_some_and(|v| matches!(v.trim(), "1" | "true")),
            encryption: None,
            region: lookup("AWS_REGION").filter(|r| !r.is_empty()),
            homes: HomeSource::from_lookup(&lookup).map_err(Error::Config)?,
            region_endpoints: region_endpoints(lookup("REGION_ENDPOINTS").as_deref().unwrap_or_default())?,
            purge_settle: Duration::from_secs(number("PURGE_SETTLE_SECONDS", defaults.purge_settle.as_secs())?),
        })
    }

    /// Whether this region is home to `slot` (always, in a single-region deployment). An
    /// unreadable home map is an error: stream work must neither run twice nor be skipped.
    pub fn is_home(&self, slot: u8) -> Result<bool, Error> {
        match (&self.homes, &self.region) {
            (Some(source), Some(region)) => Ok(source.homes().map_err(Error::Config)?.home_of(slot) == region),
            _ => Ok(true),
        }
    }

    /// The region a guest day's key of a session in `slot` is named by: the slot's region by
    /// position, fixed for the session's life; `None` in a single-region deployment, whose
    /// day keys name no region ([`crate::keys::guest_data_key`]).
    pub fn guest_key_region(&self, slot: u8) -> Result<Option<String>, Error> {
        match &self.homes {
            Some(source) => Ok(Some(source.homes().map_err(Error::Config)?.region_of(slot).to_owned())),
            None => Ok(None),
        }
    }

    /// The region a customer's content written here is sealed under the key of
    /// ([`crate::keys::regional_customer_data_key`]): this one, with several regions; `None`
    /// in a single-region deployment, whose customer keys name no region.
    pub fn customer_key_region(&self) -> Option<&str> {
        self.homes.as_ref().and(self.region.as_deref())
    }

    /// Every region, in their fixed order (`REGIONS`); none in a single-region deployment.
    pub fn regions(&self) -> Result<Vec<String>, Error> {
        match &self.homes {
            Some(source) => Ok(source.homes().map_err(Error::Config)?.regions),
            None => Ok(Vec::new()),
        }
    }

    /// Whether this region is home now to the slots of `region` (always, in a single-region
    /// deployment): the one region that writes and destroys the guest day keys named by it.
    pub fn is_home_of_region(&self, region: &str) -> Result<bool, Error> {
        match (&self.homes, &self.region) {
            (Some(source), Some(here)) => Ok(source.homes().map_err(Error::Config)?.home_of_region(region) == here),
            _ => Ok(true),
        }
    }

    /// The home map's failover epoch, under which the turns written here now are keyed
    /// ([`crate::chain`]); 0 in a single-region deployment.
    pub fn write_epoch(&self) -> Result<u64, Error> {
        match &self.homes {
            Some(source) => Ok(source.homes().map_err(Error::Config)?.map.epoch),
            None => Ok(0),
        }
    }

    /// Whether writes to `session` wait for a failover's old home ([`crate::home::HomeMap::fenced`]).
    pub fn is_fenced(&self, session: &uuid::Uuid) -> Result<bool, Error> {
        match &self.homes {
            Some(source) => Ok(source.homes().map_err(Error::Config)?.map.is_fenced(session)),
            None => Ok(false),
        }
    }

    /// Whether any failover fence stands, or a region failed over without fences is awaited:
    /// a purge waits for it, since the old home may hold a session of the customer that no
    /// registry here lists yet.
    pub fn any_fence(&self) -> Result<bool, Error> {
        match &self.homes {
            Some(source) => {
                let map = source.homes().map_err(Error::Config)?.map;
                Ok(!map.fenced.is_empty() || !map.awaiting.is_empty())
            }
            None => Ok(false),
        }
    }

    /// The regions other than this one, in their fixed order: none in a single-region
    /// deployment.
    pub fn other_regions(&self) -> Result<Vec<String>, Error> {
        match &self.homes {
            Some(source) => {
                let homes = source.homes().map_err(Error::Config)?;
                Ok(homes.regions.into_iter().filter(|r| Some(r) != self.region.as_ref()).collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// Whether the home map has moved `region`'s slots to another region (it failed over):
    /// such a region is home to nothing, and a purge does not wait for its replica.
    pub fn failed_over(&self, region: &str) -> Result<bool, Error> {
        match &self.homes {
            Some(source) => {
                let homes = source.homes().map_err(Error::Config)?;
                Ok(homes.map.moved.get(region).is_some_and(|to| to != region))
            }
            None => Ok(false),
        }
    }

    /// The slot of a session this region makes without one of its own (a guest's): one this
    /// region is home to. `None` in a single-region deployment, which makes plain v4 ids.
    pub fn local_slot(&self) -> Result<Option<u8>, Error> {
        match (&self.homes, &self.region) {
            (Some(source), Some(region)) => {
                let homes = source.homes().map_err(Error::Config)?;
                // A region every slot has moved away from still makes ids of its own slot;
                // the forwarding layer sends no creates there.
                let own = homes.regions.iter().position(|r| r == region).unwrap_or(0) as u8;
                Ok(Some(homes.slot_homed_in(region).unwrap_or(own)))
            }
            _ => Ok(None),
        }
    }
}

/// A positive integer setting `name`, or `default` when it is unset.
pub fn positive_number(lookup: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64, Error> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => number_from(&value, name),
    }
}

/// `REGION_ENDPOINTS`: `region=url` pairs, comma-separated.
fn region_endpoints(value: &str) -> Result<std::collections::BTreeMap<String, String>, Error> {
    region_urls("REGION_ENDPOINTS", value)
}

/// A setting of `region=url` pairs, comma-separated (`REGION_ENDPOINTS`, `REGION_APIS`).
pub fn region_urls(setting: &str, value: &str) -> Result<std::collections::BTreeMap<String, String>, Error> {
    value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((region, url)) if !region.trim().is_empty() && !url.trim().is_empty() => {
                Ok((region.trim().to_owned(), url.trim().to_owned()))
            }
            _ => Err(Error::Validation(format!("{setting} must be region=url pairs, got {pair:?}"))),
        })
        .collect()
}

/// A non-negative integer setting `name`, or `default` when it is unset.
fn whole_number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<u64, Error> {
    match lookup(name) {
        None => Ok(default),
        Some(value) => value.trim().parse::<u64>().map_err(|_| {
            Error::Validation(format!("{name} must be a whole number, got {value:?}"))
        }),
    }
}

impl Config {
    /// The same settings, with the salt of the customer hash.
    pub fn with_receipt_salt(self, salt: Secret) -> Config {
        Config { receipt_salt: Some(salt), ..self }
    }

    /// The salt of the customer hash; an error for a configuration loaded without it.
    pub fn receipt_salt(&self) -> Result<&Secret, Error> {
        self.receipt_salt
            .as_ref()
            .ok_or_else(|| Error::Config("RECEIPT_SALT was not loaded at init, so customers cannot be named".to_owned()))
    }

    /// The same settings, with the key of stored hashes of customer text.
    pub fn with_hash_key(self, key: HashKey) -> Config {
        Config { hash_key: Some(key), ..self }
    }

    /// The table of wrapped data keys.
    pub fn key_table(&self) -> String {
        self.key_table_name.clone().unwrap_or_else(|| format!("{}-keys", self.table_name))
    }

    /// The same settings, encrypting content with local master keys (the text of a master
    /// key file, [`crate::crypto::LocalMasterKeys::parse`]).
    pub fn with_master_keys(self, master_keys: &Secret) -> Result<Config, Error> {
        let encryption = crate::crypto::Encryption::local(master_keys.expose(), self.key_cache())?;
        Ok(Config { encryption: Some(std::sync::Arc::new(encryption)), ..self })
    }

    /// The same settings, wrapping data keys as the environment says ([`crate::StoreSecret::MasterKeys`]).
    #[cfg(feature = "secrets")]
    pub async fn with_key_wrapper_from_env(self, shared: &aws_config::SdkConfig) -> Result<Config, Error> {
        #[cfg(feature = "kms")]
        if let Some(key_id) = std::env::var("KMS_KEY_ID").ok().filter(|k| !k.is_empty()) {
            let wrapper = crate::crypto::AnyWrapper::Kms(crate::crypto::kms::KmsWrapper::new(shared, key_id));
            let encryption = crate::crypto::Encryption::new(wrapper, self.key_cache());
            return Ok(Config { encryption: Some(std::sync::Arc::new(encryption)), ..self });
        }
        self.with_master_keys(&crate::secret::load(shared, "MASTER_KEYS").await?)
    }

    /// An empty cache of unwrapped keys with this configuration's bounds and lease, the lease
    /// no longer than [`crate::crypto::MAX_KEY_LEASE`] (what a purge waits) however it was set.
    fn key_cache(&self) -> crate::crypto::KeyCache {
        let lease = self.key_lease.min(crate::crypto::MAX_KEY_LEASE);
        crate::crypto::KeyCache::new(self.key_cache_entries, self.key_cache_ttl, lease)
    }

    /// The same settings and master keys, with an empty key cache: another function instance.
    pub fn with_empty_key_cache(self) -> Config {
        let encryption = self.encryption.as_ref().map(|e| std::sync::Arc::new(e.with_empty_cache()));
        Config { encryption, ..self }
    }

    /// The key of stored hashes; an error for a configuration loaded without it.
    pub fn hash_key(&self) -> Result<&HashKey, Error> {
        self.hash_key
            .as_ref()
            .ok_or_else(|| Error::Config("HASH_KEY was not loaded at init, so customer text cannot be hashed".to_owned()))
    }

}

/// `KEY_LEASE_MS`: refused above [`crate::crypto::MAX_KEY_LEASE`], the lease every purge waits
/// out, so that a function set otherwise is told at init rather than outlasting the wait.
fn key_lease(millis: u64) -> Result<Duration, Error> {
    let lease = Duration::from_millis(millis);
    if lease > crate::crypto::MAX_KEY_LEASE {
        return Err(Error::Config(format!(
            "KEY_LEASE_MS is {millis}: at most {} (what a purge waits out before its receipt)",
            crate::crypto::MAX_KEY_LEASE.as_millis()
        )));
    }
    Ok(lease)
}

fn number_from(value: &str, name: &str) -> Result<u64, Error> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Validation(format!("{name} must be a positive integer, got {value:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_variables_take_the_defaults() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.table_name, "tidewater");
        assert_eq!(config.max_content_bytes, 65_536);
        assert_eq!(config.load_deadline, Duration::from_millis(300));
    }

    #[test]
    fn warm_up_is_off_unless_asked_for() {
        assert!(!Config::from_lookup(|_| None).unwrap().warm_up);
        assert!(!Config::from_lookup(|name| (name == "WARM_UP").then(|| "0".to_owned())).unwrap().warm_up);
        assert!(Config::from_lookup(|name| (name == "WARM_UP").then(|| "1".to_owned())).unwrap().warm_up);
    }

    #[test]
    fn a_configuration_holds_a_receipt_salt_only_when_given_one() {
        let config = Config::from_lookup(|name| (name == "RECEIPT_SALT").then(|| "s".repeat(64))).unwrap();
        assert!(matches!(config.receipt_salt(), Err(Error::Config(_))));
        let salt = Secret::new("RECEIPT_SALT", "s".repeat(32)).unwrap();
        assert_eq!(config.with_receipt_salt(salt.clone()).receipt_salt().unwrap(), &salt);
    }

    #[test]
    fn a_key_lease_longer_than_the_purges_wait_is_refused_and_never_held() {
        let lease = |ms: &str| Config::from_lookup(|n| (n == "KEY_LEASE_MS").then(|| ms.to_owned())).map(|c| c.key_lease);
        assert_eq!(lease("250").unwrap(), Duration::from_millis(250));
        assert_eq!(lease("3000").unwrap(), crate::crypto::MAX_KEY_LEASE);
        assert!(matches!(lease("3001"), Err(Error::Config(_))));
        assert!(matches!(lease("5000"), Err(Error::Config(_))));
        // A configuration built by hand past the bound still holds no longer lease.
        let by_hand = Config { key_lease: Duration::from_secs(5), ..Config::default() };
        assert_eq!(by_hand.key_cache().bounds().2, crate::crypto::MAX_KEY_LEASE);
    }

    #[test]
    fn memory_keeps_fifty_facts_for_ever_unless_told_otherwise() {
        let defaults = Config::from_lookup(|_| None).unwrap();
        assert_eq!((defaults.memory_max_facts, defaults.memory_ttl), (50, None));
        for none in ["", "0"] {
            assert_eq!(Config::from_lookup(|n| (n == "MEMORY_TTL_DAYS").then(|| none.to_owned())).unwrap().memory_ttl, None);
        }
        let set = Config::from_lookup(|n| match n {
            "MEMORY_TTL_DAYS" => Some("30".to_owned()),
            "MEMORY_MAX_FACTS" => Some("5".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!((set.memory_max_facts, set.memory_ttl), (5, Some(Duration::from_secs(30 * 86_400))));
        assert!(Config::from_lookup(|n| (n == "MEMORY_TTL_DAYS").then(|| "soon".to_owned())).is_err());
    }

    #[test]
    fn each_regions_endpoint_and_the_other_regions_come_from_the_environment() {
        let config = Config::from_lookup(|n| match n {
            "REGIONS" => Some("us-east-1,eu-west-1,ap-south-1".to_owned()),
            "AWS_REGION" => Some("eu-west-1".to_owned()),
            "REGION_ENDPOINTS" => Some("us-east-1=http://127.0.0.1:1, eu-west-1=http://127.0.0.1:2".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.other_regions().unwrap(), ["us-east-1", "ap-south-1"]);
        assert_eq!(config.region_endpoints.get("us-east-1").map(String::as_str), Some("http://127.0.0.1:1"));
        assert_eq!(config.purge_settle, Duration::from_secs(60));
        assert!(Config::from_lookup(|_| None).unwrap().other_regions().unwrap().is_empty());
        assert!(Config::from_lookup(|n| (n == "REGION_ENDPOINTS").then(|| "us-east-1".to_owned())).is_err());
    }

    #[test]
    fn a_bad_number_is_reported_by_name() {
        let err = Config::from_lookup(|name| (name == "LOAD_DEADLINE_MS").then(|| "soon".to_owned())).unwrap_err();
        assert!(err.to_string().contains("LOAD_DEADLINE_MS"));
    }
}
