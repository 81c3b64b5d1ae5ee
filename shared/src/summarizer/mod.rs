//! Rolling summaries: the [`Summarizer`] trait and its offline default, the extractive
//! summariser; its windows are in [`window`] and the offline fact extractor in [`facts`].
//!
//! A session is summarised in fixed windows of `threshold` turns (1–20, 21–40, ... at the
//! default of 20). Each summary is made from the previous summary plus the turns of one
//! window, so it stays rolling and bounded.
use std::future::Future;

use uuid::Uuid;

use crate::memory::FactDraft;
use crate::model::{Role, Turn};
use crate::Error;

pub mod facts;
pub mod window;
pub use window::{due_at, next_window_end};

/// The longest summary the extractive summariser writes, in characters.
pub const DEFAULT_SUMMARY_MAX_CHARS: usize = 2_000;

/// What one summary is made from: the previous summary, and the turns after it, oldest first.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInput<'a> {
    pub previous: Option<&'a str>,
    pub turns: &'a [Turn],
}

/// Turns a previous summary and a window of turns into the next summary.
pub trait Summarizer {
    fn summarize(&self, input: SummaryInput<'_>) -> impl Future<Output = Result<String, Error>> + Send;

    /// The durable customer facts the window's turns state (long-term memory). Infallible:
    /// a summariser that asks a model falls back to this offline extraction on any error.
    fn extract_facts(&self, session_id: Uuid, turns: &[Turn]) -> impl Future<Output = Vec<FactDraft>> + Send {
        let facts = facts::extract(session_id, turns);
        async move { facts }
    }
}

/// The offline default: deterministic and extractive, with no network.
///
/// It keeps the user's questions, the intents, named titles (quoted text and runs of
/// capitalised words) and the last assistant answer, and merges them with the previous
/// summary, dropping the oldest entries first to stay within `max_chars`.
#[derive(Debug, Clone, Copy)]
pub struct ExtractiveSummarizer {
    max_chars: usize,
}

impl Default for ExtractiveSummarizer {
    fn default() -> Self {
        ExtractiveSummarizer { max_chars: DEFAULT_SUMMARY_MAX_CHARS }
    }
}

impl ExtractiveSummarizer {
    /// `max_chars` is raised to at least 200, so each part keeps some room.
    pub fn new(max_chars: usize) -> Self {
        ExtractiveSummarizer { max_chars: max_chars.max(200) }
    }

    pub fn max_chars(&self) -> usize {
        self.max_chars
    }

    /// The summary, synchronously; [`Summarizer::summarize`] wraps this.
    pub fn summarize_now(&self, input: SummaryInput<'_>) -> String {
        let mut digest = Digest::parse(input.previous.unwrap_or_default());
        for turn in input.turns {
            digest.add_turn(turn);
        }
        digest.render(self.max_chars)
    }
}

impl Summarizer for ExtractiveSummarizer {
    async fn summarize(&self, input: SummaryInput<'_>) -> Result<String, Error> {
        Ok(self.summarize_now(input))
    }
}

const QUESTIONS: &str = "Questions: ";
const INTENTS: &str = "Intents: ";
const TITLES: &str = "Titles: ";
const LAST_ANSWER: &str = "Last answer: ";
const EARLIER: &str = "Earlier: ";
const QUESTION_SEPARATOR: &str = " | ";
const LIST_SEPARATOR: &str = "; ";

const MAX_QUESTION_CHARS: usize = 200;
const MAX_TITLE_CHARS: usize = 80;
const MAX_INTENTS: usize = 10;
const MAX_TITLES: usize = 20;

/// The parts of an extractive summary, oldest entries first.
#[derive(Debug, Default, PartialEq)]
struct Digest {
    earlier: Option<String>,
    questions: Vec<String>,
    intents: Vec<String>,
    titles: Vec<String>,
    last_answer: Option<String>,
}

impl Digest {
    /// Reads a summary this summariser wrote. Any other text (a Bedrock summary, say) is
    /// kept whole as `earlier`, to be shortened like everything else.
    fn parse(previous: &str) -> Digest {
        let mut digest = Digest::default();
        let mut foreign = Vec::new();
        for line in previous.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix(QUESTIONS) {
                digest.questions.extend(split(rest, QUESTION_SEPARATOR));
            } else if let Some(rest) = line.strip_prefix(INTENTS) {
                digest.intents.extend(split(rest, LIST_SEPARATOR));
            } else if let Some(rest) = line.strip_prefix(TITLES) {
                digest.titles.extend(split(rest, LIST_SEPARATOR));
            } else if let Some(rest) = line.strip_prefix(LAST_ANSWER) {
                digest.last_answer = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix(EARLIER) {
                foreign.push(rest.trim().to_owned());
            } else {
                foreign.push(line.trim().to_owned());
            }
        }
        if !foreign.is_empty() {
            digest.earlier = Some(foreign.join(" "));
        }
        digest
    }

