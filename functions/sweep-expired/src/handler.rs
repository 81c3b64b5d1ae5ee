//! The stream consumer of TTL deletions. When DynamoDB's TTL removes a session's `~META`
//! (a REMOVE record whose `userIdentity` is the DynamoDB service principal; the template's
//! filter passes nothing else), it deletes every other item of the session and then the
//! session's entry in its owner's registry. Turns and idempotency records carry no `ttl`,
//! so nothing of a live session ever expires on its own, and nothing outlives it.
//!
//! With several regions it sweeps wherever TTL ran, home or not: TTL may run first in any
//! replica, and the other regions see only a replicated REMOVE without the TTL principal. That is
//! safe because META's `ttl` lies `tidewater::items::TTL_AFTER_EXPIRY_SECONDS` past the expiry,
//! so no replica's TTL removes a session that is live in its home.
//!
//! Sweeping is idempotent; a record that fails is reported alone, by its sequence number. A
//! sweep writes the janitor's work item before it deletes anything, so one cut off half-way
//! is finished by the janitor even when its record ends in the DLQ and the stream forgets it.
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use tidewater::{keys, ExpiredSessionSweeper};
use uuid::Uuid;

/// Sessions swept at the same time.
const CONCURRENT_SWEEPS: usize = 8;
/// Who DynamoDB's TTL deletions are attributed to in a stream record.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// The part of a removed META image that names the session and its owner.
#[derive(Debug, Deserialize)]
struct RemovedSession {
    #[serde(rename = "SK")]
    sk: String,
    session_id: Uuid,
    owner_id: String,
    #[serde(default)]
    guest: bool,
}

/// What one record asks for: the session to sweep and its signed-in owner.
#[derive(Debug, PartialEq, Eq)]
pub enum Sweep {
    Skip,
    Session { session_id: Uuid, owner: Option<String> },
}

/// Reads one stream record: only a TTL removal of a session record asks for a sweep.
pub fn classify(record: &EventRecord) -> Result<Sweep, serde_dynamo::Error> {
    let by_ttl = record
        .user_identity
        .as_ref()
        .is_some_and(|identity| identity.type_ == "Service" && identity.principal_id == TTL_PRINCIPAL);
    if record.event_name != "REMOVE" || !by_ttl {
        return Ok(Sweep::Skip);
    }
    let removed: RemovedSession = serde_dynamo::from_item(record.change.old_image.clone())?;
    if removed.sk != keys::META {
        return Ok(Sweep::Skip);
    }
    Ok(Sweep::Session { session_id: removed.session_id, owner: (!removed.guest).then_some(removed.owner_id) })
}

pub async fn handle<S: ExpiredSessionSweeper + Sync>(store: &S, event: Event) -> DynamoDbEventResponse {
    let sweeps = event.records.iter().map(|record| {
        let sequence_number = record.change.sequence_number.clone().unwrap_or_default();
        (sequence_number, classify(record))
    });
    let outcomes: Vec<(String, bool)> = stream::iter(sweeps)
        .map(|(sequence_number, sweep)| async move {
            let done = match sweep {
                Ok(Sweep::Skip) => true,
                Ok(Sweep::Session { session_id, owner }) => {
                    match store.sweep_expired_session(&session_id, owner.as_deref()).await {
                        Ok(_) => true,
                        Err(error) => {
                            tracing::warn!(%session_id, %error, "sweeping the expired session failed; reporting its record");
                            false
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(sequence_number, %error, "stream record cannot be parsed; reporting it as failed");
                    false
                }
            };
            (sequence_number, done)
        })
        .buffered(CONCURRENT_SWEEPS)
        .collect()
        .await;
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = outcomes
        .into_iter()
        .filter(|(_, done)| !done)
        .map(|(sequence_number, _)| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(sequence_number);
            failure
        })
        .collect();
    response
}
