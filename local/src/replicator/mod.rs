//! The local multi-region replicator: DynamoDB global tables (MREC) over one DynamoDB Local
//! per region, following the semantics of [`crate::mesh`].
//!
//! **How it learns of writes.** Each region's DynamoDB endpoint is a proxy in front of that
//! region's DynamoDB Local. The proxy forwards every request; a write (`PutItem`,
//! `UpdateItem`, `DeleteItem`, `TransactWriteItems`, `BatchWriteItem`) is forwarded under the
//! region's write lock, and when DynamoDB answers 200 the proxy records each item it wrote
//! with the item's new state: the `Item` a put sent, a tombstone for a delete, and for an
//! update the item read back (consistently) before the lock is released. Holding the lock
//! makes the write, the read-back and the hidden stamp one step, so no other write to that
//! region (local or replicated) falls in between. A write DynamoDB refused (4xx) wrote
//! nothing; a 5xx from DynamoDB Local on loopback is taken as nothing written. PartiQL writes
//! (`ExecuteStatement`, `ExecuteTransaction`, `BatchExecuteStatement`) are refused with a 400,
//! since the proxy cannot see which items they write; tidewater uses none. Table changes
//! (`CreateTable`, TTL) are not replicated: every region creates its own table, as each
//! replica of a global table exists per region. An item DynamoDB Local deletes by TTL bypasses
//! the proxy and is not replicated, whereas AWS replicates a TTL delete like any delete; a test
//! that needs it deletes through the region's endpoint instead (`ttl_pass` in tests/homes.rs).
//!
//! **How it applies them.** Every few milliseconds the deliveries that are due are written
//! into their regions, under that region's write lock: a `PutItem` of the whole image or a
//! `DeleteItem`, only when the change's stamp beats the item's stamp there. So each region's
//! stream carries the replicated writes it applied, and its stream runner sees them. The
//! stamps live in the replicator, never in the items: the application cannot see them.
//!
//! **Faults.** [`Replicator::control`] serves `GET /status`, `POST /pause` and `/resume`
//! (optionally `?from=<region>&to=<region>`), `POST /regions/<region>/down` and `/up`, and
//! `GET /regions/<region>` (`{"region","down"}`, which the region's gateway asks before each
//! request). `GET /status` also shows `replicated_write_units`, by region: the write capacity
//! the replicated writes consumed there. While a region is down its proxy answers every request with DynamoDB's 500
//! `InternalServerError`, and nothing replicates to or from it.
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};
use tidewater::clock::Clock;
use tokio::net::TcpListener;

use crate::fault::Fault;
use crate::forward::{answer, forward};
use crate::mesh::{Delivery, ItemKey, Mesh, Micros, Region};

mod control;
pub mod failover;
pub mod writes;

use writes::{operation, written_items_of, writes, Write};

/// How often due deliveries are looked for.
const TICK: Duration = Duration::from_millis(5);
/// How long a delivery that failed to write waits before it is tried again.
const RETRY: Micros = 200_000;
/// The operations whose written items the proxy cannot tell, refused rather than left
/// unreplicated.
const UNREPLICATED: [&str; 3] = ["ExecuteStatement", "ExecuteTransaction", "BatchExecuteStatement"];
/// DynamoDB Local wants a SigV4 header but checks no signature: the replicator's own calls
/// carry this one.
const AUTHORIZATION: &str =
    "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00";

/// One region: its name and its DynamoDB Local.
#[derive(Debug, Clone)]
pub struct Replica {
    pub name: String,
    pub upstream: String,
}

/// The replicator: see the module docs.
pub struct Replicator {
    replicas: Vec<Replica>,
    mesh: Mutex<Mesh>,
    /// One per region: held for each write into that region, local or replicated.
    write_locks: Vec<tokio::sync::Mutex<()>>,
    /// Table name → its key attribute names, read once with DescribeTable.
    key_names: Mutex<HashMap<String, Vec<String>>>,
    /// Per region, the write capacity its replicated writes consumed, as DynamoDB Local
    /// reports it (`ReturnConsumedCapacity: TOTAL`, indexes included): what AWS bills as
    /// replicated write units (and index writes) in that region.
    replicated_units: Mutex<Vec<f64>>,
    client: reqwest::Client,
    clock: Clock,
    /// The home map file `POST /failover` rewrites (`HOME_MAP_FILE`), when there is one.
    home_map: Mutex<Option<std::path::PathBuf>>,
    /// Whether the home map may hold fences to lift ([`failover`]).
    fences: std::sync::atomic::AtomicBool,
}

