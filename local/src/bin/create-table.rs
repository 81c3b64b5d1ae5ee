//! Creates the table in DynamoDB Local (`TABLE_NAME`, `AWS_ENDPOINT_URL_DYNAMODB`).
use tidewater::{dynamodb_client, Config, DynamoStore};

#[tokio::main]
async fn main() -> Result<(), tidewater::Error> {
    let config = Config::from_env()?;
    println!("creating table {}", config.table_name);
    DynamoStore::new(dynamodb_client().await, config).create_table().await
}
