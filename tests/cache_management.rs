//! Cache management on the real stack: capacity and the eviction policies (`lru`, `lfu`, `size`,
//! `cost`), admission rules, `/api/stats` and `/api/stats/keys`, the admin API (bearer auth,
//! purge, warm, sweep, runtime datasets) and the scheduled sweep (`/__scheduled`).
//!
//! Each test registers its own runtime dataset(s) with `PUT /api/admin/datasets/{id}`, over its
//! own copy of the `air` references (`refs/air-{id}.json`, written by `scripts/test`: every
//! ranged URL carries `?copy={id}`, so no two tests share a storage object, which is
//! content-addressed by URL and range). In `cm-cost` and `cm-admit-slow` the two largest
//! `air_temperature` chunks come through `bench/slow_proxy.py` (+400 ms per request). The edge
//! tier is off for all of them (`edge_ttl_seconds: 0`): every read reaches the cache path.
//!
//! Tests run in parallel threads. A sweep touches every dataset (TTL, capacity, orphans), so the
//! tests that run one take [`SWEEPS`] exclusively and the others share it. Write-back and eviction
//! run in `ctx.wait_until` after the answer: tests poll for them with a deadline, never sleep as
//! an assertion (the only sleeps wait out a TTL or the orphan grace period before acting).
//!
//! Sizes come from the references (never hard-coded); each test asserts the premises its
//! capacities rely on, so a change of the demo data fails with a reason instead of a puzzle.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{admin_token, get_json, poll, send, stack_var, Answer, UreqTransport};
use futures::executor::block_on;
use serde_json::{json, Value as Json};
use zarr_edge_cache::index::transport::UpstashTransport;
use zarr_edge_cache::keys::{content_checksum, CacheKeys};
use zarr_edge_cache::origin::ByteRange;
use zarr_edge_cache::upstash::{decode_single, Command, HttpCall, Value};

/// How long an asynchronous effect (write-back, eviction, origin log line) may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// The cron of `wrangler.toml`, as `/__scheduled` takes it.
const CRON_PATH: &str = "/__scheduled?cron=*/15+*+*+*+*";
/// The slow proxy's added latency, ms (`scripts/test` sets it).
fn slow_ms() -> u64 {
    stack_var("ZEC_SLOW_ORIGIN_MS")
        .parse()
        .expect("ZEC_SLOW_ORIGIN_MS is a number of ms")
}

/// Sweeps act on every dataset: tests that run one hold this exclusively, the others share it.
static SWEEPS: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    SWEEPS.read().unwrap_or_else(PoisonError::into_inner)
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    SWEEPS.write().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// HTTP

fn worker() -> String {
    stack_var("ZEC_BASE_URL")
}

/// `GET /zarr/{id}/{key}` on worker 1.
fn read(id: &str, key: &str) -> Answer {
    send(&worker(), "GET", &format!("/zarr/{id}/{key}"), &[], None)
}

/// An admin call with the right bearer token.
fn admin(method: &str, path: &str, body: Option<&Json>) -> Answer {
    let auth = format!("Bearer {}", admin_token());
    let body = body.map(Json::to_string);
    send(
        &worker(),
        method,
        path,
        &[("Authorization", &auth)],
        body.as_deref(),
    )
}

/// An admin call that must answer 200; its JSON body.
fn admin_ok(method: &str, path: &str, body: Option<&Json>) -> Json {
    let answer = admin(method, path, body);
    assert_eq!(
        answer.status,
        200,
        "{method} {path} {body:?}: {}",
        answer.text()
    );
    answer.json()
}

/// Runs the scheduled handler now (`wrangler dev --test-scheduled`); it answers once finished.
fn run_cron() {
    let answer = send(&worker(), "GET", CRON_PATH, &[], None);
    assert_eq!(answer.status, 200, "{CRON_PATH}: {}", answer.text());
}

/// `POST /api/admin/sweep`: the report, and its row for `id`.
fn sweep(id: &str) -> (Json, Json) {
    let report = admin_ok("POST", "/api/admin/sweep", None);
    assert!(report["objects_scanned"].is_u64(), "{report}");
    assert!(report["orphans_deleted"].is_u64(), "{report}");
    let row = report["datasets"]
        .as_array()
        .unwrap_or_else(|| panic!("no datasets in the sweep report {report}"))
        .iter()
        .find(|row| row["id"] == id)
        .unwrap_or_else(|| panic!("no row for {id} in the sweep report {report}"))
        .clone();
    (report, row)
}

/// Percent-encodes a query component (cursors are opaque).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A JSON field that must be an unsigned integer.
fn uint(value: &Json, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not an unsigned integer in {value}"))
}

// ---------------------------------------------------------------------------------------------
// The index (Upstash REST), for inspecting and damaging state directly

fn index(command: &Command) -> Value {
    let call = HttpCall::single(&stack_var("ZEC_UPSTASH_TOKEN"), command);
    let raw = block_on(UreqTransport::new(&stack_var("ZEC_UPSTASH_URL")).send(&call)).unwrap();
    decode_single(raw.status, &raw.body).unwrap()
}

fn entry_key(id: &str, key: &str) -> String {
    format!("zec:v1:entry:{id}:{key}")
}

fn exists(redis_key: &str) -> bool {
    index(&Command::new("EXISTS").arg(redis_key)).as_int() == Some(1)
}

// ---------------------------------------------------------------------------------------------
// References and origin requests

/// A ranged reference: the Zarr key and where its bytes live.
struct Chunk {
    key: String,
    url: String,
    offset: u64,
    length: u64,
}

impl Chunk {
    /// Requests for exactly this URL (path and query) and range so far, in nginx's access log.
    /// The slow proxy forwards path, query and `Range` unchanged, so its requests count too.
    fn origin_requests(&self) -> usize {
        let path = self
            .url
            .splitn(4, '/')
            .nth(3)
            .unwrap_or_else(|| panic!("no path in {}", self.url));
        common::origin_requests(path, self.offset, self.length)
    }

    /// Polls until the origin has seen exactly `n` requests for this chunk.
    fn wait_origin_requests(&self, n: usize) {
        poll(
            &format!("{n} origin requests for {}", self.key),
            DEADLINE,
            || match self.origin_requests() {
                seen if seen == n => Ok(()),
                seen if seen > n => panic!("{seen} origin requests for {}, expected {n}", self.key),
                seen => Err(format!("{seen} requests")),
            },
        );
    }

    /// The storage object key the worker uses for these bytes.
    fn object_key(&self) -> String {
        CacheKeys::new("zec").object(
            &self.url,
            Some(ByteRange {
                offset: self.offset,
                length: self.length,
            }),
        )
    }

    fn is_slow(&self) -> bool {
        self.url.starts_with(&stack_var("ZEC_SLOW_ORIGIN_URL"))
    }
}

/// The ranged references of `refs/air-{id}.json`, by key.
struct Refs {
    chunks: BTreeMap<String, Chunk>,
}

