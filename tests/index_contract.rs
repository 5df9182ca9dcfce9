//! The index contract (`zarr_edge_cache::index::contract`, the same cases the in-memory fake
//! passes in the unit tests) against the real index: `UpstashIndex` and its Lua scripts over
//! upstash-local and redis-server. Each case gets a key prefix no other test or run uses; the
//! expiry case really waits (`EXPIRY_WAIT_MS`).
//!
//! It replaces `tests/index_scripts.rs`, whose cases (accounting and percentiles, each policy's
//! victim, claims with shared objects and rewrites, expiry first, run-time datasets, objects
//! being deleted) are cases of the suite now.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{stack_var, unique_prefix, UreqTransport};
use futures::executor::block_on;
use zarr_edge_cache::index::contract::{run, IndexUnderTest, CASES, EXPIRY_WAIT_MS};
use zarr_edge_cache::index::upstash::UpstashIndex;
use zarr_edge_cache::keys::CacheKeys;

/// The real index of the test stack.
struct Upstash {
    url: String,
    token: String,
}

impl IndexUnderTest for Upstash {
    type Index = UpstashIndex<UreqTransport>;

    fn fresh(&self, case: &str) -> Self::Index {
        UpstashIndex::new(
            UreqTransport::new(&self.url),
            self.token.clone(),
            CacheKeys::new(&unique_prefix(&format!("contract-{case}"))),
        )
    }

    async fn let_pass(&self, _index: &Self::Index, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Every case of the contract holds for the Lua scripts on a real Redis.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn the_upstash_index_keeps_the_contract() {
    let backend = Upstash {
        url: stack_var("ZEC_UPSTASH_URL"),
        token: stack_var("ZEC_UPSTASH_TOKEN"),
    };
    let started = std::time::Instant::now();
    let report = block_on(run(&backend));
    if let Err(failure) = report.verify(&CASES) {
        panic!("{failure}");
    }
    eprintln!(
        "index contract: {} cases passed against upstash-local + redis-server in {:?} \
         ({EXPIRY_WAIT_MS} ms of it waiting for TTLs)",
        report.cases.len(),
        started.elapsed()
    );
}
