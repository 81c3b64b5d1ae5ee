//! The simulation's steps: what can happen to the system in its life, drawn from a seed.
//!
//! A step names what it acts on by a number taken modulo what exists when it runs (the
//! `n`-th session, the `n`-th queued record), never by an id. So a seed gives one list of steps
//! whatever the system answered, and any part of that list is still a valid run: that is what
//! lets a failure shrink.
use std::fmt;

/// The customers of a run; a step names one by its position.
pub const CUSTOMERS: [&str; 3] = ["alice", "bob", "carol"];

/// How a create picks its session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdChoice {
    /// The server picks.
    Server,
    /// A new id the client picks (from the seed).
    Fresh(u128),
    /// The id of the `n`-th session created so far, by this customer or another.
    Reuse(u32),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create { customer: u8, id: IdChoice },
    /// A new turn; `lost` loses every answer of its first attempt, then retries it.
    Append { session: u32, lost: bool },
    /// The same request again for the `turn`-th acknowledged turn.
    RetryAppend { session: u32, turn: u32 },
    /// A context load; `memory` asks for `include=memory` under that `max_tokens`.
    Load { session: u32, consistent: bool, if_none_match: bool, memory: Option<u8> },
    /// A PATCH of page_context; `lost` loses its answer, then retries the same request.
    Patch { session: u32, if_match: bool, lost: bool },
    /// A DELETE; `cut_after` DynamoDB requests cut it off (the next one applied, its answer
    /// lost, then nothing), and `retry` says whether the caller repeats it.
    Delete { session: u32, cut_after: Option<u8>, retry: bool },
    /// A purge, cut off as a DELETE may be.
    Purge { customer: u8, cut_after: Option<u8>, retry: bool },
    /// The clock moves on: a moment (within the stale-read lag), minutes, days or weeks.
    Advance { millis: u64 },
    /// DynamoDB's TTL removes the `~META` of an expired session, and the stream carries it.
    TtlRemove { session: u32 },
    /// The sweep gets a queued TTL record; `cut` cuts it off after that many DynamoDB
    /// requests, so the record stays queued.
    DeliverSweep { pick: u32, cut: Option<u8> },
    /// A TTL record goes to the DLQ: never delivered.
    DropSweep { pick: u32 },
    /// The summariser gets a queued window; `twice` delivers it again.
    DeliverWindow { pick: u32, twice: bool },
    /// A window goes to the DLQ: never delivered.
    DropWindow { pick: u32 },
    /// `make redrive`.
    Redrive,
    /// Two things at once. A queued TTL sweep runs while the owner creates the swept id again.
    SweepRacingCreate { pick: u32 },
    /// The owner repeats a DELETE of a gone session while creating its id again.
    DeleteRacingCreate { session: u32 },
    /// A queued window is summarised while `appends` turns are appended to its session.
    WindowRacingAppend { pick: u32, appends: u8 },
    ForgetFact { customer: u8, pick: u32 },
    /// DynamoDB's TTL deletes every expired memory item (facts with `MEMORY_TTL_DAYS`, tombstones).
    TtlMemory,
    /// Every queued record delivered, then the settled checks.
    Settle,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Step::Create { customer, id } => write!(f, "Create {{ customer: {}, id: {id:?} }}", CUSTOMERS[customer as usize]),
            Step::Append { session, lost } => write!(f, "Append {{ session: {session}, lost: {lost} }}"),
            Step::RetryAppend { session, turn } => write!(f, "RetryAppend {{ session: {session}, turn: {turn} }}"),
            Step::Load { session, consistent, if_none_match, memory } => write!(
                f,
                "Load {{ session: {session}, consistent: {consistent}, if_none_match: {if_none_match}, memory: {memory:?} }}"
            ),
            Step::Patch { session, if_match, lost } => write!(f, "Patch {{ session: {session}, if_match: {if_match}, lost: {lost} }}"),
            Step::Delete { session, cut_after, retry } => {
                write!(f, "Delete {{ session: {session}, cut_after: {cut_after:?}, retry: {retry} }}")
            }
            Step::Purge { customer, cut_after, retry } => {
                write!(f, "Purge {{ customer: {}, cut_after: {cut_after:?}, retry: {retry} }}", CUSTOMERS[customer as usize])
            }
            Step::Advance { millis } => write!(f, "Advance {{ millis: {millis} }}"),
            Step::TtlRemove { session } => write!(f, "TtlRemove {{ session: {session} }}"),
            Step::DeliverSweep { pick, cut } => write!(f, "DeliverSweep {{ pick: {pick}, cut: {cut:?} }}"),
            Step::DropSweep { pick } => write!(f, "DropSweep {{ pick: {pick} }}"),
            Step::DeliverWindow { pick, twice } => write!(f, "DeliverWindow {{ pick: {pick}, twice: {twice} }}"),
            Step::DropWindow { pick } => write!(f, "DropWindow {{ pick: {pick} }}"),
            Step::Redrive => write!(f, "Redrive"),
            Step::SweepRacingCreate { pick } => write!(f, "SweepRacingCreate {{ pick: {pick} }}"),
            Step::DeleteRacingCreate { session } => write!(f, "DeleteRacingCreate {{ session: {session} }}"),
            Step::WindowRacingAppend { pick, appends } => write!(f, "WindowRacingAppend {{ pick: {pick}, appends: {appends} }}"),
            Step::ForgetFact { customer, pick } => write!(f, "ForgetFact {{ customer: {}, pick: {pick} }}", CUSTOMERS[customer as usize]),
            Step::TtlMemory => write!(f, "TtlMemory"),
            Step::Settle => write!(f, "Settle"),
        }
    }
}

