//! Health when the index's Redis is down: 503 naming the index, then recovery once it is back.
//!
//! Its own test binary because it stops the stack's shared redis-server (binaries run one after
//! another, so no other test sees the outage).
//!
//! # Running
//! `scripts/test` runs it after starting the stack; it drives the outage through `scripts/stack`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{get_json, poll, stack_ctl};

/// An isolate reuses its health report for 5 s (`health::HEALTH_CACHE_MS`): outages and
/// recoveries show within that, plus a probe.
const REPORT_AGE: Duration = Duration::from_secs(15);

/// Stopping redis-server makes health answer 503 with `failed: ["index"]` while storage stays ok;
/// restarting it brings health back to 200.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn health_names_the_index_when_redis_is_down_and_recovers() {
    let (status, _) = get_json("/api/health");
    assert_eq!(status, 200, "stack must be healthy before the outage");

    stack_ctl("redis-stop");
    let outage = std::panic::catch_unwind(|| {
        poll("health answers 503", REPORT_AGE, || {
            match get_json("/api/health") {
                (503, body) => Ok(body),
                (status, body) => Err(format!("{status} {body}")),
            }
        })
    });
    stack_ctl("redis-start");
    let body = outage.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
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

    poll(
        "health answers 200 after the restart",
        REPORT_AGE,
        || match get_json("/api/health") {
            (200, _) => Ok(()),
            (status, body) => Err(format!("{status} {body}")),
        },
    );
}
