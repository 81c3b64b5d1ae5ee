//! CloudWatch embedded metric format (EMF): one JSON line on stdout per record, which
//! CloudWatch Logs turns into metrics with no extra network call.
use serde_json::{json, Map, Value};

pub const NAMESPACE: &str = "tidewater";

/// Units CloudWatch understands, for the metrics tidewater emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One EMF record: metrics of one function, sharing its `function` dimension.
#[derive(Debug, Clone)]
pub struct Metrics {
    function: String,
    values: Vec<(&'static str, f64, Unit)>,
}

impl Metrics {
    pub fn new(function: impl Into<String>) -> Self {
        Metrics { function: function.into(), values: Vec::new() }
    }

    pub fn add(mut self, name: &'static str, value: f64, unit: Unit) -> Self {
        self.values.push((name, value, unit));
        self
    }

    pub fn count(self, name: &'static str, value: u64) -> Self {
        self.add(name, value as f64, Unit::Count)
    }

    /// The EMF document for this record at `timestamp_ms`.
    pub fn to_json(&self, timestamp_ms: i64) -> Value {
        let definitions: Vec<Value> =
            self.values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()})).collect();
        let mut document = Map::new();
        document.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["function"]], "Metrics": definitions}],
            }),
        );
        document.insert("function".into(), Value::String(self.function.clone()));
        for (name, value, _) in &self.values {
            document.insert((*name).into(), json!(value));
        }
        Value::Object(document)
    }

    /// Writes the record to stdout, where the Lambda runtime ships it to CloudWatch Logs.
    pub fn emit(&self) {
        if self.values.is_empty() {
            return;
        }
        let now_ms = (crate::clock::now().unix_timestamp_nanos() / 1_000_000) as i64;
        println!("{}", self.to_json(now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_declares_every_metric_it_carries() {
        let record = Metrics::new("append-turn")
            .count("Appends", 1)
            .add("HandlerLatency", 4.5, Unit::Milliseconds)
            .to_json(1_700_000_000_000);

        assert_eq!(record["function"], "append-turn");
        assert_eq!(record["Appends"], 1.0);
        assert_eq!(record["HandlerLatency"], 4.5);
        let directive = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "tidewater");
        assert_eq!(directive["Dimensions"], json!([["function"]]));
        assert_eq!(directive["Metrics"][0], json!({"Name": "Appends", "Unit": "Count"}));
        assert_eq!(directive["Metrics"][1], json!({"Name": "HandlerLatency", "Unit": "Milliseconds"}));
        assert_eq!(record["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }
}
