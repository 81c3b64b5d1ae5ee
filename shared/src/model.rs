//! The domain types: what callers send, and what the store gives back.
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::keyed_hash::HashKey;
use crate::{Config, Error};

/// Who is calling, as the API's JWT authorizer verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: the customer id.
    pub customer_id: String,
    /// The token's `cognito:groups`.
    pub roles: Vec<String>,
}

impl Caller {
    pub fn new(customer_id: impl Into<String>, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Caller { customer_id: customer_id.into(), roles: roles.into_iter().map(Into::into).collect() }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Guests get sessions that never enter the customer index.
    pub fn is_guest(&self) -> bool {
        self.has_role("guest")
    }

    /// Support staff may read any session.
    pub fn is_support(&self) -> bool {
        self.has_role("support")
    }

    /// The privacy team may purge any customer and read any deletion receipt.
    pub fn is_privacy(&self) -> bool {
        self.has_role("privacy")
    }
}

pub const MAX_PAGE_CONTEXT_BYTES: usize = 16 * 1024;
/// Objects and arrays `page_context` may nest, itself included. DynamoDB would store 31, but
/// the SDK reads nested attribute values back recursively: at 22 levels a debug build (as
/// `make run` serves) overflows a 2 MiB thread stack loading the session. 16 keeps a margin.
pub const MAX_PAGE_CONTEXT_NESTING: usize = 16;

/// Body of `POST /sessions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    #[serde(default, deserialize_with = "optional_hyphenated_uuid")]
    pub session_id: Option<Uuid>,
    pub page_context: Option<Map<String, Value>>,
}

impl NewSession {
    pub fn validate(&self) -> Result<(), Error> {
        validate_page_context(self.page_context.as_ref())
    }
}

/// 413 over [`MAX_PAGE_CONTEXT_BYTES`]; 422 for nesting deeper than [`MAX_PAGE_CONTEXT_NESTING`]
/// or a value DynamoDB cannot store (see [`crate::storable`]).
pub(crate) fn validate_page_context(page_context: Option<&Map<String, Value>>) -> Result<(), Error> {
    let Some(page_context) = page_context else {
        return Ok(());
    };
    let size = serde_json::to_vec(page_context).map(|json| json.len()).unwrap_or(usize::MAX);
    if size > MAX_PAGE_CONTEXT_BYTES {
        return Err(Error::TooLarge(format!(
            "page_context is {size} bytes; the limit is {MAX_PAGE_CONTEXT_BYTES}"
        )));
    }
    crate::storable::check_map("page_context", page_context, MAX_PAGE_CONTEXT_NESTING).map_err(Error::Validation)
}

/// A UUID in its hyphenated form (`8-4-4-4-12` hex digits, either case), the only form JSON
/// Schema's `format: uuid` allows; the simple, braced and `urn:uuid:` forms give `None`.
pub fn hyphenated_uuid(raw: &str) -> Option<Uuid> {
    // Of the forms `Uuid::parse_str` reads, only the hyphenated one is 36 characters long.
    (raw.len() == 36).then(|| Uuid::parse_str(raw).ok()).flatten()
}

fn optional_hyphenated_uuid<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Uuid>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(raw) => hyphenated_uuid(&raw).map(Some).ok_or_else(|| D::Error::custom("session_id is not a hyphenated UUID")),
    }
}

/// An integer as JSON Schema counts one: `5` and `5.0` alike. An integral value beyond
/// `i64` saturates, so that validation reports it as out of range; `5.5` is a type error.
fn optional_json_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let Some(number) = Option::<serde_json::Number>::deserialize(deserializer)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    if number.is_u64() {
        return Ok(Some(i64::MAX));
    }
    match number.as_f64() {
        // `as` saturates at the bounds of i64.
        Some(float) if float.fract() == 0.0 => Ok(Some(float as i64)),
        _ => Err(D::Error::custom(format!("{number} is not an integer"))),
    }
}

