//! The checks after the workload, each a hard failure, and the figures they rest on.
use std::collections::{BTreeMap, HashMap, HashSet};

use tidewater::keys;
use tidewater::summarizer::next_window_end;
use tidewater_local::fault::{Fault, Log};
use uuid::Uuid;

use crate::client::Exchange;
use crate::stored::Table;
use crate::workload::Outcome;

/// Operations that read: a fault on one of them may degrade a context load.
const READS: [&str; 5] = ["GetItem", "Query", "BatchGetItem", "TransactGetItems", "Scan"];
/// Each kind of fault must fire at least this often, or the run proved little.
pub const MIN_PER_FAULT: u64 = 5;
/// Examples listed under a failed check.
const EXAMPLES: usize = 8;

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// A session's turns as the export API gave them once the faults were off.
#[derive(Debug, Clone, Default)]
pub struct Exported {
    pub turn_count: u64,
    /// (turn_index, response id named by its content)
    pub turns: Vec<(u64, String)>,
    /// The same, of the turns listed as `unmerged` (an old home's, after a failover without
    /// fences): acknowledged, kept and reported, outside the session's order.
    pub unmerged: Vec<(u64, String)>,
    /// `through_turn` of the latest summary.
    pub summary_through: Option<u64>,
}

pub struct Inputs<'a> {
    pub outcome: &'a Outcome,
    pub exchanges: &'a [Exchange],
    /// The fault proxy's log; `None` when no proxy ran (`make chaos REGIONS=2`): then no
    /// load may degrade, and no fault is required to fire.
    pub faults: Option<&'a Log>,
    /// When a region was down (from, to, in ms): a load that degraded meanwhile is explained.
    pub outages: &'a [(u64, u64)],
    pub table: &'a Table,
    pub exports: &'a HashMap<Uuid, Exported>,
    /// (file, line) of every panic found in the logs.
    pub panics: &'a [(String, String)],
    pub summary_threshold: u64,
    pub summary_keep_recent: u64,
    pub min_appends: usize,
}

#[derive(Debug, Default)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub lost: usize,
    /// Acknowledged appends reported as unmerged (kept, outside the order), not lost.
    pub unmerged: usize,
    pub duplicated: usize,
}

