//! `make chaos`: a seeded, bounded, concurrent workload against the local API while the fault
//! proxy (`tidewater_local::fault`) sits between the functions and DynamoDB Local, then the
//! checks of every guarantee, each a hard failure. `scripts/chaos.sh` starts what it needs.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHAOS_API` | – | the local API |
//! | `CHAOS_PROXY` | – | the fault proxy, for its switch and its log |
//! | `AWS_ENDPOINT_URL_DYNAMODB` | – | DynamoDB Local itself, for the Scan that bypasses the proxy |
//! | `CHAOS_SEED` | `42` | seeds every random choice of the workload |
//! | `CHAOS_SESSIONS` / `CHAOS_APPENDS` / `CHAOS_WORKERS` | `60` / `2400` / `24` | its size |
//! | `CHAOS_SECONDS` | `210` | the workload stops then, finished or not |
//! | `CHAOS_SETTLE_SECONDS` | `60` | how long summaries may take to catch up afterwards |
//! | `CHAOS_REPORT` | `bench/chaos` | writes `<it>.md` and `<it>.json` |
//! | `CHAOS_LOGS` | – | the log files to read, separated by spaces |
//! | `FAULT_STALE_MS` | `0` | the proxy's stale-read lag: the clients start once every session is older |
//! | `FAULT_PLAN`, `FAULT_LATENCY_MS`, `LOAD_DEADLINE_MS` | | as the proxy and functions were given, for the report |
//! | `SUMMARY_THRESHOLD`, `SUMMARY_KEEP_RECENT` | the functions' | which summaries to expect, read as the functions read them |
mod checks;
mod client;
mod logs;
mod regions;
mod report;
#[path = "../stats.rs"]
#[allow(dead_code)]
mod stats;
mod stored;
mod workload;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use uuid::Uuid;

use crate::checks::Exported;
use crate::client::{Api, Call};
use crate::workload::{response_id_of, Settings};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("chaos: {error}");
            ExitCode::from(2)
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned())
}

/// The secret of the gateway on `API_PORT` (which chaos.sh sets), or `LOCAL_JWT_SECRET`.
fn jwt_secret() -> Result<String, String> {
    use tidewater_local::run_secret;
    run_secret::from_env().map_or_else(|| run_secret::read(std::path::Path::new(run_secret::DIR), &env_or("API_PORT", "3000")), Ok)
}

fn number(name: &str, default: u64) -> Result<u64, String> {
    env_or(name, &default.to_string()).parse().map_err(|_| format!("{name} must be a whole number"))
}

