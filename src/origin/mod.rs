//! The origin layer: the archive the references point into, behind one trait, and which of its
//! URLs may be fetched.
//!
//! - [`Origin`]: the trait (one GET, redirects not followed).
//! - [`auth`]: signing a private S3 origin's GETs with a dataset's credentials.
//! - [`check`]: checking an answer (status, exact length) and following redirects to allowed
//!   hosts only.
//! - [`url_policy`]: which URLs may be fetched, internal addresses, redaction.
//! - [`sigv4`]: AWS Signature Version 4 request signing (S3-compatible origins), pure.

pub mod auth;
pub mod check;
pub mod sigv4;
pub mod url_policy;

/// The origin gave no usable answer: retry later. The message names the dataset and key or the
/// URL (redacted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    /// Unreachable, a refused redirect, a wrong status or length. Becomes
    /// [`Error::Upstream`](crate::error::Error::Upstream), a 502.
    #[error("{0}")]
    Wrong(String),
    /// No answer within the time allowed. Becomes
    /// [`Error::OriginTimeout`](crate::error::Error::OriginTimeout), a 504.
    #[error("{0}")]
    TimedOut(String),
}

/// An inclusive byte range `[offset, offset + length)` of a remote file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes (at least 1).
    pub length: u64,
}

impl ByteRange {
    /// The `Range` header value: `bytes=first-last`.
    #[must_use]
    pub fn header_value(&self) -> String {
        let last = self.offset + self.length.saturating_sub(1);
        format!("bytes={}-{last}", self.offset)
    }
}

/// An origin's answer, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The `Last-Modified` header, if any.
    pub last_modified: Option<String>,
    /// The `Location` header of a redirect, if any.
    pub location: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why the origin gave no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// No answer within the time allowed.
    #[error("origin did not answer within {0} ms")]
    Timeout(u32),
    /// The connection failed.
    #[error("origin request failed: {0}")]
    Network(String),
    /// The answer is larger than the worker will hold in memory.
    #[error("origin answer of {0} bytes is larger than the worker holds")]
    TooLarge(u64),
}

/// The archive the references point into (HTTP servers, S3-compatible stores).
#[allow(async_fn_in_trait)]
pub trait Origin {
    /// GETs `url`, with `Range: bytes=…` when `range` is given and `headers` (a signature),
    /// and returns the whole answer.
    ///
    /// Contract: `Err` only when there is no HTTP answer; any status is `Ok` and is checked by the
    /// caller (`origin::checked_body`). Redirects are **not** followed: a 3xx is returned with its
    /// `location`, and the caller decides whether its target may be fetched
    /// (`origin::fetch_following_redirects`). Not retried here. Idempotent.
    async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
        headers: &[(String, String)],
    ) -> Result<OriginResponse, OriginError>;

    /// Sends `method` to `url` with `headers` and `body` and returns the whole answer: a request
    /// the cache passes through uncached (a `POST` to an xpublish route, a `GET` with
    /// credentials).
    ///
    /// Contract: as [`get`](Self::get): `Err` only without an HTTP answer, any status `Ok`,
    /// redirects returned, not followed, the same size cap and timeout. Not idempotent in
    /// general (it is the client's request).
    async fn forward(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<OriginResponse, OriginError>;
}
