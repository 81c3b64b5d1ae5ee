//! The local stream runner: what Lambda's event source mapping does for the deployed
//! summarize function, against DynamoDB Local's stream.
//!
//! Each [`StreamRunner::poll_once`] lists the shards (DescribeStream), reads each shard that
//! is ready (its parent finished) from its checkpoint (GetShardIterator, GetRecords), applies
//! the mapping's `FilterCriteria` from `template.yaml`, and hands the records that pass to
//! an [`Invoke`] in batches of the mapping's `BatchSize`, in the Lambda event shape. A
//! partial batch response is honoured as Lambda does: the batch is retried from its lowest
//! failed sequence number, up to `MaximumRetryAttempts` times, then given up (where the
//! deployed mapping would send it to its on-failure destination). Progress is checkpointed
//! to a file, so a restart does not replay the stream.
//!
//! With no checkpoint, a shard is read from its trim horizon (the deployed mapping starts at
//! `LATEST`): locally the runner may start after the first appends, and redelivery is harmless.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord, StreamRecord, StreamViewType};
use aws_lambda_events::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::error::SdkError;
use aws_sdk_dynamodbstreams::operation::get_records::GetRecordsError;
use aws_sdk_dynamodbstreams::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_dynamodbstreams::types::{Record, Shard, ShardIteratorType};
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde::{Deserialize, Serialize};
use tidewater::Error;

use crate::filter::StreamMapping;

/// GetRecords pages read from one shard in one poll, so one busy shard cannot starve others.
const MAX_PAGES_PER_SHARD: usize = 100;

/// Runs the function for one batch, as Lambda would invoke it.
pub trait Invoke {
    fn invoke(&self, event: Event) -> impl Future<Output = Result<DynamoDbEventResponse, Error>> + Send;
}

impl<F, Fut> Invoke for F
where
    F: Fn(Event) -> Fut,
    Fut: Future<Output = Result<DynamoDbEventResponse, Error>> + Send,
{
    fn invoke(&self, event: Event) -> impl Future<Output = Result<DynamoDbEventResponse, Error>> + Send {
        self(event)
    }
}

/// Invokes a function through the Lambda Invoke API that `cargo lambda watch` serves:
/// `POST {base}/2015-03-31/functions/{function}/invocations`.
#[derive(Debug, Clone)]
pub struct HttpInvoker {
    client: reqwest::Client,
    url: String,
}

impl HttpInvoker {
    pub fn new(base_url: &str, function: &str) -> HttpInvoker {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", base_url.trim_end_matches('/'));
        HttpInvoker { client: reqwest::Client::new(), url }
    }
}

