use lambda_http::Error;
use tidewater::{forwarding, aws::sdk_config, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::salted(&aws, config);
    // A purge waits out key leases at its home: its hop waits longer than the others'.
    forwarding::run_within(forwarding::PURGE_FORWARD_TIMEOUT, |request| async {
        Ok::<_, Error>(purge_customer::handle(&*store.get().await?, request).await)
    })
    .await
}
