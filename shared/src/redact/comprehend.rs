//! `REDACTOR=comprehend`: the offline detector first, then Amazon Comprehend
//! `DetectPiiEntities` (English) on what is left, for what the offline rules miss. Card
//! numbers the offline detector finds never leave the function. Any error, throttling or
//! timeout keeps the offline result and logs the error's kind, never the text.
use std::time::Duration;

use aws_sdk_comprehend::config::retry::RetryConfig;
use aws_sdk_comprehend::config::timeout::TimeoutConfig;
use aws_sdk_comprehend::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_comprehend::types::{LanguageCode, PiiEntity, PiiEntityType};
use aws_sdk_comprehend::Client;

use super::offline::placeholder;
use super::{Kind, Kinds, OfflineRedactor, OrderNumbers, Redacted, Redactions, Redactor};

/// Entities Comprehend is less sure of are left alone: precision over recall.
const MIN_SCORE: f32 = 0.8;
/// DetectPiiEntities takes at most 100 KB of UTF-8.
const MAX_TEXT_BYTES: usize = 100_000;

#[derive(Debug, Clone)]
pub struct ComprehendRedactor {
    client: Client,
    offline: OfflineRedactor,
    timeout: Duration,
}

impl ComprehendRedactor {
    pub fn new(client: Client, offline: OfflineRedactor, timeout: Duration) -> Self {
        ComprehendRedactor { client, offline, timeout }
    }

    /// A client from the environment's AWS configuration, with the timeout and one retry.
    pub async fn from_env(offline: OfflineRedactor, timeout: Duration) -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let config = aws_sdk_comprehend::config::Builder::from(&shared)
            .timeout_config(TimeoutConfig::builder().operation_timeout(timeout).build())
            .retry_config(RetryConfig::standard().with_max_attempts(2))
            .build();
        Self::new(Client::from_conf(config), offline, timeout)
    }

    async fn entities(&self, text: &str) -> Result<Vec<PiiEntity>, String> {
        let output = self
            .client
            .detect_pii_entities()
            .text(text)
            .language_code(LanguageCode::En)
            .send()
            .await
            .map_err(|e| failure_kind(&e))?;
        Ok(output.entities.unwrap_or_default())
    }
}

impl Redactor for ComprehendRedactor {
    fn kinds(&self) -> Kinds {
        self.offline.kinds()
    }

    async fn redact(&self, text: &str, orders: &OrderNumbers) -> Redacted {
        let offline = self.offline.redact_now(text, orders);
        // Every kind it looks for holds a digit or an @; most chat text is not worth a call.
        let worth_asking = offline.text.bytes().any(|b| b.is_ascii_digit() || b == b'@');
        if self.kinds().is_empty() || !worth_asking {
            return offline;
        }
        let failure = if offline.text.len() > MAX_TEXT_BYTES {
            format!("text over {MAX_TEXT_BYTES} bytes")
        } else {
            match tokio::time::timeout(self.timeout, self.entities(&offline.text)).await {
                Ok(Ok(entities)) => {
                    let (text, found) = apply_entities(&offline.text, &entities, self.kinds(), orders);
                    if found.is_empty() {
                        return offline;
                    }
                    let mut counts = offline.counts;
                    counts += found;
                    return Redacted { text, counts };
                }
                Ok(Err(kind)) => kind,
                Err(_) => format!("no answer within {} ms", self.timeout.as_millis()),
            }
        };
        tracing::warn!(error = %failure, "comprehend redaction failed; used the offline detector");
        offline
    }
}

/// What went wrong, without the text: service errors by code, the rest by kind.
fn failure_kind<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    match error {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("unknown service error").to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "dispatch failure (no connection)".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request construction failure".to_owned(),
        _ => "unknown error".to_owned(),
    }
}

fn kind_of(entity_type: &PiiEntityType) -> Option<Kind> {
    match entity_type {
        PiiEntityType::CreditDebitNumber => Some(Kind::Card),
        PiiEntityType::InternationalBankAccountNumber => Some(Kind::Iban),
        PiiEntityType::Email => Some(Kind::Email),
        PiiEntityType::Phone => Some(Kind::Phone),
        _ => None,
    }
}

