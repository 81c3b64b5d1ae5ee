//! P6: the stream consumer's throughput. The summarize function's own benchmark
//! (`local/src/bin/bench-summarize.rs`) does the work; this runs it, each time against a fresh
//! DynamoDB Local of its own, and reads its figures.
use std::path::Path;

use tokio::process::Command;

use crate::BoxError;
use crate::{Options, STREAM_RUNS};
use crate::report::{format_value, Report, Status};
use crate::stats::Samples;

#[derive(Debug, Default)]
pub struct Throughput {
    pub records: f64,
    pub crossing: f64,
    pub written: f64,
    pub failures: f64,
    pub filter_and_handler_per_s: f64,
    pub filter_alone_per_s: f64,
    pub redelivery_per_s: f64,
    pub per_summary_ms: f64,
    /// Summary items per crossing session after the redelivery, when the benchmark reports it.
    pub summary_items_per_session: Option<(f64, f64)>,
    pub succeeded: bool,
    pub output: String,
}

pub async fn run(
    release_dir: &Path,
    records: usize,
    crossing_percent: usize,
) -> Result<Throughput, BoxError> {
    let binary = release_dir.join("bench-summarize");
    // A DynamoDB Local of its own: one that earlier sections filled answers slower.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let output = Command::new("scripts/with-dynamodb.sh")
        .arg(&binary)
        .env("DDB_PORT", port.to_string())
        .env("RECORDS", records.to_string())
        .env("CROSSING_PERCENT", crossing_percent.to_string())
        .env("TEMPLATE", "template.yaml")
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut result = parse(&stdout);
    result.succeeded = output.status.success();
    if !result.succeeded {
        result.output = format!(
            "{}\n{}",
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(result)
}

/// `runs` runs; the one with the median rate, all rates, and every run's success folded in.
pub async fn median_of(
    release_dir: &Path,
    records: usize,
    crossing_percent: usize,
    runs: usize,
) -> Result<(Throughput, Samples), BoxError> {
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        all.push(run(release_dir, records, crossing_percent).await?);
    }
    let mut rates = Samples::default();
    for t in &all {
        rates.push(t.filter_and_handler_per_s);
    }
    let succeeded = all
        .iter()
        .all(|t| t.succeeded && t.failures == 0.0 && t.written == t.crossing);
    let once = all
        .iter()
        .all(|t| t.summary_items_per_session == Some((1.0, 1.0)));
    let failed_output: Vec<String> = all
        .iter()
        .filter(|t| !t.succeeded)
        .map(|t| t.output.clone())
        .collect();
    all.sort_by(|a, b| {
        a.filter_and_handler_per_s
            .total_cmp(&b.filter_and_handler_per_s)
    });
    let mut median = all.swap_remove(all.len() / 2);
    median.succeeded = succeeded;
    if !once {
        median.summary_items_per_session = None;
    }
    if !failed_output.is_empty() {
        median.output = failed_output.join("\n");
    }
    Ok((median, rates))
}

/// Reads the lines bench-summarize prints (its EMF metric lines are skipped).
pub fn parse(stdout: &str) -> Throughput {
    let mut t = Throughput::default();
    let rate = |line: &str| -> f64 {
        let words: Vec<&str> = line.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "records/s")
            .and_then(|i| words.get(i.wrapping_sub(1)))
            .and_then(|w| w.parse().ok())
            .unwrap_or(f64::NAN)
    };
    for line in stdout.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("records:") {
            for part in rest.split(',').map(str::trim) {
                if let Ok(n) = part.parse::<f64>() {
                    t.records = n;
                } else if let Some(v) = part.strip_prefix("summaries written:") {
                    let (w, c) = v.trim().split_once('/').unwrap_or(("", ""));
                    t.written = w.trim().parse().unwrap_or(f64::NAN);
                    t.crossing = c.trim().parse().unwrap_or(f64::NAN);
                } else if let Some(v) = part.strip_prefix("failures:") {
                    t.failures = v.trim().parse().unwrap_or(f64::NAN);
                }
            }
        } else if line.starts_with("filter + handler:") {
            t.filter_and_handler_per_s = rate(line);
        } else if line.starts_with("filter alone:") {
            t.filter_alone_per_s = rate(line);
        } else if line.starts_with("redelivery") {
            t.redelivery_per_s = rate(line);
        } else if let Some(v) = line.strip_prefix("per summary written:") {
            t.per_summary_ms = v
                .trim()
                .trim_end_matches("ms")
                .trim()
                .parse()
                .unwrap_or(f64::NAN);
        } else if let Some(v) = line.strip_prefix("summary items per crossing session:") {
            let (lo, hi) = v.trim().split_once('-').unwrap_or((v.trim(), v.trim()));
            if let (Ok(lo), Ok(hi)) = (lo.trim().parse(), hi.trim().parse()) {
                t.summary_items_per_session = Some((lo, hi));
            }
        }
    }
    t
}

