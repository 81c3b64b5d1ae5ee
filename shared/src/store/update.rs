//! Session metadata updates (`PATCH /sessions/{id}`): one conditional UpdateItem on META.
use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue, ReturnValuesOnConditionCheckFailure};
use uuid::Uuid;

use serde_json::{Map, Value};

use super::data_keys::OpenKeys;
use super::sealing::{open_item, seal_attribute, PAGE_CONTEXT, PAGE_CONTEXT_DIGEST};
use super::{from_item, record_version_epoch, n, s, within, DynamoStore};
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
    Updated(Box<MetaItem>),
    /// The condition failed; the item as it was (its page context as stored), when DynamoDB
    /// returned it.
    Refused(Option<HashMap<String, AttributeValue>>),
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
        let page_context = self.page_context_to_write(caller, &session_id, &patch.page_context).await?;
        // Guests' META carries no customer-index keys. The token says which kind of session
        // to expect; the condition checks it, and a mismatch is retried the other way.
        let mut guest = caller.is_guest();
        for attempt in 0..MAX_UPDATE_ATTEMPTS {
            let old = match self.try_update(caller, &session_id, &page_context, if_match.as_ref(), guest).await? {
                Attempt::Updated(mut meta) => {
                    tracing::info!(%session_id, version = meta.version, attempt, "session updated");
                    meta.page_context = patch.page_context;
                    return Ok(SessionUpdated { session: meta.session(), version: meta.tag() });
                }
                Attempt::Refused(Some(old)) => old,
                // DynamoDB did not return the old item: read it to tell 404 from 412.
                Attempt::Refused(None) => {
                    self.read_meta_item(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?
                }
            };
            let holds_this_change = page_context.is_in(&old);
            let mut old: MetaItem = from_item(old)?;
            if old.owner_id != caller.customer_id || old.is_expired(self.clock.now_epoch_seconds())
            {
                return Err(Error::NotFound);
            }
            if let Some(if_match) = if_match.as_ref().filter(|m| !m.allows(old.tag())) {
                if holds_this_change && already_applied(&old, if_match) {
                    tracing::info!(%session_id, version = old.version, "session update already applied");
                    old.page_context = patch.page_context;
                    return Ok(SessionUpdated { session: old.session(), version: old.tag() });
                }
                return Err(Error::PreconditionFailed);
            }
            guest = old.guest;
        }
        Err(Error::Unavailable("the session kept changing during the update".into()))
    }
}

/// A page context as a PATCH writes it: sealed when the store encrypts and it holds
/// anything, with the key that sealed it; otherwise as it is.
struct NewPageContext {
    stored: AttributeValue,
    clear: AttributeValue,
    /// The key sealing it: what opens the stored one when a retry compares them.
    key: Option<OpenKeys>,
}

impl NewPageContext {
    /// Whether the META `item` already holds this page context. A sealed one is opened with
    /// the key this PATCH holds and compared as plaintext (one that does not open with it,
    /// moved or under another key, never matches); a clear one (written before encryption,
    /// or empty) is compared as it is. No digest of it is kept: any digest outlives the
    /// customer's key in every backup and would confirm a guess after the purge.
    fn is_in(&self, item: &HashMap<String, AttributeValue>) -> bool {
        match item.get(PAGE_CONTEXT) {
            Some(sealed @ AttributeValue::B(_)) => {
                let Some(key) = &self.key else { return false };
                let mut alone: HashMap<String, AttributeValue> =
                    [keys::PK, keys::SK].into_iter().filter_map(|k| Some((k.to_owned(), item.get(k)?.clone()))).collect();
                alone.insert(PAGE_CONTEXT.to_owned(), sealed.clone());
                open_item(&mut alone, key, false).is_ok() && alone.get(PAGE_CONTEXT) == Some(&self.clear)
            }
            Some(stored) => *stored == self.clear,
            None => self.clear.as_m().is_ok_and(HashMap::is_empty),
        }
    }
}

/// Whether `meta`, which holds this very page context ([`NewPageContext::is_in`]), holds it
/// from this change, made from a version `if_match` allows: a retry of a PATCH that was
/// applied but whose answer was lost (or the SDK's own retry of it). A PATCH made since, even
/// of the same page_context, replaced `patched_from`, so the retry is refused as stale. A
/// different caller sending the same change with the same ETag is answered the same way:
/// the session is as it asked.
fn already_applied(meta: &MetaItem, if_match: &IfMatch) -> bool {
    meta.patched_from_tag().is_some_and(|from| if_match.allows(from))
}

