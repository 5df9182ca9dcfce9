//! A small pool of RESP connections to `redis-server`, one request per
//! connection at a time.
//!
//! * At most `size` requests talk to Redis at once; others wait for a free
//!   connection (within the request timeout).
//! * A connection is leased for a whole request, so a pipeline is sent as one
//!   write, and a transaction (`MULTI` … `EXEC`) runs on one dedicated
//!   connection with nothing else interleaved on it.
//! * Connections are made lazily. Redis being down is not fatal: requests fail
//!   with [`PoolError::Unavailable`] and the next request simply connects
//!   again. A connection goes back to the pool only after a request finished
//!   cleanly on it. A pooled connection is PINGed before reuse when it idled
//!   over [`IDLE_CHECK_AFTER`], or when any connection failed since it was
//!   last used (a "generation" bump), so a Redis restart costs at most one
//!   failed request, and none if Redis was down for over a second.
//! * Every operation is bounded by the request timeout
//!   ([`PoolError::Timeout`]); a connection whose request timed out is dropped.
//!
//! Replies come back as raw [`redis::Value`]s, error replies included (as
//! `Value::ServerError`); turning them into JSON is `reply`'s job.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A pooled connection idle longer than this is PINGed before it is reused.
pub const IDLE_CHECK_AFTER: Duration = Duration::from_secs(1);

/// How long to wait for a TCP connection (and its handshake) to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why Redis could not answer a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The Redis URL given on the command line cannot be used.
    #[error("invalid redis URL: {0}")]
    InvalidUrl(String),
    /// Redis could not be reached, or the connection broke mid-request.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis did not answer within the request timeout.
    #[error("redis did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// Redis answered something that does not fit the request.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

/// What happened to a `/multi-exec` transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum TxOutcome {
    /// EXEC ran every command; one reply each, error replies included.
    Executed(Vec<Value>),
    /// Redis discarded the whole transaction; the error reply that caused it
    /// (the first command refused at queue time, or EXEC's own error).
    Discarded(Value),
}

/// The pool. Cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<Inner>,
}

/// State shared by every clone of the pool and by its leases.
struct Inner {
    client: Client,
    idle: Mutex<Vec<IdleConn>>,
    permits: Arc<Semaphore>,
    timeout: Duration,
    /// Whether the last request reached Redis; used to log transitions once.
    up: AtomicBool,
    /// Bumped whenever a connection fails: older idle connections are suspect.
    generation: AtomicU64,
}

/// A connection waiting in the pool, since when, and the generation it was
/// last known good in.
struct IdleConn {
    conn: MultiplexedConnection,
    since: Instant,
    generation: u64,
}

