//! The request handler's test world (`#[cfg(test)]`): fakes behind the real handler, a
//! request helper, and the demo references. The tests of each endpoint live in its module.

#![allow(dead_code, unused_imports)]

pub use crate::cache::maintenance::EvictionScope;
pub use crate::cache::run_write_back;
pub use crate::cache::{CacheBackends, Flights};
pub use crate::clock::Clock;
pub use crate::fakes::{FakeIndex, FakeOrigin, FakeRefsSource, Fakes, InMemoryStore, ManualClock};
pub use crate::http::context::{Backends, RequestParts};
pub use crate::http::health::HealthCache;
pub use crate::http::response::HttpResponse;
pub use crate::http::service::handle;
pub use crate::index::Index;
pub use crate::keys::CacheKeys;
pub use crate::policy::capacity::Limit;
pub use crate::settings::Settings;
pub use crate::source::datasets::parse_datasets;
pub use crate::source::datasets::DatasetRegistry;
pub use crate::store::ChunkStore;
pub use futures::executor::block_on;
pub use serde_json::json;
pub use std::rc::Rc;

pub const ADMIN_TOKEN: &str = "admin-token-0123456789";

pub const REFS: &str = r#"{"version": 1, "refs": {
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

/// References of netCDF4-style arrays (`<f4`, shuffle then zlib as kerchunk writes them;
/// big-endian `>i2` with zlib as the compressor; an unsupported codec) over
/// `packed.bin` ([`packed_file`]).
pub const PACKED_REFS: &str = r#"{"version": 1, "refs": {
    ".zgroup": "{\"zarr_format\": 2}",
    "temp/.zarray": "{\"shape\": [5], \"chunks\": [4], \"dtype\": \"<f4\", \"compressor\": null, \"filters\": [{\"id\": \"shuffle\", \"elementsize\": 4}, {\"id\": \"zlib\", \"level\": 4}], \"fill_value\": -9999.0, \"order\": \"C\", \"zarr_format\": 2}",
    "temp/.zattrs": "{\"_ARRAY_DIMENSIONS\": [\"x\"]}",
    "temp/0": ["http://origin.test/packed.bin", 0, 0],
    "temp/1": ["http://origin.test/packed.bin", 0, 0],
    "temp/9": ["http://origin.test/packed.bin", 0, 0],
    "big/.zarray": "{\"shape\": [3], \"chunks\": [3], \"dtype\": \">i2\", \"compressor\": {\"id\": \"zlib\", \"level\": 1}, \"filters\": null, \"fill_value\": 0, \"order\": \"C\", \"zarr_format\": 2}",
    "big/0": ["http://origin.test/packed.bin", 0, 0],
    "lzma/.zarray": "{\"shape\": [3], \"chunks\": [3], \"dtype\": \"<f4\", \"compressor\": {\"id\": \"lzma\"}, \"filters\": null, \"fill_value\": 0, \"order\": \"C\", \"zarr_format\": 2}",
    "lzma/0": ["http://origin.test/packed.bin", 0, 4]
}}"#;

/// The values of `temp`'s chunks 0 and 1 (the second a partial edge chunk, stored full size).
pub const PACKED_TEMP: [[f32; 4]; 2] =
    [[1.5, -2.0, 273.15, 0.0], [300.0, -9999.0, -9999.0, -9999.0]];
/// The values of `big/0`.
pub const PACKED_BIG: [i16; 3] = [-2, 513, 7];

