//! The store: the one place that knows DynamoDB.
//!
//! Handlers depend on the narrow traits ([`SessionCreator`], [`TurnAppender`],
//! [`ContextLoader`], [`SummaryWriter`]); [`DynamoStore`] implements them all.
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::{self, Clock};
use crate::items::{LatestSummaryItem, MetaItem, ResponseItem, SummaryItem, TurnItem};
use crate::model::{
    envelope_len, Appended, Caller, Context, ContextRequest, NewSession, Omitted, SessionCreated,
    Summary, Turn, TurnDraft, CONTEXT_BODY_BUDGET_BYTES, MAX_MAX_TURNS,
};
use crate::{codec, keys, Config, Error};

mod capacity;
mod export;
// Long-term customer memory (issue 14).
mod memory;
pub use memory::{MemoryDeleter, MemoryReader, MemoryWriter, TOMBSTONE_TTL_SECONDS};
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

/// How many times an append retries after losing a race for the next turn index.
const MAX_APPEND_ATTEMPTS: u32 = 60;

/// The DynamoDB implementation of every store trait.
///
/// ```no_run
/// use tidewater::{Caller, Config, ContextLoader, ContextRequest, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender};
///
/// # async fn example() -> Result<(), tidewater::Error> {
/// let config = Config::from_env()?;
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
///, item: None };
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
}

/// Builds a DynamoDB client from the environment. `AWS_ENDPOINT_URL_DYNAMODB` points it at
/// DynamoDB Local. With `AWS_REGION` set (always, on Lambda) it makes no network call: without
/// it, the SDK probes the instance metadata service for a region during start-up.
pub async fn dynamodb_client() -> Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    Client::new(&shared)
}

impl DynamoStore {
    pub fn new(client: Client, config: Config) -> Self {
        DynamoStore {
            client,
            config,
            clock: Clock::system(),
            consumed: Mutex::new(Capacity::default()),
        }
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
        let head = SessionItems::sort(output.items.unwrap_or_default())?;
        Ok((head.meta, head.summary))
    }

    pub(crate) async fn read_meta(
        &self,
        session_id: &Uuid,
        consistent: bool,
        limit: Duration,
    ) -> Result<Option<MetaItem>, Error> {
        self.get_item(keys::session_pk(session_id), keys::META, consistent, limit)
            .await
    }

    /// One GetItem, within `limit`, read back into `T`.
    pub(crate) async fn get_item<T: DeserializeOwned>(
        &self,
        pk: String,
        sk: &str,
        consistent: bool,
        limit: Duration,
    ) -> Result<Option<T>, Error> {
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
        output.item.map(from_item).transpose()
    }
}

impl SessionCreator for DynamoStore {
    async fn create_session(&self, caller: &Caller, request: NewSession) -> Result<SessionCreated, Error> {
        request.validate()?;
        let chosen_id = request.session_id.is_some();
        let session_id = request.session_id.unwrap_or_else(Uuid::new_v4);
        let (now, _, ttl) = self.now_with_expiry();
        let meta = MetaItem {
            pk: keys::session_pk(&session_id),
            sk: keys::META.to_owned(),
            session_id,
            owner_id: caller.customer_id.clone(),
            guest: caller.is_guest(),
            page_context: request.page_context.unwrap_or_default(),
            turn_count: 0,
            summarized_through: 0,
            needs_summary: false,
            retracted_turns: 0,
            summary_rearm: false,
            created_at: now.clone(),
            updated_at: now.clone(),
            ttl,
            version: 1,
            gsi1pk: (!caller.is_guest()).then(|| keys::customer_pk(&caller.customer_id)),
            gsi1sk: (!caller.is_guest()).then(|| now.clone()),
            listed_turn_count: (!caller.is_guest()).then_some(0),
        };
        if chosen_id && self.leftovers_without_meta(&session_id).await? {
            return Err(Error::SessionIdUnavailable);
        }
        let created =
            SessionCreated { session_id, created_at: now.clone(), expires_at: clock::format_epoch_seconds(ttl), created: true };
        let id_taken =
            if caller.is_guest() { self.put_guest_meta(&meta).await? } else { self.put_registered_meta(caller, &meta).await? };
        if !id_taken {
            return Ok(created);
        }
        let existing = self.read_meta(&session_id, true, self.config.write_timeout).await?;
        let now_secs = self.clock.now_epoch_seconds();
        match existing {
            Some(meta) if meta.owner_id == caller.customer_id && !meta.is_expired(now_secs) => Ok(SessionCreated {
                session_id,
                created_at: meta.created_at,
                expires_at: clock::format_epoch_seconds(meta.ttl),
                created: false,
            }),
            Some(meta) if meta.owner_id == caller.customer_id => Err(Error::SessionIdUnavailable),
            _ => Err(Error::Conflict("this session id is already taken".to_owned())),
        }
    }
}

