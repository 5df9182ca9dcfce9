//! The request handler, generic over the platform: route, dispatch to the endpoint, and apply
//! what holds for every answer (CORS, `HEAD`); every error becomes a response through
//! `response::error_response`.
//!
//! No worker types here: the glue builds the real backends, converts the [`HttpResponse`], and
//! runs the returned write-backs in `ctx.wait_until`.

use serde_json::json;

use crate::cache::WriteBack;
use crate::clock::Clock;
use crate::error::Error;
use crate::http::admin::{authorize, handle_admin};
use crate::http::context::{Backends, RequestParts};
use crate::http::datasets::describe_dataset;
use crate::http::files::file_read;
use crate::http::response::{error_response, HttpResponse};
use crate::http::route::{is_admin_path, route, Route};
use crate::http::routes::origin_route;
use crate::http::stats::{all_stats, history, keys_listing};
use crate::http::zarr::zarr_key;
use crate::platform::{Body, Platform};

/// Headers that let browsers read every answer from any page (zarrita in `www/`, notebooks).
const CORS_HEADERS: [(&str, &str); 2] = [
    ("access-control-allow-origin", "*"),
    (
        "access-control-expose-headers",
        "Content-Length, Content-Range, ETag, X-Cache, Server-Timing",
    ),
];

