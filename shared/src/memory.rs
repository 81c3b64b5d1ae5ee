//! Long-term customer memory: durable facts a customer stated, kept across sessions.
//!
//! A fact has a kind ([`FactKind`]), a short text and its provenance ([`FactSource`]: the
//! session and the turns that stated it). Its id is derived from its kind and its normalised
//! *subject*, so that
//! - a restatement lands on the same item (facts are deduplicated on kind and subject);
//! - a newer statement about the same subject replaces the older one: "prefers digital" and
//!   "prefers paperback" share the subject `format`, "loves Frieren" and "dislikes Frieren"
//!   share `frieren`.
//!
//! Statements are ordered by their *stated key* (the stating turn's time, session and index),
//! which the store compares before it overwrites: a redelivered or late window can never
//! replace a newer statement, and writing the same window twice writes nothing the second time.
//!
//! [`extract`] is the offline extractor: stated likes and dislikes ("I love / prefer / can't
//! stand …"), titles the customer owns or has read ("I already read …", "I have volumes 1–3
//! of …"), and language or format preferences. It reads the customer's own turns only, and
//! only statements, never questions. [`facts_from_model_json`] validates the same schema when
//! a model ([`FACTS_JSON_SCHEMA`]) extracts them instead.
//!
//! The text reaching the extractor is already redacted, and guests get no long-term memory:
//! both are decided before extraction is called.
use std::collections::HashMap;
use std::sync::LazyLock;

use regex_lite::{Captures, Regex};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{Role, Turn};

/// Facts a context load returns when `max_memory` is not given, and the most it may ask for.
pub const DEFAULT_MAX_MEMORY: usize = 20;
pub const MAX_MAX_MEMORY: usize = 50;
/// Page size of `GET /customers/me/memory`, by default and at most.
pub const DEFAULT_MEMORY_PAGE: usize = 20;
pub const MAX_MEMORY_PAGE: usize = 100;
/// `MEMORY_MAX_FACTS` when unset: live facts kept per customer.
pub const DEFAULT_MEMORY_MAX_FACTS: usize = 50;
/// The most facts one window contributes (newest statements first); well under the 100
/// items of the transaction that writes them.
pub const MAX_FACTS_PER_WINDOW: usize = 20;
pub const MAX_FACT_TEXT_CHARS: usize = 160;
pub const MAX_SUBJECT_CHARS: usize = 80;
/// An object of more words than this is a sentence, not a thing someone likes or owns.
const MAX_OBJECT_WORDS: usize = 8;
/// A sentence longer than this is pasted text, not a statement about oneself; it is not read,
/// which also bounds the work a 64 KiB turn can cause.
const MAX_STATEMENT_BYTES: usize = 500;

/// What a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactKind {
    /// Likes, dislikes, and format preferences.
    Preference,
    /// Titles the customer owns or has read.
    Owns,
    /// Facts about the customer as a reader, such as the language they read in.
    Profile,
}

impl FactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Preference => "preference",
            FactKind::Owns => "owns",
            FactKind::Profile => "profile",
        }
    }

    pub fn parse(kind: &str) -> Option<FactKind> {
        match kind {
            "preference" => Some(FactKind::Preference),
            "owns" => Some(FactKind::Owns),
            "profile" => Some(FactKind::Profile),
            _ => None,
        }
    }
}

/// Where a fact was stated: a session and the turns `from_turn..=to_turn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactSource {
    pub session_id: Uuid,
    pub from_turn: u64,
    pub to_turn: u64,
}

/// One fact, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    pub fact_id: String,
    pub kind: FactKind,
    pub text: String,
    pub source: FactSource,
    /// When the customer last stated it: the time of the turn `source.to_turn`.
    pub updated_at: String,
}

impl Fact {
    /// The key that orders facts by their last statement.
    pub fn stated_key(&self) -> String {
        stated_key(&self.updated_at, &self.source)
    }
}

/// A fact extracted from a window of turns, not yet stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactDraft {
    pub kind: FactKind,
    /// The normalised subject; with the kind, it names the fact.
    pub subject: String,
    pub text: String,
    pub source: FactSource,
    /// The time of the turn `source.to_turn`.
    pub stated_at: String,
}

impl FactDraft {
    /// A draft with its subject normalised and its text tidied; `None` when either ends up
    /// empty or too long.
    pub fn new(kind: FactKind, subject: &str, text: &str, source: FactSource, stated_at: &str) -> Option<FactDraft> {
        let subject = normalise(subject);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let fits = |s: &str, max: usize| !s.is_empty() && s.chars().count() <= max;
        (fits(&subject, MAX_SUBJECT_CHARS) && fits(&text, MAX_FACT_TEXT_CHARS)).then(|| FactDraft {
            kind,
            subject,
            text,
            source,
            stated_at: stated_at.to_owned(),
        })
    }

