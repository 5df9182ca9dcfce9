//! The I/O boundaries, as small traits whose docs state the contract.
//!
//! Core code is generic over these; runtime bindings (`worker::Fetch`, `worker::Bucket`,
//! `worker::Date`) appear only in their `glue` implementations. Traits are not `Send`: Workers
//! runs one thread and JS futures are `!Send`.

use crate::upstash::HttpCall;

/// A raw HTTP answer from the Upstash REST API, before protocol decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// HTTP status code.
    pub status: u16,
    /// The body, unparsed.
    pub body: Vec<u8>,
}

/// Why a call to the Upstash REST API produced no HTTP answer at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer within the configured timeout.
    #[error("no answer within {0} ms")]
    Timeout(u32),
    /// The connection failed (DNS, refused, reset, TLS).
    #[error("request failed: {0}")]
    Network(String),
}

/// Sends one Upstash REST call. Implemented over `worker::Fetch` on wasm and over a blocking HTTP
/// client in the native integration tests.
#[allow(async_fn_in_trait)]
pub trait UpstashTransport {
    /// POSTs `call` to the database and returns whatever HTTP answer came back, any status.
    ///
    /// Contract: returns `Err` only when there is no HTTP answer (network failure or timeout);
    /// a 4xx/5xx answer is `Ok` and is classified by `upstash::reply`. Not retried here.
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError>;
}

/// Why the index could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The index server is unreachable, timed out, refused the token or is failing: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The index answered, but not as expected (a refused command, a malformed reply): a bug or a
    /// version mismatch, not worth retrying.
    #[error("{0}")]
    Protocol(String),
}

/// The shared index of cached keys (Redis semantics, reached over the Upstash REST API).
#[allow(async_fn_in_trait)]
pub trait Index {
    /// One round trip that proves the index answers commands (`PING` → `PONG`).
    ///
    /// Contract: `Ok` only when the server executed the command; idempotent, no side effects.
    async fn ping(&self) -> Result<(), IndexError>;
}

/// Why the chunk store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store refused a write to this key for now (R2 allows one write per second per key):
    /// not an error for a reader, the write can be dropped or retried later.
    #[error("write to {0} rate limited")]
    RateLimited(String),
    /// The store failed or is unreachable: retry later.
    #[error("{0}")]
    Unavailable(String),
}

/// Where chunk bytes live (an R2 binding, or an S3-compatible bucket).
#[allow(async_fn_in_trait)]
pub trait ChunkStore {
    /// Stores `bytes` under `key`, replacing any object there.
    ///
    /// Contract: on `Ok` a following `get` of `key` returns these bytes. On `Err` the object may or
    /// may not have landed (a reported failure can still have written): callers must not assume
    /// either, and must never index an object whose `put` failed.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Reads the whole object under `key`; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes the object under `key`. Idempotent: deleting nothing is `Ok`.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// The current time, passed in so that core code never calls `SystemTime::now()` (it panics on
/// `wasm32-unknown-unknown`).
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}
