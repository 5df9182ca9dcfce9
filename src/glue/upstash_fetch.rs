//! [`FetchTransport`]: the Upstash transport over the runtime's `fetch` (with plain `web_sys`
//! objects: [`super::raw_fetch`]), with a timeout.

use worker::AbortController;

use super::raw_fetch;
use super::timeout::within;
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
        let controller = AbortController::default();
        let signal = controller.signal();
        let url = call.url(&self.base_url);
        let exchange = async {
            let answer = raw_fetch::post(&url, &call.headers, &call.body, &signal)
                .await
                .map_err(TransportError::Network)?;
            Ok(RawReply {
                status: answer.status,
                body: answer.body,
            })
        };
        let reply = within(self.timeout_ms, exchange).await;
        if reply.is_none() {
            controller.abort();
        }
        reply.unwrap_or(Err(TransportError::Timeout(self.timeout_ms)))
    }
}
