use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tidewater::{dynamodb_client, secret, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?.with_receipt_salt(secret::load("RECEIPT_SALT").await?);
    let store = DynamoStore::new(dynamodb_client().await, config);
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async { janitor::handle(&store, event.payload).await.map_err(Error::from) })).await
}