/// Answer of a session creation. `created` is false when a retry found the same owner's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionCreated {
    pub session_id: Uuid,
    pub created_at: String,
    pub expires_at: String,
    #[serde(skip)]
    pub created: bool,
}

/// Who wrote a turn: the customer, the assistant, the system prompt, or a tool the assistant
/// called (its result). Summaries and memory read the customer's and the assistant's turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    pub fn parse(role: &str) -> Option<Role> {
        match role {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "system" => Some(Role::System),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }
}

pub const MAX_RESPONSE_ID_LEN: usize = 128;
pub const MAX_TOKEN_COUNT: i64 = 1_000_000;
pub const MAX_INTENT_LEN: usize = 256;
/// A turn's `item`: a framework's own record of the message (a tool call with its id, a tool
/// result), stored as sent. At most 64 KiB of JSON, under the same storage rules as
/// `page_context` ([`crate::storable`]).
pub const MAX_ITEM_BYTES: usize = 64 * 1024;

/// Body of `POST /sessions/{id}/turns`, as sent. [`NewTurn::validate`] turns it into a [`TurnDraft`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTurn {
    pub response_id: String,
    pub role: String,
    pub content: String,
    pub intent: Option<String>,
    #[serde(default, deserialize_with = "optional_json_integer")]
    pub token_count: Option<i64>,
    pub item: Option<Map<String, Value>>,
}

/// A turn that passed validation, ready to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnDraft {
    pub response_id: String,
    pub role: Role,
    pub content: String,
    pub intent: Option<String>,
    pub token_count: Option<u32>,
    /// The framework's record of the turn, redacted like `page_context`.
    pub item: Option<Map<String, Value>>,
    /// The content as the client sent it, when redaction changed `content`: the idempotency
    /// digest is taken over it ([`TurnDraft::payload_hash`]). It is never stored.
    pub hashed_content: Option<String>,
    /// The item as the client sent it, serialised, when it has one: the idempotency digest is
    /// taken over it. It is never stored.
    pub hashed_item: Option<String>,
}

impl NewTurn {
    /// Checks every rule of an append: 422 for a broken rule, 413 for content over the limit.
    pub fn validate(self, config: &Config) -> Result<TurnDraft, Error> {
        if !valid_response_id(&self.response_id) {
            return Err(Error::Validation(format!(
                "response_id must be 1 to {MAX_RESPONSE_ID_LEN} characters of A-Z, a-z, 0-9, '_' or '-'"
            )));
        }
        let role = Role::parse(&self.role).ok_or_else(|| {
            Error::Validation("role must be \"user\", \"assistant\", \"system\" or \"tool\"".to_owned())
        })?;
        // Blank as openapi.yaml's pattern has it, so that the contract and the check agree.
        if self.content.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
            return Err(Error::Validation("content must hold a character other than space, tab, CR and LF".to_owned()));
        }
        if self.content.len() > config.max_content_bytes {
            return Err(Error::TooLarge(format!(
                "content is {} bytes of UTF-8; the limit is {}",
                self.content.len(),
                config.max_content_bytes
            )));
        }
        if self.intent.as_ref().is_some_and(|i| i.is_empty() || i.chars().count() > MAX_INTENT_LEN) {
            return Err(Error::Validation(format!("intent must be 1 to {MAX_INTENT_LEN} characters")));
        }
        let token_count = match self.token_count {
            None => None,
            Some(n) if (0..=MAX_TOKEN_COUNT).contains(&n) => Some(n as u32),
            Some(_) => {
                return Err(Error::Validation(format!("token_count must be between 0 and {MAX_TOKEN_COUNT}")))
            }
        };
        validate_item(self.item.as_ref())?;
        Ok(TurnDraft {
            response_id: self.response_id,
            role,
            content: self.content,
            intent: self.intent,
            token_count,
            item: self.item,
            hashed_content: None,
            hashed_item: None,
        })
    }
}