impl Refs {
    fn load(id: &str) -> Self {
        let path =
            PathBuf::from(stack_var("ZEC_STATE_DIR")).join(format!("demo/refs/air-{id}.json"));
        let refs: Json = serde_json::from_slice(
            &std::fs::read(&path)
                .unwrap_or_else(|e| panic!("{}: {e} (see scripts/test)", path.display())),
        )
        .unwrap();
        let chunks = refs["refs"]
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(key, value)| {
                let parts = value.as_array().filter(|parts| parts.len() == 3)?;
                Some((
                    key.clone(),
                    Chunk {
                        key: key.clone(),
                        url: parts[0].as_str()?.to_owned(),
                        offset: parts[1].as_u64()?,
                        length: parts[2].as_u64()?,
                    },
                ))
            })
            .collect();
        Self { chunks }
    }

    fn chunk(&self, key: &str) -> &Chunk {
        self.chunks
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not a ranged reference"))
    }

    fn size(&self, key: &str) -> u64 {
        self.chunk(key).length
    }

    fn total(&self, keys: &[&str]) -> u64 {
        keys.iter().map(|key| self.size(key)).sum()
    }

    /// Ranged keys starting with `prefix`, in key order.
    fn keys(&self, prefix: &str) -> Vec<String> {
        self.chunks
            .keys()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Ranged keys starting with `prefix`, largest first; asserts their sizes are distinct.
    fn by_size_desc(&self, prefix: &str) -> Vec<String> {
        let mut keys = self.keys(prefix);
        keys.sort_by_key(|key| std::cmp::Reverse(self.size(key)));
        let sizes: BTreeSet<u64> = keys.iter().map(|key| self.size(key)).collect();
        assert_eq!(
            sizes.len(),
            keys.len(),
            "premise: distinct sizes under {prefix}"
        );
        keys
    }
}

// ---------------------------------------------------------------------------------------------
// Datasets under test

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// A runtime dataset over `refs/air-{id}.json`, edge tier off, with `extra` merged in.
fn dataset_config(id: &str, extra: &Json) -> Json {
    let mut config = json!({
        "refs": format!("{}/refs/air-{id}.json", stack_var("ZEC_ORIGIN_URL")),
        "description": format!("tests/cache_management.rs: {id}"),
        "edge_ttl_seconds": 0,
        "allowed_hosts": [
            host_of(&stack_var("ZEC_ORIGIN_URL")),
            host_of(&stack_var("ZEC_SLOW_ORIGIN_URL")),
        ],
    });
    for (name, value) in extra.as_object().unwrap() {
        config[name] = value.clone();
    }
    config
}

fn put_dataset(id: &str, config: &Json) -> Answer {
    admin("PUT", &format!("/api/admin/datasets/{id}"), Some(config))
}

/// Deletes what an earlier run left (entries and objects go with it), then creates `id`.
fn register_fresh(id: &str, config: &Json) {
    let gone = admin("DELETE", &format!("/api/admin/datasets/{id}"), None);
    assert!(
        matches!(gone.status, 200 | 404),
        "DELETE {id}: {} {}",
        gone.status,
        gone.text()
    );
    let created = put_dataset(id, config);
    assert_eq!(created.status, 201, "PUT {id}: {}", created.text());
}

