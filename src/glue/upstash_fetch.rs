//! [`FetchTransport`]: the Upstash transport over the runtime's `fetch`, one crossing per call
//! (`host::post`: the request built, sent with `AbortSignal.timeout` and its answer read whole
//! in JS).

use super::host;
use crate::index::transport::{RawReply, TransportError, UpstashTransport};
use crate::upstash::HttpCall;

/// Sends Upstash calls with the runtime's `fetch`, aborting after `timeout_ms`.
#[derive(Clone)]
pub struct FetchTransport {
    base_url: String,
    timeout_ms: u32,
}

impl FetchTransport {
    /// A transport for the database at `base_url`.
    pub fn new(base_url: &str, timeout_ms: u32) -> Self {
        Self {
            base_url: base_url.to_owned(),
            timeout_ms,
        }
    }
}

impl UpstashTransport for FetchTransport {
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
        let url = call.url(&self.base_url);
        match host::post(&url, &call.headers, &call.body, self.timeout_ms).await {
            Ok(Some(answer)) => Ok(RawReply {
                status: answer.status,
                body: answer.body,
            }),
            Ok(None) => Err(TransportError::Timeout(self.timeout_ms)),
            Err(error) => Err(TransportError::Network(error)),
        }
    }
}