/// The positions of a signed-in customer's create transaction.
mod create_position {
    pub const META: usize = 0;
    pub const LEDGER: usize = 2;
}

impl DynamoStore {
    /// Whether items of an earlier session with this id remain while its META is gone (after
    /// TTL removed it, or a deletion was cut off): such an id cannot be used again until the
    /// sweep has removed them.
    async fn leftovers_without_meta(&self, session_id: &Uuid) -> Result<bool, Error> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(keys::session_pk(session_id)))
            .projection_expression("SK")
            // Newest first, the session's head (`~SUMMARY`, `~META`) comes before any child.
            .scan_index_forward(false)
            .limit(2)
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(self.config.write_timeout, query).await?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        let mut sort_keys = output.items().iter().filter_map(|item| item.get(keys::SK)?.as_s().ok());
        let has_meta = sort_keys.clone().any(|sk| sk == keys::META);
        Ok(!has_meta && sort_keys.next().is_some())
    }

    /// A guest's META: one conditional put. Returns whether the id was already taken.
    async fn put_guest_meta(&self, meta: &MetaItem) -> Result<bool, Error> {
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(to_item(meta)?))
            .condition_expression("attribute_not_exists(PK)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, put).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                Ok(false)
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                Ok(true)
            }
            Err(e) => Err(Error::from_store(e)),
        }
    }

    /// A signed-in customer's META and its registry entry, in one transaction that also
    /// checks that no purge of the customer is under way: a session is either registered
    /// before a purge opens its ledger (and purged), or refused. Returns whether the id was
    /// already taken.
    async fn put_registered_meta(&self, caller: &Caller, meta: &MetaItem) -> Result<bool, Error> {
        let hash = self.customer_hash(&caller.customer_id)?;
        let registry = HashMap::from([
            (keys::PK.to_owned(), s(keys::privacy_pk(&hash))),
            (keys::SK.to_owned(), s(keys::registry_sk(&meta.session_id))),
            ("session_id".to_owned(), s(meta.session_id.to_string())),
        ]);
        let no_purge = ConditionCheck::builder()
            .table_name(self.table())
            .key(keys::PK, s(keys::privacy_pk(&hash)))
            .key(keys::SK, s(keys::PURGE_LEDGER))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(Error::unavailable)?;
        let registry = Put::builder().table_name(self.table()).set_item(Some(registry)).build().map_err(Error::unavailable)?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(self.put_new(to_item(meta)?, false)?).build())
            .transact_items(TransactWriteItem::builder().put(registry).build())
            .transact_items(TransactWriteItem::builder().condition_check(no_purge).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, transaction).await? {
            Ok(output) => {
                self.record(output.consumed_capacity());
                Ok(false)
            }
            Err(e) => {
                let reasons = cancellation_reasons(e)?;
                if condition_failed(&reasons, create_position::LEDGER) {
                    Err(Error::Conflict("this customer's data is being purged; retry once the purge has finished".into()))
                } else if condition_failed(&reasons, create_position::META) {
                    Ok(true)
                } else {
                    Err(Error::Unavailable("the session creation conflicted with another write".into()))
                }
            }
        }
    }
}

/// The positions of an append transaction, as `CancellationReasons` lists them.
mod append_position {
    pub const RESPONSE: usize = 0;
    pub const TURN: usize = 1;
    pub const META: usize = 2;
}

