//! # tidewater
//!
//! Conversation memory for LLM chatbots on one DynamoDB table.
//!
//! - [`model`]: what callers send and get back ([`NewSession`], [`NewTurn`], [`Context`], ...).
//! - [`store`]: the narrow store traits and [`DynamoStore`], the one place that knows DynamoDB.
//! - [`redact`]: card numbers, IBANs, e-mail addresses and phone numbers replaced before a write.
//! - [`chain`]: which item is turn `n` of a session across failovers (epoch-scoped turn keys).
//! - [`keys`]: the key scheme (`SESSION#`, `META`, `TURN#`, `SUMMARY#`, `RESP#`, `PRIVACY#`, `RECEIPT#`, `MEMORY#`, `JANITOR`).
//! - [`memory`]: long-term customer facts, their extraction and their identity.
//! - [`http`] (feature `http`): the API Gateway adapter the Lambda functions share.
//! - [`secret`]: the cursor key, receipt salt and hash key, read once at init, with no
//!   defaults (feature `secrets` reads them from Secrets Manager).
//! - [`home`]: the home region of a session or a customer (multi-region), known without a read.
//! - [`routing`]: which region serves one HTTP request; [`forwarding`] (feature `http`): the
//!   functions' one hop to it on AWS.
//! - [`keyed_hash`]: the HMACs the table keeps of customer text (idempotency, fact ids).
//!
//! The store works in-process as well as behind Lambda; see [`DynamoStore`] for an example.
pub mod aws;
pub mod chain;
pub mod clock;
pub mod codec;
mod config;
pub mod crypto;
pub mod cursor;
pub mod deferred;
mod error;
pub mod home;
pub mod items;
pub mod keyed_hash;
pub mod keys;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod redact;
pub mod routing;
pub mod secret;
pub mod storable;
pub mod store;
pub mod summarizer;
pub mod telemetry;
#[cfg(feature = "http")]
pub mod forwarding;
#[cfg(feature = "http")]
pub mod http;

pub use config::{positive_number, region_urls, Config};
pub use cursor::CursorKey;
pub use deferred::Deferred;
pub use keyed_hash::HashKey;
pub use error::{Error, Result};
pub use secret::Secret;
pub use model::{
    AppendAnswer, Appended, Caller, Context, ContextRequest, IfMatch, NewSession, NewTurn, Omitted, Receipt,
    Redactions, ResumableSession, Retracted, Role, Session, SessionCreated, SessionPage, SessionPatch, SessionUpdated, Summary, Turn,
    TurnDraft, TurnPage,
};
pub use memory::{Fact, FactDraft, FactKind, FactPage, FactSource, MemoryPosition};
pub use store::{
    dynamodb_client, dynamodb_client_with, Capacity, ContextLoader, CustomerPurger, DynamoStore, ExpiredSessionSweeper, Janitor, StoreSecret,
    JanitorReport, MemoryDeleter,
    MemoryReader, MemoryWriter, PageContextReader, ReceiptReader, SessionCreator, SessionDeleter, SessionLister,
    SessionUpdater, SummarySource, SummaryState, SummaryWriter, TurnAppender, TurnExporter, TurnRetractor,
};
pub use redact::{AnyRedactor, OfflineRedactor, Redactor};
pub use summarizer::{ExtractiveSummarizer, Summarizer, SummaryInput};
