//! [`UpstashIndex`]: the [`Index`] over any [`UpstashTransport`], built from the sans-IO
//! `upstash` module. The same code runs in the worker (over `worker::Fetch`) and in the native
//! integration tests (over a blocking HTTP client against a real Redis).

use crate::backend::{Index, IndexError, UpstashTransport};
use crate::upstash::{decode_single, Command, HttpCall, ReplyError, Value};

/// The index, speaking the Upstash REST protocol through `T`.
#[derive(Debug)]
pub struct UpstashIndex<T> {
    transport: T,
    token: String,
}

impl<T: UpstashTransport> UpstashIndex<T> {
    /// An index that authenticates with `token` and sends through `transport`.
    pub fn new(transport: T, token: impl Into<String>) -> Self {
        Self {
            transport,
            token: token.into(),
        }
    }

    /// Sends one command and decodes its reply.
    async fn call(&self, command: &Command) -> Result<Value, IndexError> {
        let call = HttpCall::single(&self.token, command);
        let raw = self
            .transport
            .send(&call)
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?;
        decode_single(raw.status, &raw.body).map_err(|e| classify(&e))
    }
}

/// Maps a reply error to what the caller must do: HTTP-level refusals are outages, the rest bugs.
fn classify(error: &ReplyError) -> IndexError {
    match error {
        ReplyError::Http { .. } => IndexError::Unavailable(error.to_string()),
        ReplyError::Command(_) | ReplyError::Protocol(_) => IndexError::Protocol(error.to_string()),
    }
}

impl<T: UpstashTransport> Index for UpstashIndex<T> {
    async fn ping(&self) -> Result<(), IndexError> {
        match self.call(&Command::new("PING")).await? {
            Value::Bytes(b) if b == b"PONG" => Ok(()),
            other => Err(IndexError::Protocol(format!(
                "PING answered {other:?}, not PONG"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::TransportError;
    use crate::fakes::CannedTransport;
    use futures::executor::block_on;

    /// PING goes out as one single command with the bearer token; PONG (base64) means healthy.
    #[test]
    fn ping_sends_one_command_and_accepts_pong() {
        let index = UpstashIndex::new(
            CannedTransport::answering(200, r#"{"result":"UE9ORw=="}"#),
            "tok",
        );
        assert_eq!(block_on(index.ping()), Ok(()));
        let sent = index.transport.sent.borrow();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].body, r#"["PING"]"#);
    }

    /// Outages and refusals are `Unavailable`; odd answers are `Protocol`.
    #[test]
    fn ping_failures_are_classified() {
        let cases = [
            (
                CannedTransport::failing(TransportError::Timeout(2000)),
                "Unavailable",
            ),
            (
                CannedTransport::answering(401, r#"{"error":"Unauthorized"}"#),
                "Unavailable",
            ),
            (CannedTransport::answering(503, "redis down"), "Unavailable"),
            (
                CannedTransport::answering(200, r#"{"result":"T0s="}"#),
                "Protocol",
            ),
            (
                CannedTransport::answering(400, r#"{"error":"ERR nope"}"#),
                "Protocol",
            ),
        ];
        for (transport, want) in cases {
            let got = block_on(UpstashIndex::new(transport, "t").ping()).unwrap_err();
            let kind = match got {
                IndexError::Unavailable(_) => "Unavailable",
                IndexError::Protocol(_) => "Protocol",
            };
            assert_eq!(kind, want, "{got}");
        }
    }
}
