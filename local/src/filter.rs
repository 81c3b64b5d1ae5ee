//! A function's DynamoDB event source mapping, read from `template.yaml`, and its
//! `FilterCriteria` evaluated the way Lambda does, so the local stream runner and the
//! benchmark filter exactly what the deployed mapping filters.
//!
//! Supported pattern subset (EventBridge syntax): nested keys, lists of alternatives with
//! exact values, `{"exists": bool}`, `{"prefix": "..."}` and `{"anything-but": ...}`.
//! Anything else (`numeric` above all, which never matches a DynamoDB `N` value) is refused
//! when the template is read.
use std::path::Path;

use aws_lambda_events::dynamodb::EventRecord;
use serde_json::{Map, Value};
use tidewater::Error;

use crate::template;

/// The stream event of one function in the template.
#[derive(Debug, Clone)]
pub struct StreamMapping {
    /// The function's binary, as `cargo lambda watch` serves it.
    pub function: String,
    pub batch_size: usize,
    /// Retries of a failed batch before its records are given up (the on-failure destination).
    pub maximum_retry_attempts: u32,
    pub filter: EventFilter,
}

impl StreamMapping {
    /// Reads the `Type: DynamoDB` event of the function built as `binary` from the template file.
    pub fn load(path: impl AsRef<Path>, binary: &str) -> Result<StreamMapping, Error> {
        let template = template::load(path).map_err(Error::Validation)?;
        StreamMapping::from_template(&template, binary)
    }

    pub fn from_template(template: &serde_yaml::Value, binary: &str) -> Result<StreamMapping, Error> {
        let (id, properties, function) = template::functions(template)
            .into_iter()
            .find(|(_, _, b)| b == binary)
            .ok_or_else(|| Error::Validation(format!("the template has no function built as {binary:?}")))?;
        let events = properties.get("Events").and_then(serde_yaml::Value::as_mapping).cloned().unwrap_or_default();
        let stream = events
            .values()
            .find(|e| e.get("Type").and_then(serde_yaml::Value::as_str) == Some("DynamoDB"))
            .and_then(|e| e.get("Properties"))
            .ok_or_else(|| Error::Validation(format!("{id} has no DynamoDB stream event")))?;
        let number = |name: &str, default: u64| stream.get(name).and_then(serde_yaml::Value::as_u64).unwrap_or(default);

        let mut patterns = Vec::new();
        let filters =
            stream.get("FilterCriteria").and_then(|c| c.get("Filters")).and_then(serde_yaml::Value::as_sequence);
        for filter in filters.into_iter().flatten() {
            let pattern = match filter.get("Pattern") {
                Some(serde_yaml::Value::String(text)) => serde_json::from_str(text)
                    .map_err(|e| Error::Validation(format!("{id}: a filter pattern is not JSON: {e}")))?,
                Some(other) => serde_json::to_value(other)
                    .map_err(|e| Error::Validation(format!("{id}: a filter pattern cannot be read: {e}")))?,
                None => return Err(Error::Validation(format!("{id}: a filter has no Pattern"))),
            };
            patterns.push(pattern);
        }
        Ok(StreamMapping {
            function,
            // Lambda's default batch size for DynamoDB streams is 100.
            batch_size: number("BatchSize", 100).max(1) as usize,
            maximum_retry_attempts: number("MaximumRetryAttempts", 3) as u32,
            filter: EventFilter::new(patterns)?,
        })
    }
}

/// Filter patterns; a record passes when any pattern matches it (no pattern: all pass).
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    patterns: Vec<Map<String, Value>>,
}

