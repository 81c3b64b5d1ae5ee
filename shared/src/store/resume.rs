//! A customer's sessions, newest activity first (`GET /customers/me/sessions`): one Query
//! on the sparse customer index, which projects everything the list shows, and beside it
//! the read of the customer's data key that opens the projected (sealed) page contexts.
//!
//! The index entry moves only when a session's activity is `RESUME_ORDER_STEP_SECONDS`
//! newer than it, so that appends rarely rewrite it: the order, the shown `updated_at`,
//! `turn_count` and `expires_at` are exact to that step. A session whose entry is older than
//! the session TTL is left out, so a live session may leave the list up to one step early.
use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{from_item, s, within, DynamoStore};
use crate::model::{Caller, ResumableSession, ResumePosition, SessionPage};
use crate::{clock, keys, Error};

/// Lists the caller's sessions (`GET /customers/me/sessions`).
pub trait SessionLister {
    /// Up to `limit` of the caller's live sessions, newest activity first, continuing after
    /// `after`. Expired sessions are left out, so a page may be short (even empty) while
    /// `next` is set. Guests have no list.
    fn list_sessions(
        &self,
        caller: &Caller,
        limit: usize,
        after: Option<ResumePosition>,
    ) -> impl Future<Output = Result<SessionPage, Error>> + Send;
}

/// A META item as the customer index projects it.
#[derive(Deserialize)]
struct IndexedSession {
    session_id: Uuid,
    #[serde(default)]
    page_context: Map<String, Value>,
    #[serde(default)]
    listed_turn_count: u64,
    #[serde(rename = "GSI1SK")]
    listed_at: String,
}

impl SessionLister for DynamoStore {
    async fn list_sessions(
        &self,
        caller: &Caller,
        limit: usize,
        after: Option<ResumePosition>,
    ) -> Result<SessionPage, Error> {
        if caller.is_guest() {
            return Ok(SessionPage { sessions: Vec::new(), next: None });
        }
        let customer = keys::customer_pk(&caller.customer_id);
        let start = after.map(|position| {
            HashMap::from([
                (keys::GSI1PK.to_owned(), s(&customer)),
                (keys::GSI1SK.to_owned(), s(position.updated_at)),
                (keys::PK.to_owned(), s(keys::session_pk(&position.session_id))),
                (keys::SK.to_owned(), s(keys::META)),
            ])
        });
        let ttl_secs = self.config.session_ttl.as_secs() as i64;
        let live_since = clock::format_epoch_seconds(self.clock.now_epoch_seconds() - ttl_secs);
        let query = self
            .client
            .query()
            .table_name(self.table())
            .index_name(keys::GSI1)
            .key_condition_expression("GSI1PK = :customer AND GSI1SK > :live_since")
            .expression_attribute_values(":customer", s(&customer))
            .expression_attribute_values(":live_since", s(&live_since))
            .scan_index_forward(false)
            .limit(limit.clamp(1, i32::MAX as usize) as i32)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        // The configuration has no read timeout but the 300 ms context deadline; use the write
        // one. The caller's data key, which opens the page contexts, is read beside the Query.
        let (output, known) = futures::join!(within(self.config.write_timeout, query), self.prefetch_key(caller));
        let output = output?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        let next = output.last_evaluated_key.as_ref().map(position_of).transpose()?;
        let mut items = output.items.unwrap_or_default();
        Box::pin(self.open_items_with(&mut items, known?)).await?;

        let mut sessions = Vec::with_capacity(items.len());
        for item in items {
            let indexed: IndexedSession = from_item(item)?;
            let listed_secs = clock::parse_epoch_seconds(&indexed.listed_at).unwrap_or_default();
            sessions.push(ResumableSession {
                session_id: indexed.session_id,
                page_context: indexed.page_context,
                turn_count: indexed.listed_turn_count,
                expires_at: clock::format_epoch_seconds(listed_secs + ttl_secs),
                updated_at: indexed.listed_at,
            });
        }
        Ok(SessionPage { sessions, next })
    }
}

/// The position a `LastEvaluatedKey` of the customer index names.
fn position_of(key: &HashMap<String, AttributeValue>) -> Result<ResumePosition, Error> {
    let corrupt = || Error::Corrupt("the customer index returned an unexpected LastEvaluatedKey".into());
    let updated_at = key.get(keys::GSI1SK).and_then(|v| v.as_s().ok()).ok_or_else(corrupt)?;
    let session_id = key
        .get(keys::PK)
        .and_then(|v| v.as_s().ok())
        .and_then(|pk| keys::session_id_from_pk(pk))
        .ok_or_else(corrupt)?;
    Ok(ResumePosition { updated_at: updated_at.clone(), session_id })
}
