use lambda_http::{run, service_fn, Error};
use tidewater::{dynamodb_client, secret, telemetry, AnyRedactor, Config, DynamoStore, HashKey};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?.with_hash_key(HashKey::new(&secret::load("HASH_KEY").await?)?);
    let redactor = AnyRedactor::from_env().await?;
    let store = DynamoStore::new(dynamodb_client().await, config.clone());
    store.warm_up().await;
    run(service_fn(|request| async { Ok::<_, Error>(append_turn::handle(&store, &redactor, &config, request).await) }))
        .await
}
