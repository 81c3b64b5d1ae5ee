//! Privacy at write time: card numbers, IBANs, e-mail addresses and phone numbers are
//! replaced by placeholders before a turn or a page context is written, so the original
//! never reaches the table, its stream, its backups, the summaries or the exports.
//!
//! - [`OfflineRedactor`] (`REDACTOR=offline`, the default): deterministic, pure Rust, no
//!   network; what it finds is described in [`offline`].
//! - `ComprehendRedactor` (`REDACTOR=comprehend`, cargo feature `comprehend`): the offline
//!   detector, then Amazon Comprehend `DetectPiiEntities` on what is left, within a timeout;
//!   any error or timeout keeps the offline result and logs that it did.
//!
//! The handlers call [`redact_turn`] and [`redact_page_context`] before the store; the append
//! answer reports the counts ([`Redactions`]), never the values. Nothing here logs text.
use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::model::TurnDraft;
use crate::{positive_number, Error};

#[cfg(feature = "comprehend")]
mod comprehend;
pub mod offline;

#[cfg(feature = "comprehend")]
pub use comprehend::ComprehendRedactor;
pub use offline::redact_text;
pub use crate::model::Redactions;

/// A kind of personal data the redactors replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A payment card number (PAN): `[card ••••1234]`, keeping the last four digits.
    Card,
    /// An IBAN: `[iban]`.
    Iban,
    /// An e-mail address: `[email]`.
    Email,
    /// A phone number: `[phone]`.
    Phone,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Card, Kind::Iban, Kind::Email, Kind::Phone];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Card => "card",
            Kind::Iban => "iban",
            Kind::Email => "email",
            Kind::Phone => "phone",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The kinds to redact: `REDACT`, a comma-separated list (`card,iban` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds(u8);

impl Kinds {
    pub const NONE: Kinds = Kinds(0);
    pub const DEFAULT: Kinds = Kinds(1 << Kind::Card as u8 | 1 << Kind::Iban as u8);
    pub const ALL: Kinds = Kinds(0b1111);

    /// Reads `card,iban,email,phone` (any order, spaces allowed); an empty list is none.
    pub fn parse(list: &str) -> Result<Kinds, Error> {
        let mut kinds = Kinds::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let kind = Kind::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name)).ok_or_else(|| {
                Error::Validation(format!("REDACT lists card, iban, email or phone; {name:?} is none of them"))
            })?;
            kinds.0 |= kind.bit();
        }
        Ok(kinds)
    }

    pub fn contains(self, kind: Kind) -> bool {
        self.0 & kind.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Default for Kinds {
    fn default() -> Self {
        Kinds::DEFAULT
    }
}

impl fmt::Display for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Kind::ALL.into_iter().filter(|k| self.contains(*k)).map(Kind::name).collect();
        f.write_str(&names.join(","))
    }
}

/// The counts a redaction reports ([`Redactions`], a wire type of [`crate::model`]), by kind.
impl Redactions {
    pub fn add(&mut self, kind: Kind) {
        *self.count_mut(kind) += 1;
    }

    pub fn of(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Card => self.card,
            Kind::Iban => self.iban,
            Kind::Email => self.email,
            Kind::Phone => self.phone,
        }
    }

    fn count_mut(&mut self, kind: Kind) -> &mut u32 {
        match kind {
            Kind::Card => &mut self.card,
            Kind::Iban => &mut self.iban,
            Kind::Email => &mut self.email,
            Kind::Phone => &mut self.phone,
        }
    }

    /// One log line with the counts, never the text.
    fn log(&self, what: &'static str) {
        if !self.is_empty() {
            tracing::info!(what, card = self.card, iban = self.iban, email = self.email, phone = self.phone, "redacted");
        }
    }
}

/// Numbers a page context declares as order numbers: the digits of every value under a key
/// that names orders (`order`, `order_id`, `orders`, `lastOrderNumber`, ...). A phone-like
/// number equal to one of them is left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderNumbers(BTreeSet<String>);

