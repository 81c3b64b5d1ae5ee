use lambda_http::Error;
use tidewater::{forwarding::run, dynamodb_client, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let store = DynamoStore::new(dynamodb_client().await, config);
    store.warm_up().await;
    run(|request| async { Ok::<_, Error>(retract_turn::handle(&store, request).await) }).await
}
