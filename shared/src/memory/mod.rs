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
//!
//! The offline extractor of facts is [`crate::summarizer::facts`], beside the extractive
//! summariser; [`model_answer`] validates the same schema when a model extracts them instead.
//!
//! The text reaching an extractor is already redacted, and guests get no long-term memory:
//! both are decided before extraction is called.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;


mod model_answer;
pub use model_answer::{facts_from_model_json, FACTS_JSON_SCHEMA};

/// Facts a context load returns when `max_memory` is not given, and the most it may ask for.
pub const DEFAULT_MAX_MEMORY: usize = 20;
pub const MAX_MAX_MEMORY: usize = 50;
/// Page size of `GET /customers/me/memory`, by default and at most.
pub const DEFAULT_MEMORY_PAGE: usize = 20;
pub const MAX_MEMORY_PAGE: usize = 100;
pub use crate::config::DEFAULT_MEMORY_MAX_FACTS;
/// The most facts one window contributes (newest statements first); well under the 100
/// items of the transaction that writes them.
pub const MAX_FACTS_PER_WINDOW: usize = 20;
pub const MAX_FACT_TEXT_CHARS: usize = 160;
pub const MAX_SUBJECT_CHARS: usize = 80;

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

    /// The tokens a fact counts for under a context's `max_tokens`: a quarter of its text's
    /// UTF-8 bytes, rounded up, as for a turn without `token_count`.
    pub fn tokens(&self) -> u64 {
        (self.text.len() as u64).div_ceil(4)
    }
}

/// The newest facts of `facts` (newest first) whose tokens together fit `max_tokens`.
pub fn within_tokens(mut facts: Vec<Fact>, max_tokens: Option<u64>) -> Vec<Fact> {
    let Some(max) = max_tokens else { return facts };
    let mut used = 0u64;
    let fitting = facts
        .iter()
        .take_while(|fact| {
            used = used.saturating_add(fact.tokens());
            used <= max
        })
        .count();
    facts.truncate(fitting);
    facts
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

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: Uuid = Uuid::from_u128(0x6f1c2a9e_3b4d_4c8a_9e21_5a7b8c9d0e1f);

    #[test]
    fn within_tokens_keeps_the_newest_facts_that_fit_together() {
        let facts = vec![fact("prefers digital", 3), fact("loves Frieren", 2), fact("reads in English", 1)];
        let texts = |facts: Vec<Fact>| facts.into_iter().map(|f| f.text).collect::<Vec<_>>();

        assert_eq!(facts[0].tokens(), 4, "15 bytes");
        assert_eq!(texts(within_tokens(facts.clone(), None)).len(), 3);
        assert_eq!(texts(within_tokens(facts.clone(), Some(8))), ["prefers digital", "loves Frieren"]);
        assert_eq!(texts(within_tokens(facts.clone(), Some(7))), ["prefers digital"]);
        assert!(within_tokens(facts, Some(3)).is_empty());
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
}
