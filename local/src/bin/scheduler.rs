//! Invokes the janitor on a schedule, as the template's EventBridge rule does in AWS. `make
//! run` starts it beside `cargo lambda watch`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LAMBDA_INVOKE_URL` | `http://127.0.0.1:9000` | where `cargo lambda watch` takes invokes |
//! | `JANITOR_INTERVAL_SECONDS` | `60` | the pause between two invocations |
use std::time::Duration;

use tidewater::{telemetry, Error};
use tidewater_local::settings::env_or;
use tidewater_local::shutdown;

/// The scheduled event the janitor receives (it does not read it).
const EVENT: &str = include_str!("../../../events/janitor.json");

#[tokio::main]
async fn main() -> Result<(), Error> {
    let stop = shutdown::requested();
    tokio::pin!(stop);
    telemetry::init();
    let base = env_or("LAMBDA_INVOKE_URL", "http://127.0.0.1:9000");
    let url = format!("{}/2015-03-31/functions/janitor/invocations", base.trim_end_matches('/'));
    let interval = Duration::from_secs(env_or("JANITOR_INTERVAL_SECONDS", "60").parse().unwrap_or(60).max(1));
    let client = reqwest::Client::new();
    tracing::info!(%url, interval_seconds = interval.as_secs(), "scheduler started");
    loop {
        let invoked = tokio::select! {
            _ = &mut stop => return Ok(()),
            invoked = client.post(&url).body(EVENT).send() => invoked,
        };
        match invoked {
            Ok(answer) => match answer.text().await {
                Ok(report) => tracing::info!(%report, "janitor pass"),
                Err(error) => tracing::warn!(%error, "the janitor's answer could not be read"),
            },
            Err(error) => tracing::warn!(%error, "invoking the janitor failed; the next tick tries again"),
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
