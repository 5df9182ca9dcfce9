//! Request-level errors and the one place that maps them to HTTP statuses.
//!
//! Every non-2xx answer is `{"error": "<message>"}` with the status from
//! [`AppError::status`]:
//!
//! | error | status |
//! | --- | --- |
//! | missing or wrong token | 401 |
//! | method other than HEAD, GET, POST, PUT | 405 |
//! | unparsable request, unsupported command, Redis error reply, discarded transaction, body over the size limit | 400 |
//! | Redis unreachable or connection broken | 503 |
//! | Redis did not answer in time | 504 |
//!
//! 400 for an oversized body follows Upstash, whose documented codes are 200,
//! 400, 401 and 405 and whose size error is an ordinary `ERR` reply.

use hyper::StatusCode;

use crate::command::CommandError;
use crate::redis_pool::PoolError;

/// Why a request was answered with an error as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// No token, or not the configured one. Upstash's own wording.
    #[error("WRONGPASS invalid or missing auth token")]
    Unauthorized,
    /// An HTTP method other than HEAD, GET, POST or PUT.
    #[error("ERR method {0} not allowed: use HEAD, GET, POST or PUT")]
    MethodNotAllowed(String),
    /// The request body is over the limit.
    #[error("ERR max request size exceeded. Limit: {limit} bytes, Actual: {actual} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The body's size (or as much of it as was read), in bytes.
        actual: usize,
    },
    /// The request body could not be read.
    #[error("ERR failed to read request body: {0}")]
    Body(String),
    /// The request could not be turned into commands, or a command is refused.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// Redis answered a single command with an error reply (its own text).
    #[error("{0}")]
    Redis(String),
    /// Redis discarded a transaction as a whole (the error that caused it).
    #[error("{0}")]
    TransactionDiscarded(String),
    /// Redis could not be reached, timed out, or answered nonsense.
    #[error("ERR {0}")]
    Pool(#[from] PoolError),
}

impl AppError {
    /// The HTTP status for this error; see the module docs.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::TooLarge { .. }
            | AppError::Body(_)
            | AppError::Command(_)
            | AppError::Redis(_)
            | AppError::TransactionDiscarded(_) => StatusCode::BAD_REQUEST,
            AppError::Pool(PoolError::Timeout(_)) => StatusCode::GATEWAY_TIMEOUT,
            AppError::Pool(PoolError::InvalidUrl(_))
            | AppError::Pool(PoolError::Unavailable(_))
            | AppError::Pool(PoolError::Protocol(_)) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn statuses_and_messages() {
        let cases: Vec<(AppError, u16, &str)> = vec![
            (
                AppError::Unauthorized,
                401,
                "WRONGPASS invalid or missing auth token",
            ),
            (
                AppError::MethodNotAllowed("DELETE".into()),
                405,
                "ERR method DELETE not allowed: use HEAD, GET, POST or PUT",
            ),
            (
                AppError::TooLarge {
                    limit: 10,
                    actual: 11,
                },
                400,
                "ERR max request size exceeded. Limit: 10 bytes, Actual: 11 bytes",
            ),
            (
                AppError::Command(CommandError::Empty),
                400,
                "ERR empty command",
            ),
            (
                AppError::Redis("WRONGTYPE Operation".into()),
                400,
                "WRONGTYPE Operation",
            ),
            (
                AppError::TransactionDiscarded("ERR unknown command 'x'".into()),
                400,
                "ERR unknown command 'x'",
            ),
            (
                AppError::Pool(PoolError::Unavailable("Connection refused".into())),
                503,
                "ERR redis unavailable: Connection refused",
            ),
            (
                AppError::Pool(PoolError::Timeout(Duration::from_millis(1500))),
                504,
                "ERR redis did not answer within 1500 ms",
            ),
        ];
        for (error, status, message) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.to_string(), message, "{error:?}");
        }
    }
}
