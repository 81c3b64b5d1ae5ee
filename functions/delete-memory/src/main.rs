use lambda_http::Error;
use tidewater::{forwarding::run, aws::sdk_config, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::salted(&aws, config);
    run(|request| async { Ok::<_, Error>(delete_memory::handle(&*store.get().await?, request).await) }).await
}
