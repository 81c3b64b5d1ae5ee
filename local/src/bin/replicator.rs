//! The local multi-region replicator of `make run REGIONS=...`; see `tidewater_local::replicator`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `REPLICAS` | – | `region@port=upstream, ...`: each region's name, the port its DynamoDB endpoint (the proxy) listens on, on 127.0.0.1, and its DynamoDB Local's URL |
//! | `REPLICATION_PORT` | `8400` | the control API's port, on 127.0.0.1 |
//! | `REPLICATION_LAG_MS` / `REPLICATION_JITTER_MS` | `300` / `700` | a change reaches another region after the lag plus up to the jitter, drawn per change and region |
//! | `REPLICATION_SKEW_MS` | none | `region=ms, ...`: how far ahead (negative: behind) each region's clock runs when it stamps a write |
//! | `REPLICATION_SEED` | `1` | seeds the jitter |
//! | `HOME_MAP_FILE` | none | the home map `POST /failover` rewrites; without it a failover is refused |
//!
//! Ctrl-C or SIGTERM stops it.
use std::sync::Arc;

use tidewater::clock::Clock;
use tidewater_local::mesh::{Mesh, Settings};
use tidewater_local::replicator::{Replica, Replicator};
use tidewater_local::shutdown;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), String> {
    let stop = shutdown::requested();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let number = |name: &str, default: i64| -> Result<i64, String> {
        env(name).map_or(Ok(default), |v| v.trim().parse().map_err(|_| format!("{name} must be a whole number")))
    };
    let mut replicas = Vec::new();
    let mut ports = Vec::new();
    for replica in env("REPLICAS").ok_or("set REPLICAS to region@port=upstream, ...")?.split(',') {
        let (region, upstream) = replica.trim().split_once('=').ok_or(format!("{replica:?} is not region@port=upstream"))?;
        let (name, port) = region.split_once('@').ok_or(format!("{replica:?} is not region@port=upstream"))?;
        ports.push(port.parse::<u16>().map_err(|_| format!("{replica:?}: the port is not a port"))?);
        replicas.push(Replica { name: name.to_owned(), upstream: upstream.to_owned() });
    }
    let names: Vec<String> = replicas.iter().map(|replica| replica.name.clone()).collect();
    let mut skew = vec![0; names.len()];
    for entry in env("REPLICATION_SKEW_MS").unwrap_or_default().split(',').filter(|e| !e.trim().is_empty()) {
        let (name, ms) = entry.trim().split_once('=').ok_or(format!("{entry:?} is not region=ms"))?;
        let region = names.iter().position(|n| n == name).ok_or(format!("REPLICATION_SKEW_MS: no region {name:?}"))?;
        skew[region] = ms.parse::<i64>().map_err(|_| format!("{entry:?}: not a whole number of ms"))? * 1_000;
    }
    let settings = Settings {
        lag: number("REPLICATION_LAG_MS", 300)? * 1_000,
        jitter: number("REPLICATION_JITTER_MS", 700)? * 1_000,
        skew,
    };
    let mesh = Mesh::new(names, settings, number("REPLICATION_SEED", 1)? as u64);
    let replicator = Replicator::new(replicas.clone(), mesh, Clock::system());
    if let Some(path) = env("HOME_MAP_FILE") {
        replicator.set_home_map(path.into());
    }

    let (quit, quitting) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut quitting = quitting.clone();
        async move {
            let _ = quitting.wait_for(|quit| *quit).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (region, (replica, port)) in replicas.iter().zip(ports).enumerate() {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| format!("port {port}: {e}"))?;
        println!("replicator: {} on http://127.0.0.1:{port} -> {}", replica.name, replica.upstream);
        tasks.spawn(Arc::clone(&replicator).serve_region(region, listener, stopped()));
    }
    let port = number("REPLICATION_PORT", 8400)?;
    let listener = TcpListener::bind(format!("127.0.0.1:{port}")).await.map_err(|e| format!("port {port}: {e}"))?;
    println!("replicator: control on http://127.0.0.1:{port} (GET /status)");
    let control = axum::serve(listener, Arc::clone(&replicator).control()).with_graceful_shutdown(stopped());
    tasks.spawn(async move { control.await });
    tasks.spawn({
        let replicator = Arc::clone(&replicator);
        let stop = stopped();
        async move {
            replicator.deliver(stop).await;
            Ok(())
        }
    });
    tokio::select! {
        _ = stop => {}
        Some(ended) = tasks.join_next() => {
            let _ = quit.send(true);
            return match ended {
                Ok(Ok(())) => Err("a replicator task ended".into()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(join) => Err(join.to_string()),
            };
        }
    }
    let _ = quit.send(true);
    Ok(())
}
