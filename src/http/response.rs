//! Plain HTTP responses built by the core, and the one place that maps an [`Error`] to a status.
//!
//! The glue converts [`HttpResponse`] to a `worker::Response`; keeping the mapping here (pure)
//! lets it be tested natively. Internal detail of 5xx errors is logged by the glue, while the
//! client gets the error's display text, which never contains secrets.

use serde::Serialize;

use futures::stream::LocalBoxStream;

use crate::cache::WriteBack;
use crate::error::Error;
use crate::store::StoreError;

/// A complete response: status, headers and body. `S` is the chunk store's body type: when
/// `stream` is set, the body streams from storage and `body` is empty; when `pieces` is set,
/// the body is made piece by piece after the headers are sent.
#[derive(Debug)]
pub struct HttpResponse<S = ()> {
    /// HTTP status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `HEAD` and 204/304, and when streaming).
    pub body: Vec<u8>,
    /// A stored object to stream as the body.
    pub stream: Option<S>,
    /// A body read piece by piece (block mode's long ranges).
    pub pieces: Option<Pieces>,
}

/// A body made piece by piece while it is sent (block mode: a window of blocks at a time, so a
/// range of any length holds a few blocks in memory). A failed piece ends the body early: the
/// client sees a body shorter than its `Content-Length`, never wrong bytes.
pub struct Pieces(pub LocalBoxStream<'static, Result<Piece, Error>>);

impl std::fmt::Debug for Pieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pieces(..)")
    }
}

/// One piece of a [`Pieces`] body: its bytes and the write-backs its reads left (run after the
/// response, like the handler's own).
#[derive(Debug)]
pub struct Piece {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What to run after the response.
    pub write_backs: Vec<WriteBack>,
}

impl HttpResponse {
    /// The same response, typed for a store body (it has none).
    #[must_use]
    pub fn with_stream_type<S>(self) -> HttpResponse<S> {
        HttpResponse {
            status: self.status,
            headers: self.headers,
            body: self.body,
            stream: None,
            pieces: None,
        }
    }

    /// A JSON response with `Content-Type: application/json`.
    #[must_use]
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        // Serialising our own plain structs cannot fail; fall back to an empty object if it does.
        let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        Self {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body,
            stream: None,
            pieces: None,
        }
    }
}

impl<S> HttpResponse<S> {
    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The value of the first header called `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

/// The status and the short machine-readable code for an error.
#[must_use]
pub fn error_status(error: &Error) -> (u16, &'static str) {
    match error {
        Error::BadRequest(_) => (400, "bad_request"),
        Error::NotFound(_) => (404, "not_found"),
        Error::Forbidden(_) => (403, "forbidden"),
        Error::Unauthorized(_) => (401, "unauthorized"),
        Error::Conflict(_) => (409, "conflict"),
        Error::Upstream(_) => (502, "origin_error"),
        Error::OriginTimeout(_) => (504, "origin_timeout"),
        Error::OriginRefused(answer) => (answer.status, "origin_refused"),
        Error::BadReferences(_) => (502, "bad_references"),
        Error::Unprocessable(_) => (422, "unsupported_codec"),
        Error::Undecodable(_) => (502, "undecodable_chunk"),
        Error::MethodNotAllowed { .. } => (405, "method_not_allowed"),
        Error::Config(_) => (500, "configuration"),
        Error::Index(_) => (503, "index_unavailable"),
        Error::Store(StoreError::Fatal(_)) => (500, "storage_refused"),
        Error::Store(_) => (503, "storage_unavailable"),
        Error::Internal(_) => (500, "internal"),
    }
}

/// The response for an error: `{"error": code, "message": text}` with the status from
/// [`error_status`], plus `Allow` for 405.
#[must_use]
pub fn error_response(error: &Error) -> HttpResponse {
    let (status, code) = error_status(error);
    if let Error::OriginRefused(answer) = error {
        let content_type = answer
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        return HttpResponse {
            status,
            headers: vec![
                ("content-type".into(), content_type),
                ("cache-control".into(), "no-store".into()),
            ],
            body: answer.body.clone(),
            stream: None,
            pieces: None,
        };
    }
    let response = HttpResponse::json(
        status,
        &ErrorBody {
            error: code,
            message: error.to_string(),
        },
    );
    match error {
        Error::MethodNotAllowed { allowed, .. } => response.with_header("allow", *allowed),
        Error::Unauthorized(_) => response.with_header("www-authenticate", "Bearer"),
        _ => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ConfigError;
    use crate::index::IndexError;

    /// Every error kind maps to its status and carries a JSON body naming it.
    #[test]
    fn errors_map_to_status_and_json() {
        let cases = [
            (Error::BadRequest("x".into()), 400, "bad_request"),
            (Error::NotFound("x".into()), 404, "not_found"),
            (Error::Forbidden("x".into()), 403, "forbidden"),
            (Error::Upstream("x".into()), 502, "origin_error"),
            (Error::BadReferences("x".into()), 502, "bad_references"),
            (Error::Unprocessable("x".into()), 422, "unsupported_codec"),
            (Error::Undecodable("x".into()), 502, "undecodable_chunk"),
            (
                Error::MethodNotAllowed {
                    method: "PUT".into(),
                    allowed: "GET",
                },
                405,
                "method_not_allowed",
            ),
            (
                Error::Config(ConfigError::Missing("X")),
                500,
                "configuration",
            ),
            (
                Error::Index(IndexError::Unavailable("x".into())),
                503,
                "index_unavailable",
            ),
            (
                Error::Store(StoreError::Retryable("x".into())),
                503,
                "storage_unavailable",
            ),
            (Error::Internal("x".into()), 500, "internal"),
            (Error::Unauthorized("x".into()), 401, "unauthorized"),
            (Error::Conflict("x".into()), 409, "conflict"),
        ];
        for (error, status, code) in cases {
            let response = error_response(&error);
            assert_eq!(response.status, status);
            assert_eq!(response.header("Content-Type"), Some("application/json"));
            let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(body["error"], code);
            assert_eq!(body["message"], error.to_string());
        }
        assert_eq!(
            error_response(&Error::Unauthorized("x".into())).header("www-authenticate"),
            Some("Bearer")
        );
        let response = error_response(&Error::MethodNotAllowed {
            method: "PUT".into(),
            allowed: "GET, HEAD",
        });
        assert_eq!(response.header("allow"), Some("GET, HEAD"));
    }
}
