//! The chaos report: printed, and written as Markdown and JSON.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use serde_json::{json, Value};
use tidewater::keys;
use tidewater_local::fault::{Fault, Log};

use crate::checks::Verdict;
use crate::client::Exchange;
use crate::logs::LogFigures;
use crate::stats::Samples;
use crate::workload::Outcome;

pub struct Run<'a> {
    pub seed: u64,
    pub plan: &'a str,
    pub latency_ms: u64,
    pub load_deadline_ms: u64,
    pub sessions: usize,
    pub workers: usize,
    pub outcome: &'a Outcome,
    pub exchanges: &'a [Exchange],
    pub retries: &'a [(&'static str, u32)],
    pub gave_up: &'a [&'static str],
    pub faults: &'a Log,
    pub logs: &'a LogFigures,
    pub verdict: &'a Verdict,
}

/// When faults hit requests, by session partition key (and all of them), for the latency split.
struct FaultTimes {
    by_key: HashMap<String, Vec<u64>>,
    all: Vec<u64>,
}

impl FaultTimes {
    fn new(log: &Log) -> FaultTimes {
        let mut by_key: HashMap<String, Vec<u64>> = HashMap::new();
        for injection in &log.injections {
            for key in &injection.keys {
                by_key.entry(key.clone()).or_default().push(injection.at_ms);
            }
        }
        by_key.values_mut().for_each(|times| times.sort_unstable());
        let mut all: Vec<u64> = log.injections.iter().map(|i| i.at_ms).collect();
        all.sort_unstable();
        FaultTimes { by_key, all }
    }

    fn hit(&self, exchange: &Exchange) -> bool {
        let times = match exchange.session {
            Some(session) => self.by_key.get(&keys::session_pk(&session)).map(Vec::as_slice).unwrap_or_default(),
            None => &self.all,
        };
        let first = times.partition_point(|&at| at < exchange.started_ms);
        times.get(first).is_some_and(|&at| at <= exchange.finished_ms)
    }
}

pub fn json(run: &Run<'_>) -> Value {
    let mut by_route: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for exchange in run.exchanges {
        let status = exchange.status.map_or("no answer".to_owned(), |s| s.to_string());
        *by_route.entry(exchange.route).or_default().entry(status).or_default() += 1;
    }
    let times = FaultTimes::new(run.faults);
    let mut latency: BTreeMap<&str, [Samples; 2]> = BTreeMap::new();
    for exchange in run.exchanges.iter().filter(|e| e.status.is_some()) {
        let split = usize::from(times.hit(exchange));
        latency.entry(exchange.route).or_default()[split].push(exchange.elapsed_ms);
    }
    let latency: BTreeMap<&str, Value> = latency
        .iter()
        .map(|(route, [clean, faulted])| {
            let figures = |samples: &Samples| {
                json!({"requests": samples.len(), "p50_ms": round(samples.percentile(50.0)), "p99_ms": round(samples.percentile(99.0))})
            };
            (*route, json!({"without_faults": figures(clean), "with_faults": figures(faulted)}))
        })
        .collect();
    let mut retries: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (route, extra) in run.retries {
        let entry = retries.entry(route).or_default();
        entry.0 += 1;
        entry.1 += u64::from(*extra);
    }
    let faults_by_kind: BTreeMap<&str, u64> = Fault::ALL
        .iter()
        .map(|f| (f.name(), run.faults.injected.get(f.name()).map_or(0, |ops| ops.values().sum())))
        .collect();
    json!({
        "seed": run.seed,
        "plan": run.plan,
        "latency_fault_ms": run.latency_ms,
        "load_deadline_ms": run.load_deadline_ms,
        "sessions": run.sessions,
        "workers": run.workers,
        "duration_s": round(run.outcome.elapsed.as_secs_f64()),
        "passed": run.verdict.checks.iter().all(|c| c.passed),
        "checks": run.verdict.checks.iter().map(|c| json!({"check": c.name, "passed": c.passed, "detail": c.detail})).collect::<Vec<_>>(),
        "appends": {
            "planned": run.outcome.planned_appends,
            "acknowledged": run.outcome.acked.len(),
            "skipped_for_deleted_sessions": run.outcome.skipped_appends,
            "repeated_by_the_client": run.outcome.probes,
            "lost": run.verdict.lost,
            "duplicated": run.verdict.duplicated,
        },
        "requests": by_route,
        "faults": {"by_kind": faults_by_kind, "by_kind_and_operation": run.faults.injected, "forwarded": run.faults.forwarded},
        "client_retries": retries.iter().map(|(route, (requests, attempts))| (*route, json!({"requests_retried": requests, "extra_attempts": attempts}))).collect::<BTreeMap<_, _>>(),
        "client_gave_up": run.gave_up.len(),
        "latency": latency,
        "function_logs": run.logs,
    })
}

