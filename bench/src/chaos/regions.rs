//! `make chaos REGIONS=2`: the chaos workload with every request sent to a random region while
//! the replicator lags, pauses each direction, takes the first region down and fails it over
//! to the second; then, once replication has settled, the chaos checks in every region, the
//! regions' agreement item by item, and the failover's RPO against what the clients were told.
//! `scripts/chaos-regions.sh` starts what it needs. No fault proxy runs: the faults are the
//! replication's and the outage's.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CHAOS_REGION_APIS` | – | `region=url,...`, every region's API; the first region is the one that fails |
//! | `CHAOS_REGION_DYNAMODB` | – | `region=url,...`, every region's DynamoDB, for the Scans |
//! | `CHAOS_REPLICATOR` | – | the replicator's control API |
//! | `HOME_MAP_FILE` | – | the home map, read to wait for the failover's fences to lift |
//! | `CHAOS_OUTAGE_SECONDS` | `10` | how long the first region stays down after its failover |
//! | `CHAOS_FENCE` | `sessions` | `off`: the failover fences nothing, as on AWS; the new home's turns are keyed by the new epoch and the old home's late turns are reported unmerged |
//!
//! and the variables of `make chaos` (`main.rs`) other than the proxy's.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tidewater::home::{self, HomeMap, Homes};
use tidewater::keys;
use tidewater_local::fault::Log;
use uuid::Uuid;

use crate::checks::{self, Check, Exported, Verdict};
use crate::client::Api;
use crate::workload::{self, Outcome, Settings};
use crate::{env_or, export, jwt_secret, logs, number, report, stored, summaries_behind};

/// How long each direction's replication is paused, one after the other, before the outage.
const PAUSE: Duration = Duration::from_secs(3);
/// How long the first region's writes pile up unreplicated before it goes down: what the
/// failover's RPO then measures.
const BEFORE_OUTAGE: Duration = Duration::from_secs(3);
/// Changes the failing region must have queued unreplicated before it goes down, so that the
/// failover has something to fence (waited for at most [`PILE_UP_LIMIT`]).
const PILE_UP: u64 = 10;
const PILE_UP_LIMIT: Duration = Duration::from_secs(60);
/// How long the disruptions wait for the workload's appends to flow (the stacks' first
/// requests start their functions, slowly on a busy machine).
const WARM_UP_LIMIT: Duration = Duration::from_secs(300);
/// How long the fences may take to lift once the failed region is back.
const FENCES_LIFT: Duration = Duration::from_secs(120);

/// The replicator's control API.
struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    async fn call(&self, method: reqwest::Method, path: &str) -> Result<Value, String> {
        let answer = self.http.request(method, format!("{}{path}", self.base)).send().await;
        let answer = answer.map_err(|e| format!("the replicator's {path}: {e}"))?;
        let status = answer.status();
        let body: Value = answer.json().await.map_err(|e| format!("the replicator's {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("the replicator's {path} answered {status}: {body}"));
        }
        Ok(body)
    }

    async fn post(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path).await
    }

    async fn pending(&self) -> Result<u64, String> {
        Ok(self.call(reqwest::Method::GET, "/status").await?["pending"].as_u64().unwrap_or(u64::MAX))
    }
}

/// What the disruptions did, and what the replicator answered to the failover and the return.
#[derive(Debug, Default)]
struct Disruptions {
    /// (seconds into the workload, what happened)
    events: Vec<(f64, String)>,
    failover: Value,
    returned: Value,
    /// When the failing region was down, in ms since the Unix epoch.
    outage: (u64, u64),
}

/// The region home to most hot sessions (its appends are the ones a failover can lose), then
/// the other regions in order.
fn failing_first(names: &[String], seed: u64, customers: usize) -> Vec<String> {
    let homes = Homes::new(&names.join(","), HomeMap::default());
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for customer in workload::hot_customers(seed, customers) {
        let home = homes.as_ref().map_or(names[0].as_str(), |homes| homes.home_of(home::customer_slot(&customer)));
        *count.entry(home).or_default() += 1;
    }
    let failing = names.iter().max_by_key(|name| (count.get(name.as_str()).copied().unwrap_or(0), std::cmp::Reverse(*name)));
    let failing = failing.cloned().unwrap_or_default();
    std::iter::once(failing.clone()).chain(names.iter().filter(|name| **name != failing).cloned()).collect()
}