/// While a due summary has not landed, every this many appends flip META's `summary_rearm`,
/// which the stream filter matches, so the summariser is asked again.
pub const SUMMARY_REARM_TURNS: u64 = 10;

/// The fields of META that an append needs to decide the next index.
struct AppendBase {
    turn_count: u64,
    summarized_through: u64,
    /// The customer index's sort key; `None` for guests, who are not in the index.
    listed_at: Option<String>,
}

impl AppendBase {
    fn from_meta(meta: MetaItem, caller: &Caller, now_secs: i64) -> Result<Self, Error> {
        if meta.owner_id != caller.customer_id || meta.is_expired(now_secs) {
            return Err(Error::NotFound);
        }
        Ok(AppendBase {
            turn_count: meta.turn_count,
            summarized_through: meta.summarized_through,
            listed_at: if meta.guest { None } else { meta.gsi1sk },
        })
    }
}

impl TurnAppender for DynamoStore {
    async fn append_turn(
        &self,
        caller: &Caller,
        session_id: Uuid,
        turn: TurnDraft,
    ) -> Result<Appended, Error> {
        let meta = self
            .read_meta(&session_id, true, self.config.write_timeout)
            .await?
            .ok_or(Error::NotFound)?;
        let mut base = AppendBase::from_meta(meta, caller, self.clock.now_epoch_seconds())?;
        let content = codec::compress(&turn.content);
        let payload_hash = turn.payload_hash();

        for attempt in 0..MAX_APPEND_ATTEMPTS {
            let transaction = self.append_transaction(caller, &session_id, &turn, &content, &payload_hash, &base)?;
            let index = base.turn_count + 1;
            let sent = within(self.config.write_timeout, transaction.send()).await?;
            let reasons = match sent {
                Ok(output) => {
                    self.record(output.consumed_capacity());
                    tracing::info!(%session_id, turn_index = index, attempt, "turn appended");
                    return Ok(Appended { turn_index: index, duplicate: false });
                }
                Err(e) => cancellation_reasons(e)?,
            };

            if let Some(existing) = failed_item::<ResponseItem>(&reasons, append_position::RESPONSE)? {
                return if existing.payload_hash == payload_hash {
                    tracing::info!(%session_id, turn_index = existing.turn_index, "duplicate append");
                    Ok(Appended { turn_index: existing.turn_index, duplicate: true })
                } else {
                    Err(Error::Conflict("this response_id was already used with a different payload".to_owned()))
                };
            }
            if condition_failed(&reasons, append_position::META) {
                // Someone else took the index, or the session went away: the old META says which.
                let meta: MetaItem = failed_item(&reasons, append_position::META)?.ok_or(Error::NotFound)?;
                base = AppendBase::from_meta(meta, caller, self.clock.now_epoch_seconds())?;
                continue;
            }
            let turn_taken = condition_failed(&reasons, append_position::TURN);
            if !turn_taken {
                // A transaction conflict: another append is in flight. Back off first.
                tokio::time::sleep(backoff(attempt)).await;
            }
            let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?;
            let fresh = AppendBase::from_meta(meta, caller, self.clock.now_epoch_seconds())?;
            if turn_taken && fresh.turn_count == base.turn_count {
                // TURN#n exists although META counts n-1: an item no append of this session wrote.
                tracing::error!(%session_id, turn_index = index, "a turn item exists beyond the session's count");
                return Err(Error::SessionIdUnavailable);
            }
            base = fresh;
        }
        Err(Error::Unavailable("too many concurrent appends to this session".into()))
    }
}

