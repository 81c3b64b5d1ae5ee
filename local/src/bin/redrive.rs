//! `make redrive`: asks the summariser again for every session whose summary is due and
//! not written, as the runbook's answer to records in the summarize DLQ. Against the table
//! that `TABLE_NAME` and the SDK's environment (or `make run`'s DynamoDB Local) name.
use tidewater::{dynamodb_client, telemetry, Config, DynamoStore, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let store = DynamoStore::new(dynamodb_client().await, config);
    let rearmed = store.rearm_due_summaries().await?;
    println!("re-armed {rearmed} sessions whose summary was due; the stream delivers them to summarize");
    Ok(())
}
