use aws_lambda_events::dynamodb::Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use summarize::AnySummarizer;
use tidewater::{aws::sdk_config, telemetry, Config, DynamoStore, StoreSecret};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let aws = sdk_config().await;
    let store = DynamoStore::with_secrets(&aws, config.clone(), &[StoreSecret::ReceiptSalt, StoreSecret::HashKey, StoreSecret::MasterKeys]);
    let summarizer = AnySummarizer::from_env().await?;
    let handler = |event: LambdaEvent<Event>| async {
        Ok::<_, Error>(summarize::handle(&*store.get().await?, &summarizer, &config, event.payload).await)
    };
    run(service_fn(handler)).await
}
