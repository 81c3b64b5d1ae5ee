use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use summarize::AnySummarizer;
use tidewater::{dynamodb_client, secret, telemetry, Config, DynamoStore, HashKey};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?
        .with_receipt_salt(secret::load("RECEIPT_SALT").await?)
        .with_hash_key(HashKey::new(&secret::load("HASH_KEY").await?)?);
    let store = DynamoStore::new(dynamodb_client().await, config.clone());
    store.warm_up().await;
    let summarizer = AnySummarizer::from_env().await?;
    let handler = |event: LambdaEvent<Event>| async {
        Ok::<_, Error>(summarize::handle(&store, &summarizer, &config, event.payload).await)
    };
    run(service_fn(handler)).await
}
