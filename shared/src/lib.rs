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
pub mod store;
pub mod summarizer;
pub mod telemetry;
#[cfg(feature = "http")]
pub mod http;

pub use config::Config;
pub use error::{Error, Result};
pub use model::{Appended, Caller, Context, NewSession, NewTurn, Role, Session, SessionCreated, Summary, Turn, TurnDraft};
pub use store::{dynamodb_client, Capacity, ContextLoader, DynamoStore, SessionCreator, SummaryWriter, TurnAppender};
pub use model::Receipt;
pub use store::{CustomerPurger, ReceiptReader, SessionDeleter};
pub use cursor::CursorKey;
pub use model::{IfMatch, ResumableSession, SessionPage, SessionPatch, SessionUpdated, TurnPage};
pub use store::{SessionLister, SessionUpdater, TurnExporter};
pub use store::{SummarySource, SummaryState};
pub use summarizer::{ExtractiveSummarizer, Summarizer, SummaryInput};
