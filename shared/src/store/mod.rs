//! The store: the one place that knows DynamoDB.
//!
//! Handlers depend on the narrow traits ([`SessionCreator`], [`TurnAppender`],
//! [`ContextLoader`], [`SummaryWriter`]); [`DynamoStore`] implements them all.
//!
//! One operation a module: `create`, `append`, `context` (with the pure `turn_window`),
//! `summary_write`, `summaries`, `update`, `page_context`, `resume`, `export`, `memory`,
//! `purge` (`erase`, `ledger`, `sweep`), `janitor` (finishes what they left when cut off);
//! the DynamoDB helpers they share are `call` (deadline, backoff, item conversions) and
//! `transact` (cancellation reasons, put-if-absent, retry).
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity,
};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::clock::{self, Clock};
use crate::items::{LatestSummaryItem, MetaItem, TurnItem};
use crate::model::{
    Appended, Caller, Context, ContextRequest, NewSession, SessionCreated,
    Summary, TurnDraft,
};
use crate::{keys, Config, Error};

mod append;
mod call;
mod capacity;
mod context;
mod create;
mod data_keys;
mod migrate;
mod sealing;
pub use migrate::MigrationPage;
pub use sealing::has_plain_content;
mod summary_write;
mod transact;
mod turn_window;
mod unmerged;
pub use unmerged::UnmergedTurnKey;
pub(crate) use call::{backoff, from_item, n, record_version_epoch, s, to_item, within, within_deadline};
pub(crate) use transact::{cancellation_reasons, condition_failed, failed_item, request_token};
pub use append::SUMMARY_REARM_TURNS;
mod export;
// Long-term customer memory (issue 14).
mod memory;
pub use memory::{MemoryDeleter, MemoryReader, MemoryWriter};
mod janitor;
pub use janitor::{Janitor, JanitorReport, JANITOR_GRACE_SECONDS, STUCK_AFTER_FAILURES, WAITING_WINDOWS_BEFORE_FAILURE};
pub use data_keys::KEY_LEASE_MARGIN;
mod page_context;
mod resume;
mod retract;
mod purge;
mod schema;
mod update;
pub use export::TurnExporter;
pub use page_context::PageContextReader;
pub use resume::SessionLister;
pub use retract::{TurnRetractor, MAX_RETRACTED_TAIL};
pub use purge::{
    customer_hash, BatchDeleter, CustomerPurger, ExpiredSessionSweeper, ItemKey, ReceiptReader, SessionDeleter, BATCH_LIMIT,
};
pub use schema::RESUME_PROJECTION;
mod summaries;
pub use summaries::{SummarySource, SummaryState};
pub use update::SessionUpdater;

/// Creates sessions (`POST /sessions`).
pub trait SessionCreator {
    fn create_session(
        &self,
        caller: &Caller,
        request: NewSession,
    ) -> impl Future<Output = Result<SessionCreated, Error>> + Send;
}

/// Appends turns (`POST /sessions/{id}/turns`).
pub trait TurnAppender {
    fn append_turn(
        &self,
        caller: &Caller,
        session_id: Uuid,
        turn: TurnDraft,
    ) -> impl Future<Output = Result<Appended, Error>> + Send;
}

/// Loads what a chatbot needs to answer (`GET /sessions/{id}/context`).
pub trait ContextLoader {
    /// The session, its latest summary and the unsummarised turns the limits allow, from one
    /// newest-first Query (a second only when more than a settled backlog of turns is wanted).
    fn load_context(
        &self,
        caller: &Caller,
        session_id: Uuid,
        request: ContextRequest,
    ) -> impl Future<Output = Result<Context, Error>> + Send;