/// 413 over [`MAX_ITEM_BYTES`]; 422 for what DynamoDB could not store as a map, by the same
/// rules as `page_context`, so that the item could be stored as a map as well as it is.
fn validate_item(item: Option<&Map<String, Value>>) -> Result<(), Error> {
    let Some(item) = item else {
        return Ok(());
    };
    let size = serde_json::to_vec(item).map(|json| json.len()).unwrap_or(usize::MAX);
    if size > MAX_ITEM_BYTES {
        return Err(Error::TooLarge(format!("item is {size} bytes; the limit is {MAX_ITEM_BYTES}")));
    }
    crate::storable::check_map("item", item, MAX_PAGE_CONTEXT_NESTING).map_err(Error::Validation)
}

fn valid_response_id(id: &str) -> bool {
    (1..=MAX_RESPONSE_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl TurnDraft {
    /// The keyed digest of everything but the response id, as the client sent it (before
    /// redaction), for the idempotency record of `session_id`: a retry must carry the same
    /// payload, and is recognised whatever the redaction of either attempt saw.
    pub fn payload_hash(&self, key: &HashKey, session_id: &Uuid) -> String {
        let content = self.hashed_content.as_deref().unwrap_or(&self.content);
        // serde_json keeps a map's keys sorted, so the same item always serialises alike.
        let item = self.hashed_item.clone().or_else(|| self.item.as_ref().map(|item| Value::Object(item.clone()).to_string()));
        key.payload(session_id, self.role.as_str(), content, self.intent.as_deref(), self.token_count, item.as_deref())
    }
}

/// Answer of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub turn_index: u64,
    pub duplicate: bool,
}

/// The append answer of the HTTP API: the store's [`Appended`] and what redaction replaced
/// before the write (counts only; left out when nothing was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AppendAnswer {
    #[serde(flatten)]
    pub appended: Appended,
    #[serde(skip_serializing_if = "Redactions::is_empty")]
    pub redactions: Redactions,
}

/// A session's metadata, as `load-context` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub session_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub page_context: Map<String, Value>,
    pub turn_count: u64,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
}

/// The latest rolling summary of a session: it covers turns 1..=`through_turn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub text: String,
    pub through_turn: u64,
}

/// One stored turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Turn {
    pub turn_index: u64,
    pub role: Role,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_count: Option<u32>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<Map<String, Value>>,
    /// When the turn was retracted; such a turn is in the export (marked so) and never in a context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retracted_at: Option<String>,
}

/// Answer of `POST /sessions/{id}/turns/{index}/retract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retracted {
    pub turn_index: u64,
    pub retracted_at: String,
}

/// What a context load asks for (`GET /sessions/{id}/context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextRequest {
    /// At most this many turns; without it, every unsummarised turn up to [`MAX_MAX_TURNS`].
    pub max_turns: Option<usize>,
    /// The turns' tokens must fit this; the oldest are dropped until they do.
    pub max_tokens: Option<u64>,
    /// Strongly consistent reads.
    pub consistent: bool,
}

/// Unsummarised turns a load left out to respect a limit: `from_turn..=to_turn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Omitted {
    pub from_turn: u64,
    pub to_turn: u64,
}

/// What a chatbot needs to answer: the session, its latest summary, and the turns after
/// the summary, oldest first. Summary, `omitted` and `turns` account for turns
/// `1..=session.turn_count`, each exactly once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Context {
    pub session: Option<Session>,
    pub summary: Option<Summary>,
    pub omitted: Option<Omitted>,
    pub turns: Vec<Turn>,
    pub degraded: bool,
    /// The version of the session's META item; it changes on every append, update and summary.
    #[serde(skip)]
    pub version: Option<u64>,
}

impl Context {
    /// The answer given when the store failed or missed its deadline: no memory, but an answer.
    pub fn degraded() -> Context {
        Context {
            session: None,
            summary: None,
            omitted: None,
            turns: Vec::new(),
            degraded: true,
            version: None,
        }
    }
}

