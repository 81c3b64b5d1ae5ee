//! `make migrate`: seals the content written before encryption, in place, page by page
//! (`DynamoStore::seal_plain_items`). Resumable: after each page it writes where the next
//! starts to `MIGRATE_CHECKPOINT` (default `.run/migrate-checkpoint.json`), and starts from
//! there when the file exists; it removes the file when the table is done. Safe to run again
//! and beside live traffic. Wraps data keys as the functions do: with `KMS_KEY_ID`, that KMS
//! key; otherwise the master keys (`MASTER_KEYS`, or `MASTER_KEYS_ARN`; `make run`'s are in
//! `.run/master-key`). Needs their `RECEIPT_SALT`.
use std::collections::HashMap;

use tidewater::aws::sdk_config;
use tidewater::{dynamodb_client_with, secret, telemetry, Config, DynamoStore, Error};

const PAGE: i32 = 100;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let shared = sdk_config().await;
    // A customer's data key is named by the customer's hash.
    let salt = secret::load(&shared, "RECEIPT_SALT").await?;
    let config = Config::from_env()?.with_receipt_salt(salt).with_key_wrapper_from_env(&shared).await?;
    let store = DynamoStore::new(dynamodb_client_with(&shared), config);
    let checkpoint = std::env::var("MIGRATE_CHECKPOINT").unwrap_or_else(|_| ".run/migrate-checkpoint.json".to_owned());
    let mut start = read_checkpoint(&checkpoint)?;
    let (mut sealed, mut left_plain, mut raced) = (0, 0, 0);
    loop {
        let page = store.seal_plain_items(start.take().map(to_key), PAGE).await?;
        (sealed, left_plain, raced) = (sealed + page.sealed, left_plain + page.left_plain, raced + page.raced);
        match page.next {
            Some(next) => {
                let next = from_key(&next);
                write_checkpoint(&checkpoint, &next)?;
                start = Some(next);
            }
            None => break,
        }
    }
    let _ = std::fs::remove_file(&checkpoint);
    println!("sealed {sealed} items; {left_plain} of sessions that are gone left for TTL or a purge; {raced} changed meanwhile (run again)");
    Ok(())
}

/// The key a Scan stopped at, as the checkpoint file keeps it: the table's keys are strings.
fn from_key(key: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> HashMap<String, String> {
    key.iter().filter_map(|(name, value)| Some((name.clone(), value.as_s().ok()?.clone()))).collect()
}

fn to_key(key: HashMap<String, String>) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    key.into_iter().map(|(name, value)| (name, aws_sdk_dynamodb::types::AttributeValue::S(value))).collect()
}

fn read_checkpoint(path: &str) -> Result<Option<HashMap<String, String>>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::Config(format!("{path}: {e}"))),
        Err(_) => Ok(None),
    }
}

fn write_checkpoint(path: &str, key: &HashMap<String, String>) -> Result<(), Error> {
    if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::Config(format!("{path}: {e}")))?;
    }
    std::fs::write(path, serde_json::to_string(key).unwrap_or_default()).map_err(|e| Error::Config(format!("{path}: {e}")))
}