/// The steps of a run of `count` steps from `seed`. Appends and loads dominate, as in life;
/// the rare steps (purges, cut-offs, weeks passing) still come every few hundred steps.
pub fn steps(seed: u64, count: usize) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count).map(|_| step(&mut rng)).collect()
}

fn step(rng: &mut fastrand::Rng) -> Step {
    let customer = rng.u8(0..CUSTOMERS.len() as u8);
    // Recent sessions are picked more often: a pick counts back from the newest.
    let session = if rng.bool() { rng.u32(0..4) } else { rng.u32(0..1_000) };
    match rng.u32(0..1_000) {
        0..=59 => Step::Create {
            customer,
            id: match rng.u8(0..10) {
                0..=5 => IdChoice::Server,
                6..=8 => IdChoice::Fresh(rng.u128(..)),
                _ => IdChoice::Reuse(rng.u32(0..1_000)),
            },
        },
        60..=119 => Step::Advance { millis: rng.u64(0..2_000) },
        120..=399 => Step::Append { session, lost: rng.u8(0..20) == 0 },
        400..=459 => Step::RetryAppend { session, turn: rng.u32(0..1_000) },
        460..=629 => Step::Load {
            session,
            consistent: rng.u8(0..4) == 0,
            if_none_match: rng.bool(),
            memory: (rng.u8(0..4) == 0).then(|| rng.u8(4..16)),
        },
        630..=679 => Step::Patch { session, if_match: rng.bool(), lost: rng.u8(0..4) == 0 },
        680..=699 => Step::Delete { session, cut_after: cut_after(rng, 12), retry: rng.bool() },
        700..=706 => Step::Purge { customer, cut_after: cut_after(rng, 40), retry: rng.u8(0..4) != 0 },
        707..=779 => Step::Advance {
            millis: 1_000
                * match rng.u8(0..10) {
                    0..=5 => rng.u64(60..3_600),
                    6..=8 => rng.u64(3_600..3 * 86_400),
                    _ => rng.u64(3 * 86_400..4 * 7 * 86_400),
                },
        },
        780..=799 => Step::TtlRemove { session },
        800..=806 => Step::SweepRacingCreate { pick: rng.u32(0..100) },
        807..=812 => Step::DeleteRacingCreate { session },
        813..=819 => Step::WindowRacingAppend { pick: rng.u32(0..100), appends: rng.u8(1..7) },
        820..=849 => Step::DeliverSweep { pick: rng.u32(0..100), cut: (rng.u8(0..5) == 0).then(|| rng.u8(0..8)) },
        850..=854 => Step::DropSweep { pick: rng.u32(0..100) },
        855..=929 => Step::DeliverWindow { pick: rng.u32(0..100), twice: rng.u8(0..5) == 0 },
        930..=944 => Step::DropWindow { pick: rng.u32(0..100) },
        945..=954 => Step::Redrive,
        955..=984 => Step::ForgetFact { customer, pick: rng.u32(0..100) },
        985..=994 => Step::TtlMemory,
        _ => Step::Settle,
    }
}

/// Where a call is cut off: after `0..most` DynamoDB requests, two times in three.
fn cut_after(rng: &mut fastrand::Rng, most: u8) -> Option<u8> {
    (rng.u8(0..3) != 0).then(|| rng.u8(0..most))
}
