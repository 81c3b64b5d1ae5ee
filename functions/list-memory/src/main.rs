use lambda_http::Error;
use tidewater::{forwarding::run, aws::sdk_config, telemetry, Config, CursorKey, DynamoStore, StoreSecret};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let key = CursorKey::prefetch(&aws);
    let store = DynamoStore::with_secrets(&aws, config.clone(), &[StoreSecret::ReceiptSalt, StoreSecret::MasterKeys]);
    run(|request| async {
        Ok::<_, Error>(list_memory::handle(&*store.get().await?, &*key.get().await?, request).await)
    })
    .await
}
