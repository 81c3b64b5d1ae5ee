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
    AttributeValue, CancellationReason, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::items::{MetaItem, ResponseItem, SummaryItem, TurnItem};
use crate::model::{Appended, Caller, Context, NewSession, SessionCreated, Summary, TurnDraft};
use crate::{clock, codec, keys, Config, Error};

mod capacity;
mod export;
mod resume;
mod purge;
mod schema;
mod update;
pub use export::TurnExporter;
pub use resume::SessionLister;
pub use purge::{customer_hash, BatchDeleter, CustomerPurger, ItemKey, ReceiptReader, SessionDeleter, BATCH_LIMIT};
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
    fn load_context(
        &self,
        caller: &Caller,
        session_id: Uuid,
        max_turns: usize,
        consistent: bool,
    ) -> impl Future<Output = Result<Context, Error>> + Send;
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
/// Turns and other child items outlive their session's expiry by this long, so that a
/// session kept active for days keeps its early turns.
const CHILD_TTL_GRACE_SECONDS: i64 = 7 * 86_400;

/// The DynamoDB implementation of every store trait.
///
/// ```no_run
/// use tidewater::{Caller, Config, DynamoStore, NewSession, NewTurn, SessionCreator, TurnAppender, ContextLoader};
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
/// };
/// store.append_turn(&alice, session.session_id, turn.validate(&config)?).await?;
/// let context = store.load_context(&alice, session.session_id, 10, false).await?;
/// assert_eq!(context.turns.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct DynamoStore {
    client: Client,
    config: Config,
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
        DynamoStore { client, config, consumed: Mutex::new(Capacity::default()) }
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
        let now = clock::now();
        let now_secs = now.unix_timestamp();
        (clock::format(now), now_secs, now_secs + self.config.session_ttl.as_secs() as i64)
    }

    pub(crate) async fn read_meta(&self, session_id: &Uuid, consistent: bool, limit: Duration) -> Result<Option<MetaItem>, Error> {
        self.get_item(keys::session_pk(session_id), keys::META, consistent, limit).await
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
            summary: None,
            created_at: now.clone(),
            updated_at: now.clone(),
            ttl,
            version: 1,
            gsi1pk: (!caller.is_guest()).then(|| keys::customer_pk(&caller.customer_id)),
            gsi1sk: (!caller.is_guest()).then(|| now.clone()),
        };
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(to_item(&meta)?))
            .condition_expression("attribute_not_exists(PK)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, put).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                Ok(SessionCreated { session_id, created_at: now, expires_at: clock::format_epoch_seconds(ttl), created: true })
            }
            Err(SdkError::ServiceError(e)) if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) => {
                let existing = self.read_meta(&session_id, true, self.config.write_timeout).await?;
                let (_, now_secs, _) = self.now_with_expiry();
                match existing {
                    Some(meta) if meta.owner_id == caller.customer_id && !meta.is_expired(now_secs) => {
                        Ok(SessionCreated {
                            session_id,
                            created_at: meta.created_at,
                            expires_at: clock::format_epoch_seconds(meta.ttl),
                            created: false,
                        })
                    }
                    Some(meta) if meta.owner_id == caller.customer_id => {
                        Err(Error::Conflict("this session id belonged to a session that has expired".to_owned()))
                    }
                    _ => Err(Error::Conflict("this session id is already taken".to_owned())),
                }
            }
            Err(e) => Err(Error::from_store(e)),
        }
    }
}

/// The fields of META that an append needs to decide the next index.
struct AppendBase {
    turn_count: u64,
    summarized_through: u64,
    guest: bool,
}

impl AppendBase {
    fn from_meta(meta: &MetaItem, caller: &Caller, now_secs: i64) -> Result<Self, Error> {
        if meta.owner_id != caller.customer_id || meta.is_expired(now_secs) {
            return Err(Error::NotFound);
        }
        Ok(AppendBase { turn_count: meta.turn_count, summarized_through: meta.summarized_through, guest: meta.guest })
    }
}

