//! `upstash-local`: an Upstash-REST-compatible HTTP server in front of a real
//! `redis-server`, so code written for Upstash Redis (the official
//! `@upstash/redis` and `upstash-redis` clients, or raw `fetch`) runs against
//! a local Redis in development, tests, CI and benchmarks.
//!
//! # Protocol (as documented by Upstash for its REST API)
//!
//! * `POST /` with a JSON array body runs one command:
//!   `["SET","k","v","EX",100]` → `{"result":"OK"}`. Arguments may be JSON
//!   strings, numbers (passed as written) or booleans (`true` → `"true"`).
//! * Path form: `GET|POST /{command}/{arg}/…`, arguments percent-decoded; a
//!   POST body is appended as one more argument, then query pairs
//!   (`?EX=100` → `EX 100`).
//! * `POST /pipeline`: a JSON array of commands → 200 and one
//!   `{"result":…}` / `{"error":…}` per command; not atomic, a failing
//!   command does not stop the others.
//! * `POST /multi-exec`: the same, atomically (MULTI/EXEC on one dedicated
//!   connection); a transaction Redis discards as a whole (unknown command,
//!   wrong arity) → 400 and a single `{"error":…}`.
//! * Auth: `Authorization: Bearer <token>` or `?_token=<token>`; otherwise 401
//!   `{"error":"WRONGPASS invalid or missing auth token"}`. Methods other than
//!   HEAD/GET/POST/PUT → 405. Every non-2xx answer is `{"error":"…"}`.
//! * Replies use RESP2 semantics: `null`, integers, strings, nested arrays;
//!   scores stay strings. A Redis error reply → 400 with Redis's own text.
//! * `Upstash-Encoding: base64`: every string in the result, at any depth, is
//!   base64 of the exact bytes, except the status reply `"OK"`; without it,
//!   invalid UTF-8 is replaced with U+FFFD.
//! * Every answer carries an increasing `upstash-sync-token` header.
//! * Bodies over 10 MiB → 400 `ERR max request size exceeded …`.
//! * Refused with a 400 error instead of hanging: SUBSCRIBE and friends,
//!   MONITOR, SELECT, AUTH, HELLO, QUIT, RESET, MULTI/EXEC/WATCH sent as
//!   commands, CLIENT REPLY/TRACKING, and blocking commands whose timeout is 0
//!   (forever) or over 10 s.
//! * Redis down: requests answer 503 (504 on timeout) and the server keeps
//!   running, reconnecting as soon as Redis is back.
//!
//! # Benchmark counters
//!
//! `GET /__stats` (token required) answers
//! `{"http_requests":…, "commands":…, "single_commands":…, "pipelines":…,
//! "transactions":…, "errors":…, "bytes_in":…, "bytes_out":…,
//! "seconds_since_reset":…}`; a pipeline of N commands counts 1 HTTP request
//! and N commands. `POST /__stats/reset` zeroes them. Requests to `/__stats`
//! are not counted themselves. See `stats` for each counter.
//!
//! # Modules
//!
//! `command` (request → argv, pure), `reply` (Redis value → JSON, pure),
//! `stats`, `error` (error → HTTP status, in one place), `redis_pool`
//! (connections), `http` (routing, auth, limits).

mod command;
mod error;
mod http;
mod redis_pool;
mod reply;
mod stats;

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

use crate::http::AppState;
use crate::redis_pool::{PoolError, RedisPool};

