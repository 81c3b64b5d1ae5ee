//! Summaries from Amazon Bedrock (Converse), falling back to the extractive summariser.
use std::time::Duration;

use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, SystemContentBlock,
};
use aws_sdk_bedrockruntime::Client;
use tidewater::{Error, ExtractiveSummarizer, FactDraft, Summarizer, SummaryInput, Turn};
use uuid::Uuid;

const SYSTEM_PROMPT: &str = "You keep the running memory of a customer's conversation with a shop's chatbot. \
Given the previous summary and the newest turns, write the next summary: plain text, no preamble. \
Keep the customer's questions, their intents, every named title or product, and the assistant's latest answer. \
Drop small talk. Never invent facts.";

/// Summarises with a Bedrock model through the Converse API. Any error, or no answer
/// within the timeout, falls back to the extractive summariser and logs that it did.
#[derive(Debug, Clone)]
pub struct BedrockSummarizer {
    pub(crate) client: Client,
    pub(crate) model_id: String,
    pub(crate) timeout: Duration,
    fallback: ExtractiveSummarizer,
}

impl BedrockSummarizer {
    pub fn new(client: Client, model_id: impl Into<String>, timeout: Duration, fallback: ExtractiveSummarizer) -> Self {
        BedrockSummarizer { client, model_id: model_id.into(), timeout, fallback }
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn converse(&self, input: SummaryInput<'_>) -> Result<String, Error> {
        let max_chars = self.fallback.max_chars();
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(prompt(input, max_chars)))
            .build()
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        let output = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(SYSTEM_PROMPT.to_owned()))
            .messages(message)
            .inference_config(
                InferenceConfiguration::builder()
                    // About four characters a token, with room to finish the last sentence.
                    .max_tokens((max_chars / 3).clamp(64, 4_096) as i32)
                    .temperature(0.2)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        let text = answer_text(output.output);
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Unavailable("the model answered without text".into()));
        }
        Ok(text.chars().take(max_chars).collect())
    }
}

impl Summarizer for BedrockSummarizer {
    async fn summarize(&self, input: SummaryInput<'_>) -> Result<String, Error> {
        let failure = match tokio::time::timeout(self.timeout, self.converse(input)).await {
            Ok(Ok(text)) => return Ok(text),
            Ok(Err(error)) => error_chain(&error),
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        tracing::warn!(model_id = %self.model_id, error = %failure, "bedrock summary failed; used the extractive summariser");
        self.fallback.summarize(input).await
    }

    async fn extract_facts(&self, session_id: Uuid, turns: &[Turn]) -> Vec<FactDraft> {
        self.extract_facts_with_model(session_id, turns).await
    }
}

/// The user message: the previous summary, then the new turns.
fn prompt(input: SummaryInput<'_>, max_chars: usize) -> String {
    let mut text = format!("Write the new summary in at most {max_chars} characters.\n\nPrevious summary:\n");
    text.push_str(input.previous.unwrap_or("(none)"));
    text.push_str("\n\nNew turns:\n");
    for turn in input.turns {
        text.push_str(&format!("[{}] {}", turn.turn_index, turn.role.as_str()));
        if let Some(intent) = &turn.intent {
            text.push_str(&format!(" (intent: {intent})"));
        }
        text.push_str(": ");
        text.push_str(&turn.content);
        text.push('\n');
    }
    text
}

/// The text blocks of a Converse answer, one a line.
pub(crate) fn answer_text(output: Option<ConverseOutput>) -> String {
    match output {
        Some(ConverseOutput::Message(message)) => message
            .content
            .into_iter()
            .filter_map(|block| match block {
                ContentBlock::Text(text) => Some(text),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
    use tidewater::{Role, Turn};

    use super::*;

    fn turns() -> Vec<Turn> {
        vec![Turn {
            turn_index: 1,
            role: Role::User,
            content: "Is volume 3 of Frieren in stock?".to_owned(),
            intent: Some("availability".to_owned()),
            token_count: None,
            created_at: "2026-11-26T19:00:00Z".to_owned(),
            item: None,
            retracted_at: None,
        }]
    }

    fn summarizer_at(endpoint: &str, timeout: Duration) -> BedrockSummarizer {
        let config = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "test"))
            .endpoint_url(endpoint)
            .build();
        BedrockSummarizer::new(Client::from_conf(config), "test-model", timeout, ExtractiveSummarizer::default())
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_falls_back_to_the_extractive_summary() {
        // Given a port that nothing listens on
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();
        let bedrock = summarizer_at(&format!("http://127.0.0.1:{port}"), Duration::from_secs(10));
        let turns = turns();
        let input = SummaryInput { previous: None, turns: &turns };

        // When it summarises
        let summary = bedrock.summarize(input).await.unwrap();

        // Then the answer is the extractive summary
        assert_eq!(summary, ExtractiveSummarizer::default().summarize_now(input));
    }

    #[tokio::test]
    async fn a_model_that_does_not_answer_in_time_falls_back() {
        // Given a server that accepts connections and never answers
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let bedrock = summarizer_at(&format!("http://127.0.0.1:{port}"), Duration::from_millis(300));
        let turns = turns();
        let input = SummaryInput { previous: Some("Earlier: Alice collects manga."), turns: &turns };

        let summary = bedrock.summarize(input).await.unwrap();

        assert_eq!(summary, ExtractiveSummarizer::default().summarize_now(input));
        server.abort();
    }

    #[test]
    fn the_prompt_carries_the_previous_summary_and_each_turn() {
        let turns = turns();
        let text = prompt(SummaryInput { previous: Some("Alice likes fantasy."), turns: &turns }, 1_000);
        assert!(text.contains("Alice likes fantasy."));
        assert!(text.contains("[1] user (intent: availability): Is volume 3 of Frieren in stock?"));
        assert!(text.contains("at most 1000 characters"));
    }
}
