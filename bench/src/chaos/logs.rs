//! What the functions' and the stream runner's logs say: panics, the SDK's own retries, the
//! append's contention loop and the summaries. Logs are JSON lines (`tidewater::telemetry`),
//! possibly behind a prefix; the SDK's retry lines are its `debug` events, which `make chaos`
//! turns on with `RUST_LOG`.
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Default, Serialize)]
pub struct LogFigures {
    /// (file, line) of each panic.
    #[serde(skip)]
    pub panics: Vec<(String, String)>,
    /// SDK retries, by the kind of error that caused them (throttling, server, transient, ...).
    pub sdk_retries: BTreeMap<String, u64>,
    /// Calls the SDK stopped retrying because its retry quota (token bucket) ran out.
    pub sdk_out_of_quota: u64,
    /// Calls the SDK stopped retrying after its maximum attempts.
    pub sdk_out_of_attempts: u64,
    /// Appends by the attempt of the contention loop that wrote them (0 = the first).
    pub appends_by_attempt: BTreeMap<u64, u64>,
    /// Appends that found their response_id already stored (a retry after a lost answer).
    pub duplicate_appends: u64,
    /// Appends that gave up after the contention loop's last attempt.
    pub appends_out_of_attempts: u64,
    pub summaries_written: u64,
    pub summaries_already_written: u64,
    pub degraded_loads: u64,
    /// Stream batches retried and records given up by the stream runner.
    pub stream_retries: u64,
    pub stream_discarded: u64,
}

pub fn read(paths: &[String]) -> LogFigures {
    let mut figures = LogFigures::default();
    for path in paths {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        for line in text.lines() {
            figures.add(path, line);
        }
    }
    figures
}

impl LogFigures {
    fn add(&mut self, path: &str, line: &str) {
        if line.contains("panicked at") {
            self.panics.push((path.to_owned(), line.chars().take(300).collect()));
        }
        let Some(fields) = line.find('{').and_then(|start| serde_json::from_str::<Value>(&line[start..]).ok()) else {
            return;
        };
        let fields = &fields["fields"];
        let message = fields["message"].as_str().unwrap_or_default();
        let count = |field: &str| fields[field].as_u64().unwrap_or(0);
        match message {
            "turn appended" => *self.appends_by_attempt.entry(count("attempt")).or_default() += 1,
            "duplicate append" => self.duplicate_appends += 1,
            "summary written" => self.summaries_written += 1,
            "summary already written" => self.summaries_already_written += 1,
            "answering without memory" => self.degraded_loads += 1,
            "stream records processed" => {
                self.stream_retries += count("retries");
                self.stream_discarded += count("discarded");
            }
            _ if message.contains("retrying after") => {
                *self.sdk_retries.entry(retry_kind(message).to_owned()).or_default() += 1;
            }
            _ if message.contains("not enough retry quota") => self.sdk_out_of_quota += 1,
            _ if message.contains("out of attempts") => self.sdk_out_of_attempts += 1,
            _ => {}
        }
        if line.contains("too many concurrent appends") {
            self.appends_out_of_attempts += 1;
        }
    }
}

/// The SDK's retry line names the error kind (`ThrottlingError`, `ServerError`,
/// `TransientError`) or, for a dropped connection, the transient I/O error.
fn retry_kind(message: &str) -> &'static str {
    ["ThrottlingError", "ServerError", "TransientError", "ClientError"]
        .into_iter()
        .find(|kind| message.contains(kind))
        .map_or("other", |kind| match kind {
            "ThrottlingError" => "throttling",
            "ServerError" => "server error",
            "TransientError" => "transient (connection, timeout)",
            _ => "client error",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contention_retries_and_panics_are_counted() {
        let mut figures = LogFigures::default();
        figures.add("f", r#"{"level":"INFO","fields":{"message":"turn appended","attempt":2}}"#);
        figures.add("f", r#"[append-turn] {"fields":{"message":"attempt #1 failed with RetryableError { kind: ThrottlingError }; retrying after 21ms"}}"#);
        figures.add("f", "thread 'main' panicked at src/main.rs:1:1");
        assert_eq!(figures.appends_by_attempt[&2], 1);
        assert_eq!(figures.sdk_retries["throttling"], 1);
        assert_eq!(figures.panics.len(), 1);
    }
}