impl OrderNumbers {
    pub fn declared_in(page_context: &Map<String, Value>) -> OrderNumbers {
        let mut numbers = OrderNumbers::default();
        for (key, value) in page_context {
            numbers.collect(value, names_orders(key));
        }
        numbers
    }

    /// The given numbers, as written (only their digits count).
    pub fn from_numbers<'a>(numbers: impl IntoIterator<Item = &'a str>) -> OrderNumbers {
        let mut declared = OrderNumbers::default();
        for number in numbers {
            declared.insert(number);
        }
        declared
    }

    /// Whether `digits` (digits only) is a declared order number.
    pub fn contains(&self, digits: &str) -> bool {
        self.0.contains(digits)
    }

    fn insert(&mut self, written: &str) {
        let digits: String = written.chars().filter(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            self.0.insert(digits);
        }
    }

    fn collect(&mut self, value: &Value, under_orders: bool) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    self.collect(value, under_orders || names_orders(key));
                }
            }
            Value::Array(values) => values.iter().for_each(|v| self.collect(v, under_orders)),
            Value::String(s) if under_orders => self.insert(s),
            Value::Number(n) if under_orders => self.insert(&n.to_string()),
            _ => {}
        }
    }
}

/// `order_id`, `orderNumber`, `ORDERS`, `last-order`: a word of the key starts with "order".
fn names_orders(key: &str) -> bool {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() || (c.is_uppercase() && previous_lower) {
            words.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        }
        previous_lower = c.is_lowercase();
    }
    words.push(word);
    words.iter().any(|w| w.starts_with("order"))
}

/// What a redactor made of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    /// The text to store.
    pub text: String,
    /// What was replaced.
    pub counts: Redactions,
}

/// Replaces personal data in text. Never fails: a redactor that calls a service falls back
/// to the offline detector.
pub trait Redactor {
    /// The kinds it replaces.
    fn kinds(&self) -> Kinds;

    fn redact(&self, text: &str, orders: &OrderNumbers) -> impl Future<Output = Redacted> + Send;
}

/// The offline detector ([`offline`]) as a [`Redactor`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfflineRedactor {
    kinds: Kinds,
}

impl OfflineRedactor {
    pub fn new(kinds: Kinds) -> Self {
        OfflineRedactor { kinds }
    }

    pub fn redact_now(&self, text: &str, orders: &OrderNumbers) -> Redacted {
        let (redacted, counts) = redact_text(text, self.kinds, orders);
        Redacted { text: redacted.into_owned(), counts }
    }
}

impl Redactor for OfflineRedactor {
    fn kinds(&self) -> Kinds {
        self.kinds
    }

    async fn redact(&self, text: &str, orders: &OrderNumbers) -> Redacted {
        self.redact_now(text, orders)
    }
}

/// `REDACTOR`: which redactor the functions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedactorChoice {
    #[default]
    Offline,
    Comprehend,
}

pub const DEFAULT_COMPREHEND_TIMEOUT: Duration = Duration::from_millis(1_000);

/// Redaction settings, read once at start-up by the functions that write text.
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `REDACT` | `card,iban` | kinds to redact, comma-separated: `card`, `iban`, `email`, `phone`; empty for none |
/// | `REDACTOR` | `offline` | `offline`, or `comprehend` (Amazon Comprehend, then the offline detector) |
/// | `COMPREHEND_TIMEOUT_MS` | `1000` | after this, a Comprehend call is given up and the offline result kept |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedactSettings {
    pub kinds: Kinds,
    pub redactor: RedactorChoice,
    pub comprehend_timeout: Duration,
}

impl Default for RedactSettings {
    fn default() -> Self {
        RedactSettings {
            kinds: Kinds::DEFAULT,
            redactor: RedactorChoice::Offline,
            comprehend_timeout: DEFAULT_COMPREHEND_TIMEOUT,
        }
    }
}

