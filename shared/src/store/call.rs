//! One DynamoDB call: its deadline, its retry backoff, and the attribute-value and item
//! conversions every store module shares.
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::Error;

pub(crate) async fn within<T>(limit: Duration, call: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(limit, call).await.map_err(Error::unavailable)
}

pub(crate) async fn within_deadline<T>(
    deadline: tokio::time::Instant,
    call: impl Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout_at(deadline, call)
        .await
        .map_err(Error::unavailable)
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 5u64 << attempt.min(4);
    let jitter = Uuid::new_v4().as_u128() as u64 % ceiling_ms.max(1);
    Duration::from_millis(2 + jitter)
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// After a failover, a write that moves META's `version` records the writer's epoch beside it,
/// so that the ETag names the home that counted it ([`crate::items::MetaItem::tag`]); before
/// any failover (`epoch` 0) it adds nothing.
pub(crate) fn record_version_epoch(epoch: u64, set: &mut Vec<&'static str>, values: &mut HashMap<String, AttributeValue>) {
    if epoch > 0 {
        set.push("version_epoch = :version_epoch");
        values.insert(":version_epoch".to_owned(), n(epoch));
    }
}

pub(crate) fn to_item<T: Serialize>(value: &T) -> Result<HashMap<String, AttributeValue>, Error> {
    serde_dynamo::to_item(value).map_err(Error::corrupt)
}

pub(crate) fn from_item<T: DeserializeOwned>(item: HashMap<String, AttributeValue>) -> Result<T, Error> {
    serde_dynamo::from_item(item).map_err(Error::corrupt)
}
