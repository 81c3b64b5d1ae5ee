//! Polls DynamoDB Local's stream for the table and invokes the summarize function, as the
//! deployed event source mapping does. `make run` starts it beside `cargo lambda watch`.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `TABLE_NAME` | `tidewater` | the table whose stream is read |
//! | `AWS_ENDPOINT_URL_DYNAMODB` | the SDK's | DynamoDB Local; the streams client uses it too |
//! | `LAMBDA_INVOKE_URL` | `http://127.0.0.1:9000` | where `cargo lambda watch` takes invokes |
//! | `TEMPLATE` | `template.yaml` | where the filter, batch size and retries are read |
//! | `CHECKPOINT_FILE` | `.run/stream-checkpoint.json` | progress, so a restart does not replay |
//! | `STREAM_FUNCTION` | `summarize` | the binary of the function whose stream event is run |
//! | `POLL_INTERVAL_MS` | `200` | the pause when the stream has nothing new |
use std::path::PathBuf;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use tidewater::{dynamodb_client, telemetry, Config, Error};
use tidewater_local::filter::StreamMapping;
use tidewater_local::settings::env_or;
use tidewater_local::shutdown;
use tidewater_local::stream::{streams_client, HttpInvoker, Invoke, StreamRunner};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Ctrl-C ends the runner at once, also in the middle of a poll: a batch cut off is
    // delivered again from the checkpoint, which delivery at least once allows.
    let stop = shutdown::requested();
    tokio::pin!(stop);
    telemetry::init();
    let config = Config::from_env()?;
    let template = env_or("TEMPLATE", "template.yaml");
    let mapping = StreamMapping::load(&template, &env_or("STREAM_FUNCTION", "summarize"))?;
    let poll_interval = Duration::from_millis(env_or("POLL_INTERVAL_MS", "200").parse().unwrap_or(200));
    let invoker = HttpInvoker::new(&env_or("LAMBDA_INVOKE_URL", "http://127.0.0.1:9000"), &mapping.function);
    tracing::info!(
        table = %config.table_name,
        function = %mapping.function,
        filters = mapping.filter.len(),
        batch_size = mapping.batch_size,
        "stream runner started"
    );
    // `cargo lambda watch` starts a function on its first invoke; an empty batch does that now,
    // so the first summary due does not wait for it.
    let warm_up = invoker.clone();
    tokio::spawn(async move {
        if let Err(error) = warm_up.invoke(Event::default()).await {
            tracing::warn!(error = %error, "warming up the function failed; the first batch will start it");
        }
    });
    let checkpoint = PathBuf::from(env_or("CHECKPOINT_FILE", ".run/stream-checkpoint.json"));
    let mut runner = StreamRunner::new(
        dynamodb_client().await,
        streams_client().await,
        &config.table_name,
        mapping,
        Some(checkpoint),
    )?;

    let mut last_error: Option<String> = None;
    loop {
        let polled = tokio::select! {
            _ = &mut stop => return Ok(()),
            polled = runner.poll_once(&invoker) => polled,
        };
        let idle = match polled {
            Ok(report) => {
                last_error = None;
                if report.read > 0 {
                    tracing::info!(
                        read = report.read,
                        matched = report.matched,
                        invocations = report.invocations,
                        retries = report.retries,
                        discarded = report.discarded,
                        "stream records processed"
                    );
                }
                report.read == 0
            }
            Err(error) => {
                // The table may not exist yet, or DynamoDB Local may be restarting: say so once.
                let mut text = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(cause) = source {
                    text = format!("{text}: {cause}");
                    source = cause.source();
                }
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "polling the stream failed; retrying");
                    last_error = Some(text);
                }
                true
            }
        };
        if idle {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(poll_interval) => {}
            }
        }
    }
}