impl RedactSettings {
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let kinds = match lookup("REDACT") {
            None => Kinds::DEFAULT,
            Some(list) => Kinds::parse(&list)?,
        };
        let redactor = match lookup("REDACTOR").as_deref().map(str::trim) {
            None | Some("") | Some("offline") => RedactorChoice::Offline,
            Some("comprehend") => RedactorChoice::Comprehend,
            Some(other) => {
                return Err(Error::Validation(format!(
                    "REDACTOR must be \"offline\" or \"comprehend\", got {other:?}"
                )))
            }
        };
        let timeout_ms = positive_number(&lookup, "COMPREHEND_TIMEOUT_MS", DEFAULT_COMPREHEND_TIMEOUT.as_millis() as u64)?;
        Ok(RedactSettings { kinds, redactor, comprehend_timeout: Duration::from_millis(timeout_ms) })
    }

    /// Builds the redactor. Comprehend's client comes from the environment's AWS configuration
    /// (`AWS_ENDPOINT_URL_COMPREHEND` overrides its endpoint).
    pub async fn build(self) -> Result<AnyRedactor, Error> {
        let offline = OfflineRedactor::new(self.kinds);
        tracing::info!(kinds = %self.kinds, redactor = ?self.redactor, "redaction configured");
        match self.redactor {
            RedactorChoice::Offline => Ok(AnyRedactor::Offline(offline)),
            #[cfg(feature = "comprehend")]
            RedactorChoice::Comprehend => {
                Ok(AnyRedactor::Comprehend(ComprehendRedactor::from_env(offline, self.comprehend_timeout).await))
            }
            #[cfg(not(feature = "comprehend"))]
            RedactorChoice::Comprehend => {
                Err(Error::Validation("REDACTOR=comprehend needs tidewater's `comprehend` feature".to_owned()))
            }
        }
    }
}

/// The redactor the environment chose.
#[derive(Debug, Clone)]
pub enum AnyRedactor {
    Offline(OfflineRedactor),
    #[cfg(feature = "comprehend")]
    Comprehend(ComprehendRedactor),
}

impl AnyRedactor {
    /// Reads [`RedactSettings`] from the environment and builds the redactor.
    pub async fn from_env() -> Result<Self, Error> {
        RedactSettings::from_env()?.build().await
    }
}

impl Redactor for AnyRedactor {
    fn kinds(&self) -> Kinds {
        match self {
            AnyRedactor::Offline(r) => r.kinds(),
            #[cfg(feature = "comprehend")]
            AnyRedactor::Comprehend(r) => r.kinds(),
        }
    }

    async fn redact(&self, text: &str, orders: &OrderNumbers) -> Redacted {
        match self {
            AnyRedactor::Offline(r) => r.redact(text, orders).await,
            #[cfg(feature = "comprehend")]
            AnyRedactor::Comprehend(r) => r.redact(text, orders).await,
        }
    }
}

/// Whether [`redact_turn`] needs the session's declared order numbers: only with `phone`
/// enabled. The append handler then reads the page context ([`crate::PageContextReader`]:
/// one eventually consistent GetItem, 0.5 RCU) and passes its [`OrderNumbers`]; a failed
/// read is the append's 503.
pub fn needs_order_numbers<R: Redactor>(redactor: &R) -> bool {
    redactor.kinds().contains(Kind::Phone)
}

/// Redacts a turn's content, and every string of its `item` as [`redact_page_context`] does,
/// before it is appended. The idempotency digest is taken over the content and item as sent
/// (kept in `hashed_content` and `hashed_item`, never stored), under the hash key: a retry of
/// the same original is a duplicate whatever this redaction saw, and the digest cannot be
/// tested against guesses of what was redacted. `orders` are the numbers the session's page
/// context declares ([`OrderNumbers::declared_in`]); see [`needs_order_numbers`].
pub async fn redact_turn<R: Redactor>(redactor: &R, orders: &OrderNumbers, mut turn: TurnDraft) -> (TurnDraft, Redactions) {
    if redactor.kinds().is_empty() {
        return (turn, Redactions::default());
    }
    let redacted = redactor.redact(&turn.content, orders).await;
    redacted.counts.log("turn content");
    let sent = std::mem::replace(&mut turn.content, redacted.text);
    if sent != turn.content {
        turn.hashed_content = Some(sent);
    }
    let mut counts = redacted.counts;
    if let Some(item) = turn.item.as_mut() {
        turn.hashed_item = Some(Value::Object(item.clone()).to_string());
        let in_item = redact_json(redactor, item, orders).await;
        in_item.log("turn item");
        counts += in_item;
    }
    (turn, counts)
}

