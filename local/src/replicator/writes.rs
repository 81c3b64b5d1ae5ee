//! Which items a DynamoDB write wrote, read from its request and its 200 answer.
use axum::http::HeaderMap;
use serde_json::{Map, Value};

/// The operation in `X-Amz-Target`: `DynamoDB_20120810.PutItem` is `PutItem`.
pub fn operation(headers: &HeaderMap) -> &str {
    let target = headers.get("x-amz-target").and_then(|target| target.to_str().ok()).unwrap_or_default();
    target.rsplit('.').next().unwrap_or(target)
}

pub fn written_items_of(operation: &str) -> bool {
    matches!(operation, "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem")
}

/// One item a successful write wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put { table: String, item: Map<String, Value> },
    Update { table: String, key: Map<String, Value> },
    Delete { table: String, key: Map<String, Value> },
}

impl Write {
    pub fn table(&self) -> &str {
        match self {
            Write::Put { table, .. } | Write::Update { table, .. } | Write::Delete { table, .. } => table,
        }
    }
}

/// The items a write of `operation` wrote, given its request and DynamoDB's 200 answer (a
/// batch's `UnprocessedItems` were not written). A `ConditionCheck` writes nothing.
pub fn writes(operation: &str, request: &Value, answer: &Value) -> Vec<Write> {
    let table = |value: &Value| value["TableName"].as_str().unwrap_or_default().to_owned();
    let map = |value: &Value| value.as_object().cloned();
    let mut writes = Vec::new();
    match operation {
        "PutItem" => writes.extend(map(&request["Item"]).map(|item| Write::Put { table: table(request), item })),
        "UpdateItem" => writes.extend(map(&request["Key"]).map(|key| Write::Update { table: table(request), key })),
        "DeleteItem" => writes.extend(map(&request["Key"]).map(|key| Write::Delete { table: table(request), key })),
        "TransactWriteItems" => {
            for element in request["TransactItems"].as_array().into_iter().flatten() {
                if let Some(put) = element.get("Put") {
                    writes.extend(map(&put["Item"]).map(|item| Write::Put { table: table(put), item }));
                } else if let Some(update) = element.get("Update") {
                    writes.extend(map(&update["Key"]).map(|key| Write::Update { table: table(update), key }));
                } else if let Some(delete) = element.get("Delete") {
                    writes.extend(map(&delete["Key"]).map(|key| Write::Delete { table: table(delete), key }));
                }
            }
        }
        "BatchWriteItem" => {
            for (name, requests) in request["RequestItems"].as_object().into_iter().flatten() {
                let unprocessed = answer["UnprocessedItems"][name].as_array().cloned().unwrap_or_default();
                for element in requests.as_array().into_iter().flatten().filter(|element| !unprocessed.contains(element)) {
                    let table = name.clone();
                    if let Some(item) = map(&element["PutRequest"]["Item"]) {
                        writes.push(Write::Put { table, item });
                    } else if let Some(key) = map(&element["DeleteRequest"]["Key"]) {
                        writes.push(Write::Delete { table, key });
                    }
                }
            }
        }
        _ => {}
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(sort_key: &str) -> Map<String, Value> {
        json!({"PK": {"S": "S#1"}, "SK": {"S": sort_key}}).as_object().cloned().unwrap()
    }

    #[test]
    fn a_transaction_writes_its_puts_updates_and_deletes_but_not_its_condition_checks() {
        let request = json!({"TransactItems": [
            {"Put": {"TableName": "t", "Item": {"PK": {"S": "S#1"}, "SK": {"S": "TURN#1"}, "v": {"S": "x"}}}},
            {"ConditionCheck": {"TableName": "t", "Key": key("LEDGER")}},
            {"Update": {"TableName": "t", "Key": key("META")}},
            {"Delete": {"TableName": "t", "Key": key("OLD")}},
        ]});
        let writes = writes("TransactWriteItems", &request, &json!({}));
        assert_eq!(writes.len(), 3);
        assert!(matches!(&writes[0], Write::Put { item, .. } if item["v"] == json!({"S": "x"})));
        assert_eq!(writes[1], Write::Update { table: "t".into(), key: key("META") });
        assert_eq!(writes[2], Write::Delete { table: "t".into(), key: key("OLD") });
    }

    #[test]
    fn a_batchs_unprocessed_items_were_not_written() {
        let put = json!({"PutRequest": {"Item": {"PK": {"S": "S#1"}, "SK": {"S": "A"}}}});
        let delete = json!({"DeleteRequest": {"Key": key("B")}});
        let request = json!({"RequestItems": {"t": [put.clone(), delete.clone()]}});
        let answer = json!({"UnprocessedItems": {"t": [delete]}});
        let writes = writes("BatchWriteItem", &request, &answer);
        assert_eq!(writes.len(), 1);
        assert!(matches!(&writes[0], Write::Put { table, .. } if table == "t"));
    }

    #[test]
    fn reads_write_nothing() {
        assert!(writes("GetItem", &json!({"TableName": "t", "Key": key("META")}), &json!({})).is_empty());
        assert!(!written_items_of("Query") && written_items_of("UpdateItem"));
    }
}
