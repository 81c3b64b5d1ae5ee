//! The table definition, for DynamoDB Local and tests. Production tables come from `template.yaml`.
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use super::DynamoStore;
use crate::{keys, Error};

impl DynamoStore {
    /// Creates the table as `template.yaml` declares it: keys, the sparse customer index,
    /// the stream and TTL, and the key table beside it. For DynamoDB Local and tests; production tables come from the template.
    pub async fn create_table(&self) -> Result<(), Error> {
        let key = |name: &str, key_type| {
            KeySchemaElement::builder().attribute_name(name).key_type(key_type).build().map_err(Error::unavailable)
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(Error::unavailable)
        };
        let index = GlobalSecondaryIndex::builder()
            .index_name(keys::GSI1)
            .key_schema(key(keys::GSI1PK, KeyType::Hash)?)
            .key_schema(key(keys::GSI1SK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .set_non_key_attributes(Some(
                        RESUME_PROJECTION.iter().map(|a| a.to_string()).collect(),
                    ))
                    .build(),
            )
            .build()
            .map_err(Error::unavailable)?;
        self.client
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(keys::PK, KeyType::Hash)?)
            .key_schema(key(keys::SK, KeyType::Range)?)
            .attribute_definitions(attribute(keys::PK)?)
            .attribute_definitions(attribute(keys::SK)?)
            .attribute_definitions(attribute(keys::GSI1PK)?)
            .attribute_definitions(attribute(keys::GSI1SK)?)
            .global_secondary_indexes(index)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(Error::unavailable)?,
            )
            .send()
            .await
            .map_err(Error::unavailable)?;
        self.client
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("ttl")
                    .enabled(true)
                    .build()
                    .map_err(Error::unavailable)?,
            )
            .send()
            .await
            .map_err(Error::unavailable)?;
        self.create_key_table().await
    }
}

/// The META attributes the customer index carries, so that resuming needs no second read.
/// None of them changes on an ordinary append, so appends do not rewrite the index.
pub const RESUME_PROJECTION: &[&str] = &["session_id", "page_context", "listed_turn_count"];