/// Joins a page context's strings for one redaction call. No detector matches across it.
const JOIN: &str = "\n\u{1f}\n";

/// Redacts every string value of a page context, at any depth, and every integer long enough
/// to be a card or phone number (one that is redacted becomes a string). Numbers the page
/// context declares as orders are not phone numbers. Keys are left as they are.
pub async fn redact_page_context<R: Redactor>(redactor: &R, page_context: &mut Map<String, Value>) -> Redactions {
    if redactor.kinds().is_empty() {
        return Redactions::default();
    }
    let orders = OrderNumbers::declared_in(page_context);
    let counts = redact_json(redactor, page_context, &orders).await;
    counts.log("page context");
    counts
}

/// Redacts a JSON object as [`redact_page_context`] does, with the order numbers given.
async fn redact_json<R: Redactor>(redactor: &R, object: &mut Map<String, Value>, orders: &OrderNumbers) -> Redactions {
    let mut slots = Vec::new();
    object.values_mut().for_each(|v| text_slots(v, &mut slots));
    let texts: Vec<String> = slots.iter().map(|slot| slot_text(slot)).collect();
    if texts.is_empty() {
        return Redactions::default();
    }

    // One call for the whole context, unless a string holds the joiner or the answer does not
    // split back into as many strings.
    let mut redacted_texts = Vec::with_capacity(texts.len());
    let mut counts = Redactions::default();
    if texts.iter().all(|t| !t.contains('\u{1f}')) {
        let redacted = redactor.redact(&texts.join(JOIN), orders).await;
        if redacted.text.split(JOIN).count() == texts.len() {
            redacted_texts.extend(redacted.text.split(JOIN).map(str::to_owned));
            counts = redacted.counts;
        }
    }
    if redacted_texts.is_empty() {
        for text in &texts {
            let redacted = redactor.redact(text, orders).await;
            counts += redacted.counts;
            redacted_texts.push(redacted.text);
        }
    }
    for ((slot, before), after) in slots.into_iter().zip(&texts).zip(redacted_texts) {
        if *before != after {
            *slot = Value::String(after);
        }
    }
    counts
}

/// The shortest integer that can hold a phone number; shorter ones are left alone.
const MIN_REDACTABLE_INTEGER_DIGITS: usize = 9;

fn text_slots<'a>(value: &'a mut Value, slots: &mut Vec<&'a mut Value>) {
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| text_slots(v, slots)),
        Value::Array(values) => values.iter_mut().for_each(|v| text_slots(v, slots)),
        Value::String(_) => slots.push(value),
        Value::Number(n) if n.is_u64() && n.to_string().len() >= MIN_REDACTABLE_INTEGER_DIGITS => slots.push(value),
        _ => {}
    }
}