impl Invoke for HttpInvoker {
    async fn invoke(&self, event: Event) -> Result<DynamoDbEventResponse, Error> {
        let response = self.client.post(&self.url).json(&event).send().await.map_err(unavailable)?;
        let status = response.status();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.bytes().await.map_err(unavailable)?;
        if !status.is_success() || function_error {
            return Err(Error::Unavailable(
                format!("the function failed with HTTP {status}: {}", String::from_utf8_lossy(&body)).into(),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| Error::Corrupt(Box::new(e)))
    }
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    /// Stream records read.
    pub read: usize,
    /// Records that passed the filter and were handed to the function.
    pub matched: usize,
    pub invocations: usize,
    /// Retries of a batch after a failure or a partial batch response.
    pub retries: usize,
    /// Records given up after the last retry.
    pub discarded: usize,
}

impl std::ops::AddAssign for PollReport {
    fn add_assign(&mut self, other: PollReport) {
        self.read += other.read;
        self.matched += other.matched;
        self.invocations += other.invocations;
        self.retries += other.retries;
        self.discarded += other.discarded;
    }
}

/// Progress through the stream, saved after every batch.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Checkpoint {
    stream_arn: Option<String>,
    shards: BTreeMap<String, ShardProgress>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ShardProgress {
    /// The last sequence number processed.
    sequence_number: Option<String>,
    /// The shard is closed and every record of it was processed.
    #[serde(default)]
    finished: bool,
}

/// Reads the table's stream and drives a function with it. See the module docs.
#[derive(Debug)]
pub struct StreamRunner {
    dynamodb: aws_sdk_dynamodb::Client,
    streams: aws_sdk_dynamodbstreams::Client,
    table_name: String,
    mapping: StreamMapping,
    checkpoint_file: Option<PathBuf>,
    checkpoint: Checkpoint,
    iterators: HashMap<String, String>,
    retry_delay: Duration,
}

impl StreamRunner {
    /// A runner for `table_name`; with a `checkpoint_file`, progress is loaded from and saved there.
    pub fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        table_name: impl Into<String>,
        mapping: StreamMapping,
        checkpoint_file: Option<PathBuf>,
    ) -> Result<StreamRunner, Error> {
        let checkpoint = match &checkpoint_file {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path).map_err(unavailable)?;
                serde_json::from_str(&text).unwrap_or_else(|e| {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable checkpoint; starting over");
                    Checkpoint::default()
                })
            }
            _ => Checkpoint::default(),
        };
        Ok(StreamRunner {
            dynamodb,
            streams,
            table_name: table_name.into(),
            mapping,
            checkpoint_file,
            checkpoint,
            iterators: HashMap::new(),
            retry_delay: Duration::from_millis(500),
        })
    }

    /// The pause before the first retry of a failed batch; later retries wait longer.
    pub fn with_retry_delay(mut self, delay: Duration) -> StreamRunner {
        self.retry_delay = delay;
        self
    }

    pub fn mapping(&self) -> &StreamMapping {
        &self.mapping
    }

    /// Reads every shard that is ready, up to where the stream ends now, and invokes the
    /// function with what passes the filter.
    pub async fn poll_once(&mut self, invoker: &impl Invoke) -> Result<PollReport, Error> {
        let stream_arn = self.stream_arn().await?;
        if self.checkpoint.stream_arn.as_deref() != Some(stream_arn.as_str()) {
            if self.checkpoint.stream_arn.is_some() {
                tracing::info!(table = %self.table_name, "the table has a new stream; the old checkpoint no longer applies");
            }
            self.checkpoint = Checkpoint { stream_arn: Some(stream_arn.clone()), shards: BTreeMap::new() };
            self.iterators.clear();
        }
        let shards = self.shards(&stream_arn).await?;
        let listed: HashSet<String> = shards.iter().filter_map(|s| s.shard_id.clone()).collect();
        self.checkpoint.shards.retain(|id, _| listed.contains(id));
        self.iterators.retain(|id, _| listed.contains(id));

        let mut report = PollReport::default();
        let mut pending: Vec<&Shard> = shards.iter().collect();
        // Parents before children: each round reads the shards whose parent is done.
        loop {
            let (ready, waiting): (Vec<&Shard>, Vec<&Shard>) = pending.into_iter().partition(|shard| {
                shard.parent_shard_id.as_ref().is_none_or(|parent| !listed.contains(parent) || self.finished(parent))
            });
            if ready.is_empty() {
                break;
            }
            for shard in ready {
                let Some(shard_id) = shard.shard_id.as_deref() else { continue };
                if !self.finished(shard_id) {
                    report += self.drain_shard(&stream_arn, shard_id, invoker).await?;
                }
            }
            // Children of a shard that just finished get their turn.
            pending = waiting;
            if pending
                .iter()
                .all(|s| s.parent_shard_id.as_ref().is_some_and(|p| listed.contains(p) && !self.finished(p)))
            {
                break;
            }
        }
        Ok(report)
    }

    fn finished(&self, shard_id: &str) -> bool {
        self.checkpoint.shards.get(shard_id).is_some_and(|p| p.finished)
    }

    async fn stream_arn(&self) -> Result<String, Error> {
        let table = self.dynamodb.describe_table().table_name(&self.table_name).send().await.map_err(unavailable)?;
        table
            .table
            .and_then(|t| t.latest_stream_arn)
            .ok_or_else(|| Error::Validation(format!("table {} has no stream", self.table_name)))
    }

    async fn shards(&self, stream_arn: &str) -> Result<Vec<Shard>, Error> {
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .streams
                .describe_stream()
                .stream_arn(stream_arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            let Some(description) = output.stream_description else { return Ok(shards) };
            shards.extend(description.shards.unwrap_or_default());
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => return Ok(shards),
            }
        }
    }

    async fn iterator(&self, stream_arn: &str, shard_id: &str) -> Result<Option<String>, Error> {
        let after = self.checkpoint.shards.get(shard_id).and_then(|p| p.sequence_number.clone());
        let request = self.streams.get_shard_iterator().stream_arn(stream_arn).shard_id(shard_id);
        let result = match &after {
            Some(sequence_number) => {
                request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(sequence_number)
                    .send()
                    .await
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon).send().await,
        };
        match result {
            Ok(output) => Ok(output.shard_iterator),
            Err(SdkError::ServiceError(e))
                if after.is_some() && matches!(e.err(), GetShardIteratorError::TrimmedDataAccessException(_)) =>
            {
                tracing::warn!(
                    shard_id,
                    "the checkpoint is older than the stream keeps; reading from the trim horizon"
                );
                let output = self
                    .streams
                    .get_shard_iterator()
                    .stream_arn(stream_arn)
                    .shard_id(shard_id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .map_err(unavailable)?;
                Ok(output.shard_iterator)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn drain_shard(
        &mut self,
        stream_arn: &str,
        shard_id: &str,
        invoker: &impl Invoke,
    ) -> Result<PollReport, Error> {
        let mut report = PollReport::default();
        let mut iterator = match self.iterators.remove(shard_id) {
            Some(iterator) => Some(iterator),
            None => self.iterator(stream_arn, shard_id).await?,
        };
        for _ in 0..MAX_PAGES_PER_SHARD {
            let Some(current) = iterator.take() else {
                self.mark_finished(shard_id)?;
                return Ok(report);
            };
            let page = match self.streams.get_records().shard_iterator(&current).send().await {
                Ok(page) => page,
                Err(SdkError::ServiceError(e)) if matches!(e.err(), GetRecordsError::ExpiredIteratorException(_)) => {
                    iterator = self.iterator(stream_arn, shard_id).await?;
                    continue;
                }
                Err(e) => return Err(unavailable(e)),
            };
            let records = page.records.unwrap_or_default();
            let caught_up = records.is_empty();
            if !caught_up {
                report += self.deliver_page(stream_arn, shard_id, &records, invoker).await?;
            }
            iterator = page.next_shard_iterator;
            if caught_up {
                break;
            }
        }
        match iterator {
            Some(iterator) => {
                self.iterators.insert(shard_id.to_owned(), iterator);
            }
            None => self.mark_finished(shard_id)?,
        }
        Ok(report)
    }

    async fn deliver_page(
        &mut self,
        stream_arn: &str,
        shard_id: &str,
        records: &[Record],
        invoker: &impl Invoke,
    ) -> Result<PollReport, Error> {
        let mut report = PollReport { read: records.len(), ..PollReport::default() };
        let matched: Vec<EventRecord> = records
            .iter()
            .map(|r| to_event_record(r, stream_arn))
            .filter(|r| self.mapping.filter.matches_record(r))
            .collect();
        report.matched = matched.len();
        for batch in matched.chunks(self.mapping.batch_size) {
            report += self.deliver_batch(batch.to_vec(), invoker).await;
            if let Some(last) = batch.last().and_then(|r| r.change.sequence_number.clone()) {
                self.advance(shard_id, last)?;
            }
        }
        if let Some(last) = records.last().and_then(|r| r.dynamodb.as_ref()).and_then(|d| d.sequence_number.clone()) {
            self.advance(shard_id, last)?;
        }
        Ok(report)
    }

    /// Invokes the function with one batch until it succeeds, retrying from the lowest failed
    /// record, or gives the rest up after `MaximumRetryAttempts` retries.
    async fn deliver_batch(&self, mut pending: Vec<EventRecord>, invoker: &impl Invoke) -> PollReport {
        let mut report = PollReport::default();
        let mut retries = 0u32;
        loop {
            report.invocations += 1;
            let mut event = Event::default();
            event.records = pending.clone();
            let failed_from = match invoker.invoke(event).await {
                Ok(response) => first_failure(&pending, &response),
                Err(error) => {
                    tracing::warn!(function = %self.mapping.function, error = %error, "invocation failed; the batch will be retried");
                    Some(0)
                }
            };
            let Some(position) = failed_from else { return report };
            pending.drain(..position);
            if retries >= self.mapping.maximum_retry_attempts {
                let first = pending.first().and_then(|r| r.change.sequence_number.clone()).unwrap_or_default();
                tracing::error!(
                    function = %self.mapping.function,
                    records = pending.len(),
                    first_sequence_number = %first,
                    "records still fail after the last retry; giving them up (the deployed mapping sends them to its on-failure destination)"
                );
                report.discarded += pending.len();
                return report;
            }
            retries += 1;
            report.retries += 1;
            tokio::time::sleep(self.retry_delay * retries).await;
        }
    }

    fn advance(&mut self, shard_id: &str, sequence_number: String) -> Result<(), Error> {
        let progress = self.checkpoint.shards.entry(shard_id.to_owned()).or_default();
        progress.sequence_number = Some(sequence_number);
        self.save()
    }

    fn mark_finished(&mut self, shard_id: &str) -> Result<(), Error> {
        self.checkpoint.shards.entry(shard_id.to_owned()).or_default().finished = true;
        self.iterators.remove(shard_id);
        self.save()
    }

    fn save(&self) -> Result<(), Error> {
        let Some(path) = &self.checkpoint_file else { return Ok(()) };
        save_atomically(path, &serde_json::to_vec_pretty(&self.checkpoint).map_err(unavailable)?)
    }
}

/// The position in `pending` from which Lambda would retry: the lowest failed record, or the
/// whole batch when a failure names no record of it. `None` when nothing failed.
fn first_failure(pending: &[EventRecord], response: &DynamoDbEventResponse) -> Option<usize> {
    response
        .batch_item_failures
        .iter()
        .map(|failure| {
            let id = failure.item_identifier.as_deref().unwrap_or_default();
            pending.iter().position(|r| !id.is_empty() && r.change.sequence_number.as_deref() == Some(id)).unwrap_or(0)
        })
        .min()
}

/// A DynamoDB Streams record in the shape Lambda hands to the function. The images are
/// converted by serde_dynamo, not by hand.
pub fn to_event_record(record: &Record, stream_arn: &str) -> EventRecord {
    let mut event = EventRecord::default();
    event.event_id = record.event_id.clone().unwrap_or_default();
    event.event_name = record.event_name.as_ref().map(|n| n.as_str().to_owned()).unwrap_or_default();
    event.event_version = record.event_version.clone();
    event.event_source = record.event_source.clone().or_else(|| Some("aws:dynamodb".to_owned()));
    event.aws_region = record.aws_region.clone().unwrap_or_default();
    event.event_source_arn = Some(stream_arn.to_owned());
    if let Some(identity) = &record.user_identity {
        let mut user = aws_lambda_events::dynamodb::UserIdentity::default();
        user.type_ = identity.r#type.clone().unwrap_or_default();
        user.principal_id = identity.principal_id.clone().unwrap_or_default();
        event.user_identity = Some(user);
    }
    if let Some(change) = &record.dynamodb {
        let mut stream_record = StreamRecord::default();
        if let Some(time) = change.approximate_creation_date_time {
            if let Some(time) = chrono::DateTime::from_timestamp(time.secs(), time.subsec_nanos()) {
                stream_record.approximate_creation_date_time = time;
            }
        }
        stream_record.keys = change.keys.clone().unwrap_or_default().into();
        stream_record.new_image = change.new_image.clone().unwrap_or_default().into();
        stream_record.old_image = change.old_image.clone().unwrap_or_default().into();
        stream_record.sequence_number = change.sequence_number.clone();
        stream_record.size_bytes = change.size_bytes.unwrap_or_default();
        stream_record.stream_view_type = change.stream_view_type.as_ref().and_then(|t| {
            serde_json::from_value::<StreamViewType>(serde_json::Value::String(t.as_str().to_owned())).ok()
        });
        event.change = stream_record;
    }
    event
}

/// A DynamoDB Streams client for the same endpoint as DynamoDB: `AWS_ENDPOINT_URL_DYNAMODB_STREAMS`
/// when set, else `AWS_ENDPOINT_URL_DYNAMODB` (DynamoDB Local serves both APIs on one port).
/// Its GetRecords answers are repaired for the SDK; see [`RepairEmptyMaps`].
pub async fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    let endpoint = match std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB_STREAMS") {
        None => std::env::var("AWS_ENDPOINT_URL_DYNAMODB").ok(),
        Some(_) => None,
    };
    streams_client_at(endpoint).await
}

/// A DynamoDB Streams client for `endpoint` (the SDK's own when `None`), repaired as
/// [`streams_client`]'s is: the stream of one region's DynamoDB Local among several.
pub async fn streams_client_at(endpoint: Option<String>) -> aws_sdk_dynamodbstreams::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_dynamodbstreams::config::Builder::from(&shared);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    #[allow(deprecated)] // The SDK's own default with the features this workspace enables.
    let inner = shared.http_client().or_else(aws_smithy_http_client::hyper_014::default_client);
    if let Some(inner) = inner {
        config = config.http_client(http_client_fn(move |settings, components| {
            SharedHttpConnector::new(RepairEmptyMaps { inner: inner.http_connector(settings, components) })
        }));
    }
    aws_sdk_dynamodbstreams::Client::from_conf(config.build())
}

