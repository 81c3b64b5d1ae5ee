//! P1 (cold init), the warm-up trial, and P5's memory: release binaries under the
//! harness's Runtime API.

use crate::process::{status_code, Function, Running};
use crate::stats::Samples;
use crate::BoxError;

pub struct ColdStarts {
    pub init: Samples,
    /// Peak resident set at the first `next`, KiB.
    pub rss_at_init_kib: Samples,
}

/// `starts` cold starts, each from spawn to the first `next`; one untimed start first brings
/// the binary into the page cache, as it would be on a warm Lambda host.
pub async fn cold_starts(function: &Function, starts: usize) -> Result<ColdStarts, BoxError> {
    Running::start(function, None).await?.stop().await;
    let mut init = Samples::default();
    let mut rss = Samples::default();
    for _ in 0..starts {
        let running = Running::start(function, None).await?;
        init.push_duration(running.init);
        if let Some((peak, _)) = running.memory_kib() {
            rss.push(peak as f64);
        }
        running.stop().await;
    }
    Ok(ColdStarts {
        init,
        rss_at_init_kib: rss,
    })
}

pub struct WarmUpTrial {
    pub init_off: Samples,
    pub first_off: Samples,
    pub init_on: Samples,
    pub first_on: Samples,
}

/// Cold starts with and without `WARM_UP=1`, alternating, each answering one event: init
/// time, and the first invocation's time from its `next` returning to its response.
pub async fn warm_up_trial(
    function: &Function,
    event: &str,
    starts: usize,
) -> Result<WarmUpTrial, BoxError> {
    let off = function.clone().with_env("WARM_UP", "0");
    let on = function.clone().with_env("WARM_UP", "1");
    let mut trial = WarmUpTrial {
        init_off: Samples::default(),
        first_off: Samples::default(),
        init_on: Samples::default(),
        first_on: Samples::default(),
    };
    Running::start(&on, None).await?.stop().await;
    for i in 0..starts * 2 {
        let warm = i % 2 == 1;
        let mut running =
            Running::start(if warm { &on } else { &off }, Some(event.to_owned())).await?;
        let reply = running.reply().await?;
        if status_code(&reply) != 200 {
            return Err(
                format!("the warm-up trial's event answered {}", status_code(&reply)).into(),
            );
        }
        let first = reply.at.duration_since(running.first_next);
        let (init, first_samples) = if warm {
            (&mut trial.init_on, &mut trial.first_on)
        } else {
            (&mut trial.init_off, &mut trial.first_off)
        };
        init.push_duration(running.init);
        first_samples.push_duration(first);
        running.stop().await;
    }
    Ok(trial)
}

pub struct WarmRun {
    pub invocations: usize,
    pub failures: usize,
    pub latency: Samples,
    pub peak_rss_after_init_kib: u64,
    pub peak_rss_kib: u64,
    pub rss_kib: u64,
}

/// One process answering `count` events, one after the other; the peak resident set at the end.
pub async fn warm_run(
    function: &Function,
    count: usize,
    expected_status: &[u16],
    mut event: impl FnMut(usize) -> String,
) -> Result<WarmRun, BoxError> {
    let mut running = Running::start(function, None).await?;
    let (peak_rss_after_init_kib, _) = running.memory_kib().unwrap_or_default();
    let mut latency = Samples::default();
    let mut failures = 0;
    for i in 0..count {
        let (reply, took) = running.invoke(event(i)).await?;
        if !expected_status.contains(&status_code(&reply)) {
            failures += 1;
        }
        latency.push_duration(took);
    }
    let (peak_rss_kib, rss_kib) = running.memory_kib().unwrap_or_default();
    running.stop().await;
    Ok(WarmRun {
        invocations: count,
        failures,
        latency,
        peak_rss_after_init_kib,
        peak_rss_kib,
        rss_kib,
    })
}