pub fn run(inputs: &Inputs<'_>) -> Verdict {
    let mut verdict = Verdict::default();
    let outcome = inputs.outcome;
    let live: Vec<Uuid> = outcome.sessions.iter().filter(|s| !s.deleted).map(|s| s.id).collect();

    let acked = outcome.acked.len();
    verdict.checks.push(check(
        "the workload ran to the end",
        outcome.finished && acked >= inputs.min_appends,
        format!(
            "{acked} appends acknowledged of {} planned ({} skipped for deleted sessions), at least {} required; {}",
            outcome.planned_appends,
            outcome.skipped_appends,
            inputs.min_appends,
            if outcome.finished { "finished before the deadline" } else { "cut off by the deadline" }
        ),
    ));

    // Every acknowledged append of a session that still exists, at the index it was told.
    let mut lost = Vec::new();
    let mut unmerged = Vec::new();
    for append in outcome.acked.iter().filter(|a| live.contains(&a.session)) {
        let exported = inputs.exports.get(&append.session);
        let found = exported.and_then(|e| e.turns.iter().find(|(_, id)| *id == append.response_id));
        let partition = inputs.table.partition(&append.session);
        let recorded = partition.responses.get(&append.response_id).copied();
        let told = |(index, id): &(u64, String)| *index == append.turn_index && *id == append.response_id;
        if exported.is_some_and(|e| e.unmerged.iter().any(told))
            && partition.unmerged.iter().any(|(index, _)| *index == append.turn_index)
        {
            unmerged.push(append.response_id.clone());
            continue;
        }
        if found.map(|(index, _)| *index) != Some(append.turn_index) || recorded != Some(append.turn_index) {
            lost.push(format!(
                "{} in {}: told turn {}, exported at {:?}, RESP# says {:?}",
                append.response_id,
                append.session,
                append.turn_index,
                found.map(|(index, _)| index),
                recorded
            ));
        }
    }
    verdict.lost = lost.len();
    verdict.unmerged = unmerged.len();
    let checked = outcome.acked.iter().filter(|a| live.contains(&a.session)).count();
    verdict.checks.push(passing(
        listing("every 2xx append is stored once, at the turn_index it was told", &lost),
        format!(
            "{checked} acknowledged appends of live sessions, each in its RESP# record and the export at its index{}",
            match unmerged.len() {
                0 => String::new(),
                n => format!(" ({n} of them reported unmerged: an old home's, kept beside the new home's order)"),
            }
        ),
    ));

    let mut gaps = Vec::new();
    let mut doubled = Vec::new();
    for session in &live {
        let partition = inputs.table.partition(session);
        let exported = inputs.exports.get(session).cloned().unwrap_or_default();
        let n = partition.turns.len() as u64;
        let export_indices: Vec<u64> = exported.turns.iter().map(|(index, _)| *index).collect();
        if partition.turns != (1..=n).collect::<Vec<_>>()
            || export_indices != partition.turns
            || exported.turn_count != n
            || partition.responses.len() as u64 != n
        {
            gaps.push(format!(
                "{session}: TURN# {} items ({}), exported {} turns, turn_count {}, RESP# {} items",
                n,
                span(&partition.turns),
                export_indices.len(),
                exported.turn_count,
                partition.responses.len()
            ));
        }
        let mut seen = HashSet::new();
        for (index, response_id) in &exported.turns {
            if !seen.insert(response_id) {
                doubled.push(format!("{response_id} stored twice in {session} (again as turn {index})"));
            } else if partition.responses.get(response_id) != Some(index) {
                doubled.push(format!(
                    "{response_id} is turn {index} of {session}, but its RESP# records {:?}",
                    partition.responses.get(response_id)
                ));
            }
        }
    }
    verdict.duplicated = doubled.len();
    let stored: usize = live.iter().map(|s| inputs.table.partition(s).turns.len()).sum();
    verdict.checks.push(passing(
        listing("indices are gap-free and turn_count equals the turns", &gaps),
        format!("{} sessions, {stored} turns", live.len()),
    ));
    verdict.checks.push(passing(
        listing("no response_id is stored twice", &doubled),
        format!("{stored} stored turns, each response_id once and matching its RESP# record"),
    ));

    let mut summaries = Vec::new();
    for session in &live {
        let partition = inputs.table.partition(session);
        let n = partition.turns.len() as u64;
        let windows = expected_windows(n, inputs.summary_threshold, inputs.summary_keep_recent);
        let latest = inputs.exports.get(session).and_then(|e| e.summary_through);
        if partition.summaries != windows || latest != windows.last().copied() {
            summaries.push(format!(
                "{session}: {n} turns, SUMMARY# at {:?}, latest summary through {latest:?}, expected {windows:?}",
                partition.summaries
            ));
        }
    }
    let windows: usize = live.iter().map(|s| inputs.table.partition(s).summaries.len()).sum();
    verdict.checks.push(passing(
        listing("one summary per window", &summaries),
        format!("{windows} windows summarised, each once"),
    ));

    verdict.checks.push(match &outcome.purge {
        Some(purge) => {
            let left: usize = purge.sessions.iter().map(|s| inputs.table.partition(s).items).sum();
            let indexed = inputs.table.indexed_for(&purge.customer);
            check(
                "the purged customer has zero items",
                purge.receipt.is_some() && left == 0 && indexed == 0,
                format!(
                    "{} sessions, {left} items left in them, {indexed} in the customer index; receipt {}",
                    purge.sessions.len(),
                    purge
                        .receipt
                        .as_ref()
                        .map_or("missing".to_owned(), |r| r["items_deleted"].to_string() + " items deleted")
                ),
            )
        }
        None => check("the purged customer has zero items", false, "the purge never ran".to_owned()),
    });

    let deleted: Vec<String> = outcome
        .sessions
        .iter()
        .filter(|s| s.deleted)
        .filter_map(|s| {
            let items = inputs.table.partition(&s.id).items;
            (items > 0).then(|| format!("{}: {items} items after its DELETE", s.id))
        })
        .collect();
    let deleted_count = outcome.sessions.iter().filter(|s| s.deleted).count();
    verdict.checks.push(passing(
        listing("deleted sessions have zero items", &deleted),
        format!("{deleted_count} sessions deleted under load"),
    ));

    let server_errors: Vec<String> = inputs
        .exchanges
        .iter()
        .filter(|e| e.status.is_some_and(|s| s >= 500) && !(e.status == Some(503) && e.retry_after))
        .map(|e| format!("{} answered {:?}: {}", e.route, e.status, e.error_body.clone().unwrap_or_default()))
        .collect();
    let unavailable = inputs.exchanges.iter().filter(|e| e.status == Some(503)).count();
    verdict.checks.push(passing(
        listing("no 5xx other than 503 with Retry-After", &server_errors),
        format!("{} answers, {unavailable} of them 503 with Retry-After", inputs.exchanges.len()),
    ));

    let panics: Vec<String> = inputs.panics.iter().map(|(file, line)| format!("{file}: {line}")).collect();
    verdict.checks.push(listing("no panic in any function log", &panics));

    let unexplained: Vec<String> = outcome
        .degraded
        .iter()
        .filter(|load| {
            !inputs.faults.is_some_and(|faults| read_fault_during(faults, load.session, load.started_ms, load.finished_ms))
                && !inputs.outages.iter().any(|(down, up)| load.started_ms <= *up && load.finished_ms >= *down)
        })
        .map(|load| {
            format!(
                "{} degraded at {}..{} ms with no read fault on it and no region down",
                load.session, load.started_ms, load.finished_ms
            )
        })
        .collect();
    verdict.checks.push(passing(
        listing("degraded loads only while faults hit reads", &unexplained),
        format!(
            "{} of {} loads degraded, each during a read fault on its session or a region's outage",
            outcome.degraded.len(),
            outcome.loads
        ),
    ));
    verdict.checks.push(passing(
        listing("every answer agrees with the acknowledged appends", &outcome.violations),
        format!(
            "{} loads, {} exports, {} PATCHes, {} repeated appends checked",
            outcome.loads, outcome.exports, outcome.patches, outcome.probes
        ),
    ));

    let Some(faults) = inputs.faults else { return verdict };
    let fired: BTreeMap<&str, u64> = Fault::ALL
        .iter()
        .map(|fault| (fault.name(), faults.injected.get(fault.name()).map_or(0, |by_op| by_op.values().sum())))
        .collect();
    verdict.checks.push(check(
        "every kind of fault fired",
        fired.values().all(|&count| count >= MIN_PER_FAULT),
        fired.iter().map(|(fault, count)| format!("{fault} {count}")).collect::<Vec<_>>().join(", ")
            + &format!(" (at least {MIN_PER_FAULT} each)"),
    ));
    verdict
}

