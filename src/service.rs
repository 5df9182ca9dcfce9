//! The request handler, generic over the backends: route, run, and shape the response (CORS,
//! `HEAD`, `ETag`/304, `Range`/206/416, `X-Cache`, `Server-Timing`), with every error turned into
//! a response by `response::error_response`.
//!
//! No worker types here: the glue builds the real backends, converts the [`HttpResponse`], and
//! runs the returned [`WriteBack`]s in `ctx.wait_until`.

use std::rc::Rc;

use serde_json::json;

use crate::admin::{authorize, handle_admin};
use crate::backend::{ChunkStore, Clock, Index, Origin, ReferenceSource};
use crate::cache_keys::content_checksum;
use crate::cache_path::{
    read_chunk, CacheBackends, CachePolicy, CacheSource, Chunk, ChunkBody, ChunkRequest, Flights,
    Timing, WriteBack,
};
use crate::conditional::{etag, none_match, range_answer, RangeAnswer};
use crate::datasets::{DatasetConfig, DatasetRegistry, LoadState};
use crate::error::Error;
use crate::eviction::Limit;
use crate::health::HealthCache;
use crate::response::{error_response, HttpResponse};
use crate::route::{is_admin_path, route, Route};
use crate::stats_api::{all_stats, history, keys_listing};
use crate::zarr_store::{answer_key, content_type, variables, KeyAnswer};

/// How long browsers and shared caches may keep metadata answers (they change when references
/// are revalidated).
const METADATA_MAX_AGE_SECONDS: u64 = 60;

/// The backends and state one request may use.
pub struct Backends<'a, I, S, O, C, R> {
    /// Index, chunk store, origin and clock (owned clones, shared with in-flight fetches).
    pub cache: &'a Rc<CacheBackends<I, S, O, C>>,
    /// Where reference files come from.
    pub refs_source: &'a R,
    /// The configured datasets and their loaded references (per isolate).
    pub datasets: &'a DatasetRegistry,
    /// In-isolate single flight of origin fetches.
    pub flights: &'a Flights,
    /// Lease length and wait for cross-instance single flight.
    pub lease_ms: u64,
    /// How long to wait for another instance's fetch.
    pub lease_wait_ms: u64,
    /// How long one origin request may take.
    pub origin_timeout_ms: u64,
    /// The admin API's bearer token (`None`: the admin API is off).
    pub admin_token: Option<&'a str>,
    /// The capacity of all datasets together.
    pub total_capacity: Option<Limit>,
    /// How old an unheld object must be before a sweep deletes it.
    pub orphan_grace_ms: u64,
    /// How many listing pages a sweep scans for orphans.
    pub orphan_pages: u32,
    /// The most deployment-wide evictions per run.
    pub total_evictions: usize,
    /// The isolate's last health report.
    pub health: &'a HealthCache,
}

/// What the handler needs from the incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The URL path, not decoded.
    pub path: &'a str,
    /// The URL query, without `?`, not decoded.
    pub query: &'a str,
    /// The request body (read only for the admin API).
    pub body: &'a [u8],
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// A value unique to this request (the glue draws it at random), for probe keys and leases.
    pub nonce: &'a str,
    /// The `Range` header.
    pub range: Option<&'a str>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<&'a str>,
}

/// Headers that let browsers read every answer from any page (zarrita in `www/`, notebooks).
const CORS_HEADERS: [(&str, &str); 4] = [
    ("access-control-allow-origin", "*"),
    (
        "access-control-allow-methods",
        "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    ),
    (
        "access-control-allow-headers",
        "Range, If-None-Match, If-Modified-Since, Authorization, Content-Type",
    ),
    (
        "access-control-expose-headers",
        "Content-Length, Content-Range, ETag, X-Cache, Server-Timing",
    ),
];

/// Handles one request. Never fails: errors become JSON error responses. The write-backs are to
/// be run after the response (`ctx.wait_until`).
pub async fn handle<I, S, O, C, R>(
    request: &RequestParts<'_>,
    backends: &Backends<'_, I, S, O, C, R>,
) -> (HttpResponse<S::Body>, Vec<WriteBack>)
where
    I: Index + 'static,
    S: ChunkStore + 'static,
    O: Origin + 'static,
    C: Clock + 'static,
    R: ReferenceSource,
{
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
    }
    response
}

async fn dispatch<I, S, O, C, R>(
    request: &RequestParts<'_>,
    backends: &Backends<'_, I, S, O, C, R>,
) -> Result<(HttpResponse<S::Body>, Vec<WriteBack>), Error>
where
    I: Index + 'static,
    S: ChunkStore + 'static,
    O: Origin + 'static,
    C: Clock + 'static,
    R: ReferenceSource,
{
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
            headers: vec![("access-control-max-age".into(), "86400".into())],
            body: Vec::new(),
            stream: None,
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
        Route::Stats => {
            plain(all_stats(&cache.index, backends.datasets, backends.total_capacity).await?)
        }
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
        Route::ZarrKey { dataset, key } => zarr_key(request, &dataset, &key, backends).await,
    }
}

/// How often an isolate may reread the run-time datasets for ids it does not know (a client
/// reading a dataset registered on another instance a moment ago).
const UNKNOWN_DATASET_REFRESH_MS: u64 = 1_000;

