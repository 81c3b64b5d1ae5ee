//! The stream consumer: writes a rolling summary for each full window of turns.
//!
//! The table's stream reaches this function only for META items whose `needs_summary`
//! flag has just turned true (see the `FilterCriteria` in `template.yaml`). For each such
//! session it reads META consistently and, window by window, summarises the previous
//! summary plus the turns after the watermark, then stores it with
//! [`SummaryWriter::put_summary`], whose conditions only move the watermark forward. So a
//! redelivered batch, or two consumers racing on one session, write one summary per window.
//!
//! Before each summary it also stores the window's long-term customer facts
//! ([`Summarizer::extract_facts`], [`MemoryWriter::write_facts`]); guests get none.
//!
//! With several regions it summarises only the sessions whose home is this region
//! ([`at_home`]): every region's stream carries the META writes replicated into it.
//!
//! It answers with a partial batch response: a record that fails is reported alone, by its
//! sequence number, and the rest of the batch still goes through.
use std::collections::HashMap;
use std::error::Error as StdError;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use tidewater::metrics::{Metrics, Unit};
use tidewater::summarizer::next_window_end;
use tidewater::{home, keys, Config, Error, MemoryWriter, Summarizer, SummaryInput, SummarySource, SummaryWriter};
use uuid::Uuid;

mod bedrock;
mod bedrock_memory;
mod settings;
pub use bedrock::BedrockSummarizer;
pub use settings::{AnySummarizer, SummarizerKind, SummarizerSettings};

/// Sessions of one batch summarised at the same time. The template's batch size is lower,
/// so a batch runs in one round.
const CONCURRENT_SESSIONS: usize = 16;

/// The keys of any item of the table.
#[derive(Debug, Deserialize)]
struct RecordKeys {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
}

/// The part of a META image that decides whether a summary may be due.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // turn_count and summarized_through are parsed to reject broken images.
struct MetaImage {
    session_id: Uuid,
    turn_count: u64,
    #[serde(default)]
    summarized_through: u64,
    #[serde(default)]
    needs_summary: bool,
}

/// What a record asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Not a META item whose flag is set: nothing to do.
    Skip,
    /// The session may need a summary.
    Session(Uuid),
}

/// A record whose image cannot be parsed. It is reported, never retried forever in-process.
#[derive(Debug)]
pub struct Poison {
    pub session_id: Option<Uuid>,
    pub source: serde_dynamo::Error,
}

/// Decides what one stream record asks for, from its keys and new image.
pub fn classify(record: &EventRecord) -> Result<Trigger, Poison> {
    if record.event_name == "REMOVE" {
        return Ok(Trigger::Skip);
    }
    let keys: RecordKeys =
        serde_dynamo::from_item(record.change.keys.clone()).map_err(|source| Poison { session_id: None, source })?;
    if keys.sk != keys::META {
        return Ok(Trigger::Skip);
    }
    let session_id = keys::session_id_from_pk(&keys.pk);
    let image: MetaImage =
        serde_dynamo::from_item(record.change.new_image.clone()).map_err(|source| Poison { session_id, source })?;
    if Some(image.session_id) != session_id {
        return Err(Poison {
            session_id,
            source: <serde_dynamo::Error as serde::de::Error>::custom("the image's session_id does not match its key"),
        });
    }
    Ok(if image.needs_summary { Trigger::Session(image.session_id) } else { Trigger::Skip })
}

/// Who owns the session of a META image: what decides its home region.
#[derive(Debug, Deserialize)]
struct Owner {
    owner_id: String,
    #[serde(default)]
    guest: bool,
}