/// The `through_turn` of every summary a session of `turns` turns has once the stream caught
/// up: the windows the summarize function itself would write, one after another.
pub fn expected_windows(turns: u64, threshold: u64, keep_recent: u64) -> Vec<u64> {
    let mut windows = Vec::new();
    let mut through = 0;
    while let Some(end) = next_window_end(through, turns, threshold, keep_recent) {
        windows.push(end);
        through = end;
    }
    windows
}

/// Whether a fault hit a read of `session` between `from_ms` and `to_ms`.
pub fn read_fault_during(faults: &Log, session: Uuid, from_ms: u64, to_ms: u64) -> bool {
    let pk = keys::session_pk(&session);
    faults.injections.iter().any(|injection| {
        READS.contains(&injection.operation.as_str())
            && injection.fault != Fault::Stale
            && (from_ms.saturating_sub(10)..=to_ms + 10).contains(&injection.at_ms)
            && injection.keys.iter().any(|key| *key == pk || is_data_key(key))
    })
}

/// A load also reads the data key its turns are sealed under, in the key table, whose item
/// names a customer's hash or a guest's day rather than the session: a fault there degrades
/// the load as one on the session does.
fn is_data_key(key: &str) -> bool {
    key.starts_with(&keys::customer_data_key("")) || key.starts_with(keys::GUEST_KEY_PREFIX)
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check { name, passed, detail }
}

/// A check that passed says what it covered.
fn passing(check: Check, covered: String) -> Check {
    if check.passed {
        Check { detail: covered, ..check }
    } else {
        check
    }
}

fn listing(name: &'static str, failures: &[String]) -> Check {
    if failures.is_empty() {
        return check(name, true, "none".to_owned());
    }
    let mut detail = format!("{} found: ", failures.len());
    detail.push_str(&failures.iter().take(EXAMPLES).cloned().collect::<Vec<_>>().join("; "));
    if failures.len() > EXAMPLES {
        detail.push_str("; ...");
    }
    check(name, false, detail)
}

