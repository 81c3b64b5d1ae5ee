//! The offline fact extractor: stated likes and dislikes ("I love / prefer / can't stand …"),
//! titles the customer owns or has read ("I already read …", "I have volumes 1–3 of …"), and
//! language or format preferences. It reads the customer's own turns only, and only
//! statements, never questions. Deterministic: a regex per stance, no network.
use std::sync::LazyLock;

use regex_lite::{Captures, Regex};
use uuid::Uuid;

use crate::memory::{merge_window, normalise, FactDraft, FactKind, FactSource, MAX_SUBJECT_CHARS};
use crate::model::{Role, Turn};

/// An object of more words than this is a sentence, not a thing someone likes or owns.
const MAX_OBJECT_WORDS: usize = 8;
/// A sentence longer than this is pasted text, not a statement about oneself; it is not read,
/// which also bounds the work a 64 KiB turn can cause.
const MAX_STATEMENT_BYTES: usize = 500;


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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::memory::MAX_FACTS_PER_WINDOW;

    pub(crate) const SESSION: Uuid = Uuid::from_u128(0x6f1c2a9e_3b4d_4c8a_9e21_5a7b8c9d0e1f);

    pub(crate) fn turn(turn_index: u64, role: Role, content: &str) -> Turn {
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

    pub(crate) fn user(turn_index: u64, content: &str) -> Turn {
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
        assert_eq!(digital[0].identity(), paperback[0].identity(), "one subject: the format");
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
}
