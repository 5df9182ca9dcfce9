//! The request handler, generic over the backends: route, run, and shape the response (CORS,
//! `HEAD`, `ETag`/304, `Range`/206/416, `X-Cache`, `Server-Timing`), with every error turned into
//! a response by `response::error_response`.
//!
//! No worker types here: the glue builds the real backends, converts the [`HttpResponse`], and
//! runs the returned [`WriteBack`]s in `ctx.wait_until`.

use std::rc::Rc;

use serde_json::json;

use crate::backend::{ChunkStore, Clock, Index, Origin, ReferenceSource};
use crate::cache_keys::content_checksum;
use crate::cache_path::{
    read_chunk, CacheBackends, CachePolicy, CacheSource, Chunk, ChunkBody, ChunkRequest, Flights,
    Timing, WriteBack,
};
use crate::conditional::{etag, none_match, range_answer, RangeAnswer};
use crate::admin::{authorize, handle_admin};
use crate::datasets::{DatasetConfig, DatasetRegistry, LoadState};
use crate::error::Error;
use crate::eviction::Limit;
use crate::health::check_health;
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
    if !matches!(route, Route::Preflight | Route::Health) {
        backends
            .datasets
            .refresh_runtime(&cache.index, cache.clock.now_ms())
            .await;
    }
    match route {
        Route::Preflight => plain(HttpResponse {
            status: 204,
            headers: vec![("access-control-max-age".into(), "86400".into())],
            body: Vec::new(),
            stream: None,
        }),
        Route::Health => {
            let probe_key = cache.keys.health_probe(request.nonce);
            let report = check_health(&cache.index, &cache.store, &cache.clock, &probe_key).await;
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
            all_stats(&cache.index, backends.datasets, backends.total_capacity).await?,
        ),
        Route::StatsKeys => plain(keys_listing(&cache.index, backends.datasets, request.query).await?),
        Route::StatsHistory => plain(history(&cache.index, backends.datasets, request.query).await?),
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
            },
            Vec::new(),
        ),
        KeyAnswer::Fetch { url, range } => {
            if !config.allows(&url) {
                return Err(Error::Forbidden(format!(
                    "{dataset}/{key} points at {url}, whose host is not in the dataset's allowed_hosts"
                )));
            }
            let policy = cache_policy(&config, backends);
            let chunk_request = ChunkRequest {
                dataset,
                key,
                url: &url,
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
    let response = respond_with_chunk(request, chunk, key, max_age, &backends.cache.store).await?;
    Ok((response, write_backs))
}

/// The cache path's tunables for a dataset.
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
                ChunkBody::Stored(body) => response(200, headers, Vec::new(), Some(body)),
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
            // A ranged read of a stored chunk reads it whole (chunks are small) and slices.
            let bytes = match chunk.body {
                ChunkBody::Stored(body) => store.read_body(body).await?,
                ChunkBody::Bytes(bytes) => bytes.to_vec(),
            };
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
            headers.push((
                "content-range".to_owned(),
                format!("bytes {start}-{end}/{}", chunk.size),
            ));
            headers.push(("content-length".to_owned(), slice.len().to_string()));
            Ok(response(206, headers, slice.to_vec(), None))
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
        "far/0": ["http://elsewhere.test/f.bin", 0, 1]
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
        let datasets = parse_datasets(
            r#"{"demo": {"refs": "http://origin.test/refs.json", "description": "d"},
                "broken": {"refs": "http://origin.test/broken.json"}}"#,
        )
        .unwrap();
        let index = Rc::new(FakeIndex::healthy());
        let origin =
            Rc::new(FakeOrigin::default().with_file("http://origin.test/f.bin", b"0123456789"));
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
        let demo = body["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "demo")
            .unwrap()
            .clone();
        assert_eq!(demo["hits"], 2);
        assert_eq!(demo["misses"], 1);
        assert_eq!(demo["bytes_from_origin"], 3);
        assert_eq!(demo["bytes_from_cache"], 6);
        assert!((demo["hit_ratio"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(body["datasets"][0]["hit_ratio"], serde_json::Value::Null);
    }
}
