//! The one error type of the crate: what went wrong, in terms the HTTP adapter maps to a status.
use std::error::Error as StdError;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

/// The one error type of tidewater. Only the HTTP adapter turns it into a status code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed: bad JSON, wrong types, unknown fields, a bad path or query value.
    #[error("{0}")]
    BadRequest(String),
    /// The request is well formed but a value breaks a rule (empty content, unknown role, ...).
    #[error("{0}")]
    Validation(String),
    /// A value is larger than its documented limit.
    #[error("{0}")]
    TooLarge(String),
    /// The request carries no verified identity.
    #[error("missing or invalid identity")]
    Unauthorized,
    /// The caller is known, and the request is theirs to make, but their kind of account may
    /// not make it (a guest asking for a purge).
    #[error("{0}")]
    Forbidden(String),
    /// The session does not exist, has expired, or belongs to someone else.
    #[error("not found")]
    NotFound,
    /// The request conflicts with what is stored (a reused id with a different payload, another owner).
    #[error("{0}")]
    Conflict(String),
    /// A session id whose earlier session still has items (its record expired or a deletion
    /// was cut off): it cannot be created again until they are swept.
    #[error("this session id belonged to an earlier session and cannot be reused")]
    SessionIdUnavailable,
    /// An `If-Match` precondition no longer holds.
    #[error("the session has changed since the given ETag")]
    PreconditionFailed,
    /// DynamoDB refused the request as invalid (`ValidationException`): retrying cannot help,
    /// so it is the client's error, never an outage.
    #[error("DynamoDB refused a value of this request as invalid; the same request can never succeed")]
    Rejected(#[source] Box<dyn StdError + Send + Sync>),
    /// DynamoDB failed, throttled or did not answer in time; the call is safe to retry.
    #[error("the store is unavailable, retry later")]
    Unavailable(#[source] Box<dyn StdError + Send + Sync>),
    /// A failover fence stands ([`crate::home::HomeMap::fenced`]): a purge now could miss a
    /// session the old home made and has not delivered, and issue its receipt all the same.
    #[error("a region that failed over has not delivered all its writes yet; retry once it is back")]
    PurgeFenced,
    /// A purge has deleted everything in the home, but another region's replica still holds
    /// some of it, or the replication window has not passed: no receipt yet. Retry after the
    /// seconds it carries; the repeat (or the janitor) finishes the purge.
    #[error("the purge is done in the customer's home region and waits for the other regions to replicate it; repeat it after Retry-After")]
    PurgeReplicating(u64),
    /// A stored item could not be read back into its type.
    #[error("a stored item is corrupt")]
    Corrupt(#[source] Box<dyn StdError + Send + Sync>),
    /// A secret or setting the function needs is missing or unusable. At init it stops the
    /// function; a request that meets it is a 500.
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable machine-readable code for the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Validation(_) => "validation_failed",
            Error::TooLarge(_) => "too_large",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::Conflict(_) => "conflict",
            Error::SessionIdUnavailable => "session_id_unavailable",
            Error::PreconditionFailed => "precondition_failed",
            Error::Rejected(_) => "validation_failed",
            Error::Unavailable(_) => "unavailable",
            Error::PurgeFenced => "purge_fenced",
            Error::PurgeReplicating(_) => "purge_replicating",
            Error::Corrupt(_) | Error::Config(_) => "internal",
        }
    }

    pub(crate) fn unavailable(source: impl StdError + Send + Sync + 'static) -> Self {
        Error::Unavailable(Box::new(source))
    }

    /// Classifies an error of a DynamoDB call: a `ValidationException` is the request's
    /// fault ([`Error::Rejected`]); anything else (throttling, a 5xx, a dropped connection)
    /// is [`Error::Unavailable`] and safe to retry.
    pub(crate) fn from_store<E>(source: E) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        if source.code() == Some("ValidationException") {
            Error::Rejected(Box::new(source))
        } else {
            Error::Unavailable(Box::new(source))
        }
    }

    pub(crate) fn corrupt(source: impl StdError + Send + Sync + 'static) -> Self {
        Error::Corrupt(Box::new(source))
    }
}
