//! # tidewater
//!
//! Conversation memory for LLM chatbots on one DynamoDB table.
//!
//! - [`model`]: what callers send and get back ([`NewSession`], [`NewTurn`], [`Context`], ...).
//! - [`store`]: the narrow store traits and [`DynamoStore`], the one place that knows DynamoDB.
//! - [`keys`]: the key scheme (`SESSION#`, `META`, `TURN#`, `SUMMARY#`, `RESP#`).
//! - [`http`] (feature `http`): the API Gateway adapter the Lambda functions share.
//!
//! The store works in-process as well as behind Lambda; see [`DynamoStore`] for an example.
pub mod clock;
pub mod codec;
mod config;
mod error;
pub mod items;
pub mod keys;
pub mod model;
pub mod store;
pub mod telemetry;
#[cfg(feature = "http")]
pub mod http;

pub use config::Config;
pub use error::{Error, Result};
pub use model::{Appended, Caller, Context, NewSession, NewTurn, Role, Session, SessionCreated, Summary, Turn, TurnDraft};
pub use store::{dynamodb_client, Capacity, ContextLoader, DynamoStore, SessionCreator, SummaryWriter, TurnAppender};
