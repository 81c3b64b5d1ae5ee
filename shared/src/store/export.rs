//! The human handoff export (`GET /sessions/{id}/turns`): every turn in order, paged, with
//! the session and its latest summary. A Query of META and the summary, then one of TURN items.
use std::future::Future;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use uuid::Uuid;

use super::{from_item, s, within, DynamoStore};
use crate::items::TurnItem;
use crate::model::{envelope_len, Caller, ExportPosition, TurnPage, EXPORT_PAGE_BUDGET_BYTES};
use crate::{keys, Error};

/// Exports a session's turns (`GET /sessions/{id}/turns`).
pub trait TurnExporter {
    /// Up to `limit` turns after `after`, oldest first. The owner and support may read;
    /// anyone else, and everyone once the session expired, gets 404. `next` is set whenever
    /// turns remain: after a `limit` cut, a cut at DynamoDB's 1 MB page, or a cut before the
    /// body would pass [`EXPORT_PAGE_BUDGET_BYTES`]. It is unset only on the last page.
    fn export_turns(
        &self,
        caller: &Caller,
        session_id: Uuid,
        limit: usize,
        after: Option<ExportPosition>,
    ) -> impl Future<Output = Result<TurnPage, Error>> + Send;
}

/// Room kept in the budget for the `next_cursor` field and the JSON punctuation around it.
const CURSOR_ALLOWANCE_BYTES: usize = 512;

