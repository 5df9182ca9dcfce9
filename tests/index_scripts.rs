//! The index's Lua scripts on a real Redis (through `upstash-local`): accounting, eviction order
//! per policy, claims and their marks, shared objects, expiry, listings and stats. The in-memory
//! fake of the unit tests implements the same contracts; these tests hold the real scripts to
//! them.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{stack_var, unique_prefix, UreqTransport};
use futures::executor::block_on;
use zarr_edge_cache::index::entry::{ClaimReason, ClaimSelector, IndexEntry};
use zarr_edge_cache::index::upstash::UpstashIndex;
use zarr_edge_cache::index::Index;
use zarr_edge_cache::keys::CacheKeys;
use zarr_edge_cache::policy::eviction::{EvictionPolicy, KeySort, Limit, Order};

/// A moment in 2027, in ms.
const T0: u64 = 1_800_000_000_000;
const DAY_MS: u64 = 86_400_000;

fn index() -> UpstashIndex<UreqTransport> {
    UpstashIndex::new(
        UreqTransport::new(&stack_var("ZEC_UPSTASH_URL")),
        stack_var("ZEC_UPSTASH_TOKEN"),
        CacheKeys::new(&unique_prefix("scripts")),
    )
}

fn entry(object: &str, size: u64, fetch_ms: u64, at_ms: u64) -> IndexEntry {
    IndexEntry {
        object_key: object.to_owned(),
        size,
        checksum: format!("sum-{object}"),
        created_ms: at_ms,
        last_access_ms: at_ms,
        hits: 0,
        fetch_ms,
        origin_validator: None,
    }
}

/// Stores `key` of `dataset` as a miss at `at_ms`.
fn put(index: &UpstashIndex<UreqTransport>, dataset: &str, key: &str, e: &IndexEntry) {
    block_on(index.record_miss(dataset, key, e.size, Some(e), DAY_MS)).unwrap();
}

fn hit(index: &UpstashIndex<UreqTransport>, dataset: &str, key: &str, at_ms: u64) {
    assert!(
        block_on(index.lookup(dataset, key, at_ms))
            .unwrap()
            .entry
            .is_some(),
        "{key} should be cached"
    );
}

fn listed(index: &UpstashIndex<UreqTransport>, dataset: &str, sort: KeySort) -> Vec<String> {
    block_on(index.list_keys(dataset, sort, false, 0, 100))
        .unwrap()
        .keys
        .into_iter()
        .map(|k| k.key)
        .collect()
}

/// Entries written and read are accounted: counts, bytes, nearest-rank fetch percentiles.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn accounting_and_stats() {
    let index = index();
    for (i, fetch_ms) in [10, 30, 20].into_iter().enumerate() {
        let e = entry(&format!("o{i}"), 100 + i as u64, fetch_ms, T0);
        put(&index, "ds", &format!("k/{i}"), &e);
    }
    hit(&index, "ds", "k/1", T0 + 1);
    // Rewriting a key replaces its accounting instead of adding to it.
    put(&index, "ds", "k/2", &entry("o2", 102, 20, T0 + 2));
    let stats = block_on(index.cache_stats(&["ds".to_owned(), "none".to_owned()])).unwrap();
    let c = &stats[0].counters;
    assert_eq!((c.entries, c.bytes_stored), (3, 303));
    assert_eq!((c.hits, c.misses, c.bytes_from_cache), (1, 4, 101));
    assert_eq!(
        (stats[0].fetch_ms_p50, stats[0].fetch_ms_p95),
        (Some(20), Some(30))
    );
    assert_eq!(
        (stats[1].counters.entries, stats[1].fetch_ms_p50),
        (0, None)
    );
    assert_eq!(block_on(index.total_stored()).unwrap(), 303);
    assert_eq!(listed(&index, "ds", KeySort::Size), ["k/0", "k/1", "k/2"]);
    assert_eq!(
        listed(&index, "ds", KeySort::FetchMs),
        ["k/0", "k/2", "k/1"]
    );
    let page = block_on(index.list_keys("ds", KeySort::Hits, true, 0, 1)).unwrap();
    assert_eq!(page.accounted, 3);
    assert_eq!(page.keys[0].key, "k/1");
    assert_eq!(page.keys[0].entry.hits, 1);
    assert_eq!(page.keys[0].expires_ms, T0 + DAY_MS);
}