pub fn markdown(report: &Value) -> String {
    let mut md = String::new();
    let passed = report["passed"].as_bool().unwrap_or(false);
    // A run without the fault proxy (`make chaos REGIONS=2`) has its own title and no faults.
    let proxied = report["faults"]["forwarded"].as_object().is_some_and(|by_op| !by_op.is_empty());
    let heading = if proxied { "#" } else { "##" };
    let _ = writeln!(md, "{heading} {}\n", report["title"].as_str().unwrap_or("Chaos run"));
    let faults = if proxied {
        format!(
            "Faults (`FAULT_PLAN`): `{}`; a latency fault answers {} ms late; ",
            text(&report["plan"]),
            report["latency_fault_ms"]
        )
    } else {
        "No fault proxy: the faults are the replication's, above; ".to_owned()
    };
    let _ = writeln!(
        md,
        "Seed {}, {} sessions, {} concurrent append workers beside loaders, a PATCHer, an exporter, \
         deletes and one customer purge; {} s of workload. {faults}`LOAD_DEADLINE_MS={}`.\n",
        report["seed"],
        report["sessions"],
        report["workers"],
        report["duration_s"],
        report["load_deadline_ms"]
    );
    let _ = writeln!(md, "**{}**\n", if passed { "Every check passed." } else { "CHECKS FAILED." });
    let _ = writeln!(md, "| check | result | detail |\n|---|---|---|");
    for check in report["checks"].as_array().into_iter().flatten() {
        let result = if check["passed"].as_bool() == Some(true) { "pass" } else { "**FAIL**" };
        let _ =
            writeln!(md, "| {} | {result} | {} |", text(&check["check"]), text(&check["detail"]).replace('|', "\\|"));
    }

    let appends = &report["appends"];
    let _ = writeln!(
        md,
        "\n## Appends\n\n{} planned, {} acknowledged, {} skipped because their session was deleted, {} \
         sent again by the client after a 2xx. **lost = {}, duplicated = {}.**\n",
        appends["planned"],
        appends["acknowledged"],
        appends["skipped_for_deleted_sessions"],
        appends["repeated_by_the_client"],
        appends["lost"],
        appends["duplicated"]
    );

    let _ = writeln!(md, "## Requests by route and status\n");
    let statuses: BTreeSet<String> = report["requests"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, s)| s.as_object().into_iter().flatten().map(|(k, _)| k.clone()))
        .collect();
    let _ = writeln!(
        md,
        "| route | {} |\n|---|{}",
        statuses.iter().cloned().collect::<Vec<_>>().join(" | "),
        "---|".repeat(statuses.len())
    );
    for (route, counts) in report["requests"].as_object().into_iter().flatten() {
        let cells: Vec<String> =
            statuses.iter().map(|s| counts[s].as_u64().map_or(String::new(), |n| n.to_string())).collect();
        let _ = writeln!(md, "| `{route}` | {} |", cells.join(" | "));
    }

    if proxied {
        faults_markdown(&mut md, report);
    }
    client_markdown(&mut md, report);
    md
}

