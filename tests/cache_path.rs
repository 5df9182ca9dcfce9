//! The cache path on the real stack: `wrangler dev` (two instances sharing local R2), Redis
//! behind `upstash-local`, nginx as the origin (its access log counts range requests).
//! `scripts/test` runs it twice: on the R2 workers, then on two workers whose chunk store is S3
//! (s3s-fs), with `ZEC_KEY_PREFIX` and `ZEC_AIR_COPY` naming that pass's keys and origin file.
//!
//! Each test reads its own chunk of the `air` references through its own dataset alias (see
//! `scripts/test`: `t-*` datasets, edge tier off except `t-edge`), so tests can run in parallel
//! and origin requests can be counted per chunk.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{agent, send, stack_var, Answer, UreqTransport};
use futures::executor::block_on;
use zarr_edge_cache::index::transport::UpstashTransport;
use zarr_edge_cache::upstash::{decode_single, Command, HttpCall, Value};

/// A chunk of the demo `air` references: its key and origin range.
struct Chunk {
    key: String,
    offset: u64,
    length: u64,
}

fn chunk(key: &str) -> Chunk {
    let path = PathBuf::from(stack_var("ZEC_STATE_DIR")).join("demo/refs/air.json");
    let refs: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let reference = &refs["refs"][key];
    Chunk {
        key: key.to_owned(),
        offset: reference[1].as_u64().unwrap(),
        length: reference[2].as_u64().unwrap(),
    }
}

impl Chunk {
    /// Origin requests for exactly this range so far (nginx access log).
    fn origin_requests(&self) -> usize {
        // `GET /air.nc ` exactly: other tests read copies of these references whose URLs carry
        // a query string (`/air.nc?copy=…`), with the same ranges.
        common::origin_requests(&origin_path(), self.offset, self.length)
    }
}

/// The origin file this pass's datasets read: `air.nc`, or the copy `air.nc?copy=X` for the
/// S3-storage pass (`ZEC_AIR_COPY`), whose origin requests are then its own.
fn origin_path() -> String {
    match std::env::var("ZEC_AIR_COPY") {
        Ok(copy) if !copy.is_empty() => format!("air.nc?copy={copy}"),
        _ => "air.nc".to_owned(),
    }
}

/// The index key prefix of the workers under test (`KEY_PREFIX`; `zec` unless the pass says).
fn key_prefix() -> String {
    std::env::var("ZEC_KEY_PREFIX").unwrap_or_else(|_| "zec".to_owned())
}

fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(base, "GET", path, headers, None)
}

fn worker() -> String {
    stack_var("ZEC_BASE_URL")
}

fn index(command: &Command) -> Value {
    let call = HttpCall::single(&stack_var("ZEC_UPSTASH_TOKEN"), command);
    let raw = block_on(UreqTransport::new(&stack_var("ZEC_UPSTASH_URL")).send(&call)).unwrap();
    decode_single(raw.status, &raw.body).unwrap()
}

/// The field of the index entry for `key` of `dataset`.
fn entry_field(dataset: &str, key: &str, field: &str) -> Option<String> {
    let value = index(
        &Command::new("HGET")
            .arg(format!("{}:v1:entry:{dataset}:{key}", key_prefix()))
            .arg(field),
    );
    value.as_str().map(str::to_owned)
}

