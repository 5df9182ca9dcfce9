//! The HTTP layer: accept loop, routing, auth, body limits, JSON answers.
//!
//! Order of checks for every request: method (405), then the friendly
//! `GET /` (no token needed), then the token (401), then the body size (400),
//! then the endpoint. Every answer is JSON and carries an
//! `upstash-sync-token` header (a process-wide counter, increasing with each
//! answer); the request header of that name is accepted and ignored, since one
//! Redis has nothing to wait for.
//!
//! Routes (see the crate docs for the full protocol):
//!
//! | path | what |
//! | --- | --- |
//! | `GET`/`HEAD /` | friendly JSON, no token needed |
//! | `POST /` | one command as a JSON array |
//! | `/pipeline` | JSON array of commands, one result each, not atomic |
//! | `/multi-exec` | JSON array of commands, atomic |
//! | `GET /__stats` | counters (see `stats`) |
//! | `POST /__stats/reset` | zero the counters |
//! | anything else | the path form, `/{command}/{arg}/…` |

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value as Json};
use tokio::net::TcpListener;

use crate::command::{self, Argv, TOKEN_PARAM};
use crate::error::AppError;
use crate::redis_pool::{RedisPool, TxOutcome};
use crate::reply::{Encoding, Outcome};
use crate::stats::{Kind, Stats};

/// Largest accepted request body: 10 MiB, Upstash's limit for large plans.
pub const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Oversized bodies are read and thrown away up to this size, so that the
/// client gets the JSON error instead of a reset connection; past it the
/// connection is closed after the answer.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Response header carrying the sync token.
const SYNC_TOKEN_HEADER: &str = "upstash-sync-token";

/// Request header selecting the reply encoding.
const ENCODING_HEADER: &str = "upstash-encoding";

/// What every request handler shares.
pub struct AppState {
    /// Connections to Redis.
    pub pool: RedisPool,
    /// Counters for `/__stats`.
    pub stats: Stats,
    /// The token clients must present.
    token: String,
    /// Source of `upstash-sync-token` values.
    sync_token: AtomicU64,
    /// Body size limit in bytes.
    max_body: usize,
}

impl AppState {
    /// State for a server requiring `token`, with the default body limit.
    pub fn new(pool: RedisPool, token: String) -> Self {
        Self {
            pool,
            stats: Stats::new(),
            token,
            sync_token: AtomicU64::new(0),
            max_body: MAX_REQUEST_BYTES,
        }
    }
}

/// A successful answer: status and JSON body.
type Answer = (StatusCode, Json);

/// Serves HTTP/1.1 on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AppState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Typically EMFILE: back off briefly rather than spin.
                eprintln!("upstash-local: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small request/answer pairs: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            // A client hanging up mid-request is not the server's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Answers one request; never fails (errors become JSON answers).
pub async fn handle(state: &AppState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let counted = !(path == "/__stats" || path.starts_with("/__stats/"));
    let (outcome, bytes_in) = route(state, &parts, body).await;
    if counted {
        state.stats.http_request(bytes_in);
    }
    let (status, body) = match outcome {
        Ok(answer) => answer,
        Err(error) => {
            if counted {
                state.stats.errors(1);
            }
            (error.status(), json!({ "error": error.to_string() }))
        }
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|e| {
        format!("{{\"error\":\"ERR encoding the answer failed: {e}\"}}").into_bytes()
    });
    if counted {
        state.stats.bytes_out(bytes.len());
    }
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let sync = state.sync_token.fetch_add(1, Ordering::Relaxed) + 1;
    headers.insert(SYNC_TOKEN_HEADER, HeaderValue::from(sync));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("HEAD, GET, POST, PUT"));
    }
    response
}

