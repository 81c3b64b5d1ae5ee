use lambda_http::{run, service_fn, Error};
use tidewater::{aws::sdk_config, dynamodb_client_with, telemetry, Config, CursorKey, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let key = CursorKey::prefetch(&aws);
    let store = DynamoStore::new(dynamodb_client_with(&aws), config.clone());
    store.warm_up().await;
    run(service_fn(|request| async { Ok::<_, Error>(list_sessions::handle(&store, &*key.get().await?, request).await) })).await
}
