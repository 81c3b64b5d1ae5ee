//! Secrets read once at init: the key that signs page cursors (`CURSOR_SECRET`) and the salt
//! of the customer hash in deletion receipts (`RECEIPT_SALT`).
//!
//! They fail closed. No secret has a default: a function that needs one and finds none, or
//! finds one shorter than [`MIN_SECRET_BYTES`], does not start. A secret `NAME` is read from
//! 1. the variable `NAME`, when it is set: local runs (`make run` exports documented local
//!    values) and tests;
//! 2. otherwise the Secrets Manager secret whose ARN is in `NAME_ARN`, with one
//!    GetSecretValue call ([`load`], feature `secrets`). That is how `template.yaml` deploys
//!    them, so the value never sits in the function's configuration.
//!
//! The functions make the call beside the rest of init ([`crate::DynamoStore::salted`],
//! [`crate::CursorKey::prefetch`], each a [`crate::Deferred`]): init does not wait for Secrets
//! Manager; a request that needs the secret waits for it, and gets an error, never a default,
//! when it is missing or short.
use std::fmt;
use std::future::Future;

use crate::Error;

/// The shortest secret accepted: 256 bits, the HMAC-SHA256 key size.
pub const MIN_SECRET_BYTES: usize = 32;

/// A secret of at least [`MIN_SECRET_BYTES`]. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// `value` as the secret `name`; refused when shorter than [`MIN_SECRET_BYTES`].
    pub fn new(name: &str, value: impl Into<String>) -> Result<Secret, Error> {
        let value = value.into();
        if value.len() < MIN_SECRET_BYTES {
            return Err(Error::Config(format!(
                "{name} must be at least {MIN_SECRET_BYTES} bytes, it has {}",
                value.len()
            )));
        }
        Ok(Secret(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Reads the secret `name`: the variable `name` from `lookup` when it is set, otherwise the
/// value `fetch` returns for the ARN in the variable `{name}_ARN`. Neither set, or a value
/// shorter than [`MIN_SECRET_BYTES`], is an [`Error::Config`] that names the variables.
pub async fn read<F, Fut>(name: &str, lookup: impl Fn(&str) -> Option<String>, fetch: F) -> Result<Secret, Error>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<String, Error>>,
{
    let arn_variable = format!("{name}_ARN");
    let set = |variable: &str| lookup(variable).filter(|value| !value.is_empty());
    let value = match (set(name), set(&arn_variable)) {
        (Some(value), _) => value,
        (None, Some(arn)) => fetch(arn).await?,
        (None, None) => {
            return Err(Error::Config(format!(
                "{name} is not set: set {arn_variable} to the ARN of its Secrets Manager secret \
                 ({name} itself, to a value of at least {MIN_SECRET_BYTES} bytes, for local runs)"
            )))
        }
    };
    Secret::new(name, value)
}

/// [`read`] from the process environment and Secrets Manager, with the function's shared
/// SDK configuration ([`crate::aws::sdk_config`]). A function that gets an error here must
/// not serve a request that needs the secret.
#[cfg(feature = "secrets")]
pub async fn load(shared: &aws_config::SdkConfig, name: &str) -> Result<Secret, Error> {
    read(name, |variable| std::env::var(variable).ok(), |arn| secrets_manager_value(shared, name, arn)).await
}

#[cfg(feature = "secrets")]
async fn secrets_manager_value(shared: &aws_config::SdkConfig, name: &str, arn: String) -> Result<String, Error> {
    let client = aws_sdk_secretsmanager::Client::new(shared);
    let output = client.get_secret_value().secret_id(&arn).send().await.map_err(|error| {
        Error::Config(format!("{name}: reading the secret {arn} failed: {}", causes(&error)))
    })?;
    output
        .secret_string
        .ok_or_else(|| Error::Config(format!("{name}: the secret {arn} holds no string value")))
}

/// An error and its sources on one line, each said once: an init error is only ever
/// logged, so its message carries the whole cause.
#[cfg(feature = "secrets")]
fn causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !line.contains(&said) {
            line = format!("{line}: {said}");
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(variable: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name| (name == variable).then(|| value.to_owned())
    }

    async fn never_fetched(arn: String) -> Result<String, Error> {
        panic!("no Secrets Manager call expected, got one for {arn}")
    }

    fn message(result: Result<Secret, Error>) -> String {
        match result {
            Err(Error::Config(message)) => message,
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_missing_secret_is_refused_and_the_error_names_both_variables() {
        let error = message(read("CURSOR_SECRET", |_| None, never_fetched).await);
        assert!(error.contains("CURSOR_SECRET is not set"), "{error}");
        assert!(error.contains("CURSOR_SECRET_ARN"), "{error}");
        let empty = read("RECEIPT_SALT", only("RECEIPT_SALT", ""), never_fetched).await;
        assert!(message(empty).contains("RECEIPT_SALT is not set"));
    }

    #[tokio::test]
    async fn a_short_secret_is_refused_without_showing_it() {
        let short = "s".repeat(MIN_SECRET_BYTES - 1);
        let error = message(read("RECEIPT_SALT", |_| Some(short.clone()), never_fetched).await);
        assert!(error.contains("RECEIPT_SALT must be at least 32 bytes, it has 31"), "{error}");
        assert!(!error.contains(&short));
    }

    #[tokio::test]
    async fn a_value_of_32_bytes_in_the_environment_is_used_as_it_is() {
        let value = "v".repeat(MIN_SECRET_BYTES);
        let secret = read("CURSOR_SECRET", |name| (name == "CURSOR_SECRET").then(|| value.clone()), never_fetched).await;
        assert_eq!(secret.unwrap().expose(), value);
    }

    #[tokio::test]
    async fn without_a_value_the_secret_named_by_the_arn_is_fetched_and_checked() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cursor-AbCdEf";
        let fetched = read("CURSOR_SECRET", only("CURSOR_SECRET_ARN", arn), |asked| async move {
            assert_eq!(asked, arn);
            Ok("f".repeat(64))
        });
        assert_eq!(fetched.await.unwrap().expose(), "f".repeat(64));

        let short = read("CURSOR_SECRET", only("CURSOR_SECRET_ARN", arn), |_| async { Ok("short".to_owned()) });
        assert!(message(short.await).contains("at least 32 bytes"));

        let failed = read("CURSOR_SECRET", only("CURSOR_SECRET_ARN", arn), |_| async {
            Err(Error::Config("CURSOR_SECRET: reading the secret failed: AccessDenied".to_owned()))
        });
        assert!(message(failed.await).contains("AccessDenied"));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("S", "x".repeat(40)).unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(..)");
    }
}
