//! [`FetchTransport`]: the Upstash transport over `worker::Fetch`, with a timeout.

use worker::{AbortController, Fetch};

use super::convert::to_worker_request;
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
        let network = |e: worker::Error| TransportError::Network(e.to_string());
        let request = to_worker_request(call, &self.base_url).map_err(network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = async {
            let mut response = Fetch::Request(request)
                .send_with_signal(&signal)
                .await
                .map_err(network)?;
            let body = response.bytes().await.map_err(network)?;
            Ok(RawReply {
                status: response.status_code(),
                body,
            })
        };
        let reply = within(self.timeout_ms, exchange).await;
        if reply.is_none() {
            controller.abort();
        }
        reply.unwrap_or(Err(TransportError::Timeout(self.timeout_ms)))
    }
}