/// A replicator call to DynamoDB that failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("DynamoDB Local did not answer")]
    Transport(#[source] reqwest::Error),
    #[error("DynamoDB answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
    #[error("{0}")]
    Malformed(&'static str),
}

impl Replicator {
    /// `mesh`'s regions are `replicas`' names, in the same order.
    pub fn new(replicas: Vec<Replica>, mesh: Mesh, clock: Clock) -> Arc<Replicator> {
        let write_locks = replicas.iter().map(|_| tokio::sync::Mutex::new(())).collect();
        let replicated_units = Mutex::new(vec![0.0; replicas.len()]);
        let client = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30)).build().unwrap_or_default();
        let replicas = replicas
            .into_iter()
            .map(|replica| Replica { upstream: replica.upstream.trim_end_matches('/').to_owned(), ..replica })
            .collect();
        Arc::new(Replicator {
            replicas,
            mesh: Mutex::new(mesh),
            write_locks,
            key_names: Mutex::new(HashMap::new()),
            replicated_units,
            client,
            clock,
            home_map: Mutex::new(None),
            fences: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The home map file that `POST /failover` rewrites ([`failover`]).
    pub fn set_home_map(&self, path: std::path::PathBuf) {
        if let Ok(mut home_map) = self.home_map.lock() {
            *home_map = Some(path);
        }
    }

    /// Changes the replication state directly, as the control API does (tests, tools).
    pub fn with_mesh<R>(&self, change: impl FnOnce(&mut Mesh) -> R) -> R {
        change(&mut self.mesh())
    }

    /// The write units the replicated writes applied so far consumed, by region name.
    pub fn replicated_write_units(&self) -> BTreeMap<String, f64> {
        let units = self.replicated_units.lock().map(|units| units.clone()).unwrap_or_default();
        self.replicas.iter().map(|replica| replica.name.clone()).zip(units).collect()
    }

    fn mesh(&self) -> MutexGuard<'_, Mesh> {
        // A panic while holding it cannot leave the mesh half-changed in a way that matters
        // more than stopping would: keep serving.
        self.mesh.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> Micros {
        (self.clock.now().unix_timestamp_nanos() / 1_000) as Micros
    }

    /// Region `region`'s DynamoDB endpoint, served from `listener` until `stop` completes.
    pub async fn serve_region(
        self: Arc<Self>,
        region: Region,
        listener: TcpListener,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        let router = axum::Router::new().fallback(move |request: Request| {
            let replicator = Arc::clone(&self);
            async move { replicator.proxy(region, request).await }
        });
        axum::serve(listener, router).with_graceful_shutdown(stop).await
    }

    async fn proxy(self: Arc<Self>, region: Region, request: Request) -> Response<Full<Bytes>> {
        if self.mesh().is_down(region) {
            return dynamodb_error(Fault::InternalError);
        }
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
            return answer(StatusCode::BAD_REQUEST, Bytes::new());
        };
        let operation = operation(&parts.headers);
        if UNREPLICATED.contains(&operation) {
            let message = "the local replicator cannot see which items PartiQL writes; use the item API";
            let body = json!({"__type": "com.amazonaws.dynamodb.v20120810#ValidationException", "message": message});
            return answer(StatusCode::BAD_REQUEST, Bytes::from(body.to_string()));
        }
        let upstream = &self.replicas[region].upstream;
        let path = parts.uri.path();
        if !written_items_of(operation) {
            return forward(&self.client, upstream, &parts.method, path, &parts.headers, body)
                .await
                .unwrap_or_else(|_| dynamodb_error(Fault::InternalError));
        }
        // The write and its record run to the end in a task of their own, also when the caller
        // hangs up (an SDK timeout): a write DynamoDB applied is always recorded.
        let operation = operation.to_owned();
        let write = tokio::spawn(async move {
            let _lock = self.write_locks[region].lock().await;
            let upstream = &self.replicas[region].upstream;
            let forwarded = forward(&self.client, upstream, &parts.method, parts.uri.path(), &parts.headers, body.clone());
            let Ok(response) = forwarded.await else {
                return dynamodb_error(Fault::InternalError);
            };
            if response.status() == StatusCode::OK {
                let answered = response.body().clone();
                if let Err(error) = self.record(region, &operation, &body, answered).await {
                    // The write stands in this region; only its replication is lost. Say so loudly.
                    eprintln!("replicator: a {operation} in {} was not recorded: {error}", self.replicas[region].name);
                }
            }
            response
        });
        write.await.unwrap_or_else(|_| dynamodb_error(Fault::InternalError))
    }

    /// Records the items a successful write of `operation` wrote in `region`.
    async fn record(&self, region: Region, operation: &str, request: &[u8], answer: Full<Bytes>) -> Result<(), CallError> {
        use http_body_util::BodyExt;
        let request: Value = serde_json::from_slice(request).map_err(|_| CallError::Malformed("a write that is not JSON"))?;
        let answer = answer.collect().await.map(|body| body.to_bytes()).unwrap_or_default();
        let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        let mut states = Vec::new();
        for write in writes(operation, &request, &answer) {
            let key = match &write {
                Write::Put { table, item } => self.key_of(region, table, item).await?,
                Write::Update { key, .. } | Write::Delete { key, .. } => key.clone(),
            };
            let image = match &write {
                Write::Put { item, .. } => Some(Value::Object(item.clone())),
                Write::Update { table, .. } => self.read(region, table, &key).await?,
                Write::Delete { .. } => None,
            };
            states.push((ItemKey::new(write.table(), &key), image));
        }
        let now = self.now();
        let mut mesh = self.mesh();
        for (key, image) in states {
            mesh.local_write(region, key, image, now);
        }
        Ok(())
    }

    /// The key attributes of `item` in `table`.
    async fn key_of(&self, region: Region, table: &str, item: &Map<String, Value>) -> Result<Map<String, Value>, CallError> {
        let known = self.key_names.lock().ok().and_then(|names| names.get(table).cloned());
        let names = match known {
            Some(names) => names,
            None => {
                let described = self.call(region, "DescribeTable", json!({"TableName": table})).await?;
                let names: Vec<String> = described["Table"]["KeySchema"]
                    .as_array()
                    .ok_or(CallError::Malformed("DescribeTable without a KeySchema"))?
                    .iter()
                    .filter_map(|element| element["AttributeName"].as_str().map(str::to_owned))
                    .collect();
                if let Ok(mut known) = self.key_names.lock() {
                    known.insert(table.to_owned(), names.clone());
                }
                names
            }
        };
        names
            .iter()
            .map(|name| item.get(name).map(|value| (name.clone(), value.clone())))
            .collect::<Option<Map<String, Value>>>()
            .ok_or(CallError::Malformed("an item without its key"))
    }

    /// The item's state in `region`, read consistently: `None` when it does not exist.
    async fn read(&self, region: Region, table: &str, key: &Map<String, Value>) -> Result<Option<Value>, CallError> {
        let got = self.call(region, "GetItem", json!({"TableName": table, "Key": key, "ConsistentRead": true})).await?;
        Ok(got.get("Item").cloned())
    }

    /// One call of DynamoDB's JSON protocol to `region`'s DynamoDB Local.
    async fn call(&self, region: Region, operation: &str, body: Value) -> Result<Value, CallError> {
        let response = self
            .client
            .post(format!("{}/", self.replicas[region].upstream))
            .header("x-amz-target", format!("DynamoDB_20120810.{operation}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header("authorization", AUTHORIZATION)
            .body(body.to_string())
            .send()
            .await
            .map_err(CallError::Transport)?;
        let status = response.status();
        let text = response.text().await.map_err(CallError::Transport)?;
        if status != StatusCode::OK {
            return Err(CallError::Refused { status, body: text });
        }
        serde_json::from_str(&text).map_err(|_| CallError::Malformed("an answer that is not JSON"))
    }

    /// Writes the deliveries that are due, every [`TICK`], until `stop` completes.
    pub async fn deliver(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            self.deliver_due().await;
        }
    }

    /// Writes every delivery due now, the regions side by side, each region's in order.
    pub async fn deliver_due(&self) {
        let due = self.mesh().due(self.now());
        let mut by_region: Vec<Vec<Delivery>> = self.replicas.iter().map(|_| Vec::new()).collect();
        for delivery in due {
            by_region[delivery.to].push(delivery);
        }
        let writes = by_region.into_iter().map(|deliveries| async move {
            for delivery in deliveries {
                self.apply(&delivery).await;
            }
        });
        futures::future::join_all(writes).await;
        self.lift_fences();
    }

    async fn apply(&self, delivery: &Delivery) {
        let _lock = self.write_locks[delivery.to].lock().await;
        if !self.mesh().wins(delivery) {
            self.mesh().applied(delivery);
            return;
        }
        let change = &delivery.change;
        let written = match serde_json::from_str::<Value>(&change.key.key) {
            Err(_) => Err(CallError::Malformed("a stored key that is not JSON")),
            Ok(key) => {
                let (operation, request) = match &change.image {
                    Some(item) => ("PutItem", json!({"TableName": change.key.table, "Item": item})),
                    None => ("DeleteItem", json!({"TableName": change.key.table, "Key": key})),
                };
                let mut request = request;
                request["ReturnConsumedCapacity"] = json!("TOTAL");
                self.call(delivery.to, operation, request).await
            }
        };
        match written {
            Ok(answer) => {
                let units = answer["ConsumedCapacity"]["CapacityUnits"].as_f64().unwrap_or_default();
                if let Ok(mut replicated) = self.replicated_units.lock() {
                    replicated[delivery.to] += units;
                }
                self.mesh().applied(delivery);
            }
            Err(error) => {
                eprintln!("replicator: a write into {} failed, retrying: {error}", self.replicas[delivery.to].name);
                let now = self.now();
                self.mesh().failed(delivery, now, RETRY);
            }
        }
    }
}

fn dynamodb_error(fault: Fault) -> Response<Full<Bytes>> {
    let (status, error_type, message) = fault.error_answer().unwrap_or((StatusCode::INTERNAL_SERVER_ERROR, "", ""));
    answer(status, Bytes::from(json!({"__type": error_type, "message": message}).to_string()))
}