/// The `GET /api/admin/datasets` row of `id`, if listed.
fn listed_dataset(id: &str) -> Option<Json> {
    admin_ok("GET", "/api/admin/datasets", None)["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == id)
        .cloned()
}

fn stats() -> Json {
    let answer = send(&worker(), "GET", "/api/stats", &[], None);
    assert_eq!(answer.status, 200, "/api/stats: {}", answer.text());
    answer.json()
}

fn stats_row(id: &str) -> Option<Json> {
    stats()["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == id)
        .cloned()
}

fn stats_keys(query: &str) -> Answer {
    send(
        &worker(),
        "GET",
        &format!("/api/stats/keys?{query}"),
        &[],
        None,
    )
}

/// Every cached key of `id` with its `/api/stats/keys` row (one page of up to 1000).
fn cached_keys(id: &str) -> BTreeMap<String, Json> {
    let answer = stats_keys(&format!("dataset={id}&limit=1000"));
    assert_eq!(
        answer.status,
        200,
        "/api/stats/keys for {id}: {}",
        answer.text()
    );
    let page = answer.json();
    assert_eq!(page["next_cursor"], Json::Null, "{page}");
    page["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["key"].as_str().unwrap().to_owned(), row.clone()))
        .collect()
}

/// The counters that advance with reads and write-backs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counters {
    hits: u64,
    misses: u64,
    written: u64,
}

impl Counters {
    fn of(row: &Json) -> Self {
        Self {
            hits: uint(row, "hits"),
            misses: uint(row, "misses"),
            written: uint(row, "entries_written"),
        }
    }

    fn since(self, base: Self) -> Self {
        Self {
            hits: self.hits - base.hits,
            misses: self.misses - base.misses,
            written: self.written - base.written,
        }
    }
}

/// A fresh runtime dataset and what its counters and cached keys should be.
struct Scenario {
    id: &'static str,
    refs: Refs,
    extra: Json,
    /// Counters when it was registered (a rerun on a dirty stack may keep old counters).
    baseline: Counters,
    /// What reads since then should have added.
    expected: Counters,
}

impl Scenario {
    fn register(id: &'static str, extra: Json) -> Self {
        let refs = Refs::load(id);
        register_fresh(id, &dataset_config(id, &extra));
        let row = stats_row(id).unwrap_or_else(|| panic!("{id} is not in /api/stats"));
        assert_eq!(uint(&row, "entries"), 0, "{row}");
        assert_eq!(uint(&row, "bytes_stored"), 0, "{row}");
        assert_eq!(row["capacity_bytes"], extra["capacity_bytes"], "{row}");
        let eviction = extra.get("eviction").cloned().unwrap_or(json!("lru"));
        assert_eq!(row["eviction"], eviction, "{row}");
        Self {
            id,
            refs,
            extra,
            baseline: Counters::of(&row),
            expected: Counters::default(),
        }
    }

    /// Replaces the dataset's configuration (`PUT` of the same id): 200.
    fn reconfigure(&mut self, changes: &Json) {
        for (name, value) in changes.as_object().unwrap() {
            self.extra[name] = value.clone();
        }
        let replaced = put_dataset(self.id, &dataset_config(self.id, &self.extra));
        assert_eq!(replaced.status, 200, "PUT {}: {}", self.id, replaced.text());
    }

    fn chunk(&self, key: &str) -> &Chunk {
        self.refs.chunk(key)
    }

    /// Reads `key`, asserts it is answered whole with `x_cache`, and counts it (a MISS is
    /// admitted: it will be written back).
    fn read(&mut self, key: &str, x_cache: &str) -> Answer {
        let answer = read(self.id, key);
        assert_eq!(answer.status, 200, "{}/{key}: {}", self.id, answer.text());
        assert_eq!(answer.x_cache(), x_cache, "X-Cache of {}/{key}", self.id);
        assert_eq!(
            answer.body.len() as u64,
            self.refs.size(key),
            "{}/{key}",
            self.id
        );
        match x_cache {
            "HIT" => self.expected.hits += 1,
            "MISS" => {
                self.expected.misses += 1;
                self.expected.written += 1;
            }
            other => panic!("no counting for {other}"),
        }
        answer
    }

    /// Reads `key`: a MISS that admission keeps out of the cache (nothing written back).
    fn read_not_admitted(&mut self, key: &str) {
        let answer = read(self.id, key);
        assert_eq!(answer.status, 200, "{}/{key}: {}", self.id, answer.text());
        assert_eq!(answer.x_cache(), "MISS", "X-Cache of {}/{key}", self.id);
        self.expected.misses += 1;
    }

    /// Reads `key` (expecting `x_cache`), then waits until the dataset holds exactly `then`.
    fn step(&mut self, key: &str, x_cache: &str, then: &[&str]) {
        self.read(key, x_cache);
        self.settle(then);
    }

    /// `times` hits on `key`, then waits until the counters show them.
    fn hits(&mut self, key: &str, times: usize, then: &[&str]) {
        for _ in 0..times {
            self.read(key, "HIT");
        }
        self.settle(then);
    }

    /// The dataset holds exactly `keys` (`/api/stats/keys`), with matching `entries` and
    /// `bytes_stored`; with `counters`, hits, misses and entries written are as counted.
    fn check(&self, keys: &[&str], counters: bool) -> Result<(), String> {
        let row = stats_row(self.id).ok_or_else(|| format!("{} not in /api/stats", self.id))?;
        let seen = Counters::of(&row).since(self.baseline);
        if counters && seen != self.expected {
            return Err(format!("counters {seen:?}, expected {:?}", self.expected));
        }
        let want: BTreeSet<&str> = keys.iter().copied().collect();
        let cached = cached_keys(self.id);
        let have: BTreeSet<&str> = cached.keys().map(String::as_str).collect();
        if have != want {
            return Err(format!("cached {have:?}, expected {want:?}"));
        }
        let (entries, bytes) = (uint(&row, "entries"), uint(&row, "bytes_stored"));
        if entries != keys.len() as u64 || bytes != self.refs.total(keys) {
            return Err(format!(
                "entries {entries} bytes_stored {bytes}, expected {} and {}",
                keys.len(),
                self.refs.total(keys)
            ));
        }
        Ok(())
    }

    /// Polls until the counters and the cached keys are as expected; the capacity holds.
    fn settle(&self, keys: &[&str]) {
        poll(
            &format!("{} settles on {keys:?}", self.id),
            DEADLINE,
            || self.check(keys, true),
        );
        if let Some(capacity) = self.extra["capacity_bytes"].as_u64() {
            assert!(
                self.refs.total(keys) <= capacity,
                "test design: {keys:?} over capacity"
            );
        }
    }

    /// Polls until the cached keys are `keys` (counters not checked: purge, warm, adoption).
    fn settle_keys(&self, keys: &[&str]) {
        poll(&format!("{} holds {keys:?}", self.id), DEADLINE, || {
            self.check(keys, false)
        });
    }

    /// The cached keys are `keys` now (after a call that answers once it has finished).
    fn assert_keys(&self, keys: &[&str]) {
        if let Err(e) = self.check(keys, false) {
            panic!("{}: {e}", self.id);
        }
    }

    /// Survivors read as HIT without reaching the origin; evicted keys read as MISS that reach
    /// it (their objects are gone too, else the bytes would be adopted and served as a HIT).
    fn verify(&mut self, survivors: &[&str], evicted: &[&str]) {
        self.assert_keys(survivors);
        for key in survivors {
            let before = self.chunk(key).origin_requests();
            self.read(key, "HIT");
            assert_eq!(self.chunk(key).origin_requests(), before, "{key} survived");
        }
        for key in evicted {
            // An eviction takes the key out of the listing first, deletes the object, then the
            // entry: once the entry hash is gone, so are the bytes.
            poll(
                &format!("the entry of evicted {key} dropped"),
                DEADLINE,
                || {
                    if exists(&entry_key(self.id, key)) {
                        Err("present".to_owned())
                    } else {
                        Ok(())
                    }
                },
            );
            let before = self.chunk(key).origin_requests();
            self.read(key, "MISS");
            self.chunk(key).wait_origin_requests(before + 1);
        }
    }
}

/// A capacity that holds any three of `keys` and never four (their sizes are close).
fn three_of(refs: &Refs, keys: &[&str]) -> u64 {
    let sizes: Vec<u64> = keys.iter().map(|key| refs.size(key)).collect();
    let (min, max) = (*sizes.iter().min().unwrap(), *sizes.iter().max().unwrap());
    assert!(
        4 * min > 3 * max,
        "premise: any four of {keys:?} exceed three of the largest"
    );
    3 * max
}

const HIT: &str = "HIT";
const MISS: &str = "MISS";

// ---------------------------------------------------------------------------------------------
// Eviction policies

/// `lru`: three chunks fit. The least recently read goes first even when it was read most
/// often (`a0`, 4 reads: `lfu` would keep it), and a later hit (`a1`) protects a chunk for a
/// while. Survivors `{a2, a3, a4}`.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn lru_evicts_the_least_recently_read() {
    let _sweeps = shared();
    let names = Refs::load("cm-lru").keys("air_temperature/");
    let [a0, a1, a2, a3, a4] = [0, 1, 2, 3, 4].map(|i| names[i].as_str());
    let capacity = three_of(&Refs::load("cm-lru"), &[a0, a1, a2, a3, a4]);
    let mut s = Scenario::register(
        "cm-lru",
        json!({"capacity_bytes": capacity, "eviction": "lru"}),
    );
    s.step(a0, MISS, &[a0]);
    s.hits(a0, 3, &[a0]);
    s.step(a1, MISS, &[a0, a1]);
    s.step(a2, MISS, &[a0, a1, a2]);
    s.hits(a1, 1, &[a0, a1, a2]);
    // Order of last reads: a0, a2, a1, a3 → a0 goes.
    s.step(a3, MISS, &[a1, a2, a3]);
    s.hits(a2, 1, &[a1, a2, a3]);
    // Order of last reads: a1, a3, a2, a4 → a1 goes.
    s.step(a4, MISS, &[a2, a3, a4]);
    s.verify(&[a2, a3, a4], &[a0, a1]);
}

/// `lfu`: three chunks fit. The fewest reads go first, ties to the least recently read (`a1`
/// before `a3`, both read once: `lru` would drop `a0`), and the chunk just written is evicted
/// when it is the least used (`a4`). Survivors `{a0, a2, a3}`.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn lfu_evicts_the_least_often_read() {
    let _sweeps = shared();
    let names = Refs::load("cm-lfu").keys("air_temperature/");
    let [a0, a1, a2, a3, a4] = [0, 1, 2, 3, 4].map(|i| names[i].as_str());
    let capacity = three_of(&Refs::load("cm-lfu"), &[a0, a1, a2, a3, a4]);
    let mut s = Scenario::register(
        "cm-lfu",
        json!({"capacity_bytes": capacity, "eviction": "lfu"}),
    );
    s.step(a0, MISS, &[a0]);
    s.hits(a0, 2, &[a0]); // 3 reads
    s.step(a1, MISS, &[a0, a1]); // 1 read
    s.step(a2, MISS, &[a0, a1, a2]);
    s.hits(a2, 1, &[a0, a1, a2]); // 2 reads
                                  // Reads: a0 3, a1 1, a2 2, a3 1; a1 is the older of the two read once.
    s.step(a3, MISS, &[a0, a2, a3]);
    s.hits(a3, 2, &[a0, a2, a3]); // 3 reads
                                  // Reads: a0 3, a2 2, a3 3, a4 1: the chunk just written goes.
    s.step(a4, MISS, &[a0, a2, a3]);
    s.verify(&[a0, a2, a3], &[a1, a4]);
}