/// Text shown after the options in `--help`.
const AFTER_HELP: &str = "\
Endpoints (Upstash REST API):
  POST /                 one command as a JSON array, e.g. [\"SET\",\"k\",\"v\",\"EX\",100]
  GET|POST /cmd/arg/...  path form; a POST body is appended as the last argument
  POST /pipeline         JSON array of commands, one {\"result\"}|{\"error\"} each
  POST /multi-exec       the same, atomic (MULTI/EXEC)
  Auth: 'Authorization: Bearer <token>' or '?_token=<token>'.
  'Upstash-Encoding: base64' base64-encodes every string in results except \"OK\".

Benchmark counters (token required):
  GET  /__stats          {\"http_requests\",\"commands\",\"single_commands\",\"pipelines\",
                          \"transactions\",\"errors\",\"bytes_in\",\"bytes_out\",
                          \"seconds_since_reset\"}; a pipeline of N counts 1 request and
                          N commands; /__stats itself is not counted
  POST /__stats/reset    zero the counters

Limits: bodies over 10 MiB are refused (400, 'ERR max request size exceeded');
SUBSCRIBE and friends, MONITOR, SELECT, AUTH, HELLO, QUIT, RESET, MULTI/EXEC/
WATCH as commands, and blocking commands with timeout 0 or over 10 s are
refused with a 400 error instead of hanging.

On start it prints 'upstash-local listening on http://ADDR' on stdout (use
--listen 127.0.0.1:0 for a free port). If Redis is down, requests answer 503
(504 on timeout) until it is back; the server keeps running.";

/// Upstash-REST-compatible HTTP server in front of a real redis-server.
#[derive(Debug, Parser)]
#[command(name = "upstash-local", version, after_help = AFTER_HELP)]
struct Cli {
    /// Address to listen on (port 0 picks a free port; the line printed on start shows it).
    #[arg(long, env = "UPSTASH_LOCAL_LISTEN", default_value = "127.0.0.1:8079")]
    listen: SocketAddr,

    /// Redis to forward commands to (redis://[user:pass@]host:port[/db]).
    #[arg(
        long,
        env = "UPSTASH_LOCAL_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,

    /// Token clients must send (Authorization: Bearer <token> or ?_token=<token>).
    #[arg(long, env = "UPSTASH_LOCAL_TOKEN", hide_env_values = true)]
    token: String,

    /// Most Redis connections open at once (requests beyond wait for one).
    #[arg(long, env = "UPSTASH_LOCAL_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pool_size: u16,

    /// Longest a request may wait for Redis, in milliseconds (then 504).
    #[arg(long, env = "UPSTASH_LOCAL_TIMEOUT_MS", default_value_t = 15_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    timeout_ms: u64,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    /// The token is empty.
    #[error("--token (or UPSTASH_LOCAL_TOKEN) must not be empty")]
    EmptyToken,
    /// The Redis URL is unusable.
    #[error(transparent)]
    Redis(#[from] PoolError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upstash-local: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds, announces the address, and serves until SIGINT or SIGTERM.
async fn run(cli: Cli) -> Result<(), StartError> {
    if cli.token.is_empty() {
        return Err(StartError::EmptyToken);
    }
    let pool = RedisPool::new(
        &cli.redis_url,
        usize::from(cli.pool_size),
        Duration::from_millis(cli.timeout_ms),
    )?;
    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cli.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cli.listen,
        source,
    })?;
    // Not fatal: the pool logs the failure and requests answer 503 meanwhile.
    if pool.ping().await.is_ok() {
        eprintln!("upstash-local: redis reachable");
    }
    println!("upstash-local listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let state = Arc::new(AppState::new(pool, cli.token));
    tokio::select! {
        () = http::serve(listener, state) => {}
        () = shutdown_signal() => eprintln!("upstash-local: shutting down"),
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed_and_documents_stats() {
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "/__stats",
            "/__stats/reset",
            "--pool-size",
            "UPSTASH_LOCAL_TOKEN",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}");
        }
    }

    #[test]
    fn cli_defaults() {
        let cli = match Cli::try_parse_from(["upstash-local", "--token", "t"]) {
            Ok(cli) => cli,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cli.listen.to_string(), "127.0.0.1:8079");
        assert_eq!(cli.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(cli.pool_size, 16);
        assert!(
            Cli::try_parse_from(["upstash-local", "--token", "t", "--pool-size", "0"]).is_err()
        );
    }
}
