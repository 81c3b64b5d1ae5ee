use lambda_http::{run, service_fn, Error};
use tidewater::{aws::sdk_config, telemetry, AnyRedactor, Config, DynamoStore, StoreSecret};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let redactor = AnyRedactor::from_env().await?;
    let store = DynamoStore::with_secrets(&aws, config, &[StoreSecret::ReceiptSalt, StoreSecret::MasterKeys]);
    run(service_fn(|request| async { Ok::<_, Error>(update_session::handle(&*store.get().await?, &redactor, request).await) })).await
}