impl EventFilter {
    pub fn new(patterns: Vec<Value>) -> Result<EventFilter, Error> {
        let patterns = patterns
            .into_iter()
            .map(|pattern| match pattern {
                Value::Object(object) => {
                    validate(&object, "")?;
                    Ok(object)
                }
                _ => Err(Error::Validation("a filter pattern must be a JSON object".to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(EventFilter { patterns })
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the record, in the Lambda event's JSON shape, passes.
    pub fn matches(&self, record: &Value) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| matches_object(p, Some(record)))
    }

    pub fn matches_record(&self, record: &EventRecord) -> bool {
        serde_json::to_value(record).is_ok_and(|value| self.matches(&value))
    }
}

fn validate(pattern: &Map<String, Value>, path: &str) -> Result<(), Error> {
    for (key, value) in pattern {
        let here = format!("{path}/{key}");
        match value {
            Value::Object(inner) => validate(inner, &here)?,
            Value::Array(alternatives) if !alternatives.is_empty() => {
                for alternative in alternatives {
                    validate_alternative(alternative, &here)?;
                }
            }
            _ => return Err(Error::Validation(format!("filter {here}: expected an object or a non-empty list"))),
        }
    }
    Ok(())
}

fn validate_alternative(alternative: &Value, path: &str) -> Result<(), Error> {
    let Value::Object(operator) = alternative else { return Ok(()) };
    let supported = operator.len() == 1
        && match operator.iter().next() {
            Some((name, Value::Bool(_))) => name == "exists",
            Some((name, Value::String(_))) => name == "prefix" || name == "anything-but",
            Some((name, Value::Array(values))) => name == "anything-but" && values.iter().all(|v| !v.is_object()),
            Some((name, Value::Number(_))) => name == "anything-but",
            _ => false,
        };
    if supported {
        return Ok(());
    }
    Err(Error::Validation(format!(
        "filter {path}: unsupported operator {alternative}; only exact values, exists, prefix and anything-but \
         are evaluated locally (and a numeric filter never matches a DynamoDB N value)"
    )))
}

fn matches_object(pattern: &Map<String, Value>, value: Option<&Value>) -> bool {
    pattern.iter().all(|(key, expected)| {
        let field = value.and_then(Value::as_object).and_then(|object| object.get(key));
        match expected {
            Value::Object(inner) => matches_object(inner, field),
            Value::Array(alternatives) => matches_leaf(alternatives, field),
            _ => false,
        }
    })
}

fn matches_leaf(alternatives: &[Value], field: Option<&Value>) -> bool {
    match field {
        // As in EventBridge, a pattern list matches leaves only: an object there is no leaf.
        None | Some(Value::Object(_)) => alternatives.iter().any(|a| a.get("exists") == Some(&Value::Bool(false))),
        Some(Value::Array(items)) => items.iter().any(|item| alternatives.iter().any(|a| matches_alternative(a, item))),
        Some(value) => alternatives.iter().any(|a| matches_alternative(a, value)),
    }
}

fn matches_alternative(alternative: &Value, value: &Value) -> bool {
    match alternative {
        Value::Object(operator) => match operator.iter().next() {
            Some((name, Value::Bool(exists))) if name == "exists" => *exists,
            Some((name, Value::String(prefix))) if name == "prefix" => {
                value.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))
            }
            Some((name, Value::Array(excluded))) if name == "anything-but" => !excluded.iter().any(|e| same(e, value)),
            Some((name, excluded)) if name == "anything-but" => !same(excluded, value),
            _ => false,
        },
        exact => same(exact, value),
    }
}

fn same(expected: &Value, value: &Value) -> bool {
    match (expected, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filter(patterns: Value) -> EventFilter {
        EventFilter::new(patterns.as_array().cloned().unwrap_or_default()).unwrap()
    }

    fn meta_record(event_name: &str, old: Option<bool>, new: bool) -> Value {
        let mut dynamodb = json!({
            "Keys": {"PK": {"S": "SESSION#1"}, "SK": {"S": "META"}},
            "NewImage": {"needs_summary": {"BOOL": new}, "turn_count": {"N": "20"}},
        });
        if let Some(old) = old {
            dynamodb["OldImage"] = json!({"needs_summary": {"BOOL": old}, "turn_count": {"N": "19"}});
        }
        json!({"eventName": event_name, "dynamodb": dynamodb})
    }

    #[test]
    fn nested_exact_values_and_alternatives_match() {
        let f = filter(
            json!([{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"needs_summary": {"BOOL": [true]}}}}]),
        );
        assert!(f.matches(&meta_record("MODIFY", Some(false), true)));
        assert!(f.matches(&meta_record("INSERT", None, true)));
        assert!(!f.matches(&meta_record("MODIFY", Some(false), false)));
        assert!(!f.matches(&meta_record("REMOVE", Some(true), true)));
    }

