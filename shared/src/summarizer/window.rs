//! When a summary is due: the fixed windows of `threshold` turns, and the turns kept
//! unsummarised after them ([`Config::summary_due_at`] applies the configured values).
use crate::Config;

/// The last turn of the next window after `summarized_through`, once `turn_count` has passed
/// its end by `keep_recent` turns; `None` until then, so the newest `keep_recent` turns are
/// never summarised.
pub fn next_window_end(
    summarized_through: u64,
    turn_count: u64,
    threshold: u64,
    keep_recent: u64,
) -> Option<u64> {
    let end = due_at(summarized_through, threshold);
    (end.saturating_add(keep_recent) <= turn_count).then_some(end)
}

/// The last turn of the next window after `summarized_through`.
pub fn due_at(summarized_through: u64, threshold: u64) -> u64 {
    let threshold = threshold.max(1);
    (summarized_through / threshold + 1).saturating_mul(threshold)
}

impl Config {
    /// The turn count at which the window after `summarized_through` becomes due: the window
    /// is complete and `summary_keep_recent` newer turns follow it.
    pub fn summary_due_at(&self, summarized_through: u64) -> u64 {
        due_at(summarized_through, self.summary_threshold).saturating_add(self.summary_keep_recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_fixed_multiples_of_the_threshold() {
        assert_eq!(next_window_end(0, 19, 20, 0), None);
        assert_eq!(next_window_end(0, 20, 20, 0), Some(20));
        assert_eq!(next_window_end(0, 45, 20, 0), Some(20));
        assert_eq!(next_window_end(20, 39, 20, 0), None);
        assert_eq!(next_window_end(20, 40, 20, 0), Some(40));
        // A watermark off the grid (the threshold changed) goes to the next boundary.
        assert_eq!(next_window_end(15, 20, 10, 0), Some(20));
        assert_eq!(due_at(40, 20), 60);
    }

    #[test]
    fn the_newest_turns_are_never_summarised() {
        assert_eq!(next_window_end(0, 29, 20, 10), None);
        assert_eq!(next_window_end(0, 30, 20, 10), Some(20));
        assert_eq!(next_window_end(20, 49, 20, 10), None);
        assert_eq!(next_window_end(20, 50, 20, 10), Some(40));
        // Settled, the watermark S keeps T - 30 < S <= T - 10 at the defaults.
        for turn_count in 0..300u64 {
            let mut settled = 0;
            while let Some(end) = next_window_end(settled, turn_count, 20, 10) {
                settled = end;
            }
            assert!(
                turn_count < 30 || (turn_count - 30 < settled && settled + 10 <= turn_count),
                "{turn_count}"
            );
        }
    }
}
