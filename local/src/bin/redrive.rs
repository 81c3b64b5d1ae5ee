//! `make redrive`, the runbook's answer to records in a DLQ: asks the summariser again for
//! every session whose summary is due and not written, then runs one janitor pass, which
//! finishes every session deletion, TTL sweep and purge cut off more than its grace ago.
//! Against the table that `TABLE_NAME` and the SDK's environment (or `make run`'s DynamoDB
//! Local) name; the janitor needs `RECEIPT_SALT`, the deployed stack's salt for AWS.
use tidewater::store::Janitor;
use tidewater::{dynamodb_client, secret, telemetry, Config, DynamoStore, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let salt = secret::read("RECEIPT_SALT", |name| std::env::var(name).ok(), |arn| async move {
        Err(Error::Config(format!("read the salt from {arn} and pass it as RECEIPT_SALT")))
    })
    .await?;
    let config = Config::from_env()?.with_receipt_salt(salt);
    let store = DynamoStore::new(dynamodb_client().await, config);
    let rearmed = store.rearm_due_summaries().await?;
    println!("re-armed {rearmed} sessions whose summary was due; the stream delivers them to summarize");
    let report = store.janitor_pass(store.now()).await?;
    println!(
        "janitor: {} session deletions or sweeps and {} purges finished, {} items deleted, {} failed",
        report.sessions_finished, report.purges_finished, report.items_deleted, report.failed
    );
    Ok(())
}
