//! Redaction's cost: the offline detector alone, per KB of content, and the warm append-turn
//! handler with redaction off, at its default (`card,iban`) and with every kind, in-process
//! against DynamoDB Local.
use std::hint::black_box;
use std::time::Instant;

use tidewater::model::Role;
use tidewater::redact::{redact_text, Kinds, OrderNumbers};
use tidewater::{Caller, DynamoStore, NewSession, OfflineRedactor, SessionCreator};

use crate::BoxError;
use crate::{DETECTOR_CALLS, REDACT_APPEND_ROUNDS};
use crate::events::api_event;
use crate::report::{Report, Status};
use crate::seed::Chat;
use crate::silence::Silenced;
use crate::stats::Samples;

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

pub(crate) async fn redaction_cost(store: &DynamoStore, report: &mut Report) -> Result<(), BoxError> {
    use tidewater::redact::Kinds;
    let clean = chat_text(17, 1_024);
    let personal = text_with_personal_data(17, 1_024);
    let large = chat_text(19, 64 * 1_024);
    let per_kb = |text: &str, kinds: Kinds| {
        detector(text, kinds, DETECTOR_CALLS).median() / (text.len() as f64 / 1_024.0)
    };
    let cases = [
        ("default_chat", "offline detector, card,iban, 1 KB of chat text", &clean, Kinds::DEFAULT),
        ("default_personal", "offline detector, card,iban, 1 KB with a card, IBAN, e-mail and phone", &personal, Kinds::DEFAULT),
        ("all_chat", "offline detector, every kind, 1 KB of chat text", &clean, Kinds::ALL),
        ("all_personal", "offline detector, every kind, 1 KB with a card, IBAN, e-mail and phone", &personal, Kinds::ALL),
        ("all_64k", "offline detector, every kind, 64 KiB of chat text", &large, Kinds::ALL),
    ];
    let mut worst_1kb: f64 = 0.0;
    for (key, label, text, kinds) in cases {
        let us = report.figure(&format!("redact.{key}_us_per_kb"), &format!("{label}, per KB, p50"), per_kb(text, kinds), "µs");
        if !key.ends_with("64k") {
            worst_1kb = worst_1kb.max(us);
        }
    }

    let a = append_latency(store, REDACT_APPEND_ROUNDS).await?;
    let none = report.figure("redact.append_none_p50_ms", "append-turn handler, REDACT= (none), 1 KB, p50", a.none.median(), "ms");
    let default = report.figure("redact.append_default_p50_ms", "append-turn handler, card,iban, p50", a.default.median(), "ms");
    let all = report.figure("redact.append_all_p50_ms", "append-turn handler, every kind (adds a GetItem), p50", a.all.median(), "ms");
    let share = worst_1kb / 1_000.0 / none;
    report.figure("redact.detector_share_of_append_p50", "offline detector on a 1 KB turn / append p50", share * 100.0, "%");
    report.check(
        "Redaction",
        "offline detector on a 1 KB turn, against the warm append-turn handler's p50",
        "≤ 5 % of the append p50",
        format!(
            "{:.2} % ({:.1} µs of {:.2} ms, worst 1 KB case)",
            share * 100.0,
            worst_1kb,
            none
        ),
        Status::of(share <= 0.05),
        format!(
            "The detector alone, median of {DETECTOR_CALLS} calls per text after 200 untimed ones, beside the append-turn \
             handler in-process ({REDACT_APPEND_ROUNDS} interleaved rounds, 1 KB turns, guest sessions, DynamoDB Local): \
             p50 {none:.2} ms without redaction, {default:.2} ms with card,iban, {all:.2} ms with every kind, which also \
             reads the session's page context for its order numbers (one GetItem). The handler figures differ by \
             less than their noise; the detector's own time is the figure the budget is checked on."
        ),
    );
    Ok(())
}