    pub fn fact_id(&self) -> String {
        fact_id(self.kind, &self.subject)
    }

    pub fn stated_key(&self) -> String {
        stated_key(&self.stated_at, &self.source)
    }

    pub fn into_fact(self) -> Fact {
        Fact { fact_id: self.fact_id(), kind: self.kind, text: self.text, source: self.source, updated_at: self.stated_at }
    }
}

/// `hex(SHA-256(kind, subject))`, first 16 bytes: the same for every statement of one
/// subject, and the same whichever summariser extracted it.
pub fn fact_id(kind: FactKind, normalised_subject: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [kind.as_str(), normalised_subject] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` has the shape of a fact id: 32 lowercase hex digits.
pub fn is_fact_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Orders statements: the stating turn's time, then its session and index. Times are
/// fixed-width RFC 3339, so the keys compare as strings.
pub fn stated_key(stated_at: &str, source: &FactSource) -> String {
    format!("{stated_at}#{}#{:010}", source.session_id, source.to_turn)
}

/// The time, session and turn a [`stated_key`] was made of; `None` for anything else (a
/// deletion's key among them).
pub fn parse_stated_key(key: &str) -> Option<(String, Uuid, u64)> {
    let mut parts = key.splitn(3, '#');
    let stated_at = parts.next()?.to_owned();
    let session_id = Uuid::parse_str(parts.next()?).ok()?;
    let to_turn = parts.next()?.parse().ok()?;
    Some((stated_at, session_id, to_turn))
}

/// Lower case, dashes unified, punctuation dropped, one space between words, and no leading
/// article or trailing "series": "The Frieren series!" and "frieren" are one subject.
pub fn normalise(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| match c {
            '–' | '—' | '‐' => '-',
            c if c.is_alphanumeric() || c == '-' => c,
            _ => ' ',
        })
        .flat_map(char::to_lowercase)
        .collect();
    let mut words: Vec<&str> = mapped.split_whitespace().collect();
    if words.len() > 1 && matches!(words[0], "the" | "a" | "an") {
        words.remove(0);
    }
    if words.len() > 1 && matches!(words[words.len() - 1], "series" | "manga") {
        words.pop();
    }
    words.join(" ")
}

/// Newest statement first; the fact id breaks ties.
pub fn sort_newest_first(facts: &mut [Fact]) {
    facts.sort_by_cached_key(|f| std::cmp::Reverse((f.stated_key(), f.fact_id.clone())));
}

/// Where a memory listing continues: after the fact with this stated key and id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPosition {
    #[serde(rename = "k")]
    pub stated_key: String,
    #[serde(rename = "f")]
    pub fact_id: String,
}

impl MemoryPosition {
    fn of(fact: &Fact) -> MemoryPosition {
        MemoryPosition { stated_key: fact.stated_key(), fact_id: fact.fact_id.clone() }
    }
}

/// One page of a customer's facts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactPage {
    pub facts: Vec<Fact>,
    #[serde(skip)]
    pub next: Option<MemoryPosition>,
}

/// The page of `facts` (sorted newest first) that follows `after`: at most `limit`, with
/// `next` set when more follow.
pub fn page_after(facts: Vec<Fact>, after: Option<&MemoryPosition>, limit: usize) -> FactPage {
    let limit = limit.max(1);
    let mut rest: Vec<Fact> = match after {
        None => facts,
        Some(after) => {
            let bound = (after.stated_key.as_str(), after.fact_id.as_str());
            facts.into_iter().filter(|f| (f.stated_key().as_str(), f.fact_id.as_str()) < bound).collect()
        }
    };
    let next = (rest.len() > limit).then(|| MemoryPosition::of(&rest[limit - 1]));
    rest.truncate(limit);
    FactPage { facts: rest, next }
}

/// One window's drafts, one per fact id: the latest statement of each subject wins, and a
/// restatement of the same text widens its turn range. Newest statements first, at most
/// [`MAX_FACTS_PER_WINDOW`].
pub fn merge_window(drafts: Vec<FactDraft>) -> Vec<FactDraft> {
    let mut by_id: HashMap<String, FactDraft> = HashMap::new();
    for draft in drafts {
        match by_id.get_mut(&draft.fact_id()) {
            Some(held) if held.stated_key() >= draft.stated_key() => {
                if normalise(&held.text) == normalise(&draft.text) {
                    held.source.from_turn = held.source.from_turn.min(draft.source.from_turn);
                }
            }
            Some(held) => {
                let from_turn = if normalise(&held.text) == normalise(&draft.text) {
                    held.source.from_turn.min(draft.source.from_turn)
                } else {
                    draft.source.from_turn
                };
                *held = FactDraft { source: FactSource { from_turn, ..draft.source }, ..draft };
            }
            None => {
                by_id.insert(draft.fact_id(), draft);
            }
        }
    }
    let mut merged: Vec<FactDraft> = by_id.into_values().collect();
    merged.sort_by_cached_key(|d| std::cmp::Reverse((d.stated_key(), d.fact_id())));
    merged.truncate(MAX_FACTS_PER_WINDOW);
    merged
}

// ---------------------------------------------------------------------------------------
// The offline extractor.

const LANGUAGES: &str = "english|french|german|spanish|italian|portuguese|dutch|japanese|korean|chinese|mandarin|\
polish|swedish|norwegian|danish|finnish|russian|ukrainian|arabic|turkish|greek|czech|hungarian|hindi|vietnamese|\
thai|indonesian";

/// The customer's own statements of durable facts in one window of turns. Deterministic.
pub fn extract(session_id: Uuid, turns: &[Turn]) -> Vec<FactDraft> {
    let mut drafts = Vec::new();
    for turn in turns.iter().filter(|t| t.role == Role::User) {
        let source = FactSource { session_id, from_turn: turn.turn_index, to_turn: turn.turn_index };
        for sentence in statements(&turn.content) {
            for (kind, subject, text) in sentence_facts(&sentence) {
                drafts.extend(FactDraft::new(kind, &subject, &text, source, &turn.created_at));
            }
        }
    }
    merge_window(drafts)
}

/// The sentences of a turn that are statements: questions are left out. Curly apostrophes
/// are made straight, so that "can’t" reads as "can't".
fn statements(content: &str) -> Vec<String> {
    let content = content.replace(['’', 'ʼ'], "'");
    let mut sentences = Vec::new();
    let mut start = 0;
    for (at, c) in content.char_indices() {
        if matches!(c, '.' | '!' | '?' | ';' | '\n') {
            // A dot between digits or after "vol" is not the end of a sentence.
            let before = content[..at].chars().next_back();
            let after = content[at + c.len_utf8()..].chars().next();
            let abbreviation = c == '.'
                && (before.is_some_and(|b| b.is_ascii_digit()) && after.is_some_and(|a| a.is_ascii_digit())
                    || at >= 3 && content.as_bytes()[at - 3..at].eq_ignore_ascii_case(b"vol"));
            if abbreviation {
                continue;
            }
            if c != '?' {
                sentences.push(content[start..at].to_owned());
            }
            start = at + c.len_utf8();
        }
    }
    sentences.push(content[start..].to_owned());
    sentences.retain(|s| !s.trim().is_empty() && s.len() <= MAX_STATEMENT_BYTES);
    sentences
}

/// Which pattern matched, and so how its capture becomes a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stance {
    Loves,
    Likes,
    Prefers,
    Dislikes,
    ReadsIn,
    OwnsVolumes,
    Owns,
    HasRead,
}

struct Pattern {
    stance: Stance,
    regex: Regex,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let object = r"(?P<obj>[^,:()]+)";
    let volumes = r"(?P<vols>(?:volumes?|vols?\.?|books?|issues?|parts?) ?\d+(?:\s*(?:-|–|—|to|through|and|&|,)\s*\d+)*)";
    let table: Vec<(Stance, String)> = vec![
        (Stance::ReadsIn, format!(r"\bI (?:only |mostly |usually |always |prefer to |like to )?read (?:books |manga |them |everything )?(?:only |mostly )?in (?P<lang>{LANGUAGES})\b")),
        (Stance::OwnsVolumes, format!(r"\bI(?:'ve| have)?(?: already)? (?:have|own|got|bought|purchased) (?:already )?{volumes} of {object}")),
        (Stance::HasRead, format!(r"\bI(?:(?:'ve| have)(?: already)?| already) (?:read|finished) {object}")),
        (Stance::Owns, format!(r"\bI (?:already )?own {object}")),
        (Stance::Owns, format!(r"\bI(?:'ve| have)? already (?:have|got|bought|purchased) {object}")),
        (Stance::Dislikes, format!(r"\bI (?:really |just |simply )?(?:can't|cannot|can not) stand {object}")),
        (Stance::Dislikes, format!(r"\bI (?:really |just |absolutely )?(?:hate|dislike|detest) {object}")),
        (Stance::Dislikes, format!(r"\bI (?:really |just )?(?:don't|do not) (?:like|enjoy|love|care for) {object}")),
        (Stance::Dislikes, format!(r"\bI(?:'m| am) not (?:a |really a |much of a |a big )?fan of {object}")),
        (Stance::Loves, format!(r"\bI (?:really |absolutely |just |also |especially |do )?(?:love|adore) {object}")),
        (Stance::Loves, format!(r"\bI(?:'m| am) (?:a |also a |really a )?(?:big |huge |great )?fan of {object}")),
        (Stance::Loves, format!(r"\bmy (?:all-time )?favou?rite (?:[a-z]+ )?is {object}")),
        (Stance::Likes, format!(r"\bI (?:really |also |especially |do )?(?:like|enjoy) {object}")),
        (Stance::Prefers, format!(r"\bI (?:really |much |always |usually |generally )?prefer {object}")),
    ];
    table
        .into_iter()
        .map(|(stance, pattern)| Pattern {
            stance,
            regex: Regex::new(&format!("(?i){pattern}")).unwrap_or_else(|e| panic!("pattern {pattern}: {e}")),
        })
        .collect()
});

/// The facts one statement makes, as (kind, subject, text).
fn sentence_facts(sentence: &str) -> Vec<(FactKind, String, String)> {
    let mut facts = Vec::new();
    // Where earlier patterns matched: "I don't like X" must not also read as "I like X".
    let mut claimed: Vec<(usize, usize)> = Vec::new();
    for pattern in PATTERNS.iter() {
        for captures in pattern.regex.captures_iter(sentence) {
            let Some(whole) = captures.get(0) else { continue };
            if claimed.iter().any(|&(start, end)| whole.start() < end && start < whole.end()) {
                continue;
            }
            if let Some(fact) = fact_of(pattern.stance, &captures) {
                claimed.push((whole.start(), whole.end()));
                facts.push(fact);
            }
        }
    }
    facts
}

fn fact_of(stance: Stance, captures: &Captures<'_>) -> Option<(FactKind, String, String)> {
    if stance == Stance::ReadsIn {
        let language = capitalise(captures.name("lang")?.as_str());
        return Some((FactKind::Profile, "language".to_owned(), format!("reads in {language}")));
    }
    let object = clean_object(captures.name("obj")?.as_str(), stance == Stance::Prefers)?;
    match stance {
        Stance::OwnsVolumes => {
            let volumes = captures.name("vols")?.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
            Some((FactKind::Owns, format!("owns {object}"), format!("owns {volumes} of {object}")))
        }
        Stance::Owns => Some((FactKind::Owns, format!("owns {object}"), format!("owns {object}"))),
        Stance::HasRead => Some((FactKind::Owns, format!("read {object}"), format!("has read {object}"))),
        Stance::Loves | Stance::Likes | Stance::Prefers | Stance::Dislikes => {
            let liked = stance != Stance::Dislikes;
            if let Some(format) = format_of(&object) {
                let verb = if liked { "prefers" } else { "avoids" };
                return Some((FactKind::Preference, "format".to_owned(), format!("{verb} {format}")));
            }
            if let Some(language) = language_of(&object) {
                // "I prefer French editions"; a language disliked says nothing about the one read.
                return liked.then(|| (FactKind::Profile, "language".to_owned(), format!("reads in {language}")));
            }
            let verb = match stance {
                Stance::Loves => "loves",
                Stance::Likes => "likes",
                Stance::Prefers => "prefers",
                _ => "dislikes",
            };
            Some((FactKind::Preference, object.clone(), format!("{verb} {object}")))
        }
        Stance::ReadsIn => None,
    }
}

/// Words that end the object of a statement: what follows is another clause.
const CLAUSE_BREAKS: &[&str] = &[
    " but ", " because ", " since ", " though ", " although ", " so ", " which ", " when ", " if ", " and i ",
    " and i'", " - ", " – ", " — ", " as well", " a lot", " very much", " so much", " too ", " more than ",
];
/// For "I prefer X over Y", the object is X.
const COMPARISONS: &[&str] = &[" over ", " rather than ", " instead of ", " to "];
/// Words that trail an object without adding to it: "I prefer digital now".
const TRAILING_FILLERS: &[&str] =
    &["now", "nowadays", "these days", "anyway", "actually", "really", "honestly", "please", "though", "lately"];
/// An object that starts with one of these points at something the text does not name.
const VAGUE_STARTS: &[&str] = &[
    "it", "that", "this", "them", "those", "these", "you", "your", "him", "her", "everything", "anything",
    "nothing", "something", "when", "how", "what", "where", "why", "who", "whether", "to", "if", "being",
    "having", "getting", "all", "some", "any", "one", "ones", "so", "very", "too", "much", "more", "about",
];

/// The object of a statement: up to where another clause starts, without quotes, trailing
/// intensifiers or end punctuation. `None` when what is left is vague or a whole sentence.
fn clean_object(raw: &str, comparison: bool) -> Option<String> {
    let mut object = format!("{} ", raw.trim());
    let lower = object.to_ascii_lowercase();
    let mut breaks: Vec<&str> = CLAUSE_BREAKS.to_vec();
    if comparison {
        breaks.extend(COMPARISONS);
    }
    if let Some(cut) = breaks.iter().filter_map(|b| lower.find(b)).min() {
        object.truncate(cut);
    }
    let trim = |text: &str| {
        text.trim_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '“' | '”' | '‘' | '.' | '!' | '-'))
            .to_owned()
    };
    let mut object = trim(&object);
    while let Some(filler) = TRAILING_FILLERS.iter().find(|f| {
        let lower = object.to_ascii_lowercase();
        lower.len() > f.len() && lower.ends_with(*f) && lower[..lower.len() - f.len()].ends_with(' ')
    }) {
        object = trim(&object[..object.len() - filler.len()]);
    }
    let first = object.split_whitespace().next()?.to_ascii_lowercase();
    let words = object.split_whitespace().count();
    if VAGUE_STARTS.contains(&first.as_str()) || words > MAX_OBJECT_WORDS || object.chars().count() > MAX_SUBJECT_CHARS {
        return None;
    }
    Some(object)
}

/// The reading format an object names ("e-books", "digital copies", "paperbacks", ...).
fn format_of(object: &str) -> Option<&'static str> {
    let normalised = normalise(object);
    let mut words: Vec<&str> = normalised.split_whitespace().collect();
    let format = match words.as_slice() {
        ["hard", "cover" | "covers", ..] | ["soft", "cover" | "covers", ..] | ["audio", "book" | "books", ..] => {
            let format = if words[0] == "hard" { "hardcover" } else if words[0] == "soft" { "paperback" } else { "audiobooks" };
            words.drain(..2);
            format
        }
        [first, ..] => {
            let format = match first.trim_end_matches('s') {
                "digital" | "ebook" | "e-book" | "kindle" | "ereader" | "e-reader" => "digital",
                "paperback" | "softcover" => "paperback",
                "hardcover" | "hardback" => "hardcover",
                "physical" | "print" | "printed" => "physical copies",
                "audiobook" => "audiobooks",
                _ => return None,
            };
            words.remove(0);
            format
        }
        [] => return None,
    };
    let rest_is_a_form = words.iter().all(|w| {
        matches!(
            w.trim_end_matches('s'),
            "copie" | "copy" | "edition" | "version" | "book" | "format" | "one" | "volume" | "release" | "only"
        )
    });
    rest_is_a_form.then_some(format)
}

/// The language an object names ("French editions", "English translations").
fn language_of(object: &str) -> Option<String> {
    let normalised = normalise(object);
    let words: Vec<&str> = normalised.split_whitespace().collect();
    let (language, rest) = match words.as_slice() {
        ["reading", "in", language, rest @ ..] | ["in", language, rest @ ..] | [language, rest @ ..] => (*language, rest),
        [] => return None,
    };
    let known = LANGUAGES.split('|').any(|l| l == language);
    let rest_is_a_form = rest.iter().all(|w| {
        matches!(w.trim_end_matches('s'), "edition" | "translation" | "version" | "copie" | "copy" | "book" | "manga")
    });
    (known && rest_is_a_form).then(|| capitalise(language))
}

fn capitalise(word: &str) -> String {
    let lower = word.to_lowercase();
    let mut chars = lower.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The same schema, as a model answers it.

/// The JSON Schema a model's answer must follow: the facts of one window.
pub const FACTS_JSON_SCHEMA: &str = r#"{
  "type": "object",
  "additionalProperties": false,
  "required": ["facts"],
  "properties": {
    "facts": {
      "type": "array",
      "maxItems": 20,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["kind", "subject", "text", "from_turn", "to_turn"],
        "properties": {
          "kind": {"type": "string", "enum": ["preference", "owns", "profile"]},
          "subject": {"type": "string", "minLength": 1, "maxLength": 80},
          "text": {"type": "string", "minLength": 1, "maxLength": 160},
          "from_turn": {"type": "integer", "minimum": 1},
          "to_turn": {"type": "integer", "minimum": 1}
        }
      }
    }
  }
}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFacts {
    facts: Vec<ModelFact>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFact {
    kind: String,
    subject: String,
    text: String,
    from_turn: u64,
    to_turn: u64,
}

/// Reads a model's answer against [`FACTS_JSON_SCHEMA`] and the window it was given. Any
/// breach (bad JSON, an unknown kind, an empty or over-long text, a turn outside the window
/// or not the customer's, too many facts) rejects the whole answer, so that the caller falls
/// back to [`extract`].
pub fn facts_from_model_json(answer: &str, session_id: Uuid, turns: &[Turn]) -> Result<Vec<FactDraft>, String> {
    let answer = answer.trim();
    // Some models wrap JSON in a Markdown fence even when asked not to.
    let answer = answer
        .strip_prefix("```json")
        .or_else(|| answer.strip_prefix("```"))
        .and_then(|a| a.strip_suffix("```"))
        .unwrap_or(answer);
    let parsed: ModelFacts = serde_json::from_str(answer).map_err(|e| format!("not the facts schema: {e}"))?;
    if parsed.facts.len() > MAX_FACTS_PER_WINDOW {
        return Err(format!("{} facts; at most {MAX_FACTS_PER_WINDOW}", parsed.facts.len()));
    }
    let mut drafts = Vec::with_capacity(parsed.facts.len());
    for fact in parsed.facts {
        let kind = FactKind::parse(&fact.kind).ok_or_else(|| format!("unknown kind {:?}", fact.kind))?;
        let stating = turns
            .iter()
            .find(|t| t.turn_index == fact.to_turn && t.role == Role::User)
            .ok_or_else(|| format!("turn {} is not a customer turn of this window", fact.to_turn))?;
        if fact.from_turn > fact.to_turn || !turns.iter().any(|t| t.turn_index == fact.from_turn) {
            return Err(format!("turns {}..={} are not a range of this window", fact.from_turn, fact.to_turn));
        }
        let source = FactSource { session_id, from_turn: fact.from_turn, to_turn: fact.to_turn };
        let draft = FactDraft::new(kind, &fact.subject, &fact.text, source, &stating.created_at)
            .ok_or_else(|| "an empty or over-long subject or text".to_owned())?;
        drafts.push(draft);
    }
    Ok(merge_window(drafts))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Uuid = Uuid::from_u128(0x6f1c2a9e_3b4d_4c8a_9e21_5a7b8c9d0e1f);

    fn turn(turn_index: u64, role: Role, content: &str) -> Turn {
        Turn {
            turn_index,
            role,
            content: content.to_owned(),
            intent: None,
            token_count: None,
            created_at: format!("2026-11-26T19:00:{:02}.000Z", turn_index % 60),
            item: None,
            retracted_at: None,
        }
    }

    fn user(turn_index: u64, content: &str) -> Turn {
        turn(turn_index, Role::User, content)
    }

    /// (kind, text) of what one user turn yields.
    fn facts_of(content: &str) -> Vec<(FactKind, String)> {
        let mut facts: Vec<(FactKind, String)> =
            extract(SESSION, &[user(1, content)]).into_iter().map(|d| (d.kind, d.text)).collect();
        facts.sort_by(|a, b| a.1.cmp(&b.1));
        facts
    }

    fn texts_of(content: &str) -> Vec<String> {
        facts_of(content).into_iter().map(|(_, text)| text).collect()
    }

    #[test]
    fn likes_and_dislikes_are_preferences() {
        assert_eq!(facts_of("I love Frieren."), [(FactKind::Preference, "loves Frieren".to_owned())]);
        assert_eq!(texts_of("I really like slice-of-life stories"), ["likes slice-of-life stories"]);
        assert_eq!(texts_of("I can't stand horror manga, honestly"), ["dislikes horror manga"]);
        assert_eq!(texts_of("I can’t stand gore"), ["dislikes gore"]);
        assert_eq!(texts_of("I don't like isekai"), ["dislikes isekai"]);
        assert_eq!(texts_of("I'm a huge fan of Naoki Urasawa"), ["loves Naoki Urasawa"]);
        assert_eq!(texts_of("My favourite series is Dungeon Meshi!"), ["loves Dungeon Meshi"]);
        assert_eq!(texts_of("I prefer seinen over shonen"), ["prefers seinen"]);
    }

    #[test]
    fn owned_and_read_titles_are_owns() {
        assert_eq!(facts_of("I already read Frieren"), [(FactKind::Owns, "has read Frieren".to_owned())]);
        assert_eq!(texts_of("I've already read Blue Period, so something else please"), ["has read Blue Period"]);
        assert_eq!(texts_of("I have volumes 1–3 of Frieren"), ["owns volumes 1–3 of Frieren"]);
        assert_eq!(texts_of("I've got vol. 1 to 4 of Vinland Saga"), ["owns vol. 1 to 4 of Vinland Saga"]);
        assert_eq!(texts_of("I already own the Witch Hat Atelier box set"), ["owns the Witch Hat Atelier box set"]);
    }

    #[test]
    fn formats_and_languages_are_their_own_subjects() {
        assert_eq!(facts_of("I prefer digital copies"), [(FactKind::Preference, "prefers digital".to_owned())]);
        assert_eq!(texts_of("I like e-books"), ["prefers digital"]);
        assert_eq!(texts_of("I prefer paperbacks to hardcovers"), ["prefers paperback"]);
        assert_eq!(texts_of("I prefer digital now"), ["prefers digital"]);
        assert_eq!(texts_of("I love Frieren these days"), ["loves Frieren"]);
        assert_eq!(texts_of("I can't stand hard covers"), ["avoids hardcover"]);
        assert_eq!(facts_of("I only read in French"), [(FactKind::Profile, "reads in French".to_owned())]);
        assert_eq!(texts_of("I prefer English translations"), ["reads in English"]);
        let digital = extract(SESSION, &[user(1, "I prefer digital")]);
        let paperback = extract(SESSION, &[user(1, "I love paperbacks")]);
        assert_eq!(digital[0].fact_id(), paperback[0].fact_id(), "one subject: the format");
    }

    #[test]
    fn one_turn_can_state_several_facts() {
        assert_eq!(
            texts_of("I love Frieren, and I already read Dungeon Meshi. I prefer digital"),
            ["has read Dungeon Meshi", "loves Frieren", "prefers digital"]
        );
    }

    #[test]
    fn questions_requests_and_vague_objects_are_not_facts() {
        for content in [
            "Do you think I like Frieren?",
            "Would I love Berserk?",
            "I'd like a refund",
            "I would like to order volume 2",
            "I love it!",
            "I like that one",
            "I love this series",
            "I have a question about shipping",
            "I have to go",
            "I read that review",
            "I like to know when it ships",
            "I love how fast you ship everything to me when I order before noon on weekdays",
            "Thanks, you are great",
        ] {
            assert!(facts_of(content).is_empty(), "{content:?} gave {:?}", facts_of(content));
        }
    }

    #[test]
    fn pasted_text_is_not_read() {
        let pasted = format!("I love Frieren and {}", "very long pasted text ".repeat(40));
        assert!(facts_of(&pasted).is_empty());
        let long_turn = format!("{} I prefer digital.", "Some words here. ".repeat(4_000));
        assert_eq!(texts_of(&long_turn), ["prefers digital"]);
    }

    #[test]
    fn a_negated_like_is_only_a_dislike() {
        assert_eq!(texts_of("I really don't like cliffhangers"), ["dislikes cliffhangers"]);
        assert_eq!(texts_of("I'm not a fan of cliffhangers"), ["dislikes cliffhangers"]);
    }

    #[test]
    fn assistant_turns_are_never_read() {
        let turns = [turn(1, Role::Assistant, "I love Frieren too! I prefer digital.")];
        assert!(extract(SESSION, &turns).is_empty());
    }

    #[test]
    fn the_latest_statement_of_a_subject_wins_within_a_window() {
        let turns = [user(1, "I love Frieren"), user(3, "Actually I can't stand Frieren"), user(5, "I prefer paperback")];

        let drafts = extract(SESSION, &turns);

        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[0].text, "prefers paperback");
        assert_eq!(drafts[1].text, "dislikes Frieren");
        assert_eq!(drafts[1].source, FactSource { session_id: SESSION, from_turn: 3, to_turn: 3 });
        assert_eq!(drafts[1].stated_at, turns[1].created_at);
    }

    #[test]
    fn a_restatement_widens_the_turn_range() {
        let turns = [user(2, "I love Frieren"), user(9, "As I said, I love frieren!")];

        let drafts = extract(SESSION, &turns);

        assert_eq!(drafts.len(), 1);
        assert_eq!((drafts[0].source.from_turn, drafts[0].source.to_turn), (2, 9));
    }

    #[test]
    fn a_window_gives_at_most_its_share_of_facts() {
        let turns: Vec<Turn> = (1..=30).map(|i| user(i, &format!("I love Series{i}"))).collect();
        let drafts = extract(SESSION, &turns);
        assert_eq!(drafts.len(), MAX_FACTS_PER_WINDOW);
        assert_eq!(drafts[0].text, "loves Series30", "the newest are kept");
    }

    #[test]
    fn normalisation_merges_spellings_of_one_subject() {
        assert_eq!(normalise("The Frieren series!"), "frieren");
        assert_eq!(normalise("  FRIEREN  "), "frieren");
        assert_eq!(normalise("Volumes 1–3"), "volumes 1-3");
        assert_eq!(normalise("the"), "the");
        let a = FactDraft::new(FactKind::Preference, "The Frieren series", "loves Frieren", source(1), "t").unwrap();
        let b = FactDraft::new(FactKind::Preference, "frieren", "dislikes frieren", source(2), "t").unwrap();
        let c = FactDraft::new(FactKind::Owns, "frieren", "owns frieren", source(2), "t").unwrap();
        assert_eq!(a.fact_id(), b.fact_id());
        assert_ne!(a.fact_id(), c.fact_id(), "the kind is part of the id");
        assert!(is_fact_id(&a.fact_id()));
    }

    fn source(turn: u64) -> FactSource {
        FactSource { session_id: SESSION, from_turn: turn, to_turn: turn }
    }

    #[test]
    fn fact_ids_have_one_shape() {
        assert!(is_fact_id(&fact_id(FactKind::Owns, "x")));
        for bad in ["", "ABCDEF0123456789abcdef0123456789", "zz", &"a".repeat(33), "../../etc/passwd"] {
            assert!(!is_fact_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_stated_key_gives_back_its_parts() {
        let key = stated_key("2026-11-26T19:00:01.000Z", &source(7));
        assert_eq!(parse_stated_key(&key), Some(("2026-11-26T19:00:01.000Z".to_owned(), SESSION, 7)));
        assert_eq!(parse_stated_key("2026-11-26T19:00:01.000Z#~"), None);
        assert_eq!(parse_stated_key(""), None);
    }

    #[test]
    fn stated_keys_order_by_time_then_session_then_turn() {
        let early = stated_key("2026-11-26T19:00:01.000Z", &source(9));
        let late = stated_key("2026-11-26T19:00:02.000Z", &source(1));
        assert!(early < late);
        assert!(stated_key("t", &source(9)) < stated_key("t", &source(10)));
    }

    fn fact(id: &str, second: u64) -> Fact {
        Fact {
            fact_id: id.to_owned(),
            kind: FactKind::Preference,
            text: id.to_owned(),
            source: source(second),
            updated_at: format!("2026-11-26T19:00:{second:02}.000Z"),
        }
    }

    #[test]
    fn pages_run_newest_first_and_end_without_a_position() {
        let mut facts = vec![fact("a", 1), fact("b", 3), fact("c", 2), fact("d", 5), fact("e", 4)];
        sort_newest_first(&mut facts);

        let first = page_after(facts.clone(), None, 2);
        let second = page_after(facts.clone(), first.next.as_ref(), 2);
        let third = page_after(facts.clone(), second.next.as_ref(), 2);

        let ids = |p: &FactPage| p.facts.iter().map(|f| f.fact_id.clone()).collect::<Vec<_>>();
        assert_eq!((ids(&first), ids(&second), ids(&third)), (vec!["d".to_owned(), "e".into()], vec!["b".into(), "c".into()], vec!["a".into()]));
        assert!(third.next.is_none());
        assert!(page_after(facts, None, 5).next.is_none());
    }

    fn window() -> Vec<Turn> {
        vec![
            user(21, "I have volumes 1-3 of Frieren"),
            turn(22, Role::Assistant, "Noted."),
            user(23, "I prefer digital"),
        ]
    }

    #[test]
    fn a_valid_model_answer_becomes_drafts() {
        let answer = r#"{"facts": [
            {"kind": "owns", "subject": "Frieren", "text": "owns volumes 1-3 of Frieren", "from_turn": 21, "to_turn": 21},
            {"kind": "preference", "subject": "format", "text": "prefers digital", "from_turn": 23, "to_turn": 23}
        ]}"#;

        let drafts = facts_from_model_json(answer, SESSION, &window()).unwrap();

        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[0].text, "prefers digital");
        assert_eq!(drafts[0].stated_at, window()[2].created_at);
        assert_eq!(drafts[0].fact_id(), extract(SESSION, &[user(1, "I prefer paperback")])[0].fact_id());
        let fenced = format!("```json\n{answer}\n```");
        assert_eq!(facts_from_model_json(&fenced, SESSION, &window()).unwrap().len(), 2);
    }

    #[test]
    fn a_model_answer_that_breaks_the_schema_is_refused_whole() {
        let fact = |kind: &str, text: &str, from: u64, to: u64| {
            format!(r#"{{"facts": [{{"kind": "{kind}", "subject": "s", "text": "{text}", "from_turn": {from}, "to_turn": {to}}}]}}"#)
        };
        let too_many = format!(
            r#"{{"facts": [{}]}}"#,
            (0..21).map(|_| r#"{"kind":"owns","subject":"s","text":"t","from_turn":21,"to_turn":21}"#).collect::<Vec<_>>().join(",")
        );
        for bad in [
            "not json".to_owned(),
            "{}".to_owned(),
            r#"{"facts": [], "extra": 1}"#.to_owned(),
            fact("opinion", "t", 21, 21),
            fact("owns", "", 21, 21),
            fact("owns", &"x".repeat(161), 21, 21),
            fact("owns", "t", 21, 99),
            fact("owns", "t", 22, 22),
            fact("owns", "t", 23, 21),
            too_many,
        ] {
            assert!(facts_from_model_json(&bad, SESSION, &window()).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_schema_is_valid_json_and_names_every_kind() {
        let schema: serde_json::Value = serde_json::from_str(FACTS_JSON_SCHEMA).unwrap();
        let kinds = &schema["properties"]["facts"]["items"]["properties"]["kind"]["enum"];
        assert_eq!(kinds, &serde_json::json!(["preference", "owns", "profile"]));
        assert_eq!(schema["properties"]["facts"]["maxItems"], MAX_FACTS_PER_WINDOW);
    }
}