/// `packed.bin`'s bytes and the references with their real offsets: `temp/0`, `temp/1`,
/// `big/0`, then `temp/9`, a corrupt zlib stream.
pub fn packed_file() -> (Vec<u8>, String) {
    use std::io::Write;
    let zlib = |data: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let shuffled = |values: &[f32]| {
        let plain: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        (0..4)
            .flat_map(|b| (0..values.len()).map(move |i| (i, b)))
            .map(|(i, b)| plain[i * 4 + b])
            .collect::<Vec<u8>>()
    };
    let big: Vec<u8> = PACKED_BIG.iter().flat_map(|v| v.to_be_bytes()).collect();
    let mut corrupt = zlib(&shuffled(&PACKED_TEMP[0]));
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xa5;
    let parts = [
        ("temp/0", zlib(&shuffled(&PACKED_TEMP[0]))),
        ("temp/1", zlib(&shuffled(&PACKED_TEMP[1]))),
        ("big/0", zlib(&big)),
        ("temp/9", corrupt),
    ];
    let (mut file, mut refs) = (Vec::new(), PACKED_REFS.to_owned());
    for (key, bytes) in parts {
        let old = format!(r#""{key}": ["http://origin.test/packed.bin", 0, 0]"#);
        let new = format!(
            r#""{key}": ["http://origin.test/packed.bin", {}, {}]"#,
            file.len(),
            bytes.len()
        );
        refs = refs.replace(&old, &new);
        file.extend_from_slice(&bytes);
    }
    (file, refs)
}

pub type FakeBackends = CacheBackends<Fakes>;

pub struct World {
    pub cache: Rc<FakeBackends>,
    pub index: FakeIndex,
    pub origin: FakeOrigin,
    pub refs: FakeRefsSource,
    pub store: InMemoryStore,
    pub clock: ManualClock,
    pub registry: DatasetRegistry,
    pub flights: Flights,
    pub total_capacity: Option<Limit>,
    pub file_checks: crate::cache::validators::FileChecks,
    /// Write-backs may fail (the index is down, storage fails): the harness does not assert them.
    pub write_backs_may_fail: bool,
}

pub fn world() -> World {
    world_with("")
}

/// The world with more datasets (`"id": {…}` entries, comma-first).
pub fn world_with(extra_datasets: &str) -> World {
    let datasets = parse_datasets(&format!(
        r#"{{"demo": {{"refs": "http://origin.test/refs.json", "description": "d"}},
            "broken": {{"refs": "http://origin.test/broken.json"}}{extra_datasets}}}"#
    ))
    .unwrap();
    let index = FakeIndex::healthy();
    let (packed, packed_refs) = packed_file();
    let origin = FakeOrigin::default()
        .with_file("http://origin.test/f.bin", b"0123456789")
        .with_file("http://origin.test/packed.bin", &packed)
        .with_file("http://origin.test/g.bin", &[7u8; 40])
        .with_file("http://private.test/p.bin", b"private!")
        .with_private_host("private.test");
    let store = InMemoryStore::default();
    let clock = ManualClock::default();
    clock.now.set(1_000);
    World {
        cache: Rc::new(CacheBackends {
            index: index.clone(),
            store: store.clone(),
            origin: origin.clone(),
            clock: clock.clone(),
            keys: CacheKeys::new("t"),
            late: crate::cache::settle::LateLookups::default(),
        }),
        store,
        clock,
        total_capacity: None,
        index,
        origin,
        refs: FakeRefsSource::default()
            .with("http://origin.test/refs.json", REFS, "\"v1\"")
            .with("http://origin.test/packed.json", &packed_refs, "\"p1\"")
            .with(
                "http://origin.test/broken.json",
                "{\"version\": 7}",
                "\"b\"",
            ),
        registry: DatasetRegistry::new(datasets, 1 << 20, 60_000),
        flights: Flights::default(),
        file_checks: crate::cache::validators::FileChecks::default(),
        write_backs_may_fail: false,
    }
}

/// Runs a request with headers and then its write-backs; returns the response with any
/// streamed body read into `body`.
pub fn request(world: &World, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    request_with_body(world, method, path, headers, b"")
}

pub fn request_with_body(
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
        admin_token: Some(ADMIN_TOKEN),
        settings: &Settings {
            lease_ms: 30_000,
            lease_wait_ms: 1_000,
            origin_timeout_ms: 1_000,
            total_capacity: world.total_capacity,
            orphan_grace_ms: 1_000,
            orphan_pages: 10,
            ..Settings::default()
        },
        secrets: &|name| {
            (name == "ORIGIN_KEY_ID" || name == "ORIGIN_SECRET")
                .then(|| format!("{name}-value-0123456789"))
        },
        health: &HealthCache::default(),
        file_checks: &world.file_checks,
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let (response, write_backs) = block_on(handle(
        &RequestParts {
            method,
            path,
            query,
            body,
            authorization: header("authorization"),
            cookie: header("cookie"),
            content_type: header("content-type"),
            nonce: "n1",
            range: header("range"),
            if_none_match: header("if-none-match"),
            if_range: header("if-range"),
        },
        &backends,
    ));
    // A body made piece by piece is read whole, its write-backs kept for after the others; a
    // piece that fails is reported in `x-test-body-error`.
    let mut response = response;
    let mut body = response
        .stream
        .take()
        .unwrap_or(std::mem::take(&mut response.body));
    let mut write_backs = write_backs;
    if let Some(crate::http::response::Pieces(pieces)) = response.pieces.take() {
        use futures::StreamExt as _;
        for piece in block_on(pieces.collect::<Vec<_>>()) {
            match piece {
                Ok(piece) => {
                    body.extend(piece.bytes);
                    write_backs.extend(piece.write_backs);
                }
                Err(error) => response
                    .headers
                    .push(("x-test-body-error".into(), error.to_string())),
            }
        }
    }
    let ids = world.registry.ids();
    let scope = EvictionScope {
        datasets: &ids,
        now_ms: world.cache.clock.now_ms(),
        token: "wb",
        total_evictions: crate::cache::maintenance::MAX_TOTAL_EVICTIONS,
    };
    for write_back in write_backs {
        let outcome = block_on(world.cache.write_back(write_back, &scope));
        // A world whose index or storage fails fails its write-backs, as the glue would log.
        if let Err(error) = outcome {
            assert!(world.write_backs_may_fail, "write-back: {error}");
        }
    }
    // As the glue does after the write-backs.
    block_on(
        world
            .registry
            .refresh_if_seen_changed(&world.cache.index, world.cache.clock.now_ms()),
    );
    HttpResponse {
        status: response.status,
        headers: response.headers,
        body,
        stream: None,
        pieces: None,
    }
}