/// `size`: the largest goes first, however recently and often it was read. The capacity is
/// filled exactly first (at capacity nothing is evicted). Survivors: the surface chunk, two
/// precipitation chunks and the third-largest temperature chunk.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn size_evicts_the_largest() {
    let _sweeps = shared();
    let refs = Refs::load("cm-size");
    let temps = refs.by_size_desc("air_temperature/");
    let precips = refs.keys("precipitation/");
    let (large, medium, small) = (temps[0].as_str(), temps[1].as_str(), temps[2].as_str());
    let (p0, p1, surface) = (
        precips[0].as_str(),
        precips[1].as_str(),
        "surface_height/0.0",
    );
    assert!(
        refs.size(small) > refs.size(surface)
            && refs.size(surface) > refs.size(p0).max(refs.size(p1)),
        "premise: temperature chunks > surface chunk > precipitation chunks"
    );
    let capacity = refs.total(&[large, surface, p0, p1]);
    let mut s = Scenario::register(
        "cm-size",
        json!({"capacity_bytes": capacity, "eviction": "size"}),
    );
    s.step(large, MISS, &[large]);
    s.hits(large, 2, &[large]);
    s.step(surface, MISS, &[large, surface]);
    s.step(p0, MISS, &[large, surface, p0]);
    s.step(p1, MISS, &[large, surface, p0, p1]); // exactly at capacity: no eviction
    s.hits(large, 1, &[large, surface, p0, p1]); // most recent and most frequent
    s.step(medium, MISS, &[surface, p0, p1, medium]);
    // The older `medium` is now the largest, not the chunk just written.
    s.step(small, MISS, &[surface, p0, p1, small]);
    s.verify(&[surface, p0, p1, small], &[large, medium]);
}

/// `cost` (GDSF, H = L + reads × fetch ms / size): the two slow chunks (through the slow proxy,
/// +400 ms) survive although `x` is the oldest (`lru` would drop it) and `y` the largest (`size`
/// would drop it); the two fast chunks go, including `f1`, read twice (`lfu` would keep it).
/// Two evictions are needed (the excess is larger than either fast chunk).
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn cost_keeps_what_is_slow_to_fetch() {
    let _sweeps = shared();
    let refs = Refs::load("cm-cost");
    let temps = refs.by_size_desc("air_temperature/");
    let names = refs.keys("air_temperature/");
    let slow: Vec<&str> = temps
        .iter()
        .map(String::as_str)
        .filter(|k| refs.chunk(k).is_slow())
        .collect();
    let fast: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|k| !refs.chunk(k).is_slow())
        .collect();
    assert_eq!(
        slow.len(),
        2,
        "premise: two slow temperature chunks in refs/air-cm-cost.json"
    );
    assert!(refs
        .keys("")
        .iter()
        .all(|k| slow.contains(&k.as_str()) || !refs.chunk(k).is_slow()));
    let (y, x, f1, f2) = (slow[0], slow[1], fast[0], fast[1]);
    let excess = refs.size(f1).max(refs.size(f2)) + 1;
    assert!(
        refs.size(y) >= excess,
        "premise: the slow chunk read last is the largest"
    );
    let capacity = refs.total(&[x, f1, f2, y]) - excess;
    let mut s = Scenario::register(
        "cm-cost",
        json!({"capacity_bytes": capacity, "eviction": "cost"}),
    );
    s.step(x, MISS, &[x]);
    s.step(f1, MISS, &[x, f1]);
    s.hits(f1, 1, &[x, f1]);
    s.step(f2, MISS, &[x, f1, f2]);
    assert_fast_entries_are_cheap(&s, x, &[(f1, 2), (f2, 1)]);
    s.step(y, MISS, &[x, y]);
    let cached = cached_keys("cm-cost");
    for key in [x, y] {
        let fetch_ms = uint(&cached[key], "fetch_ms");
        assert!(
            fetch_ms >= slow_ms(),
            "{key} came through the slow proxy: fetch_ms {fetch_ms}"
        );
    }
    s.verify(&[x, y], &[f1, f2]);
}

