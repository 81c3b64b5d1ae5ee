//! `make bench`: measures the functions as they run on Lambda and checks the budgets of
//! issue 7. It prints the report and writes it to `bench/report.md` and `bench/report.json`,
//! with the previous run's figures beside the new ones.
//!
//! Run it through `make bench`, which builds the release binaries first and starts DynamoDB
//! Local. Budgets are checked here, never in `make test`: timings on shared machines are
//! noisy, so timing budgets compare ratios measured in one run, and capacity is counted.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_OUT` | `bench` | where report.md and report.json go |
//! | `RELEASE_DIR` | `target/release` | the x86_64 release binaries (P1, P5 memory, P6) |
//! | `LAMBDA_DIR` | `target/lambda` | cargo lambda's arm64 `bootstrap`s (P5 size) |
//! | `STARTS` | `20` | cold starts per function (P1) |
//! | `ITERATIONS` | `1000` | timed load pairs (P2) |
//! | `INVOCATIONS` | `1000` | warm invocations per process (P5 memory) |
//! | `SECTIONS` | all | a comma list of `p1,p1_secrets,p2,p3,p4,warmup,memory,size,p6,redact`, to run fewer |
//! | `SECRETS_DELAY_MS` | `40` | how late the local Secrets Manager answers (`p1_secrets`) |
//! | `FUNCTIONS` | all | a comma list of functions for P1 and P5 size |
mod append;
mod crypto;
mod events;
mod item_size;
mod lambda;
mod load;
mod process;
mod redaction;
mod regions;
mod report;
mod runtime_api;
mod secrets_manager;
mod seed;
mod silence;
mod size;
mod stats;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use tidewater::{dynamodb_client, Caller, Config, DynamoStore, Secret};

use crate::report::Report;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MB: f64 = 1_000_000.0;
const LONG_SESSION_TURNS: u64 = 200;
const TURN_BYTES: usize = 1_000;
const MAX_TURNS: i32 = 10;
/// bench-summarize runs for P6; the median is reported.
const STREAM_RUNS: usize = 3;
/// Timed calls of the offline detector per text, and timed append rounds (redaction).
const DETECTOR_CALLS: usize = 5_000;
const REDACT_APPEND_ROUNDS: usize = 300;

struct Options {
    out: PathBuf,
    release_dir: PathBuf,
    lambda_dir: PathBuf,
    starts: usize,
    iterations: usize,
    invocations: usize,
    sections: Option<Vec<String>>,
    functions: Option<Vec<String>>,
}

impl Options {
    fn from_env() -> Options {
        let path = |name: &str, default: &str| {
            PathBuf::from(std::env::var(name).unwrap_or_else(|_| default.to_owned()))
        };
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Options {
            out: path("BENCH_OUT", "bench"),
            release_dir: path("RELEASE_DIR", "target/release"),
            lambda_dir: path("LAMBDA_DIR", "target/lambda"),
            starts: number("STARTS", 20).max(1),
            iterations: number("ITERATIONS", 1_000).max(1),
            invocations: number("INVOCATIONS", 1_000).max(1),
            sections: list("SECTIONS"),
            functions: list("FUNCTIONS"),
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.sections
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == section))
    }
}

fn list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    Some(value.split(',').map(|s| s.trim().to_owned()).collect())
}

