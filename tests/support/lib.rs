//! Test support: a fresh table in DynamoDB Local per test, and API Gateway requests as the
//! HTTP API's JWT authorizer delivers them.
use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use tidewater::{keys, Caller, Config, CursorKey, DynamoStore, HashKey, OfflineRedactor, Secret};
use uuid::Uuid;

pub mod sim;

/// The tests' receipt salt. The functions have no default and read theirs at init.
pub const TEST_RECEIPT_SALT: &str = "tidewater-test-receipt-salt-not-deployed";
/// The tests' key of stored hashes of customer text.
pub const TEST_HASH_KEY: &str = "tidewater-test-hash-key-not-deployed-anywhere";
/// The receipt salt and hash key `make run` uses (scripts/serve-local.sh): a sample event
/// that names a fact (`events/delete-memory.json`) names its id under these, so that it works
/// with `cargo lambda invoke` against `make run` as well as in its test.
pub const LOCAL_RECEIPT_SALT: &str = "tidewater-local-receipt-salt-do-not-deploy";
pub const LOCAL_HASH_KEY: &str = "tidewater-local-hash-key-do-not-deploy-anywhere";

/// The configuration of `make run`'s secrets, for the samples that depend on them.
pub fn with_local_secrets(config: Config) -> Config {
    let salt = Secret::new("RECEIPT_SALT", LOCAL_RECEIPT_SALT).expect("the local salt is long enough");
    let key = Secret::new("HASH_KEY", LOCAL_HASH_KEY).expect("the local key is long enough");
    config.with_receipt_salt(salt).with_hash_key(HashKey::new(&key).expect("a usable key"))
}

/// The tests' master key (a master key file's text): every test store encrypts content, as
/// `make run` does with its own `.run/master-key`.
pub const TEST_MASTER_KEYS: &str = "test-1 dGlkZXdhdGVyLXRlc3QtbWFzdGVyLWtleS0zMi1ieXQ=";

pub fn test_master_keys() -> Secret {
    Secret::new("MASTER_KEYS", TEST_MASTER_KEYS).expect("the test master key is long enough")
}

/// The tests' cursor key.
pub const TEST_CURSOR_SECRET: &str = "tidewater-test-cursor-secret-not-deployed";

pub fn test_receipt_salt() -> Secret {
    Secret::new("RECEIPT_SALT", TEST_RECEIPT_SALT).expect("the test salt is long enough")
}

pub fn test_hash_key() -> HashKey {
    HashKey::new(&Secret::new("HASH_KEY", TEST_HASH_KEY).expect("the test key is long enough")).expect("a usable test key")
}

pub fn test_cursor_key() -> CursorKey {
    CursorKey::new(&Secret::new("CURSOR_SECRET", TEST_CURSOR_SECRET).expect("the test key is long enough"))
        .expect("a usable test key")
}

/// A store on a table of its own, so tests run in parallel without seeing each other. It
/// holds [`TEST_RECEIPT_SALT`] and [`TEST_HASH_KEY`] unless `config` brings its own, and a
/// [`tidewater::clock::Clock::manual`] clock.
pub async fn fresh_store(config: Config) -> Arc<DynamoStore> {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "these tests need DynamoDB Local; run them with `make test`"
    );
    let config = Config {
        table_name: format!("test-{}", Uuid::new_v4()),
        receipt_salt: config.receipt_salt.or_else(|| Some(test_receipt_salt())),
        hash_key: config.hash_key.or_else(|| Some(test_hash_key())),
        ..config
    };
    let config = match config.encryption {
        Some(_) => config,
        None => config.with_master_keys(&test_master_keys()).expect("a usable test master key"),
    };
    // A manual clock: a purge's wait for key leases moves it rather than sleeping.
    let store = DynamoStore::new(tidewater::dynamodb_client().await, config).with_clock(tidewater::clock::Clock::manual());
    store.create_table().await.expect("create the test table");
    Arc::new(store)
}

/// A store whose DynamoDB endpoint is a closed port: every call fails at once.
pub async fn unreachable_store() -> DynamoStore {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{closed_port}"))
        .load()
        .await;
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&shared), Config::default().with_receipt_salt(test_receipt_salt()))
}

/// A client whose requests pass a fault proxy (`make chaos`'s) running `plan` in front of
/// DynamoDB Local, with the SDK's retries off so that each fault shows; and the proxy, for its log.
pub async fn client_through_proxy(plan: &str) -> (aws_sdk_dynamodb::Client, Arc<tidewater_local::fault::FaultProxy>) {
    let plan = tidewater_local::fault::Plan::parse(plan, std::time::Duration::from_millis(5)).expect("a valid plan");
    client_through_proxy_with(plan, tidewater::clock::Clock::system()).await
}