impl Context {
    /// Drops the oldest turns until `tokens` more fit `max_tokens` and `bytes` more fit the
    /// body budget, and names what it dropped in `omitted`.
    pub fn make_room(&mut self, tokens: u64, bytes: usize, max_tokens: Option<u64>) {
        let fits = |context: &Context| {
            let used: u64 = context.turns.iter().map(Turn::tokens).sum();
            max_tokens.is_none_or(|max| used.saturating_add(tokens) <= max)
                && envelope_len(context).saturating_add(bytes) <= CONTEXT_BODY_BUDGET_BYTES
        };
        while !self.turns.is_empty() && !fits(self) {
            let dropped = self.turns.remove(0);
            let from_turn = self.omitted.map_or(dropped.turn_index, |o| o.from_turn);
            self.omitted = Some(Omitted { from_turn, to_turn: dropped.turn_index });
        }
    }
}

impl Turn {
    /// The tokens a turn counts for under `max_tokens`: its `token_count`, or a quarter of its
    /// UTF-8 bytes, rounded up, when it has none.
    pub fn tokens(&self) -> u64 {
        self.token_count
            .map_or_else(|| (self.content.len() as u64).div_ceil(4), u64::from)
    }
}

/// A context's body stays under this many bytes, as Lambda's JSON envelope carries it.
pub const CONTEXT_BODY_BUDGET_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_MAX_TOKENS: u64 = 1_000_000;

/// Proof that a customer's data was deleted (`DELETE /customers/...`, `GET /receipts/{id}`).
/// It holds no personal data: the customer appears only as a salted hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub receipt_id: Uuid,
    /// Hex SHA-256 of `RECEIPT_SALT` followed by the customer id.
    pub customer_hash: String,
    /// When the purge was first asked for; a repeat that finishes a cut-off purge keeps it.
    pub requested_at: String,
    pub completed_at: String,
    pub sessions_deleted: u64,
    /// Items of the customer's sessions.
    pub items_deleted: u64,
    /// Items of the customer's long-term memory: facts, and tombstones of deleted ones.
    #[serde(default)]
    pub memory_items_deleted: u64,
    /// The API Gateway request id of the request that started the purge.
    pub request_id: String,
    /// When the purge destroyed the customer's data key, its first step: from then on no
    /// copy of their content opens, in the table, its stream or a backup. Absent on
    /// receipts of purges made before encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_destroyed_at: Option<String>,
}

pub const MAX_MAX_TURNS: usize = 100;

/// Body of `PATCH /sessions/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPatch {
    pub page_context: Map<String, Value>,
}

impl SessionPatch {
    pub fn validate(&self) -> Result<(), Error> {
        validate_page_context(Some(&self.page_context))
    }
}

/// An `If-Match` precondition on a session's META version (the ETag load-context sends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version; the session must exist, which every update requires anyway.
    Any,
    /// One or more ETags; the update applies only while the version is one of them.
    Versions(Vec<u64>),
    /// A value that holds no ETag this API could have issued: it matches no version, so the
    /// update is 412 once the session is known to be the caller's (404 before that).
    Never,
}

impl IfMatch {
    pub const MAX_TAGS: usize = 16;

    /// Reads `"7"`, `W/"7"`, `7`, `*` or a comma-separated list of tags; anything else is
    /// [`IfMatch::Never`].
    pub fn parse(header: &str) -> IfMatch {
        if header.trim() == "*" {
            return IfMatch::Any;
        }
        let mut versions = Vec::new();
        for tag in header.split(',') {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let tag = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag);
            match tag.parse::<u64>() {
                Ok(version) => versions.push(version),
                Err(_) => return IfMatch::Never,
            }
        }
        if versions.is_empty() || versions.len() > Self::MAX_TAGS {
            return IfMatch::Never;
        }
        IfMatch::Versions(versions)
    }

    pub fn allows(&self, version: u64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Versions(versions) => versions.contains(&version),
            IfMatch::Never => false,
        }
    }
}