/// The same pattern as the unit test (g/2 read and hit, then g/0, then g/1; 28 bytes against
/// 24): each policy's script evicts its own victim and nothing else.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn each_policy_claims_its_victim() {
    for (policy, evicted, survivors) in [
        (EvictionPolicy::Lru, "g/2", ["g/0", "g/1"]),
        (EvictionPolicy::Lfu, "g/0", ["g/1", "g/2"]),
        (EvictionPolicy::Size, "g/2", ["g/0", "g/1"]),
        (EvictionPolicy::Cost, "g/1", ["g/0", "g/2"]),
    ] {
        let index = index();
        put(&index, "ds", "g/2", &entry("o2", 16, 1, T0));
        hit(&index, "ds", "g/2", T0 + 1_000);
        hit(&index, "ds", "g/2", T0 + 2_000);
        if policy == EvictionPolicy::Cost {
            hit(&index, "ds", "g/2", T0 + 3_000);
        }
        put(&index, "ds", "g/0", &entry("o0", 4, 1, T0 + 10_000));
        put(&index, "ds", "g/1", &entry("o1", 8, 1, T0 + 20_000));
        let limit = Limit {
            capacity_bytes: 24,
            policy,
        };
        let selector = ClaimSelector::Capacity(limit);
        let claimed = block_on(index.claim("ds", &selector, T0 + 30_000, "tok", 10)).unwrap();
        assert_eq!(claimed.len(), 1, "{policy:?}: {claimed:?}");
        assert_eq!(claimed[0].key, evicted, "{policy:?}");
        assert_eq!(claimed[0].reason, ClaimReason::Evicted);
        assert!(claimed[0].object_unheld);
        // Marked: lookups miss it before it is dropped; listings leave it out.
        assert_eq!(
            block_on(index.lookup("ds", evicted, T0 + 30_001))
                .unwrap()
                .entry,
            None
        );
        let mut left = listed(&index, "ds", KeySort::Created);
        left.sort();
        assert_eq!(left, survivors, "{policy:?}");
        block_on(index.drop_claimed("ds", &[evicted.to_owned()], &[], "tok")).unwrap();
        let stats = block_on(index.cache_stats(&["ds".to_owned()])).unwrap();
        assert!(stats[0].counters.bytes_stored <= 24);
        let again = block_on(index.claim("ds", &selector, T0 + 30_000, "tok", 10)).unwrap();
        assert!(again.is_empty(), "within capacity now");
    }
}

/// An object is unheld only when no dataset's entry holds it; a re-put after a claim survives
/// the drop; prefix, key and whole-dataset claims select what they say.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn claims_respect_shared_objects_and_rewrites() {
    let index = index();
    put(&index, "a", "v/0", &entry("shared", 10, 1, T0));
    put(&index, "b", "v/0", &entry("shared", 10, 1, T0));
    put(&index, "a", "v/1", &entry("own", 10, 1, T0));
    put(&index, "a", "w/0", &entry("w", 10, 1, T0));
    let held = |o: &str| block_on(index.objects_held(&[o.to_owned()])).unwrap()[0];
    let first =
        block_on(index.claim("a", &ClaimSelector::Prefix("v/".into()), T0, "t1", 10)).unwrap();
    let mut keys: Vec<(String, bool)> = first
        .iter()
        .map(|c| (c.key.clone(), c.object_unheld))
        .collect();
    keys.sort();
    assert_eq!(keys, [("v/0".into(), false), ("v/1".into(), true)]);
    assert!(held("shared") && !held("own"));
    // v/1 is written again (with other bytes: its old object is being deleted, so the same
    // object would not be indexed, see `objects_being_deleted_are_not_indexed`) before the drop:
    // the new entry stays.
    put(&index, "a", "v/1", &entry("own-rewritten", 10, 1, T0 + 5));
    block_on(index.drop_claimed("a", &["v/0".into(), "v/1".into()], &[], "t1")).unwrap();
    assert!(block_on(index.lookup("a", "v/1", T0 + 6))
        .unwrap()
        .entry
        .is_some());
    assert!(block_on(index.lookup("a", "v/0", T0 + 6))
        .unwrap()
        .entry
        .is_none());
    let key = block_on(index.claim("b", &ClaimSelector::Key("v/0".into()), T0, "t2", 10)).unwrap();
    assert!(key[0].object_unheld, "the last holder let go");
    assert!(!held("shared"));
    let all = block_on(index.claim("a", &ClaimSelector::All, T0, "t3", 10)).unwrap();
    assert_eq!(all.len(), 2);
    let stats = block_on(index.cache_stats(&["a".to_owned(), "b".to_owned()])).unwrap();
    assert_eq!(
        (stats[0].counters.entries, stats[1].counters.entries),
        (0, 0)
    );
    assert_eq!(block_on(index.total_stored()).unwrap(), 0);
    assert_eq!(block_on(index.cached_datasets()).unwrap(), ["a", "b"]);
    block_on(index.drop_dataset_records("a")).unwrap();
    assert_eq!(block_on(index.cached_datasets()).unwrap(), ["b"]);
}