/// The premise of the `cost` test, from the recorded fetch times: each fast entry's priority
/// (reads × fetch ms / size) is under half the slow one's, so loopback jitter cannot reorder them.
fn assert_fast_entries_are_cheap(s: &Scenario, slow: &str, fast: &[(&str, u64)]) {
    let cached = cached_keys(s.id);
    let fetch = |key: &str| uint(&cached[key], "fetch_ms").max(1);
    assert!(
        fetch(slow) >= slow_ms(),
        "{slow} came through the slow proxy: {}",
        cached[slow]
    );
    for &(key, reads) in fast {
        assert!(
            2 * reads * fetch(key) * s.refs.size(slow) < fetch(slow) * s.refs.size(key),
            "premise: the origin answered {key} fast (fetch_ms {} vs {} for {slow})",
            fetch(key),
            fetch(slow)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Admission

/// Include/exclude globs (whole key; `*` spans `/`, `?` one character) and size bounds: each
/// refused chunk is a MISS that reaches the origin every time and never gets an entry.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn admission_by_pattern_and_size() {
    let _sweeps = shared();
    let refs = Refs::load("cm-admit");
    let temps0 = refs.by_size_desc("air_temperature/0.");
    let precips = refs.by_size_desc("precipitation/");
    let between = |low: u64, high: u64| {
        assert!(
            high - low >= 2,
            "premise: a size strictly between {low} and {high}"
        );
        low + (high - low) / 2
    };
    let max_bytes = between(refs.size(&temps0[1]), refs.size(&temps0[0]));
    let (smallest, second) = (&precips[precips.len() - 1], &precips[precips.len() - 2]);
    let min_bytes = between(refs.size(smallest), refs.size(second));
    assert_ne!(
        temps0[0], "air_temperature/0.0.0",
        "premise: 0.0.0 is within max_bytes"
    );
    let mut s = Scenario::register(
        "cm-admit",
        json!({"admission": {
            "include": ["air_temperature/*", "precip*.0.0"],
            "exclude": ["air_temperature/1.?.?", "0.0.0"],
            "min_bytes": min_bytes,
            "max_bytes": max_bytes,
        }}),
    );
    let refused = [
        "surface_height/0.0",    // matches no include
        "air_temperature/1.0.0", // excluded by `air_temperature/1.?.?`
        temps0[0].as_str(),      // over max_bytes
        smallest.as_str(),       // under min_bytes
    ];
    // `0.0.0` excludes nothing (globs match whole keys); `precip*.0.0` spans the `/`.
    let admitted = [
        "air_temperature/0.0.0",
        temps0[1].as_str(),
        precips[0].as_str(),
    ];
    for key in refused {
        s.read_not_admitted(key);
    }
    for key in admitted {
        s.read(key, MISS);
    }
    s.settle(&admitted);
    for key in refused {
        s.read_not_admitted(key);
        s.chunk(key).wait_origin_requests(2);
    }
    for key in admitted {
        s.read(key, HIT);
        assert_eq!(s.chunk(key).origin_requests(), 1, "{key}");
    }
    s.settle(&admitted);
}

/// `min_fetch_ms`: a chunk the origin answers fast is not stored; a slow one (+400 ms) is.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn admission_by_fetch_time() {
    let _sweeps = shared();
    let refs = Refs::load("cm-admit-slow");
    let temps = refs.keys("air_temperature/");
    let slow = temps
        .iter()
        .find(|k| refs.chunk(k).is_slow())
        .expect("a slow chunk");
    let fast = temps
        .iter()
        .find(|k| !refs.chunk(k).is_slow())
        .expect("a fast chunk");
    let mut s = Scenario::register(
        "cm-admit-slow",
        json!({"admission": {"min_fetch_ms": slow_ms() / 2}}),
    );
    s.read_not_admitted(fast);
    s.read(slow, MISS);
    s.settle(&[slow]);
    s.read_not_admitted(fast);
    s.chunk(fast).wait_origin_requests(2);
    s.read(slow, HIT);
    s.settle(&[slow]);
    assert_eq!(s.chunk(slow).origin_requests(), 1);
    let fetch_ms = uint(&cached_keys("cm-admit-slow")[slow.as_str()], "fetch_ms");
    assert!(fetch_ms >= slow_ms() / 2, "fetch_ms {fetch_ms}");
}

// ---------------------------------------------------------------------------------------------
// Scheduled maintenance

/// Bytes in storage that no entry vouches for (entry hash and holders set deleted behind the
/// worker's back) are deleted by the cron once older than `ORPHAN_GRACE_SECONDS`: the next read
/// reaches the origin. The control chunk, damaged the same way but read before the sweep, shows
/// that without the sweep those bytes are served (adopted, which writes a live entry again, so
/// the sweep keeps them).
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn cron_deletes_orphaned_objects() {
    let _sweeps = exclusive();
    let (orphan, control) = ("air_temperature/0.0.0", "air_temperature/0.0.1");
    let mut s = Scenario::register("cm-orphan", json!({}));
    s.step(orphan, MISS, &[orphan]);
    s.step(control, MISS, &[orphan, control]);
    let stored = Instant::now();
    for key in [orphan, control] {
        let holders = format!("zec:v1:holders:{}", s.chunk(key).object_key());
        let members = index(&Command::new("SMEMBERS").arg(&holders));
        let member = format!("cm-orphan\n{key}");
        assert!(
            matches!(&members, Value::Array(items) if items.iter().any(|m| m.as_str() == Some(&member))),
            "{holders} holds {member:?}: {members:?}"
        );
        assert_eq!(
            index(&Command::new("DEL").arg(entry_key("cm-orphan", key))).as_int(),
            Some(1)
        );
        assert_eq!(index(&Command::new("DEL").arg(&holders)).as_int(), Some(1));
    }
    s.read(control, HIT);
    poll("the adopted entry", DEADLINE, || {
        exists(&entry_key("cm-orphan", control))
            .then_some(())
            .ok_or_else(|| "absent".to_owned())
    });
    let grace: u64 = stack_var("ZEC_ORPHAN_GRACE_SECONDS").parse().unwrap();
    std::thread::sleep(Duration::from_secs(grace + 1).saturating_sub(stored.elapsed()));
    run_cron();
    s.read(orphan, MISS);
    s.chunk(orphan).wait_origin_requests(2);
    s.read(control, HIT);
    assert_eq!(
        s.chunk(control).origin_requests(),
        1,
        "a live entry's object is kept"
    );
}

/// A capacity lowered by `PUT` is enforced by the cron (`lru`: the least recently read go until
/// the bytes fit exactly), then by `POST /api/admin/sweep`, whose report counts what it evicted.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn sweeps_enforce_a_lowered_capacity() {
    let _sweeps = exclusive();
    let refs = Refs::load("cm-shrink");
    let (temps, precips) = (refs.keys("air_temperature/"), refs.keys("precipitation/"));
    let [a0, a1, a2, a3] = [0, 1, 2, 3].map(|i| temps[i].as_str());
    let (p0, p1) = (precips[0].as_str(), precips[1].as_str());
    let mut s = Scenario::register("cm-shrink", json!({"eviction": "lru"}));
    let mut held = Vec::new();
    for key in [a0, a1, a2, a3, p0, p1] {
        held.push(key);
        s.step(key, MISS, &held);
    }
    s.hits(a0, 1, &held); // least recently read first: a1, a2, a3, p0, p1, a0
    assert_eq!(
        stats_row("cm-shrink").unwrap()["capacity_bytes"],
        Json::Null,
        "unbounded"
    );

    let first = refs.total(&[a3, p0, p1, a0]);
    s.reconfigure(&json!({"capacity_bytes": first}));
    run_cron();
    s.assert_keys(&[a3, p0, p1, a0]);
    assert_eq!(
        uint(&stats_row("cm-shrink").unwrap(), "capacity_bytes"),
        first
    );

    let second = refs.total(&[p0, p1, a0]);
    s.reconfigure(&json!({"capacity_bytes": second}));
    let (_, row) = sweep("cm-shrink");
    assert_eq!(uint(&row, "evicted"), 1, "{row}");
    assert_eq!(uint(&row, "objects_deleted"), 1, "{row}");
    assert_eq!(uint(&row, "bytes_freed"), refs.size(a3), "{row}");
    assert_eq!(uint(&row, "expired_removed"), 0, "{row}");
    s.assert_keys(&[p0, p1, a0]);
    s.verify(&[p0, p1, a0], &[a1, a2, a3]);

    // Each sweep recorded a snapshot of the dataset's stats, newest first.
    let (status, history) = get_json("/api/stats/history?dataset=cm-shrink");
    assert_eq!(status, 200, "{history}");
    let snapshots = history["snapshots"].as_array().unwrap();
    assert!(snapshots.len() >= 2, "{history}");
    assert_eq!(uint(&snapshots[0], "entries"), 3, "{history}");
    assert_eq!(uint(&snapshots[0], "bytes_stored"), second, "{history}");
    assert_eq!(uint(&snapshots[1], "entries"), 4, "{history}");
    assert!(uint(&snapshots[0], "at_ms") >= uint(&snapshots[1], "at_ms"));
}

/// Entries past their TTL are removed by the sweep: the report counts them, the dataset holds
/// nothing afterwards, and the next read is a MISS at the origin.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn sweep_removes_expired_entries() {
    let _sweeps = exclusive();
    let (k1, k2) = ("precipitation/0.0.0", "precipitation/1.0.0");
    let mut s = Scenario::register("cm-expire", json!({"ttl_seconds": 2}));
    s.step(k1, MISS, &[k1]);
    s.step(k2, MISS, &[k1, k2]);
    std::thread::sleep(Duration::from_secs(3));
    let (_, row) = sweep("cm-expire");
    assert_eq!(uint(&row, "expired_removed"), 2, "{row}");
    assert_eq!(uint(&row, "evicted"), 0, "{row}");
    s.assert_keys(&[]);
    s.read(k1, MISS);
    s.chunk(k1).wait_origin_requests(2);
}

// ---------------------------------------------------------------------------------------------
// Stats