/// [`client_through_proxy`] with a plan built already, and the clock its stale reads lag by.
pub async fn client_through_proxy_with(
    plan: tidewater_local::fault::Plan,
    clock: tidewater::clock::Clock,
) -> (aws_sdk_dynamodb::Client, Arc<tidewater_local::fault::FaultProxy>) {
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run with `make test`");
    let proxy = tidewater_local::fault::FaultProxy::with_clock(plan, &upstream, 1, clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let address = listener.local_addr().expect("its address");
    tokio::spawn(Arc::clone(&proxy).serve(listener, std::future::pending()));
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(format!("http://{address}"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .load()
        .await;
    (aws_sdk_dynamodb::Client::new(&shared), proxy)
}

/// `store`'s table and clock, reached through a fault proxy running `plan`.
pub async fn store_through_proxy(store: &DynamoStore, plan: &str) -> DynamoStore {
    let (client, _proxy) = client_through_proxy(plan).await;
    DynamoStore::new(client, store.config().clone()).with_clock(store.clock().clone())
}

pub async fn store() -> Arc<DynamoStore> {
    fresh_store(test_config()).await
}

/// The default configuration with timeouts that a loaded CI machine running debug builds
/// and many tests at once can meet; tests about deadlines set their own.
pub fn test_config() -> Config {
    Config {
        load_deadline: std::time::Duration::from_secs(5),
        write_timeout: std::time::Duration::from_secs(10),
        ..Config::default()
    }
}

/// The redactor the functions run by default: the offline detector, cards and IBANs.
pub fn default_redactor() -> OfflineRedactor {
    OfflineRedactor::default()
}

pub fn alice() -> Caller {
    Caller::new("alice", Vec::<String>::new())
}

pub fn bob() -> Caller {
    Caller::new("bob", Vec::<String>::new())
}

/// An API Gateway HTTP API (payload 2.0) request carrying `caller`'s verified claims, built
/// the same way the local gateway builds it.
pub fn api_request(
    caller: Option<&Caller>,
    method: &str,
    route: &str,
    path: &str,
    query: &[(&str, &str)],
    body: Option<&str>,
) -> Request {
    let raw_query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let anonymous = Caller::new("", Vec::<String>::new());
    let mut event = tidewater_local::apigw::caller_event(
        caller.unwrap_or(&anonymous),
        method,
        route,
        path,
        &raw_query,
        body.map(str::to_owned),
    );
    if caller.is_none() {
        event.request_context.authorizer = None;
    }
    event_request(&serde_json::to_string(&event).expect("serialisable event"))
}

/// Parses an `events/*.json` sample exactly as Lambda would hand it to the function.
pub fn event_request(event_json: &str) -> Request {
    lambda_http::request::from_str(event_json).expect("a valid API Gateway event")
}

pub fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).expect("a JSON body")
}

/// Asserts an error response: the status, and the `{"code","message"}` body.
pub fn assert_error(response: &Response<Body>, status: u16, code: &str) {
    let body = body_json(response);
    assert_eq!(response.status(), status, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
}

/// Deletes one item of the session's partition, as TTL or a replica that has not applied its
/// write yet would make it disappear, and returns it as it was.
pub async fn take_item(
    store: &DynamoStore,
    session: Uuid,
    sort_key: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
    store
        .client()
        .delete_item()
        .table_name(&store.config().table_name)
        .key(tidewater::keys::PK, AttributeValue::S(tidewater::keys::session_pk(&session)))
        .key(tidewater::keys::SK, AttributeValue::S(sort_key.to_owned()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("a direct delete")
        .attributes
        .expect("the item existed")
}

/// Every item of the store's table, every page, read with Scan. Only tests scan (to check
/// that nothing is left over); the functions never do.
pub async fn scan_table(
    store: &DynamoStore,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(&store.config().table_name)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("scan the test table");
        items.extend(page.items.unwrap_or_default());
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// Every image the table's stream holds now, new and old, as items: what a copy of the
/// stream (its 24 hours) holds. Read as the local stream runner reads DynamoDB Local's
/// stream (`tidewater_local::stream`, its answers repaired for the SDK), from each shard's
/// trim horizon, with no filter.
pub async fn stream_copy(store: &DynamoStore) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    use aws_lambda_events::dynamodb::Event;
    use aws_lambda_events::streams::DynamoDbEventResponse;
    use tidewater_local::filter::{EventFilter, StreamMapping};
    use tidewater_local::stream::{streams_client, StreamRunner};
    let mapping =
        StreamMapping { function: "copy".into(), batch_size: 1000, maximum_retry_attempts: 0, filter: EventFilter::default() };
    let streams = streams_client().await;
    let mut runner = StreamRunner::new(store.client().clone(), streams, &store.config().table_name, mapping, None)
        .expect("a stream reader");
    let records = Arc::new(std::sync::Mutex::new(Vec::new()));
    let copy = |event: Event| {
        let records = Arc::clone(&records);
        async move {
            records.lock().expect("not poisoned").extend(event.records);
            Ok(DynamoDbEventResponse::default())
        }
    };
    while runner.poll_once(&copy).await.expect("read the stream").read > 0 {}
    let records = std::mem::take(&mut *records.lock().expect("not poisoned"));
    records
        .into_iter()
        .flat_map(|record| [record.change.new_image, record.change.old_image])
        .map(std::collections::HashMap::from)
        .filter(|image| !image.is_empty())
        .collect()
}

/// A session of `caller`'s with `turns` user turns (response ids `r0`, `r1`, ...).
pub async fn session_with_turns(store: &DynamoStore, caller: &Caller, turns: usize) -> Uuid {
    use tidewater::{NewSession, SessionCreator, TurnAppender};
    let session_id = store.create_session(caller, NewSession::default()).await.expect("a new session").session_id;
    for i in 0..turns {
        let turn = tidewater::NewTurn {
            response_id: format!("r{i}"),
            role: "user".into(),
            content: format!("turn {i}: is volume {i} of Frieren in stock?"),
            intent: None,
            token_count: None,
            item: None,
        };
        store.append_turn(caller, session_id, turn.validate(store.config()).expect("a valid turn")).await.expect("appended");
    }
    session_id
}

/// A purge's deleter that, in the middle of its first batch, lets `appender` append a turn
/// (as alice) to each of `sessions`, then dies: the purge is cut off there, for the janitor
/// (or a repeat) to finish.
pub struct AppendsThenDies<'a> {
    store: &'a DynamoStore,
    appender: &'a DynamoStore,
    sessions: Vec<Uuid>,
    /// The sessions whose racing append landed.
    pub appended: std::sync::Mutex<Vec<Uuid>>,
    ran: std::sync::Mutex<bool>,
}

impl<'a> AppendsThenDies<'a> {
    pub fn new(store: &'a DynamoStore, appender: &'a DynamoStore, sessions: Vec<Uuid>) -> Self {
        AppendsThenDies { store, appender, sessions, appended: Default::default(), ran: Default::default() }
    }
}

impl tidewater::store::BatchDeleter for AppendsThenDies<'_> {
    async fn delete_batch(&self, keys: &[tidewater::store::ItemKey]) -> Result<(), tidewater::Error> {
        use tidewater::TurnAppender;
        let died = || tidewater::Error::Unavailable("the function died".into());
        if std::mem::replace(&mut *self.ran.lock().expect("not poisoned"), true) {
            return Err(died());
        }
        for (at, session) in self.sessions.iter().enumerate() {
            let turn = tidewater::NewTurn {
                response_id: format!("racing-{at}"),
                role: "user".into(),
                content: "racing: my card number is 4111".into(),
                intent: None,
                token_count: None,
                item: None,
            };
            let draft = turn.validate(self.store.config()).expect("a valid turn");
            if self.appender.append_turn(&alice(), *session, draft).await.is_ok() {
                self.appended.lock().expect("not poisoned").push(*session);
            }
        }
        tidewater::store::BatchDeleter::delete_batch(self.store, keys).await?;
        Err(died())
    }
}

/// How many items are under the session's partition, by Scan.
pub async fn session_item_count(store: &DynamoStore, session_id: Uuid) -> usize {
    let pk = tidewater::keys::session_pk(&session_id);
    scan_table(store).await.iter().filter(|item| item["PK"].as_s().is_ok_and(|p| *p == pk)).count()
}

/// An UpdateItem of the item `sk` of `session`'s partition, for a test to set what no route writes.
pub fn update_session_item(
    store: &DynamoStore,
    session: Uuid,
    sk: &str,
) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    store
        .client()
        .update_item()
        .table_name(&store.config().table_name)
        .key(keys::PK, AttributeValue::S(keys::session_pk(&session)))
        .key(keys::SK, AttributeValue::S(sk.to_owned()))
}

/// The item `sk` of `session`'s partition as stored, read strongly consistent.
pub async fn session_item(store: &DynamoStore, session: Uuid, sk: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    let read = store
        .client()
        .get_item()
        .table_name(&store.config().table_name)
        .key(keys::PK, AttributeValue::S(keys::session_pk(&session)))
        .key(keys::SK, AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("a direct read");
    read.item
}

/// Removes the session's `~META` as DynamoDB's TTL does, leaving every other item; returns it.
pub async fn delete_meta_as_ttl_would(
    store: &DynamoStore,
    session_id: Uuid,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
    store
        .client()
        .delete_item()
        .table_name(&store.config().table_name)
        .key(tidewater::keys::PK, AttributeValue::S(tidewater::keys::session_pk(&session_id)))
        .key(tidewater::keys::SK, AttributeValue::S(tidewater::keys::META.to_owned()))
        .return_values(ReturnValue::AllOld)
        .send()
        .await
        .expect("delete META")
        .attributes
        .expect("META existed")
}

/// A [`tidewater::store::BatchDeleter`] that lets `batches` batch deletes through to the
/// real store, then fails every later one, as a Lambda cut off half-way through would.
pub struct CutOffAfter<'a> {
    store: &'a DynamoStore,
    batches_left: std::sync::atomic::AtomicUsize,
}

impl<'a> CutOffAfter<'a> {
    pub fn new(store: &'a DynamoStore, batches: usize) -> Self {
        CutOffAfter { store, batches_left: std::sync::atomic::AtomicUsize::new(batches) }
    }
}

impl tidewater::store::BatchDeleter for CutOffAfter<'_> {
    async fn delete_batch(&self, keys: &[tidewater::store::ItemKey]) -> Result<(), tidewater::Error> {
        use std::sync::atomic::Ordering;
        if self.batches_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            return Err(tidewater::Error::Unavailable("cut off by the test".into()));
        }
        tidewater::store::BatchDeleter::delete_batch(self.store, keys).await
    }
}

