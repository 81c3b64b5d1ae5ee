//! # tidewater
//!
//! Conversation memory for LLM chatbots on one DynamoDB table.
//!
//! - [`model`]: what callers send and get back ([`NewSession`], [`NewTurn`], [`Context`], ...).
//! - [`store`]: the narrow store traits and [`DynamoStore`], the one place that knows DynamoDB.
//! - [`keys`]: the key scheme (`SESSION#`, `META`, `TURN#`, `SUMMARY#`, `RESP#`, `PRIVACY#`, `RECEIPT#`).
//! - [`http`] (feature `http`): the API Gateway adapter the Lambda functions share.
//!
//! The store works in-process as well as behind Lambda; see [`DynamoStore`] for an example.
pub mod clock;
pub mod codec;
mod config;
pub mod cursor;
mod error;
pub mod items;
pub mod keys;
pub mod metrics;
pub mod model;
pub mod storable;
pub mod store;
pub mod summarizer;
pub mod telemetry;
#[cfg(feature = "http")]
pub mod http;

pub use config::{positive_number, Config};
pub use cursor::CursorKey;
pub use error::{Error, Result};
pub use model::{
    Appended, Caller, Context, IfMatch, NewSession, NewTurn, Receipt, ResumableSession, Role, Session, SessionCreated,
    SessionPage, SessionPatch, SessionUpdated, Summary, Turn, TurnDraft, TurnPage,
};
pub use store::{
    dynamodb_client, Capacity, ContextLoader, CustomerPurger, DynamoStore, ReceiptReader, SessionCreator, SessionDeleter,
    SessionLister, SessionUpdater, SummarySource, SummaryState, SummaryWriter, TurnAppender, TurnExporter,
};
pub use summarizer::{ExtractiveSummarizer, Summarizer, SummaryInput};
