use lambda_http::{run, service_fn, Error};
use tidewater::{aws::sdk_config, telemetry, AnyRedactor, Config, DynamoStore, StoreSecret};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::with_secrets(&aws, config.clone(), &[StoreSecret::ReceiptSalt, StoreSecret::HashKey, StoreSecret::MasterKeys]);
    let redactor = AnyRedactor::from_env().await?;
    run(service_fn(|request| async {
        Ok::<_, Error>(append_turn::handle(&*store.get().await?, &redactor, &config, request).await)
    }))
    .await
}
