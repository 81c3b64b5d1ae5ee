//! Session metadata updates (`PATCH /sessions/{id}`): one conditional UpdateItem on META.
use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure};
use uuid::Uuid;

use super::{from_item, n, s, within, DynamoStore};
use crate::items::{self, MetaItem};
use crate::model::{Caller, IfMatch, SessionPatch, SessionUpdated};
use crate::{keys, Error};

/// Updates a session's metadata (`PATCH /sessions/{id}`).
pub trait SessionUpdater {
    /// Replaces `page_context`, sets `updated_at`, slides the expiry and bumps the version.
    /// Only the owner may, and only while the session lives (404 otherwise); with
    /// `if_match`, only while the version is one of the given ETags (412 otherwise; a
    /// malformed `If-Match` is 412 too, but only after the 404 checks). A retry of a change
    /// that was applied from one of them, with no PATCH since, answers the session as it is.
    /// Never touches `turn_count` or the summary.
    fn update_session(
        &self,
        caller: &Caller,
        session_id: Uuid,
        patch: SessionPatch,
        if_match: Option<IfMatch>,
    ) -> impl Future<Output = Result<SessionUpdated, Error>> + Send;
}

/// A lost race (the item changed between the failed condition and its check) is retried
/// this many times in all before answering 503.
const MAX_UPDATE_ATTEMPTS: u32 = 3;

enum Attempt {
    Updated(MetaItem),
    /// The condition failed; the item as it was, when DynamoDB returned it.
    Refused(Option<MetaItem>),
}

impl SessionUpdater for DynamoStore {
    async fn update_session(
        &self,
        caller: &Caller,
        session_id: Uuid,
        patch: SessionPatch,
        if_match: Option<IfMatch>,
    ) -> Result<SessionUpdated, Error> {
        patch.validate()?;
        if if_match == Some(IfMatch::Never) {
            // Nothing can match; the only question is whether the caller may know the session.
            let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?;
            if meta.owner_id != caller.customer_id || meta.is_expired(self.clock.now_epoch_seconds()) {
                return Err(Error::NotFound);
            }
            return Err(Error::PreconditionFailed);
        }
        let page_context =
            serde_dynamo::to_attribute_value::<_, AttributeValue>(&patch.page_context).map_err(Error::corrupt)?;
        if caller.is_guest() {
            // The day key of a guest's content must outlive the expiry this update slides.
            self.cover_guest_session(&session_id).await?;
        }
        // Guests' META carries no customer-index keys. The token says which kind of session
        // to expect; the condition checks it, and a mismatch is retried the other way.
        let mut guest = caller.is_guest();
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            let old = match self.try_update(caller, &session_id, &page_context, if_match.as_ref(), guest).await? {
                Attempt::Updated(meta) => {
                    tracing::info!(%session_id, version = meta.version, attempt, "session updated");
                    return Ok(SessionUpdated { session: meta.session(), version: meta.version });
                }
                Attempt::Refused(Some(old)) => old,
                // DynamoDB did not return the old item: read it to tell 404 from 412.
                Attempt::Refused(None) => {
                    self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?
                }
            };
            if old.owner_id != caller.customer_id || old.is_expired(self.clock.now_epoch_seconds())
            {
                return Err(Error::NotFound);
            }
            if let Some(if_match) = if_match.as_ref().filter(|m| !m.allows(old.version)) {
                if already_applied(&old, &page_context, if_match) {
                    tracing::info!(%session_id, version = old.version, "session update already applied");
                    return Ok(SessionUpdated { session: old.session(), version: old.version });
                }
                return Err(Error::PreconditionFailed);
            }
            guest = old.guest;
        }
        Err(Error::Unavailable("the session kept changing during the update".into()))
    }
}

/// Whether `meta` already holds this very change, made from a version `if_match` allows: a
/// retry of a PATCH that was applied but whose answer was lost (or the SDK's own retry of
/// it). A PATCH made since, even of the same page_context, replaced `patched_from`, so the
/// retry is refused as stale. A different caller sending the same change with the same ETag
/// is answered the same way: the session is as it asked.
fn already_applied(meta: &MetaItem, page_context: &AttributeValue, if_match: &IfMatch) -> bool {
    meta.patched_from.is_some_and(|from| if_match.allows(from))
        && serde_dynamo::to_attribute_value::<_, AttributeValue>(&meta.page_context).is_ok_and(|stored| stored == *page_context)
}

impl DynamoStore {
    async fn try_update(
        &self,
        caller: &Caller,
        session_id: &Uuid,
        page_context: &AttributeValue,
        if_match: Option<&IfMatch>,
        guest: bool,
    ) -> Result<Attempt, Error> {
        let (now, now_secs, expires) = self.now_with_expiry();
        // `patched_from` takes the version before this update (operands read the old item).
        let mut set = vec![
            "page_context = :page_context",
            "updated_at = :now",
            "#ttl = :ttl",
            "ttl_margin = :margin",
            "patched_from = version",
            "version = version + :one",
        ];
        if !guest {
            // The index entry is rewritten anyway (page_context is projected): move it up too.
            set.push("GSI1SK = :now");
            set.push("listed_turn_count = turn_count");
        }
        let mut condition =
            format!("attribute_exists(PK) AND owner_id = :owner AND {} AND guest = :guest", items::LIVE_CONDITION);
        let mut values = HashMap::from([
            (":page_context".to_owned(), page_context.clone()),
            (":now".to_owned(), s(&now)),
            (":live_ttl".to_owned(), n(items::ttl_for_expiry(now_secs))),
            (":now_secs".to_owned(), n(now_secs)),
            (":margin".to_owned(), n(items::TTL_AFTER_EXPIRY_SECONDS)),
            (":ttl".to_owned(), n(items::ttl_for_expiry(expires))),
            (":one".to_owned(), n(1)),
            (":owner".to_owned(), s(&caller.customer_id)),
            (":guest".to_owned(), AttributeValue::Bool(guest)),
        ]);
        if let Some(IfMatch::Versions(versions)) = if_match {
            let names: Vec<String> = (0..versions.len()).map(|i| format!(":v{i}")).collect();
            condition.push_str(&format!(" AND version IN ({})", names.join(", ")));
            values.extend(names.into_iter().zip(versions.iter().map(n)));
        }
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::session_pk(session_id)))
            .key(keys::SK, s(keys::META))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(condition)
            .expression_attribute_names("#ttl", "ttl")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        match within(self.config.write_timeout, update).await? {
            Ok(output) => {
                self.record_write(output.consumed_capacity());
                let item = output.attributes.ok_or_else(|| Error::Corrupt("the update returned no item".into()))?;
                Ok(Attempt::Updated(from_item(item)?))
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    Ok(Attempt::Refused(failed.item.map(from_item).transpose()?))
                }
                other => Err(Error::from_store(other)),
            },
            Err(e) => Err(Error::from_store(e)),
        }
    }
}