/// A connection leased to one request. It returns to the pool on drop only
/// if `healthy` was set, i.e. the request finished cleanly on it.
struct Lease {
    conn: MultiplexedConnection,
    inner: Arc<Inner>,
    healthy: bool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.healthy {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.push(IdleConn {
                conn: self.conn.clone(),
                since: Instant::now(),
                generation: self.inner.generation.load(Ordering::Relaxed),
            });
        } else {
            self.inner.generation.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RedisPool {
    /// A pool of at most `size` connections to `url`, bounding each request
    /// by `timeout`. Does not connect yet.
    pub fn new(url: &str, size: usize, timeout: Duration) -> Result<Self, PoolError> {
        let client = Client::open(url).map_err(|e| PoolError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                idle: Mutex::new(Vec::with_capacity(size)),
                permits: Arc::new(Semaphore::new(size.max(1))),
                timeout,
                up: AtomicBool::new(true),
                generation: AtomicU64::new(0),
            }),
        })
    }

    /// Runs one command and returns its reply.
    pub async fn command(&self, argv: &[Vec<u8>]) -> Result<Value, PoolError> {
        self.bounded(async {
            let mut lease = self.lease().await?;
            let reply = lease
                .conn
                .send_packed_command(&to_cmd(argv))
                .await
                .map_err(|e| PoolError::Unavailable(e.to_string()))?;
            lease.healthy = true;
            Ok(reply)
        })
        .await
    }

    /// Sends `commands` as one pipeline (not atomic) and returns one reply
    /// per command, in order.
    pub async fn pipeline(&self, commands: &[Vec<Vec<u8>>]) -> Result<Vec<Value>, PoolError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded(async {
            let mut lease = self.lease().await?;
            let mut pipe = Pipeline::with_capacity(commands.len());
            for argv in commands {
                pipe.add_command(to_cmd(argv));
            }
            let replies = lease
                .conn
                .send_packed_commands(&pipe, 0, commands.len())
                .await
                .map_err(|e| PoolError::Unavailable(e.to_string()))?;
            if replies.len() != commands.len() {
                return Err(PoolError::Protocol(format!(
                    "{} replies to a pipeline of {}",
                    replies.len(),
                    commands.len()
                )));
            }
            lease.healthy = true;
            Ok(replies)
        })
        .await
    }

    /// Runs `commands` atomically: `MULTI`, the commands, `EXEC`, written at
    /// once on one leased connection.
    pub async fn transaction(&self, commands: &[Vec<Vec<u8>>]) -> Result<TxOutcome, PoolError> {
        self.bounded(async {
            let mut lease = self.lease().await?;
            let mut pipe = Pipeline::with_capacity(commands.len() + 2);
            pipe.cmd("MULTI");
            for argv in commands {
                pipe.add_command(to_cmd(argv));
            }
            pipe.cmd("EXEC");
            let replies = lease
                .conn
                .send_packed_commands(&pipe, 0, commands.len() + 2)
                .await
                .map_err(|e| PoolError::Unavailable(e.to_string()))?;
            let outcome = transaction_outcome(replies, commands.len())?;
            lease.healthy = true;
            Ok(outcome)
        })
        .await
    }

    /// Checks that Redis answers a PING.
    pub async fn ping(&self) -> Result<(), PoolError> {
        match self.command(&[b"PING".to_vec()]).await? {
            Value::ServerError(e) => Err(PoolError::Protocol(format!("PING: {e}"))),
            _ => Ok(()),
        }
    }

    /// Bounds `op` by the request timeout and logs Redis going down or
    /// coming back (once per transition, on stderr).
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, PoolError>>,
    ) -> Result<T, PoolError> {
        let result = match tokio::time::timeout(self.inner.timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(PoolError::Timeout(self.inner.timeout)),
        };
        match &result {
            Err(e @ (PoolError::Unavailable(_) | PoolError::Timeout(_))) => {
                if self.inner.up.swap(false, Ordering::Relaxed) {
                    eprintln!("upstash-local: {e}; answering errors until it is back");
                }
            }
            _ => {
                if !self.inner.up.swap(true, Ordering::Relaxed) {
                    eprintln!("upstash-local: redis reachable again");
                }
            }
        }
        result
    }

    /// Leases a connection: waits for a free slot, then reuses an idle
    /// connection (PINGing it first if it idled long or a failure happened
    /// since it was last used) or opens a new one.
    async fn lease(&self) -> Result<Lease, PoolError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Unavailable("connection pool closed".into()))?;
        loop {
            let candidate = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let generation = self.inner.generation.load(Ordering::Relaxed);
            let conn = match candidate {
                Some(idle)
                    if idle.since.elapsed() < IDLE_CHECK_AFTER && idle.generation == generation =>
                {
                    idle.conn
                }
                Some(mut idle) => {
                    if !still_alive(&mut idle.conn).await {
                        continue;
                    }
                    idle.conn
                }
                None => self.connect().await?,
            };
            return Ok(Lease {
                conn,
                inner: Arc::clone(&self.inner),
                healthy: false,
                _permit: permit,
            });
        }
    }

    /// Opens a new connection.
    async fn connect(&self) -> Result<MultiplexedConnection, PoolError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        self.inner
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| PoolError::Unavailable(e.to_string()))
    }
}