impl DynamoStore {
    /// One transaction: claim the response id, write the turn, and move META's counter from
    /// `turn_count` to `turn_count + 1`. Any concurrent append to the same session breaks the
    /// last condition, so indices stay gap-free, and a reused response id breaks the first.
    fn append_transaction(
        &self,
        caller: &Caller,
        session_id: &Uuid,
        turn: &TurnDraft,
        content: &[u8],
        payload_hash: &str,
        base: &AppendBase,
    ) -> Result<aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder, Error>
    {
        let (now, now_secs, ttl) = self.now_with_expiry();
        let index = base.turn_count + 1;
        let pk = keys::session_pk(session_id);

        let response = ResponseItem {
            pk: pk.clone(),
            sk: keys::response_sk(&turn.response_id),
            turn_index: index,
            payload_hash: payload_hash.to_owned(),
        };
        let turn_item = TurnItem {
            pk: pk.clone(),
            sk: keys::turn_sk(index),
            role: turn.role,
            content: content.to_vec(),
            intent: turn.intent.clone(),
            token_count: turn.token_count,
            created_at: now.clone(),
            item: turn.item.as_ref().map(codec::compress_json),
            retracted_at: None,
        };

        let mut set = vec![
            "turn_count = :index",
            "updated_at = :now",
            "#ttl = :ttl",
            "version = version + :one",
        ];
        let mut values = HashMap::from([
            (":index".to_owned(), n(index)),
            (":previous".to_owned(), n(base.turn_count)),
            (":now".to_owned(), s(&now)),
            (":now_secs".to_owned(), n(now_secs)),
            (":ttl".to_owned(), n(ttl)),
            (":one".to_owned(), n(1)),
            (":owner".to_owned(), s(&caller.customer_id)),
        ]);
        if let Some(listed_at) = &base.listed_at {
            // The index entry is rewritten only when the activity has moved a full step.
            let listed_secs = clock::parse_epoch_seconds(listed_at).unwrap_or(i64::MIN);
            if now_secs.saturating_sub(listed_secs)
                >= self.config.resume_order_step.as_secs() as i64
            {
                set.push("GSI1SK = :now");
                set.push("listed_turn_count = :index");
            }
        }
        let due_at = self.config.summary_due_at(base.summarized_through);
        if index >= due_at {
            set.push("needs_summary = :due");
            values.insert(":due".to_owned(), AttributeValue::Bool(true));
        }
        if index >= due_at + SUMMARY_REARM_TURNS {
            set.push("summary_rearm = :rearm");
            let flipped = ((index - due_at) / SUMMARY_REARM_TURNS) % 2 == 1;
            values.insert(":rearm".to_owned(), AttributeValue::Bool(flipped));
        }
        let meta_update = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::META))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression("turn_count = :previous AND owner_id = :owner AND #ttl > :now_secs")
            .expression_attribute_names("#ttl", "ttl")
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)?;

        Ok(self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(self.put_new(to_item(&response)?, true)?).build())
            .transact_items(TransactWriteItem::builder().put(self.put_new(to_item(&turn_item)?, false)?).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .client_request_token(request_token(&[&pk, &turn.response_id, &index.to_string(), &now]))
            .return_consumed_capacity(ReturnConsumedCapacity::Total))
    }

    pub(crate) fn put_new(&self, item: HashMap<String, AttributeValue>, return_old: bool) -> Result<Put, Error> {
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)");
        if return_old {
            put = put.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        put.build().map_err(Error::unavailable)
    }
}