/// Replaces the entities of the enabled kinds. Offsets count characters (code points); an
/// entity out of range, over a placeholder, overlapping another, or not shaped like its kind
/// (a card with fewer than 12 digits, an e-mail without `@`, a declared order number) is
/// left alone.
pub(crate) fn apply_entities(text: &str, entities: &[PiiEntity], kinds: Kinds, orders: &OrderNumbers) -> (String, Redactions) {
    let boundaries: Vec<usize> = text.char_indices().map(|(at, _)| at).chain([text.len()]).collect();
    let mut spans: Vec<(usize, usize, Kind, String)> = entities
        .iter()
        .filter(|e| e.score().is_some_and(|s| s >= MIN_SCORE))
        .filter_map(|e| {
            let kind = kind_of(e.r#type()?).filter(|k| kinds.contains(*k))?;
            let start = *boundaries.get(usize::try_from(e.begin_offset()?).ok()?)?;
            let end = *boundaries.get(usize::try_from(e.end_offset()?).ok()?)?;
            let span = text.get(start..end).filter(|s| !s.is_empty())?;
            if span.contains(['[', ']', '•']) {
                return None;
            }
            let digits: String = span.chars().filter(char::is_ascii_digit).collect();
            let last_four = match kind {
                Kind::Card if digits.len() >= 12 => digits[digits.len() - 4..].to_owned(),
                Kind::Card => return None,
                Kind::Email if !span.contains('@') => return None,
                Kind::Phone if orders.contains(&digits) => return None,
                _ => String::new(),
            };
            Some((start, end, kind, last_four))
        })
        .collect();
    spans.sort_by_key(|s| s.0);

    let mut out = String::with_capacity(text.len());
    let mut counts = Redactions::default();
    let mut copied = 0;
    for (start, end, kind, last_four) in spans {
        if start < copied {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(&placeholder(kind, &last_four));
        counts.add(kind);
        copied = end;
    }
    out.push_str(&text[copied..]);
    (out, counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(kind: PiiEntityType, begin: i32, end: i32, score: f32) -> PiiEntity {
        PiiEntity::builder().r#type(kind).begin_offset(begin).end_offset(end).score(score).build()
    }

    #[test]
    fn entities_of_enabled_kinds_are_replaced_by_character_offsets() {
        // "é" is two bytes: offsets count characters.
        let text = "Élodie: jane at example dot com, 555 0199, card 4111 1111 1111 1112";
        let entities = [
            entity(PiiEntityType::Email, 8, 31, 0.95),
            entity(PiiEntityType::Phone, 33, 41, 0.99),
            entity(PiiEntityType::CreditDebitNumber, 48, 67, 0.99),
            entity(PiiEntityType::Name, 0, 6, 0.99),
        ];

        let (redacted, counts) = apply_entities(text, &entities, Kinds::ALL, &OrderNumbers::default());

        // The e-mail has no @, so it stays; the rest is replaced.
        assert_eq!(redacted, "Élodie: jane at example dot com, [phone], card [card ••••1112]");
        assert_eq!((counts.phone, counts.card, counts.email), (1, 1, 0));
    }

    #[test]
    fn disabled_kinds_low_scores_placeholders_and_bad_offsets_are_left_alone() {
        let text = "call 0612345678 or [card ••••1111]";
        let entities = [
            entity(PiiEntityType::Phone, 5, 15, 0.99),
            entity(PiiEntityType::CreditDebitNumber, 19, 34, 0.99),
            entity(PiiEntityType::Phone, 5, 15, 0.5),
            entity(PiiEntityType::Phone, 30, 90, 0.99),
            entity(PiiEntityType::Phone, -1, 3, 0.99),
        ];
        let (redacted, counts) = apply_entities(text, &entities, Kinds::DEFAULT, &OrderNumbers::default());
        assert_eq!((redacted.as_str(), counts), (text, Redactions::default()));

        let (redacted, _) = apply_entities(text, &entities[..1], Kinds::ALL, &OrderNumbers::from_numbers(["0612345678"]));
        assert_eq!(redacted, text);
    }

    #[test]
    fn overlapping_entities_are_replaced_once() {
        let text = "mail jane@example.com now";
        let entities = [entity(PiiEntityType::Email, 5, 21, 0.99), entity(PiiEntityType::Email, 10, 21, 0.9)];
        let (redacted, counts) = apply_entities(text, &entities, Kinds::ALL, &OrderNumbers::default());
        assert_eq!((redacted.as_str(), counts.email), ("mail [email] now", 1));
    }
}
