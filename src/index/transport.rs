//! The Upstash REST transport: one HTTP call out, one raw answer back (over `worker::Fetch` in
//! the glue, over a blocking client in the integration tests).

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
    /// Not sent: the index failed repeatedly and the isolate's circuit breaker is open.
    #[error("not sent: the index is failing (circuit open)")]
    CircuitOpen,
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