/// DynamoDB Local (3.3) writes an empty map attribute in stream records as `{}` rather than
/// `{"M": {}}` (a session's empty `page_context`, say), and the SDK refuses the whole page.
/// This connector rewrites such values in GetRecords answers before the SDK parses them; any
/// other answer passes untouched.
#[derive(Debug)]
struct RepairEmptyMaps {
    inner: SharedHttpConnector,
}

impl HttpConnector for RepairEmptyMaps {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let get_records = request.headers().get("x-amz-target").is_some_and(|t| t.ends_with(".GetRecords"));
        let call = self.inner.call(request);
        HttpConnectorFuture::new(async move {
            let mut response = call.await?;
            if !get_records || !response.status().is_success() {
                return Ok(response);
            }
            let body = ByteStream::new(response.take_body())
                .collect()
                .await
                .map_err(|e| ConnectorError::io(Box::new(e)))?
                .into_bytes();
            let body = repair_empty_maps(&body).unwrap_or_else(|| body.to_vec());
            response.headers_mut().remove("content-length");
            response.headers_mut().remove("x-amz-crc32");
            *response.body_mut() = SdkBody::from(body);
            Ok(response)
        })
    }
}

/// The GetRecords answer with every `{}` attribute value in the images made `{"M": {}}`;
/// `None` when there is nothing to repair.
fn repair_empty_maps(body: &[u8]) -> Option<Vec<u8>> {
    fn repair(value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(attribute) if attribute.is_empty() => {
                attribute.insert("M".to_owned(), serde_json::Value::Object(serde_json::Map::new()));
                true
            }
            serde_json::Value::Object(attribute) => attribute
                .iter_mut()
                .filter(|(kind, _)| *kind == "M" || *kind == "L")
                .fold(false, |changed, (_, inner)| match inner {
                    serde_json::Value::Object(map) => map.values_mut().fold(changed, |c, v| repair(v) | c),
                    serde_json::Value::Array(list) => list.iter_mut().fold(changed, |c, v| repair(v) | c),
                    _ => changed,
                }),
            _ => false,
        }
    }
    let mut answer: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    for record in answer.get_mut("Records")?.as_array_mut()? {
        for image in ["Keys", "NewImage", "OldImage"] {
            if let Some(serde_json::Value::Object(item)) = record.get_mut("dynamodb").and_then(|d| d.get_mut(image)) {
                for value in item.values_mut() {
                    changed |= repair(value);
                }
            }
        }
    }
    changed.then(|| serde_json::to_vec(&answer).ok()).flatten()
}

