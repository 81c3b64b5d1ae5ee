//! The turn window of a load (a pure algorithm): which unsummarised turns a context may
//! return, gathered newest first, and how they are fitted to a token and byte budget.


use crate::chain::Chain;
use crate::items::TurnItem;
use crate::model::{envelope_len, Omitted, Turn};
use crate::Error;

/// The unsummarised turns of a load, gathered newest first: only the contiguous run that
/// ends at the session's newest turn and stays above the summary.
pub(super) struct TurnWindow {
    turn_count: u64,
    summarized: u64,
    wanted: usize,
    /// The newest turn this read can vouch for; lower than `turn_count` only when META's
    /// newest turn was not yet visible to the read.
    newest: Option<u64>,
    /// The oldest turn read so far, retracted or not: the next one must be just below it.
    oldest_read: Option<u64>,
    turns: Vec<Turn>,
    /// Retracted turns read: never in `turns` (nor counted against `wanted`), nor in `omitted`.
    retracted: Vec<u64>,
    closed: bool,
    chain: Chain,
    /// Turn items read that the chain does not hold: acknowledged by a home before a
    /// failover and not replicated in time ([`crate::chain`]).
    unmerged: usize,
}

impl TurnWindow {
    pub(super) fn new(turn_count: u64, summarized: u64, wanted: usize) -> Self {
        TurnWindow {
            turn_count,
            summarized,
            wanted,
            newest: None,
            oldest_read: None,
            turns: Vec::new(),
            retracted: Vec::new(),
            closed: false,
            chain: Chain::default(),
            unmerged: 0,
        }
    }

    /// The window of a session whose turns are keyed by `chain`.
    pub(super) fn along(mut self, chain: Chain) -> Self {
        self.chain = chain;
        self
    }

    pub(super) fn unmerged(&self) -> usize {
        self.unmerged
    }

    pub(super) fn push(&mut self, item: TurnItem) -> Result<(), Error> {
        let index = item.turn_index()?;
        if index <= self.turn_count && !self.chain.holds(&item.sk, self.turn_count) {
            self.unmerged += 1;
            return Ok(());
        }
        if self.closed
            || index > self.turn_count
            || index <= self.summarized
            || self.turns.len() >= self.wanted
        {
            return Ok(());
        }
        let expected = self.oldest_read.map_or(self.turn_count, |oldest| oldest - 1);
        if index != expected && !(self.oldest_read.is_none() && index < expected) {
            self.closed = true;
            return Ok(());
        }
        self.newest.get_or_insert(index);
        self.oldest_read = Some(index);
        if item.retracted_at.is_some() {
            self.retracted.push(index);
        } else {
            self.turns.push(item.into_turn()?);
        }
        Ok(())
    }

    /// The newest turn this read vouches for: META's count when the read saw that turn (or
    /// every turn is summarised), else the newest it saw, else the summary's end.
    pub(super) fn turn_count(&self) -> u64 {
        self.newest.unwrap_or(self.summarized)
    }

    /// Whether the read saw META's newest turn (or had none to see), and no turn missing
    /// below it (after a failover, one the old home had not replicated yet).
    pub(super) fn complete(&self) -> bool {
        self.turn_count() == self.turn_count && !self.closed
    }

    pub(super) fn oldest_index(&self) -> u64 {
        self.oldest_read.unwrap_or(self.turn_count + 1)
    }

    pub(super) fn room(&self) -> usize {
        self.wanted.saturating_sub(self.turns.len())
    }

    pub(super) fn wants_older(&self) -> bool {
        !self.closed && self.room() > 0 && self.oldest_index() > self.summarized + 1
    }