/// A scripted workload (5 misses, 6 hits, inline and metadata reads, which are not counted)
/// and exactly what `/api/stats` and `/api/stats/keys` say about it.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn stats_count_the_workload_exactly() {
    let _sweeps = shared();
    let refs = Refs::load("cm-stats");
    let (temps, precips) = (refs.keys("air_temperature/"), refs.keys("precipitation/"));
    let [a0, a1, a2] = [0, 1, 2].map(|i| temps[i].as_str());
    let (p0, p1) = (precips[0].as_str(), precips[1].as_str());
    let all = [a0, a1, a2, p0, p1];
    let capacity = 1_000_000;
    assert!(refs.total(&refs.keys("").iter().map(String::as_str).collect::<Vec<_>>()) < capacity);
    let mut s = Scenario::register("cm-stats", json!({"capacity_bytes": capacity}));
    let before = stats_row("cm-stats").unwrap();
    if Counters::of(&before) == Counters::default() {
        assert_eq!(before["hit_ratio"], Json::Null, "no reads yet: {before}");
        assert_eq!(
            before["fetch_ms_p50"],
            Json::Null,
            "no entries yet: {before}"
        );
    }
    let mut checksums = BTreeMap::new();
    for (i, key) in all.iter().enumerate() {
        let answer = s.read(key, MISS);
        let checksum = content_checksum(&answer.body);
        assert_eq!(
            answer.header("etag"),
            Some(format!("\"{checksum}\"").as_str())
        );
        checksums.insert(*key, checksum);
        s.settle(&all[..=i]);
    }
    let hits = [a1, a0, p0, a0, p0, a0];
    for key in hits {
        s.read(key, HIT);
        s.settle(&all); // also spaces the reads so last-access times differ
    }
    for key in [
        "lat/0",
        ".zattrs",
        ".zgroup",
        "air_temperature/.zarray",
        ".zmetadata",
    ] {
        let answer = read("cm-stats", key);
        assert_eq!(answer.status, 200, "{key}");
        assert_ne!(answer.x_cache(), MISS, "{key}");
        assert_ne!(answer.x_cache(), HIT, "{key}");
    }
    assert_eq!(read("cm-stats", "lat/0").x_cache(), "INLINE");
    s.settle(&all); // inline and metadata reads are not counted

    let row = stats_row("cm-stats").unwrap();
    assert_counts(&row, &before, refs.total(&all), refs.total(&hits), capacity);
    assert_totals_add_up();

    let cached = cached_keys("cm-stats");
    let max_fetch = cached
        .values()
        .map(|row| uint(row, "fetch_ms"))
        .max()
        .unwrap();
    let (p50, p95) = (uint(&row, "fetch_ms_p50"), uint(&row, "fetch_ms_p95"));
    assert!(
        p50 <= p95 && p95 <= max_fetch,
        "p50 {p50} p95 {p95} max {max_fetch}"
    );
    let expected_hits = BTreeMap::from([(a0, 3), (a1, 1), (a2, 0), (p0, 2), (p1, 0)]);
    for key in all {
        assert_entry_row(
            s.chunk(key),
            &cached[key],
            expected_hits[key],
            &checksums[key],
        );
    }
    // Last reads: a0, p0, a1 (hits), then p1, a2 (misses); first reads in `all` order.
    assert_orders(&refs, [a0, p0, a1, p1, a2], all);
    assert_paging("dataset=cm-stats", &[a0, p0, a1, p1, a2]);
    let mut by_size = all;
    by_size.sort_by_key(|key| refs.size(key));
    assert_paging("dataset=cm-stats&sort=size&order=asc", &by_size);
    assert_stats_keys_errors();
}

/// The row of the stats test: 5 misses and 6 hits since `before`, 5 entries, capacity, ratio.
fn assert_counts(row: &Json, before: &Json, origin_bytes: u64, cache_bytes: u64, capacity: u64) {
    let delta = |field: &str| uint(row, field) - uint(before, field);
    assert_eq!((delta("misses"), delta("hits")), (5, 6), "{row}");
    assert_eq!(delta("bytes_from_origin"), origin_bytes, "{row}");
    assert_eq!(delta("bytes_from_cache"), cache_bytes, "{row}");
    assert_eq!(
        (delta("entries_written"), delta("bytes_written")),
        (5, origin_bytes),
        "{row}"
    );
    assert_eq!(
        (uint(row, "entries"), uint(row, "bytes_stored")),
        (5, origin_bytes),
        "{row}"
    );
    assert_eq!(
        (uint(row, "capacity_bytes"), row["eviction"].as_str()),
        (capacity, Some("lru"))
    );
    let (h, m) = (uint(row, "hits"), uint(row, "misses"));
    let ratio = f64::from(u32::try_from(h).unwrap()) / f64::from(u32::try_from(h + m).unwrap());
    let reported = row["hit_ratio"]
        .as_f64()
        .unwrap_or_else(|| panic!("hit_ratio in {row}"));
    assert!(
        (reported - ratio).abs() < 1e-9,
        "hit_ratio {reported}, expected {ratio}"
    );
}

/// `total` is the sum of the rows of the same answer.
fn assert_totals_add_up() {
    let stats = stats();
    let rows = stats["datasets"].as_array().unwrap();
    for field in ["entries", "bytes_stored"] {
        let sum: u64 = rows.iter().map(|row| uint(row, field)).sum();
        assert_eq!(uint(&stats["total"], field), sum, "total {field}: {stats}");
    }
    let capacity = &stats["total"]["capacity_bytes"];
    assert!(capacity.is_null() || capacity.is_u64(), "{capacity}");
}

/// One `/api/stats/keys` row: size, hits, times, checksum and storage key as the read showed.
fn assert_entry_row(chunk: &Chunk, row: &Json, hits: u64, checksum: &str) {
    assert_eq!(uint(row, "size"), chunk.length, "{row}");
    assert_eq!(uint(row, "hits"), hits, "{row}");
    let (created, last, expires) = (
        uint(row, "created_ms"),
        uint(row, "last_access_ms"),
        uint(row, "expires_ms"),
    );
    let now = now_ms();
    assert!(created <= last && last <= now + 60_000, "{row}");
    assert!(
        expires > now && expires <= now + 86_400_000 + 60_000,
        "default TTL 1 day: {row}"
    );
    assert!(row["fetch_ms"].is_u64(), "{row}");
    assert_eq!(row["checksum"].as_str(), Some(checksum), "{row}");
    assert_eq!(
        row["object_key"].as_str(),
        Some(chunk.object_key().as_str()),
        "{row}"
    );
}

/// The keys of one `/api/stats/keys` page, after checking the echo of `sort` and `order`.
fn page_keys(query: &str, sort: &str, order: &str) -> (Vec<Json>, Json) {
    let answer = stats_keys(query);
    assert_eq!(answer.status, 200, "{query}: {}", answer.text());
    let page = answer.json();
    assert_eq!(page["dataset"], "cm-stats", "{page}");
    assert_eq!(
        (page["sort"].as_str(), page["order"].as_str()),
        (Some(sort), Some(order)),
        "{query}"
    );
    (
        page["keys"].as_array().unwrap().clone(),
        page["next_cursor"].clone(),
    )
}

