//! P1 with the secrets in Secrets Manager: a local Secrets Manager answers `GetSecretValue`
//! after a set delay, so that cold init counts what a start on AWS pays for its secrets (a TLS
//! connection and one request, tens of milliseconds) when it waits for them.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::lambda::cold_starts;
use crate::process::{Function, BENCH_SECRETS};
use crate::report::Report;
use crate::Options;

/// P1 again, each secret read through its ARN from a local Secrets Manager that answers after
/// `SECRETS_DELAY_MS` (default 40 ms).
pub async fn cold_init_with_secrets(options: &Options, report: &mut Report, table: &str, functions: &[(String, bool)]) {
    let delay = std::env::var("SECRETS_DELAY_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(40u64);
    let manager = match SecretsManager::start(BENCH_SECRETS, Duration::from_millis(delay)).await {
        Ok(manager) => manager,
        Err(e) => return eprintln!("P1 with Secrets Manager: cannot serve it: {e}"),
    };
    for (name, _) in functions {
        let function = Function::new(&options.release_dir, name, table).with_secrets_manager(&manager.endpoint());
        match cold_starts(&function, options.starts).await {
            Ok(starts) => {
                report.figure(
                    &format!("p1_secrets.{name}.init_ms_p50"),
                    &format!("{name}: cold init, median, secrets from a Secrets Manager answering in {delay} ms"),
                    starts.init.median(),
                    "ms",
                );
            }
            Err(e) => eprintln!("P1 with Secrets Manager: {name}: {e}"),
        }
    }
}

/// The secrets' ARNs, as `NAME_ARN` names them: `arn:...:secret:<NAME>`.
pub fn arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}")
}

struct Secrets {
    delay: Duration,
    values: Vec<(String, String)>,
}

pub struct SecretsManager {
    pub address: SocketAddr,
    server: JoinHandle<()>,
}

impl SecretsManager {
    /// Serves `values` (name, value) on 127.0.0.1, each answer `delay` late.
    pub async fn start(values: &[(&str, &str)], delay: Duration) -> std::io::Result<SecretsManager> {
        let secrets = Arc::new(Secrets {
            delay,
            values: values.iter().map(|(name, value)| (arn(name), (*value).to_owned())).collect(),
        });
        let app = Router::new().route("/", post(get_secret_value)).with_state(secrets);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(SecretsManager { address, server })
    }

    /// The value of `AWS_ENDPOINT_URL_SECRETS_MANAGER`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for SecretsManager {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn get_secret_value(State(secrets): State<Arc<Secrets>>, body: Bytes) -> Response {
    tokio::time::sleep(secrets.delay).await;
    let asked = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|request| request.get("SecretId").and_then(|id| id.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let json_type = [(header::CONTENT_TYPE, "application/x-amz-json-1.1")];
    match secrets.values.iter().find(|(arn, _)| *arn == asked) {
        Some((arn, value)) => {
            let answer = json!({"ARN": arn, "Name": arn.rsplit(':').next(), "SecretString": value,
                "VersionId": "00000000-0000-4000-8000-000000000001", "VersionStages": ["AWSCURRENT"],
                "CreatedDate": 1_764_000_000.0});
            (StatusCode::OK, json_type, answer.to_string()).into_response()
        }
        None => {
            let answer = json!({"__type": "ResourceNotFoundException", "Message": "Secrets Manager can't find the specified secret."});
            (StatusCode::BAD_REQUEST, json_type, answer.to_string()).into_response()
        }
    }
}
