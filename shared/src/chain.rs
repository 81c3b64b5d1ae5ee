//! A session's chain of turns across failovers: which epoch's item is turn `n`.
//!
//! Global tables settle concurrent writes to one item by last writer wins. After a failover,
//! the new home writes a session while the old home may still hold turns it acknowledged and
//! had not replicated; if both wrote `TURN#n`, one of two acknowledged turns would be dropped
//! without a trace. So a home that writes a session under a later failover epoch than the
//! session's last one opens a new segment: from the next index on, its turns are written under
//! keys of its epoch ([`keys::epoch_turn_sk`]), which no other region ever writes. META lists
//! the segments, so every reader knows which item is turn `n`; an item of another epoch at that
//! index (or past the count) is a turn an old home acknowledged that this session's order does
//! not hold: it is kept, never overwritten, and reported as unmerged.
use serde::{Deserialize, Serialize};

use crate::keys;
use crate::model::Turn;

/// From `first_turn` on, the session's turns are written under `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub epoch: u64,
    pub first_turn: u64,
}

/// The segments of a session, oldest first; epoch 0 from turn 1 is implied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chain {
    segments: Vec<Segment>,
}

impl Chain {
    /// The chain META's `segments` describe (the segments after epoch 0's, as stored).
    pub fn new(segments: &[Segment]) -> Self {
        Chain { segments: segments.to_vec() }
    }

    /// The epoch turn `turn_index` is written under.
    pub fn epoch_of(&self, turn_index: u64) -> u64 {
        self.segments
            .iter()
            .rev()
            .find(|segment| segment.first_turn <= turn_index)
            .map_or(0, |segment| segment.epoch)
    }

    /// The epoch of the newest segment: the one the next turn is written under, unless the
    /// writer's epoch is later.
    pub fn last_epoch(&self) -> u64 {
        self.segments.last().map_or(0, |segment| segment.epoch)
    }

    /// The sort key of turn `turn_index`.
    pub fn turn_sk(&self, turn_index: u64) -> String {
        keys::epoch_turn_sk(turn_index, self.epoch_of(turn_index))
    }

    /// Whether the turn item under `sk` is turn `n` of this chain, for an `n` at most
    /// `turn_count`; `false` for an unmerged turn and for a key that is no turn's.
    pub fn holds(&self, sk: &str, turn_count: u64) -> bool {
        keys::turn_key_parts(sk).is_some_and(|(index, epoch)| index <= turn_count && self.epoch_of(index) == epoch)
    }

    /// Whether an item written under `epoch` for turn `index`, past the count, is an old
    /// home's rather than an append in flight: in flight, it names the chain's last epoch and
    /// no earlier one than the home map's (`map_epoch`), since a home that wrote only META
    /// (a PATCH) after a failover opened no segment.
    pub fn late_past_count(&self, epoch: u64, map_epoch: u64) -> bool {
        epoch != self.last_epoch() || epoch < map_epoch
    }

    /// The segment a write under `writer_epoch` opens at `next_turn`: `None` when the chain's
    /// last epoch is that epoch or later (a writer never goes back to an earlier epoch).
    pub fn opened_by(&self, writer_epoch: u64, next_turn: u64) -> Option<Segment> {
        (writer_epoch > self.last_epoch()).then_some(Segment { epoch: writer_epoch, first_turn: next_turn })
    }

    /// This chain with `segment` added at its end.
    pub fn with(&self, segment: Option<Segment>) -> Chain {
        let mut segments = self.segments.clone();
        segments.extend(segment);
        Chain { segments }
    }
}

/// A turn that an old home acknowledged and that its session's order does not hold: it was
/// not replicated before a failover, and the new home wrote on. It is listed by the export
/// (`unmerged`), with the epoch it was written under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnmergedTurn {
    pub epoch: u64,
    #[serde(flatten)]
    pub turn: Turn,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken_over() -> Chain {
        Chain::new(&[Segment { epoch: 1, first_turn: 3 }, Segment { epoch: 4, first_turn: 7 }])
    }

    #[test]
    fn each_turn_belongs_to_the_segment_it_falls_in() {
        let chain = taken_over();
        assert_eq!((1..=9).map(|n| chain.epoch_of(n)).collect::<Vec<_>>(), vec![0, 0, 1, 1, 1, 1, 4, 4, 4]);
        assert_eq!(chain.turn_sk(2), keys::turn_sk(2));
        assert_eq!(chain.turn_sk(3), keys::epoch_turn_sk(3, 1));
        assert_eq!(chain.last_epoch(), 4);
        assert_eq!(Chain::default().turn_sk(5), keys::turn_sk(5));
    }

    #[test]
    fn an_old_homes_turn_past_the_takeover_or_the_count_is_not_held() {
        let chain = taken_over();
        assert!(chain.holds(&keys::turn_sk(2), 8));
        assert!(!chain.holds(&keys::turn_sk(3), 8), "the old home's turn 3, written under epoch 0");
        assert!(chain.holds(&keys::epoch_turn_sk(3, 1), 8));
        assert!(!chain.holds(&keys::epoch_turn_sk(7, 1), 8), "epoch 1's turn 7, after epoch 4 took over");
        assert!(!chain.holds(&keys::epoch_turn_sk(9, 4), 8), "past the count");
        assert!(!chain.holds(keys::META, 8));
    }

    #[test]
    fn a_later_writer_opens_a_segment_an_earlier_or_equal_one_does_not() {
        let chain = Chain::default();
        assert_eq!(chain.opened_by(0, 3), None);
        let opened = chain.opened_by(2, 3);
        assert_eq!(opened, Some(Segment { epoch: 2, first_turn: 3 }));
        let chain = chain.with(opened);
        assert_eq!(chain.opened_by(2, 5), None);
        assert_eq!(chain.opened_by(1, 5), None, "a writer with an older map writes under the chain's epoch");
        assert_eq!(chain.epoch_of(4), 2);
    }
}