/// Keeps the run-time datasets current without a round trip on the chunk path: listings and
/// admin calls reread them after `DATASETS_REFRESH_SECONDS`; a request for an id this isolate
/// does not know rereads them at most every second; chunk reads learn the version from their
/// index lookup (see [`zarr_key`]).
async fn refresh_datasets_for<I, S, O, C, R>(route: &Route, backends: &Backends<'_, I, S, O, C, R>)
where
    I: Index,
    C: Clock,
{
    let (index, now_ms) = (&backends.cache.index, backends.cache.clock.now_ms());
    let registry = backends.datasets;
    match route {
        Route::Preflight | Route::Health => {}
        Route::ZarrKey { dataset, .. } | Route::DatasetRoot { dataset } => {
            if registry.config(dataset).is_err() {
                registry
                    .refresh_runtime_if_older(index, now_ms, UNKNOWN_DATASET_REFRESH_MS)
                    .await;
            }
        }
        _ => registry.refresh_runtime(index, now_ms).await,
    }
}

/// One dataset for listings: its configuration, load state, variables and cache counters.
async fn describe_dataset<I, S, O, C, R>(
    config: &DatasetConfig,
    backends: &Backends<'_, I, S, O, C, R>,
) -> serde_json::Value
where
    I: Index,
    C: Clock,
    R: ReferenceSource,
{
    let loaded = backends
        .datasets
        .references(&config.id, backends.refs_source, &backends.cache.clock)
        .await
        .and_then(|refs| Ok((variables(&refs)?, refs.len_explicit())));
    let mut entry = json!({
        "id": config.id,
        "description": config.description,
        "zarr": format!("/zarr/{}", config.id),
        "ttl_seconds": config.ttl_seconds,
        "allowed_hosts": config.allowed_hosts,
        "capacity_bytes": config.capacity_bytes,
        "eviction": config.eviction,
    });
    match loaded {
        Ok((variables, references)) => {
            entry["state"] = json!("loaded");
            entry["references"] = json!(references);
            entry["variables"] = json!(variables);
        }
        Err(error) => {
            entry["state"] = json!("error");
            entry["error"] = json!(error.to_string());
            if let LoadState::Loaded = backends.datasets.state(&config.id) {
                entry["state"] = json!("loaded");
            }
        }
    }
    entry
}

/// `GET /zarr/{dataset}/{key}`: inline and metadata keys from memory, ranged keys through the
/// cache.
async fn zarr_key<I, S, O, C, R>(
    request: &RequestParts<'_>,
    dataset: &str,
    key: &str,
    backends: &Backends<'_, I, S, O, C, R>,
) -> Result<(HttpResponse<S::Body>, Vec<WriteBack>), Error>
where
    I: Index + 'static,
    S: ChunkStore + 'static,
    O: Origin + 'static,
    C: Clock + 'static,
    R: ReferenceSource,
{
    let config = backends.datasets.config(dataset)?;
    let refs = backends
        .datasets
        .references(dataset, backends.refs_source, &backends.cache.clock)
        .await?;
    let is_metadata = content_type(key) == "application/json";
    // What browsers and the edge tier may keep: the edge TTL (or the cache TTL when the edge
    // tier is off), and a minute for metadata.
    let max_age = if is_metadata {
        METADATA_MAX_AGE_SECONDS
    } else if config.edge_ttl_seconds > 0 {
        config.edge_ttl_seconds
    } else {
        config.ttl_seconds
    };
    let (chunk, write_backs) = match answer_key(&refs, key)? {
        KeyAnswer::Absent => {
            return Err(Error::NotFound(format!(
                "{dataset}/{key} is not in the references (Zarr reads it as the fill value)"
            )))
        }
        KeyAnswer::Inline(bytes) => (
            Chunk {
                size: bytes.len() as u64,
                checksum: content_checksum(&bytes),
                body: ChunkBody::Bytes(Rc::new(bytes)),
                source: CacheSource::Inline,
                timing: Timing::default(),
                datasets_version: None,
            },
            Vec::new(),
        ),
        KeyAnswer::Fetch { url, range } => {
            let policy = cache_policy(&config, backends);
            let chunk_request = ChunkRequest {
                dataset,
                key,
                url: &url,
                hosts: &config.hosts,
                range,
                holder: request.nonce,
            };
            let (chunk, write_backs) =
                read_chunk(chunk_request, policy, backends.cache, backends.flights).await?;
            let admitted = write_backs
                .into_iter()
                .map(|w| w.admitted_by(&config.admission))
                .collect();
            (chunk, admitted)
        }
    };
    let (index, now_ms) = (&backends.cache.index, backends.cache.clock.now_ms());
    match (chunk.source, chunk.datasets_version) {
        // No lookup (inline and metadata keys): reread them after the interval.
        (CacheSource::Inline, _) => backends.datasets.refresh_runtime(index, now_ms).await,
        // The lookup saw another version of the run-time datasets: reread them (a round trip
        // only when they changed).
        (_, Some(version)) if backends.datasets.runtime_version_changed(version) => {
            backends
                .datasets
                .refresh_runtime_if_older(index, now_ms, 0)
                .await;
        }
        // Same version, or no answer from the index (do not wait on it twice).
        _ => {}
    }
    let response = respond_with_chunk(request, chunk, key, max_age, &backends.cache.store).await?;
    Ok((response, write_backs))
}

/// The cache path's tunables for a dataset.
#[must_use]
pub fn cache_policy<I, S, O, C, R>(
    config: &DatasetConfig,
    backends: &Backends<'_, I, S, O, C, R>,
) -> CachePolicy {
    CachePolicy {
        origin_timeout_ms: backends.origin_timeout_ms,
        ttl_ms: config.ttl_seconds.saturating_mul(1000),
        lease_ms: backends.lease_ms,
        lease_wait_ms: backends.lease_wait_ms,
        poll_ms: 50,
        limits: config.limits(backends.total_capacity),
    }
}

/// Builds the 200/206/304/416 answer for a chunk of known size and checksum.
async fn respond_with_chunk<S: ChunkStore>(
    request: &RequestParts<'_>,
    chunk: Chunk<S::Body>,
    key: &str,
    max_age: u64,
    store: &S,
) -> Result<HttpResponse<S::Body>, Error> {
    let tag = etag(&chunk.checksum);
    let mut headers = vec![
        ("etag".to_owned(), tag.clone()),
        ("x-cache".to_owned(), chunk.source.header_value().to_owned()),
        ("server-timing".to_owned(), chunk.timing.header_value()),
        ("accept-ranges".to_owned(), "bytes".to_owned()),
        (
            "cache-control".to_owned(),
            format!("public, max-age={max_age}"),
        ),
    ];
    let response = |status, headers, body, stream| HttpResponse {
        status,
        headers,
        body,
        stream,
    };
    if none_match(request.if_none_match, &tag) {
        return Ok(response(304, headers, Vec::new(), None));
    }
    headers.push(("content-type".to_owned(), content_type(key).to_owned()));
    match range_answer(request.range, chunk.size) {
        RangeAnswer::Full => {
            headers.push(("content-length".to_owned(), chunk.size.to_string()));
            Ok(match chunk.body {
                ChunkBody::Stored { body, .. } => response(200, headers, Vec::new(), Some(body)),
                ChunkBody::Bytes(bytes) => response(200, headers, bytes.to_vec(), None),
            })
        }
        RangeAnswer::Unsatisfiable => {
            headers.push((
                "content-range".to_owned(),
                format!("bytes */{}", chunk.size),
            ));
            Ok(response(416, headers, Vec::new(), None))
        }
        RangeAnswer::Partial { start, end } => {
            headers.push((
                "content-range".to_owned(),
                format!("bytes {start}-{end}/{}", chunk.size),
            ));
            headers.push(("content-length".to_owned(), (end - start + 1).to_string()));
            match chunk.body {
                // A ranged read of a stored chunk reads only that range from storage, streamed.
                ChunkBody::Stored { object_key, .. } => {
                    let part = store
                        .get_range(&object_key, start, end - start + 1)
                        .await?
                        .ok_or_else(|| {
                            Error::Store(crate::backend::StoreError::Unavailable(format!(
                                "{key}: the stored object vanished during the read"
                            )))
                        })?;
                    Ok(response(206, headers, Vec::new(), Some(part.body)))
                }
                ChunkBody::Bytes(bytes) => {
                    let (first, last) = (
                        usize::try_from(start).unwrap_or(usize::MAX),
                        usize::try_from(end).unwrap_or(usize::MAX),
                    );
                    let Some(slice) = bytes.get(first..=last) else {
                        return Err(Error::Internal(format!(
                            "{key}: {} bytes do not cover {start}-{end}",
                            bytes.len()
                        )));
                    };
                    Ok(response(206, headers, slice.to_vec(), None))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache_keys::CacheKeys;
    use crate::cache_path::run_write_back;
    use crate::datasets::parse_datasets;
    use crate::eviction::Limit;
    use crate::fakes::{FakeIndex, FakeOrigin, FakeRefsSource, InMemoryStore, ManualClock};
    use crate::maintenance::EvictionScope;
    use futures::executor::block_on;

    const ADMIN_TOKEN: &str = "admin-token-0123456789";

    const REFS: &str = r#"{"version": 1, "refs": {
        ".zgroup": "{\"zarr_format\": 2}",
        ".zattrs": "{\"title\": \"t\"}",
        "t/.zarray": "{\"shape\": [6], \"chunks\": [3], \"dtype\": \"|u1\", \"compressor\": null, \"filters\": null, \"fill_value\": 0, \"order\": \"C\", \"zarr_format\": 2}",
        "t/.zattrs": "{\"_ARRAY_DIMENSIONS\": [\"x\"]}",
        "t/0": ["http://origin.test/f.bin", 2, 3],
        "t/1": "base64:AAEC",
        "short/0": ["http://origin.test/f.bin", 8, 5],
        "far/0": ["http://elsewhere.test/f.bin", 0, 1],
        "g/0": ["http://origin.test/g.bin", 0, 4],
        "g/1": ["http://origin.test/g.bin", 4, 8],
        "g/2": ["http://origin.test/g.bin", 12, 16]
    }}"#;

    type FakeBackends =
        CacheBackends<Rc<FakeIndex>, Rc<InMemoryStore>, Rc<FakeOrigin>, Rc<ManualClock>>;

    struct World {
        cache: Rc<FakeBackends>,
        index: Rc<FakeIndex>,
        origin: Rc<FakeOrigin>,
        refs: FakeRefsSource,
        store: Rc<InMemoryStore>,
        clock: Rc<ManualClock>,
        registry: DatasetRegistry,
        flights: Flights,
        total_capacity: Option<Limit>,
    }

    fn world() -> World {
        world_with("")
    }

    /// The world with more datasets (`"id": {…}` entries, comma-first).
    fn world_with(extra_datasets: &str) -> World {
        let datasets = parse_datasets(&format!(
            r#"{{"demo": {{"refs": "http://origin.test/refs.json", "description": "d"}},
                "broken": {{"refs": "http://origin.test/broken.json"}}{extra_datasets}}}"#
        ))
        .unwrap();
        let index = Rc::new(FakeIndex::healthy());
        let origin = Rc::new(
            FakeOrigin::default()
                .with_file("http://origin.test/f.bin", b"0123456789")
                .with_file("http://origin.test/g.bin", &[7u8; 40]),
        );
        let store = Rc::new(InMemoryStore::default());
        let clock = Rc::new(ManualClock::default());
        clock.now.set(1_000);
        World {
            cache: Rc::new(CacheBackends {
                index: Rc::clone(&index),
                store: Rc::clone(&store),
                origin: Rc::clone(&origin),
                clock: Rc::clone(&clock),
                keys: CacheKeys::new("t"),
            }),
            store,
            clock,
            total_capacity: None,
            index,
            origin,
            refs: FakeRefsSource::default()
                .with("http://origin.test/refs.json", REFS, "\"v1\"")
                .with(
                    "http://origin.test/broken.json",
                    "{\"version\": 7}",
                    "\"b\"",
                ),
            registry: DatasetRegistry::new(datasets, 1 << 20, 60_000),
            flights: Flights::default(),
        }
    }

    /// Runs a request with headers and then its write-backs; returns the response with any
    /// streamed body read into `body`.
    fn request(world: &World, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        request_with_body(world, method, path, headers, b"")
    }

    fn request_with_body(
        world: &World,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let backends = Backends {
            cache: &world.cache,
            refs_source: &world.refs,
            datasets: &world.registry,
            flights: &world.flights,
            lease_ms: 30_000,
            lease_wait_ms: 1_000,
            origin_timeout_ms: 1_000,
            admin_token: Some(ADMIN_TOKEN),
            total_capacity: world.total_capacity,
            orphan_grace_ms: 1_000,
            orphan_pages: 10,
            total_evictions: crate::maintenance::MAX_TOTAL_EVICTIONS,
            health: &HealthCache::default(),
        };
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let (response, write_backs) = block_on(handle(
            &RequestParts {
                method,
                path,
                query,
                body,
                authorization: header("authorization"),
                nonce: "n1",
                range: header("range"),
                if_none_match: header("if-none-match"),
            },
            &backends,
        ));
        let ids = world.registry.ids();
        let scope = EvictionScope {
            datasets: &ids,
            now_ms: world.cache.clock.now_ms(),
            token: "wb",
            total_evictions: crate::maintenance::MAX_TOTAL_EVICTIONS,
        };
        for write_back in write_backs {
            block_on(run_write_back(
                write_back,
                &world.cache.index,
                &world.cache.store,
                &scope,
            ))
            .unwrap();
        }
        HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.stream.unwrap_or(response.body),
            stream: None,
        }
    }

    fn run(world: &World, method: &str, path: &str) -> HttpResponse {
        request(world, method, path, &[])
    }

    /// The row of dataset `id` in a `{"datasets": [...]}` answer.
    fn dataset_row(body: &serde_json::Value, id: &str) -> serde_json::Value {
        body["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {body}"))
            .clone()
    }

    fn json_body(response: &HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&response.body).unwrap()
    }

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
    }

    /// A ranged key is fetched from the origin with exactly its range.
    #[test]
    fn ranged_key_comes_from_origin() {
        let world = world();
        let response = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"234");
        assert_eq!(
            response.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(response.header("x-cache"), Some("MISS"));
        let requests = world.origin.requests.borrow();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1.unwrap().header_value(), "bytes=2-4");
    }

    /// Inline and metadata keys never touch the origin.
    #[test]
    fn inline_and_metadata_keys_come_from_memory() {
        let world = world();
        let inline = run(&world, "GET", "/zarr/demo/t/1");
        assert_eq!(
            (inline.status, inline.body.as_slice()),
            (200, &[0u8, 1, 2][..])
        );
        assert_eq!(inline.header("x-cache"), Some("INLINE"));
        let zarray = run(&world, "GET", "/zarr/demo/t/.zarray");
        assert_eq!(zarray.header("content-type"), Some("application/json"));
        assert_eq!(json_body(&zarray)["chunks"], serde_json::json!([3]));
        assert!(world.origin.requests.borrow().is_empty());
    }

    /// `.zmetadata` is synthesised from every metadata key.
    #[test]
    fn consolidated_metadata_is_synthesised() {
        let world = world();
        let response = run(&world, "GET", "/zarr/demo/.zmetadata");
        assert_eq!(response.status, 200);
        let body = json_body(&response);
        assert_eq!(body["zarr_consolidated_format"], 1);
        let keys: Vec<&String> = body["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(keys, [".zattrs", ".zgroup", "t/.zarray", "t/.zattrs"]);
        assert_eq!(
            body["metadata"]["t/.zattrs"]["_ARRAY_DIMENSIONS"],
            serde_json::json!(["x"])
        );
    }

    /// Absent keys are 404 (the fill value), unknown datasets 404, foreign hosts 403, short
    /// origin reads 502.
    #[test]
    fn error_answers() {
        let world = world();
        for (path, status) in [
            ("/zarr/demo/t/5", 404),
            ("/zarr/demo/zarr.json", 404),
            ("/zarr/nope/.zgroup", 404),
            ("/zarr/demo/far/0", 403),
            ("/zarr/demo/short/0", 502),
            ("/zarr/broken/.zgroup", 502),
            ("/zarr/demo/a/../b", 400),
        ] {
            let response = run(&world, "GET", path);
            assert_eq!(response.status, status, "{path}");
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{path}"
            );
        }
    }

    /// The datasets listing shows variables of loaded datasets and the error of broken ones.
    #[test]
    fn datasets_listing() {
        let world = world();
        let body = json_body(&run(&world, "GET", "/api/datasets"));
        let datasets = body["datasets"].as_array().unwrap();
        assert_eq!(datasets.len(), 2);
        let broken = &datasets[0];
        assert_eq!(broken["id"], "broken");
        assert_eq!(broken["state"], "error");
        assert!(broken["error"].as_str().unwrap().contains("broken"));
        let demo = &datasets[1];
        assert_eq!(demo["state"], "loaded");
        assert_eq!(demo["allowed_hosts"], serde_json::json!(["origin.test"]));
        let t = &demo["variables"][0];
        assert_eq!(t["name"], "t");
        assert_eq!(t["shape"], serde_json::json!([6]));
        assert_eq!(t["dimensions"], serde_json::json!(["x"]));
        assert_eq!(t["dtype"], "|u1");
    }

    /// References load once per isolate, not once per request.
    #[test]
    fn references_load_once() {
        let world = world();
        for _ in 0..3 {
            assert_eq!(run(&world, "GET", "/zarr/demo/t/1").status, 200);
        }
        assert_eq!(world.refs.fetches.get(), 1);
    }

    /// First read is a MISS from the origin and is written back; the second is a HIT from
    /// storage with identical bytes and no new origin request; counters say so.
    #[test]
    fn miss_then_hit() {
        let world = world();
        let first = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
        let second = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(
            (second.status, second.header("x-cache")),
            (200, Some("HIT"))
        );
        assert_eq!(second.body, first.body);
        assert_eq!(second.header("etag"), first.header("etag"));
        assert_eq!(second.header("content-length"), Some("3"));
        assert!(second
            .header("server-timing")
            .is_some_and(|t| t.starts_with("index;dur=")));
        assert_eq!(world.origin.requests.borrow().len(), 1);
        let stats = world.index.stats_of("demo");
        assert_eq!(
            (
                stats.hits,
                stats.misses,
                stats.bytes_from_cache,
                stats.bytes_from_origin
            ),
            (1, 1, 3, 3)
        );
    }

    /// A matching If-None-Match is 304 without a body, for cached and inline keys.
    #[test]
    fn if_none_match_gives_not_modified() {
        let world = world();
        for path in ["/zarr/demo/t/0", "/zarr/demo/t/1", "/zarr/demo/.zgroup"] {
            let tag = run(&world, "GET", path).header("etag").unwrap().to_owned();
            let again = request(&world, "GET", path, &[("if-none-match", &tag)]);
            assert_eq!(again.status, 304, "{path}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(tag.as_str()));
        }
    }

    /// Range on any key: 206 with Content-Range, 416 when unsatisfiable, on MISS and HIT alike.
    #[test]
    fn range_requests() {
        let world = world();
        for _ in 0..2 {
            let part = request(&world, "GET", "/zarr/demo/t/0", &[("range", "bytes=1-")]);
            assert_eq!(part.status, 206);
            assert_eq!(part.body, b"34");
            assert_eq!(part.header("content-range"), Some("bytes 1-2/3"));
        }
        // The second read was a HIT: its range was read from storage, not the whole object.
        assert_eq!(world.store.ranged_gets.get(), 1);
        let inline = request(&world, "GET", "/zarr/demo/t/1", &[("range", "bytes=-1")]);
        assert_eq!((inline.status, inline.body.as_slice()), (206, &[2u8][..]));
        let beyond = request(&world, "GET", "/zarr/demo/t/0", &[("range", "bytes=3-")]);
        assert_eq!(beyond.status, 416);
        assert_eq!(beyond.header("content-range"), Some("bytes */3"));
    }

    /// `/api/stats` reports each dataset's counters and hit ratio after reads.
    #[test]
    fn stats_report_counters() {
        let world = world();
        run(&world, "GET", "/zarr/demo/t/0");
        run(&world, "GET", "/zarr/demo/t/0");
        run(&world, "GET", "/zarr/demo/t/0");
        let body = json_body(&run(&world, "GET", "/api/stats"));
        let demo = dataset_row(&body, "demo");
        assert_eq!(demo["hits"], 2);
        assert_eq!(demo["misses"], 1);
        assert_eq!(demo["bytes_from_origin"], 3);
        assert_eq!(demo["bytes_from_cache"], 6);
        assert!((demo["hit_ratio"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(body["datasets"][0]["hit_ratio"], serde_json::Value::Null);
    }

    /// A dataset over the demo references with `settings` (JSON members), edge tier off.
    fn dataset(id: &str, settings: &str) -> String {
        format!(
            r#", "{id}": {{"refs": "http://origin.test/refs.json", "edge_ttl_seconds": 0{settings}}}"#
        )
    }

    /// Reads `key` of `dataset` at `at_ms`, returning `X-Cache`.
    fn read_at(world: &World, at_ms: u64, dataset: &str, key: &str) -> String {
        world.clock.now.set(at_ms);
        let response = run(world, "GET", &format!("/zarr/{dataset}/{key}"));
        assert_eq!(response.status, 200, "{dataset}/{key}");
        response.header("x-cache").unwrap().to_owned()
    }

    const ADMIN: (&str, &str) = ("authorization", "Bearer admin-token-0123456789");

    fn admin(world: &World, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
        let response = request_with_body(world, method, path, &[ADMIN], body.as_bytes());
        let json = serde_json::from_slice(&response.body).unwrap_or_default();
        (response.status, json)
    }

    /// The same access pattern (g/2 read and hit twice, then g/0, then g/1; 28 bytes against a
    /// capacity of 24) leaves a different set under each policy.
    #[test]
    fn each_policy_evicts_its_own_victim() {
        for (policy, survivors, evicted) in [
            ("lru", ["g/0", "g/1"], "g/2"),
            ("lfu", ["g/1", "g/2"], "g/0"),
            ("size", ["g/0", "g/1"], "g/2"),
            ("cost", ["g/0", "g/2"], "g/1"),
        ] {
            let settings = format!(r#", "capacity_bytes": 24, "eviction": "{policy}""#);
            let world = world_with(&dataset("capped", &settings));
            assert_eq!(read_at(&world, 1_000, "capped", "g/2"), "MISS");
            for at in [1_001, 1_002] {
                assert_eq!(read_at(&world, at, "capped", "g/2"), "HIT");
            }
            if policy == "cost" {
                // Cost per byte: g/2 read three times over 16 bytes outranks g/1's once over 8.
                assert_eq!(read_at(&world, 1_003, "capped", "g/2"), "HIT");
            }
            read_at(&world, 2_000, "capped", "g/0");
            read_at(&world, 3_000, "capped", "g/1");
            assert_eq!(world.index.cached_keys("capped"), survivors, "{policy}");
            let stats = world.index.stats_of("capped");
            assert!(stats.bytes_stored <= 24, "{policy}: {stats:?}");
            assert_eq!(
                world.store.len(),
                2,
                "{policy}: the evicted object is deleted"
            );
            assert_eq!(
                read_at(&world, 4_000, "capped", evicted),
                "MISS",
                "{policy}"
            );
        }
    }

    /// The admission filter stores only what it admits; the rest is served and counted.
    #[test]
    fn admission_filter_decides_what_is_stored() {
        let settings = r#", "admission": {"exclude": ["g/1"], "max_bytes": 8}"#;
        let world = world_with(&dataset("picky", settings));
        for key in ["g/0", "g/1", "g/2"] {
            read_at(&world, 1_000, "picky", key);
        }
        assert_eq!(read_at(&world, 2_000, "picky", "g/0"), "HIT");
        assert_eq!(read_at(&world, 2_000, "picky", "g/1"), "MISS");
        assert_eq!(read_at(&world, 2_000, "picky", "g/2"), "MISS");
        assert_eq!(world.index.cached_keys("picky"), ["g/0"]);
        assert_eq!(world.index.stats_of("picky").misses, 5);
        assert!(world.index.leases.borrow().is_empty(), "leases released");
    }

    /// Without the right bearer token the admin API refuses (401/403) and changes nothing.
    #[test]
    fn admin_api_needs_the_token() {
        let world = world();
        read_at(&world, 1_000, "demo", "g/0");
        let purge = br#"{"dataset": "demo"}"#;
        for (headers, status) in [
            (vec![], 401),
            (vec![("authorization", "Basic eDp5")], 401),
            (
                vec![("authorization", "Bearer wrong-token-0123456789")],
                403,
            ),
        ] {
            let refused = request_with_body(&world, "POST", "/api/admin/purge", &headers, purge);
            assert_eq!(refused.status, status);
            if status == 401 {
                assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
            }
            let unknown = request_with_body(&world, "GET", "/api/admin/nothing", &headers, b"");
            assert_eq!(unknown.status, status, "refused before routing");
        }
        assert_eq!(world.index.cached_keys("demo"), ["g/0"]);
        assert_eq!(read_at(&world, 2_000, "demo", "g/0"), "HIT");
        assert_eq!(admin(&world, "GET", "/api/admin/nothing", "").0, 404);
        assert_eq!(admin(&world, "POST", "/api/admin/purge", "{").0, 400);
    }

    /// Purging a key, a prefix or a dataset removes entries and objects, but an object another
    /// dataset still holds (same source range) stays.
    #[test]
    fn purge_removes_entries_and_unheld_objects() {
        let world = world_with(&dataset("twin", ""));
        for key in ["g/0", "g/1", "t/0"] {
            read_at(&world, 1_000, "demo", key);
        }
        assert_eq!(read_at(&world, 1_001, "twin", "g/0"), "HIT", "adopted");
        let (status, report) = admin(
            &world,
            "POST",
            "/api/admin/purge",
            r#"{"dataset": "demo", "key": "g/0"}"#,
        );
        assert_eq!(status, 200);
        assert_eq!(report["entries_removed"], 1);
        assert_eq!(report["objects_deleted"], 0, "twin still holds it");
        assert_eq!(read_at(&world, 1_002, "twin", "g/0"), "HIT");
        let (_, report) = admin(
            &world,
            "POST",
            "/api/admin/purge",
            r#"{"dataset": "demo", "prefix": "g/"}"#,
        );
        assert_eq!(
            (
                report["entries_removed"].clone(),
                report["bytes_freed"].clone()
            ),
            (1.into(), 8.into())
        );
        assert_eq!(world.index.cached_keys("demo"), ["t/0"]);
        let (_, report) = admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "twin"}"#);
        assert_eq!(report["objects_deleted"], 1);
        let (_, report) = admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "demo"}"#);
        assert_eq!(report["objects_deleted"], 1);
        assert_eq!(world.store.len(), 0);
        assert!(world.index.entries.borrow().is_empty());
        assert_eq!(read_at(&world, 2_000, "demo", "g/0"), "MISS");
        assert_eq!(
            admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "nope"}"#).0,
            404
        );
    }

    /// Warming fetches and stores matching ranged keys before answering; a second warm skips
    /// them; metadata and inline keys are never matched.
    #[test]
    fn warm_prefetches_matching_keys() {
        let world = world();
        let body = r#"{"dataset": "demo", "prefix": "g/", "concurrency": 2}"#;
        let (status, report) = admin(&world, "POST", "/api/admin/warm", body);
        assert_eq!(status, 200, "{report}");
        assert_eq!(
            (
                report["matched"].clone(),
                report["fetched"].clone(),
                report["skipped"].clone()
            ),
            (3.into(), 3.into(), 0.into())
        );
        let (_, again) = admin(&world, "POST", "/api/admin/warm", body);
        assert_eq!(
            (again["fetched"].clone(), again["skipped"].clone()),
            (0.into(), 3.into())
        );
        let requests = world.origin.requests.borrow().len();
        for key in ["g/0", "g/1", "g/2"] {
            assert_eq!(read_at(&world, 2_000, "demo", key), "HIT");
        }
        assert_eq!(world.origin.requests.borrow().len(), requests);
        let (_, all) = admin(
            &world,
            "POST",
            "/api/admin/warm",
            r#"{"dataset": "demo", "pattern": "*"}"#,
        );
        assert_eq!(all["matched"], 6, "t/0, short/0, far/0 and g/*: {all}");
        assert_eq!(
            all["failed"], 2,
            "short/0 is short, far/0 is not allowed: {all}"
        );
    }

    /// Datasets registered at run time are served at once, listed with their source, and
    /// removed with their cache; static ones cannot be removed.
    #[test]
    fn runtime_datasets_lifecycle() {
        let world = world();
        let definition = r#"{"refs": "http://origin.test/refs.json", "capacity_bytes": 100}"#;
        assert_eq!(
            admin(&world, "PUT", "/api/admin/datasets/fresh", definition).0,
            201
        );
        assert_eq!(
            admin(&world, "PUT", "/api/admin/datasets/fresh", definition).0,
            200
        );
        assert_eq!(
            admin(
                &world,
                "PUT",
                "/api/admin/datasets/bad",
                r#"{"refs": "ftp://x"}"#
            )
            .0,
            400
        );
        assert_eq!(read_at(&world, 1_000, "fresh", "g/0"), "MISS");
        let (_, listing) = admin(&world, "GET", "/api/admin/datasets", "");
        let fresh = dataset_row(&listing, "fresh");
        assert_eq!(fresh["source"], "runtime");
        assert_eq!(fresh["config"]["capacity_bytes"], 100);
        let (status, removed) = admin(&world, "DELETE", "/api/admin/datasets/fresh", "");
        assert_eq!(status, 200);
        assert_eq!(removed["purged"]["entries_removed"], 1);
        assert_eq!(run(&world, "GET", "/zarr/fresh/.zgroup").status, 404);
        assert!(world.index.runtime.borrow().is_empty());
        assert_eq!(
            admin(&world, "DELETE", "/api/admin/datasets/demo", "").0,
            409
        );
        assert_eq!(
            admin(&world, "DELETE", "/api/admin/datasets/fresh", "").0,
            404
        );
    }

    /// The sweep removes expired entries (and their objects), deletes objects no entry holds
    /// once they are older than the grace period, enforces capacities, and snapshots stats.
    #[test]
    fn sweep_removes_expired_orphans_and_excess() {
        let world = world_with(&dataset("short", r#", "ttl_seconds": 1"#));
        read_at(&world, 1_000, "short", "g/0");
        read_at(&world, 1_000, "demo", "g/1");
        block_on(world.store.put("t/v1/ab/orphan", vec![1, 2, 3])).unwrap();
        world.store.now.set(5_000);
        block_on(world.store.put("t/v1/cd/young", vec![1])).unwrap();
        world.index.now_ms.set(3_000);
        world.clock.now.set(5_500);
        let (status, report) = admin(&world, "POST", "/api/admin/sweep", "");
        assert_eq!(status, 200, "{report}");
        let short = dataset_row(&report, "short");
        assert_eq!(short["expired_removed"], 1);
        assert_eq!(short["objects_deleted"], 1);
        assert_eq!(report["orphans_deleted"], 1, "{report}");
        assert!(
            world.store.contains("t/v1/cd/young"),
            "within the grace period"
        );
        assert!(!world.store.contains("t/v1/ab/orphan"));
        assert_eq!(world.index.cached_keys("demo"), ["g/1"]);
        let history = json_body(&run(&world, "GET", "/api/stats/history?dataset=demo"));
        assert_eq!(history["snapshots"][0]["entries"], 1);
        assert_eq!(history["snapshots"][0]["misses"], 1);
    }

    /// The deployment-wide capacity evicts across datasets by its own policy.
    #[test]
    fn total_capacity_evicts_across_datasets() {
        let mut world = world_with(&dataset("other", ""));
        world.total_capacity = Some(Limit {
            capacity_bytes: 20,
            policy: crate::eviction::EvictionPolicy::Lru,
        });
        read_at(&world, 1_000, "demo", "g/1");
        read_at(&world, 2_000, "other", "t/0");
        read_at(&world, 3_000, "other", "g/2");
        assert!(
            world.index.cached_keys("demo").is_empty(),
            "oldest, in another dataset"
        );
        assert_eq!(world.index.cached_keys("other"), ["g/2", "t/0"]);
        let total = json_body(&run(&world, "GET", "/api/stats"))["total"].clone();
        assert_eq!(total["bytes_stored"], 19);
        assert_eq!(total["capacity_bytes"], 20);
    }

    /// Stats count entries, bytes stored and fetch-time percentiles; the keys listing sorts by
    /// the index and pages with a cursor.
    #[test]
    fn stats_and_keys_listing() {
        let world = world();
        for (at, key) in [
            (1_000, "g/1"),
            (1_001, "g/0"),
            (1_002, "g/2"),
            (1_003, "g/0"),
        ] {
            read_at(&world, at, "demo", key);
        }
        let stats = json_body(&run(&world, "GET", "/api/stats"));
        let demo = stats["datasets"][1].clone();
        assert_eq!(demo["id"], "demo");
        assert_eq!(
            (demo["entries"].clone(), demo["bytes_stored"].clone()),
            (3.into(), 28.into())
        );
        assert_eq!(
            (demo["hits"].clone(), demo["misses"].clone()),
            (1.into(), 3.into())
        );
        assert_eq!(demo["fetch_ms_p50"], 0);
        assert_eq!(demo["capacity_bytes"], serde_json::Value::Null);
        assert_eq!(demo["eviction"], "lru");
        let page =
            |query: &str| json_body(&run(&world, "GET", &format!("/api/stats/keys?{query}")));
        let keys = |page: &serde_json::Value| -> Vec<String> {
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["key"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = page("dataset=demo&sort=size&order=asc&limit=2");
        assert_eq!(keys(&first), ["g/0", "g/1"]);
        assert_eq!(first["next_cursor"], "2");
        let second = page("dataset=demo&sort=size&order=asc&limit=2&cursor=2");
        assert_eq!(keys(&second), ["g/2"]);
        assert_eq!(second["next_cursor"], serde_json::Value::Null);
        assert_eq!(keys(&page("dataset=demo&sort=hits")), ["g/0", "g/2", "g/1"]);
        assert_eq!(
            keys(&page("dataset=demo")),
            ["g/0", "g/2", "g/1"],
            "last access, newest first"
        );
        assert_eq!(page("dataset=demo&sort=size")["keys"][0]["size"], 16);
        for (query, status) in [
            ("sort=size", 400),
            ("dataset=nope", 404),
            ("dataset=demo&sort=colour", 400),
            ("dataset=demo&order=up", 400),
            ("dataset=demo&limit=0", 400),
            ("dataset=demo&limit=1001", 400),
        ] {
            assert_eq!(
                run(&world, "GET", &format!("/api/stats/keys?{query}")).status,
                status,
                "{query}"
            );
        }
    }

    /// A warm hit stays one index round trip however long since the run-time datasets were
    /// read; a change made on another instance arrives with the next lookup, and an unknown id
    /// is looked up in the index.
    #[test]
    fn runtime_datasets_propagate_without_extra_round_trips() {
        let world = world();
        read_at(&world, 1_000, "demo", "g/0");
        assert_eq!(read_at(&world, 1_001, "demo", "g/0"), "HIT");
        let before = world.index.round_trips.get();
        assert_eq!(read_at(&world, 900_000, "demo", "g/0"), "HIT");
        assert_eq!(world.index.round_trips.get() - before, 1, "one lookup");
        let definition = r#"{"refs": "http://origin.test/refs.json"}"#;
        block_on(world.index.put_runtime_dataset("elsewhere", definition)).unwrap();
        read_at(&world, 900_001, "demo", "g/0");
        assert!(
            world.registry.config("elsewhere").is_ok(),
            "seen via the lookup"
        );
        block_on(world.index.put_runtime_dataset("later", definition)).unwrap();
        world.clock.now.set(902_000);
        assert_eq!(run(&world, "GET", "/zarr/later/.zgroup").status, 200);
    }

    /// A dataset that is no longer configured keeps its cached keys until they expire (and can
    /// be purged meanwhile); the sweep then removes them, deletes their objects and forgets it.
    #[test]
    fn unconfigured_datasets_expire_and_are_forgotten() {
        let world = world();
        let definition = r#"{"refs": "http://origin.test/refs.json", "ttl_seconds": 60}"#;
        for id in ["old", "older"] {
            admin(
                &world,
                "PUT",
                &format!("/api/admin/datasets/{id}"),
                definition,
            );
            read_at(&world, 1_000, id, "g/2");
            read_at(&world, 1_000, id, "t/0");
            // Removed from the configuration without a purge (as an edited DATASETS would).
            block_on(world.index.remove_runtime_dataset(id)).unwrap();
            world.registry.remove_runtime(id);
        }
        assert_eq!(world.store.len(), 2, "both datasets share the objects");
        let (status, purged) = admin(
            &world,
            "POST",
            "/api/admin/purge",
            r#"{"dataset": "older", "key": "t/0"}"#,
        );
        assert_eq!((status, purged["entries_removed"].clone()), (200, 1.into()));
        let (_, report) = admin(&world, "POST", "/api/admin/sweep", "");
        assert_eq!(
            report["forgotten_datasets"],
            serde_json::json!([]),
            "not expired yet"
        );
        world.index.now_ms.set(70_000);
        world.clock.now.set(70_000);
        let (_, report) = admin(&world, "POST", "/api/admin/sweep", "");
        assert_eq!(
            report["forgotten_datasets"],
            serde_json::json!(["old", "older"])
        );
        assert_eq!(world.store.len(), 0);
        assert!(world.index.cached_keys("old").is_empty());
        assert_eq!(
            admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "old"}"#).0,
            404
        );
    }
}
