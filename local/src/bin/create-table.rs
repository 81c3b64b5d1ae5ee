//! Creates the table (`TABLE_NAME`) and its key table at `AWS_ENDPOINT_URL_DYNAMODB` unless
//! they are already there.
use tidewater::{dynamodb_client, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    let client = dynamodb_client().await;
    let described = client.describe_table().table_name(&config.table_name).send().await;
    match described {
        Ok(_) => {
            println!("table {} exists", config.table_name);
            // A table made before encryption has no key table beside it yet.
            let keys = client.describe_table().table_name(config.key_table()).send().await;
            match keys {
                Ok(_) => Ok(()),
                Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
                    println!("creating key table {}", config.key_table());
                    DynamoStore::new(client, config).create_key_table().await.map_err(|e| report(&e))
                }
                Err(error) => Err(report(&error)),
            }
        }
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            println!("creating table {}", config.table_name);
            DynamoStore::new(client, config).create_table().await.map_err(|e| report(&e))
        }
        Err(error) => Err(report(&error)),
    }
}

/// The error with its causes, which the SDK keeps in its sources.
fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