/// A [`tidewater::store::BatchDeleter`] that deletes every batch, then loses the answer: a
/// deletion that removed every item but learns nothing of it, and answers 503.
pub struct AnswerLost<'a> {
    pub store: &'a DynamoStore,
}

impl tidewater::store::BatchDeleter for AnswerLost<'_> {
    async fn delete_batch(&self, keys: &[tidewater::store::ItemKey]) -> Result<(), tidewater::Error> {
        tidewater::store::BatchDeleter::delete_batch(self.store, keys).await?;
        Err(tidewater::Error::Unavailable("the answer was lost".into()))
    }
}

/// A context load of at most `max_turns` turns.
pub fn newest(max_turns: usize, consistent: bool) -> tidewater::ContextRequest {
    tidewater::ContextRequest {
        max_turns: Some(max_turns),
        max_tokens: None,
        consistent,
    }
}

/// The REMOVE record DynamoDB's TTL writes to the stream for `old_image`.
pub fn ttl_removal(old_image: &std::collections::HashMap<String, AttributeValue>, by_ttl: bool) -> Value {
    let image: serde_json::Map<String, Value> = old_image
        .iter()
        .map(|(name, value)| {
            let json = match value {
                AttributeValue::S(s) => json!({"S": s}),
                AttributeValue::N(n) => json!({"N": n}),
                AttributeValue::Bool(b) => json!({"BOOL": b}),
                _ => json!({"NULL": true}),
            };
            (name.clone(), json)
        })
        .collect();
    let mut record = json!({
        "eventID": Uuid::new_v4().simple().to_string(),
        "eventName": "REMOVE",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"PK": image["PK"], "SK": image["SK"]},
            "OldImage": image,
            "SequenceNumber": "900",
            "SizeBytes": 200,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    });
    if by_ttl {
        record["userIdentity"] = json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"});
    }
    record
}

/// A META MODIFY record as the stream delivers it: the flag and the turn count, old and new.
pub fn meta_record(session: Uuid, sequence_number: &str, old: (u64, bool), new: (u64, bool)) -> Value {
    let image = |(turn_count, needs_summary): (u64, bool)| {
        json!({
            "PK": {"S": keys::session_pk(&session)},
            "SK": {"S": keys::META},
            "session_id": {"S": session.to_string()},
            "owner_id": {"S": "alice"},
            "guest": {"BOOL": false},
            "turn_count": {"N": turn_count.to_string()},
            "summarized_through": {"N": "0"},
            "needs_summary": {"BOOL": needs_summary},
            "version": {"N": (turn_count + 1).to_string()},
        })
    };
    json!({
        "eventID": Uuid::new_v4().simple().to_string(),
        "eventName": "MODIFY",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1795720800.0,
            "Keys": {"PK": {"S": keys::session_pk(&session)}, "SK": {"S": keys::META}},
            "NewImage": image(new),
            "OldImage": image(old),
            "SequenceNumber": sequence_number,
            "SizeBytes": 300,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tidewater/stream/2026-11-26T19:00:00.000",
    })
}