    fn add_turn(&mut self, turn: &Turn) {
        if let Some(intent) = turn.intent.as_deref().map(|i| clean(i, LIST_SEPARATOR)).filter(|i| !i.is_empty()) {
            push_latest(&mut self.intents, intent);
        }
        for title in titles(&turn.content) {
            push_latest(&mut self.titles, title);
        }
        match turn.role {
            Role::User => {
                for question in questions(&turn.content) {
                    push_latest(&mut self.questions, question);
                }
            }
            Role::Assistant => {
                let answer = clean(&turn.content, "\n");
                if !answer.is_empty() {
                    self.last_answer = Some(answer);
                }
            }
            // The system prompt and tool results are no part of what was said.
            Role::System | Role::Tool => {}
        }
    }

    /// Renders within `max_chars`: the last answer gets at most a quarter, intents and titles
    /// keep their newest entries within their shares, the newest questions fill the rest, and
    /// earlier text takes what is left.
    fn render(mut self, max_chars: usize) -> String {
        keep_newest(&mut self.intents, MAX_INTENTS);
        keep_newest(&mut self.titles, MAX_TITLES);
        let mut lines: Vec<String> = Vec::new();
        let mut budget = max_chars;
        fn take(line: String, budget: &mut usize) -> Option<String> {
            let cost = line.chars().count() + 1;
            (cost <= *budget).then(|| {
                *budget -= cost;
                line
            })
        }

        let answer = self.last_answer.as_deref().map(|a| format!("{LAST_ANSWER}{}", truncate(a, max_chars / 4)));
        let answer = answer.and_then(|a| take(a, &mut budget));
        // Each list keeps its newest entries within its share: intents an eighth, titles a
        // quarter; questions get what is left.
        let list_line = |label: &str, items: &mut Vec<String>, separator: &str, share: usize, budget: &mut usize| {
            while !items.is_empty() {
                let line = format!("{label}{}", items.join(separator));
                if line.chars().count() < share {
                    if let Some(line) = take(line, budget) {
                        return Some(line);
                    }
                }
                items.remove(0);
            }
            None
        };
        let intents = list_line(INTENTS, &mut self.intents, LIST_SEPARATOR, max_chars / 8, &mut budget);
        let titles = list_line(TITLES, &mut self.titles, LIST_SEPARATOR, max_chars / 4, &mut budget);
        let questions = list_line(QUESTIONS, &mut self.questions, QUESTION_SEPARATOR, max_chars, &mut budget);
        let earlier = self.earlier.as_deref().and_then(|e| {
            let room = budget.checked_sub(EARLIER.len() + 1).filter(|r| *r >= 20)?;
            Some(format!("{EARLIER}{}", truncate(e, room)))
        });

        lines.extend(earlier);
        lines.extend(questions);
        lines.extend(intents);
        lines.extend(titles);
        lines.extend(answer);
        truncate(&lines.join("\n"), max_chars)
    }
}

fn split<'a>(text: &'a str, separator: &'a str) -> impl Iterator<Item = String> + 'a {
    text.split(separator).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Collapses whitespace and removes the separator the entry will be joined with.
fn clean(text: &str, separator: &str) -> String {
    let separator = separator.trim();
    let text = if separator.is_empty() { text.to_owned() } else { text.replace(separator, " ") };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Adds `item` as the newest entry; an equal older entry (ignoring case) is dropped.
fn push_latest(items: &mut Vec<String>, item: String) {
    items.retain(|existing| !existing.eq_ignore_ascii_case(&item));
    items.push(item);
}

fn keep_newest(items: &mut Vec<String>, max: usize) {
    if items.len() > max {
        items.drain(..items.len() - max);
    }
}

/// At most `max_chars` characters, ending in an ellipsis when shortened.
fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    format!("{}…", kept.trim_end())
}

/// The sentences of `text` that end in a question mark.
fn questions(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?' | '？' | '\n') {
            let end = i + c.len_utf8();
            if matches!(c, '?' | '？') {
                let sentence = clean(&text[start..end], QUESTION_SEPARATOR);
                if sentence.chars().count() > 1 {
                    found.push(truncate(&sentence, MAX_QUESTION_CHARS));
                }
            }
            start = end;
        }
    }
    found
}

