//! What a warm hit sends to the index on the real stack: one `EVALSHA` (the lookup script by
//! its SHA-1, never its text), counted by upstash-local's `/__stats`.
//!
//! Its own test binary: it resets upstash-local's counters, so nothing else may use the index
//! meanwhile (binaries run one after another).
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{poll, send, stack_var};

fn upstash(path: &str) -> serde_json::Value {
    let auth = format!("Bearer {}", stack_var("ZEC_UPSTASH_TOKEN"));
    let method = if path.ends_with("reset") {
        "POST"
    } else {
        "GET"
    };
    send(
        &stack_var("ZEC_UPSTASH_URL"),
        method,
        path,
        &[("Authorization", &auth)],
        None,
    )
    .json()
}

/// Ten warm hits, answered from storage alone: ten lookups made after the responses, all
/// `EVALSHA`, batched (one HTTP request carries every lookup of a 20 ms window, so at most ten
/// requests, and at most one command each when they are not batched).
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn a_warm_hit_sends_one_evalsha() {
    let base = stack_var("ZEC_BASE_URL");
    let path = "/zarr/t-misshit/air_temperature/1.1.1";
    poll("the key is cached", Duration::from_secs(20), || {
        let answer = send(&base, "GET", path, &[], None);
        (answer.x_cache() == "HIT")
            .then_some(())
            .ok_or_else(|| answer.x_cache().to_owned())
    });
    // The lookups of the polling hits are sent after their answers: let them land first.
    std::thread::sleep(Duration::from_millis(500));
    upstash("/__stats/reset");
    for _ in 0..10 {
        let answer = send(&base, "GET", path, &[], None);
        assert_eq!((answer.status, answer.x_cache()), (200, "HIT"));
    }
    poll("the ten lookups", Duration::from_secs(5), || {
        let stats = upstash("/__stats");
        (stats["commands"].as_u64() >= Some(10))
            .then_some(())
            .ok_or_else(|| stats.to_string())
    });
    // Nothing more comes.
    std::thread::sleep(Duration::from_millis(200));
    let stats = upstash("/__stats");
    assert!(
        (1..=10).contains(&stats["http_requests"].as_u64().unwrap()),
        "{stats}"
    );
    assert_eq!(stats["commands"], 10, "{stats}");
    assert_eq!(stats["evalsha"], 10, "{stats}");
    assert_eq!(stats["eval"], 0, "{stats}");
    let per_hit = stats["bytes_in"].as_u64().unwrap() / 10;
    // The lookup's keys and arguments (entry, orders, the file's validator) are ~650 bytes;
    // the script's text alone is over 2 KB.
    assert!(
        per_hit < 1_000,
        "{per_hit} bytes per lookup: the script text was sent"
    );
}
