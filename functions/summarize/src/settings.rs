//! Which summariser the function uses, chosen by the environment.
use std::time::Duration;

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use tidewater::summarizer::DEFAULT_SUMMARY_MAX_CHARS;
use tidewater::{positive_number, Error, ExtractiveSummarizer, FactDraft, Summarizer, SummaryInput, Turn};
use uuid::Uuid;

use crate::BedrockSummarizer;

/// `SUMMARIZER`: `extractive` (the default) or `bedrock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummarizerKind {
    Extractive,
    Bedrock,
}

/// The summariser's settings, read once at start-up.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `SUMMARIZER` | `extractive` | `extractive` (offline) or `bedrock` |
/// | `BEDROCK_MODEL_ID` | none; required for `bedrock` | the Converse model id |
/// | `BEDROCK_TIMEOUT_MS` | `8000` | after this, the summary falls back to the extractive one |
/// | `SUMMARY_MAX_CHARS` | `2000` | the longest summary |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummarizerSettings {
    pub kind: SummarizerKind,
    pub model_id: Option<String>,
    pub timeout: Duration,
    pub max_chars: usize,
}

pub const DEFAULT_BEDROCK_TIMEOUT: Duration = Duration::from_millis(8_000);

impl SummarizerSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let kind = match lookup("SUMMARIZER").as_deref().map(str::trim) {
            None | Some("") | Some("extractive") => SummarizerKind::Extractive,
            Some("bedrock") => SummarizerKind::Bedrock,
            Some(other) => {
                return Err(Error::Validation(format!(
                    "SUMMARIZER must be \"extractive\" or \"bedrock\", got {other:?}"
                )))
            }
        };
        let number = |name: &str, default: u64| positive_number(&lookup, name, default);
        let model_id = lookup("BEDROCK_MODEL_ID").map(|m| m.trim().to_owned()).filter(|m| !m.is_empty());
        if kind == SummarizerKind::Bedrock && model_id.is_none() {
            return Err(Error::Validation("SUMMARIZER=bedrock needs BEDROCK_MODEL_ID".to_owned()));
        }
        Ok(SummarizerSettings {
            kind,
            model_id,
            timeout: Duration::from_millis(number("BEDROCK_TIMEOUT_MS", DEFAULT_BEDROCK_TIMEOUT.as_millis() as u64)?),
            max_chars: number("SUMMARY_MAX_CHARS", DEFAULT_SUMMARY_MAX_CHARS as u64)? as usize,
        })
    }

    /// Builds the summariser; for Bedrock, the client comes from the environment's AWS
    /// configuration (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME` overrides its endpoint).
    pub async fn build(self) -> Result<AnySummarizer, Error> {
        let extractive = ExtractiveSummarizer::new(self.max_chars);
        match (self.kind, self.model_id) {
            (SummarizerKind::Bedrock, Some(model_id)) => {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let config = aws_sdk_bedrockruntime::config::Builder::from(&shared)
                    .timeout_config(TimeoutConfig::builder().operation_timeout(self.timeout).build())
                    .retry_config(RetryConfig::standard().with_max_attempts(2))
                    .build();
                let client = aws_sdk_bedrockruntime::Client::from_conf(config);
                Ok(AnySummarizer::Bedrock(BedrockSummarizer::new(client, model_id, self.timeout, extractive)))
            }
            _ => Ok(AnySummarizer::Extractive(extractive)),
        }
    }
}

/// The summariser the environment chose.
#[derive(Debug, Clone)]
pub enum AnySummarizer {
    Extractive(ExtractiveSummarizer),
    Bedrock(BedrockSummarizer),
}

impl AnySummarizer {
    /// Reads [`SummarizerSettings`] from the environment and builds the summariser.
    pub async fn from_env() -> Result<Self, Error> {
        SummarizerSettings::from_lookup(|name| std::env::var(name).ok())?.build().await
    }
}

impl Summarizer for AnySummarizer {
    async fn summarize(&self, input: SummaryInput<'_>) -> Result<String, Error> {
        match self {
            AnySummarizer::Extractive(s) => s.summarize(input).await,
            AnySummarizer::Bedrock(s) => s.summarize(input).await,
        }
    }

    async fn extract_facts(&self, session_id: Uuid, turns: &[Turn]) -> Vec<FactDraft> {
        match self {
            AnySummarizer::Extractive(s) => s.extract_facts(session_id, turns).await,
            AnySummarizer::Bedrock(s) => s.extract_facts(session_id, turns).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<SummarizerSettings, Error> {
        SummarizerSettings::from_lookup(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn the_default_is_the_offline_summariser() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.kind, SummarizerKind::Extractive);
        assert_eq!(s.timeout, DEFAULT_BEDROCK_TIMEOUT);
        assert_eq!(s.max_chars, DEFAULT_SUMMARY_MAX_CHARS);
    }

    #[test]
    fn bedrock_needs_a_model_id() {
        assert!(matches!(settings(&[("SUMMARIZER", "bedrock")]), Err(Error::Validation(_))));
        let s =
            settings(&[("SUMMARIZER", "bedrock"), ("BEDROCK_MODEL_ID", "m1"), ("BEDROCK_TIMEOUT_MS", "500")]).unwrap();
        assert_eq!(
            (s.kind, s.model_id.as_deref(), s.timeout),
            (SummarizerKind::Bedrock, Some("m1"), Duration::from_millis(500))
        );
    }

    #[test]
    fn an_unknown_summariser_is_refused_by_name() {
        let error = settings(&[("SUMMARIZER", "gpt")]).unwrap_err();
        assert!(error.to_string().contains("SUMMARIZER"));
    }
}
