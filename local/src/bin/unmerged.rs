//! `make unmerged`, the failover runbook's last step on AWS: once a failed region is back and
//! has replicated, lists every turn it had acknowledged that its session's order does not hold
//! (the new home wrote on under a later epoch; `tidewater::chain`), one JSON line each, with no
//! content. Each session's export (`GET /sessions/{id}/turns`) shows them in full as
//! `unmerged`. Against the table that `TABLE_NAME` and the SDK's environment (or `make run`'s
//! DynamoDB Local) name.
use tidewater::{dynamodb_client, telemetry, Config, DynamoStore, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let store = DynamoStore::new(dynamodb_client().await, Config::from_env()?);
    let unmerged = store.unmerged_turns().await?;
    for turn in &unmerged {
        println!("{}", serde_json::to_string(turn).map_err(|e| Error::Corrupt(Box::new(e)))?);
    }
    let sessions: std::collections::BTreeSet<_> = unmerged.iter().map(|turn| turn.session_id).collect();
    eprintln!("{} unmerged turns in {} sessions", unmerged.len(), sessions.len());
    Ok(())
}
