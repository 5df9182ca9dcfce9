//! `GET /api/health` on the real worker under `wrangler dev`, with real Redis and local R2.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{agent, get_json, worker_url};

/// With every service up, both probes pass and the answer is 200 JSON with CORS.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn health_is_ok_when_index_and_storage_work() {
    let (status, body) = get_json("/api/health");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["failed"], serde_json::json!([]));
    assert_eq!(body["index"]["ok"], true);
    assert_eq!(body["storage"]["ok"], true);
}

/// Concurrent health checks do not collide on the storage probe (each uses its own key).
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn concurrent_health_checks_all_pass() {
    let handles: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| get_json("/api/health")))
        .collect();
    for handle in handles {
        let (status, body) = handle.join().unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

/// HEAD answers the status without a body; OPTIONS is a CORS preflight.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn head_and_preflight() {
    // identity: workerd gzips JSON for clients that accept it, and ureq would try to inflate the
    // empty HEAD body.
    let mut head = agent()
        .head(&worker_url("/api/health"))
        .header("Accept-Encoding", "identity")
        .call()
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert!(head.body_mut().read_to_vec().unwrap().is_empty());
    let preflight = agent()
        .options(&worker_url("/api/health"))
        .header("Origin", "http://example.test")
        .header("Access-Control-Request-Method", "GET")
        .call()
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "*"
    );
}

/// Unknown paths and wrong methods answer JSON errors with the right status.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn errors_are_json() {
    let (status, body) = get_json("/no/such/path");
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let mut response = agent().post(&worker_url("/api/health")).send("").unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.headers().get("allow").unwrap(),
        "GET, HEAD, OPTIONS"
    );
    let body: serde_json::Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}
