//! Request routing: method and path to a [`Route`], before any I/O.
//!
//! Pure and table-tested, like mini-redis's `Command::from_frame`.

use crate::error::Error;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD /api/health`.
    Health,
    /// `OPTIONS` on any path: a CORS preflight.
    Preflight,
}

/// Maps a method and a URL path to a [`Route`].
///
/// # Errors
/// [`Error::NotFound`] for an unknown path, [`Error::MethodNotAllowed`] for a known path with the
/// wrong method.
pub fn route(method: &str, path: &str) -> Result<Route, Error> {
    if method == "OPTIONS" {
        return Ok(Route::Preflight);
    }
    match path.trim_end_matches('/') {
        "/api/health" => only_read(method, Route::Health),
        _ => Err(Error::NotFound(format!("no route for {path}"))),
    }
}

fn only_read(method: &str, route: Route) -> Result<Route, Error> {
    match method {
        "GET" | "HEAD" => Ok(route),
        _ => Err(Error::MethodNotAllowed {
            method: method.to_owned(),
            allowed: "GET, HEAD, OPTIONS",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known paths with read methods route; others are 404 or 405.
    #[test]
    fn routes_table() {
        for (method, path, want) in [
            ("GET", "/api/health", Ok(Route::Health)),
            ("HEAD", "/api/health/", Ok(Route::Health)),
            ("OPTIONS", "/anything", Ok(Route::Preflight)),
            ("POST", "/api/health", Err(405)),
            ("GET", "/api/healthz", Err(404)),
            ("GET", "/", Err(404)),
        ] {
            let got = route(method, path).map_err(|e| match e {
                Error::NotFound(_) => 404,
                Error::MethodNotAllowed { .. } => 405,
                _ => 0,
            });
            assert_eq!(got, want, "{method} {path}");
        }
    }
}
