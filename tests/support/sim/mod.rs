//! The deterministic lifecycle simulation: a seeded list of steps ([`steps`]) run against the
//! store and the handlers through the fault proxy ([`world`]), every guarantee checked after
//! every step, and a failure shrunk to a short list of steps with its seed.
//!
//! A run is cut into eras of [`Settings::era`] steps (300 unless `SIM_ERA` says otherwise):
//! each era starts on a fresh table and ends settled and checked, so that the table (and the
//! settled checks' Scan) stays small however long the run, and a failure is shrunk within its
//! era, from at most that many steps. Eras share nothing (each has its table, proxy, clock and
//! model), so [`Settings::parallel`] of them run at once; their results are taken in order, and
//! the first era that fails stops the run.
//!
//! **Known defects.** A check that finds one of the defects in [`Settings::known`] is counted
//! and reported, and the run goes on; any other failure fails the run. `KNOWN_DEFECTS` names the
//! defects of issue 18 whose fixes are not merged yet; empty it as they land.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub mod steps;
pub mod world;

use steps::Step;
use world::{Violation, World};

/// Defects of issue 18 (section 1) not fixed on this branch yet: their checks report, never fail.
pub const KNOWN_DEFECTS: &[u8] = &[];

#[derive(Debug, Clone)]
pub struct Settings {
    pub seed: u64,
    pub steps: usize,
    pub era: usize,
    pub known: Vec<u8>,
    /// How long shrinking may take.
    pub shrink_budget: Duration,
    /// Eras run at once (`SIM_PARALLEL`; the machine's cores, at most 4, by default).
    pub parallel: usize,
}

impl Settings {
    /// `SIM_SEED`, `SIM_STEPS`, `SIM_ERA` and `SIM_KNOWN` (defect numbers, comma separated;
    /// `none` for none) over these defaults.
    pub fn from_env(seed: u64, steps: usize) -> Settings {
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse::<u64>().ok());
        let known = match std::env::var("SIM_KNOWN") {
            Ok(list) => list.split(',').filter_map(|d| d.trim().parse().ok()).collect(),
            Err(_) => KNOWN_DEFECTS.to_vec(),
        };
        Settings {
            seed: number("SIM_SEED").unwrap_or(seed),
            steps: number("SIM_STEPS").map_or(steps, |n| n as usize),
            era: number("SIM_ERA").map_or(300, |n| n.max(1) as usize),
            known,
            shrink_budget: Duration::from_secs(number("SIM_SHRINK_SECONDS").unwrap_or(120)),
            parallel: number("SIM_PARALLEL")
                .map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)), |n| n.max(1) as usize),
        }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub steps_run: usize,
    pub elapsed: Duration,
    /// Known defects seen: defect → (times, first example).
    pub known_seen: BTreeMap<u8, (u64, String)>,
    /// The first failure, shrunk: its check, its detail and the steps that reproduce it.
    pub failure: Option<(Violation, Vec<Step>)>,
    /// The era the failure came in: its steps start at `era × Settings::era`.
    pub failed_era: usize,
    /// Steps by kind, and the time they took.
    pub by_kind: BTreeMap<&'static str, (u64, Duration)>,
}

impl Report {
    pub fn summary(&self, settings: &Settings) -> String {
        let mut text = format!(
            "simulation: seed {}, {} steps in {:.1} s ({:.2} ms a step, {:.0} steps/s, {} eras at once); known defects skipped: {:?}\n",
            settings.seed,
            self.steps_run,
            self.elapsed.as_secs_f64(),
            self.elapsed.as_secs_f64() * 1_000.0 / self.steps_run.max(1) as f64,
            self.steps_run as f64 / self.elapsed.as_secs_f64().max(0.001),
            settings.parallel,
            settings.known
        );
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(kind, (count, took))| format!("{kind} {count} ({:.1} ms)", took.as_secs_f64() * 1_000.0 / (*count).max(1) as f64))
            .collect();
        text += &format!("  steps by kind (mean time): {}\n", kinds.join(", "));
        for (defect, (times, example)) in &self.known_seen {
            text += &format!("  known defect {defect} seen {times} times, first: {example}\n");
        }
        if let Some((violation, steps)) = &self.failure {
            text += &format!(
                "  FAILED: {} ({})\n  shrunk to {} steps (SIM_SEED={}, era {} from step {}):\n",
                violation.check,
                violation.detail,
                steps.len(),
                settings.seed,
                self.failed_era,
                self.failed_era * settings.era
            );
            for step in steps {
                text += &format!("    {step:?}\n");
            }
        }
        text
    }
}