async fn run() -> Result<bool, String> {
    if std::env::var("CHAOS_REGION_APIS").is_ok() {
        return regions::run().await;
    }
    let api_url = std::env::var("CHAOS_API").map_err(|_| "set CHAOS_API")?;
    let proxy_url = std::env::var("CHAOS_PROXY").map_err(|_| "set CHAOS_PROXY")?;
    let appends = number("CHAOS_APPENDS", 2400)? as usize;
    let settings = Settings {
        seed: number("CHAOS_SEED", 42)?,
        sessions: number("CHAOS_SESSIONS", 60)? as usize,
        customers: 10,
        appends,
        workers: number("CHAOS_WORKERS", 24)? as usize,
        deadline: Duration::from_secs(number("CHAOS_SECONDS", 210)?),
        jwt_secret: jwt_secret()?,
        stale_lag: Duration::from_millis(number("FAULT_STALE_MS", 0)?),
        disrupting: Arc::default(),
        acked: Arc::default(),
    };
    let (seed, sessions, workers) = (settings.seed, settings.sessions, settings.workers);
    let report_path = env_or("CHAOS_REPORT", "bench/chaos");
    let log_files: Vec<String> = env_or("CHAOS_LOGS", "").split_whitespace().map(str::to_owned).collect();
    let config = tidewater::Config::from_env().map_err(|e| e.to_string())?;
    let (threshold, keep_recent) = (config.summary_threshold, config.summary_keep_recent);
    let table_name = config.table_name.clone();
    let proxy = reqwest::Client::new();
    let switch = |on: bool| {
        let url = format!("{proxy_url}/_fault-proxy/{}", if on { "on" } else { "off" });
        let request = proxy.post(url).send();
        async move { request.await.map_err(|e| format!("switching the faults: {e}")).map(|_| ()) }
    };

    println!("chaos: seed {seed}, {sessions} sessions, {appends} appends, {workers} workers; faults on");
    switch(true).await?;
    let api = Arc::new(Api::new(&api_url));
    let outcome = workload::run(Arc::clone(&api), settings).await;
    switch(false).await?;
    println!(
        "chaos: workload done in {:.1} s: {} requests, {} appends acknowledged; faults off, checking",
        outcome.elapsed.as_secs_f64(),
        api.exchanges().len(),
        outcome.acked.len()
    );
    let faults: tidewater_local::fault::Log = proxy
        .get(format!("{proxy_url}/_fault-proxy/log"))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| format!("reading the proxy's log: {e}"))?;

    let dynamodb = tidewater::dynamodb_client().await;
    let live: Vec<Uuid> = outcome.sessions.iter().filter(|s| !s.deleted).map(|s| s.id).collect();
    let settle = Duration::from_secs(number("CHAOS_SETTLE_SECONDS", 60)?);
    let table = settle_summaries(&dynamodb, &table_name, &live, (threshold, keep_recent), settle).await?;

    let reader = Api::new(&api_url);
    let mut exports = HashMap::new();
    for record in outcome.sessions.iter().filter(|s| !s.deleted) {
        let token = tidewater_local::gateway::issue_token(&record.owner, &[], &jwt_secret()?, Duration::from_secs(600))?;
        exports.insert(record.id, export(&reader, &token, record.id).await?);
    }
    let log_figures = logs::read(&log_files);
    let verdict = checks::run(&checks::Inputs {
        outcome: &outcome,
        exchanges: &api.exchanges(),
        faults: Some(&faults),
        outages: &[],
        table: &table,
        exports: &exports,
        panics: &log_figures.panics,
        summary_threshold: threshold,
        summary_keep_recent: keep_recent,
        min_appends: appends * 5 / 6,
    });

    let report = report::json(&report::Run {
        seed,
        plan: &env_or("FAULT_PLAN", ""),
        latency_ms: number("FAULT_LATENCY_MS", 400)?,
        load_deadline_ms: number("LOAD_DEADLINE_MS", 300)?,
        sessions,
        workers,
        outcome: &outcome,
        exchanges: &api.exchanges(),
        retries: &api.retries(),
        gave_up: &api.gave_up(),
        faults: &faults,
        logs: &log_figures,
        verdict: &verdict,
    });
    let markdown = report::markdown(&report);
    println!("{markdown}");
    let pretty = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(format!("{report_path}.md"), &markdown).map_err(|e| format!("{report_path}.md: {e}"))?;
    std::fs::write(format!("{report_path}.json"), pretty + "\n").map_err(|e| format!("{report_path}.json: {e}"))?;
    println!("chaos: wrote {report_path}.md and {report_path}.json");
    Ok(verdict.checks.iter().all(|c| c.passed))
}

/// Scans the table until every live session has the summaries its turns call for, or `limit` passes.
async fn settle_summaries(
    client: &aws_sdk_dynamodb::Client,
    table_name: &str,
    live: &[Uuid],
    (threshold, keep_recent): (u64, u64),
    limit: Duration,
) -> Result<stored::Table, String> {
    let started = Instant::now();
    loop {
        let table = stored::scan(client, table_name).await?;
        let behind = summaries_behind(&table, live, (threshold, keep_recent));
        if behind == 0 || started.elapsed() >= limit {
            println!("chaos: summaries settled after {:.1} s ({behind} sessions behind)", started.elapsed().as_secs_f64());
            return Ok(table);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The live sessions whose summaries in `table` are fewer than their turns call for.
fn summaries_behind(table: &stored::Table, live: &[Uuid], (threshold, keep_recent): (u64, u64)) -> usize {
    live.iter()
        .filter(|s| {
            let partition = table.partition(s);
            partition.summaries.len() < checks::expected_windows(partition.turns.len() as u64, threshold, keep_recent).len()
        })
        .count()
}

/// Every page of a session's export, read with the faults off.
async fn export(reader: &Api, token: &str, session: Uuid) -> Result<Exported, String> {
    let mut exported = Exported::default();
    let mut cursor = String::new();
    let mut rng = fastrand::Rng::with_seed(0);
    loop {
        let path = format!("/sessions/{session}/turns?limit=500&cursor={cursor}");
        let call = Call::new("GET /sessions/{id}/turns", Method::GET, path, token, Some(session));
        let reply = reader.retrying(&call, &mut rng).await.ok_or(format!("the export of {session} kept failing"))?;
        if reply.status != 200 {
            return Err(format!("the export of {session} answered {}: {}", reply.status, reply.body));
        }
        exported.turn_count = reply.body["session"]["turn_count"].as_u64().unwrap_or(0);
        exported.summary_through = reply.body["summary"]["through_turn"].as_u64();
        let told = |turn: &serde_json::Value| {
            let index = turn["turn_index"].as_u64().unwrap_or(0);
            (index, turn["content"].as_str().and_then(response_id_of).unwrap_or("?").to_owned())
        };
        exported.turns.extend(reply.body["turns"].as_array().into_iter().flatten().map(told));
        exported.unmerged.extend(reply.body["unmerged"].as_array().into_iter().flatten().map(told));
        match reply.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return Ok(exported),
        }
    }
}