/// Checks method, token and body, then dispatches. Returns the answer and
/// the number of request body bytes read.
async fn route(
    state: &AppState,
    parts: &Parts,
    body: Incoming,
) -> (Result<Answer, AppError>, usize) {
    let method = &parts.method;
    if !matches!(
        *method,
        Method::HEAD | Method::GET | Method::POST | Method::PUT
    ) {
        // Drain the body first: closing a connection with unread input makes the kernel reset
        // it, and the client can lose this very answer (seen as "server disconnected").
        let (_, bytes_in) = read_body(body, declared_length(parts), state.max_body).await;
        return (
            Err(AppError::MethodNotAllowed(method.to_string())),
            bytes_in,
        );
    }
    let path = parts.uri.path();
    let reads = matches!(*method, Method::GET | Method::HEAD);
    if reads && (path.is_empty() || path == "/") {
        return (Ok((StatusCode::OK, welcome())), 0);
    }
    if !authorized(state, parts) {
        let (_, bytes_in) = read_body(body, declared_length(parts), state.max_body).await;
        return (Err(AppError::Unauthorized), bytes_in);
    }
    let (body, bytes_in) = read_body(body, declared_length(parts), state.max_body).await;
    let body = match body {
        Ok(body) => body,
        Err(e) => return (Err(e), bytes_in),
    };
    let encoding = Encoding::from_header(
        parts
            .headers
            .get(ENCODING_HEADER)
            .and_then(|v| v.to_str().ok()),
    );
    let answer = match path {
        "/__stats" => Ok((StatusCode::OK, state.stats.snapshot())),
        "/__stats/reset" if reads => Err(AppError::MethodNotAllowed(method.to_string())),
        "/__stats/reset" => {
            state.stats.reset();
            Ok((StatusCode::OK, json!({ "result": "OK" })))
        }
        p if endpoint(p, "pipeline") => pipeline(state, &body, encoding).await,
        p if endpoint(p, "multi-exec") => transaction(state, &body, encoding).await,
        "" | "/" => match command::parse_command(&body) {
            Ok(argv) => single(state, argv, encoding).await,
            Err(e) => Err(e.into()),
        },
        p => match command::parse_path_command(p, parts.uri.query(), &body) {
            Ok(argv) => single(state, argv, encoding).await,
            Err(e) => Err(e.into()),
        },
    };
    (answer, bytes_in)
}

/// True if `path` is `/{name}` (or `/{name}/`), ignoring case.
fn endpoint(path: &str, name: &str) -> bool {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    trimmed.eq_ignore_ascii_case(name)
}

/// The answer to `GET /`.
fn welcome() -> Json {
    json!({
        "server": "upstash-local",
        "version": env!("CARGO_PKG_VERSION"),
        "usage": "POST a JSON command array such as [\"SET\",\"k\",\"v\"] to /, \
                  or arrays of them to /pipeline or /multi-exec, \
                  with 'Authorization: Bearer <token>'",
    })
}

/// True if the request carries the configured token, as a bearer token or
/// as the `_token` query parameter.
fn authorized(state: &AppState, parts: &Parts) -> bool {
    let bearer = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if bearer.is_some_and(|t| same_token(t, &state.token)) {
        return true;
    }
    command::query_param(parts.uri.query(), TOKEN_PARAM)
        .is_some_and(|t| same_token(&t, &state.token))
}