fn save_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(unavailable)?;
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, bytes).map_err(unavailable)?;
    std::fs::rename(&temporary, path).map_err(unavailable)
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Unavailable(Box::new(error))
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::streams::DynamoDbBatchItemFailure;

    use super::*;

    fn records(sequence_numbers: &[&str]) -> Vec<EventRecord> {
        sequence_numbers
            .iter()
            .map(|s| {
                let mut record = EventRecord::default();
                record.change.sequence_number = Some(s.to_string());
                record
            })
            .collect()
    }

    fn response(failed: &[Option<&str>]) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failed
            .iter()
            .map(|id| {
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = id.map(str::to_owned);
                failure
            })
            .collect();
        response
    }

    #[test]
    fn retry_starts_at_the_lowest_failed_record() {
        let batch = records(&["100", "200", "300"]);
        assert_eq!(first_failure(&batch, &response(&[])), None);
        assert_eq!(first_failure(&batch, &response(&[Some("300"), Some("200")])), Some(1));
    }

    #[test]
    fn a_failure_that_names_no_record_of_the_batch_retries_it_all() {
        let batch = records(&["100", "200"]);
        assert_eq!(first_failure(&batch, &response(&[None])), Some(0));
        assert_eq!(first_failure(&batch, &response(&[Some("")])), Some(0));
        assert_eq!(first_failure(&batch, &response(&[Some("999")])), Some(0));
    }

    #[test]
    fn empty_maps_written_as_bare_braces_are_repaired() {
        let answer = br#"{"Records":[{"dynamodb":{"NewImage":{"page_context":{},"n":{"N":"1"},"m":{"M":{"inner":{}}}},"OldImage":{"l":{"L":[{}]}}}}]}"#;
        let repaired: serde_json::Value = serde_json::from_slice(&repair_empty_maps(answer).unwrap()).unwrap();
        let image = &repaired["Records"][0]["dynamodb"]["NewImage"];
        assert_eq!(image["page_context"], serde_json::json!({"M": {}}));
        assert_eq!(image["n"], serde_json::json!({"N": "1"}));
        assert_eq!(image["m"]["M"]["inner"], serde_json::json!({"M": {}}));
        assert_eq!(repaired["Records"][0]["dynamodb"]["OldImage"]["l"]["L"][0], serde_json::json!({"M": {}}));
        assert_eq!(repair_empty_maps(br#"{"Records":[{"dynamodb":{"NewImage":{"n":{"N":"1"}}}}]}"#), None);
    }

    #[test]
    fn checkpoints_are_written_whole() {
        let dir = std::env::temp_dir().join(format!("tidewater-checkpoint-{}", uuid::Uuid::new_v4()));
        let path = dir.join("stream-checkpoint.json");
        save_atomically(&path, b"{\"stream_arn\":null,\"shards\":{}}").unwrap();
        let read: Checkpoint = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(read, Checkpoint::default());
        let _ = std::fs::remove_dir_all(dir);
    }
}
