//! Appending a turn: exactly once per `response_id`, at the next gap-free index, in one
//! transaction with META's counter.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use uuid::Uuid;

use crate::chain::{Chain, Segment};
use crate::clock;
use crate::items::{self, MetaItem, ResponseItem, TurnItem};
use crate::model::{Appended, Caller, TurnDraft};
use crate::{codec, keys, Error};

use super::{backoff, record_version_epoch, cancellation_reasons, condition_failed, failed_item, n, request_token, s, to_item, within};
use super::sealing::seal_item;
use super::transact::Transacted;
use super::{DynamoStore, TurnAppender};
use crate::crypto::DataKey;


/// How many times an append retries after losing a race for the next turn index.
const MAX_APPEND_ATTEMPTS: u32 = 60;


/// The positions of an append transaction, as `CancellationReasons` lists them.
mod append_position {
    pub const RESPONSE: usize = 0;
    pub const TURN: usize = 1;
    pub const META: usize = 2;
}

/// While a due summary has not landed, every this many appends flip META's `summary_rearm`,
/// which the stream filter matches, so the summariser is asked again.
pub const SUMMARY_REARM_TURNS: u64 = 10;

/// What an append writes, the same in every attempt: the compressed content, the payload's
/// keyed hash, and the key the turn is sealed under (none when the store does not encrypt).
struct Written<'a> {
    content: &'a [u8],
    payload_hash: &'a str,
    seal: Option<(&'a str, &'a DataKey)>,
    /// The home map's failover epoch here ([`crate::chain`]).
    epoch: u64,
}

/// The fields of META that an append needs to decide the next index.
struct AppendBase {
    turn_count: u64,
    summarized_through: u64,
    /// The customer index's sort key; `None` for guests, who are not in the index.
    listed_at: Option<String>,
    chain: Chain,
    /// The idempotency record of this response id that an earlier home wrote for a turn this
    /// session's order does not hold: the append takes its key over, only while it is as read.
    replaced_response: Option<ResponseItem>,
}

impl AppendBase {
    fn from_meta(meta: MetaItem, caller: &Caller, now_secs: i64) -> Result<Self, Error> {
        if meta.owner_id != caller.customer_id || meta.is_expired(now_secs) {
            return Err(Error::NotFound);
        }
        Ok(AppendBase {
            turn_count: meta.turn_count,
            summarized_through: meta.summarized_through,
            chain: meta.chain(),
            listed_at: if meta.guest { None } else { meta.gsi1sk },
            replaced_response: None,
        })
    }

    /// The chain with the segment an append under `writer_epoch` opens.
    fn chain_written(&self, writer_epoch: u64) -> Chain {
        self.chain.with(self.chain.opened_by(writer_epoch, self.turn_count + 1))
    }

    fn keep_replaced(mut self, replaced: Option<ResponseItem>) -> Self {
        self.replaced_response = replaced;
        self
    }
}

