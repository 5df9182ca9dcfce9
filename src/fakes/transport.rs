//! A canned Upstash transport that records what it was sent.

use std::cell::RefCell;

use crate::index::transport::{RawReply, TransportError, UpstashTransport};
use crate::upstash::HttpCall;

/// An Upstash transport that answers every call with one canned reply and records the calls.
#[derive(Debug)]
pub struct CannedTransport {
    reply: Result<RawReply, TransportError>,
    pub sent: RefCell<Vec<HttpCall>>,
}

impl CannedTransport {
    pub fn answering(status: u16, body: &str) -> Self {
        Self {
            reply: Ok(RawReply {
                status,
                body: body.as_bytes().to_vec(),
            }),
            sent: RefCell::default(),
        }
    }
    pub fn failing(error: TransportError) -> Self {
        Self {
            reply: Err(error),
            sent: RefCell::default(),
        }
    }
}

impl UpstashTransport for CannedTransport {
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
        self.sent.borrow_mut().push(call.clone());
        self.reply.clone()
    }
}
