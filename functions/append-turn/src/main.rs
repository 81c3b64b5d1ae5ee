use lambda_http::Error;
use tidewater::{forwarding::run, aws::sdk_config, telemetry, AnyRedactor, Config, DynamoStore, StoreSecret};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::with_secrets(&aws, config.clone(), &[StoreSecret::ReceiptSalt, StoreSecret::HashKey, StoreSecret::MasterKeys]);
    let redactor = AnyRedactor::from_env().await?;
    run(|request| async {
        Ok::<_, Error>(append_turn::handle(&*store.get().await?, &redactor, &config, request).await)
    })
    .await
}
