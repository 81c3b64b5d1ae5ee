//! P1 (cold init), the warm-up trial, and P5's memory: release binaries under the
//! harness's Runtime API.
use serde_json::json;
use tidewater::{Caller, DynamoStore, NewSession, SessionCreator};

use crate::BoxError;
use crate::{events, seed, Options, MB, TURN_BYTES};
use crate::process::{status_code, Function, Running};
use crate::report::{format_value, Report, Status};
use crate::stats::Samples;

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

pub(crate) async fn cold_init(
    options: &Options,
    report: &mut Report,
    table: &str,
    functions: &[(String, bool)],
) {
    let mut worst: Option<(f64, String)> = None;
    let mut failures = Vec::new();
    for (name, _) in functions {
        let function = Function::new(&options.release_dir, name, table);
        match cold_starts(&function, options.starts).await {
            Ok(c) => {
                let p50 = c.init.median();
                report.figure(
                    &format!("p1.{name}.init_ms_p50"),
                    &format!("{name}: cold init, median"),
                    p50,
                    "ms",
                );
                report.figure(
                    &format!("p1.{name}.init_ms_min"),
                    &format!("{name}: cold init, fastest"),
                    c.init.min(),
                    "ms",
                );
                report.figure(
                    &format!("p1.{name}.init_ms_p90"),
                    &format!("{name}: cold init, p90"),
                    c.init.percentile(90.0),
                    "ms",
                );
                report.figure(
                    &format!("p5.{name}.rss_at_init_mb"),
                    &format!("{name}: peak RSS at init"),
                    c.rss_at_init_kib.median() * 1024.0 / MB,
                    "MB",
                );
                if worst.as_ref().is_none_or(|(w, _)| p50 > *w) {
                    worst = Some((p50, name.clone()));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    let (status, figure) = match (&worst, failures.is_empty()) {
        (Some((p50, name)), true) => (
            Status::of(*p50 <= 20.0),
            format!("slowest median {p50:.2} ms ({name})"),
        ),
        (Some((p50, name)), false) => (
            Status::Missed,
            format!(
                "slowest median {p50:.2} ms ({name}); failed: {}",
                failures.join("; ")
            ),
        ),
        (None, _) => (Status::NotMeasured, failures.join("; ")),
    };
    report.check(
        "P1",
        &format!("cold init of each function, process start to first `next`, median of {}, release build (x86_64)", options.starts),
        "≤ 20 ms",
        figure,
        status,
        "Under the harness's own Runtime API on 127.0.0.1, with a clean Lambda environment (region, credentials and \
         the DynamoDB endpoint from variables: with AWS_REGION set, nothing probes IMDS). One untimed start first warms the \
         page cache. The TLS roots are compiled in, so init reads no certificate files (bench/README.md)."
            .to_owned(),
    );
}

pub(crate) async fn warm_up(options: &Options, report: &mut Report, table: &str, load_event: &str) {
    let function = Function::new(&options.release_dir, "load-context", table);
    match warm_up_trial(&function, load_event, options.starts).await {
        Ok(t) => {
            let (io, fo, ion, fon) = (
                t.init_off.median(),
                t.first_off.median(),
                t.init_on.median(),
                t.first_on.median(),
            );
            report.figure(
                "warmup.off.init_ms",
                "load-context, WARM_UP=0: init, median",
                io,
                "ms",
            );
            report.figure(
                "warmup.off.first_ms",
                "load-context, WARM_UP=0: first invocation, median",
                fo,
                "ms",
            );
            report.figure(
                "warmup.on.init_ms",
                "load-context, WARM_UP=1: init, median",
                ion,
                "ms",
            );
            report.figure(
                "warmup.on.first_ms",
                "load-context, WARM_UP=1: first invocation, median",
                fon,
                "ms",
            );
            report.note(format!(
                "Warm-up (`WARM_UP=1`, one GetItem of a key that never exists during init): init {} → {}, first \
                 invocation {} → {}, together {} → {}. Here DynamoDB Local is plain HTTP on loopback, so the call saves \
                 only connection set-up and the SDK's first-call work; on Lambda it also takes the TLS handshake \
                 (tens of ms) off the first request, and init runs with a full vCPU burst. {}",
                format_value(io, "ms"),
                format_value(ion, "ms"),
                format_value(fo, "ms"),
                format_value(fon, "ms"),
                format_value(io + fo, "ms"),
                format_value(ion + fon, "ms"),
                if ion + fon < io + fo {
                    "It paid for itself even locally."
                } else {
                    "Locally it did not pay for itself; it stays off by default and is worth turning on where the first request's latency matters."
                }
            ));
        }
        Err(e) => report.note(format!("Warm-up trial failed: {e}")),
    }
}

pub(crate) async fn memory(
    options: &Options,
    store: &DynamoStore,
    report: &mut Report,
    table: &str,
    load_event: &str,
) -> Result<(), BoxError> {
    let rss_owner = Caller::new("bench-rss", Vec::<String>::new());
    let session = store
        .create_session(&rss_owner, NewSession::default())
        .await?
        .session_id;
    let mut chat = seed::Chat::new(99);
    let append_events: Vec<String> = (0..options.invocations)
        .map(|i| {
            let turn = seed::new_turn(&mut chat, i as u64 + 1, format!("rss-{i}"), TURN_BYTES);
            let mut body = json!({"response_id": turn.response_id, "role": turn.role, "content": turn.content});
            if let Some(intent) = &turn.intent {
                // No field is nullable: an absent intent is left out.
                body["intent"] = json!(intent);
            }
            events::api_event(&rss_owner, "POST", "/sessions/{id}/turns", &format!("/sessions/{session}/turns"), "", Some(body.to_string()))
        })
        .collect();
    let create_event = events::api_event(
        &rss_owner,
        "POST",
        "/sessions",
        "/sessions",
        "",
        Some("{\"page_context\":{\"page\":\"/manga\"}}".to_owned()),
    );

    // The functions seal what they write and refuse plain content, so load-context reads the
    // session append-turn has just filled, with `load_event`'s query.
    let query = load_event_query(load_event);
    let own_load_event =
        events::api_event(&rss_owner, "GET", "/sessions/{id}/context", &format!("/sessions/{session}/context"), &query, None);
    let runs: [(&str, &[u16], Box<dyn FnMut(usize) -> String>); 3] = [
        (
            "append-turn",
            &[201],
            Box::new(|i| append_events[i].clone()),
        ),
        ("load-context", &[200], Box::new(|_| own_load_event.clone())),
        ("create-session", &[201], Box::new(|_| create_event.clone())),
    ];
    let mut worst: Option<(f64, &str)> = None;
    let mut problems = Vec::new();
    for (name, expected, event) in runs {
        let function = Function::new(&options.release_dir, name, table);
        match warm_run(&function, options.invocations, expected, event).await {
            Ok(w) => {
                let peak = w.peak_rss_kib as f64 * 1024.0 / MB;
                report.figure(
                    &format!("p5.{name}.peak_rss_mb"),
                    &format!("{name}: peak RSS after {} warm invocations", w.invocations),
                    peak,
                    "MB",
                );
                report.figure(
                    &format!("p5.{name}.peak_rss_init_mb"),
                    &format!("{name}: peak RSS before the first invocation"),
                    w.peak_rss_after_init_kib as f64 * 1024.0 / MB,
                    "MB",
                );
                report.figure(
                    &format!("p5.{name}.rss_mb"),
                    &format!("{name}: RSS at the end"),
                    w.rss_kib as f64 * 1024.0 / MB,
                    "MB",
                );
                report.figure(
                    &format!("warm.{name}.p50_ms"),
                    &format!("{name}: warm invocation through the Runtime API, p50"),
                    w.latency.median(),
                    "ms",
                );
                report.figure(
                    &format!("warm.{name}.p99_ms"),
                    &format!("{name}: warm invocation through the Runtime API, p99"),
                    w.latency.percentile(99.0),
                    "ms",
                );
                if w.failures > 0 {
                    problems.push(format!(
                        "{name}: {} of {} answers were not {:?}",
                        w.failures, w.invocations, expected
                    ));
                }
                if worst.is_none_or(|(p, _)| peak > p) {
                    worst = Some((peak, name));
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    let (status, figure) = match worst {
        Some((peak, name)) => (
            if problems.is_empty() {
                Status::of(peak <= 24.0)
            } else {
                Status::Missed
            },
            format!(
                "highest peak {peak:.1} MB ({name}){}",
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("; {}", problems.join("; "))
                }
            ),
        ),
        None => (Status::NotMeasured, problems.join("; ")),
    };
    report.check(
        "P5-RSS",
        &format!(
            "peak RSS (VmHWM) over {} warm invocations, x86_64 release",
            options.invocations
        ),
        "≤ 24 MB",
        figure,
        status,
        String::new(),
    );
    Ok(())
}

/// The raw query string of an API Gateway event.
fn load_event_query(event: &str) -> String {
    serde_json::from_str::<serde_json::Value>(event)
        .ok()
        .and_then(|v| v["rawQueryString"].as_str().map(str::to_owned))
        .unwrap_or_default()
}
