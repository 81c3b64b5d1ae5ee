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
//! | `SECTIONS` | all | a comma list of `p1,p2,p3,p4,warmup,memory,size,p6,redact`, to run fewer |
//! | `FUNCTIONS` | all | a comma list of functions for P1 and P5 size |
mod append;
mod events;
mod item_size;
mod lambda;
mod load;
mod process;
mod redaction;
mod report;
mod runtime_api;
mod seed;
mod silence;
mod stats;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use tidewater::{dynamodb_client, Caller, Config, DynamoStore, NewSession, Secret, SessionCreator};

use crate::process::Function;
use crate::report::{format_value, Report, Status};

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
        redaction_cost(store, report).await?;
    }
    if !["p2", "p3", "p4", "warmup", "memory"]
        .iter()
        .any(|s| options.wants(s))
    {
        if options.wants("p1") {
            cold_init(options, report, &table, &functions).await;
        }
        if options.wants("size") {
            sizes(options, report, &functions);
        }
        if options.wants("p6") {
            stream_throughput(options, report).await;
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
        capacity_of_loads(store, report, &load_event, &seeded).await?;
    }
    if options.wants("p2") {
        eprintln!(
            "P2: load-context against a bare Query, {} rounds...",
            options.iterations
        );
        load_latency(store, report, &load_event, &seeded, options.iterations).await?;
    }
    if options.wants("p4") {
        eprintln!("P4: append capacity...");
        append_capacity(store, report, &alice, &seeded).await?;
    }
    if options.wants("p1") {
        eprintln!("P1: cold init, {} starts per function...", options.starts);
        cold_init(options, report, &table, &functions).await;
    }
    if options.wants("warmup") {
        eprintln!("warm-up trial (load-context, WARM_UP=0 and 1)...");
        warm_up(options, report, &table, &load_event).await;
    }
    if options.wants("memory") {
        eprintln!(
            "P5: memory over {} warm invocations...",
            options.invocations
        );
        memory(options, store, report, &table, &load_event).await?;
    }
    if options.wants("size") {
        eprintln!("P5: bootstrap sizes...");
        sizes(options, report, &functions);
    }
    if options.wants("p6") {
        eprintln!("P6: stream consumer throughput (bench-summarize)...");
        stream_throughput(options, report).await;
    }

    notes(report);
    Ok(())
}

async fn capacity_of_loads(
    store: &DynamoStore,
    report: &mut Report,
    event: &str,
    seeded: &seed::Seeded,
) -> Result<(), BoxError> {
    let c = load::capacity(store, event, seeded, MAX_TURNS).await?;
    report.figure("p3.reported_rcu", "load-context RCU, reported by DynamoDB Local (one Query)", c.reported_rcu, "RCU");
    report.figure("p3.computed_rcu", "load-context RCU, computed from item sizes", c.computed_rcu, "RCU");
    report.figure("p3.not_modified_rcu", "conditional load answered 304, reported", c.not_modified_rcu, "RCU");
    report.figure("p3.meta_bytes", "~META item", c.meta_bytes as f64, "B");
    report.figure("p3.summary_bytes", "~SUMMARY item (the gzip summary)", c.summary_bytes as f64, "B");
    report.figure("p3.turns_bytes", "the 10 newest TURN items, together", c.turns_bytes as f64, "B");
    report.figure("p3.turn_item_mean_bytes", "one TURN item, mean", c.turn_item_mean_bytes as f64, "B");
    report.figure("p3.turn_gzip_mean_bytes", "one turn's gzip content, mean", c.turn_gzip_mean_bytes as f64, "B");
    let total = c.meta_bytes + c.summary_bytes + c.turns_bytes;
    let note = format!(
        "One Query, newest first, over `SK BETWEEN TURN#0000000001 AND ~SUMMARY` with Limit N+2, reads the latest \
         summary ({} B), META ({} B) and the 10 newest turns ({} B): {} B, which costs {} RCU by the published rules \
         (0.5 per started 4 KB, eventually consistent), the floor of those bytes. A 304 reads META alone: {} RCU.",
        c.summary_bytes, c.meta_bytes, c.turns_bytes, total, c.computed_rcu, c.not_modified_rcu
    );
    report.check(
        "P3",
        "load-context capacity (200 turns of ~1 KB, N=10, with a summary); a 304",
        "≤ 1.0 RCU, the floor of its bytes; 304 ≤ 0.5 RCU",
        format!("{} RCU (computed {}); 304: {} RCU", c.reported_rcu, c.computed_rcu, c.not_modified_rcu),
        Status::of(c.reported_rcu <= 1.0 && c.reported_rcu <= c.computed_rcu && c.not_modified_rcu <= 0.5),
        note,
    );
    Ok(())
}