/// Pauses each direction in turn, then lets the first region's writes pile up, takes it down,
/// fails it over to the second, brings it back after `outage` and waits for the fences to lift.
async fn disrupt(
    control: &Control,
    regions: &[String],
    outage: Duration,
    (home_map, fence): (&str, &str),
    (acked, appends): (&AtomicUsize, usize),
) -> Result<Disruptions, String> {
    let started = Instant::now();
    let mut done = Disruptions::default();
    let note = |done: &mut Disruptions, what: String| {
        println!("chaos: {:.1} s: {what}", started.elapsed().as_secs_f64());
        done.events.push(((started.elapsed().as_secs_f64() * 10.0).round() / 10.0, what));
    };
    let (failing, other) = (&regions[0], &regions[1]);
    // From the tenth append acknowledged: the stacks are warm and the workers busy.
    while acked.load(Ordering::SeqCst) < appends / 10 && started.elapsed() < WARM_UP_LIMIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (from, to) in [(failing, other), (other, failing)] {
        control.post(&format!("/pause?from={from}&to={to}")).await?;
        note(&mut done, format!("replication {from} → {to} paused"));
        tokio::time::sleep(PAUSE).await;
        control.post(&format!("/resume?from={from}&to={to}")).await?;
        note(&mut done, format!("replication {from} → {to} resumed"));
    }
    control.post(&format!("/pause?from={failing}&to={other}")).await?;
    note(&mut done, format!("replication {failing} → {other} paused"));
    tokio::time::sleep(BEFORE_OUTAGE).await;
    let piling = Instant::now();
    while control.pending().await? < PILE_UP && piling.elapsed() < PILE_UP_LIMIT {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    control.post(&format!("/regions/{failing}/down")).await?;
    done.outage.0 = crate::client::now_ms();
    note(&mut done, format!("{failing} down"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.failover = control.post(&format!("/failover?from={failing}&to={other}&fence={fence}")).await?;
    let unreplicated = &done.failover["unreplicated"];
    let what = format!(
        "failover {failing} → {other} (fence={fence}): epoch {}, {} sessions fenced, {other} lacked {} items ({} turns)",
        done.failover["epoch"],
        done.failover["fenced"],
        unreplicated["items"],
        unreplicated["turns"].as_array().map_or(0, Vec::len)
    );
    note(&mut done, what);
    tokio::time::sleep(outage).await;
    control.post(&format!("/resume?from={failing}&to={other}")).await?;
    done.returned = control.post(&format!("/regions/{failing}/up")).await?;
    done.outage.1 = crate::client::now_ms();
    let returned = &done.returned["returned_with"][other];
    let what = format!(
        "{failing} up, returning with {} items ({} turns) {other} lacked",
        returned["items"],
        returned["turns"].as_array().map_or(0, Vec::len)
    );
    note(&mut done, what);
    let waited = Instant::now();
    loop {
        let fenced = std::fs::read_to_string(home_map)
            .ok()
            .and_then(|text| serde_json::from_str::<HomeMap>(&text).ok())
            .map_or(usize::MAX, |map| map.fenced.len() + map.awaiting.len());
        if fenced == 0 {
            note(&mut done, format!("every fence lifted, {failing} no longer awaited"));
            return Ok(done);
        }
        if waited.elapsed() >= FENCES_LIFT {
            return Err(format!("{fenced} fences still stand {} s after {failing} returned", FENCES_LIFT.as_secs()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `region=url,...` in the order given.
fn regions_of(name: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::env::var(name).map_err(|_| format!("set {name}"))?;
    text.split(',')
        .map(|pair| pair.split_once('=').map(|(r, u)| (r.trim().to_owned(), u.trim().to_owned())))
        .collect::<Option<Vec<_>>>()
        .filter(|regions| regions.len() >= 2)
        .ok_or(format!("{name} must be region=url,region=url"))
}

pub async fn run() -> Result<bool, String> {
    let apis = regions_of("CHAOS_REGION_APIS")?;
    let endpoints = regions_of("CHAOS_REGION_DYNAMODB")?;
    let names: Vec<String> = apis.iter().map(|(region, _)| region.clone()).collect();
    if endpoints.iter().map(|(region, _)| region).ne(names.iter()) {
        return Err("CHAOS_REGION_DYNAMODB must name the regions of CHAOS_REGION_APIS, in its order".into());
    }
    let control = Control {
        http: reqwest::Client::new(),
        base: std::env::var("CHAOS_REPLICATOR").map_err(|_| "set CHAOS_REPLICATOR")?.trim_end_matches('/').to_owned(),
    };
    let home_map = std::env::var("HOME_MAP_FILE").map_err(|_| "set HOME_MAP_FILE")?;
    let appends = number("CHAOS_APPENDS", 2400)? as usize;
    let seed = number("CHAOS_SEED", 42)?;
    let customers = 10;
    let disrupting = Arc::new(AtomicBool::new(true));
    let acked = Arc::new(AtomicUsize::new(0));
    let settings = Settings {
        seed,
        sessions: number("CHAOS_SESSIONS", 60)? as usize,
        customers,
        appends,
        workers: number("CHAOS_WORKERS", 24)? as usize,
        deadline: Duration::from_secs(number("CHAOS_SECONDS", 210)?),
        jwt_secret: jwt_secret()?,
        stale_lag: Duration::ZERO,
        disrupting: Arc::clone(&disrupting),
        acked: Arc::clone(&acked),
    };
    let (sessions, workers) = (settings.sessions, settings.workers);
    let outage = Duration::from_secs(number("CHAOS_OUTAGE_SECONDS", 10)?);
    let fence = env_or("CHAOS_FENCE", "sessions");
    let config = tidewater::Config::from_env().map_err(|e| e.to_string())?;
    let (threshold, keep_recent) = (config.summary_threshold, config.summary_keep_recent);

    println!("chaos: seed {seed}, {sessions} sessions, {appends} appends, {workers} workers, each request to a random one of {}", names.join(", "));
    let bases: Vec<&str> = apis.iter().map(|(_, url)| url.as_str()).collect();
    let api = Arc::new(Api::spread(&bases, seed));
    let order = failing_first(&names, seed, customers);
    let disruptions = async {
        let done = disrupt(&control, &order, outage, (&home_map, &fence), (&acked, appends)).await;
        disrupting.store(false, Ordering::SeqCst);
        done
    };
    let (outcome, disruptions) = tokio::join!(workload::run(Arc::clone(&api), settings), disruptions);
    let disruptions = disruptions?;
    println!(
        "chaos: workload done in {:.1} s: {} requests, {} appends acknowledged; settling",
        outcome.elapsed.as_secs_f64(),
        api.exchanges().len(),
        outcome.acked.len()
    );

    let base = tidewater::dynamodb_client().await;
    let clients: Vec<aws_sdk_dynamodb::Client> = endpoints
        .iter()
        .map(|(_, url)| aws_sdk_dynamodb::Client::from_conf(base.config().to_builder().endpoint_url(url).build()))
        .collect();
    let live: Vec<Uuid> = outcome.sessions.iter().filter(|s| !s.deleted).map(|s| s.id).collect();
    let settle = Duration::from_secs(number("CHAOS_SETTLE_SECONDS", 60)?);
    let started = Instant::now();
    let tables = loop {
        let pending = control.pending().await?;
        let mut tables = Vec::new();
        for client in &clients {
            tables.push(stored::scan(client, &config.table_name).await?);
        }
        let behind: usize = tables.iter().map(|table| summaries_behind(table, &live, (threshold, keep_recent))).sum();
        // A write in the home between two Scans (a summary's) differs for a moment: scan again.
        let differ = disagreements(&names, &tables).len();
        if (pending == 0 && behind == 0 && differ == 0) || started.elapsed() >= settle {
            println!(
                "chaos: replication and summaries settled after {:.1} s ({pending} changes pending, {behind} sessions behind, {differ} items differ)",
                started.elapsed().as_secs_f64()
            );
            break tables;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let secret = jwt_secret()?;
    let mut exports: Vec<HashMap<Uuid, Exported>> = Vec::new();
    // A session whose export fails counts as holding nothing: its acknowledged appends are lost.
    let mut unexported = Vec::new();
    for (region, url) in &apis {
        let reader = Api::new(url);
        let mut exported = HashMap::new();
        for record in outcome.sessions.iter().filter(|s| !s.deleted) {
            let token = tidewater_local::gateway::issue_token(&record.owner, &[], &secret, Duration::from_secs(600))?;
            match export(&reader, &token, record.id).await {
                Ok(turns) => {
                    exported.insert(record.id, turns);
                }
                Err(error) => unexported.push(format!("through {region}: {error}")),
            }
        }
        exports.push(exported);
    }
    let log_files: Vec<String> = env_or("CHAOS_LOGS", "").split_whitespace().map(str::to_owned).collect();
    let log_figures = logs::read(&log_files);
    let exchanges = api.exchanges();
    let verdicts: Vec<Verdict> = tables
        .iter()
        .zip(&exports)
        .map(|(table, exports)| {
            checks::run(&checks::Inputs {
                outcome: &outcome,
                exchanges: &exchanges,
                faults: None,
                outages: &[disruptions.outage],
                table,
                exports,
                panics: &log_figures.panics,
                summary_threshold: threshold,
                summary_keep_recent: keep_recent,
                min_appends: appends * 5 / 6,
            })
        })
        .collect();
    let mut verdict = merged(&names, &verdicts);
    let live_count = live.len();
    verdict.checks.push(listing_check(
        "every live session exports in every region",
        &unexported,
        &format!("{live_count} sessions through each region's API"),
    ));
    let overwritten = overwritten(&outcome, &exports);
    verdict.checks.push(listing_check("no acknowledged turn is overwritten in any region", &overwritten, "none"));
    let disagreements = disagreements(&names, &tables);
    let items = tables[0].items.len();
    verdict.checks.push(listing_check(
        "every region holds the same items",
        &disagreements,
        &format!("{items} items, attribute for attribute the same in {}", names.join(" and ")),
    ));
    let rpo = rpo_turns(&disruptions.failover);
    let acked_at: HashMap<(Uuid, u64), &str> =
        outcome.acked.iter().map(|a| ((a.session, a.turn_index), a.response_id.as_str())).collect();
    let rpo_acked: Vec<&(Uuid, u64)> = rpo.iter().filter(|turn| acked_at.contains_key(turn)).collect();
    let acked_at = &acked_at;
    let deleted: HashSet<Uuid> = outcome.sessions.iter().filter(|s| s.deleted).map(|s| s.id).collect();
    let rpo_missing: Vec<String> = rpo_acked
        .iter()
        .filter(|(session, _)| !deleted.contains(session))
        .flat_map(|(session, index)| {
            names.iter().zip(&tables).filter_map(move |(region, table)| {
                let partition = table.partition(session);
                let response_id = acked_at.get(&(*session, *index)).copied().unwrap_or_default();
                let there = partition.turns.contains(index) && partition.responses.get(response_id) == Some(index)
                    || partition.unmerged.iter().any(|(unmerged, _)| unmerged == index)
                        && partition.unmerged_responses.get(response_id) == Some(index);
                (!there).then(|| format!("turn {index} of {session} missing in {region}"))
            })
        })
        .collect();
    verdict.checks.push(listing_check(
        "every acknowledged turn the new home lacked at the failover is in every region",
        &rpo_missing,
        &format!("{} turns lacked, {} of them acknowledged to the client", rpo.len(), rpo_acked.len()),
    ));
    verdict.checks.push(Check {
        name: "the failover ran under load",
        passed: !disruptions.failover.is_null() && !disruptions.returned.is_null(),
        detail: disruptions.events.iter().map(|(at, what)| format!("{at} s: {what}")).collect::<Vec<_>>().join("; "),
    });

    let run = report::Run {
        seed,
        plan: "",
        latency_ms: 0,
        load_deadline_ms: number("LOAD_DEADLINE_MS", 300)?,
        sessions,
        workers,
        outcome: &outcome,
        exchanges: &exchanges,
        retries: &api.retries(),
        gave_up: &api.gave_up(),
        faults: &Log::default(),
        logs: &log_figures,
        verdict: &verdict,
    };
    let mut report = report::json(&run);
    report["title"] = json!("Chaos run across regions");
    report["appends"]["overwritten"] = json!(overwritten.len());
    report["appends"]["reported_unmerged"] = json!(verdicts.iter().map(|v| v.unmerged).max().unwrap_or(0));
    report["appends"]["sent_again_after_the_client_gave_up"] = json!(outcome.requeued);
    report["regions"] = json!({
        "regions": names,
        "failed": order[0],
        "failed_over_to": order[1],
        "fence": fence,
        "replication_lag_ms": number("REPLICATION_LAG_MS", 300)?,
        "replication_jitter_ms": number("REPLICATION_JITTER_MS", 700)?,
        "outage_s": outage.as_secs(),
        "events": disruptions.events.iter().map(|(at, what)| json!({"at_s": at, "what": what})).collect::<Vec<_>>(),
        "failover": disruptions.failover,
        "rpo": {"items": disruptions.failover["unreplicated"]["items"], "turns": rpo.len(), "turns_acknowledged": rpo_acked.len()},
        "returned_with": disruptions.returned["returned_with"],
        "stale_reads": outcome.stale_reads,
        "by_region": names.iter().zip(&verdicts).map(|(region, verdict)| (region.clone(), json!({
            "passed": verdict.checks.iter().all(|c| c.passed), "lost": verdict.lost, "duplicated": verdict.duplicated,
        }))).collect::<BTreeMap<_, _>>(),
    });
    let markdown = markdown(&report) + &report::markdown(&report);
    println!("{markdown}");
    let report_path = env_or("CHAOS_REPORT", "bench/chaos-regions");
    let pretty = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(format!("{report_path}.md"), &markdown).map_err(|e| format!("{report_path}.md: {e}"))?;
    std::fs::write(format!("{report_path}.json"), pretty + "\n").map_err(|e| format!("{report_path}.json: {e}"))?;
    println!("chaos: wrote {report_path}.md and {report_path}.json");
    Ok(verdict.checks.iter().all(|c| c.passed))
}

/// One verdict of the regions' verdicts: a check passes when it passed in every region; its
/// detail is the one they share, or each region's. Lost and duplicated appends add up.
fn merged(names: &[String], verdicts: &[Verdict]) -> Verdict {
    let mut verdict = Verdict {
        lost: verdicts.iter().map(|v| v.lost).sum(),
        duplicated: verdicts.iter().map(|v| v.duplicated).sum(),
        ..Verdict::default()
    };
    for (n, first) in verdicts[0].checks.iter().enumerate() {
        let each: Vec<&Check> = verdicts.iter().filter_map(|v| v.checks.get(n)).collect();
        let detail = if each.iter().all(|c| c.detail == first.detail) {
            format!("in every region: {}", first.detail)
        } else {
            names.iter().zip(&each).map(|(region, c)| format!("{region}: {}", c.detail)).collect::<Vec<_>>().join("; ")
        };
        verdict.checks.push(Check { name: first.name, passed: each.iter().all(|c| c.passed), detail });
    }
    verdict
}

/// Acknowledged appends of live sessions whose told index holds another turn in some region's
/// export, unless that region reports them unmerged (kept, beside the new home's order).
fn overwritten(outcome: &Outcome, exports: &[HashMap<Uuid, Exported>]) -> Vec<String> {
    outcome
        .acked
        .iter()
        .filter(|append| {
            exports.iter().any(|exported| {
                let exported = exported.get(&append.session).cloned().unwrap_or_default();
                let told = |(index, id): &(u64, String)| *index == append.turn_index && *id == append.response_id;
                let elsewhere = exported.turns.iter().any(|(index, id)| *index == append.turn_index && *id != append.response_id);
                elsewhere && !exported.unmerged.iter().any(told)
            })
        })
        .map(|append| format!("turn {} of {}, told to {}", append.turn_index, append.session, append.response_id))
        .collect()
}

/// Items some region lacks or holds otherwise than the first region.
fn disagreements(names: &[String], tables: &[stored::Table]) -> Vec<String> {
    let mut found = Vec::new();
    for (region, table) in names.iter().zip(tables).skip(1) {
        let keys: std::collections::BTreeSet<&String> = tables[0].items.keys().chain(table.items.keys()).collect();
        for key in keys {
            match (tables[0].items.get(key), table.items.get(key)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => {
                    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                    let differing: Vec<&str> =
                        names.into_iter().filter(|name| a.get(*name) != b.get(*name)).map(String::as_str).collect();
                    found.push(format!("{key} differs in {region} ({})", differing.join(", ")));
                }
                (Some(_), None) => found.push(format!("{key} missing in {region}")),
                (None, _) => found.push(format!("{key} only in {region}")),
            }
        }
    }
    found
}

/// The turns the failover said the new home lacked, as (session, index).
fn rpo_turns(failover: &Value) -> Vec<(Uuid, u64)> {
    failover["unreplicated"]["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|turn| {
            let (pk, sk) = turn.as_str()?.split_once(' ')?;
            Some((keys::session_id_from_pk(pk)?, keys::turn_index_from_sk(sk)?))
        })
        .collect()
}

fn listing_check(name: &'static str, failures: &[String], covered: &str) -> Check {
    let detail = if failures.is_empty() {
        covered.to_owned()
    } else {
        format!("{} found: {}", failures.len(), failures.iter().take(8).cloned().collect::<Vec<_>>().join("; "))
    };
    Check { name, passed: failures.is_empty(), detail }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

/// The regions' part of the report: the figures the issue asks for, then the timeline.
fn markdown(report: &Value) -> String {
    use std::fmt::Write as _;
    let regions = &report["regions"];
    let appends = &report["appends"];
    let names: Vec<&str> = regions["regions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let check = |name: &str| {
        report["checks"].as_array().into_iter().flatten().find(|c| c["check"] == name).map_or("not run", |c| {
            if c["passed"] == true {
                "yes"
            } else {
                "**NO**"
            }
        })
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Chaos run across regions (`make chaos REGIONS=2`)\n");
    let _ = writeln!(
        md,
        "{} regions ({}), each request of the workload sent to one of them at random. Replication lag \
         {} ms plus up to {} ms of jitter per change; each direction paused in turn; then {} down for {} s \
         and failed over to {}. Checked in every region once replication had settled.\n",
        names.len(),
        names.join(", "),
        regions["replication_lag_ms"],
        regions["replication_jitter_ms"],
        text(&regions["failed"]),
        regions["outage_s"],
        text(&regions["failed_over_to"]),
    );
    let returned = &regions["returned_with"];
    let returned: Vec<String> = returned
        .as_object()
        .into_iter()
        .flatten()
        .map(|(region, what)| {
            format!("{} items ({} turns) {region} lacked", what["items"], what["turns"].as_array().map_or(0, Vec::len))
        })
        .collect();
    let _ = writeln!(md, "| figure | value |\n|---|---|");
    let _ = writeln!(md, "| acknowledged appends | {} |", appends["acknowledged"]);
    let _ = writeln!(md, "| acknowledged appends lost (summed over regions) | {} |", appends["lost"]);
    let _ = writeln!(md, "| duplicated | {} |", appends["duplicated"]);
    let _ = writeln!(md, "| turns silently overwritten | {} |", appends["overwritten"]);
    let _ = writeln!(md, "| the failover's fence | {} |", text(&regions["fence"]));
    let _ = writeln!(
        md,
        "| acknowledged turns reported unmerged (kept in every region beside the new home's order) | {} |",
        appends["reported_unmerged"]
    );
    let _ = writeln!(md, "| one summary per window, in every region | {} |", check("one summary per window"));
    let _ = writeln!(md, "| purged customer gone in every region | {} |", check("the purged customer has zero items"));
    let _ = writeln!(md, "| every region holds the same items | {} |", check("every region holds the same items"));
    let _ = writeln!(
        md,
        "| RPO at the failover | {} items, {} turns, {} of them acknowledged to the client |",
        regions["rpo"]["items"], regions["rpo"]["turns"], regions["rpo"]["turns_acknowledged"]
    );
    let _ = writeln!(md, "| sessions fenced by the failover | {} |", regions["failover"]["fenced"]);
    let _ = writeln!(md, "| the returning region reported | {} |", if returned.is_empty() { "nothing".to_owned() } else { returned.join("; ") });
    let _ = writeln!(
        md,
        "| lacked turns in every region afterwards | {} |",
        check("every acknowledged turn the new home lacked at the failover is in every region")
    );
    let _ = writeln!(md, "| reads served stale (home down or fenced) | {} |", regions["stale_reads"]);
    let _ = writeln!(md, "| appends given up on (every attempt 503) and sent again later | {} |\n", appends["sent_again_after_the_client_gave_up"]);
    let _ = writeln!(md, "Timeline:\n");
    for event in regions["events"].as_array().into_iter().flatten() {
        let _ = writeln!(md, "- {} s: {}", event["at_s"], event["what"].as_str().unwrap_or_default());
    }
    let _ = writeln!(md);
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(passed: bool, detail: &str) -> Verdict {
        Verdict { checks: vec![Check { name: "one summary per window", passed, detail: detail.into() }], lost: 1, duplicated: 0, unmerged: 0 }
    }

    fn item(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("v".to_owned(), value.to_owned())])
    }

    #[test]
    fn a_check_passes_across_regions_only_when_it_passed_in_each_and_losses_add_up() {
        let names = vec!["us-east-1".to_owned(), "eu-west-1".to_owned()];
        let merged = merged(&names, &[verdict(true, "2 windows"), verdict(false, "1 found")]);
        assert!(!merged.checks[0].passed);
        assert_eq!(merged.checks[0].detail, "us-east-1: 2 windows; eu-west-1: 1 found");
        assert_eq!(merged.lost, 2);
        let same = super::merged(&names, &[verdict(true, "2 windows"), verdict(true, "2 windows")]);
        assert!(same.checks[0].passed);
        assert_eq!(same.checks[0].detail, "in every region: 2 windows");
    }

    #[test]
    fn an_item_another_region_lacks_or_holds_otherwise_is_a_disagreement() {
        let names = vec!["a".to_owned(), "b".to_owned()];
        let mut first = stored::Table::default();
        first.items.insert("S#1 META".into(), item("1"));
        first.items.insert("S#1 TURN#1".into(), item("x"));
        let mut second = stored::Table::default();
        second.items.insert("S#1 META".into(), item("2"));
        second.items.insert("S#2 META".into(), item("1"));
        let found = disagreements(&names, &[first, second]);
        assert_eq!(found, ["S#1 META differs in b (v)", "S#1 TURN#1 missing in b", "S#2 META only in b"]);
    }

    #[test]
    fn the_rpo_names_each_turn_the_new_home_lacked() {
        let session = Uuid::from_u128(9);
        let turn = format!("{} {}", keys::session_pk(&session), keys::turn_sk(3));
        let failover = json!({"unreplicated": {"items": 4, "turns": [turn, "not a key"]}});
        assert_eq!(rpo_turns(&failover), [(session, 3)]);
    }
}