impl TurnAppender for DynamoStore {
    async fn append_turn(
        &self,
        caller: &Caller,
        session_id: Uuid,
        turn: TurnDraft,
    ) -> Result<Appended, Error> {
        // A customer's key is read beside META; made, the first time, only once META is read.
        let early_ref = match self.encryption() {
            Some(_) if !caller.is_guest() => Some(self.customer_key_ref(&caller.customer_id)?),
            _ => None,
        };
        let early_key = async {
            match &early_ref {
                Some(key_ref) => Box::pin(self.existing_key(key_ref)).await,
                None => Ok(None),
            }
        };
        let (meta, early_key) = futures::join!(self.read_meta(&session_id, true, self.config.write_timeout), early_key);
        let meta = meta?.ok_or(Error::NotFound)?;
        let key_ref = self.session_key_ref(&meta)?;
        // A guest's day key must outlive this session's new expiry.
        let until = meta.guest.then(|| self.now_with_expiry().2);
        let mut base = AppendBase::from_meta(meta, caller, self.clock.now_epoch_seconds())?;
        let key = match (&key_ref, early_key?) {
            (None, _) => None,
            (Some(key_ref), Some(early)) if early_ref.as_ref() == Some(key_ref) => Some(early),
            (Some(key_ref), _) => Box::pin(self.sealing_key_until(key_ref, until)).await?,
        };
        let seal = key_ref.as_deref().zip(key.as_deref());
        let content = codec::compress(&turn.content);
        let payload_hash = turn.payload_hash(self.config.hash_key()?, &session_id);
        let writer_epoch = self.config.write_epoch()?;

        for attempt in 0..MAX_APPEND_ATTEMPTS {
            let written = Written { content: &content, payload_hash: &payload_hash, seal, epoch: writer_epoch };
            let transaction = self.append_transaction(caller, &session_id, &turn, &written, &base)?;
            let index = base.turn_count + 1;
            let sent = within(self.config.write_timeout, transaction.send()).await?;
            let reasons = match sent {
                Ok(output) => {
                    self.record(output.consumed_capacity());
                    tracing::info!(%session_id, turn_index = index, attempt, "turn appended");
                    return Ok(Appended { turn_index: index, duplicate: false });
                }
                Err(e) => cancellation_reasons(e)?,
            };

            if let Some(existing) = failed_item::<ResponseItem>(&reasons, append_position::RESPONSE)? {
                if existing.payload_hash != payload_hash {
                    return Err(Error::Conflict("this response_id was already used with a different payload".to_owned()));
                }
                if base.chain_written(writer_epoch).epoch_of(existing.turn_index) == existing.epoch {
                    tracing::info!(%session_id, turn_index = existing.turn_index, "duplicate append");
                    return Ok(Appended { turn_index: existing.turn_index, duplicate: true });
                }
                if existing.epoch > base.chain.last_epoch() {
                    // Written by a home under a later epoch than this META knows: that home's
                    // META, which says where its turn lies, has not arrived yet.
                    tracing::warn!(%session_id, epoch = existing.epoch, "a response recorded by a later home whose session state has not arrived");
                    return Err(Error::Unavailable(
                        "this response was recorded by another home region whose writes are still arriving; retry".into(),
                    ));
                }
                if existing.turn_index == base.turn_count + 1
                    && base.chain.epoch_of(existing.turn_index) == existing.epoch
                    && self.adopt(caller, &session_id, &base, &existing, writer_epoch).await?
                {
                    return Ok(Appended { turn_index: existing.turn_index, duplicate: true });
                }
                // A home before a failover acknowledged it, at an index this session's order
                // gives to another turn: it is appended again, and its old turn stays unmerged.
                tracing::warn!(%session_id, turn_index = existing.turn_index, epoch = existing.epoch,
                    "a response acknowledged before a failover and not in the session's order is appended again");
                base.replaced_response = Some(existing);
                continue;
            }
            let replaced = base.replaced_response.take();
            if condition_failed(&reasons, append_position::META) {
                // Someone else took the index, or the session went away: the old META says which.
                let meta: MetaItem = failed_item(&reasons, append_position::META)?.ok_or(Error::NotFound)?;
                base = AppendBase::from_meta(meta, caller, self.clock.now_epoch_seconds())?.keep_replaced(replaced);
                continue;
            }
            let turn_taken = condition_failed(&reasons, append_position::TURN);
            if !turn_taken {
                // A transaction conflict: another append is in flight. Back off first.
                tokio::time::sleep(backoff(attempt)).await;
            }
            let meta = self.read_meta(&session_id, true, self.config.write_timeout).await?.ok_or(Error::NotFound)?;
            let fresh = AppendBase::from_meta(meta, caller, self.clock.now_epoch_seconds())?.keep_replaced(replaced);
            if turn_taken && fresh.turn_count == base.turn_count {
                // TURN#n exists although META counts n-1: an item no append of this session wrote.
                tracing::error!(%session_id, turn_index = index, "a turn item exists beyond the session's count");
                return Err(Error::SessionIdUnavailable);
            }
            base = fresh;
        }
        Err(Error::Unavailable("too many concurrent appends to this session".into()))
    }
}