async fn load_latency(
    store: &DynamoStore,
    report: &mut Report,
    event: &str,
    seeded: &seed::Seeded,
    iterations: usize,
) -> Result<(), BoxError> {
    let l = load::latency(store, event, seeded, MAX_TURNS, iterations, 50).await?;
    let ratio = l.handler.median() / l.bare.median();
    report.figure(
        "p2.handler_p50_ms",
        "load-context handler, p50",
        l.handler.median(),
        "ms",
    );
    report.figure(
        "p2.handler_p90_ms",
        "load-context handler, p90",
        l.handler.percentile(90.0),
        "ms",
    );
    report.figure(
        "p2.handler_p99_ms",
        "load-context handler, p99",
        l.handler.percentile(99.0),
        "ms",
    );
    report.figure("p2.bare_p50_ms", "bare SDK Query of the same items (the handler's Query), p50", l.bare.median(), "ms");
    report.figure("p2.bare_p90_ms", "bare SDK Query, p90", l.bare.percentile(90.0), "ms");
    report.figure("p2.bare_p99_ms", "bare SDK Query, p99", l.bare.percentile(99.0), "ms");
    report.figure("p2.ratio_p50", "handler p50 / bare Query p50", ratio, "×");
    report.figure("p2.response_bytes", "load-context response body", l.response_bytes as f64, "B");
    report.check(
        "P2",
        "warm load-context vs a bare Query of the same items (200 turns, N=10), p50",
        "≤ 1.10×",
        format!("{ratio:.2}× ({:.2} ms vs {:.2} ms, {} rounds)", l.handler.median(), l.bare.median(), l.handler.len()),
        Status::of(ratio <= 1.10),
        format!(
            "In-process, alternating rounds against DynamoDB Local. The handler makes the same one Query as the bare \
             call; what it adds ({:.2} ms at p50) is its own work: parsing the event, the checks, gunzipping 11 blobs \
             and serialising the answer once.",
            l.handler.median() - l.bare.median()
        ),
    );
    Ok(())
}

