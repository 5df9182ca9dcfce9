//! Fronting xpublish and Zarr stores over HTTP, on the real stack (`scripts/test`): a real
//! xpublish (xpublish-zarr, xpublish-edr) under uvicorn behind `t-xp`, its bad-origin test routes
//! behind `t-bad-*`. What reaches xpublish is read from its access log (`ZEC_XPUBLISH_LOG`).
//!
//! - a second pass over every chunk of `t-xp` sends xpublish no chunk request;
//! - 50 concurrent cold reads of one chunk through two worker instances reach xpublish once;
//! - routes: the same request with its query written another way is a HIT, a POST and a request
//!   with credentials pass through uncached, a 500 is a 502 and is never cached;
//! - hostile origins (HTML, malformed `zarr.json`, 300 MiB, a redirect elsewhere, a stall, a body
//!   cut short) answer a clear JSON error and nothing is stored.
//!
//! The integration tests are `#[ignore]`d so that a bare `cargo test` never needs the stack.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{get_json, send, stack_var, Answer};

/// Requests in xpublish's access log whose request line contains `part`.
fn xpublish_requests(part: &str) -> usize {
    std::fs::read_to_string(stack_var("ZEC_XPUBLISH_LOG"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(part))
        .count()
}

fn get(base: &str, path: &str) -> Answer {
    send(base, "GET", path, &[], None)
}

/// Every chunk key of every array in `t-xp`'s consolidated `zarr.json`, from its chunk grid.
fn chunk_keys(document: &serde_json::Value) -> Vec<String> {
    let metadata = document["consolidated_metadata"]["metadata"]
        .as_object()
        .expect("zarr.json has consolidated metadata");
    let mut keys = Vec::new();
    for (path, node) in metadata {
        if node["node_type"] != "array" {
            continue;
        }
        let numbers = |v: &serde_json::Value| -> Vec<u64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap())
                .collect()
        };
        let shape = numbers(&node["shape"]);
        let chunks = numbers(&node["chunk_grid"]["configuration"]["chunk_shape"]);
        let counts: Vec<u64> = shape
            .iter()
            .zip(&chunks)
            .map(|(s, c)| s.div_ceil(*c))
            .collect();
        let mut index = vec![0u64; counts.len()];
        'walk: loop {
            let parts: Vec<String> = index.iter().map(u64::to_string).collect();
            keys.push(format!("{path}/c/{}", parts.join("/")));
            let mut dim = counts.len();
            loop {
                if dim == 0 {
                    break 'walk;
                }
                dim -= 1;
                index[dim] += 1;
                if index[dim] < counts[dim] {
                    break;
                }
                index[dim] = 0;
            }
        }
    }
    keys
}

/// The chunk the concurrency test reads cold (no other test reads it).
const CONCURRENT_KEY: &str = "precipitation/c/3/1/0";

/// A second pass over every chunk of `t-xp` is all HITs and sends xpublish no chunk request
/// (the metadata check every 2 s still reads `zarr.json`, and finds it unchanged).
#[test]
#[ignore = "needs the stack from scripts/test"]
fn a_second_pass_sends_xpublish_no_chunk_request() {
    let base = stack_var("ZEC_BASE_URL");
    let document = get(&base, "/zarr/t-xp/zarr.json");
    assert_eq!(document.status, 200, "{}", document.text());
    let keys: Vec<String> = chunk_keys(&document.json())
        .into_iter()
        .filter(|k| k != CONCURRENT_KEY)
        .collect();
    assert!(keys.len() > 10, "{keys:?}");
    let mut first = Vec::new();
    for key in &keys {
        let answer = get(&base, &format!("/zarr/t-xp/{key}"));
        assert_eq!(answer.status, 200, "{key}: {}", answer.text());
        first.push(answer.body);
    }
    let chunk_lines = || {
        keys.iter()
            .map(|k| xpublish_requests(&format!("GET /datasets/air/zarr/{k} ")))
            .sum::<usize>()
    };
    // Write-backs run after the answers: wait until every key is a HIT once.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = chunk_lines();
    assert!(
        before >= keys.len(),
        "{before} chunk requests for {} keys",
        keys.len()
    );
    for (key, bytes) in keys.iter().zip(&first) {
        let answer = get(&base, &format!("/zarr/t-xp/{key}"));
        assert_eq!((answer.status, answer.x_cache()), (200, "HIT"), "{key}");
        assert_eq!(&answer.body, bytes, "{key}: the same bytes");
    }
    assert_eq!(chunk_lines(), before, "the second pass reached xpublish");
}

