use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use tidewater::{aws::sdk_config, telemetry, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::salted(&aws, config);
    let handler = |event: LambdaEvent<Event>| async {
        Ok::<_, Error>(sweep_expired::handle(&*store.get().await?, event.payload).await)
    };
    run(service_fn(handler)).await
}
