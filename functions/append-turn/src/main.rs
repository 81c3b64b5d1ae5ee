use lambda_http::{run, service_fn, Error};
use tidewater::{dynamodb_client, telemetry, AnyRedactor, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let redactor = AnyRedactor::from_env().await?;
    let store = DynamoStore::new(dynamodb_client().await, config.clone());
    store.warm_up().await;
    run(service_fn(|request| async { Ok::<_, Error>(append_turn::handle(&store, &redactor, &config, request).await) }))
        .await
}