/// Whether this region is home to the session of a META record, so that the summary and the
/// facts are written once, where the session's writes happen, and never from a replicated
/// copy of META in another region ([`tidewater::home`]). Always, in a single-region
/// deployment; never while a failover fences the session. A home map that cannot be read, and
/// an image without a readable owner, are errors: the record is reported and retried, never
/// summarised in two regions nor skipped.
pub fn at_home(config: &Config, record: &EventRecord, session_id: &Uuid) -> Result<bool, Error> {
    // An image whose owner cannot be read fails the record (retried, then the DLQ), rather
    // than being taken for a guest's and summarised by the region its id names.
    if config.homes.is_none() {
        return Ok(true);
    }
    let owner: Owner =
        serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| Error::Corrupt(Box::new(e)))?;
    let slot = if owner.guest { home::id_slot(session_id) } else { home::customer_slot(&owner.owner_id) };
    // A session a failover fenced is written by nothing until its old home's writes arrive.
    Ok(config.is_home(slot)? && !config.is_fenced(session_id)?)
}

/// What summarising one session did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Summaries this call wrote (another consumer may have written the others).
    pub written: u32,
    /// Whether it cleared a flag that no full window justified.
    pub cleared_flag: bool,
    /// Long-term facts this call wrote.
    pub facts_written: u64,
}

/// Handles one batch of stream records.
pub async fn handle<S, M>(store: &S, summarizer: &M, config: &Config, event: Event) -> DynamoDbEventResponse
where
    S: SummarySource + SummaryWriter + MemoryWriter + Sync,
    M: Summarizer + Sync,
{
    let started = std::time::Instant::now();
    let records = event.records.len();
    let mut failed: Vec<(usize, String)> = Vec::new();
    // Sessions in order of first appearance, each with the records that asked for it.
    let mut sessions: Vec<(Uuid, Vec<(usize, String)>)> = Vec::new();
    let mut positions: HashMap<Uuid, usize> = HashMap::new();

    for (position, record) in event.records.iter().enumerate() {
        let sequence_number = record.change.sequence_number.clone().unwrap_or_default();
        match classify(record) {
            Ok(Trigger::Skip) => {}
            Ok(Trigger::Session(session_id)) => match at_home(config, record, &session_id) {
                Ok(false) => tracing::debug!(%session_id, "not this region's session; its home summarises it"),
                Err(error) => {
                    tracing::error!(%session_id, %error, "the session's home cannot be told; reporting the record");
                    failed.push((position, sequence_number));
                }
                Ok(true) => {
                    let slot = *positions.entry(session_id).or_insert_with(|| {
                        sessions.push((session_id, Vec::new()));
                        sessions.len() - 1
                    });
                    sessions[slot].1.push((position, sequence_number));
                }
            },
            Err(poison) => {
                tracing::error!(
                    session_id = poison.session_id.map(|id| id.to_string()).unwrap_or_else(|| "unknown".to_owned()),
                    sequence_number,
                    event_id = record.event_id,
                    error = %poison.source,
                    "stream record cannot be parsed; reporting it as failed"
                );
                failed.push((position, sequence_number));
            }
        }
    }

    let session_count = sessions.len();
    let mut written = 0;
    let mut facts_written = 0;
    let mut outcomes = stream::iter(sessions)
        .map(|(session_id, records)| async move {
            (
                summarize_session(store, summarizer, config, session_id).await,
                session_id,
                records,
            )
        })
        .buffer_unordered(CONCURRENT_SESSIONS);
    while let Some((outcome, session_id, records)) = outcomes.next().await {
        match outcome {
            Ok(outcome) => {
                written += outcome.written;
                facts_written += outcome.facts_written;
            }
            Err(error) => {
                tracing::warn!(%session_id, error = %chain(&error), "summary failed; reporting its records");
                failed.extend(records);
            }
        }
    }

    failed.sort();
    tracing::info!(
        records,
        sessions = session_count,
        summaries_written = written,
        facts_written,
        failed = failed.len(),
        "batch done"
    );
    Metrics::new("summarize")
        .count("RecordsReceived", records as u64)
        .count("SummariesWritten", u64::from(written))
        .count("FactsWritten", facts_written)
        .count("RecordsFailed", failed.len() as u64)
        .add("HandlerLatency", started.elapsed().as_secs_f64() * 1000.0, Unit::Milliseconds)
        .emit();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|(_, sequence_number)| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            failure
        })
        .collect();
    response
}

