//! The data the benchmarks run against: a long session of ~1 KB English chat turns, with
//! its rolling summaries, made through the store exactly as the functions make them.
use serde_json::{json, Map, Value};
use tidewater::model::{Role, Turn};
use tidewater::summarizer::SummaryInput;
use tidewater::{
    Caller, DynamoStore, Error, ExtractiveSummarizer, NewSession, NewTurn, SessionCreator,
    SummaryWriter, TurnAppender,
};
use uuid::Uuid;

const TITLES: &[&str] = &[
    "Frieren: Beyond Journey's End",
    "Dungeon Meshi",
    "Chainsaw Man",
    "Spy x Family",
    "Blue Period",
    "Vinland Saga",
    "Witch Hat Atelier",
    "The Apothecary Diaries",
    "Kaiju No. 8",
    "Oshi no Ko",
    "Mushishi",
    "Yotsuba&!",
];

const USER: &[&str] = &[
    "Do you have volume {n} of {t} in paperback, and is it the new translation?",
    "I read the first few volumes of {t} at a friend's place and I would like to own them myself.",
    "How long does shipping to Lyon usually take if I order before noon today?",
    "Is there a box set of {t}, or do I have to buy the volumes one by one?",
    "My nephew is twelve; would {t} be appropriate for him, or is it too violent?",
    "Can I reserve volume {n} now and pay when it arrives in the shop?",
    "What is the difference between the deluxe edition and the regular one of {t}?",
    "I already own volumes one to {n}, so I only need the rest of the series.",
    "Do you ship in protective packaging? The last parcel I got from another shop arrived with bent corners.",
    "Could you remind me which volumes were in my last order? I think I missed one.",
    "Are the colour pages in {t} printed in colour in this edition, or in greyscale?",
    "If I buy three volumes, does the free shipping offer still apply to my country?",
];

const ASSISTANT: &[&str] = &[
    "Yes, volume {n} of {t} is in stock: we have 4 copies of the paperback, in the new translation.",
    "The deluxe edition of {t} has a larger trim size, a dust jacket and the colour pages restored.",
    "Orders placed before noon leave the warehouse the same day; delivery to Lyon takes two to three working days.",
    "I can reserve volume {n} for you; we hold reservations for seven days after the book arrives.",
    "There is a box set of {t} covering volumes one to {n}; it costs 20 percent less than the single volumes.",
    "Most readers find {t} fine from twelve upwards, although a few chapters deal with loss and grief.",
    "Free shipping applies from three volumes to every country in the European Union, including yours.",
    "Your last order had volumes {n} and 7 of {t}; volume 6 was back-ordered and ships next week.",
    "Every parcel goes out in a rigid cardboard mailer with corner protectors, so the covers stay flat.",
    "In this edition the colour pages of {t} are printed in colour on glossy paper at the start of each volume.",
    "I have added the remaining volumes of {t} to your basket; you can review them before paying.",
    "The next volume of {t} is announced for the spring; I can notify you by email when it is available.",
];

/// A deterministic generator of chat text: the same seed gives the same session.
pub struct Chat {
    state: u64,
}

impl Chat {
    pub fn new(seed: u64) -> Chat {
        Chat {
            state: seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
        }
    }

    fn next(&mut self, below: usize) -> usize {
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.state >> 33) as usize) % below.max(1)
    }

    /// About `target` bytes of English chat text for `role`, never over `target`.
    pub fn text(&mut self, role: Role, target: usize) -> String {
        let pool = if role == Role::User { USER } else { ASSISTANT };
        let mut text = String::with_capacity(target);
        let mut misses = 0;
        while text.len() < target * 9 / 10 && misses < 8 {
            let sentence = pool[self.next(pool.len())]
                .replace("{t}", TITLES[self.next(TITLES.len())])
                .replace("{n}", &(1 + self.next(14)).to_string());
            if text.len() + sentence.len() + 1 > target {
                misses += 1;
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&sentence);
        }
        text
    }
}

pub fn role_of(index: u64) -> Role {
    if index % 2 == 1 {
        Role::User
    } else {
        Role::Assistant
    }
}

pub fn page_context() -> Map<String, Value> {
    json!({"page": "/manga/frieren/vol-3", "locale": "en-GB"})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

pub fn new_turn(chat: &mut Chat, index: u64, response_id: String, bytes: usize) -> NewTurn {
    let role = role_of(index);
    NewTurn {
        response_id,
        role: if role == Role::User {
            "user"
        } else {
            "assistant"
        }
        .to_owned(),
        content: chat.text(role, bytes),
        intent: (role == Role::User).then(|| "availability".to_owned()),
        token_count: Some((bytes / 4) as i64),
        item: None,
    }
}

/// A session of `turns` turns of ~`bytes` bytes each, owned by `owner`, with every rolling
/// summary written as the summarize function would (extractive summariser).
pub async fn long_session(
    store: &DynamoStore,
    owner: &Caller,
    turns: u64,
    bytes: usize,
) -> Result<Seeded, Error> {
    let created = store
        .create_session(
            owner,
            NewSession {
                session_id: None,
                page_context: Some(page_context()),
            },
        )
        .await?;
    let session_id = created.session_id;
    let mut chat = Chat::new(42);
    let mut history = Vec::with_capacity(turns as usize);
    let mut content_bytes = 0;
    for index in 1..=turns {
        let turn = new_turn(&mut chat, index, format!("seed-{index}"), bytes);
        content_bytes += turn.content.len();
        let draft = turn.validate(store.config())?;
        let appended = store.append_turn(owner, session_id, draft.clone()).await?;
        history.push(Turn {
            turn_index: appended.turn_index,
            role: draft.role,
            content: draft.content,
            intent: draft.intent,
            token_count: draft.token_count,
            created_at: String::new(),
            item: None,
            retracted_at: None,
        });
    }
    let window = store.config().summary_threshold.max(1) as usize;
    let summarizer = ExtractiveSummarizer::default();
    let mut summary: Option<String> = None;
    for chunk in history.chunks(window).filter(|c| c.len() == window) {
        let text = summarizer.summarize_now(SummaryInput {
            previous: summary.as_deref(),
            turns: chunk,
        });
        let through = chunk.last().map(|t| t.turn_index).unwrap_or_default();
        store.put_summary(session_id, through, &text).await?;
        summary = Some(text);
    }
    Ok(Seeded {
        session_id,
        turns,
        mean_content_bytes: content_bytes / turns.max(1) as usize,
        summary_chars: summary.map(|s| s.chars().count()).unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Copy)]
pub struct Seeded {
    pub session_id: Uuid,
    pub turns: u64,
    pub mean_content_bytes: usize,
    pub summary_chars: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_is_about_the_asked_size_and_repeatable() {
        let text = Chat::new(7).text(Role::User, 1000);
        assert!((900..=1000).contains(&text.len()), "{}", text.len());
        assert_eq!(text, Chat::new(7).text(Role::User, 1000));
        assert_ne!(text, Chat::new(8).text(Role::User, 1000));
    }
}
