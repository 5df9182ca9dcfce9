//! The crate-level error, grouped by what the caller must do about it.
//!
//! Module errors (`upstash::ReplyError`, `backend::IndexError`, …) convert into [`Error`];
//! `response::error_response` is the one place that turns an [`Error`] into an HTTP status.

use crate::codec::CodecError;
use crate::index::IndexError;
use crate::origin::BadAnswer;
use crate::store::StoreError;

/// Everything a request can fail with. `Clone` so that one failed fetch can be shared by every
/// request waiting on it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (malformed key, bad header): the client must change it. 400.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Nothing lives at this path. 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// The path exists but not for this method. 405, with the methods it allows.
    #[error("method {method} not allowed; allowed: {allowed}")]
    MethodNotAllowed {
        /// The method the client used.
        method: String,
        /// The methods the path answers, as an `Allow` header value.
        allowed: &'static str,
    },
    /// The request needs credentials it did not send (no `Authorization: Bearer`). 401.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The request conflicts with the state (removing a dataset defined in the static
    /// configuration). 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The client may not have this (a reference points at a host the dataset does not allow). 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The origin failed or answered wrongly (status, length): retry later. 502.
    #[error("origin error: {0}")]
    Upstream(String),
    /// The origin did not answer in time: retry later. 504.
    #[error("origin timeout: {0}")]
    OriginTimeout(String),
    /// The origin refused a passed-through request with a client error (a 400 for bad EDR
    /// parameters, a 422): the client gets that answer as it is.
    #[error("the origin answered HTTP {}", .0.status)]
    OriginRefused(std::rc::Rc<PassedAnswer>),
    /// The decoded view cannot apply a chunk's codec chain (an unknown codec, an object dtype,
    /// a chunk too large to decode): the client must read the encoded view. 422.
    #[error("cannot decode: {0}")]
    Unprocessable(String),
    /// A chunk's bytes do not decode as its metadata says (a corrupt stream, a wrong length):
    /// the origin or the references are wrong; nothing is cached. 502.
    #[error("undecodable chunk: {0}")]
    Undecodable(String),
    /// A dataset's reference file is malformed: the operator must fix it. 502.
    #[error("bad references: {0}")]
    BadReferences(String),
    /// The worker's own configuration is invalid: the operator must fix it. 500.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// The index (Redis over Upstash REST) failed: retry later. 503.
    #[error("index unavailable: {0}")]
    Index(#[from] IndexError),
    /// The chunk store failed: retry later. 503.
    #[error("storage unavailable: {0}")]
    Store(#[from] StoreError),
    /// A bug or an impossible state. 500.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An origin's answer passed on to the client unchanged (see [`Error::OriginRefused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedAnswer {
    /// Its status (4xx).
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// Shorthand for results with the crate-level [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable or secret is not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        name: &'static str,
        /// What is wrong with it (never the value of a secret).
        reason: String,
    },
}

impl Error {
    /// The error for a chunk (`what`: dataset and key) the decoded view could not decode.
    #[must_use]
    pub fn from_codec(what: &str, error: CodecError) -> Self {
        match error {
            CodecError::Unsupported(why) => Self::Unprocessable(format!("{what}: {why}")),
            CodecError::Corrupt(why) => Self::Undecodable(format!("{what}: {why}")),
        }
    }
}

impl From<BadAnswer> for Error {
    fn from(bad: BadAnswer) -> Self {
        match bad {
            BadAnswer::Wrong(message) => Self::Upstream(message),
            BadAnswer::TimedOut(message) => Self::OriginTimeout(message),
        }
    }
}