fn faults_markdown(md: &mut String, report: &Value) {
    let _ = writeln!(md, "\n## Faults injected\n");
    let operations: BTreeSet<String> = report["faults"]["by_kind_and_operation"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, ops)| ops.as_object().into_iter().flatten().map(|(k, _)| k.clone()))
        .collect();
    let _ = writeln!(
        md,
        "| fault | total | {} |\n|---|---|{}",
        operations.iter().cloned().collect::<Vec<_>>().join(" | "),
        "---|".repeat(operations.len())
    );
    for (fault, total) in report["faults"]["by_kind"].as_object().into_iter().flatten() {
        let by_op = &report["faults"]["by_kind_and_operation"][fault];
        let cells: Vec<String> =
            operations.iter().map(|op| by_op[op].as_u64().map_or(String::new(), |n| n.to_string())).collect();
        let _ = writeln!(md, "| {fault} | {total} | {} |", cells.join(" | "));
    }
    let forwarded: u64 =
        report["faults"]["forwarded"].as_object().into_iter().flatten().filter_map(|(_, n)| n.as_u64()).sum();
    let _ = writeln!(md, "\nDynamoDB requests that reached DynamoDB Local: {forwarded}.");
}

fn client_markdown(md: &mut String, report: &Value) {
    let _ = writeln!(md, "\n## Client retries\n\nThe client sends a request again, unchanged (the same `response_id`), after a 503 or a dropped connection, with full-jitter backoff from 50 ms.\n");
    let _ = writeln!(md, "| route | requests retried | extra attempts |\n|---|---|---|");
    for (route, figures) in report["client_retries"].as_object().into_iter().flatten() {
        let _ = writeln!(md, "| `{route}` | {} | {} |", figures["requests_retried"], figures["extra_attempts"]);
    }
    let _ = writeln!(
        md,
        "\nRequests given up after {} attempts: {}.",
        crate::client::MAX_ATTEMPTS,
        report["client_gave_up"]
    );

    let _ = writeln!(md, "\n## Latency per route (ms)\n\n\"With faults\": a fault hit a DynamoDB request about the same session while the request ran.\n");
    let _ = writeln!(md, "| route | requests | p50 | p99 | with faults | p50 | p99 |\n|---|---|---|---|---|---|---|");
    for (route, split) in report["latency"].as_object().into_iter().flatten() {
        let (clean, faulted) = (&split["without_faults"], &split["with_faults"]);
        let _ = writeln!(
            md,
            "| `{route}` | {} | {} | {} | {} | {} | {} |",
            clean["requests"],
            ms(&clean["p50_ms"]),
            ms(&clean["p99_ms"]),
            faulted["requests"],
            ms(&faulted["p50_ms"]),
            ms(&faulted["p99_ms"])
        );
    }

    let logs = &report["function_logs"];
    let attempts: Vec<String> = logs["appends_by_attempt"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(attempt, n)| format!("attempt {attempt}: {n}"))
        .collect();
    let sdk: Vec<String> =
        logs["sdk_retries"].as_object().into_iter().flatten().map(|(kind, n)| format!("{kind} {n}")).collect();
    let _ = writeln!(
        md,
        "\n## Inside the functions (from their logs)\n\n\
         - **The SDK's own retries:** {} ({}); calls it stopped retrying for lack of retry quota: {}, after its last attempt: {}.\n\
         - **The append's contention loop:** appends written at {}; {} appends found their `response_id` already stored \
         (a retry after a lost answer or a 503) and answered the original index; {} gave up after the loop's last attempt.\n\
         - **Summaries:** {} written, {} found already written (a redelivery or a race); the stream runner retried {} batches and gave up {} records.\n\
         - **Degraded context loads** logged: {}.\n",
        logs["sdk_retries"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>()),
        if sdk.is_empty() { "none".to_owned() } else { sdk.join(", ") },
        logs["sdk_out_of_quota"], logs["sdk_out_of_attempts"],
        if attempts.is_empty() { "none".to_owned() } else { attempts.join(", ") },
        logs["duplicate_appends"], logs["appends_out_of_attempts"],
        logs["summaries_written"], logs["summaries_already_written"], logs["stream_retries"], logs["stream_discarded"],
        logs["degraded_loads"],
    );
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

fn ms(value: &Value) -> String {
    value.as_f64().map_or("–".to_owned(), |v| format!("{v:.1}"))
}

fn round(value: f64) -> Value {
    if value.is_finite() {
        json!((value * 10.0).round() / 10.0)
    } else {
        Value::Null
    }
}
