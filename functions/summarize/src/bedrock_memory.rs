//! Long-term facts from Amazon Bedrock: the Converse API with structured output (the JSON
//! Schema [`FACTS_JSON_SCHEMA`]), and the answer validated against the window it was given.
//! Any error, timeout or invalid answer falls back to the offline extraction, and says so in
//! the log. The model must support Converse's structured output (`outputConfig`); with one
//! that does not, every window falls back.
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, InferenceConfiguration, JsonSchemaDefinition, Message,
    OutputConfig, OutputFormat, OutputFormatStructure, OutputFormatType, SystemContentBlock,
};
use tidewater::memory::{self, FACTS_JSON_SCHEMA};
use tidewater::{FactDraft, Role, Turn};
use uuid::Uuid;

use crate::bedrock::{answer_text, error_chain};
use crate::BedrockSummarizer;

const FACTS_PROMPT: &str = "You keep a shop's long-term memory of one customer. From the customer's turns, list \
only durable facts the customer states about themself: what they like or dislike (kind \"preference\"; for a \
reading format such as digital or paperback the subject is \"format\"), titles they own or have already read (kind \
\"owns\"; the subject is the title), and the language they read in (kind \"profile\", subject \"language\"). \
Never guess, never take facts from questions or from the assistant's turns, and never keep contact, payment or \
address details. Each text is short and in the third person, such as \"prefers digital\" or \"owns volumes 1-3 of \
Frieren\". from_turn and to_turn are the numbers of the customer turns that state the fact. Answer with the JSON \
object only; an empty list when there is nothing durable.";

/// Facts in one answer take well under this many tokens.
const MAX_ANSWER_TOKENS: i32 = 1_500;

impl BedrockSummarizer {
    /// The window's facts as the model reads them, or the offline extraction when the model
    /// fails, is late, or answers outside the schema.
    pub async fn extract_facts_with_model(&self, session_id: Uuid, turns: &[Turn]) -> Vec<FactDraft> {
        let failure = match tokio::time::timeout(self.timeout, self.converse_facts(session_id, turns)).await {
            Ok(Ok(facts)) => return facts,
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
        };
        tracing::warn!(model_id = %self.model_id, error = %failure, "bedrock fact extraction failed; used the offline extraction");
        tidewater::summarizer::facts::extract(session_id, turns)
    }

    async fn converse_facts(&self, session_id: Uuid, turns: &[Turn]) -> Result<Vec<FactDraft>, String> {
        if !turns.iter().any(|t| t.role == Role::User) {
            return Ok(Vec::new());
        }
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(facts_prompt(turns)))
            .build()
            .map_err(|e| error_chain(&e))?;
        let schema = JsonSchemaDefinition::builder()
            .name("customer_facts")
            .schema(FACTS_JSON_SCHEMA)
            .build()
            .map_err(|e| error_chain(&e))?;
        let format = OutputFormat::builder()
            .r#type(OutputFormatType::JsonSchema)
            .structure(OutputFormatStructure::JsonSchema(schema))
            .build()
            .map_err(|e| error_chain(&e))?;
        let output = self
            .client
            .converse()
            .model_id(&self.model_id)
            .system(SystemContentBlock::Text(FACTS_PROMPT.to_owned()))
            .messages(message)
            .inference_config(InferenceConfiguration::builder().max_tokens(MAX_ANSWER_TOKENS).temperature(0.0).build())
            .output_config(OutputConfig::builder().text_format(format).build())
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        memory::facts_from_model_json(&answer_text(output.output), session_id, turns)
    }
}

/// The user message: the window's turns, numbered, the assistant's kept for context.
fn facts_prompt(turns: &[Turn]) -> String {
    let mut text = String::from("Turns:\n");
    for turn in turns {
        text.push_str(&format!("[{}] {}: {}\n", turn.turn_index, turn.role.as_str(), turn.content));
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_bedrockruntime::Client;
    use tidewater::ExtractiveSummarizer;

    use super::*;

    const SESSION: Uuid = Uuid::from_u128(7);

    fn window() -> Vec<Turn> {
        let turn = |turn_index: u64, role: Role, content: &str| Turn {
            turn_index,
            role,
            content: content.to_owned(),
            intent: None,
            token_count: None,
            created_at: format!("2026-11-26T19:00:{turn_index:02}.000Z"),
            item: None,
            retracted_at: None,
        };
        vec![
            turn(1, Role::User, "I already read Frieren. I prefer digital."),
            turn(2, Role::Assistant, "Noted! Anything else?"),
        ]
    }

    fn bedrock_at(endpoint: &str) -> BedrockSummarizer {
        let config = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("local", "local", None, None, "test"))
            .endpoint_url(endpoint)
            .build();
        BedrockSummarizer::new(Client::from_conf(config), "test-model", Duration::from_secs(10), ExtractiveSummarizer::default())
    }

    /// A Converse endpoint on loopback that answers every request with `answer` as the
    /// model's text. Returns its URL.
    async fn model_answering(answer: &'static str) -> String {
        let body = serde_json::json!({
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 10, "outputTokens": 10, "totalTokens": 20},
            "metrics": {"latencyMs": 1}
        })
        .to_string();
        let app = axum::Router::new().fallback(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn a_valid_structured_answer_is_used() {
        // Given a model that answers with one fact in the schema
        let url = model_answering(
            r#"{"facts": [{"kind": "owns", "subject": "Frieren", "text": "has read Frieren", "from_turn": 1, "to_turn": 1}]}"#,
        )
        .await;

        // When it extracts the window's facts
        let facts = bedrock_at(&url).extract_facts_with_model(SESSION, &window()).await;

        // Then they are the model's, not the offline extraction's (which also finds the format)
        assert_eq!(facts.len(), 1);
        assert_eq!(facts[0].text, "has read Frieren");
        assert_eq!(facts[0].source.session_id, SESSION);
    }

    #[tokio::test]
    async fn an_answer_outside_the_schema_falls_back_to_the_offline_extraction() {
        // Given a model that names a kind the schema does not have
        let url = model_answering(
            r#"{"facts": [{"kind": "opinion", "subject": "x", "text": "likes x", "from_turn": 1, "to_turn": 1}]}"#,
        )
        .await;

        let facts = bedrock_at(&url).extract_facts_with_model(SESSION, &window()).await;

        assert_eq!(facts, tidewater::summarizer::facts::extract(SESSION, &window()));
        assert_eq!(facts.len(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_model_falls_back_to_the_offline_extraction() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap();

        let facts = bedrock_at(&format!("http://127.0.0.1:{port}")).extract_facts_with_model(SESSION, &window()).await;

        assert_eq!(facts, tidewater::summarizer::facts::extract(SESSION, &window()));
    }
}