impl ContextLoader for DynamoStore {
    async fn load_context(
        &self,
        caller: &Caller,
        session_id: Uuid,
        request: ContextRequest,
    ) -> Result<Context, Error> {
        let deadline = tokio::time::Instant::now() + self.config.load_deadline;
        let wanted = request
            .max_turns
            .unwrap_or(MAX_MAX_TURNS)
            .clamp(1, MAX_MAX_TURNS);
        // Without max_turns, the first read covers a settled backlog (at most threshold +
        // keep_recent - 1 turns after the summary); a longer backlog takes a second read.
        let first_read = if request.max_turns.is_some() {
            wanted
        } else {
            wanted.min(self.settled_backlog())
        };
        let pk = keys::session_pk(&session_id);
        let head = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :head")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":first", s(keys::turn_sk(1)))
            .expression_attribute_values(":head", s(keys::LATEST_SUMMARY))
            .scan_index_forward(false)
            .limit((first_read + 2) as i32)
            .consistent_read(request.consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let head = within_deadline(deadline, head)
            .await?
            .map_err(Error::from_store)?;
        self.record_read(head.consumed_capacity());
        let more_below = head
            .last_evaluated_key
            .as_ref()
            .is_some_and(|k| !k.is_empty());

        let SessionItems { meta, summary, turns: newest_first } = SessionItems::sort(head.items.unwrap_or_default())?;
        let meta = meta.ok_or(Error::NotFound)?;
        let readable = meta.owner_id == caller.customer_id || caller.is_support();
        if !readable || meta.is_expired(self.clock.now_epoch_seconds()) {
            return Err(Error::NotFound);
        }
        let summarized = summary
            .as_ref()
            .map_or(0, |latest| latest.through_turn)
            .min(meta.turn_count);
        let mut window = TurnWindow::new(meta.turn_count, summarized, wanted);
        for item in newest_first {
            window.push(item)?;
        }
        if window.wants_older() && more_below {
            // Turns below the first read were committed before it, so a consistent read sees them all.
            let (from, to) = (summarized + 1, window.oldest_index() - 1);
            // Every retracted turn could lie below: read that many more.
            let limit = window.room() + (meta.retracted_turns as usize).min(MAX_MAX_TURNS);
            let older = self
                .turns_newest_first(&pk, from, to, limit, deadline)
                .await?;
            for item in older {
                window.push(item)?;
            }
        }
        let mut session = meta.session();
        session.turn_count = window.turn_count();
        let mut context = Context {
            session: Some(session),
            summary,
            omitted: None,
            turns: Vec::new(),
            degraded: false,
            version: Some(meta.version),
        };
        let (turns, omitted) = window.fit(
            request.max_tokens,
            CONTEXT_BODY_BUDGET_BYTES - envelope_len(&context),
        );
        context.turns = turns;
        context.omitted = omitted;
        Ok(context)
    }

    async fn context_version(
        &self,
        caller: &Caller,
        session_id: Uuid,
        consistent: bool,
    ) -> Result<u64, Error> {
        let meta = self
            .read_meta(&session_id, consistent, self.config.load_deadline)
            .await?
            .ok_or(Error::NotFound)?;
        let readable = meta.owner_id == caller.customer_id || caller.is_support();
        if !readable || meta.is_expired(self.clock.now_epoch_seconds()) {
            return Err(Error::NotFound);
        }
        Ok(meta.version)
    }
}

impl DynamoStore {
    /// The most unsummarised turns a settled session has: the summary trails the newest turn
    /// by fewer than a window plus the kept turns.
    fn settled_backlog(&self) -> usize {
        (self.config.summary_threshold + self.config.summary_keep_recent)
            .clamp(1, MAX_MAX_TURNS as u64) as usize
    }

    /// Turns `from..=to`, newest first, at most `limit`, strongly consistent.
    async fn turns_newest_first(
        &self,
        pk: &str,
        from: u64,
        to: u64,
        limit: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<TurnItem>, Error> {
        if to < from || limit == 0 {
            return Ok(Vec::new());
        }
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":from", s(keys::turn_sk(from)))
            .expression_attribute_values(":to", s(keys::turn_sk(to)))
            .scan_index_forward(false)
            .limit(limit.min(2 * MAX_MAX_TURNS) as i32)
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within_deadline(deadline, query)
            .await?
            .map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }
}

/// The unsummarised turns of a load, gathered newest first: only the contiguous run that
/// ends at the session's newest turn and stays above the summary.
struct TurnWindow {
    turn_count: u64,
    summarized: u64,
    wanted: usize,
    /// The newest turn this read can vouch for; lower than `turn_count` only when META's
    /// newest turn was not yet visible to the read.
    newest: Option<u64>,
    /// The oldest turn read so far, retracted or not: the next one must be just below it.
    oldest_read: Option<u64>,
    turns: Vec<Turn>,
    /// Retracted turns read: never in `turns` (nor counted against `wanted`), nor in `omitted`.
    retracted: Vec<u64>,
    closed: bool,
}

impl TurnWindow {
    fn new(turn_count: u64, summarized: u64, wanted: usize) -> Self {
        TurnWindow {
            turn_count,
            summarized,
            wanted,
            newest: None,
            oldest_read: None,
            turns: Vec::new(),
            retracted: Vec::new(),
            closed: false,
        }
    }

