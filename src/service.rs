//! The request handler, generic over the backends: route, run, and shape the response (CORS,
//! `HEAD`), with every error turned into a response by `response::error_response`.
//!
//! No worker types here: the glue builds the real backends and converts the [`HttpResponse`].

use crate::backend::{ChunkStore, Clock, Index};
use crate::error::Error;
use crate::health::check_health;
use crate::response::{error_response, HttpResponse};
use crate::route::{route, Route};

/// The backends one request may use.
pub struct Backends<'a, I, S, C> {
    /// The shared index.
    pub index: &'a I,
    /// The chunk store.
    pub store: &'a S,
    /// The clock.
    pub clock: &'a C,
}

/// What the handler needs from the incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The URL path, not decoded.
    pub path: &'a str,
    /// A value unique to this request (the glue draws it at random), for probe keys.
    pub nonce: &'a str,
}

/// Headers that let browsers read every answer from any page (zarrita in `www/`, notebooks).
const CORS_HEADERS: [(&str, &str); 4] = [
    ("access-control-allow-origin", "*"),
    ("access-control-allow-methods", "GET, HEAD, OPTIONS"),
    (
        "access-control-allow-headers",
        "Range, If-None-Match, If-Modified-Since, Authorization, Content-Type",
    ),
    (
        "access-control-expose-headers",
        "Content-Length, Content-Range, ETag, X-Cache, Server-Timing",
    ),
];

/// Handles one request. Never fails: errors become JSON error responses.
pub async fn handle<I: Index, S: ChunkStore, C: Clock>(
    request: &RequestParts<'_>,
    backends: &Backends<'_, I, S, C>,
) -> HttpResponse {
    let response = match dispatch(request, backends).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    finish(request, response)
}

/// Applies headers and method rules that hold for every response.
#[must_use]
pub fn finish(request: &RequestParts<'_>, mut response: HttpResponse) -> HttpResponse {
    for (name, value) in CORS_HEADERS {
        response.headers.push((name.to_owned(), value.to_owned()));
    }
    if request.method == "HEAD" {
        response.body.clear();
    }
    response
}

async fn dispatch<I: Index, S: ChunkStore, C: Clock>(
    request: &RequestParts<'_>,
    backends: &Backends<'_, I, S, C>,
) -> Result<HttpResponse, Error> {
    match route(request.method, request.path)? {
        Route::Preflight => Ok(HttpResponse {
            status: 204,
            headers: vec![("access-control-max-age".into(), "86400".into())],
            body: Vec::new(),
        }),
        Route::Health => {
            let probe_key = format!("_health/{}", request.nonce);
            let report =
                check_health(backends.index, backends.store, backends.clock, &probe_key).await;
            Ok(HttpResponse::json(report.http_status(), &report))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeIndex, FixedClock, InMemoryStore};
    use futures::executor::block_on;

    fn run(method: &str, path: &str) -> HttpResponse {
        let (index, store, clock) = (
            FakeIndex::healthy(),
            InMemoryStore::default(),
            FixedClock(1),
        );
        let backends = Backends {
            index: &index,
            store: &store,
            clock: &clock,
        };
        block_on(handle(
            &RequestParts {
                method,
                path,
                nonce: "n1",
            },
            &backends,
        ))
    }

    /// Health answers JSON with CORS; HEAD keeps the status and drops the body.
    #[test]
    fn health_get_and_head() {
        let get = run("GET", "/api/health");
        assert_eq!(get.status, 200);
        assert_eq!(get.header("access-control-allow-origin"), Some("*"));
        assert!(!get.body.is_empty());
        let head = run("HEAD", "/api/health");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
    }

    /// Unknown paths are JSON 404s, preflights 204 with CORS.
    #[test]
    fn not_found_and_preflight() {
        let missing = run("GET", "/nope");
        assert_eq!(missing.status, 404);
        assert_eq!(missing.header("content-type"), Some("application/json"));
        let preflight = run("OPTIONS", "/api/health");
        assert_eq!(preflight.status, 204);
        assert!(preflight
            .header("access-control-expose-headers")
            .is_some_and(|v| v.contains("X-Cache")));
    }
}