/// A session's ETag value: its META version, quoted.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// Answer of a metadata update: the session as it now is, and its new version.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUpdated {
    pub session: Session,
    pub version: u64,
}

pub const DEFAULT_RESUME_LIMIT: usize = 20;
pub const MAX_RESUME_LIMIT: usize = 100;

/// One entry of a customer's resume list: what the customer index projects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResumableSession {
    pub session_id: Uuid,
    pub page_context: Map<String, Value>,
    pub turn_count: u64,
    pub updated_at: String,
    pub expires_at: String,
}

/// Where a resume list continues: the customer index key of the last session it evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePosition {
    #[serde(rename = "u")]
    pub updated_at: String,
    #[serde(rename = "s")]
    pub session_id: Uuid,
}

/// One page of a customer's sessions, newest activity first. It may hold fewer than the
/// limit (expired sessions are left out) while `next` is still set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionPage {
    pub sessions: Vec<ResumableSession>,
    #[serde(skip)]
    pub next: Option<ResumePosition>,
}

pub const DEFAULT_EXPORT_LIMIT: usize = 100;
pub const MAX_EXPORT_LIMIT: usize = 500;
/// An export page stops before its body, as Lambda's JSON response envelope carries it,
/// would pass this, so that it stays under Lambda's 6 MB response limit.
pub const EXPORT_PAGE_BUDGET_BYTES: usize = 5 * 1024 * 1024;

/// Where a turn export continues: after this turn index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPosition {
    #[serde(rename = "after")]
    pub after_turn: u64,
}

/// One page of a session's turns, oldest first, with the session and its latest summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnPage {
    pub session: Session,
    pub summary: Option<Summary>,
    pub turns: Vec<Turn>,
    /// Turns an earlier home acknowledged at indices of this page and did not replicate
    /// before a failover: kept, never in `turns` ([`crate::chain`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unmerged: Vec<crate::chain::UnmergedTurn>,
    #[serde(skip)]
    pub next: Option<ExportPosition>,
    /// A turn of the session's order is missing from the page: after a failover with no
    /// fence, one the old home acknowledged that has not arrived here yet (or a deletion ran
    /// while it was read). The page is answered marked stale, never as complete.
    #[serde(skip)]
    pub incomplete: bool,
}

/// The bytes `value` adds to a Lambda response: its JSON, escaped once more because the
/// runtime carries the body as a JSON string. Never smaller than the JSON itself.
pub fn envelope_len<T: Serialize>(value: &T) -> usize {
    let json = serde_json::to_string(value).unwrap_or_default();
    json.len() + json.bytes().filter(|b| matches!(b, b'"' | b'\\')).count()
}

/// How many of each kind a redaction replaced ([`crate::redact`]); serialised with the
/// non-zero kinds only (`{"card": 1}`, or `{}` when nothing was found).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Redactions {
    #[serde(skip_serializing_if = "is_zero")]
    pub card: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub iban: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub email: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub phone: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Redactions {
    pub fn is_empty(&self) -> bool {
        *self == Redactions::default()
    }
}

