//! A model's answer of facts: the JSON Schema it must follow ([`FACTS_JSON_SCHEMA`]), and its
//! validation against the window of turns it was given ([`facts_from_model_json`]).
use serde::Deserialize;
use uuid::Uuid;

use super::{merge_window, FactDraft, FactKind, FactSource, MAX_FACTS_PER_WINDOW};
use crate::model::{Role, Turn};


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
    use crate::summarizer::facts::extract;
    use crate::summarizer::facts::tests::{turn, user, SESSION};

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
