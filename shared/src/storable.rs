//! What DynamoDB can store of free-form JSON such as `page_context`, checked before any
//! write, so that a value DynamoDB would refuse is a 422 that names the rule, never a
//! store error.
//!
//! DynamoDB refuses, with a `ValidationException`:
//! - an empty map key (attribute name), at any depth;
//! - a number whose magnitude is outside 1e-130 ..= 9.9999999999999999999999999999999999999e125
//!   (zero aside), or with more than 38 significant digits. JSON numbers reach us as `i64`,
//!   `u64` or `f64`, which never carry more than 20 digits, so only the magnitude is checked,
//!   on the number as parsed (what would be stored);
//! - nesting deeper than 32 levels, the item itself counted. A top-level attribute that is
//!   a map is level 1 of its own, so it may hold containers 31 deep, itself included.
//!   Callers may ask for less: see [`crate::model::MAX_PAGE_CONTEXT_NESTING`].
//!
//! (Each limit was measured against DynamoDB Local; see the tests in `tests/bad_input.rs`.)
use serde_json::{Map, Number, Value};

/// Objects and arrays a top-level map attribute may nest in DynamoDB, itself included.
pub const DYNAMODB_MAX_NESTING: usize = 31;
/// The smallest magnitude of a non-zero number DynamoDB stores.
pub const MIN_MAGNITUDE: f64 = 1e-130;
/// Every number DynamoDB stores has a magnitude below this.
pub const MAX_MAGNITUDE_EXCLUSIVE: f64 = 1e126;

/// Checks that the JSON object `value`, stored as the map attribute `name`, is one DynamoDB
/// accepts and nests objects and arrays at most `max_nesting` deep, itself included (at most
/// [`DYNAMODB_MAX_NESTING`]). The error names the broken rule.
pub fn check_map(name: &str, value: &Map<String, Value>, max_nesting: usize) -> Result<(), String> {
    let rules = Rules { name, max_nesting: max_nesting.min(DYNAMODB_MAX_NESTING) };
    rules.check_object(value, 1)
}

struct Rules<'a> {
    name: &'a str,
    max_nesting: usize,
}

impl Rules<'_> {
    fn check_object(&self, object: &Map<String, Value>, depth: usize) -> Result<(), String> {
        if depth > self.max_nesting {
            return Err(self.too_deep());
        }
        for (key, value) in object {
            if key.is_empty() {
                return Err(format!("{} has an empty key; DynamoDB cannot store an empty attribute name", self.name));
            }
            self.check_value(value, depth)?;
        }
        Ok(())
    }

    fn check_value(&self, value: &Value, depth: usize) -> Result<(), String> {
        match value {
            Value::Object(object) => self.check_object(object, depth + 1),
            Value::Array(items) => {
                if depth + 1 > self.max_nesting {
                    return Err(self.too_deep());
                }
                items.iter().try_for_each(|item| self.check_value(item, depth + 1))
            }
            Value::Number(number) => check_number(self.name, number),
            Value::Null | Value::Bool(_) | Value::String(_) => Ok(()),
        }
    }

    fn too_deep(&self) -> String {
        format!("{} nests objects and arrays more than {} levels deep, itself included", self.name, self.max_nesting)
    }
}

fn check_number(name: &str, number: &Number) -> Result<(), String> {
    if number.is_i64() || number.is_u64() {
        return Ok(());
    }
    let magnitude = number.as_f64().map(f64::abs).unwrap_or(f64::INFINITY);
    if magnitude == 0.0 || (MIN_MAGNITUDE..MAX_MAGNITUDE_EXCLUSIVE).contains(&magnitude) {
        Ok(())
    } else {
        Err(format!(
            "{name} holds the number {magnitude:e}; DynamoDB stores numbers of magnitude 1e-130 to 9.99e125 (and 0)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(levels: usize) -> Map<String, Value> {
        let mut value = json!("leaf");
        for _ in 1..levels {
            value = json!({ "k": value });
        }
        match json!({ "k": value }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn nesting_up_to_the_limit_passes_and_one_more_fails() {
        assert!(check_map("page_context", &nested(DYNAMODB_MAX_NESTING), DYNAMODB_MAX_NESTING).is_ok());
        let error = check_map("page_context", &nested(DYNAMODB_MAX_NESTING + 1), DYNAMODB_MAX_NESTING).unwrap_err();
        assert!(error.contains("31 levels"), "{error}");
        assert!(check_map("page_context", &nested(4), 4).is_ok());
        assert!(check_map("page_context", &nested(5), 4).unwrap_err().contains("4 levels"));
        assert!(check_map("page_context", &nested(40), 99).unwrap_err().contains("31 levels"), "never beyond DynamoDB's");
    }

    #[test]
    fn arrays_count_as_levels() {
        let mut value = json!(1);
        for _ in 0..DYNAMODB_MAX_NESTING - 1 {
            value = json!([value]);
        }
        assert!(check_map("p", &object(json!({ "a": value.clone() })), DYNAMODB_MAX_NESTING).is_ok());
        assert!(check_map("p", &object(json!({ "a": [value] })), DYNAMODB_MAX_NESTING).is_err());
    }

    #[test]
    fn an_empty_key_at_any_depth_fails() {
        assert!(check_map("p", &object(json!({ "": 1 })), DYNAMODB_MAX_NESTING).unwrap_err().contains("empty key"));
        assert!(check_map("p", &object(json!({ "a": [{ "b": { "": null } }] })), DYNAMODB_MAX_NESTING).is_err());
        assert!(check_map("p", &object(json!({ "a": "" })), DYNAMODB_MAX_NESTING).is_ok(), "empty string values are fine");
    }

    #[test]
    fn numbers_outside_dynamodbs_range_fail() {
        for bad in [1e200, -1e200, 1e126, 1e-131, -5e-300, f64::MAX] {
            let error = check_map("p", &object(json!({ "n": bad })), DYNAMODB_MAX_NESTING).unwrap_err();
            assert!(error.contains("magnitude"), "{bad}: {error}");
        }
        for good in [0.0, -0.0, 1e-130, 9.999_999_999_999_99e125, -1.5, 0.1] {
            assert!(check_map("p", &object(json!({ "n": good })), DYNAMODB_MAX_NESTING).is_ok(), "{good}");
        }
        assert!(check_map("p", &object(json!({ "n": u64::MAX, "m": i64::MIN })), DYNAMODB_MAX_NESTING).is_ok());
    }

    #[test]
    fn the_range_limits_as_json_text_pass() {
        for text in ["1e-130", "-1e-130", "1.0e-130", "9.99e125", "-9.99e125", "0.0", "-0"] {
            let parsed: Map<String, Value> = serde_json::from_str(&format!(r#"{{"n": {text}}}"#)).unwrap();
            assert!(check_map("p", &parsed, DYNAMODB_MAX_NESTING).is_ok(), "{text}");
        }
    }
}