impl DynamoStore {
    /// One transaction: claim the response id, write the turn, and move META's counter from
    /// `turn_count` to `turn_count + 1`. Any concurrent append to the same session breaks the
    /// last condition, so indices stay gap-free, and a reused response id breaks the first.
    /// The turn's content is sealed under `written.seal`'s key when the store encrypts.
    fn append_transaction(
        &self,
        caller: &Caller,
        session_id: &Uuid,
        turn: &TurnDraft,
        written: &Written<'_>,
        base: &AppendBase,
    ) -> Result<aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder, Error>
    {
        let (now, _, _) = self.now_with_expiry();
        let index = base.turn_count + 1;
        let pk = keys::session_pk(session_id);
        let opened = base.chain.opened_by(written.epoch, index);
        let chain = base.chain.with(opened);

        let response = ResponseItem {
            pk: pk.clone(),
            sk: keys::response_sk(&turn.response_id),
            turn_index: index,
            payload_hash: written.payload_hash.to_owned(),
            epoch: chain.epoch_of(index),
        };
        let turn_item = TurnItem {
            pk: pk.clone(),
            sk: chain.turn_sk(index),
            role: turn.role,
            content: written.content.to_vec(),
            intent: turn.intent.clone(),
            token_count: turn.token_count,
            created_at: now.clone(),
            item: turn.item.as_ref().map(codec::compress_json),
            retracted_at: None,
        };
        let mut turn_item = to_item(&turn_item)?;
        if let Some((key_ref, key)) = written.seal {
            seal_item(&mut turn_item, key_ref, key)?;
        }

        let meta_update = self.advance_meta(caller, &pk, base, opened, written.epoch.max(chain.last_epoch()))?;

        Ok(self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(self.response_put(&response, base.replaced_response.as_ref())?).build())
            .transact_items(TransactWriteItem::builder().put(self.put_new(turn_item, false)?).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .client_request_token(request_token(&[&pk, &turn.response_id, &index.to_string(), &now]))
            .return_consumed_capacity(ReturnConsumedCapacity::Total))
    }

    /// META's part of an append: the count moved from `base.turn_count` by one (only while it
    /// still is that, and the session is the caller's and live), the expiry slid, the version
    /// moved under `version_epoch`, the summary flags, and `opened`, a new segment.
    fn advance_meta(
        &self,
        caller: &Caller,
        pk: &str,
        base: &AppendBase,
        opened: Option<Segment>,
        version_epoch: u64,
    ) -> Result<Update, Error> {
        let (now, now_secs, expires) = self.now_with_expiry();
        let index = base.turn_count + 1;
        let mut set = vec![
            "turn_count = :index",
            "updated_at = :now",
            "#ttl = :ttl",
            "ttl_margin = :margin",
            "version = version + :one",
        ];
        let mut values = HashMap::from([
            (":index".to_owned(), n(index)),
            (":previous".to_owned(), n(base.turn_count)),
            (":now".to_owned(), s(&now)),
            (":live_ttl".to_owned(), n(items::ttl_for_expiry(now_secs))),
            (":now_secs".to_owned(), n(now_secs)),
            (":margin".to_owned(), n(items::TTL_AFTER_EXPIRY_SECONDS)),
            (":ttl".to_owned(), n(items::ttl_for_expiry(expires))),
            (":one".to_owned(), n(1)),
            (":owner".to_owned(), s(&caller.customer_id)),
        ]);
        if let Some(listed_at) = &base.listed_at {
            // The index entry is rewritten only when the activity has moved a full step.
            let listed_secs = clock::parse_epoch_seconds(listed_at).unwrap_or(i64::MIN);
            if now_secs.saturating_sub(listed_secs)
                >= self.config.resume_order_step.as_secs() as i64
            {
                set.push("GSI1SK = :now");
                set.push("listed_turn_count = :index");
            }
        }
        let due_at = self.config.summary_due_at(base.summarized_through);
        if index >= due_at {
            set.push("needs_summary = :due");
            values.insert(":due".to_owned(), AttributeValue::Bool(true));
        }
        record_version_epoch(version_epoch, &mut set, &mut values);
        let mut names = HashMap::from([("#ttl".to_owned(), "ttl".to_owned())]);
        if let Some(segment) = opened {
            names.insert("#segments".to_owned(), "segments".to_owned());
            set.push("#segments = list_append(if_not_exists(#segments, :no_segments), :segment)");
            values.insert(":no_segments".to_owned(), AttributeValue::L(Vec::new()));
            values.insert(":segment".to_owned(), AttributeValue::L(vec![AttributeValue::M(to_item(&segment)?)]));
        }
        if index >= due_at + SUMMARY_REARM_TURNS {
            set.push("summary_rearm = :rearm");
            let flipped = ((index - due_at) / SUMMARY_REARM_TURNS) % 2 == 1;
            values.insert(":rearm".to_owned(), AttributeValue::Bool(flipped));
        }
        Update::builder()
            .table_name(self.table())
            .key(keys::PK, s(pk))
            .key(keys::SK, s(keys::META))
            .update_expression(format!("SET {}", set.join(", ")))
            .condition_expression(format!("turn_count = :previous AND owner_id = :owner AND {}", items::LIVE_CONDITION))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(Error::unavailable)
    }