/// The version document of the `xp` dataset of [`zarr_world`]: one array `t` of 4 bytes in
/// chunks of 2.
pub const XP_DOCUMENT: &str = r#"{"zarr_format": 3, "node_type": "group", "attributes": {"v": 1},
  "consolidated_metadata": {"kind": "inline", "metadata": {"t": {"zarr_format": 3,
  "node_type": "array", "shape": [4], "data_type": "uint8",
  "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
  "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
  "codecs": [{"name": "bytes"}], "fill_value": 0}}}}"#;

/// A world with `xp`, a Zarr v3 store over HTTP fronting an xpublish-like origin at
/// `http://xp.test/datasets/air` (chunk `t/c/1` absent), whose routes `edr/**` are cached.
pub fn zarr_world() -> World {
    let mut world = world_with(
        r#", "xp": {"kind": "zarr", "url": "http://xp.test/datasets/air/zarr",
            "metadata_ttl_seconds": 60, "absent_ttl_seconds": 30,
            "routes": {"base": "http://xp.test/datasets/air",
                       "cache": [{"path": "edr/**", "ttl_seconds": 600}]}}"#,
    );
    let base = "http://xp.test/datasets/air";
    world.set_origin(xp_origin(XP_DOCUMENT, &[1, 2]));
    world.refs = FakeRefsSource::default()
        .with("http://origin.test/refs.json", REFS, "\"v1\"")
        .with(&format!("{base}/zarr/zarr.json"), XP_DOCUMENT, "\"d1\"");
    world
}

impl World {
    /// The same world with `origin` in place of its origin (index, storage, clock and registry
    /// kept: an origin whose data changed).
    pub fn set_origin(&mut self, origin: FakeOrigin) {
        self.origin = origin.clone();
        self.cache = Rc::new(CacheBackends {
            index: self.index.clone(),
            store: self.store.clone(),
            origin,
            clock: self.clock.clone(),
            keys: CacheKeys::new("t"),
            late: crate::cache::settle::LateLookups::default(),
        });
    }
}

/// The origin of [`zarr_world`] with `document` as its `zarr.json` and `chunk` as `t/c/0`.
pub fn xp_origin(document: &str, chunk: &[u8]) -> FakeOrigin {
    let base = "http://xp.test/datasets/air";
    FakeOrigin::default()
        .with_file(&format!("{base}/zarr/zarr.json"), document.as_bytes())
        .with_file(
            &format!("{base}/zarr/t/zarr.json"),
            br#"{"zarr_format": 3}"#,
        )
        .with_file(&format!("{base}/zarr/t/c/0"), chunk)
        .with_file(&format!("{base}/edr/position?a=1&b=2"), br#"{"edr":1}"#)
        .with_content_type(&format!("{base}/edr/position?a=1&b=2"), "application/json")
        .with_file(&format!("{base}/info"), b"info")
        .with_status(&format!("{base}/edr/boom"), 500)
        .with_status(&format!("{base}/edr/bad"), 422)
}

/// Origin requests so far whose URL contains `part`.
pub fn origin_requests(world: &World, part: &str) -> usize {
    let requests = world.origin.requests.borrow();
    requests.iter().filter(|r| r.0.contains(part)).count()
}

/// [`zarr_world`] under the name the route tests use.
pub fn routes_world() -> World {
    zarr_world()
}

pub fn run(world: &World, method: &str, path: &str) -> HttpResponse {
    request(world, method, path, &[])
}

/// The row of dataset `id` in a `{"datasets": [...]}` answer.
pub fn dataset_row(body: &serde_json::Value, id: &str) -> serde_json::Value {
    body["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {body}"))
        .clone()
}

pub fn json_body(response: &HttpResponse) -> serde_json::Value {
    serde_json::from_slice(&response.body).unwrap()
}

/// A dataset over the demo references with `settings` (JSON members), edge tier off.
pub fn dataset(id: &str, settings: &str) -> String {
    format!(
        r#", "{id}": {{"refs": "http://origin.test/refs.json", "edge_ttl_seconds": 0{settings}}}"#
    )
}

/// Reads `key` of `dataset` at `at_ms`, returning `X-Cache`.
pub fn read_at(world: &World, at_ms: u64, dataset: &str, key: &str) -> String {
    world.clock.now.set(at_ms);
    let response = run(world, "GET", &format!("/zarr/{dataset}/{key}"));
    assert_eq!(response.status, 200, "{dataset}/{key}");
    response.header("x-cache").unwrap().to_owned()
}

pub const ADMIN: (&str, &str) = ("authorization", "Bearer admin-token-0123456789");

pub fn admin(world: &World, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let response = request_with_body(world, method, path, &[ADMIN], body.as_bytes());
    let json = serde_json::from_slice(&response.body).unwrap_or_default();
    (response.status, json)
}