fn slot_text(slot: &Value) -> String {
    match slot {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<RedactSettings, Error> {
        RedactSettings::from_lookup(|name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn the_default_is_cards_and_ibans_offline() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.kinds, s.redactor), (Kinds::DEFAULT, RedactorChoice::Offline));
        assert_eq!(s.kinds.to_string(), "card,iban");
        assert_eq!(s.comprehend_timeout, DEFAULT_COMPREHEND_TIMEOUT);
    }

    #[test]
    fn redact_lists_kinds_and_an_empty_list_is_none() {
        assert_eq!(settings(&[("REDACT", "card,iban,email,phone")]).unwrap().kinds, Kinds::ALL);
        assert_eq!(settings(&[("REDACT", " Phone , email ")]).unwrap().kinds.to_string(), "email,phone");
        assert_eq!(settings(&[("REDACT", "")]).unwrap().kinds, Kinds::NONE);
        let error = settings(&[("REDACT", "card,ssn")]).unwrap_err();
        assert!(error.to_string().contains("\"ssn\""), "{error}");
    }

    #[test]
    fn redactor_is_offline_or_comprehend() {
        let s = settings(&[("REDACTOR", "comprehend"), ("COMPREHEND_TIMEOUT_MS", "250")]).unwrap();
        assert_eq!((s.redactor, s.comprehend_timeout), (RedactorChoice::Comprehend, Duration::from_millis(250)));
        assert!(settings(&[("REDACTOR", "regex")]).unwrap_err().to_string().contains("REDACTOR"));
        assert!(settings(&[("COMPREHEND_TIMEOUT_MS", "0")]).is_err());
    }

    #[test]
    fn counts_serialise_without_zeros() {
        let mut counts = Redactions::default();
        assert_eq!(serde_json::to_value(counts).unwrap(), json!({}));
        counts.add(Kind::Card);
        counts.add(Kind::Card);
        counts.add(Kind::Phone);
        assert_eq!(serde_json::to_value(counts).unwrap(), json!({"card": 2, "phone": 1}));
    }

    #[test]
    fn keys_that_name_orders_declare_order_numbers() {
        let context = object(json!({
            "page": "/orders/0123456789",
            "order_id": "0123456780",
            "lastOrderNumber": 612345678,
            "ORDERS": ["06-1234-5679", {"ref": "0612345670"}],
            "cart": {"order-no": "ORD 0712 345 678"},
            "border": "0612345671",
            "recorder": "0612345672"
        }));

        let orders = OrderNumbers::declared_in(&context);

        for declared in ["0123456780", "612345678", "0612345679", "0612345670", "0712345678"] {
            assert!(orders.contains(declared), "{declared}");
        }
        for other in ["0123456789", "0612345671", "0612345672"] {
            assert!(!orders.contains(other), "{other}");
        }
    }

    #[tokio::test]
    async fn every_string_of_a_page_context_is_redacted_at_any_depth() {
        let redactor = OfflineRedactor::new(Kinds::ALL);
        let mut context = object(json!({
            "page": "/checkout",
            "note": "card 4111 1111 1111 1111",
            "contact": {"email": "jane@example.com", "phones": ["+44 20 7946 0958", "call 0612345678"]},
            "order_id": "0612345679",
            "saved_pan": 4111111111111111u64,
            "cart_items": 2,
            "vip": true
        }));

        let counts = redact_page_context(&redactor, &mut context).await;

        assert_eq!(
            Value::Object(context),
            json!({
                "page": "/checkout",
                "note": "card [card ••••1111]",
                "contact": {"email": "[email]", "phones": ["[phone]", "call [phone]"]},
                "order_id": "0612345679",
                "saved_pan": "[card ••••1111]",
                "cart_items": 2,
                "vip": true
            })
        );
        assert_eq!((counts.card, counts.email, counts.phone, counts.iban), (2, 1, 2, 0));
    }

    #[tokio::test]
    async fn a_string_holding_the_joiner_is_redacted_on_its_own() {
        let redactor = OfflineRedactor::new(Kinds::DEFAULT);
        let mut context = object(json!({"a": "x\n\u{1f}\n4111111111111111", "b": "5105105105105100"}));

        let counts = redact_page_context(&redactor, &mut context).await;

        assert_eq!(Value::Object(context), json!({"a": "x\n\u{1f}\n[card ••••1111]", "b": "[card ••••5100]"}));
        assert_eq!(counts.card, 2);
    }

    #[tokio::test]
    async fn with_no_kinds_nothing_changes() {
        let redactor = OfflineRedactor::new(Kinds::NONE);
        let original = object(json!({"note": "4111111111111111"}));
        let mut context = original.clone();
        assert!(redact_page_context(&redactor, &mut context).await.is_empty());
        assert_eq!(context, original);
    }
}
