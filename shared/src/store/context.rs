//! Loading a context: META and the latest summary, then the unsummarised turns newest first,
//! fitted to the caller's budget; and the version a conditional load compares.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use uuid::Uuid;

use crate::items::TurnItem;
use crate::model::{envelope_len, Caller, Context, ContextRequest, CONTEXT_BODY_BUDGET_BYTES, MAX_MAX_TURNS};
use crate::{keys, Error};

use super::turn_window::TurnWindow;

use super::{from_item, s, within_deadline};
use super::{ContextLoader, DynamoStore, SessionItems};

impl ContextLoader for DynamoStore {
    async fn load_context(
        &self,
        caller: &Caller,
        session_id: Uuid,
        request: ContextRequest,
    ) -> Result<Context, Error> {
        let deadline = tokio::time::Instant::now() + self.config.load_deadline;
        let wanted = request
            .max_turns
            .unwrap_or(MAX_MAX_TURNS)
            .clamp(1, MAX_MAX_TURNS);
        // Without max_turns, the first read covers a settled backlog (at most threshold +
        // keep_recent - 1 turns after the summary); a longer backlog takes a second read.
        let first_read = if request.max_turns.is_some() {
            wanted
        } else {
            wanted.min(self.settled_backlog())
        };
        let pk = keys::session_pk(&session_id);
        // A customer's key is read beside the turns: opening them adds no round trip.
        let prefetch = Box::pin(self.prefetch_key(caller));
        let head = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :head")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":first", s(keys::turn_sk(1)))
            .expression_attribute_values(":head", s(keys::LATEST_SUMMARY))
            .scan_index_forward(false)
            .limit((first_read + 2) as i32)
            .consistent_read(request.consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let (head, known) = futures::join!(within_deadline(deadline, head), prefetch);
        let head = head?.map_err(Error::from_store)?;
        self.record_read(head.consumed_capacity());
        let more_below = head
            .last_evaluated_key
            .as_ref()
            .is_some_and(|k| !k.is_empty());

        let mut items = head.items.unwrap_or_default();
        within_deadline(deadline, Box::pin(self.open_items_with(&mut items, known?))).await??;
        let SessionItems { meta, summary, turns: newest_first } = SessionItems::sort(items, self.config.write_epoch()?)?;
        let meta = meta.ok_or(Error::NotFound)?;
        let readable = meta.owner_id == caller.customer_id || caller.is_support();
        if !readable || meta.is_expired(self.clock.now_epoch_seconds()) {
            return Err(Error::NotFound);
        }
        let summarized = summary
            .as_ref()
            .map_or(0, |latest| latest.through_turn)
            .min(meta.turn_count);
        let mut window = TurnWindow::new(meta.turn_count, summarized, wanted).along(meta.chain());
        for item in newest_first {
            window.push(item)?;
        }
        if window.wants_older() && more_below {
            // Turns below the first read were committed before it, so a consistent read sees them all.
            let (from, to) = (summarized + 1, window.oldest_index() - 1);
            // Every retracted turn could lie below: read that many more.
            let limit = window.room() + (meta.retracted_turns as usize).min(MAX_MAX_TURNS);
            let mut start = None;
            loop {
                let (older, next) = self.turns_newest_first(&pk, (from, to), limit, start, deadline).await?;
                for item in older {
                    window.push(item)?;
                }
                // Unmerged turns take room in a page: read on past them.
                match next {
                    Some(key) if window.wants_older() => start = Some(key),
                    _ => break,
                }
            }
        }
        if window.unmerged() > 0 {
            tracing::warn!(%session_id, unmerged = window.unmerged(),
                "turns acknowledged before a failover and not in the session's order were read; the export lists them");
        }
        // An eventually consistent Query is no snapshot: it may see META ahead of its newest
        // turn or of the latest summary. Such a body is not the one META's version names, so
        // it gets no version (no ETag): a 304 never pins it.
        let summary_current = summary.as_ref().map_or(0, |latest| latest.through_turn) == meta.summarized_through;
        let version = (window.complete() && summary_current).then_some(meta.tag());
        let mut session = meta.session();
        session.turn_count = window.turn_count();
        let mut context = Context {
            session: Some(session),
            summary,
            omitted: None,
            turns: Vec::new(),
            degraded: false,
            version,
        };
        let (turns, omitted) = window.fit(
            request.max_tokens,
            CONTEXT_BODY_BUDGET_BYTES - envelope_len(&context),
        );
        context.turns = turns;
        context.omitted = omitted;
        Ok(context)
    }

    async fn context_version(
        &self,
        caller: &Caller,
        session_id: Uuid,
        consistent: bool,
    ) -> Result<u64, Error> {
        let meta = self
            .read_meta(&session_id, consistent, self.config.load_deadline)
            .await?
            .ok_or(Error::NotFound)?;
        let readable = meta.owner_id == caller.customer_id || caller.is_support();
        if !readable || meta.is_expired(self.clock.now_epoch_seconds()) {
            return Err(Error::NotFound);
        }
        Ok(meta.tag())
    }
}

impl DynamoStore {
    /// The most unsummarised turns a settled session has: the summary trails the newest turn
    /// by fewer than a window plus the kept turns.
    fn settled_backlog(&self) -> usize {
        (self.config.summary_threshold + self.config.summary_keep_recent)
            .clamp(1, MAX_MAX_TURNS as u64) as usize
    }

    /// Turn items of `from..=to` (every epoch's), newest first, at most `limit` from `start`,
    /// strongly consistent, and where the page stopped when more remain.
    async fn turns_newest_first(
        &self,
        pk: &str,
        (from, to): (u64, u64),
        limit: usize,
        start: Option<HashMap<String, AttributeValue>>,
        deadline: tokio::time::Instant,
    ) -> Result<(Vec<TurnItem>, Option<HashMap<String, AttributeValue>>), Error> {
        if to < from || limit == 0 {
            return Ok((Vec::new(), None));
        }
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":from", s(keys::turn_sk(from)))
            .expression_attribute_values(":to", s(keys::turn_sk_bound(to)))
            .scan_index_forward(false)
            .limit(limit.min(2 * MAX_MAX_TURNS) as i32)
            .set_exclusive_start_key(start)
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within_deadline(deadline, query)
            .await?
            .map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        let next = output.last_evaluated_key.filter(|key| !key.is_empty());
        let mut items = output.items.unwrap_or_default();
        within_deadline(deadline, Box::pin(self.open_items(&mut items))).await??;
        Ok((items.into_iter().map(from_item).collect::<Result<_, _>>()?, next))
    }
}