    fn push(&mut self, item: TurnItem) -> Result<(), Error> {
        let index = item.turn_index()?;
        if self.closed
            || index > self.turn_count
            || index <= self.summarized
            || self.turns.len() >= self.wanted
        {
            return Ok(());
        }
        let expected = self.oldest_read.map_or(self.turn_count, |oldest| oldest - 1);
        if index != expected && !(self.oldest_read.is_none() && index < expected) {
            self.closed = true;
            return Ok(());
        }
        self.newest.get_or_insert(index);
        self.oldest_read = Some(index);
        if item.retracted_at.is_some() {
            self.retracted.push(index);
        } else {
            self.turns.push(item.into_turn()?);
        }
        Ok(())
    }

    fn turn_count(&self) -> u64 {
        self.newest.unwrap_or(self.turn_count)
    }

    fn oldest_index(&self) -> u64 {
        self.oldest_read.unwrap_or(self.turn_count + 1)
    }

    fn room(&self) -> usize {
        self.wanted.saturating_sub(self.turns.len())
    }

    fn wants_older(&self) -> bool {
        !self.closed && self.room() > 0 && self.oldest_index() > self.summarized + 1
    }

    /// The turns, oldest first, cut from the oldest end to fit `max_tokens` and `budget`
    /// bytes of body, and the unsummarised turns left out.
    fn fit(self, max_tokens: Option<u64>, budget: usize) -> (Vec<Turn>, Option<Omitted>) {
        let newest = self.turn_count();
        let mut kept = Vec::with_capacity(self.turns.len());
        let (mut tokens, mut bytes) = (0u64, 0usize);
        for turn in self.turns {
            tokens = tokens.saturating_add(turn.tokens());
            bytes = bytes.saturating_add(envelope_len(&turn) + 1);
            if max_tokens.is_some_and(|max| tokens > max) || bytes > budget {
                break;
            }
            kept.push(turn);
        }
        kept.reverse();
        let first_kept = kept.first().map_or(newest + 1, |t| t.turn_index);
        // A retracted turn is in no context: `omitted` does not end on one this read saw.
        let mut to_turn = first_kept - 1;
        while self.retracted.contains(&to_turn) {
            to_turn -= 1;
        }
        let omitted = (to_turn > self.summarized).then(|| Omitted {
            from_turn: self.summarized + 1,
            to_turn,
        });
        (kept, omitted)
    }
}

/// The positions of a summary transaction.
mod summary_position {
    pub const LATEST: usize = 1;
    pub const META: usize = 2;
}

impl SummaryWriter for DynamoStore {
    async fn put_summary(&self, session_id: Uuid, through_turn: u64, text: &str) -> Result<bool, Error> {
        let now = clock::format(self.clock.now());
        let pk = keys::session_pk(&session_id);
        let compressed = codec::compress(text);
        // The window's history item is plain put: a repeat of the same window rewrites it.
        let history = SummaryItem {
            pk: pk.clone(),
            sk: keys::summary_sk(through_turn),
            through_turn,
            text: compressed.clone(),
            created_at: now.clone(),
        };
        let latest = LatestSummaryItem {
            pk: pk.clone(),
            sk: keys::LATEST_SUMMARY.to_owned(),
            through_turn,
            text: compressed,
            created_at: now,
        };
        let history = Put::builder().table_name(self.table()).set_item(Some(to_item(&history)?)).build().map_err(Error::unavailable)?;
        let latest = Put::builder()
            .table_name(self.table())
            .set_item(Some(to_item(&latest)?))
            .condition_expression("attribute_not_exists(PK) OR through_turn < :through")
            .expression_attribute_values(":through", n(through_turn))
            .build()
            .map_err(Error::unavailable)?;
        let meta_update = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::META))
            .update_expression("SET summarized_through = :through, needs_summary = :done, version = version + :one")
            .condition_expression("attribute_exists(PK) AND summarized_through < :through AND turn_count >= :through")
            .expression_attribute_values(":through", n(through_turn))
            .expression_attribute_values(":done", AttributeValue::Bool(false))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(history).build())
            .transact_items(TransactWriteItem::builder().put(latest).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let reasons = match within(self.config.write_timeout, transaction).await? {
            Ok(output) => {
                self.record(output.consumed_capacity());
                tracing::info!(%session_id, through_turn, "summary written");
                return Ok(true);
            }
            Err(e) => cancellation_reasons(e)?,
        };
        if condition_failed(&reasons, summary_position::META) {
            return match failed_item::<MetaItem>(&reasons, summary_position::META)? {
                None => {
                    tracing::info!(%session_id, through_turn, "session is gone; summary not written");
                    Ok(false)
                }
                Some(meta) if meta.summarized_through >= through_turn => {
                    tracing::info!(%session_id, through_turn, "summary already written");
                    Ok(false)
                }
                Some(meta) => Err(Error::Conflict(format!(
                    "a summary through turn {through_turn} was refused: the session has {} turns",
                    meta.turn_count
                ))),
            };
        }
        if condition_failed(&reasons, summary_position::LATEST) {
            return Err(Error::Corrupt(
                format!("the latest summary is past turn {through_turn} while the session's watermark is not").into(),
            ));
        }
        Err(Error::Unavailable("the summary write conflicted with another write".into()))
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
    fn sort(items: Vec<HashMap<String, AttributeValue>>) -> Result<Self, Error> {
        let mut sorted = SessionItems { meta: None, summary: None, turns: Vec::new() };
        for item in items {
            match item.get(keys::SK).and_then(|sk| sk.as_s().ok()).map(String::as_str) {
                Some(keys::META) => sorted.meta = Some(from_item::<MetaItem>(item)?),
                Some(keys::LATEST_SUMMARY) => sorted.summary = Some(from_item::<LatestSummaryItem>(item)?.summary()?),
                _ => sorted.turns.push(from_item::<TurnItem>(item)?),
            }
        }
        Ok(sorted)
    }
}

