//! The chunk store contract (`zarr_edge_cache::store::contract`, the same cases the in-memory
//! store passes in the unit tests) against the real R2 binding, inside the worker: the test
//! stack's worker runs it at `POST /__test/store-contract` (answered only with
//! `ZEC_TEST_ROUTES=1`, which only `scripts/test` sets, and the admin token) and answers the
//! report as JSON.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{admin_token, send, stack_var};
use zarr_edge_cache::contract::Report;
use zarr_edge_cache::store::contract::CASES;

const PATH: &str = "/__test/store-contract";

/// Every case of the contract holds for the worker's R2 store (local R2 under `wrangler dev`).
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn the_r2_store_keeps_the_contract() {
    let bearer = format!("Bearer {}", admin_token());
    let started = std::time::Instant::now();
    let answer = send(
        &stack_var("ZEC_BASE_URL"),
        "POST",
        PATH,
        &[("Authorization", &bearer)],
        None,
    );
    let report = answer.json();
    let cases: Report = serde_json::from_value(report.clone()).unwrap_or_else(|e| {
        panic!(
            "{} answer is not a report ({e}): {}",
            answer.status,
            answer.text()
        )
    });
    if let Err(failure) = cases.verify(&CASES) {
        panic!("{failure}");
    }
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(report["failed"], 0);
    let prefix = report["prefix"].as_str().unwrap();
    assert!(prefix.contains("/_contract/"), "{prefix}");
    eprintln!(
        "store contract: {} cases passed against R2 (wrangler dev) under {prefix} in {:?}",
        cases.cases.len(),
        started.elapsed()
    );
}

/// Without the admin token (or with a wrong one, or another method) the route does not exist:
/// the request goes on to the normal routing, which answers 404.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn the_route_is_hidden_without_the_admin_token() {
    let base = stack_var("ZEC_BASE_URL");
    let bearer = format!("Bearer {}", admin_token());
    for (method, headers) in [
        ("POST", vec![]),
        (
            "POST",
            vec![("Authorization", "Bearer not-the-admin-token-at-all")],
        ),
        ("GET", vec![("Authorization", bearer.as_str())]),
    ] {
        let answer = send(&base, method, PATH, &headers, None);
        assert_eq!(
            answer.status,
            404,
            "{method} {headers:?}: {}",
            answer.text()
        );
        assert_eq!(answer.json()["error"], "not_found", "{}", answer.text());
    }
}