/// 50 concurrent cold reads of one chunk, half through each worker instance, reach xpublish
/// once, and every reader gets the same bytes.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn concurrent_cold_reads_reach_xpublish_once() {
    let bases = [stack_var("ZEC_BASE_URL"), stack_var("ZEC_BASE_URL_2")];
    let path = format!("/zarr/t-xp/{CONCURRENT_KEY}");
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..50)
            .map(|i| {
                let (base, path) = (&bases[i % 2], &path);
                scope.spawn(move || get(base, path))
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.body, answers[0].body);
    }
    let line = format!("GET /datasets/air/zarr/{CONCURRENT_KEY} ");
    assert_eq!(
        xpublish_requests(&line),
        1,
        "xpublish computed the chunk once"
    );
}

/// Routes: a listed GET is cached under its canonical query (the same request written another
/// way is a HIT, with the origin's content type); a POST and a GET with credentials pass
/// through; a real EDR query is cached too; a 500 is a 502 and never cached.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn routes_are_cached_by_canonical_query() {
    let base = stack_var("ZEC_BASE_URL");
    let first = get(&base, "/routes/t-xp/echo/cached/a?b=2&a=1&tag=routes");
    assert_eq!(
        (first.status, first.x_cache()),
        (200, "MISS"),
        "{}",
        first.text()
    );
    assert!(first
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let again = get(&base, "/routes/t-xp/echo/cached/a?tag=routes&a=1&b=2");
    assert_eq!(
        (again.status, again.x_cache()),
        (200, "HIT"),
        "{}",
        again.text()
    );
    assert_eq!(
        again.body, first.body,
        "the cached answer (its request count unchanged)"
    );
    assert!(again
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/json"));
    assert_eq!(xpublish_requests("/datasets/air/echo/cached/a?"), 1);

    let posted = send(
        &base,
        "POST",
        "/routes/t-xp/echo/cached/a?tag=routes",
        &[],
        Some("{\"q\": 1}"),
    );
    assert_eq!(
        (posted.status, posted.x_cache()),
        (200, "PASS"),
        "{}",
        posted.text()
    );
    assert_eq!(posted.json()["method"], "POST");
    assert!(
        posted.text().contains("\\\"q\\\""),
        "the body passed on: {}",
        posted.text()
    );
    let with_credentials = send(
        &base,
        "GET",
        "/routes/t-xp/echo/cached/a?b=2&a=1&tag=routes",
        &[("Authorization", "Bearer someone")],
        None,
    );
    assert_eq!(with_credentials.x_cache(), "PASS");
    assert_eq!(xpublish_requests("/datasets/air/echo/cached/a?"), 3);

    let edr = "/routes/t-xp/edr/position?coords=POINT(10%2020)&parameter-name=air_temperature";
    let edr_first = get(&base, edr);
    assert_eq!(edr_first.status, 200, "{}", edr_first.text());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let reordered = "/routes/t-xp/edr/position?parameter-name=air_temperature&coords=POINT(10+20)";
    let edr_again = get(&base, reordered);
    assert_eq!((edr_again.status, edr_again.x_cache()), (200, "HIT"));
    assert_eq!(edr_again.body, edr_first.body);
    assert_eq!(
        edr_again.header("content-type"),
        edr_first.header("content-type")
    );

    for _ in 0..2 {
        let failed = get(&base, "/routes/t-xp/fail/x");
        assert_eq!(failed.status, 502, "{}", failed.text());
        assert_eq!(failed.json()["error"], "origin_error");
    }
    assert_eq!(
        xpublish_requests("GET /datasets/air/fail/x "),
        2,
        "never cached"
    );
}

/// Hostile origins answer a clear JSON error naming the dataset and key, and nothing of theirs
/// is stored.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn hostile_origins_answer_clear_errors_and_store_nothing() {
    let base = stack_var("ZEC_BASE_URL");
    for (dataset, status, says) in [
        ("t-bad-html", 502, "zarr.json"),
        ("t-bad-malformed", 502, "malformed Zarr metadata"),
        ("t-bad-huge", 502, "larger than"),
        ("t-bad-huge-chunked", 502, "larger than"),
        ("t-bad-redirect", 502, "does not allow"),
        ("t-bad-stall", 504, "did not answer"),
        ("t-bad-short", 502, "v/c/0"),
    ] {
        let answer = get(&base, &format!("/zarr/{dataset}/v/c/0"));
        assert_eq!(answer.status, status, "{dataset}: {}", answer.text());
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{dataset}"
        );
        let message = answer.json()["message"].as_str().unwrap_or("").to_owned();
        assert!(message.contains(says), "{dataset}: {message}");
        assert!(message.contains(dataset), "{dataset}: {message}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (status, listing) = get_json(&format!("/api/stats/keys?dataset={dataset}"));
        assert_eq!(status, 200, "{listing}");
        let cached: Vec<&str> = listing["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["key"].as_str())
            .collect();
        assert!(!cached.contains(&"v/c/0"), "{dataset}: {cached:?}");
    }
    let html = get(&base, "/zarr/t-bad-html/zarr.json");
    assert_eq!(html.status, 502, "an HTML page is not Zarr metadata");
}