impl TurnAppender for DynamoStore {
    async fn append_turn(&self, caller: &Caller, session_id: Uuid, turn: TurnDraft) -> Result<Appended, Error> {
        let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?;
        let mut base = AppendBase::from_meta(&meta, caller, clock::now().unix_timestamp())?;
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
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    TransactWriteItemsError::TransactionCanceledException(cancelled) => {
                        cancelled.cancellation_reasons.unwrap_or_default()
                    }
                    TransactWriteItemsError::TransactionInProgressException(_) => Vec::new(),
                    other => return Err(Error::from_store(other)),
                },
                Err(e) => return Err(Error::from_store(e)),
            };

            if let Some(existing) = failed_item::<ResponseItem>(&reasons, 0)? {
                return if existing.payload_hash == payload_hash {
                    tracing::info!(%session_id, turn_index = existing.turn_index, "duplicate append");
                    Ok(Appended { turn_index: existing.turn_index, duplicate: true })
                } else {
                    Err(Error::Conflict("this response_id was already used with a different payload".to_owned()))
                };
            }
            if condition_failed(&reasons, 2) {
                // Someone else took the index, or the session went away: the old META says which.
                let meta: MetaItem = failed_item(&reasons, 2)?.ok_or(Error::NotFound)?;
                base = AppendBase::from_meta(&meta, caller, clock::now().unix_timestamp())?;
                continue;
            }
            // A transaction conflict: another append is in flight. Back off, then re-read.
            tokio::time::sleep(backoff(attempt)).await;
            let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?;
            base = AppendBase::from_meta(&meta, caller, clock::now().unix_timestamp())?;
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
        let child_ttl = ttl + CHILD_TTL_GRACE_SECONDS;

        let response = ResponseItem {
            pk: pk.clone(),
            sk: keys::response_sk(&turn.response_id),
            turn_index: index,
            payload_hash: payload_hash.to_owned(),
            ttl: child_ttl,
        };
        let turn_item = TurnItem {
            pk: pk.clone(),
            sk: keys::turn_sk(index),
            role: turn.role,
            content: content.to_vec(),
            intent: turn.intent.clone(),
            token_count: turn.token_count,
            created_at: now.clone(),
            ttl: child_ttl,
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
        if !base.guest {
            set.push("GSI1SK = :now");
        }
        if index.saturating_sub(base.summarized_through) >= self.config.summary_threshold {
            set.push("needs_summary = :due");
            values.insert(":due".to_owned(), AttributeValue::Bool(true));
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
        max_turns: usize,
        consistent: bool,
    ) -> Result<Context, Error> {
        let pk = keys::session_pk(&session_id);
        let meta = self.read_meta(&session_id, consistent, self.config.load_deadline);
        let recent_turns = within(
            self.config.load_deadline,
            self.client
                .query()
                .table_name(self.table())
                .key_condition_expression("PK = :pk AND begins_with(SK, :turn)")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":turn", s(keys::TURN_PREFIX))
                .scan_index_forward(false)
                .limit(max_turns.min(i32::MAX as usize) as i32)
                .consistent_read(consistent)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send(),
        );
        let (meta, recent_turns) = tokio::join!(meta, recent_turns);
        let recent_turns = recent_turns?.map_err(Error::from_store)?;
        self.record_read(recent_turns.consumed_capacity());

        let meta = meta?.ok_or(Error::NotFound)?;
        let readable = meta.owner_id == caller.customer_id || caller.is_support();
        if !readable || meta.is_expired(clock::now().unix_timestamp()) {
            return Err(Error::NotFound);
        }

        let mut turns = Vec::with_capacity(recent_turns.items().len());
        for item in recent_turns.items.unwrap_or_default().into_iter().rev() {
            let turn: TurnItem = from_item(item)?;
            // The two reads ran in parallel; keep the view consistent with the META we read.
            if turn.turn_index()? <= meta.turn_count {
                turns.push(turn.into_turn()?);
            }
        }
        let summary = meta
            .summary_text()?
            .map(|text| Summary { text, through_turn: meta.summarized_through });
        Ok(Context { session: Some(meta.session()), summary, turns, degraded: false, version: Some(meta.version) })
    }
}

impl SummaryWriter for DynamoStore {
    async fn put_summary(&self, session_id: Uuid, through_turn: u64, text: &str) -> Result<bool, Error> {
        let (now, _, ttl) = self.now_with_expiry();
        let pk = keys::session_pk(&session_id);
        let compressed = codec::compress(text);
        let summary = SummaryItem {
            pk: pk.clone(),
            sk: keys::summary_sk(through_turn),
            through_turn,
            text: compressed.clone(),
            created_at: now,
            ttl: ttl + CHILD_TTL_GRACE_SECONDS,
        };
        let meta_update = Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::META))
            .update_expression(
                "SET summary = :summary, summarized_through = :through, needs_summary = :done, version = version + :one",
            )
            .condition_expression("attribute_exists(PK) AND summarized_through < :through AND turn_count >= :through")
            .expression_attribute_values(":summary", AttributeValue::B(compressed.into()))
            .expression_attribute_values(":through", n(through_turn))
            .expression_attribute_values(":done", AttributeValue::Bool(false))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(Error::unavailable)?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(self.put_new(to_item(&summary)?, false)?).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, transaction).await? {
            Ok(output) => {
                self.record(output.consumed_capacity());
                tracing::info!(%session_id, through_turn, "summary written");
                Ok(true)
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), TransactWriteItemsError::TransactionCanceledException(c)
                    if c.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))) =>
            {
                tracing::info!(%session_id, through_turn, "summary already written");
                Ok(false)
            }
            Err(e) => Err(Error::from_store(e)),
        }
    }
}

pub(crate) async fn within<T>(limit: Duration, call: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(limit, call).await.map_err(Error::unavailable)
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.min(4);
    let jitter = Uuid::new_v4().as_u128() as u64 % ceiling_ms.max(1);
    Duration::from_millis(2 + jitter)
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