    /// The turns, oldest first, cut from the oldest end to fit `max_tokens` and `budget`
    /// bytes of body, and the unsummarised turns left out.
    pub(super) fn fit(self, max_tokens: Option<u64>, budget: usize) -> (Vec<Turn>, Option<Omitted>) {
        let newest = self.turn_count();
        let mut kept = Vec::with_capacity(self.turns.len());
        let (mut tokens, mut bytes) = (0u64, 0usize);
        for turn in self.turns {
            tokens = tokens.saturating_add(turn.tokens());
            bytes = bytes.saturating_add(envelope_len(&turn) + 1);
            if max_tokens.is_some_and(|max| tokens > max) || bytes > budget {
                break;
            }
            kept.push(turn);
        }
        kept.reverse();
        let first_kept = kept.first().map_or(newest + 1, |t| t.turn_index);
        // A retracted turn is in no context: `omitted` does not end on one this read saw.
        let mut to_turn = first_kept - 1;
        while self.retracted.contains(&to_turn) {
            to_turn -= 1;
        }
        let omitted = (to_turn > self.summarized).then(|| Omitted {
            from_turn: self.summarized + 1,
            to_turn,
        });
        (kept, omitted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;
    use crate::{codec, keys};

    fn item(index: u64, tokens: u32) -> TurnItem {
        TurnItem {
            pk: "SESSION#test".to_owned(),
            sk: keys::turn_sk(index),
            role: Role::User,
            content: codec::compress(&format!("turn {index}")),
            intent: None,
            token_count: Some(tokens),
            created_at: "2026-01-01T00:00:00Z".to_owned(),
            item: None,
            retracted_at: None,
        }
    }

    fn retracted(index: u64) -> TurnItem {
        TurnItem { retracted_at: Some("2026-01-01T00:00:01Z".to_owned()), ..item(index, 1) }
    }

    #[test]
    fn retracted_turns_keep_the_run_contiguous_but_are_neither_kept_nor_omitted() {
        let mut window = TurnWindow::new(6, 0, 2);
        for turn in [retracted(6), item(5, 1), retracted(4), item(3, 1), item(2, 1)] {
            window.push(turn).unwrap();
        }
        assert_eq!(window.room(), 0, "two live turns fill a window of two");
        assert_eq!(window.turn_count(), 6);
        assert_eq!(gathered(window, None), (vec![3, 5], Some((1, 2))));

        let mut tail = TurnWindow::new(3, 0, 1);
        for turn in [retracted(3), retracted(2)] {
            tail.push(turn).unwrap();
        }
        assert!(tail.wants_older(), "retracted turns leave the room for older ones");
        assert_eq!(tail.oldest_index(), 2);
        tail.push(item(1, 1)).unwrap();
        assert_eq!(gathered(tail, None), (vec![1], None));
    }

    fn gathered(window: TurnWindow, max_tokens: Option<u64>) -> (Vec<u64>, Option<(u64, u64)>) {
        let (turns, omitted) = window.fit(max_tokens, usize::MAX);
        (turns.iter().map(|t| t.turn_index).collect(), omitted.map(|o| (o.from_turn, o.to_turn)))
    }

    #[test]
    fn turns_another_epoch_wrote_at_the_chains_indices_are_passed_over_and_counted() {
        use crate::chain::Segment;
        let chain = Chain::new(&[Segment { epoch: 1, first_turn: 3 }]);
        let at = |index: u64, epoch: u64| TurnItem { sk: keys::epoch_turn_sk(index, epoch), ..item(index, 1) };
        let mut window = TurnWindow::new(4, 0, 10).along(chain);
        for turn in [at(4, 1), at(4, 0), at(3, 1), at(3, 0), at(2, 0), at(1, 0)] {
            window.push(turn).unwrap();
        }
        assert!(window.complete());
        assert_eq!(window.unmerged(), 2, "the old home's turns 3 and 4");
        assert_eq!(gathered(window, None), (vec![1, 2, 3, 4], None));
    }

    #[test]
    fn a_full_run_above_the_summary_is_kept_oldest_first() {
        let mut window = TurnWindow::new(5, 2, 10);
        for index in (1..=5).rev() {
            window.push(item(index, 1)).unwrap();
        }
        assert!(!window.wants_older());
        assert_eq!(window.turn_count(), 5);
        assert!(window.complete());
        assert_eq!(gathered(window, None), (vec![3, 4, 5], None));
    }

    #[test]
    fn a_gap_closes_the_window() {
        let mut window = TurnWindow::new(6, 0, 10);
        for index in [6, 5, 3, 2, 1] {
            window.push(item(index, 1)).unwrap();
        }
        assert!(!window.wants_older(), "nothing below a gap is ever returned");
        assert!(!window.complete(), "a body with a turn missing is not the one META's version names");
        assert_eq!(gathered(window, None), (vec![5, 6], Some((1, 4))));
    }

    #[test]
    fn a_newest_turn_not_yet_visible_lowers_the_count_it_vouches_for() {
        let mut window = TurnWindow::new(4, 0, 10);
        for index in [3, 2, 1] {
            window.push(item(index, 1)).unwrap();
        }
        assert_eq!(window.turn_count(), 3);
        assert!(!window.complete(), "the body is not the one META's version names");
        assert_eq!(gathered(window, None), (vec![1, 2, 3], None));
    }

    #[test]
    fn turns_past_the_count_or_the_wanted_number_are_left_out() {
        let mut window = TurnWindow::new(4, 0, 2);
        for index in [5, 4, 3, 2] {
            window.push(item(index, 1)).unwrap();
        }
        assert_eq!(window.room(), 0);
        assert!(!window.wants_older());
        assert_eq!(gathered(window, None), (vec![3, 4], Some((1, 2))));
    }

    #[test]
    fn a_window_with_room_asks_for_older_turns() {
        let mut window = TurnWindow::new(10, 0, 20);
        for index in (6..=10).rev() {
            window.push(item(index, 1)).unwrap();
        }
        assert!(window.wants_older());
        assert_eq!(window.oldest_index(), 6);
        assert_eq!(window.room(), 15);
    }

    #[test]
    fn the_oldest_turns_are_cut_to_fit_the_token_budget() {
        let mut window = TurnWindow::new(4, 0, 10);
        for index in (1..=4).rev() {
            window.push(item(index, 10)).unwrap();
        }
        assert_eq!(gathered(window, Some(25)), (vec![3, 4], Some((1, 2))));
    }

    #[test]
    fn the_oldest_turns_are_cut_to_fit_the_byte_budget() {
        let mut window = TurnWindow::new(3, 0, 10);
        for index in (1..=3).rev() {
            window.push(item(index, 1)).unwrap();
        }
        let one = envelope_len(&item(3, 1).into_turn().unwrap()) + 1;
        let (turns, omitted) = window.fit(None, one);
        assert_eq!(turns.iter().map(|t| t.turn_index).collect::<Vec<_>>(), vec![3]);
        assert_eq!(omitted.map(|o| (o.from_turn, o.to_turn)), Some((1, 2)));
    }

    #[test]
    fn turns_all_cut_by_the_budget_are_all_omitted() {
        let mut window = TurnWindow::new(3, 1, 10);
        for index in [3, 2] {
            window.push(item(index, 1)).unwrap();
        }
        assert!(window.complete());
        assert_eq!(gathered(window, Some(0)), (vec![], Some((2, 3))));
    }

    #[test]
    fn a_read_that_saw_no_unsummarised_turn_vouches_only_for_the_summary() {
        let window = TurnWindow::new(3, 1, 10);
        assert_eq!(window.turn_count(), 1);
        assert!(!window.complete());
        assert_eq!(gathered(window, None), (vec![], None), "nothing is claimed as omitted");
        let settled = TurnWindow::new(3, 3, 10);
        assert!(settled.complete(), "every turn is summarised");
    }
}