/// What a preflight (`OPTIONS`) answer adds: the methods and request headers a page may use.
/// Browsers read these on preflight answers only (Fetch standard, CORS-preflight fetch), so the
/// other answers do not carry them.
const PREFLIGHT_HEADERS: [(&str, &str); 3] = [
    (
        "access-control-allow-methods",
        "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    ),
    (
        "access-control-allow-headers",
        "Range, If-None-Match, If-Modified-Since, Authorization, Content-Type",
    ),
    ("access-control-max-age", "86400"),
];

/// Handles one request. Never fails: errors become JSON error responses. The write-backs are to
/// be run after the response (`ctx.wait_until`).
pub async fn handle<P: Platform>(
    request: &RequestParts<'_>,
    backends: &Backends<'_, P>,
) -> (HttpResponse<Body<P>>, Vec<WriteBack>) {
    let (response, write_backs) = match dispatch(request, backends).await {
        Ok(done) => done,
        Err(error) => (error_response(&error).with_stream_type(), Vec::new()),
    };
    (finish(request, response), write_backs)
}

/// Applies headers and method rules that hold for every response.
#[must_use]
pub fn finish<B>(request: &RequestParts<'_>, mut response: HttpResponse<B>) -> HttpResponse<B> {
    for (name, value) in CORS_HEADERS {
        response.headers.push((name.to_owned(), value.to_owned()));
    }
    if request.method == "HEAD" {
        // HEAD reports the length GET would send.
        if response.header("content-length").is_none() && !response.body.is_empty() {
            let length = response.body.len().to_string();
            response.headers.push(("content-length".into(), length));
        }
        response.body.clear();
        response.stream = None;
        response.pieces = None;
    }
    response
}

async fn dispatch<P: Platform>(
    request: &RequestParts<'_>,
    backends: &Backends<'_, P>,
) -> Result<(HttpResponse<Body<P>>, Vec<WriteBack>), Error> {
    let cache = backends.cache;
    let plain = |response: HttpResponse| Ok((response.with_stream_type(), Vec::new()));
    if request.method != "OPTIONS" && is_admin_path(request.path) {
        authorize(request.authorization, backends.admin_token)?;
    }
    let route = route(request.method, request.path)?;
    refresh_datasets_for(&route, backends).await;
    match route {
        Route::Preflight => plain(HttpResponse {
            status: 204,
            headers: PREFLIGHT_HEADERS
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            body: Vec::new(),
            stream: None,
            pieces: None,
        }),
        Route::Health => {
            let probe_key = cache.keys.health_probe(request.nonce);
            let report = backends
                .health
                .report(&cache.index, &cache.store, &cache.clock, &probe_key)
                .await;
            plain(HttpResponse::json(report.http_status(), &report))
        }
        Route::Datasets => {
            let mut listing = Vec::new();
            for config in backends.datasets.datasets().iter() {
                listing.push(describe_dataset(config, backends).await);
            }
            plain(HttpResponse::json(200, &json!({ "datasets": listing })))
        }
        Route::Stats => plain(
            all_stats(
                &cache.index,
                backends.datasets,
                backends.settings.total_capacity,
            )
            .await?,
        ),
        Route::StatsKeys => {
            plain(keys_listing(&cache.index, backends.datasets, request.query).await?)
        }
        Route::StatsHistory => {
            plain(history(&cache.index, backends.datasets, request.query).await?)
        }
        Route::Admin(admin) => {
            plain(handle_admin(&admin, request.body, request.nonce, backends).await?)
        }
        Route::DatasetRoot { dataset } => {
            let config = backends.datasets.config(&dataset)?;
            plain(HttpResponse::json(
                200,
                &describe_dataset(&config, backends).await,
            ))
        }
        Route::ZarrKey { dataset, key, view } => {
            zarr_key(request, (&dataset, &key, view), backends).await
        }
        Route::OriginRoute { dataset, path } => {
            origin_route(request, &dataset, &path, backends).await
        }
        Route::File { dataset, path } => file_read(request, &dataset, &path, backends).await,
    }
}

/// How often an isolate may reread the run-time datasets for ids it does not know (a client
/// reading a dataset registered on another instance a moment ago).
const UNKNOWN_DATASET_REFRESH_MS: u64 = 1_000;

/// Keeps the run-time datasets current without a round trip on the chunk path: listings and
/// admin calls reread them after `DATASETS_REFRESH_SECONDS`; a request for an id this isolate
/// does not know rereads them at most every second; chunk reads learn the version from their
/// index lookup (see [`zarr_key`]).
async fn refresh_datasets_for<P: Platform>(route: &Route, backends: &Backends<'_, P>) {
    let (index, now_ms) = (&backends.cache.index, backends.cache.clock.now_ms());
    let registry = backends.datasets;
    match route {
        Route::Preflight | Route::Health => {}
        Route::ZarrKey { dataset, .. }
        | Route::DatasetRoot { dataset }
        | Route::OriginRoute { dataset, .. }
        | Route::File { dataset, .. } => {
            if registry.config(dataset).is_err() {
                registry
                    .refresh_runtime_if_older(index, now_ms, UNKNOWN_DATASET_REFRESH_MS)
                    .await;
            }
        }
        _ => registry.refresh_runtime(index, now_ms).await,
    }
}

#[cfg(test)]
mod tests {
    use crate::http::testing::*;

    /// Health answers JSON with CORS; HEAD keeps the status and length and drops the body.
    #[test]
    fn health_get_and_head() {
        let world = world();
        let get = run(&world, "GET", "/api/health");
        assert_eq!(get.status, 200);
        assert_eq!(get.header("access-control-allow-origin"), Some("*"));
        assert!(!get.body.is_empty());
        let head = run(&world, "HEAD", "/api/health");
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str())
        );
    }

    /// Unknown paths are JSON 404s, preflights 204 with CORS.
    #[test]
    fn not_found_and_preflight() {
        let world = world();
        let missing = run(&world, "GET", "/nope");
        assert_eq!(missing.status, 404);
        assert_eq!(missing.header("content-type"), Some("application/json"));
        let preflight = run(&world, "OPTIONS", "/api/health");
        assert_eq!(preflight.status, 204);
        assert!(preflight
            .header("access-control-expose-headers")
            .is_some_and(|v| v.contains("X-Cache")));
        assert!(preflight
            .header("access-control-allow-headers")
            .is_some_and(|v| v.contains("Range") && v.contains("If-None-Match")));
        assert!(preflight
            .header("access-control-allow-methods")
            .is_some_and(|v| v.contains("GET")));
        assert_eq!(preflight.header("access-control-max-age"), Some("86400"));
        // An answer that is not a preflight has what a page reads, not what a preflight asks.
        let health = run(&world, "GET", "/api/health");
        assert_eq!(health.header("access-control-allow-origin"), Some("*"));
        assert!(health.header("access-control-expose-headers").is_some());
        assert_eq!(health.header("access-control-allow-methods"), None);
        assert_eq!(health.header("access-control-allow-headers"), None);
    }
}
