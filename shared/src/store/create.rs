//! Creating a session: the META put (guest) or the META, registry and ledger-check
//! transaction (signed-in customer), refusing an id whose earlier items remain.
use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, ReturnConsumedCapacity, TransactWriteItem};
use uuid::Uuid;

use crate::clock;
use crate::items::{self, MetaItem};
use crate::model::{Caller, NewSession, SessionCreated};
use crate::{home, keys, Error};

use super::sealing::seal_item;
use super::{cancellation_reasons, condition_failed, s, to_item, within};
use super::{DynamoStore, SessionCreator};


impl SessionCreator for DynamoStore {
    async fn create_session(&self, caller: &Caller, request: NewSession) -> Result<SessionCreated, Error> {
        request.validate()?;
        let chosen_id = request.session_id.is_some();
        let session_id = match request.session_id {
            Some(id) => id,
            None => self.new_session_id(caller)?,
        };
        let (now, _, expires) = self.now_with_expiry();
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
            ttl: items::ttl_for_expiry(expires),
            ttl_margin: Some(items::TTL_AFTER_EXPIRY_SECONDS),
            version: 1,
            gsi1pk: (!caller.is_guest()).then(|| keys::customer_pk(&caller.customer_id)),
            gsi1sk: (!caller.is_guest()).then(|| now.clone()),
            listed_turn_count: (!caller.is_guest()).then_some(0),
            patched_from: None,
            segments: Vec::new(),
            version_epoch: 0,
            patched_from_epoch: 0,
        };
        if chosen_id && self.leftovers_without_meta(&session_id).await? {
            return Err(Error::SessionIdUnavailable);
        }
        let created =
            SessionCreated { session_id, created_at: now.clone(), expires_at: clock::format_epoch_seconds(expires), created: true };
        let item = self.sealed_meta(&meta).await?;
        let id_taken =
            if caller.is_guest() { self.put_guest_meta(item).await? } else { self.put_registered_meta(caller, &meta, item).await? };
        if !id_taken {
            return Ok(created);
        }
        let existing = self.read_meta(&session_id, true, self.config.write_timeout).await?;
        let now_secs = self.clock.now_epoch_seconds();
        match existing {
            Some(meta) if meta.owner_id == caller.customer_id && !meta.is_expired(now_secs) => Ok(SessionCreated {
                session_id,
                expires_at: clock::format_epoch_seconds(meta.expires_secs()),
                created_at: meta.created_at,
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
    /// A server-made session id. With several regions it carries its slot (`crate::home`): a
    /// signed-in customer's, or for a guest one this region is home to; else a plain v4.
    fn new_session_id(&self, caller: &Caller) -> Result<Uuid, Error> {
        let slot = match self.config.local_slot()? {
            None => return Ok(Uuid::new_v4()),
            Some(_) if !caller.is_guest() => home::customer_slot(&caller.customer_id),
            Some(local) => local,
        };
        Ok(home::new_session_id(slot))
    }

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

    /// `meta` as it is put: its page context, if it holds anything, sealed under the session's
    /// data key (a guest's day key made to cover the session's expiry).
    async fn sealed_meta(&self, meta: &MetaItem) -> Result<HashMap<String, AttributeValue>, Error> {
        let mut item = to_item(meta)?;
        if meta.page_context.is_empty() {
            return Ok(item);
        }
        let Some(key_ref) = self.session_key_ref(meta)? else {
            return Ok(item);
        };
        if let Some(key) = Box::pin(self.sealing_key_until(&key_ref, meta.guest.then(|| meta.expires_secs()))).await? {
            seal_item(&mut item, &key_ref, &key)?;
        }
        Ok(item)
    }

    /// A guest's META: one conditional put. Returns whether the id was already taken.
    async fn put_guest_meta(&self, item: HashMap<String, AttributeValue>) -> Result<bool, Error> {
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
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
    async fn put_registered_meta(&self, caller: &Caller, meta: &MetaItem, item: HashMap<String, AttributeValue>) -> Result<bool, Error> {
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
            .transact_items(TransactWriteItem::builder().put(self.put_new(item, false)?).build())
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