/// True if `conn` answers a PING promptly.
async fn still_alive(conn: &mut MultiplexedConnection) -> bool {
    let cmd = redis::cmd("PING");
    let ping = conn.send_packed_command(&cmd);
    matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, ping).await,
        Ok(Ok(Value::SimpleString(_) | Value::Okay))
    )
}

/// Builds a command from raw argument bytes (name first).
fn to_cmd(argv: &[Vec<u8>]) -> Cmd {
    let mut cmd = Cmd::new();
    for arg in argv {
        cmd.arg(arg.as_slice());
    }
    cmd
}

/// Reads the replies to `MULTI`, `n` commands and `EXEC`.
fn transaction_outcome(replies: Vec<Value>, n: usize) -> Result<TxOutcome, PoolError> {
    if replies.len() != n + 2 {
        return Err(PoolError::Protocol(format!(
            "{} replies to a transaction of {n}",
            replies.len()
        )));
    }
    let mut replies = replies.into_iter();
    let multi = replies.next();
    if let Some(error @ Value::ServerError(_)) = multi {
        return Ok(TxOutcome::Discarded(error));
    }
    let mut queue_error = None;
    for reply in replies.by_ref().take(n) {
        if queue_error.is_none() && matches!(reply, Value::ServerError(_)) {
            queue_error = Some(reply);
        }
    }
    let exec = replies.next().unwrap_or(Value::Nil);
    if let Some(error) = queue_error {
        return Ok(TxOutcome::Discarded(error));
    }
    match exec {
        Value::Array(results) if results.len() == n => Ok(TxOutcome::Executed(results)),
        error @ Value::ServerError(_) => Ok(TxOutcome::Discarded(error)),
        other => Err(PoolError::Protocol(format!("EXEC answered {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(resp: &[u8]) -> Value {
        match redis::parse_redis_value(resp) {
            Ok(v) => v,
            Err(e) => panic!("bad RESP in test {resp:?}: {e}"),
        }
    }

    #[test]
    fn transaction_outcomes() {
        let executed = transaction_outcome(
            vec![
                Value::Okay,
                v(b"+QUEUED\r\n"),
                v(b"+QUEUED\r\n"),
                v(b"*2\r\n+OK\r\n-WRONGTYPE x\r\n"),
            ],
            2,
        );
        assert_eq!(
            executed,
            Ok(TxOutcome::Executed(vec![
                Value::Okay,
                v(b"-WRONGTYPE x\r\n")
            ]))
        );

        let discarded = transaction_outcome(
            vec![
                Value::Okay,
                v(b"+QUEUED\r\n"),
                v(b"-ERR unknown command 'nope'\r\n"),
                v(b"-EXECABORT Transaction discarded because of previous errors.\r\n"),
            ],
            2,
        );
        assert_eq!(
            discarded,
            Ok(TxOutcome::Discarded(v(b"-ERR unknown command 'nope'\r\n")))
        );

        let exec_error = transaction_outcome(
            vec![Value::Okay, v(b"+QUEUED\r\n"), v(b"-EXECABORT x\r\n")],
            1,
        );
        assert_eq!(exec_error, Ok(TxOutcome::Discarded(v(b"-EXECABORT x\r\n"))));

        assert!(matches!(
            transaction_outcome(vec![Value::Okay], 1),
            Err(PoolError::Protocol(_))
        ));
        assert!(matches!(
            transaction_outcome(vec![Value::Okay, v(b"+QUEUED\r\n"), Value::Nil], 1),
            Err(PoolError::Protocol(_))
        ));
    }

    #[test]
    fn bad_url_is_refused() {
        assert!(matches!(
            RedisPool::new("not a url", 1, Duration::from_secs(1)).err(),
            Some(PoolError::InvalidUrl(_))
        ));
        assert!(RedisPool::new("redis://127.0.0.1:6379", 1, Duration::from_secs(1)).is_ok());
    }
}
