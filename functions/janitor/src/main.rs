use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tidewater::{aws::sdk_config, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::salted(&aws, config);
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        janitor::handle(&*store.get().await?, event.payload).await.map_err(Error::from)
    }))
    .await
}
