//! Health when the index's Redis is down: 503 naming the index, then recovery once it is back.
//!
//! Its own test binary because it stops the stack's shared redis-server (binaries run one after
//! another, so no other test sees the outage).
//!
//! # Running
//! `scripts/test` runs it after starting the stack; it drives the outage through `scripts/stack`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{get_json, stack_ctl};

/// Stopping redis-server makes health answer 503 with `failed: ["index"]` while storage stays ok;
/// restarting it brings health back to 200.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn health_names_the_index_when_redis_is_down_and_recovers() {
    let (status, _) = get_json("/api/health");
    assert_eq!(status, 200, "stack must be healthy before the outage");

    stack_ctl("redis-stop");
    let (status, body) = get_json("/api/health");
    stack_ctl("redis-start");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["failed"], serde_json::json!(["index"]));
    assert_eq!(body["index"]["ok"], false);
    assert!(
        body["index"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body["storage"]["ok"], true);

    let (status, body) = get_json("/api/health");
    assert_eq!(status, 200, "after restart: {body}");
}