    /// Makes an old home's turn part of the order: its idempotency record and its turn (under
    /// its epoch) arrived here before its META, at the index right after this META's count, so
    /// META's count moves over it, with no segment opened. `false` when the turn is not here
    /// (or META moved meanwhile).
    async fn adopt(
        &self,
        caller: &Caller,
        session_id: &Uuid,
        base: &AppendBase,
        record: &ResponseItem,
        writer_epoch: u64,
    ) -> Result<bool, Error> {
        let pk = keys::session_pk(session_id);
        let turn_here = ConditionCheck::builder()
            .table_name(self.table())
            .key(keys::PK, s(&pk))
            .key(keys::SK, s(keys::epoch_turn_sk(record.turn_index, record.epoch)))
            .condition_expression("attribute_exists(PK)")
            .build()
            .map_err(Error::unavailable)?;
        let meta_update = self.advance_meta(caller, &pk, base, None, writer_epoch.max(base.chain.last_epoch()))?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(turn_here).build())
            .transact_items(TransactWriteItem::builder().update(meta_update).build())
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        match self.transact(transaction).await? {
            Transacted::Committed => {
                tracing::warn!(%session_id, turn_index = record.turn_index, "an old home's turn that arrived before its META joins the order");
                Ok(true)
            }
            Transacted::ConditionFailed => Ok(false),
        }
    }

    /// The put of an append's idempotency record: new, or over `replaced` only while that is
    /// the record as it was read.
    fn response_put(&self, response: &ResponseItem, replaced: Option<&ResponseItem>) -> Result<Put, Error> {
        let Some(replaced) = replaced else {
            return self.put_new(to_item(response)?, true);
        };
        let epoch_condition = match replaced.epoch {
            0 => "attribute_not_exists(epoch)",
            _ => "epoch = :replaced_epoch",
        };
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(to_item(response)?))
            .condition_expression(format!("turn_index = :replaced_index AND payload_hash = :replaced_hash AND {epoch_condition}"))
            .expression_attribute_values(":replaced_index", n(replaced.turn_index))
            .expression_attribute_values(":replaced_hash", s(&replaced.payload_hash))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if replaced.epoch != 0 {
            put = put.expression_attribute_values(":replaced_epoch", n(replaced.epoch));
        }
        put.build().map_err(Error::unavailable)
    }
}