impl TurnExporter for DynamoStore {
    async fn export_turns(
        &self,
        caller: &Caller,
        session_id: Uuid,
        limit: usize,
        after: Option<ExportPosition>,
    ) -> Result<TurnPage, Error> {
        // The configuration has no read timeout but the 300 ms context deadline; use the write one.
        let timeout = self.config.write_timeout;
        // Strongly consistent: a handoff usually follows the very turn that asked for a human.
        let (meta, summary) = self.read_head(&session_id, true, timeout).await?;
        let meta = meta.ok_or(Error::NotFound)?;
        let readable = meta.owner_id == caller.customer_id || caller.is_support();
        if !readable || meta.is_expired(self.clock.now_epoch_seconds()) {
            return Err(Error::NotFound);
        }
        let mut page = TurnPage {
            session: meta.session(),
            summary,
            turns: Vec::new(),
            unmerged: Vec::new(),
            next: None,
            incomplete: false,
        };
        let after_turn = after.map_or(0, |p| p.after_turn);
        // META's turn_count is the snapshot this page shows; turns appended since wait for the next export.
        let remaining = meta.turn_count.saturating_sub(after_turn);
        let chain = meta.chain();
        // After any failover, turns of other epochs may share the session's range.
        let map_epoch = self.config.write_epoch()?;
        let failed_over = chain.last_epoch() > 0 || map_epoch > 0;
        let pk = keys::session_pk(&session_id);
        let mut used = envelope_len(&page) + CURSOR_ALLOWANCE_BYTES;
        let mut last = after_turn;
        let mut missing = 0;
        let mut start = None;
        let target = remaining.min(limit as u64);
        let next = loop {
            if remaining == 0 {
                break None;
            }
            let asked = target.saturating_sub(page.turns.len() as u64).clamp(1, i32::MAX as u64) as i32;
            let range = (keys::turn_sk(after_turn + 1), keys::turn_sk_bound(meta.turn_count));
            let (items, stopped_at) = self.turn_items(&pk, range, Some(asked), start.take(), timeout).await?;
            let read = items.len();
            // Gzip hides how large a page is: decompress turn by turn and stop before the body
            // would pass the budget. At least one turn is always included, so pages always progress.
            let mut budget_cut = false;
            for item in items {
                let held = chain.holds(&item.sk, meta.turn_count);
                // Listed as unmerged unless the chain holds it.
                let listed = item.into_unmerged()?;
                let size = envelope_len(&listed.turn) + 1;
                if !page.turns.is_empty() && used + size > EXPORT_PAGE_BUDGET_BYTES {
                    budget_cut = true;
                    break;
                }
                used += size;
                if !held {
                    page.unmerged.push(listed);
                    continue;
                }
                let turn = listed.turn;
                missing += turn.turn_index.saturating_sub(last + 1);
                last = turn.turn_index;
                page.turns.push(turn);
            }
            if budget_cut || page.turns.len() as u64 >= target {
                break Some(last);
            }
            // A `Limit` cut with room left (unmerged turns took it) reads on; a 1 MB cut ends
            // the page, unless it holds no turn yet.
            match stopped_at {
                Some(key) if read == asked as usize || page.turns.is_empty() => start = Some(key),
                Some(_) => break Some(last),
                None => break None,
            }
        };
        match next.filter(|&n| n < meta.turn_count) {
            // The next page starts after `last`: items of other epochs at `last` that sort
            // after its turn belong on this one.
            Some(last) if failed_over => {
                let range = (keys::turn_sk(last), keys::turn_sk_bound(last));
                let (items, _) = self.turn_items(&pk, range, None, None, timeout).await?;
                for item in items.into_iter().filter(|item| !chain.holds(&item.sk, meta.turn_count)) {
                    let unmerged = item.into_unmerged()?;
                    if !page.unmerged.iter().any(|listed| listed.epoch == unmerged.epoch && listed.turn.turn_index == unmerged.turn.turn_index) {
                        page.unmerged.push(unmerged);
                    }
                }
                page.unmerged.retain(|unmerged| unmerged.turn.turn_index <= last);
            }
            Some(last) => page.unmerged.retain(|unmerged| unmerged.turn.turn_index <= last),
            // The last page: an old home's turns past the count are unmerged too (one of the
            // chain's last epoch there is an append in flight).
            None if failed_over => {
                let range = (keys::turn_sk(meta.turn_count + 1), keys::TURN_RANGE_END.to_owned());
                let mut start = None;
                let mut full = false;
                while !full {
                    let (items, stopped_at) = self.turn_items(&pk, range.clone(), None, start, timeout).await?;
                    for item in items.into_iter().filter(|item| chain.late_past_count(item.epoch(), map_epoch)) {
                        let unmerged = item.into_unmerged()?;
                        let size = envelope_len(&unmerged.turn) + 1;
                        if used + size > EXPORT_PAGE_BUDGET_BYTES {
                            // The rest are listed by `make unmerged`; the page stays in budget.
                            tracing::warn!(%session_id, "more unmerged turns past the count than a page holds");
                            full = true;
                            break;
                        }
                        used += size;
                        page.unmerged.push(unmerged);
                    }
                    match stopped_at {
                        Some(key) => start = Some(key),
                        None => break,
                    }
                }
            }
            None => {}
        }
        if remaining == 0 {
            return Ok(page);
        }
        if next.is_none() {
            missing += meta.turn_count.saturating_sub(last);
        }
        if missing > 0 {
            // Turns carry no ttl of their own and this read is strongly consistent, so a gap
            // means a deletion of the session (DELETE, purge or the TTL sweep) ran while the
            // page was read, or, after a failover with no fence, a turn the old home
            // acknowledged has not arrived yet; say so rather than hide it.
            tracing::warn!(%session_id, missing, "export found gaps in the turn sequence");
            page.incomplete = true;
        }
        page.next = next.filter(|&n| n < meta.turn_count).map(|after_turn| ExportPosition { after_turn });
        Ok(page)
    }
}

impl DynamoStore {
    /// The turn items of `range` (sort keys, inclusive), oldest first, strongly consistent,
    /// at most `limit` from `start`, opened, and where the read stopped when more remain.
    async fn turn_items(
        &self,
        pk: &str,
        (first, last): (String, String),
        limit: Option<i32>,
        start: Option<HashMap<String, AttributeValue>>,
        timeout: std::time::Duration,
    ) -> Result<(Vec<TurnItem>, Option<HashMap<String, AttributeValue>>), Error> {
        let query = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk AND SK BETWEEN :first AND :last")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":first", s(first))
            .expression_attribute_values(":last", s(last))
            .scan_index_forward(true)
            .set_limit(limit)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send();
        let output = within(timeout, query).await?.map_err(Error::from_store)?;
        self.record_read(output.consumed_capacity());
        let stopped_at = output.last_evaluated_key.filter(|key| !key.is_empty());
        let mut items = output.items.unwrap_or_default();
        Box::pin(self.open_items(&mut items)).await?;
        let items = items.into_iter().map(from_item).collect::<Result<_, _>>()?;
        Ok((items, stopped_at))
    }
}