/// The function crates under functions/, and whether each serves HTTP.
fn functions() -> Vec<(String, bool)> {
    let mut found: Vec<(String, bool)> = std::fs::read_dir("functions")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| e.path().join("Cargo.toml").is_file())
                .map(|e| {
                    let http = std::fs::read_to_string(e.path().join("Cargo.toml"))
                        .unwrap_or_default()
                        .contains("lambda_http");
                    (e.file_name().to_string_lossy().into_owned(), http)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[tokio::main]
async fn main() -> ExitCode {
    let started = Instant::now();
    let options = Options::from_env();
    if std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_err() {
        eprintln!("bench needs DynamoDB Local: run `make bench`");
        return ExitCode::FAILURE;
    }
    let mut report = Report {
        date: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu: cpu_model(),
        commit: commit(),
        ..Report::default()
    };

    let salt = Secret::new("RECEIPT_SALT", process::BENCH_RECEIPT_SALT);
    let hash_key = Secret::new("HASH_KEY", process::BENCH_HASH_KEY).and_then(|key| tidewater::HashKey::new(&key));
    let config = match salt.and_then(|salt| Ok(Config::from_env()?.with_receipt_salt(salt).with_hash_key(hash_key?))) {
        Ok(config) => Config {
            table_name: format!("bench-{}", uuid::Uuid::new_v4().simple()),
            ..config
        },
        Err(e) => {
            eprintln!("bad configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = DynamoStore::new(dynamodb_client().await, config.clone());
    if let Err(e) = store.create_table().await {
        eprintln!("cannot create the bench table: {e}");
        return ExitCode::FAILURE;
    }
    let result = run(&options, &store, &mut report).await;
    let _ = store
        .client()
        .delete_table()
        .table_name(&config.table_name)
        .send()
        .await;
    if let Err(e) = result {
        eprintln!("bench failed: {e}");
        return ExitCode::FAILURE;
    }
    report.harness_seconds = started.elapsed().as_secs_f64();

    let json_path = options.out.join("report.json");
    let previous = Report::load(&json_path);
    let markdown = report.to_markdown(previous.as_ref());
    println!("{markdown}");
    let written = std::fs::create_dir_all(&options.out)
        .and_then(|_| std::fs::write(options.out.join("report.md"), &markdown))
        .and_then(|_| std::fs::write(&json_path, report.to_json()));
    if let Err(e) = written {
        eprintln!("cannot write the report: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "wrote {} and {}",
        options.out.join("report.md").display(),
        json_path.display()
    );
    ExitCode::SUCCESS
}

async fn run(options: &Options, store: &DynamoStore, report: &mut Report) -> Result<(), BoxError> {
    let table = store.config().table_name.clone();
    let alice = Caller::new("bench-alice", Vec::<String>::new());

    let functions: Vec<(String, bool)> = functions()
        .into_iter()
        .filter(|(name, _)| options.functions.as_ref().is_none_or(|f| f.contains(name)))
        .collect();
    if options.wants("redact") {
        eprintln!("redaction: the offline detector per KB, and the append handler with and without it...");
        redaction::redaction_cost(store, report).await?;
    }
    if options.wants("regions") {
        match std::env::var("BENCH_SECOND_DYNAMODB") {
            Ok(second) => {
                eprintln!("regions: a request served from another region, and an append's capacity with two...");
                regions::regions_cost(store, &second, report).await?;
            }
            Err(_) => eprintln!("regions: skipped, BENCH_SECOND_DYNAMODB names no second DynamoDB Local (make bench starts one)"),
        }
    }
    if options.wants("crypto") {
        eprintln!("encryption: append and load p50 sealed and in the clear, unwraps for 1,000 customers...");
        crypto::crypto_cost(store, report, options.iterations.min(500)).await?;
    }
    if !["p2", "p3", "p4", "warmup", "memory"]
        .iter()
        .any(|s| options.wants(s))
    {
        if options.wants("p1") {
            lambda::cold_init(options, report, &table, &functions).await;
        }
        if options.wants("p1_secrets") {
            secrets_manager::cold_init_with_secrets(options, report, &table, &functions).await;
        }
        if options.wants("size") {
            size::sizes(options, report, &functions);
        }
        if options.wants("p6") {
            stream::stream_throughput(options, report).await;
        }
        return Ok(());
    }

    eprintln!("seeding a {LONG_SESSION_TURNS}-turn session of ~{TURN_BYTES}-byte turns, with summaries...");
    let seeded = seed::long_session(store, &alice, LONG_SESSION_TURNS, TURN_BYTES).await?;
    report.figure(
        "seed.turn_text_mean_bytes",
        "seeded turn text, mean UTF-8 bytes",
        seeded.mean_content_bytes as f64,
        "B",
    );
    report.figure(
        "seed.summary_chars",
        "latest summary, characters",
        seeded.summary_chars as f64,
        "",
    );
    let path = format!("/sessions/{}/context", seeded.session_id);
    let load_event = events::api_event(
        &alice,
        "GET",
        "/sessions/{id}/context",
        &path,
        &format!("max_turns={MAX_TURNS}"),
        None,
    );

    if options.wants("p3") {
        eprintln!("P3: load-context capacity...");
        load::capacity_of_loads(store, report, &load_event, &seeded).await?;
    }
    if options.wants("p2") {
        eprintln!(
            "P2: load-context against a bare Query, {} rounds...",
            options.iterations
        );
        load::load_latency(store, report, &load_event, &seeded, options.iterations).await?;
    }
    if options.wants("p4") {
        eprintln!("P4: append capacity...");
        append::append_capacity(store, report, &alice, &seeded).await?;
    }
    if options.wants("p1") {
        eprintln!("P1: cold init, {} starts per function...", options.starts);
        lambda::cold_init(options, report, &table, &functions).await;
    }
    if options.wants("p1_secrets") {
        eprintln!("P1 with the secrets from Secrets Manager...");
        secrets_manager::cold_init_with_secrets(options, report, &table, &functions).await;
    }
    if options.wants("warmup") {
        eprintln!("warm-up trial (load-context, WARM_UP=0 and 1)...");
        lambda::warm_up(options, report, &table, &load_event).await;
    }
    if options.wants("memory") {
        eprintln!(
            "P5: memory over {} warm invocations...",
            options.invocations
        );
        lambda::memory(options, store, report, &table, &load_event).await?;
    }
    if options.wants("size") {
        eprintln!("P5: bootstrap sizes...");
        size::sizes(options, report, &functions);
    }
    if options.wants("p6") {
        eprintln!("P6: stream consumer throughput (bench-summarize)...");
        stream::stream_throughput(options, report).await;
    }

    notes(report);
    Ok(())
}

fn notes(report: &mut Report) {
    let profile = std::fs::read_to_string("Cargo.toml")
        .ok()
        .and_then(|t| {
            let start = t.find("[profile.release]")?;
            let rest = &t[start + "[profile.release]".len()..];
            let end = rest.find("\n[").unwrap_or(rest.len());
            Some(
                rest[..end]
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
        .unwrap_or_default();
    report.note(format!(
        "Release profile measured: {profile}. What each choice buys is in bench/README.md."
    ));
    report.note(
        "Timings compare within one run (ratios, medians of interleaved samples); capacity is counted from item sizes, \
         which is exact. Nothing here is asserted in `make test`.",
    );
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