pub(crate) async fn within<T>(limit: Duration, call: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(limit, call).await.map_err(Error::unavailable)
}

pub(crate) async fn within_deadline<T>(
    deadline: tokio::time::Instant,
    call: impl Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout_at(deadline, call)
        .await
        .map_err(Error::unavailable)
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.min(4);
    let jitter = Uuid::new_v4().as_u128() as u64 % ceiling_ms.max(1);
    Duration::from_millis(2 + jitter)
}

/// Why DynamoDB cancelled a transaction, one reason per item in the order sent; none when it
/// was refused for a concurrent transaction on the same items (`TransactionInProgress`). Any
/// other failure is returned as the store error it is.
pub(crate) fn cancellation_reasons<R>(error: SdkError<TransactWriteItemsError, R>) -> Result<Vec<CancellationReason>, Error>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(e) => match e.into_err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => Ok(cancelled.cancellation_reasons.unwrap_or_default()),
            TransactWriteItemsError::TransactionInProgressException(_) => Ok(Vec::new()),
            other => Err(Error::from_store(other)),
        },
        other => Err(Error::from_store(other)),
    }
}

pub(crate) fn condition_failed(reasons: &[CancellationReason], position: usize) -> bool {
    reasons.get(position).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

/// The old item DynamoDB returned for a failed condition at `position` of a transaction.
pub(crate) fn failed_item<T: DeserializeOwned>(reasons: &[CancellationReason], position: usize) -> Result<Option<T>, Error> {
    if !condition_failed(reasons, position) {
        return Ok(None);
    }
    reasons[position].item.clone().map(from_item).transpose()
}

/// A transaction's idempotency token. It names one attempt (its timestamp included), so the
/// SDK's own retry of that attempt is answered with the first try's success, while a new
/// attempt is judged by the conditions.
pub(crate) fn request_token(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().iter().take(18).map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, Error> {
    serde_dynamo::to_item(value).map_err(Error::corrupt)
}

pub(crate) fn from_item<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T, Error> {
    serde_dynamo::from_item(item).map_err(Error::corrupt)
}
