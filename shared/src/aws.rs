//! The AWS SDK configuration that a function's clients share: loaded once at init, so that
//! DynamoDB and Secrets Manager use one credentials chain and one HTTP client.
use aws_config::{BehaviorVersion, SdkConfig};

/// The SDK's configuration from the environment (`AWS_REGION`, credentials, endpoint
/// overrides such as `AWS_ENDPOINT_URL_DYNAMODB`).
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}