/// Brings one session's summary up to its last due window, one window at a time: a window
/// is due once `SUMMARY_KEEP_RECENT` newer turns follow it.
///
/// Each round re-reads META, so a summary another consumer wrote meanwhile is seen, and an
/// append that landed while this one summarised is not left without its flag.
pub async fn summarize_session<S, M>(
    store: &S,
    summarizer: &M,
    config: &Config,
    session_id: Uuid,
) -> Result<Outcome, Error>
where
    S: SummarySource + SummaryWriter + MemoryWriter + Sync,
    M: Summarizer + Sync,
{
    let mut outcome = Outcome::default();
    let mut attempted: Option<u64> = None;
    loop {
        let Some(state) = store.summary_state(session_id).await? else {
            tracing::info!(%session_id, "session is gone; nothing to summarise");
            return Ok(outcome);
        };
        if state.expired {
            tracing::info!(%session_id, "session has expired; nothing to summarise");
            return Ok(outcome);
        }
        let (threshold, keep_recent) = (config.summary_threshold, config.summary_keep_recent);
        let Some(through) = next_window_end(
            state.summarized_through,
            state.turn_count,
            threshold,
            keep_recent,
        ) else {
            if state.needs_summary {
                let due = config.summary_due_at(state.summarized_through);
                outcome.cleared_flag = store
                    .clear_summary_flag(session_id, state.summarized_through, due)
                    .await?;
            }
            return Ok(outcome);
        };
        if attempted == Some(through) {
            // The write was refused, yet the watermark did not move: META and its summaries disagree.
            return Err(Error::Conflict(format!("the summary through turn {through} was refused but not written")));
        }
        attempted = Some(through);

        let turns = store.turns_between(session_id, &state.chain, state.summarized_through, through).await?;
        let text = summarizer.summarize(SummaryInput { previous: state.summary.as_deref(), turns: &turns }).await?;
        // Long-term memory: the window's facts go in before its summary, so a window whose
        // summary is written never misses its facts; a repeat of the window writes none again.
        if let Some(customer_id) = &state.customer_id {
            let facts = summarizer.extract_facts(session_id, &turns).await;
            // Boxed: the write's SDK futures would otherwise all live in this one.
            outcome.facts_written += Box::pin(store.write_facts(customer_id, session_id, &facts)).await?;
        }
        if store.put_summary(session_id, through, &text).await? {
            outcome.written += 1;
        }
    }
}

/// An error and its sources, for a log line.
fn chain(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidewater::home::{HomeMap, HomeSource, Homes};

    fn insert(owner: Option<serde_dynamo::AttributeValue>) -> (EventRecord, Uuid) {
        let mut event: Event = serde_json::from_str(include_str!("../../../events/summarize-insert.json")).unwrap();
        let mut record = event.records.remove(0);
        record.change.new_image.remove("owner_id");
        if let Some(owner) = owner {
            record.change.new_image.insert("owner_id".to_owned(), owner);
        }
        (record, Uuid::parse_str("5f0c6a1e-0000-4000-8000-000000000001").unwrap())
    }

    #[test]
    fn a_meta_image_whose_owner_cannot_be_read_fails_the_record_rather_than_pass_for_a_guests() {
        // Given two regions,
        let homes = Homes::new("us-east-1,eu-west-1", HomeMap::default()).unwrap();
        let config = Config { region: Some("us-east-1".into()), homes: Some(HomeSource::Fixed(homes)), ..Config::default() };
        // when META's image carries no owner, or one that is not a string,
        for owner in [None, Some(serde_dynamo::AttributeValue::N("7".into()))] {
            let (record, session) = insert(owner);
            // then its home cannot be told, and the record fails, to be retried or go to the DLQ.
            assert!(matches!(at_home(&config, &record, &session), Err(Error::Corrupt(_))));
        }
        // A readable owner is served by its home alone.
        let (record, session) = insert(Some(serde_dynamo::AttributeValue::S("alice".into())));
        let alice_home = Homes::new("us-east-1,eu-west-1", HomeMap::default()).unwrap().home_of(home::customer_slot("alice")).to_owned();
        assert_eq!(at_home(&config, &record, &session).unwrap(), alice_home == "us-east-1");
    }
}