    #[test]
    fn exists_false_matches_a_missing_field_and_a_missing_parent() {
        let f = filter(json!([{"dynamodb": {"OldImage": {"needs_summary": {"BOOL": [{"exists": false}]}}}}]));
        assert!(f.matches(&meta_record("INSERT", None, true)));
        assert!(!f.matches(&meta_record("MODIFY", Some(false), true)));
    }

    #[test]
    fn exists_looks_at_leaves_only() {
        // needs_summary is {"BOOL": ...}, an object, so as a leaf it does not exist.
        let f = filter(json!([{"dynamodb": {"OldImage": {"needs_summary": [{"exists": false}]}}}]));
        assert!(f.matches(&meta_record("MODIFY", Some(true), true)));
    }

    #[test]
    fn any_pattern_may_match_and_none_means_all() {
        let f = filter(json!([{"eventName": ["INSERT"]}, {"eventName": ["MODIFY"]}]));
        assert!(f.matches(&json!({"eventName": "MODIFY"})));
        assert!(!f.matches(&json!({"eventName": "REMOVE"})));
        assert!(EventFilter::default().matches(&json!({"eventName": "REMOVE"})));
    }

    #[test]
    fn prefix_and_anything_but() {
        let f = filter(
            json!([{"dynamodb": {"Keys": {"SK": {"S": [{"prefix": "TURN#"}]}}}, "eventName": [{"anything-but": ["REMOVE"]}]}]),
        );
        assert!(f.matches(&json!({"eventName": "INSERT", "dynamodb": {"Keys": {"SK": {"S": "TURN#0000000001"}}}})));
        assert!(!f.matches(&json!({"eventName": "REMOVE", "dynamodb": {"Keys": {"SK": {"S": "TURN#0000000001"}}}})));
        assert!(!f.matches(&json!({"eventName": "INSERT", "dynamodb": {"Keys": {"SK": {"S": "META"}}}})));
    }

    #[test]
    fn a_numeric_filter_is_refused() {
        let refused =
            EventFilter::new(vec![json!({"dynamodb": {"NewImage": {"turn_count": {"N": [{"numeric": [">=", 20]}]}}}})]);
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("numeric"), "{message}");
    }

    #[test]
    fn the_template_maps_the_summarize_function_and_filters_on_the_flag_transition() {
        let mapping =
            StreamMapping::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"), "summarize").unwrap();
        assert_eq!(mapping.function, "summarize");
        assert!(!mapping.filter.is_empty());
        assert!(mapping.filter.matches(&meta_record("MODIFY", Some(false), true)), "threshold crossed");
        assert!(!mapping.filter.matches(&meta_record("MODIFY", Some(true), true)), "a window being summarised");
        assert!(!mapping.filter.matches(&meta_record("MODIFY", Some(false), false)), "below the threshold");
        assert!(!mapping.filter.matches(&meta_record("MODIFY", Some(true), false)), "the summary clearing the flag");
        assert!(mapping.filter.matches(&meta_record("INSERT", None, true)));
        assert!(!mapping.filter.matches(&meta_record("INSERT", None, false)), "a new session");
        let turn = json!({"eventName": "INSERT", "dynamodb": {"Keys": {"SK": {"S": "TURN#0000000001"}}, "NewImage": {"role": {"S": "user"}}}});
        assert!(!mapping.filter.matches(&turn));
    }
}
