use lambda_http::Error;
use tidewater::{forwarding::run, aws::sdk_config, telemetry, Config, DynamoStore, StoreSecret};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::with_secrets(&aws, config, &[StoreSecret::ReceiptSalt, StoreSecret::MasterKeys]);
    run(|request| async { Ok::<_, Error>(load_context::handle(&*store.get().await?, request).await) }).await
}
