//! [`UpstashIndex`]: the [`Index`] over any [`UpstashTransport`], built from the sans-IO
//! `upstash` module. The same code runs in the worker (over `worker::Fetch`) and in the native
//! integration tests (over a blocking HTTP client against a real Redis).

use crate::backend::{Index, IndexError, UpstashTransport};
use crate::cache_entry::{
    stats_fields, DatasetStats, IndexEntry, FORGET_SCRIPT, LOOKUP_SCRIPT, RELEASE_SCRIPT,
};
use crate::cache_keys::CacheKeys;
use crate::upstash::{decode_batch, decode_single, Batch, Command, HttpCall, ReplyError, Value};

/// The index, speaking the Upstash REST protocol through `T`.
#[derive(Debug)]
pub struct UpstashIndex<T> {
    transport: T,
    token: String,
    keys: CacheKeys,
}

impl<T: UpstashTransport> UpstashIndex<T> {
    /// An index that authenticates with `token`, sends through `transport`, and names its keys
    /// with `keys`.
    pub fn new(transport: T, token: impl Into<String>, keys: CacheKeys) -> Self {
        Self {
            transport,
            token: token.into(),
            keys,
        }
    }

    /// Sends commands as one pipeline (one round trip) and fails if any of them failed.
    async fn pipeline(&self, commands: &[Command]) -> Result<Vec<Value>, IndexError> {
        self.batch(Batch::Pipeline, commands).await
    }

    /// Sends commands as one atomic transaction (MULTI … EXEC) and fails if any failed.
    async fn transaction(&self, commands: &[Command]) -> Result<(), IndexError> {
        self.batch(Batch::Transaction, commands).await.map(|_| ())
    }

    async fn batch(&self, kind: Batch, commands: &[Command]) -> Result<Vec<Value>, IndexError> {
        let call = HttpCall::batch(&self.token, kind, commands);
        let raw = self
            .transport
            .send(&call)
            .await
            .map_err(|e| IndexError::Unavailable(e.to_string()))?;
        decode_batch(raw.status, &raw.body, commands.len())
            .map_err(|e| classify(&e))?
            .into_iter()
            .map(|answer| answer.map_err(|e| classify(&e)))
            .collect()
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

/// `HINCRBY stats field by`: one dataset counter.
fn count(stats: &str, field: &str, by: u64) -> Command {
    Command::new("HINCRBY").arg(stats).arg(field).arg(by)
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

    async fn lookup(
        &self,
        dataset: &str,
        key: &str,
        now_ms: u64,
    ) -> Result<Option<IndexEntry>, IndexError> {
        let reply = self
            .call(
                &Command::new("EVAL")
                    .arg(LOOKUP_SCRIPT)
                    .arg(2)
                    .arg(self.keys.entry(dataset, key))
                    .arg(self.keys.stats(dataset))
                    .arg(now_ms),
            )
            .await?;
        Ok(IndexEntry::from_hgetall(&reply))
    }

    async fn record_miss(
        &self,
        dataset: &str,
        key: &str,
        origin_bytes: u64,
        stored: Option<&IndexEntry>,
        ttl_ms: u64,
    ) -> Result<(), IndexError> {
        let stats = self.keys.stats(dataset);
        let mut commands = vec![
            count(&stats, stats_fields::MISSES, 1),
            count(&stats, stats_fields::BYTES_FROM_ORIGIN, origin_bytes),
        ];
        if let Some(entry) = stored {
            commands.extend(entry.replace_with_ttl(&self.keys.entry(dataset, key), ttl_ms));
            commands.push(count(&stats, stats_fields::ENTRIES_WRITTEN, 1));
            commands.push(count(&stats, stats_fields::BYTES_WRITTEN, entry.size));
            return self.transaction(&commands).await;
        }
        self.pipeline(&commands).await.map(|_| ())
    }

    async fn forget(&self, dataset: &str, key: &str, entry: &IndexEntry) -> Result<(), IndexError> {
        self.call(
            &Command::new("EVAL")
                .arg(FORGET_SCRIPT)
                .arg(2)
                .arg(self.keys.entry(dataset, key))
                .arg(self.keys.stats(dataset))
                .arg(&entry.object_key)
                .arg(entry.created_ms)
                .arg(entry.size),
        )
        .await
        .map(|_| ())
    }

    async fn adopt(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
    ) -> Result<(), IndexError> {
        let stats = self.keys.stats(dataset);
        let mut commands = entry
            .replace_with_ttl(&self.keys.entry(dataset, key), ttl_ms)
            .to_vec();
        commands.push(count(&stats, stats_fields::HITS, 1));
        commands.push(count(&stats, stats_fields::BYTES_FROM_CACHE, entry.size));
        self.transaction(&commands).await
    }

    async fn try_lease(&self, object: &str, holder: &str, ttl_ms: u64) -> Result<bool, IndexError> {
        let reply = self
            .call(
                &Command::new("SET")
                    .arg(self.keys.lease(object))
                    .arg(holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms.max(1)),
            )
            .await?;
        Ok(reply != Value::Nil)
    }

    async fn release_lease(&self, object: &str, holder: &str) -> Result<(), IndexError> {
        self.call(
            &Command::new("EVAL")
                .arg(RELEASE_SCRIPT)
                .arg(1)
                .arg(self.keys.lease(object))
                .arg(holder),
        )
        .await
        .map(|_| ())
    }

    async fn dataset_stats(&self, dataset: &str) -> Result<DatasetStats, IndexError> {
        let reply = self
            .call(&Command::new("HGETALL").arg(self.keys.stats(dataset)))
            .await?;
        Ok(DatasetStats::from_hgetall(&reply))
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
            CacheKeys::new("t"),
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
            let got = block_on(UpstashIndex::new(transport, "t", CacheKeys::new("t")).ping())
                .unwrap_err();
            let kind = match got {
                IndexError::Unavailable(_) => "Unavailable",
                IndexError::Protocol(_) => "Protocol",
            };
            assert_eq!(kind, want, "{got}");
        }
    }
}