async fn append_capacity(
    store: &DynamoStore,
    report: &mut Report,
    alice: &Caller,
    seeded: &seed::Seeded,
) -> Result<(), BoxError> {
    let mut chat = seed::Chat::new(7);
    let turn = |chat: &mut seed::Chat, id: &str| {
        seed::new_turn(chat, 1, id.to_owned(), TURN_BYTES).validate(store.config())
    };

    let guest = Caller::new("bench-guest", ["guest"]);
    let fresh_alice = store
        .create_session(
            alice,
            NewSession {
                session_id: None,
                page_context: Some(seed::page_context()),
            },
        )
        .await?;
    let fresh_guest = store
        .create_session(
            &guest,
            NewSession {
                session_id: None,
                page_context: Some(seed::page_context()),
            },
        )
        .await?;
    let long_turn = turn(&mut chat, "p4-long")?;
    let scenarios = [
        (
            "signed_in_long",
            "signed-in customer, 200-turn session with a summary",
            alice.clone(),
            seeded.session_id,
            long_turn.clone(),
        ),
        (
            "signed_in_new",
            "signed-in customer, new session",
            alice.clone(),
            fresh_alice.session_id,
            turn(&mut chat, "p4-new")?,
        ),
        (
            "guest_new",
            "guest, new session (not in the customer index)",
            guest.clone(),
            fresh_guest.session_id,
            turn(&mut chat, "p4-guest")?,
        ),
    ];
    let mut parts = Vec::new();
    let mut worst: f64 = 0.0;
    for (key, label, caller, session, draft) in scenarios {
        let p = append::price(store, &caller, session, draft).await?;
        report.figure(
            &format!("p4.{key}.billed_wcu"),
            &format!("append, {label}: billed WCU"),
            p.billed_wcu(),
            "WCU",
        );
        report.figure(
            &format!("p4.{key}.table_wcu"),
            &format!("append, {label}: table items (×2, transactional)"),
            p.table_wcu,
            "WCU",
        );
        report.figure(
            &format!("p4.{key}.index_wcu"),
            &format!("append, {label}: customer index"),
            p.index_wcu,
            "WCU",
        );
        report.figure(
            &format!("p4.{key}.reported_wcu"),
            &format!("append, {label}: DynamoDB Local's report"),
            p.reported_wcu,
            "WCU",
        );
        report.figure(
            &format!("p4.{key}.resp_bytes"),
            &format!("append, {label}: RESP item"),
            p.resp_bytes as f64,
            "B",
        );
        report.figure(
            &format!("p4.{key}.turn_bytes"),
            &format!("append, {label}: TURN item"),
            p.turn_bytes as f64,
            "B",
        );
        report.figure(
            &format!("p4.{key}.meta_bytes"),
            &format!("append, {label}: META item, larger of before and after"),
            p.meta_before_bytes.max(p.meta_after_bytes) as f64,
            "B",
        );
        if let Some((_, new)) = p.index_entry_bytes {
            report.figure(
                &format!("p4.{key}.index_entry_bytes"),
                &format!("append, {label}: index entry"),
                new as f64,
                "B",
            );
        }
        report.figure(
            &format!("p4.{key}.reads_rcu"),
            &format!("append, {label}: reads (META, strongly consistent)"),
            p.reads_rcu,
            "RCU",
        );
        worst = worst.max(p.billed_wcu());
        parts.push(format!("{label}: {} WCU", p.billed_wcu()));
    }

    // The calculator against DynamoDB Local's own rounding, on the long session's items.
    let items = append::items_of_append(
        store,
        seeded.session_id,
        &long_turn.response_id,
        seeded.turns + 1,
    )
    .await?;
    let mut agree = true;
    for item in &items {
        let (reported, computed) = append::plain_put_units(store, item).await?;
        agree &= reported == computed;
    }
    report.note(format!(
        "P4 cross-check: the RESP, TURN and META items of the priced append, written again as plain PutItems, cost what the \
         size calculator says in DynamoDB Local: {}.",
        if agree { "yes" } else { "NO (the calculator and DynamoDB Local disagree)" }
    ));

    let d = append::duplicate(store, alice, seeded.session_id, long_turn).await?;
    report.figure(
        "p4.duplicate.reported_wcu",
        "duplicate retry: WCU reported",
        d.reported_wcu,
        "WCU",
    );
    report.figure(
        "p4.duplicate.reads_rcu",
        "duplicate retry: RCU of its reads",
        d.reads_rcu,
        "RCU",
    );
    let duplicate_ok = d.was_duplicate && d.reported_wcu == 0.0 && !d.items_changed;
    parts.push(format!(
        "duplicate retry: {}",
        if duplicate_ok {
            "0 WCU, no item changed".to_owned()
        } else {
            format!(
                "WROTE (duplicate={}, {} WCU, changed={})",
                d.was_duplicate, d.reported_wcu, d.items_changed
            )
        }
    ));
    report.check(
        "P4",
        "append of a 1 KB turn, billed as real DynamoDB bills it (worst case)",
        "≤ 6 WCU (stretch 4); a duplicate writes nothing",
        format!("{worst} WCU; {}", parts.join("; ")),
        Status::of(worst <= 6.0 && duplicate_ok),
        "Each of the three transaction items (RESP put, TURN put, META update) costs 2 WCU per started KB, so the \
         guarantees (idempotency via RESP#, the atomic count via META's condition) put the floor at 6 WCU, now met for \
         every caller: the summary lives in its own ~SUMMARY item, so META stays under 1 KB, and a signed-in \
         customer's index entry moves only once per resume step (RESUME_ORDER_STEP_SECONDS), projecting nothing an \
         append changes. The first append of each step bills 8. The stretch of 4 needs a two-item transaction, which \
         would drop the RESP# idempotency record or META inside the transaction, the only fence against a concurrent \
         DELETE or purge (bench/README.md)."
            .to_owned(),
    );
    Ok(())
}