fn kind(step: &Step) -> &'static str {
    match step {
        Step::Create { .. } => "create",
        Step::Append { .. } => "append",
        Step::RetryAppend { .. } => "retry",
        Step::Load { .. } => "load",
        Step::Patch { .. } => "patch",
        Step::Delete { .. } => "delete",
        Step::Purge { .. } => "purge",
        Step::Advance { .. } => "advance",
        Step::TtlRemove { .. } => "ttl",
        Step::DeliverSweep { .. } => "sweep",
        Step::DropSweep { .. } => "sweep-dlq",
        Step::DeliverWindow { .. } => "window",
        Step::DropWindow { .. } => "window-dlq",
        Step::Redrive => "redrive",
        Step::SweepRacingCreate { .. } => "race-sweep-create",
        Step::DeleteRacingCreate { .. } => "race-delete-create",
        Step::WindowRacingAppend { .. } => "race-window-append",
        Step::ForgetFact { .. } => "forget",
        Step::TtlMemory => "ttl-memory",
        Step::Settle => "settle",
    }
}

/// Runs `steps` on a fresh world, settling at the end. Returns the index of the first step
/// that broke an unknown guarantee and that violation, and notes known ones in `report`.
async fn run_era(seed: u64, steps: &[Step], known: &[u8], mut report: Option<&mut Report>) -> Option<(usize, Violation)> {
    let mut world = World::new(seed).await;
    for (index, step) in steps.iter().enumerate() {
        let started = Instant::now();
        let mut found = Box::pin(world.step(*step)).await;
        if let Some(report) = report.as_deref_mut() {
            let entry = report.by_kind.entry(kind(step)).or_default();
            entry.0 += 1;
            entry.1 += started.elapsed();
        }
        if index + 1 == steps.len() {
            let mut settled = Vec::new();
            Box::pin(world.settle(&mut settled)).await;
            found.extend(settled);
        }
        for violation in found {
            if violation.defect.is_some_and(|d| known.contains(&d)) {
                if let Some(report) = report.as_deref_mut() {
                    let entry = report.known_seen.entry(violation.defect.unwrap_or(0)).or_insert((0, String::new()));
                    entry.0 += 1;
                    if entry.1.is_empty() {
                        entry.1 = format!("{} ({})", violation.check, violation.detail);
                    }
                }
                continue;
            }
            return Some((index, violation));
        }
    }
    None
}

/// The shortest list of steps found within the budget that still breaks `check`.
async fn shrink(seed: u64, mut steps: Vec<Step>, check: &'static str, known: &[u8], budget: Duration) -> Vec<Step> {
    let started = Instant::now();
    let mut chunk = steps.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < steps.len() && started.elapsed() < budget {
            let candidate: Vec<Step> = steps[..start].iter().chain(&steps[(start + chunk).min(steps.len())..]).copied().collect();
            match run_era(seed, &candidate, known, None).await {
                Some((at, violation)) if violation.check == check && !candidate.is_empty() => {
                    steps = candidate[..=at].to_vec();
                }
                _ => start += chunk,
            }
        }
        if chunk == 1 || started.elapsed() >= budget {
            return steps;
        }
        chunk = chunk.div_ceil(2);
    }
}

impl Report {
    /// Adds an era's step counts and times, and the known defects it saw.
    fn absorb(&mut self, era: Report) {
        for (kind, (count, took)) in era.by_kind {
            let entry = self.by_kind.entry(kind).or_default();
            entry.0 += count;
            entry.1 += took;
        }
        for (defect, (times, example)) in era.known_seen {
            let entry = self.known_seen.entry(defect).or_insert((0, example));
            entry.0 += times;
        }
    }
}

/// Runs the simulation: eras of steps from the seed, [`Settings::parallel`] at once; stops at
/// the first failure, in era order, and shrinks it.
pub async fn run(settings: &Settings) -> Report {
    use futures::StreamExt;

    let started = Instant::now();
    let all = steps::steps(settings.seed, settings.steps);
    let mut report = Report::default();
    let eras = all.chunks(settings.era).enumerate().map(|(era, steps)| async move {
        let era_seed = settings.seed.wrapping_add(era as u64);
        let mut part = Report::default();
        let failed = run_era(era_seed, steps, &settings.known, Some(&mut part)).await;
        (era, era_seed, steps, failed, part)
    });
    let mut results = futures::stream::iter(eras).buffered(settings.parallel);
    let mut failure = None;
    while let Some((era, era_seed, steps, failed, part)) = results.next().await {
        report.absorb(part);
        if let Some((at, violation)) = failed {
            report.steps_run += at + 1;
            failure = Some((era, era_seed, &steps[..=at], violation));
            break;
        }
        report.steps_run += steps.len();
    }
    drop(results);
    if let Some((era, era_seed, steps, violation)) = failure {
        let shrunk = shrink(era_seed, steps.to_vec(), violation.check, &settings.known, settings.shrink_budget).await;
        report.failure = Some((violation, shrunk));
        report.failed_era = era;
    }
    report.elapsed = started.elapsed();
    report
}