pub(crate) async fn stream_throughput(options: &Options, report: &mut Report) {
    match median_of(&options.release_dir, 1_000, 5, STREAM_RUNS).await {
        Ok((t, rates)) => {
            report.figure(
                "p6.records_per_s",
                &format!("summarize: filter + handler, records/s, median of {STREAM_RUNS} runs"),
                t.filter_and_handler_per_s,
                "/s",
            );
            report.figure(
                "p6.records_per_s_min",
                "summarize: slowest run, records/s",
                rates.min(),
                "/s",
            );
            report.figure(
                "p6.filter_per_s",
                "summarize: the filter alone, records/s",
                t.filter_alone_per_s,
                "/s",
            );
            report.figure(
                "p6.redelivery_per_s",
                "summarize: redelivery of the batch, records/s",
                t.redelivery_per_s,
                "/s",
            );
            report.figure(
                "p6.per_summary_ms",
                "summarize: per summary written",
                t.per_summary_ms,
                "ms",
            );
            report.figure(
                "p6.summaries_written",
                "summaries written / sessions crossing",
                t.written,
                "",
            );
            report.figure(
                "p6.crossing",
                "sessions crossing the threshold",
                t.crossing,
                "",
            );
            let once = t.summary_items_per_session == Some((1.0, 1.0));
            let all = t.succeeded && t.failures == 0.0 && t.written == t.crossing && once;
            let figure = format!(
                "{} records/s (median of {STREAM_RUNS}; slowest {}); {}/{} summaries, {}{}",
                format_value(t.filter_and_handler_per_s, ""),
                format_value(rates.min(), ""),
                t.written,
                t.crossing,
                match t.summary_items_per_session {
                    Some((lo, hi)) =>
                        format!("{lo}–{hi} summary items per session after redelivery"),
                    None => "NOT one summary item per session in every run".to_owned(),
                },
                if t.succeeded {
                    String::new()
                } else {
                    format!("; bench-summarize failed: {}", t.output)
                }
            );
            report.check(
                "P6",
                "stream consumer throughput, extractive summariser, 1,000-record batches, 5% crossing",
                "≥ 5,000 records/s, each summary written once",
                figure,
                Status::of(t.filter_and_handler_per_s >= 5_000.0 && all),
                "Measured by `bench-summarize` (local/src/bin), the summarize function's own benchmark: the template's \
                 filter plus the handler in the mapping's batch size, against DynamoDB Local, then the same batch \
                 redelivered and every crossing session's SUMMARY# items counted; each run gets a fresh DynamoDB \
                 Local, which slows as it fills. The handler summarises the distinct sessions of a batch concurrently, in \
                 order within each session. Each summary costs a consistent read of the session's head, a Query of its \
                 window and a conditional transaction; since the run before, the consumer also writes the customer's \
                 memory facts of each window. Where the time goes against DynamoDB Local on 2 shared cores was not \
                 profiled."
                    .to_owned(),
            );
        }
        Err(e) => report.check(
            "P6",
            "stream consumer throughput",
            "≥ 5,000 records/s, each summary written once",
            e.to_string(),
            Status::NotMeasured,
            String::new(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_figures_bench_summarize_prints() {
        let out = "set-up: 50 sessions of 20 turns (not timed)\n\
            {\"_aws\":{}}\n\
            records: 1000, passed the filter: 50, summaries written: 50/50, failures: 0\n\
            filter alone:                    250000 records/s (4.00 ms)\n\
            filter + handler:                  4000 records/s (250.00 ms)\n\
            \x20 per summary written:             5.00 ms\n\
            redelivery, no filter:             9000 records/s (111.00 ms)\n\
            summary items per crossing session: 1-1\n";
        let t = parse(out);
        assert_eq!(
            (t.records, t.written, t.crossing, t.failures),
            (1000.0, 50.0, 50.0, 0.0)
        );
        assert_eq!(t.filter_and_handler_per_s, 4000.0);
        assert_eq!(t.filter_alone_per_s, 250000.0);
        assert_eq!(t.redelivery_per_s, 9000.0);
        assert_eq!(t.per_summary_ms, 5.0);
        assert_eq!(t.summary_items_per_session, Some((1.0, 1.0)));
    }
}