/// Compares tokens without stopping at the first difference.
fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Content-Length` the client declared, if any.
fn declared_length(parts: &Parts) -> Option<usize> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Reads the body, refusing it if over `limit` (an oversized body is still
/// drained up to [`DRAIN_LIMIT`] so the client reads the answer). Returns
/// the body and the number of bytes read.
async fn read_body(
    mut body: Incoming,
    declared: Option<usize>,
    limit: usize,
) -> (Result<Bytes, AppError>, usize) {
    let too_large = |actual| AppError::TooLarge { limit, actual };
    if let Some(n) = declared.filter(|&n| n > DRAIN_LIMIT) {
        return (Err(too_large(n)), 0);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return (Err(AppError::Body(e.to_string())), total),
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total += data.len();
        if total <= limit {
            buf.extend_from_slice(&data);
        } else {
            buf = Vec::new();
            if total > DRAIN_LIMIT {
                break;
            }
        }
    }
    if total > limit {
        return (Err(too_large(total.max(declared.unwrap_or(0)))), total);
    }
    (Ok(Bytes::from(buf)), total)
}

/// Runs one command: `{"result": …}`, or a 400 with Redis's error text.
async fn single(state: &AppState, argv: Argv, encoding: Encoding) -> Result<Answer, AppError> {
    state.stats.batch(Kind::Single, 1);
    state.stats.scripts(argv.first().map(Vec::as_slice));
    command::check_allowed(&argv)?;
    let reply = state.pool.command(&argv).await?;
    match Outcome::from_value(reply, encoding) {
        Outcome::Result(result) => Ok((StatusCode::OK, json!({ "result": result }))),
        Outcome::Error(error) => Err(AppError::Redis(error)),
    }
}

/// Runs a pipeline: every command runs (refused ones answer their own error
/// without reaching Redis), one `{"result"}` / `{"error"}` each, status 200.
async fn pipeline(state: &AppState, body: &[u8], encoding: Encoding) -> Result<Answer, AppError> {
    let commands = command::parse_pipeline(body, "pipeline")?;
    state.stats.batch(Kind::Pipeline, commands.len());
    state
        .stats
        .scripts(commands.iter().filter_map(|a| a.first().map(Vec::as_slice)));
    let mut outcomes: Vec<Option<Outcome>> = commands
        .iter()
        .map(|argv| {
            command::check_allowed(argv)
                .err()
                .map(|e| Outcome::Error(e.to_string()))
        })
        .collect();
    let runnable: Vec<Argv> = commands
        .into_iter()
        .zip(&outcomes)
        .filter(|(_, refused)| refused.is_none())
        .map(|(argv, _)| argv)
        .collect();
    let mut replies = state.pool.pipeline(&runnable).await?.into_iter();
    for slot in outcomes.iter_mut().filter(|slot| slot.is_none()) {
        let reply = replies.next().unwrap_or(redis::Value::Nil);
        *slot = Some(Outcome::from_value(reply, encoding));
    }
    Ok((
        StatusCode::OK,
        results(state, outcomes.into_iter().flatten()),
    ))
}

/// Runs a transaction: one `{"result"}` / `{"error"}` per command when EXEC
/// ran, or a single 400 `{"error"}` when Redis (or the policy) discarded it.
async fn transaction(
    state: &AppState,
    body: &[u8],
    encoding: Encoding,
) -> Result<Answer, AppError> {
    let commands = command::parse_pipeline(body, "transaction")?;
    state.stats.batch(Kind::Transaction, commands.len());
    state
        .stats
        .scripts(commands.iter().filter_map(|a| a.first().map(Vec::as_slice)));
    for argv in &commands {
        command::check_allowed(argv)?;
    }
    match state.pool.transaction(&commands).await? {
        TxOutcome::Executed(replies) => {
            let outcomes = replies
                .into_iter()
                .map(|reply| Outcome::from_value(reply, encoding));
            Ok((StatusCode::OK, results(state, outcomes)))
        }
        TxOutcome::Discarded(reply) => match Outcome::from_value(reply, Encoding::Text) {
            Outcome::Error(error) => Err(AppError::TransactionDiscarded(error)),
            Outcome::Result(other) => Err(AppError::TransactionDiscarded(format!(
                "EXECABORT Transaction discarded ({other})"
            ))),
        },
    }
}

/// The JSON array of per-command outcomes, counting the errors among them.
fn results(state: &AppState, outcomes: impl Iterator<Item = Outcome>) -> Json {
    let mut errors = 0;
    let items = outcomes
        .map(|outcome| {
            errors += usize::from(outcome.is_error());
            outcome.into_json()
        })
        .collect();
    state.stats.errors(errors);
    Json::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        let cases = [
            ("secret", "secret", true),
            ("secret", "secreT", false),
            ("secre", "secret", false),
            ("", "secret", false),
            ("secret1", "secret", false),
        ];
        for (given, expected, want) in cases {
            assert_eq!(same_token(given, expected), want, "{given} vs {expected}");
        }
    }

    #[test]
    fn endpoints() {
        let cases = [
            ("/pipeline", "pipeline", true),
            ("/PIPELINE/", "pipeline", true),
            ("/pipeline/x", "pipeline", false),
            ("/multi-exec", "multi-exec", true),
            ("/get/pipeline", "pipeline", false),
        ];
        for (path, name, want) in cases {
            assert_eq!(endpoint(path, name), want, "{path}");
        }
    }
}