/// Expired keys are claimed first by any claim, as `expired`.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn expired_keys_are_claimed_first() {
    let index = index();
    block_on(index.record_miss("ds", "old", 5, Some(&entry("o1", 5, 1, T0)), 60_000)).unwrap();
    put(&index, "ds", "new", &entry("o2", 5, 1, T0));
    let claimed =
        block_on(index.claim("ds", &ClaimSelector::Expired, T0 + 61_000, "t", 10)).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].key.as_str(), claimed[0].reason),
        ("old", ClaimReason::Expired)
    );
    let scores =
        block_on(index.lowest_scores(&["ds".to_owned(), "empty".to_owned()], Order::LastAccess))
            .unwrap();
    #[allow(clippy::cast_precision_loss)]
    let expected = T0 as f64;
    assert_eq!(scores, [Some(expected), None]);
}

/// Run-time datasets and stats snapshots round-trip.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn runtime_datasets_and_snapshots() {
    let index = index();
    let version = || {
        block_on(index.lookup("ds", "k", T0))
            .unwrap()
            .datasets_version
    };
    assert_eq!(version(), 0);
    assert!(block_on(index.put_runtime_dataset("x", r#"{"refs":"http://a/r.json"}"#)).unwrap());
    assert!(!block_on(index.put_runtime_dataset("x", r#"{"refs":"http://b/r.json"}"#)).unwrap());
    let stored = block_on(index.runtime_datasets()).unwrap();
    assert_eq!(
        stored.definitions,
        [("x".to_owned(), r#"{"refs":"http://b/r.json"}"#.to_owned())]
    );
    assert_eq!(
        (stored.version, version()),
        (2, 2),
        "every change raises it"
    );
    assert!(block_on(index.remove_runtime_dataset("x")).unwrap());
    assert!(!block_on(index.remove_runtime_dataset("x")).unwrap());
    assert_eq!(version(), 4);
    for n in 0..4 {
        block_on(index.record_snapshot("ds", &format!("{{\"n\":{n}}}"), 3)).unwrap();
    }
    assert_eq!(
        block_on(index.snapshots("ds", 10)).unwrap(),
        [r#"{"n":3}"#, r#"{"n":2}"#, r#"{"n":1}"#]
    );
    block_on(index.drop_dataset_records("ds")).unwrap();
    assert!(block_on(index.snapshots("ds", 10)).unwrap().is_empty());
}

/// A claim marks the objects nobody holds any more as being deleted: until the removal's window
/// passes, neither a miss's write-back nor an adoption indexes them (the reads are counted), so
/// no entry vouches for an object the removal then deletes.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn objects_being_deleted_are_not_indexed() {
    let index = index();
    let e = entry("shared", 10, 5, T0);
    put(&index, "a", "k", &e);
    let claimed = block_on(index.claim("a", &ClaimSelector::All, T0, "tok", 10)).unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].object_unheld);
    let written = block_on(index.record_miss("b", "k", 10, Some(&e), DAY_MS)).unwrap();
    assert_eq!(written, None);
    assert_eq!(block_on(index.adopt("b", "k2", &e, DAY_MS)).unwrap(), None);
    for key in ["k", "k2"] {
        assert!(block_on(index.lookup("b", key, T0))
            .unwrap()
            .entry
            .is_none());
    }
    let stats = block_on(index.cache_stats(&["b".to_owned()])).unwrap();
    assert_eq!(
        (
            stats[0].counters.misses,
            stats[0].counters.hits,
            stats[0].counters.entries
        ),
        (1, 1, 0)
    );
    assert_eq!(
        block_on(index.objects_held(&["shared".to_owned()])).unwrap(),
        [false]
    );
    // The removal deleted the object and lifts the mark: the same bytes are indexed again.
    let keys: Vec<String> = claimed.iter().map(|k| k.key.clone()).collect();
    block_on(index.drop_claimed("a", &keys, &["shared".to_owned()], "tok")).unwrap();
    assert!(block_on(index.record_miss("b", "k", 10, Some(&e), DAY_MS))
        .unwrap()
        .is_some());
    // A key whose object stays held by another entry marks nothing.
    let kept = entry("kept", 10, 5, T0);
    put(&index, "a", "x", &kept);
    put(&index, "c", "x", &kept);
    let claimed = block_on(index.claim("a", &ClaimSelector::All, T0, "tok2", 10)).unwrap();
    assert!(!claimed[0].object_unheld);
    assert!(
        block_on(index.record_miss("b", "x", 10, Some(&kept), DAY_MS))
            .unwrap()
            .is_some()
    );
}
