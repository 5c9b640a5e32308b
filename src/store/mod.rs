//! The DynamoDB table: what items look like (`items`), what DynamoDB accepts (`limits`),
//! and the writes themselves (`dynamodb`).

pub mod dynamodb;
pub mod items;
pub mod limits;

pub use dynamodb::{Store, WriteOutcome};

/// One DynamoDB item, as the SDK takes it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;