fn assert_orders(refs: &Refs, by_last_access: [&str; 5], by_created: [&str; 5]) {
    let names = |rows: &[Json]| -> Vec<String> {
        rows.iter()
            .map(|row| row["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let (rows, _) = page_keys("dataset=cm-stats", "last_access", "desc");
    assert_eq!(names(&rows), by_last_access, "default: last_access desc");
    let (rows, _) = page_keys("dataset=cm-stats&sort=created&order=asc", "created", "asc");
    assert_eq!(names(&rows), by_created);
    let (rows, _) = page_keys("dataset=cm-stats&sort=hits&order=desc", "hits", "desc");
    let hits: Vec<u64> = rows.iter().map(|row| uint(row, "hits")).collect();
    assert_eq!(hits, [3, 2, 1, 0, 0]);
    assert_eq!(names(&rows)[..3], by_last_access[..3]);
    let (rows, _) = page_keys("dataset=cm-stats&sort=size&order=asc", "size", "asc");
    let sizes: Vec<u64> = rows.iter().map(|row| uint(row, "size")).collect();
    let mut sorted: Vec<u64> = by_created.iter().map(|key| refs.size(key)).collect();
    sorted.sort_unstable();
    assert_eq!(sizes, sorted);
    let (rows, _) = page_keys(
        "dataset=cm-stats&sort=fetch_ms&order=desc",
        "fetch_ms",
        "desc",
    );
    let fetch: Vec<u64> = rows.iter().map(|row| uint(row, "fetch_ms")).collect();
    assert!(
        fetch.windows(2).all(|w| w[0] >= w[1]),
        "fetch_ms desc: {fetch:?}"
    );
}

/// Pages of 2 (and of 1) following `next_cursor` give every key once, in `expected` order.
fn assert_paging(query: &str, expected: &[&str]) {
    for limit in [1, 2] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..=expected.len() + 1 {
            let mut page_query = format!("{query}&limit={limit}");
            if let Some(cursor) = &cursor {
                page_query = format!("{page_query}&cursor={}", encode(cursor));
            }
            let answer = stats_keys(&page_query);
            assert_eq!(answer.status, 200, "{page_query}: {}", answer.text());
            let page = answer.json();
            let rows = page["keys"].as_array().unwrap();
            assert!(rows.len() <= limit, "{page_query}: {page}");
            seen.extend(
                rows.iter()
                    .map(|row| row["key"].as_str().unwrap().to_owned()),
            );
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        assert!(
            cursor.is_none(),
            "{query} limit {limit}: paging does not end"
        );
        assert_eq!(seen, expected, "{query} limit {limit}");
    }
}

fn assert_stats_keys_errors() {
    let cases = [
        ("dataset=cm-no-such-dataset", 404),
        ("dataset=cm-stats&sort=colour", 400),
        ("dataset=cm-stats&order=sideways", 400),
        ("dataset=cm-stats&limit=0", 400),
        ("dataset=cm-stats&limit=many", 400),
    ];
    for (query, status) in cases {
        let answer = stats_keys(query);
        assert_eq!(answer.status, status, "{query}: {}", answer.text());
        assert!(
            answer.json()["error"].is_string(),
            "{query}: {}",
            answer.text()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Admin API

/// Every admin path refuses a missing or non-Bearer `Authorization` (401, `WWW-Authenticate:
/// Bearer`) and a wrong token (403) before anything else, and a refused call changes nothing.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn admin_api_refuses_missing_and_wrong_tokens() {
    let _sweeps = shared();
    let key = "air_temperature/0.0.0";
    let mut s = Scenario::register("cm-auth", json!({}));
    s.step(key, MISS, &[key]);
    s.hits(key, 1, &[key]);
    let listed = listed_dataset("cm-auth").expect("cm-auth listed");
    let intruder = dataset_config("cm-auth-intruder", &json!({})).to_string();
    let calls: [(&str, &str, Option<String>); 8] = [
        (
            "POST",
            "/api/admin/purge",
            Some(json!({"dataset": "cm-auth"}).to_string()),
        ),
        ("POST", "/api/admin/purge", Some("not json".to_owned())),
        (
            "POST",
            "/api/admin/warm",
            Some(json!({"dataset": "cm-auth", "prefix": ""}).to_string()),
        ),
        ("POST", "/api/admin/sweep", None),
        ("GET", "/api/admin/datasets", None),
        (
            "PUT",
            "/api/admin/datasets/cm-auth-intruder",
            Some(intruder),
        ),
        ("DELETE", "/api/admin/datasets/cm-auth", None),
        ("GET", "/api/admin/no-such-endpoint", None),
    ];
    let wrong = format!("Bearer {}x", admin_token());
    let other_scheme = format!("Token {}", admin_token());
    let refusals: [(Option<&str>, u16); 5] = [
        (None, 401),
        (Some("Basic YWRtaW46YWRtaW4="), 401),
        (Some(&other_scheme), 401),
        (Some("Bearer wrong-token"), 403),
        (Some(&wrong), 403),
    ];
    for (method, path, body) in &calls {
        for (authorization, status) in &refusals {
            let headers: Vec<(&str, &str)> = authorization
                .iter()
                .map(|a| ("Authorization", *a))
                .collect();
            let answer = send(&worker(), method, path, &headers, body.as_deref());
            let what = format!("{method} {path} with {authorization:?}");
            assert_eq!(answer.status, *status, "{what}: {}", answer.text());
            assert!(
                answer.json()["error"].is_string(),
                "{what}: {}",
                answer.text()
            );
            if *status == 401 {
                let challenge = answer.header("www-authenticate").unwrap_or_default();
                assert!(
                    challenge.starts_with("Bearer"),
                    "{what}: WWW-Authenticate {challenge:?}"
                );
            }
        }
    }
    s.read(key, HIT);
    assert_eq!(s.chunk(key).origin_requests(), 1);
    s.settle(&[key]); // not purged, nothing warmed
    assert_eq!(listed_dataset("cm-auth"), Some(listed), "cm-auth unchanged");
    assert_eq!(
        listed_dataset("cm-auth-intruder"),
        None,
        "no dataset created"
    );
    assert_eq!(read("cm-auth-intruder", key).status, 404);
}

/// Purge by key, by prefix and of a whole dataset: entries and objects go (no entry hash, no
/// holders set, out of `/api/stats/keys`, `entries`/`bytes_stored` down), the report counts
/// them, and the next read is a MISS at the origin; keys outside the purge stay HIT.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn purge_by_key_prefix_and_dataset() {
    let _sweeps = shared();
    let (t0, t1, t2) = (
        "air_temperature/0.0.0",
        "air_temperature/0.0.1",
        "air_temperature/1.0.0",
    );
    let (p0, p1, sh) = (
        "precipitation/0.0.0",
        "precipitation/1.0.0",
        "surface_height/0.0",
    );
    let mut s = Scenario::register("cm-purge", json!({}));
    let mut held = Vec::new();
    for key in [t0, t1, t2, p0, p1, sh] {
        held.push(key);
        s.step(key, MISS, &held);
    }
    let purge = |body: Json, removed: &[&str], s: &Scenario| {
        let report = admin_ok("POST", "/api/admin/purge", Some(&body));
        assert_eq!(report["dataset"], "cm-purge", "{report}");
        assert_eq!(
            uint(&report, "entries_removed"),
            removed.len() as u64,
            "{body}: {report}"
        );
        assert_eq!(
            uint(&report, "objects_deleted"),
            removed.len() as u64,
            "{body}: {report}"
        );
        assert_eq!(
            uint(&report, "bytes_freed"),
            s.refs.total(removed),
            "{body}: {report}"
        );
        for key in removed {
            assert!(
                !exists(&entry_key("cm-purge", key)),
                "entry of {key} after {body}"
            );
            let holders = format!("zec:v1:holders:{}", s.chunk(key).object_key());
            assert!(!exists(&holders), "{holders} after {body}");
        }
    };

    purge(json!({"dataset": "cm-purge", "key": t0}), &[t0], &s);
    s.assert_keys(&[t1, t2, p0, p1, sh]);
    s.read(t0, MISS);
    s.chunk(t0).wait_origin_requests(2);
    s.settle_keys(&[t1, t2, p0, p1, sh, t0]);

    purge(
        json!({"dataset": "cm-purge", "prefix": "air_temperature/"}),
        &[t0, t1, t2],
        &s,
    );
    s.assert_keys(&[p0, p1, sh]);
    s.read(p0, HIT);
    s.read(t1, MISS);
    s.chunk(t1).wait_origin_requests(2);
    s.settle_keys(&[p0, p1, sh, t1]);

    purge(json!({"dataset": "cm-purge"}), &[p0, p1, sh, t1], &s);
    s.assert_keys(&[]);
    s.read(sh, MISS);
    s.chunk(sh).wait_origin_requests(2);
}

/// Warm stores the matching ranged keys before it answers (concurrency 4), skips what is
/// cached, and afterwards every key is a HIT with one origin request each.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn warm_fetches_each_matching_key_once() {
    let _sweeps = shared();
    let refs = Refs::load("cm-warm");
    let temps = refs.keys("air_temperature/");
    let temps: Vec<&str> = temps.iter().map(String::as_str).collect();
    let mut s = Scenario::register("cm-warm", json!({}));
    s.step(temps[0], MISS, &temps[..1]);
    let warm = |body: Json| {
        let summary = admin_ok("POST", "/api/admin/warm", Some(&body));
        assert_eq!(summary["dataset"], "cm-warm", "{summary}");
        assert_eq!(uint(&summary, "failed"), 0, "{summary}");
        assert_eq!(summary["failures"], json!([]), "{summary}");
        summary
    };
    let body = json!({"dataset": "cm-warm", "prefix": "air_temperature/", "concurrency": 4});
    let first = warm(body.clone());
    let counts = |summary: &Json| ["matched", "fetched", "skipped"].map(|f| uint(summary, f));
    let n = temps.len() as u64;
    assert_eq!(counts(&first), [n, n - 1, 1], "{first}");
    s.assert_keys(&temps); // stored before the answer
    for key in &temps {
        assert_eq!(s.chunk(key).origin_requests(), 1, "{key}");
    }
    let second = warm(body);
    assert_eq!(counts(&second), [n, 0, n], "{second}");
    for key in &temps {
        s.read(key, HIT);
        assert_eq!(s.chunk(key).origin_requests(), 1, "{key}");
    }

    // A glob and a limit: three precipitation chunks, nothing else.
    let third =
        warm(json!({"dataset": "cm-warm", "pattern": "precip*", "limit": 3, "concurrency": 2}));
    assert_eq!(
        (uint(&third, "fetched"), uint(&third, "skipped")),
        (3, 0),
        "{third}"
    );
    let precips: Vec<String> = cached_keys("cm-warm")
        .into_keys()
        .filter(|key| key.starts_with("precipitation/"))
        .collect();
    assert_eq!(precips.len(), 3, "{precips:?}");
    for key in &precips {
        assert_eq!(s.chunk(key).origin_requests(), 1, "{key}");
    }
}

/// A dataset created by `PUT` is listed as `runtime`, serves keys at once on the worker that
/// took the call and on the other within a few seconds; a second `PUT` replaces it (200); bad
/// configurations are refused (400) without creating anything; `DELETE` removes it everywhere
/// and purges its cache; a static dataset cannot be deleted (409).
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn runtime_datasets_come_and_go() {
    let _sweeps = shared();
    let (id, key) = ("cm-runtime", "air_temperature/0.0.0");
    let refs = Refs::load(id);
    let chunk = refs.chunk(key);
    let path = format!("/api/admin/datasets/{id}");
    let gone = admin("DELETE", &path, None);
    assert!(matches!(gone.status, 200 | 404), "{}", gone.text());
    assert_eq!(listed_dataset(id), None);

    let config = dataset_config(id, &json!({"description": "first"}));
    assert_eq!(put_dataset(id, &config).status, 201);
    let listed = listed_dataset(id).expect("listed after PUT");
    assert_eq!(
        (listed["source"].as_str(), &listed["config"]["refs"]),
        (Some("runtime"), &config["refs"])
    );
    assert_eq!(listed_dataset("air").expect("air")["source"], "static");
    let first = read(id, key);
    assert_eq!(
        (first.status, first.x_cache()),
        (200, MISS),
        "{}",
        first.text()
    );
    let other = stack_var("ZEC_BASE_URL_2");
    let zgroup = format!("/zarr/{id}/.zgroup");
    let appears = || match send(&other, "GET", &zgroup, &[], None).status {
        200 => Ok(()),
        status => Err(format!("{status}")),
    };
    poll("the dataset on worker 2", Duration::from_secs(10), appears);
    let there = send(&other, "GET", &format!("/zarr/{id}/{key}"), &[], None);
    assert_eq!((there.status, &there.body), (200, &first.body));

    let replaced = put_dataset(id, &dataset_config(id, &json!({"description": "second"})));
    assert_eq!(replaced.status, 200, "{}", replaced.text());
    assert_eq!(
        listed_dataset(id).unwrap()["config"]["description"],
        "second"
    );
    assert_refused_configurations();

    poll("the entry", DEADLINE, || {
        exists(&entry_key(id, key))
            .then_some(())
            .ok_or_else(|| "absent".to_owned())
    });
    assert_eq!(admin("DELETE", &path, None).status, 200);
    assert!(!exists(&entry_key(id, key)), "DELETE purges the cache");
    assert_eq!(read(id, key).status, 404);
    assert_eq!(admin("DELETE", &path, None).status, 404);
    assert_eq!(listed_dataset(id), None);
    let disappears = || match send(&other, "GET", &zgroup, &[], None).status {
        404 => Ok(()),
        status => Err(format!("{status}")),
    };
    poll(
        "the deletion on worker 2",
        Duration::from_secs(10),
        disappears,
    );

    let static_delete = admin("DELETE", "/api/admin/datasets/air", None);
    assert_eq!(static_delete.status, 409, "{}", static_delete.text());
    assert_eq!(read("air", ".zgroup").status, 200);
    assert_eq!(
        admin("DELETE", "/api/admin/datasets/cm-never-was", None).status,
        404
    );

    // The purge deleted the stored bytes: created again, the dataset reads from the origin.
    let before = chunk.origin_requests();
    assert_eq!(put_dataset(id, &config).status, 201);
    assert_eq!(read(id, key).x_cache(), MISS);
    chunk.wait_origin_requests(before + 1);
}

fn assert_refused_configurations() {
    let refs = format!("{}/refs/air-cm-runtime.json", stack_var("ZEC_ORIGIN_URL"));
    let bodies = [
        "not json".to_owned(),
        json!({"refs": 5}).to_string(),
        json!({"description": "no refs"}).to_string(),
        json!({"refs": refs, "eviction": "fifo"}).to_string(),
        json!({"refs": refs, "capacity_bytes": -1}).to_string(),
        json!({"refs": refs, "admission": {"min_bytes": "big"}}).to_string(),
    ];
    let auth = format!("Bearer {}", admin_token());
    for body in &bodies {
        let answer = send(
            &worker(),
            "PUT",
            "/api/admin/datasets/cm-runtime-bad",
            &[("Authorization", &auth)],
            Some(body),
        );
        assert_eq!(answer.status, 400, "{body}: {}", answer.text());
        assert!(
            answer.json()["error"].is_string(),
            "{body}: {}",
            answer.text()
        );
    }
    assert_eq!(listed_dataset("cm-runtime-bad"), None);
    assert_eq!(read("cm-runtime-bad", ".zgroup").status, 404);
}
