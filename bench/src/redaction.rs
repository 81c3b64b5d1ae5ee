//! Redaction's cost: the offline detector alone, per KB of content, and the warm append-turn
//! handler with redaction off, at its default (`card,iban`) and with every kind, in-process
//! against DynamoDB Local.
use std::hint::black_box;
use std::time::Instant;

use tidewater::model::Role;
use tidewater::redact::{redact_text, Kinds, OrderNumbers};
use tidewater::{Caller, DynamoStore, NewSession, OfflineRedactor, SessionCreator};

use crate::events::api_event;
use crate::seed::Chat;
use crate::silence::Silenced;
use crate::stats::Samples;
use crate::BoxError;

/// What one append of the bench carries besides chat text when it has personal data in it.
pub const PERSONAL_DATA: &str = " My card is 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32, \
mail jane@example.com, phone +44 20 7946 0958.";

/// About `bytes` bytes of chat text, both roles, from a fixed seed.
pub fn chat_text(seed: u64, bytes: usize) -> String {
    let mut chat = Chat::new(seed);
    let mut text = String::with_capacity(bytes);
    let mut role = Role::User;
    while text.len() + 200 < bytes {
        let part = chat.text(role, (bytes - text.len()).min(1_000));
        if part.is_empty() {
            break;
        }
        text.push_str(&part);
        text.push(' ');
        role = if role == Role::User { Role::Assistant } else { Role::User };
    }
    text
}

/// About `bytes` bytes: chat text ending in [`PERSONAL_DATA`].
pub fn text_with_personal_data(seed: u64, bytes: usize) -> String {
    let mut text = chat_text(seed, bytes.saturating_sub(PERSONAL_DATA.len()));
    text.push_str(PERSONAL_DATA);
    text
}

/// Microseconds per call of the offline detector on `text`, `iterations` calls after 200
/// untimed ones.
pub fn detector(text: &str, kinds: Kinds, iterations: usize) -> Samples {
    let orders = OrderNumbers::default();
    let mut samples = Samples::default();
    for i in 0..(200 + iterations) {
        let started = Instant::now();
        let redacted = redact_text(black_box(text), kinds, &orders);
        let took = started.elapsed();
        black_box(redacted);
        if i >= 200 {
            samples.push(took.as_secs_f64() * 1e6);
        }
    }
    samples
}

pub struct AppendLatency {
    /// Milliseconds per append, for `REDACT=` (none), `card,iban` and every kind.
    pub none: Samples,
    pub default: Samples,
    pub all: Samples,
}

/// `rounds` rounds, after 20 untimed ones, each appending one ~1 KB turn of chat text through
/// the append-turn handler with each redactor, to a guest session of its own; the order
/// rotates inside each round. With every kind, the handler also reads the session's page
/// context (phone numbers must not be its order numbers).
pub async fn append_latency(store: &DynamoStore, rounds: usize) -> Result<AppendLatency, BoxError> {
    let _quiet = Silenced::stdout();
    let guest = Caller::new("bench-redact", ["guest"]);
    let redactors = [Kinds::NONE, Kinds::DEFAULT, Kinds::ALL].map(OfflineRedactor::new);
    let mut sessions = Vec::new();
    for _ in &redactors {
        let created = store.create_session(&guest, NewSession { session_id: None, page_context: None }).await?;
        sessions.push(created.session_id);
    }
    let mut samples: [Samples; 3] = Default::default();
    let content = chat_text(23, 1_000);
    for round in 0..(20 + rounds) {
        for step in 0..3 {
            let which = (step + round) % 3;
            let path = format!("/sessions/{}/turns", sessions[which]);
            let body = serde_json::json!({"response_id": format!("r{round}"), "role": "user", "content": content});
            let event = api_event(&guest, "POST", "/sessions/{id}/turns", &path, "", Some(body.to_string()));
            let request = lambda_http::request::from_str(&event)?;
            let started = Instant::now();
            let response = append_turn::handle(store, &redactors[which], store.config(), request).await;
            let took = started.elapsed();
            if response.status() != 201 {
                return Err(format!("append-turn answered {}", response.status()).into());
            }
            if round >= 20 {
                samples[which].push_duration(took);
            }
        }
    }
    let [none, default, all] = samples;
    Ok(AppendLatency { none, default, all })
}