async fn cold_init(
    options: &Options,
    report: &mut Report,
    table: &str,
    functions: &[(String, bool)],
) {
    let mut worst: Option<(f64, String)> = None;
    let mut failures = Vec::new();
    for (name, _) in functions {
        let function = Function::new(&options.release_dir, name, table);
        match lambda::cold_starts(&function, options.starts).await {
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
         page cache. About half of what remains is the SDK loading this machine's root certificates (bench/README.md)."
            .to_owned(),
    );
}

async fn warm_up(options: &Options, report: &mut Report, table: &str, load_event: &str) {
    let function = Function::new(&options.release_dir, "load-context", table);
    match lambda::warm_up_trial(&function, load_event, options.starts).await {
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

async fn memory(
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

    let runs: [(&str, &[u16], Box<dyn FnMut(usize) -> String>); 3] = [
        ("load-context", &[200], Box::new(|_| load_event.to_owned())),
        (
            "append-turn",
            &[201],
            Box::new(|i| append_events[i].clone()),
        ),
        ("create-session", &[201], Box::new(|_| create_event.clone())),
    ];
    let mut worst: Option<(f64, &str)> = None;
    let mut problems = Vec::new();
    for (name, expected, event) in runs {
        let function = Function::new(&options.release_dir, name, table);
        match lambda::warm_run(&function, options.invocations, expected, event).await {
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

fn sizes(options: &Options, report: &mut Report, functions: &[(String, bool)]) {
    let mut worst: Option<(f64, String)> = None;
    let mut missing = Vec::new();
    for (name, http) in functions {
        if let Ok(meta) = std::fs::metadata(options.release_dir.join(name)) {
            report.figure(
                &format!("p5.{name}.x86_64_mb"),
                &format!("{name}: x86_64 release binary"),
                meta.len() as f64 / MB,
                "MB",
            );
        }
        match std::fs::metadata(options.lambda_dir.join(name).join("bootstrap")) {
            Ok(meta) => {
                let mb = meta.len() as f64 / MB;
                report.figure(
                    &format!("p5.{name}.bootstrap_mb"),
                    &format!("{name}: arm64 bootstrap (stripped)"),
                    mb,
                    "MB",
                );
                if *http && worst.as_ref().is_none_or(|(w, _)| mb > *w) {
                    worst = Some((mb, name.clone()));
                }
            }
            Err(_) => missing.push(name.clone()),
        }
    }
    let (status, figure) = match worst {
        Some((mb, name)) if missing.is_empty() => (
            Status::of(mb <= 8.0),
            format!("largest {mb:.2} MB ({name})"),
        ),
        Some((mb, name)) => (
            Status::NotMeasured,
            format!(
                "largest {mb:.2} MB ({name}); no bootstrap for {}",
                missing.join(", ")
            ),
        ),
        None => (
            Status::NotMeasured,
            format!(
                "no bootstrap under {}; run `make bench`",
                options.lambda_dir.display()
            ),
        ),
    };
    report.check(
        "P5-size",
        "stripped arm64 bootstrap of each HTTP function (`cargo lambda build --release --arm64`)",
        "≤ 8 MB (10⁶ bytes)",
        figure,
        status,
        String::new(),
    );
}

async fn stream_throughput(options: &Options, report: &mut Report) {
    match stream::median_of(&options.release_dir, 1_000, 5, STREAM_RUNS).await {
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

async fn redaction_cost(store: &DynamoStore, report: &mut Report) -> Result<(), BoxError> {
    use tidewater::redact::Kinds;
    let clean = redaction::chat_text(17, 1_024);
    let personal = redaction::text_with_personal_data(17, 1_024);
    let large = redaction::chat_text(19, 64 * 1_024);
    let per_kb = |text: &str, kinds: Kinds| {
        redaction::detector(text, kinds, DETECTOR_CALLS).median() / (text.len() as f64 / 1_024.0)
    };
    let cases = [
        ("default_chat", "offline detector, card,iban, 1 KB of chat text", &clean, Kinds::DEFAULT),
        ("default_personal", "offline detector, card,iban, 1 KB with a card, IBAN, e-mail and phone", &personal, Kinds::DEFAULT),
        ("all_chat", "offline detector, every kind, 1 KB of chat text", &clean, Kinds::ALL),
        ("all_personal", "offline detector, every kind, 1 KB with a card, IBAN, e-mail and phone", &personal, Kinds::ALL),
        ("all_64k", "offline detector, every kind, 64 KiB of chat text", &large, Kinds::ALL),
    ];
    let mut worst_1kb: f64 = 0.0;
    for (key, label, text, kinds) in cases {
        let us = report.figure(&format!("redact.{key}_us_per_kb"), &format!("{label}, per KB, p50"), per_kb(text, kinds), "µs");
        if !key.ends_with("64k") {
            worst_1kb = worst_1kb.max(us);
        }
    }

    let a = redaction::append_latency(store, REDACT_APPEND_ROUNDS).await?;
    let none = report.figure("redact.append_none_p50_ms", "append-turn handler, REDACT= (none), 1 KB, p50", a.none.median(), "ms");
    let default = report.figure("redact.append_default_p50_ms", "append-turn handler, card,iban, p50", a.default.median(), "ms");
    let all = report.figure("redact.append_all_p50_ms", "append-turn handler, every kind (adds a GetItem), p50", a.all.median(), "ms");
    let share = worst_1kb / 1_000.0 / none;
    report.figure("redact.detector_share_of_append_p50", "offline detector on a 1 KB turn / append p50", share * 100.0, "%");
    report.check(
        "Redaction",
        "offline detector on a 1 KB turn, against the warm append-turn handler's p50",
        "≤ 5 % of the append p50",
        format!(
            "{:.2} % ({:.1} µs of {:.2} ms, worst 1 KB case)",
            share * 100.0,
            worst_1kb,
            none
        ),
        Status::of(share <= 0.05),
        format!(
            "The detector alone, median of {DETECTOR_CALLS} calls per text after 200 untimed ones, beside the append-turn \
             handler in-process ({REDACT_APPEND_ROUNDS} interleaved rounds, 1 KB turns, guest sessions, DynamoDB Local): \
             p50 {none:.2} ms without redaction, {default:.2} ms with card,iban, {all:.2} ms with every kind, which also \
             reads the session's page context for its order numbers (one GetItem). The handler figures differ by \
             less than their noise; the detector's own time is the figure the budget is checked on."
        ),
    );
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