/// Words that start a sentence without naming anything.
const NOT_TITLES: &[&str] = &[
    "I", "I'm", "I'd", "I've", "I'll", "A", "An", "The", "Is", "Are", "Do", "Does", "Did", "Can", "Could", "Would",
    "Will", "Should", "What", "Which", "Who", "When", "Where", "Why", "How", "Hi", "Hello", "Hey", "Thanks", "Thank",
    "Yes", "No", "OK", "Okay", "Please", "Sure", "It", "It's", "This", "That", "These", "Those", "We", "You", "Your",
    "My", "Our", "They", "There", "Here", "And", "But", "Or", "So", "If", "Also", "Great", "Sorry", "Have", "Has",
];
/// Small words allowed inside a title: "Lord of the Rings".
const CONNECTORS: &[&str] = &["of", "the", "and", "a", "an", "in", "on", "to", "for", "x", "de", "no", "&"];

/// Named titles in `text`: quoted text, and runs of capitalised words.
fn titles(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (open, close) in [('"', '"'), ('“', '”'), ('「', '」'), ('『', '』'), ('《', '》')] {
        let mut rest = text;
        while let Some(start) = rest.find(open) {
            let after = &rest[start + open.len_utf8()..];
            let Some(end) = after.find(close) else { break };
            let title = clean(&after[..end], LIST_SEPARATOR);
            if (2..=MAX_TITLE_CHARS).contains(&title.chars().count()) {
                found.push(title);
            }
            rest = &after[end + close.len_utf8()..];
        }
    }

    let mut run: Vec<&str> = Vec::new();
    let mut sentence_start = true;
    let flush = |run: &mut Vec<&str>, found: &mut Vec<String>| {
        while run.last().is_some_and(|w| CONNECTORS.contains(w)) {
            run.pop();
        }
        if !run.is_empty() {
            let title = run.join(" ");
            if title.chars().count() <= MAX_TITLE_CHARS {
                found.push(title);
            }
        }
        run.clear();
    };
    for raw in text.split_whitespace() {
        let word = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '&');
        let ends_clause = raw.ends_with(['.', '!', '?', ',', ';', ':', '？', '。']);
        let capitalised = word.chars().next().is_some_and(char::is_uppercase);
        let starts_title = capitalised && !(sentence_start && NOT_TITLES.contains(&word));
        if starts_title
            || (!run.is_empty()
                && (CONNECTORS.contains(&word) || word.chars().all(|c| c.is_ascii_digit()))
                && !word.is_empty())
        {
            run.push(word);
        } else {
            flush(&mut run, &mut found);
        }
        if ends_clause {
            flush(&mut run, &mut found);
        }
        sentence_start = raw.ends_with(['.', '!', '?', '？', '。']);
    }
    flush(&mut run, &mut found);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(index: u64, role: Role, content: &str, intent: Option<&str>) -> Turn {
        Turn {
            turn_index: index,
            role,
            content: content.to_owned(),
            intent: intent.map(str::to_owned),
            token_count: None,
            created_at: "2026-11-26T19:00:00Z".to_owned(),
            item: None,
            retracted_at: None,
        }
    }

    fn conversation() -> Vec<Turn> {
        vec![
            turn(1, Role::User, "Hi! Is volume 3 of Frieren in stock?", Some("availability")),
            turn(2, Role::Assistant, "Yes, Frieren volume 3 is in stock.", None),
            turn(3, Role::User, "Great. Do you also have \"Spy x Family\"? I like comedy.", Some("browse")),
            turn(4, Role::Assistant, "We have Spy x Family volumes 1 to 12.", None),
        ]
    }

    #[test]
    fn keeps_questions_intents_titles_and_the_last_answer() {
        let turns = conversation();
        let summary = ExtractiveSummarizer::default().summarize_now(SummaryInput { previous: None, turns: &turns });

        assert!(
            summary.contains("Questions: Is volume 3 of Frieren in stock? | Do you also have \"Spy x Family\"?"),
            "{summary}"
        );
        assert!(summary.contains("Intents: availability; browse"), "{summary}");
        assert!(summary.contains("Frieren"), "{summary}");
        assert!(summary.contains("Spy x Family"), "{summary}");
        assert!(summary.ends_with("Last answer: We have Spy x Family volumes 1 to 12."), "{summary}");
        assert!(!summary.contains("I like comedy"), "statements are not questions: {summary}");
    }

    #[test]
    fn is_deterministic() {
        let turns = conversation();
        let summarizer = ExtractiveSummarizer::default();
        let input = SummaryInput { previous: Some("Earlier: Alice collects manga."), turns: &turns };
        assert_eq!(summarizer.summarize_now(input), summarizer.summarize_now(input));
    }

    #[test]
    fn rolls_the_previous_summary_forward() {
        let turns = conversation();
        let summarizer = ExtractiveSummarizer::default();
        let first = summarizer.summarize_now(SummaryInput { previous: None, turns: &turns[..2] });
        let second = summarizer.summarize_now(SummaryInput { previous: Some(&first), turns: &turns[2..] });

        assert!(second.contains("Is volume 3 of Frieren in stock?"), "{second}");
        assert!(second.contains("Intents: availability; browse"), "{second}");
        assert!(second.contains("Last answer: We have Spy x Family"), "{second}");
        assert_eq!(second.matches("Questions: ").count(), 1);
    }

    #[test]
    fn stays_within_the_cap_however_long_the_session() {
        let summarizer = ExtractiveSummarizer::new(500);
        let mut summary: Option<String> = None;
        for window in 0..50u64 {
            let turns: Vec<Turn> = (1..=20)
                .map(|i| {
                    let index = window * 20 + i;
                    if i % 2 == 1 {
                        turn(
                            index,
                            Role::User,
                            &format!("Do you have Volume {index} of Series Number {window}?"),
                            Some("browse"),
                        )
                    } else {
                        turn(index, Role::Assistant, &"A long answer about the series. ".repeat(40), None)
                    }
                })
                .collect();
            let next = summarizer.summarize_now(SummaryInput { previous: summary.as_deref(), turns: &turns });
            assert!(next.chars().count() <= 500, "{} chars", next.chars().count());
            summary = Some(next);
        }
        let summary = summary.unwrap_or_default();
        assert!(summary.contains("Do you have Volume 999 of Series Number 49?"), "newest question kept: {summary}");
        assert!(!summary.contains("Volume 1 of"), "oldest question dropped: {summary}");
    }

    #[test]
    fn foreign_previous_text_is_kept_as_earlier() {
        let turns = conversation();
        let summary = ExtractiveSummarizer::default()
            .summarize_now(SummaryInput { previous: Some("The customer is a long-time Frieren fan."), turns: &turns });
        assert!(summary.starts_with("Earlier: The customer is a long-time Frieren fan."), "{summary}");
    }

    #[test]
    fn titles_come_from_quotes_and_capitalised_runs() {
        let found = titles("Do you have The Lord of the Rings? I loved 「葬送のフリーレン」 and Chainsaw Man 2.");
        assert!(found.contains(&"葬送のフリーレン".to_owned()), "{found:?}");
        assert!(found.contains(&"The Lord of the Rings".to_owned()), "{found:?}");
        assert!(found.contains(&"Chainsaw Man 2".to_owned()), "{found:?}");
        assert!(!found.iter().any(|t| t == "Do" || t == "I"), "{found:?}");
    }

    #[test]
    fn an_empty_window_and_no_previous_summary_give_an_empty_summary() {
        let summary = ExtractiveSummarizer::default().summarize_now(SummaryInput { previous: None, turns: &[] });
        assert_eq!(summary, "");
    }
}