/// Write-back runs after the response: poll until the index entry appears.
fn wait_for_entry(dataset: &str, key: &str) {
    for _ in 0..100 {
        if entry_field(dataset, key, "size").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no index entry for {dataset}/{key} after 5 s");
}

/// Waits (at most 5 s) until the entry's `field` is `want`: a hit answered from storage alone
/// is counted by its lookup after the response.
fn wait_for_field(dataset: &str, key: &str, field: &str, want: &str) {
    for _ in 0..100 {
        if entry_field(dataset, key, field).as_deref() == Some(want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{dataset}/{key}: {field} is {:?} after 5 s, want {want}",
        entry_field(dataset, key, field)
    );
}

/// Cold read is a MISS with one origin range request; the index then holds the entry with its
/// size, count and TTL; the second read is a HIT with identical bytes and no new origin request.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn cold_miss_then_warm_hit() {
    let c = chunk("air_temperature/0.0.0");
    let path = format!("/zarr/t-misshit/{}", c.key);
    let cold = get(&worker(), &path, &[]);
    assert_eq!(cold.status, 200);
    assert_eq!(cold.header("x-cache"), Some("MISS"));
    assert_eq!(cold.body.len() as u64, c.length);
    assert_eq!(c.origin_requests(), 1);
    wait_for_entry("t-misshit", &c.key);
    assert_eq!(
        entry_field("t-misshit", &c.key, "size"),
        Some(c.length.to_string())
    );
    assert_eq!(entry_field("t-misshit", &c.key, "hits"), Some("0".into()));
    let ttl =
        index(&Command::new("PTTL").arg(format!("{}:v1:entry:t-misshit:{}", key_prefix(), c.key)))
            .as_int()
            .unwrap();
    assert!(
        (3_500_000..=3_600_000).contains(&ttl),
        "PTTL {ttl} (dataset TTL is 1 h)"
    );

    let warm = get(&worker(), &path, &[]);
    assert_eq!(warm.status, 200);
    assert_eq!(warm.header("x-cache"), Some("HIT"));
    assert_eq!(warm.body, cold.body);
    assert_eq!(warm.header("etag"), cold.header("etag"));
    // Answered from storage alone: no index wait before the answer.
    assert!(warm
        .header("server-timing")
        .is_some_and(|t| t.contains("index;dur=0,")));
    assert_eq!(c.origin_requests(), 1, "a hit must not reach the origin");
    wait_for_field("t-misshit", &c.key, "hits", "1");
}

/// After the dataset's TTL (2 s) the entry has expired and the next read is a MISS again.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn expired_entry_is_a_miss_again() {
    let c = chunk("air_temperature/0.0.1");
    let path = format!("/zarr/t-ttl/{}", c.key);
    assert_eq!(get(&worker(), &path, &[]).header("x-cache"), Some("MISS"));
    wait_for_entry("t-ttl", &c.key);
    assert_eq!(get(&worker(), &path, &[]).header("x-cache"), Some("HIT"));
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(entry_field("t-ttl", &c.key, "size"), None, "entry expired");
    assert_eq!(get(&worker(), &path, &[]).header("x-cache"), Some("MISS"));
    assert_eq!(c.origin_requests(), 2);
}

/// 50 concurrent cold reads of one key, spread over two worker processes sharing the index and
/// the storage, reach the origin once; every reader gets the same bytes.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn concurrent_cold_reads_on_two_workers_fetch_once() {
    let c = chunk("air_temperature/1.0.0");
    let bases = [worker(), stack_var("ZEC_BASE_URL_2")];
    let path = format!("/zarr/t-concurrent/{}", c.key);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (base, path, barrier) = (bases[i % 2].clone(), path.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                get(&base, &path, &[])
            })
        })
        .collect();
    let answers: Vec<Answer> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for answer in &answers {
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, answers[0].body);
    }
    // What each worker answered, for a failure to say which path fetched twice.
    let seen: Vec<String> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let header = |name| a.header(name).unwrap_or("-");
            format!(
                "worker {} {} ({})",
                i % 2 + 1,
                header("x-cache"),
                header("server-timing")
            )
        })
        .collect();
    assert_eq!(
        c.origin_requests(),
        1,
        "one origin request for 50 readers; the answers: {seen:#?}"
    );
}

/// `ETag` and `If-None-Match` → 304; `Range` → 206 with `Content-Range`; past the end → 416; `HEAD` has
/// the length and no body.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn conditional_and_range_requests() {
    let c = chunk("air_temperature/1.0.1");
    let path = format!("/zarr/t-http/{}", c.key);
    let full = get(&worker(), &path, &[]);
    let etag = full.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    wait_for_entry("t-http", &c.key);
    for _ in 0..2 {
        let not_modified = get(&worker(), &path, &[("If-None-Match", &etag)]);
        assert_eq!(not_modified.status, 304);
        assert!(not_modified.body.is_empty());
        let part = get(&worker(), &path, &[("Range", "bytes=10-19")]);
        assert_eq!(part.status, 206);
        assert_eq!(part.body, &full.body[10..20]);
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes 10-19/{}", c.length).as_str())
        );
        let beyond_end = get(
            &worker(),
            &path,
            &[("Range", &format!("bytes={}-", c.length))],
        );
        assert_eq!(beyond_end.status, 416);
    }
    let head = agent()
        .head(&format!("{}{path}", worker()))
        .header("Accept-Encoding", "identity")
        .call()
        .unwrap();
    assert_eq!(
        head.headers()
            .get("content-length")
            .unwrap()
            .to_str()
            .unwrap(),
        c.length.to_string()
    );
    let inline = get(&worker(), "/zarr/t-http/lat/0", &[]);
    assert_eq!(inline.header("x-cache"), Some("INLINE"));
}

/// With the edge tier on, a repeated read is answered from the Workers Cache API (`EDGE`).
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn edge_tier_answers_repeated_reads() {
    let c = chunk("air_temperature/1.1.0");
    let path = format!("/zarr/t-edge/{}", c.key);
    let first = get(&worker(), &path, &[]);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let mut source = None;
    for _ in 0..50 {
        let again = get(&worker(), &path, &[]);
        assert_eq!(again.body, first.body);
        source = again.header("x-cache").map(str::to_owned);
        if source.as_deref() == Some("EDGE") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(source.as_deref(), Some("EDGE"));
    assert_eq!(c.origin_requests(), 1);
}
