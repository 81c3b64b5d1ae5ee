//! A fault-injecting proxy in front of DynamoDB, for `make chaos`; see `tidewater_local::fault`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FAULT_PROXY_PORT` | – | the port it listens on, on 127.0.0.1 |
//! | `FAULT_UPSTREAM` | – | DynamoDB's URL, such as `http://127.0.0.1:8000` |
//! | `FAULT_PLAN` | empty: no faults | `fault[@Operation\|Operation]=rate, ...` |
//! | `FAULT_SEED` | `1` | seeds the draws that pick the faults |
//! | `FAULT_LATENCY_MS` | `400` | how late a `latency` fault answers |
//! | `FAULT_STALE_MS` | `2000` | how far behind a `stale` read may be |
//!
//! Ctrl-C or SIGTERM stops it.
use std::time::Duration;

use tidewater_local::fault::{FaultProxy, Plan};
use tidewater_local::shutdown;

#[tokio::main]
async fn main() -> Result<(), String> {
    let stop = shutdown::requested();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let number = |name: &str, default: u64| -> Result<u64, String> {
        env(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name} must be a whole number")))
    };
    let port = env("FAULT_PROXY_PORT").ok_or("set FAULT_PROXY_PORT")?;
    let upstream = env("FAULT_UPSTREAM").ok_or("set FAULT_UPSTREAM to DynamoDB's URL")?;
    let latency = Duration::from_millis(number("FAULT_LATENCY_MS", 400)?);
    let stale_bound = Duration::from_millis(number("FAULT_STALE_MS", 2_000)?);
    let plan = Plan::parse(&env("FAULT_PLAN").unwrap_or_default(), latency)?.with_stale_bound(stale_bound);
    let seed = number("FAULT_SEED", 1)?;

    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await.map_err(|e| e.to_string())?;
    println!("fault-proxy: http://127.0.0.1:{port} -> {upstream}, seed {seed}");
    for rule in &plan.rules {
        let operations =
            if rule.operations.is_empty() { "every operation".to_owned() } else { rule.operations.join(", ") };
        println!("fault-proxy: {:<20} {:>5.1} % of {operations}", rule.fault.name(), rule.rate * 100.0);
    }
    FaultProxy::new(plan, &upstream, seed).serve(listener, stop).await.map_err(|e| e.to_string())
}