    /// The session's version (its ETag) from META alone, for a conditional load.
    fn context_version(
        &self,
        caller: &Caller,
        session_id: Uuid,
        consistent: bool,
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

/// Writes rolling summaries (the stream consumer).
pub trait SummaryWriter {
    /// Stores the summary of turns 1..=`through_turn`. The watermark only moves forward:
    /// returns `false`, and writes nothing, when a summary that far along already exists.
    /// It clears `needs_summary` unless the next window is already due, and resets
    /// `summary_rearm`, so the next window's trigger and re-arms fire as for the first.
    fn put_summary(
        &self,
        session_id: Uuid,
        through_turn: u64,
        text: &str,
    ) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// Read and write capacity units, as DynamoDB reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Capacity {
    pub read_units: f64,
    pub write_units: f64,
}

/// The DynamoDB implementation of every store trait.
///
/// ```no_run
/// use tidewater::{Caller, Config, ContextLoader, ContextRequest, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
///
/// # async fn example() -> Result<(), tidewater::Error> {
/// // Appends need the hash key (`HASH_KEY`), as a deployed function reads it at init.
/// let key = tidewater::Secret::new("HASH_KEY", std::env::var("HASH_KEY").unwrap_or_default())?;
/// let config = Config::from_env()?.with_hash_key(tidewater::HashKey::new(&key)?);
/// let store = DynamoStore::new(tidewater::dynamodb_client().await, config.clone());
/// let alice = Caller::new("alice", Vec::<String>::new());
///
/// let session = store.create_session(&alice, NewSession::default()).await?;
/// let turn = NewTurn {
///     response_id: "resp-1".into(),
///     role: "user".into(),
///     content: "Is volume 3 in stock?".into(),
///     intent: None,
///     token_count: None,
///     item: None,
/// };
/// store.append_turn(&alice, session.session_id, turn.validate(&config)?).await?;
/// let context = store.load_context(&alice, session.session_id, ContextRequest::default()).await?;
/// assert_eq!(context.turns.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DynamoStore {
    client: Client,
    config: Config,
    clock: Clock,
    consumed: Mutex<Capacity>,
    /// A client of each other region's replica, by region: a purge reads them before its
    /// receipt (`store/purge/replicas.rs`). None in a single-region deployment.
    replicas: Vec<(String, Client)>,
}

/// Builds a DynamoDB client from the environment. `AWS_ENDPOINT_URL_DYNAMODB` points it at
/// DynamoDB Local. With `AWS_REGION` set (always, on Lambda) it makes no network call: without
/// it, the SDK probes the instance metadata service for a region during start-up.
pub async fn dynamodb_client() -> Client {
    dynamodb_client_with(&crate::aws::sdk_config().await)
}

/// A DynamoDB client of a configuration the function shares with its other clients.
pub fn dynamodb_client_with(shared: &aws_config::SdkConfig) -> Client {
    Client::new(shared)
}

/// A secret a store's configuration can be given at init ([`DynamoStore::with_secrets`]).
#[derive(Debug, Clone, Copy)]
pub enum StoreSecret {
    /// `RECEIPT_SALT`: names customers by hash.
    ReceiptSalt,
    /// `HASH_KEY`: keys the stored hashes of customer text.
    HashKey,
    /// The wrapping of data keys (crypto-shredding, [`crate::crypto`]): with `KMS_KEY_ID` set
    /// (feature `kms`), that KMS key; otherwise the local master keys `MASTER_KEYS`, the text
    /// of a master key file (`make run` writes `.run/master-key`). Neither: no start.
    MasterKeys,
}

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        DynamoStore {
            client,
            config,
            clock: Clock::system(),
            consumed: Mutex::new(Capacity::default()),
            replicas: Vec::new(),
        }
    }

    /// The same store, reading the other regions' replicas through `replicas` (region, client).
    pub fn with_replicas(self, replicas: Vec<(String, Client)>) -> Self {
        DynamoStore { replicas, ..self }
    }

    /// A store whose configuration gets the receipt salt (`RECEIPT_SALT`, [`crate::secret`]),
    /// fetched beside the rest of init; see [`DynamoStore::with_secrets`].
    #[cfg(feature = "secrets")]
    pub fn salted(shared: &aws_config::SdkConfig, config: Config) -> crate::Deferred<DynamoStore> {
        Self::with_secrets(shared, config, &[StoreSecret::ReceiptSalt])
    }

    /// A store whose configuration gets `secrets` ([`crate::secret`]), fetched beside the rest
    /// of init; its warm-up ([`DynamoStore::warm_up`]) follows them. The DynamoDB client is
    /// built now, so init still loads its TLS roots.
    #[cfg(feature = "secrets")]
    pub fn with_secrets(
        shared: &aws_config::SdkConfig,
        config: Config,
        secrets: &'static [StoreSecret],
    ) -> crate::Deferred<DynamoStore> {
        let (shared, client) = (shared.clone(), dynamodb_client_with(shared));
        crate::Deferred::start(move || {
            let (shared, client, mut config) = (shared.clone(), client.clone(), config.clone());
            async move {
                for secret in secrets {
                    config = match secret {
                        StoreSecret::ReceiptSalt => config.with_receipt_salt(crate::secret::load(&shared, "RECEIPT_SALT").await?),
                        StoreSecret::HashKey => {
                            config.with_hash_key(crate::HashKey::new(&crate::secret::load(&shared, "HASH_KEY").await?)?)
                        }
                        StoreSecret::MasterKeys => config.with_key_wrapper_from_env(&shared).await?,
                    };
                }
                let replicas = purge::replica_clients(&shared, &config)?;
                let store = DynamoStore::new(client, config).with_replicas(replicas);
                store.warm_up().await;
                Ok(store)
            }
        })
    }

    /// The same store, reading the time from `clock` (tests move it forward).
    pub fn with_clock(self, clock: Clock) -> Self {
        DynamoStore { clock, ..self }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// With `WARM_UP=1` ([`Config::warm_up`]), call it once during init: one eventually
    /// consistent GetItem of a key that never exists, so that the credentials are resolved and
    /// the connection (on AWS, its TLS session) is open before the first request. Its answer,
    /// even an error such as AccessDenied, is ignored. It costs 0.5 RCU per cold start.
    pub async fn warm_up(&self) {
        if self.config.warm_up {
            let call = self
                .client
                .get_item()
                .table_name(self.table())
                .key(keys::PK, s(keys::session_pk(&Uuid::nil())))
                .key(keys::SK, s(keys::META))
                .send();
            let _ = within(self.config.write_timeout, call).await;
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Capacity consumed by this store since it was built (or last reset).
    pub fn consumed(&self) -> Capacity {
        self.consumed.lock().map(|c| *c).unwrap_or_default()
    }

    pub fn reset_consumed(&self) {
        if let Ok(mut consumed) = self.consumed.lock() {
            *consumed = Capacity::default();
        }
    }

    pub(crate) fn table(&self) -> &str {
        &self.config.table_name
    }

    /// Now (formatted and in epoch seconds) and the expiry of a session written now.
    pub(crate) fn now_with_expiry(&self) -> (String, i64, i64) {
        let now = self.clock.now();
        let now_secs = now.unix_timestamp();
        (clock::format(now), now_secs, now_secs + self.config.session_ttl.as_secs() as i64)
    }

    /// META and the latest summary, in one Query of the two head items.
    pub(crate) async fn read_head(
        &self,
        session_id: &Uuid,
        consistent: bool,
        limit: Duration,
    ) -> Result<(Option<MetaItem>, Option<Summary>), Error> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :meta AND :summary")
            .expression_attribute_values(":pk", s(keys::session_pk(session_id)))
            .expression_attribute_values(":meta", s(keys::META))
            .expression_attribute_values(":summary", s(keys::LATEST_SUMMARY))
            .consistent_read(consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(limit, query).await?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        let mut items = output.items.unwrap_or_default();
        Box::pin(self.open_items(&mut items)).await?;
        let head = SessionItems::sort(items, self.config.write_epoch()?)?;
        Ok((head.meta, head.summary))
    }

    /// META as stored, for the writes that decide on it: its sealed `page_context` is left
    /// closed (it reads as empty), which saves a read of the key. [`PageContextReader`] and
    /// the loads open it.
    pub(crate) async fn read_meta(
        &self,
        session_id: &Uuid,
        consistent: bool,
        limit: Duration,
    ) -> Result<Option<MetaItem>, Error> {
        self.read_meta_item(session_id, consistent, limit).await?.map(from_item).transpose()
    }

    /// META's item as stored, sealed attributes and all.
    pub(crate) async fn read_meta_item(
        &self,
        session_id: &Uuid,
        consistent: bool,
        limit: Duration,
    ) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        self.get_raw_item(keys::session_pk(session_id), keys::META, consistent, limit).await
    }

    /// One GetItem, within `limit`, opened and read back into `T`.
    pub(crate) async fn get_item<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
        consistent: bool,
        limit: Duration,
    ) -> Result<Option<T>, Error> {
        match self.get_raw_item(pk, sk, consistent, limit).await? {
            Some(item) => from_item(Box::pin(self.open_copied_item(&item)).await?).map(Some),
            None => Ok(None),
        }
    }

    /// One GetItem, within `limit`, as stored.
    async fn get_raw_item(
        &self,
        pk: String,
        sk: &str,
        consistent: bool,
        limit: Duration,
    ) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        let output = within(
            limit,
            self.client
                .get_item()
                .table_name(self.table())
                .key(keys::PK, s(pk))
                .key(keys::SK, s(sk))
                .consistent_read(consistent)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        )
        .await?
        .map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        Ok(output.item)
    }
}