impl DynamoStore {
    /// `page_context` as this PATCH writes it. A guest's day key is moved to cover the
    /// session's new expiry (and made, when there is something to seal and no key yet); a
    /// customer's key is made only once the session is found live and theirs, as every
    /// writer's is (`key_for_session`). A session that is not the caller's live one is 404.
    async fn page_context_to_write(
        &self,
        caller: &Caller,
        session_id: &Uuid,
        page_context: &Map<String, Value>,
    ) -> Result<NewPageContext, Error> {
        let clear = serde_dynamo::to_attribute_value::<_, AttributeValue>(page_context).map_err(Error::corrupt)?;
        if page_context.is_empty() || self.encryption().is_none() {
            if caller.is_guest() {
                // The day key of a guest's content must outlive the expiry this update slides.
                self.cover_guest_session(session_id).await?;
            }
            return Ok(NewPageContext { stored: clear.clone(), clear, key: None });
        }
        let owned = |meta: &MetaItem| meta.owner_id == caller.customer_id;
        let (key_ref, key) = if caller.is_guest() {
            let now_secs = self.clock.now_epoch_seconds();
            let meta = self.read_meta(session_id, true, self.config.write_timeout).await?;
            let meta = meta.filter(|m| owned(m) && !m.is_expired(now_secs)).ok_or(Error::NotFound)?;
            let key_ref = self.meta_key_ref(&meta)?;
            let until = meta.guest.then(|| self.now_with_expiry().2);
            let key = Box::pin(self.sealing_key_until(&key_ref, until)).await?;
            (key_ref, key)
        } else {
            let key_ref = self.customer_key_ref(&caller.customer_id)?;
            let key = Box::pin(self.key_for_session(&key_ref, session_id, owned)).await?;
            (key_ref, key)
        };
        let key = key.ok_or(Error::NotFound)?;
        let stored = seal_attribute(&keys::session_pk(session_id), keys::META, PAGE_CONTEXT, clear.clone(), &key_ref, &key)?;
        Ok(NewPageContext { stored, clear, key: Some(OpenKeys::from_iter([(key_ref, Some(key))])) })
    }

    async fn try_update(
        &self,
        caller: &Caller,
        session_id: &Uuid,
        page_context: &NewPageContext,
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
            (":page_context".to_owned(), page_context.stored.clone()),
            (":now".to_owned(), s(&now)),
            (":live_ttl".to_owned(), n(items::ttl_for_expiry(now_secs))),
            (":now_secs".to_owned(), n(now_secs)),
            (":margin".to_owned(), n(items::TTL_AFTER_EXPIRY_SECONDS)),
            (":ttl".to_owned(), n(items::ttl_for_expiry(expires))),
            (":one".to_owned(), n(1)),
            (":owner".to_owned(), s(&caller.customer_id)),
            (":guest".to_owned(), AttributeValue::Bool(guest)),
        ]);
        let writer_epoch = self.config.write_epoch()?;
        record_version_epoch(writer_epoch, &mut set, &mut values);
        if writer_epoch > 0 {
            set.push("patched_from_epoch = if_not_exists(version_epoch, :zero)");
            values.insert(":zero".to_owned(), n(0));
        }
        // The digest earlier versions kept beside a sealed page context goes with the change.
        let update = format!("SET {} REMOVE {PAGE_CONTEXT_DIGEST}", set.join(", "));
        if let Some(IfMatch::Versions(tags)) = if_match {
            // Each ETag names a version and the epoch of the home that counted it.
            let alternatives: Vec<String> = tags
                .iter()
                .enumerate()
                .map(|(i, tag)| {
                    let (epoch, version) = items::tag_parts(*tag);
                    values.insert(format!(":v{i}"), n(version));
                    values.insert(format!(":e{i}"), n(epoch));
                    match epoch {
                        0 => format!("version = :v{i} AND (attribute_not_exists(version_epoch) OR version_epoch = :e{i})"),
                        _ => format!("version = :v{i} AND version_epoch = :e{i}"),
                    }
                })
                .collect();
            condition.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
        }
        let update = self
            .client
            .update_item()
            .table_name(self.table())
            .key(keys::PK, s(keys::session_pk(session_id)))
            .key(keys::SK, s(keys::META))
            .update_expression(update)
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
                Ok(Attempt::Updated(Box::new(from_item(item)?)))
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                UpdateItemError::ConditionalCheckFailedException(failed) => {
                    Ok(Attempt::Refused(failed.item))
                }
                other => Err(Error::from_store(other)),
            },
            Err(e) => Err(Error::from_store(e)),
        }
    }
}
