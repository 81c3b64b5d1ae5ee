//! Transactions: why DynamoDB cancelled one (per-item reasons), the old item a failed
//! condition returned, an attempt's idempotency token, the put-if-absent they share, and the
//! retry of a transaction that collides with a concurrent one ([`DynamoStore::transact`]).
use std::collections::HashMap;


use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::builders::TransactWriteItemsFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
};
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::Error;

use super::call::{backoff, from_item, within};
use super::DynamoStore;

/// Why DynamoDB cancelled a transaction, one reason per item in the order sent; none when it
/// was refused for a concurrent transaction on the same items (`TransactionInProgress`). Any
/// other failure is returned as the store error it is.
pub(crate) fn cancellation_reasons<R>(error: SdkError<TransactWriteItemsError, R>) -> Result<Vec<CancellationReason>, Error>
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match error {
        SdkError::ServiceError(e) => match e.into_err() {
            TransactWriteItemsError::TransactionCanceledException(cancelled) => Ok(cancelled.cancellation_reasons.unwrap_or_default()),
            TransactWriteItemsError::TransactionInProgressException(_) => Ok(Vec::new()),
            other => Err(Error::from_store(other)),
        },
        other => Err(Error::from_store(other)),
    }
}

pub(crate) fn condition_failed(reasons: &[CancellationReason], position: usize) -> bool {
    reasons.get(position).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

/// The old item DynamoDB returned for a failed condition at `position` of a transaction.
pub(crate) fn failed_item<T: DeserializeOwned>(reasons: &[CancellationReason], position: usize) -> Result<Option<T>, Error> {
    if !condition_failed(reasons, position) {
        return Ok(None);
    }
    reasons[position].item.clone().map(from_item).transpose()
}

/// A transaction's idempotency token. It names one attempt (its timestamp included), so the
/// SDK's own retry of that attempt is answered with the first try's success, while a new
/// attempt is judged by the conditions.
pub(crate) fn request_token(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher.finalize().iter().take(18).map(|b| format!("{b:02x}")).collect()
}

impl DynamoStore {
    /// A put that only creates: refused when the key exists, optionally returning the old item.
    pub(crate) fn put_new(&self, item: HashMap<String, AttributeValue>, return_old: bool) -> Result<Put, Error> {
        let mut put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)");
        if return_old {
            put = put.return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        }
        put.build().map_err(Error::unavailable)
    }
}

/// A transaction that keeps colliding with another one (on a purge's ledger, say) gives up after
/// this many tries.
const MAX_TRANSACTION_ATTEMPTS: u32 = 10;

/// How a transaction ended, once conflicts with concurrent transactions were retried.
pub(crate) enum Transacted {
    Committed,
    ConditionFailed,
}

impl DynamoStore {
    /// Sends a transaction, retrying it while it collides with another transaction on the
    /// same items (the ledger is shared by the sessions a purge deletes in parallel).
    pub(crate) async fn transact(&self, transaction: TransactWriteItemsFluentBuilder) -> Result<Transacted, Error> {
        let transaction = transaction.return_consumed_capacity(ReturnConsumedCapacity::Total);
        for attempt in 0..MAX_TRANSACTION_ATTEMPTS {
            match within(self.config.write_timeout, transaction.clone().send()).await? {
                Ok(output) => {
                    output.consumed_capacity().iter().for_each(|c| self.record_write(Some(c)));
                    return Ok(Transacted::Committed);
                }
                Err(e) => {
                    let reasons = cancellation_reasons(e)?;
                    if reasons.iter().any(|reason| reason.code() == Some("ConditionalCheckFailed")) {
                        return Ok(Transacted::ConditionFailed);
                    }
                }
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(Error::Unavailable("a transaction kept conflicting with concurrent ones".into()))
    }
}
