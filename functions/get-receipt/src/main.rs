use lambda_http::{run, service_fn, Error};
use tidewater::{aws::sdk_config, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::salted(&aws, config);
    run(service_fn(|request| async { Ok::<_, Error>(get_receipt::handle(&*store.get().await?, request).await) })).await
}
