//! Function processes as Lambda runs them: a release binary, the Lambda environment, and
//! the harness's own Runtime API.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::runtime_api::{Outcome, Reply, RuntimeApi};
use crate::BoxError;

/// How long a function may take to reach its first `next`, or to answer, before the harness gives up.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Variables the harness passes through from its own environment (set by `with-dynamodb.sh`).
const PASSED_THROUGH: &[&str] = &[
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_DYNAMODB",
];

/// The secrets the functions refuse to start without, passed as `make run` passes them: as
/// values in the environment, so no Secrets Manager call at init. The harness's own store
/// names customers with the same salt.
pub const BENCH_RECEIPT_SALT: &str = "tidewater-bench-receipt-salt-not-deployed";
pub const BENCH_HASH_KEY: &str = "tidewater-bench-hash-key-not-deployed-anywhere";
/// The bench's local master key (a master key file's text): the functions encrypt content.
pub const BENCH_MASTER_KEYS: &str = "bench-1 dGlkZXdhdGVyLWJlbmNoLW1hc3Rlci1rZXktMzJieXQ=";
pub const BENCH_SECRETS: &[(&str, &str)] = &[
    ("CURSOR_SECRET", "tidewater-bench-cursor-secret-not-deployed"),
    ("RECEIPT_SALT", BENCH_RECEIPT_SALT),
    ("HASH_KEY", BENCH_HASH_KEY),
    ("MASTER_KEYS", BENCH_MASTER_KEYS),
];

#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub binary: PathBuf,
    /// Extra variables: `TABLE_NAME`, `WARM_UP`, ...
    pub env: Vec<(String, String)>,
}

impl Function {
    pub fn new(release_dir: &Path, name: &str, table: &str) -> Function {
        Function {
            name: name.to_owned(),
            binary: release_dir.join(name),
            env: std::iter::once(("TABLE_NAME", table))
                .chain(BENCH_SECRETS.iter().copied())
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        }
    }

    /// The same function with its secrets in Secrets Manager at `endpoint`, as AWS runs it:
    /// `NAME_ARN` in place of each value (`src/secrets_manager.rs`).
    pub fn with_secrets_manager(mut self, endpoint: &str) -> Function {
        self.env.retain(|(name, _)| !BENCH_SECRETS.iter().any(|(secret, _)| secret == name));
        for (name, _) in BENCH_SECRETS {
            self.env.push((format!("{name}_ARN"), crate::secrets_manager::arn(name)));
        }
        self.with_env("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
    }

    pub fn with_env(mut self, name: &str, value: &str) -> Function {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One running function process and its Runtime API.
pub struct Running {
    pub api: RuntimeApi,
    child: Child,
    pub pid: u32,
    /// From just before the spawn to the process's first `next`.
    pub init: Duration,
    pub first_next: Instant,
}

impl Running {
    /// Spawns the function with a clean Lambda-like environment and waits for its first `next`.
    /// `event`, when given, is queued before the spawn, so the first `next` returns at once.
    pub async fn start(function: &Function, event: Option<String>) -> Result<Running, BoxError> {
        let mut api = RuntimeApi::start(&function.name).await?;
        if let Some(event) = event {
            api.invoke(event);
        }
        let mut command = Command::new(&function.binary);
        command
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("AWS_LAMBDA_RUNTIME_API", api.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", &function.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", function.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/26/[$LATEST]bench")
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in PASSED_THROUGH {
            if let Ok(value) = std::env::var(name) {
                command.env(name, value);
            }
        }
        for (name, value) in &function.env {
            command.env(name, value);
        }
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", function.binary.display()))?;
        let pid = child.id().unwrap_or_default();
        let Some(first_next) = api.next_call(PATIENCE).await else {
            let _ = child.start_kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), pipe.read_to_string(&mut stderr))
                        .await;
            }
            let _ = child.wait().await;
            return Err(format!(
                "{} never asked for an invocation; stderr: {}",
                function.name,
                stderr.trim()
            )
            .into());
        };
        Ok(Running {
            api,
            child,
            pid,
            init: first_next.duration_since(spawned),
            first_next,
        })
    }

    /// Hands the function one event and waits for its answer.
    pub async fn invoke(&mut self, event: String) -> Result<(Reply, Duration), BoxError> {
        let sent = Instant::now();
        let request_id = self.api.invoke(event);
        let reply = self.reply().await?;
        if reply.request_id != request_id {
            return Err(format!(
                "answer for {} while waiting for {request_id}",
                reply.request_id
            )
            .into());
        }
        let took = reply.at.duration_since(sent);
        Ok((reply, took))
    }

    pub async fn reply(&mut self) -> Result<Reply, BoxError> {
        let reply = self
            .api
            .reply(PATIENCE)
            .await
            .ok_or("the function did not answer")?;
        if reply.outcome != Outcome::Response {
            return Err(format!(
                "the function reported {:?}: {}",
                reply.outcome,
                String::from_utf8_lossy(&reply.body)
            )
            .into());
        }
        Ok(reply)
    }

    /// `VmHWM` (peak resident set) and `VmRSS`, in KiB, from /proc.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        memory_kib(self.pid)
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// The HTTP status of a lambda_http answer.
pub fn status_code(reply: &Reply) -> u16 {
    serde_json::from_slice::<serde_json::Value>(&reply.body)
        .ok()
        .and_then(|v| v.get("statusCode").and_then(|s| s.as_u64()))
        .unwrap_or_default() as u16
}