fn span(indices: &[u64]) -> String {
    match (indices.first(), indices.last()) {
        (Some(first), Some(last)) => format!("{first}..={last}"),
        _ => "none".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::Partition;
    use crate::workload::{Acked, DegradedLoad, SessionRecord};
    use tidewater_local::fault::Injection;

    fn session_with_two_appends() -> (Uuid, Outcome, Table) {
        let session = Uuid::from_u128(7);
        let outcome = Outcome {
            sessions: vec![SessionRecord { id: session, owner: "c".into(), hot: false, deleted: false }],
            acked: ["r1", "r2"]
                .iter()
                .enumerate()
                .map(|(i, id)| Acked { session, response_id: id.to_string(), turn_index: i as u64 + 1 })
                .collect(),
            ..Outcome::default()
        };
        let mut table = Table::default();
        let responses = HashMap::from([("r1".to_owned(), 1), ("r2".to_owned(), 2)]);
        table.sessions.insert(session, Partition { items: 4, turns: vec![1, 2], responses, summaries: vec![], ..Partition::default() });
        (session, outcome, table)
    }

    fn verdict(outcome: &Outcome, table: &Table, exports: &HashMap<Uuid, Exported>, faults: &Log) -> Verdict {
        run(&Inputs {
            outcome,
            exchanges: &[],
            faults: Some(faults),
            outages: &[],
            table,
            exports,
            panics: &[],
            summary_threshold: 20,
            summary_keep_recent: 10,
            min_appends: 0,
        })
    }

    fn passed(verdict: &Verdict, name: &str) -> bool {
        verdict.checks.iter().find(|c| c.name == name).is_some_and(|c| c.passed)
    }

    #[test]
    fn a_window_is_summarised_once_keep_recent_turns_follow_it() {
        assert_eq!(expected_windows(29, 20, 10), Vec::<u64>::new());
        assert_eq!(expected_windows(30, 20, 10), [20]);
        assert_eq!(expected_windows(49, 20, 10), [20]);
        assert_eq!(expected_windows(50, 20, 10), [20, 40]);
    }

    #[test]
    fn stored_state_that_matches_the_answers_passes() {
        let (session, outcome, table) = session_with_two_appends();
        let exported =
            Exported { turn_count: 2, turns: vec![(1, "r1".into()), (2, "r2".into())], summary_through: None, unmerged: vec![] };
        let verdict = verdict(&outcome, &table, &HashMap::from([(session, exported)]), &Log::default());
        assert_eq!((verdict.lost, verdict.duplicated), (0, 0));
        assert!(passed(&verdict, "indices are gap-free and turn_count equals the turns"));
    }

    #[test]
    fn a_lost_append_and_a_doubled_response_id_fail_their_checks() {
        let (session, outcome, table) = session_with_two_appends();
        let exported =
            Exported { turn_count: 2, turns: vec![(1, "r1".into()), (2, "r1".into())], summary_through: None, unmerged: vec![] };
        let verdict = verdict(&outcome, &table, &HashMap::from([(session, exported)]), &Log::default());
        assert_eq!(verdict.lost, 1);
        assert_eq!(verdict.duplicated, 1);
        assert!(!passed(&verdict, "no response_id is stored twice"));
    }

    #[test]
    fn a_degraded_load_needs_a_read_fault_on_its_session_meanwhile() {
        let (session, mut outcome, table) = session_with_two_appends();
        outcome.degraded.push(DegradedLoad { session, started_ms: 1_000, finished_ms: 2_000 });
        let exports = HashMap::new();
        let write_fault = Injection {
            at_ms: 1_500,
            operation: "TransactWriteItems".into(),
            fault: Fault::Throttling,
            keys: vec![keys::session_pk(&session)],
        };
        let mut faults = Log { injections: vec![write_fault], ..Log::default() };
        assert!(!passed(&verdict(&outcome, &table, &exports, &faults), "degraded loads only while faults hit reads"));
        faults.injections[0].operation = "Query".into();
        assert!(passed(&verdict(&outcome, &table, &exports, &faults), "degraded loads only while faults hit reads"));
    }

    #[test]
    fn without_a_proxy_a_load_may_degrade_only_while_a_region_is_down() {
        let (_, mut outcome, table) = session_with_two_appends();
        let session = outcome.sessions[0].id;
        outcome.degraded.push(DegradedLoad { session, started_ms: 1_000, finished_ms: 2_000 });
        let exports = HashMap::new();
        let inputs = |outages| Inputs {
            outcome: &outcome,
            exchanges: &[],
            faults: None,
            outages,
            table: &table,
            exports: &exports,
            panics: &[],
            summary_threshold: 20,
            summary_keep_recent: 10,
            min_appends: 0,
        };
        let name = "degraded loads only while faults hit reads";
        assert!(!passed(&run(&inputs(&[(3_000, 9_000)])), name));
        assert!(passed(&run(&inputs(&[(1_500, 9_000)])), name));
        assert!(run(&inputs(&[])).checks.iter().all(|c| c.name != "every kind of fault fired"));
    }

    #[test]
    fn a_read_fault_on_a_data_key_explains_a_degraded_load() {
        let (session, mut outcome, table) = session_with_two_appends();
        outcome.degraded.push(DegradedLoad { session, started_ms: 1_000, finished_ms: 2_000 });
        let key_read = Injection {
            at_ms: 1_500,
            operation: "GetItem".into(),
            fault: Fault::Throttling,
            keys: vec![keys::customer_data_key("0f3a")],
        };
        let faults = Log { injections: vec![key_read], ..Log::default() };
        assert!(passed(&verdict(&outcome, &table, &HashMap::new(), &faults), "degraded loads only while faults hit reads"));
    }
}