impl std::ops::AddAssign for Redactions {
    fn add_assign(&mut self, other: Redactions) {
        self.card += other.card;
        self.iban += other.iban;
        self.email += other.email;
        self.phone += other.phone;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(response_id: &str, role: &str, content: &str, token_count: Option<i64>) -> NewTurn {
        NewTurn {
            response_id: response_id.to_owned(),
            role: role.to_owned(),
            content: content.to_owned(),
            intent: None,
            token_count,
            item: None,
        }
    }

    #[test]
    fn a_valid_turn_passes() {
        let draft = turn("resp_01-A", "user", "hello", Some(3)).validate(&Config::default()).unwrap();
        assert_eq!(draft.role, Role::User);
        assert_eq!(draft.token_count, Some(3));
    }

    #[test]
    fn each_broken_rule_is_a_validation_error() {
        let config = Config::default();
        for bad in [
            turn("", "user", "hi", None),
            turn("has space", "user", "hi", None),
            turn(&"x".repeat(129), "user", "hi", None),
            turn("r1", "bot", "hi", None),
            turn("r1", "user", "", None),
            turn("r1", "user", "   ", None),
            turn("r1", "user", "hi", Some(-1)),
            turn("r1", "user", "hi", Some(1_000_001)),
        ] {
            assert!(matches!(bad.validate(&config), Err(Error::Validation(_))));
        }
    }

    #[test]
    fn content_over_the_limit_is_too_large() {
        let big = "a".repeat(64 * 1024 + 1);
        assert!(matches!(turn("r1", "user", &big, None).validate(&Config::default()), Err(Error::TooLarge(_))));
        let at_limit = "a".repeat(64 * 1024);
        assert!(turn("r1", "user", &at_limit, None).validate(&Config::default()).is_ok());
    }

    #[test]
    fn payload_hash_ignores_the_response_id_but_not_the_content() {
        let config = Config::default();
        let key = HashKey::new(&crate::Secret::new("HASH_KEY", "a-test-hash-key-of-at-least-32-bytes!").unwrap()).unwrap();
        let session = Uuid::nil();
        let a = turn("r1", "user", "hi", None).validate(&config).unwrap();
        let b = turn("r2", "user", "hi", None).validate(&config).unwrap();
        let c = turn("r1", "user", "hi!", None).validate(&config).unwrap();
        assert_eq!(a.payload_hash(&key, &session), b.payload_hash(&key, &session));
        assert_ne!(a.payload_hash(&key, &session), c.payload_hash(&key, &session));
    }

    #[test]
    fn payload_hash_is_taken_over_the_content_as_sent() {
        let key = HashKey::new(&crate::Secret::new("HASH_KEY", "a-test-hash-key-of-at-least-32-bytes!").unwrap()).unwrap();
        let sent = turn("r1", "user", "call 06 12 34 56 78", None).validate(&Config::default()).unwrap();
        let redacted = TurnDraft {
            content: "call [phone]".into(),
            hashed_content: Some("call 06 12 34 56 78".into()),
            ..sent.clone()
        };
        assert_eq!(sent.payload_hash(&key, &Uuid::nil()), redacted.payload_hash(&key, &Uuid::nil()));
    }

    #[test]
    fn if_match_reads_strong_weak_bare_and_listed_etags() {
        assert_eq!(IfMatch::parse("\"7\""), IfMatch::Versions(vec![7]));
        assert_eq!(IfMatch::parse("W/\"7\""), IfMatch::Versions(vec![7]));
        assert_eq!(IfMatch::parse(" 7 "), IfMatch::Versions(vec![7]));
        assert_eq!(IfMatch::parse("\"3\", \"4\""), IfMatch::Versions(vec![3, 4]));
        assert_eq!(IfMatch::parse("*"), IfMatch::Any);
        assert_eq!(IfMatch::parse(&etag(12)), IfMatch::Versions(vec![12]));
        for bad in ["", "\"abc\"", "\"-1\"", "\"7", "1,,2"] {
            assert_eq!(IfMatch::parse(bad), IfMatch::Never, "{bad:?}");
            assert!(!IfMatch::parse(bad).allows(1));
        }
    }

    #[test]
    fn envelope_len_counts_the_second_escaping() {
        assert_eq!(envelope_len(&"ab"), 6); // "ab" -> \"ab\"
        assert_eq!(envelope_len(&"a\"b"), 10); // "a\"b" -> \"a\\\"b\"
    }

    #[test]
    fn roles_come_from_groups() {
        let caller = Caller::new("alice", ["support", "privacy"]);
        assert!(caller.is_support());
        assert!(!caller.is_guest());
    }
}