/// The items of a session partition a Query returned, told apart by sort key: META, the
/// latest summary, and turns (in the order read).
struct SessionItems {
    meta: Option<MetaItem>,
    summary: Option<Summary>,
    turns: Vec<TurnItem>,
}

impl SessionItems {
    /// `map_epoch`: the home map's failover epoch here ([`crate::chain::Chain::late_past_count`]).
    fn sort(items: Vec<HashMap<String, AttributeValue>>, map_epoch: u64) -> Result<Self, Error> {
        let mut sorted = SessionItems { meta: None, summary: None, turns: Vec::new() };
        let mut latest = None;
        for item in items {
            match item.get(keys::SK).and_then(|sk| sk.as_s().ok()).map(String::as_str) {
                Some(keys::META) => sorted.meta = Some(from_item::<MetaItem>(item)?),
                Some(keys::LATEST_SUMMARY) => latest = Some(from_item::<LatestSummaryItem>(item)?),
                _ => sorted.turns.push(from_item::<TurnItem>(item)?),
            }
        }
        // A summary made of another chain's turns (an old home's, after a failover) is not
        // this session's: it is left out until the home writes its own.
        let chain = sorted.meta.as_ref().map(MetaItem::chain).unwrap_or_default();
        let count = sorted.meta.as_ref().map_or(u64::MAX, |meta| meta.turn_count);
        let other_history = |latest: &LatestSummaryItem| {
            chain.epoch_of(latest.through_turn) != latest.epoch
                || latest.through_turn > count && chain.late_past_count(latest.epoch, map_epoch)
        };
        match latest {
            Some(latest) if other_history(&latest) => {
                tracing::warn!(pk = %latest.pk, through_turn = latest.through_turn, epoch = latest.epoch,
                    "a summary of turns the session's order does not hold is left out");
            }
            Some(latest) => sorted.summary = Some(latest.summary()?),
            None => {}
        }
        Ok(sorted)
    }
}
