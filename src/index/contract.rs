//! The contract of [`Index`] as a suite of cases, run against every implementation: the
//! in-memory fake (unit tests) and [`UpstashIndex`](crate::index::upstash::UpstashIndex) over
//! upstash-local and a real Redis (`tests/index_contract.rs`), so the fake the unit tests trust
//! behaves as the Lua scripts do.
//!
//! What it holds them to, from the trait's documentation: entries live for their TTL, then
//! lookups miss them; hits, misses and bytes are counted; leases are `SET NX PX` and released
//! only by their holder; claims take expired keys first, then what the selector picks (each
//! policy's victim), mark the entries so that lookups miss them, and mark unheld objects as
//! being deleted so that no entry is written for them until their removal lifts the mark;
//! `drop_claimed` deletes only entries still carrying the token; `forget` removes only the same
//! entry; listings page and sort by rank; run-time datasets raise their version; snapshots, the
//! orphan cursor and the dataset records round-trip.
//!
//! Each case gets an empty index of its own from [`IndexUnderTest::fresh`] (for a shared Redis:
//! a key prefix no other case or run uses), never panics, and reports what it saw; see
//! [`crate::contract`]. Scores and claim times are given explicitly (`now_ms` arguments in 2027);
//! only TTLs run on the backend's own clock, which [`IndexUnderTest::let_pass`] moves (the fake)
//! or waits out (a real server: [`EXPIRY_WAIT_MS`] in all).

use crate::contract::{ensure, ensure_eq, CallContext, Report};
use crate::index::entry::{
    ClaimReason, ClaimSelector, ClaimedKey, DatasetStats, IndexEntry, LeaseAnswer, LeaseAsk,
    LookupRead, SourceVersion, StoredBytes, VersionProbe,
};
use crate::index::Index;
use crate::policy::capacity::Limit;
use crate::policy::eviction::{lfu_score, EvictionPolicy, Order};
use crate::policy::listing::KeySort;

/// An implementation of [`Index`] under test.
#[allow(async_fn_in_trait)]
pub trait IndexUnderTest {
    /// The index.
    type Index: Index;

    /// An empty index for the case `case`, seeing nothing any other case (or test) writes.
    fn fresh(&self, case: &str) -> Self::Index;

    /// Lets `ms` milliseconds pass for `index`'s TTLs (the fake moves its clock; a real server
    /// is waited for).
    async fn let_pass(&self, index: &Self::Index, ms: u64);
}

/// Every case, in the order [`run`] runs them.
pub const CASES: [&str; 22] = [
    "ping_answers",
    "accounting_and_stats",
    "entries_and_leases_expire_after_their_ttl",
    "leases_are_set_nx_and_released_by_their_holder",
    "lookups_take_the_lease_only_without_a_live_entry",
    "lookup_many_answers_as_lookups_do",
    "each_policy_claims_its_victim",
    "claim_selectors_pick_what_they_say",
    "expired_keys_are_claimed_first",
    "claims_respect_shared_objects_and_rewrites",
    "objects_being_deleted_are_not_indexed",
    "deleting_marks_are_lifted_by_their_removal_only",
    "forget_removes_only_the_same_entry",
    "shared_reads_and_unstored_misses_are_counted",
    "adopt_writes_the_entry_and_counts_a_hit",
    "rewrites_release_the_old_object",
    "list_keys_pages_and_sorts",
    "runtime_datasets_and_snapshots",
    "orphan_cursor_round_trips",
    "drop_dataset_records_forgets_only_that_dataset",
    "source_versions_gate_versioned_lookups",
    "file_validators_come_back_with_lookups",
];

/// The TTL of the entry and the lease that the expiry case waits out.
pub const SHORT_TTL_MS: u64 = 200;
/// How long the expiry case lets pass (the suite's only wait).
pub const EXPIRY_WAIT_MS: u64 = 250;

/// A moment in 2027, in ms: the suite's `now_ms`.
const T0: u64 = 1_800_000_000_000;
/// The TTL of entries that must outlive the suite.
const DAY_MS: u64 = 86_400_000;

/// Runs every case of [`CASES`] against a fresh index each, and reports each outcome.
pub async fn run<B: IndexUnderTest>(backend: &B) -> Report {
    let mut report = Report::default();
    macro_rules! case {
        ($name:ident) => {{
            let index = backend.fresh(stringify!($name));
            report.record(stringify!($name), $name(&index).await);
        }};
    }
    case!(ping_answers);
    case!(accounting_and_stats);
    let index = backend.fresh("entries_and_leases_expire_after_their_ttl");
    report.record(
        "entries_and_leases_expire_after_their_ttl",
        entries_and_leases_expire_after_their_ttl(backend, &index).await,
    );
    case!(leases_are_set_nx_and_released_by_their_holder);
    case!(lookups_take_the_lease_only_without_a_live_entry);
    case!(lookup_many_answers_as_lookups_do);
    case!(each_policy_claims_its_victim);
    case!(claim_selectors_pick_what_they_say);
    case!(expired_keys_are_claimed_first);
    case!(claims_respect_shared_objects_and_rewrites);
    case!(objects_being_deleted_are_not_indexed);
    case!(deleting_marks_are_lifted_by_their_removal_only);
    case!(forget_removes_only_the_same_entry);
    case!(shared_reads_and_unstored_misses_are_counted);
    case!(adopt_writes_the_entry_and_counts_a_hit);
    case!(rewrites_release_the_old_object);
    case!(list_keys_pages_and_sorts);
    case!(runtime_datasets_and_snapshots);
    case!(orphan_cursor_round_trips);
    case!(drop_dataset_records_forgets_only_that_dataset);
    case!(source_versions_gate_versioned_lookups);
    case!(file_validators_come_back_with_lookups);
    report
}

/// An entry of `size` bytes of `object`, fetched in `fetch_ms`, created and accessed at `at_ms`.
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

/// A time in ms as a sorted-set score.
#[allow(clippy::cast_precision_loss)] // times in ms are far below 2^53
fn score(ms: u64) -> f64 {
    ms as f64
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Stores `key` of `dataset` as a miss (its `size` from the origin, a day's TTL); it must be
/// written.
async fn put<I: Index>(index: &I, dataset: &str, key: &str, e: &IndexEntry) -> Result<(), String> {
    put_ttl(index, dataset, key, e, DAY_MS).await
}

async fn put_ttl<I: Index>(
    index: &I,
    dataset: &str,
    key: &str,
    e: &IndexEntry,
    ttl_ms: u64,
) -> Result<(), String> {
    let what = format!("record_miss {dataset}/{key}");
    let written = index
        .record_miss(dataset, key, e.size, Some(e), ttl_ms)
        .await
        .call(&what)?;
    ensure(&format!("{what} wrote an entry"), written.is_some())
}

/// Looks `key` up at `at_ms`; it must be found.
async fn hit<I: Index>(
    index: &I,
    dataset: &str,
    key: &str,
    at_ms: u64,
) -> Result<IndexEntry, String> {
    let what = format!("lookup {dataset}/{key}");
    index
        .lookup(dataset, key, at_ms, None, None, None)
        .await
        .call(&what)?
        .entry
        .ok_or_else(|| format!("{what}: no entry, want one"))
}

/// Looks `key` up at `at_ms`; it must miss.
async fn miss<I: Index>(index: &I, dataset: &str, key: &str, at_ms: u64) -> Result<(), String> {
    let what = format!("lookup {dataset}/{key}");
    let found = index
        .lookup(dataset, key, at_ms, None, None, None)
        .await
        .call(&what)?
        .entry;
    ensure_eq(&format!("{what} (want a miss)"), found, None)
}

/// The dataset's counters.
async fn counters<I: Index>(index: &I, dataset: &str) -> Result<DatasetStats, String> {
    let stats = index
        .cache_stats(&[dataset.to_owned()])
        .await
        .call("cache_stats")?;
    stats
        .into_iter()
        .next()
        .map(|s| s.counters)
        .ok_or_else(|| "cache_stats answered no dataset".to_owned())
}

/// The keys of a whole listing (`limit` 100 from rank 0) in `sort` order.
async fn listed<I: Index>(
    index: &I,
    dataset: &str,
    sort: KeySort,
    descending: bool,
) -> Result<Vec<String>, String> {
    Ok(index
        .list_keys(dataset, sort, descending, 0, 100)
        .await
        .call("list_keys")?
        .keys
        .into_iter()
        .map(|k| k.key)
        .collect())
}

async fn held<I: Index>(index: &I, objects: &[&str]) -> Result<Vec<bool>, String> {
    index
        .objects_held(&strings(objects))
        .await
        .call("objects_held")
}

async fn claim<I: Index>(
    index: &I,
    dataset: &str,
    selector: &ClaimSelector,
    now_ms: u64,
    token: &str,
    most: u64,
) -> Result<Vec<ClaimedKey>, String> {
    index
        .claim(dataset, selector, now_ms, token, most)
        .await
        .call(&format!("claim {dataset} {selector:?}"))
}

fn keys_of(claimed: &[ClaimedKey]) -> Vec<String> {
    claimed.iter().map(|c| c.key.clone()).collect()
}

async fn ping_answers<I: Index>(index: &I) -> Result<(), String> {
    index.ping().await.call("ping")
}

/// Entries written and read are accounted: counts, bytes, nearest-rank fetch percentiles, and
/// a rewrite replaces its key's accounting instead of adding to it.
async fn accounting_and_stats<I: Index>(index: &I) -> Result<(), String> {
    for (i, fetch_ms) in [10, 30, 20].into_iter().enumerate() {
        let i = i as u64;
        put(
            index,
            "ds",
            &format!("k/{i}"),
            &entry(&format!("o{i}"), 100 + i, fetch_ms, T0),
        )
        .await?;
    }
    hit(index, "ds", "k/1", T0 + 1).await?;
    put(index, "ds", "k/2", &entry("o2", 102, 20, T0 + 2)).await?;
    let stats = index
        .cache_stats(&strings(&["ds", "none"]))
        .await
        .call("cache_stats")?;
    ensure_eq("datasets answered", stats.len(), 2)?;
    let c = &stats[0].counters;
    ensure_eq(
        "(entries, bytes_stored)",
        (c.entries, c.bytes_stored),
        (3, 303),
    )?;
    ensure_eq(
        "(hits, misses, bytes_from_cache)",
        (c.hits, c.misses, c.bytes_from_cache),
        (1, 4, 101),
    )?;
    ensure_eq(
        "(bytes_from_origin, entries_written, bytes_written)",
        (c.bytes_from_origin, c.entries_written, c.bytes_written),
        (405, 4, 405),
    )?;
    ensure_eq(
        "(p50, p95) of fetch_ms",
        (stats[0].fetch_ms_p50, stats[0].fetch_ms_p95),
        (Some(20), Some(30)),
    )?;
    ensure_eq(
        "a dataset without keys",
        (stats[1].counters.clone(), stats[1].fetch_ms_p50),
        (DatasetStats::default(), None),
    )?;
    ensure_eq(
        "cache_stats of no datasets",
        index.cache_stats(&[]).await.call("cache_stats")?.len(),
        0,
    )?;
    ensure_eq(
        "total_stored",
        index.total_stored().await.call("total_stored")?,
        303,
    )?;
    ensure_eq(
        "by size",
        listed(index, "ds", KeySort::Size, false).await?,
        strings(&["k/0", "k/1", "k/2"]),
    )?;
    ensure_eq(
        "by fetch_ms",
        listed(index, "ds", KeySort::FetchMs, false).await?,
        strings(&["k/0", "k/2", "k/1"]),
    )?;
    let page = index
        .list_keys("ds", KeySort::Hits, true, 0, 1)
        .await
        .call("list_keys")?;
    ensure_eq("accounted", page.accounted, 3)?;
    let top = page.keys.first().ok_or("an empty page of hits")?;
    ensure_eq(
        "(key, hits, expires) of the most hit",
        (top.key.as_str(), top.entry.hits, top.expires_ms),
        ("k/1", 1, T0 + DAY_MS),
    )
}

/// An entry lives for its TTL, then lookups miss it (and count nothing), listings leave it out
/// and `forget` finds nothing to undo; it counts as stored until a claim takes it, as expired.
/// A lease expires after its TTL.
async fn entries_and_leases_expire_after_their_ttl<B: IndexUnderTest>(
    backend: &B,
    index: &B::Index,
) -> Result<(), String> {
    // The short-lived entries and lease are checked right after they are written, so that the
    // calls in between fit well within the TTL.
    let short = entry("o-short", 5, 1, T0);
    let unread = entry("o-unread", 3, 1, T0);
    put_ttl(index, "ds", "short", &short, SHORT_TTL_MS).await?;
    put_ttl(index, "ds", "unread", &unread, SHORT_TTL_MS).await?;
    hit(index, "ds", "short", T0 + 1).await?;
    ensure(
        "a first lease is granted",
        index
            .try_lease("o-lease", "a", SHORT_TTL_MS)
            .await
            .call("try_lease")?,
    )?;
    ensure(
        "a held lease is refused",
        !index
            .try_lease("o-lease", "b", DAY_MS)
            .await
            .call("try_lease")?,
    )?;
    put(index, "ds", "long", &entry("o-long", 7, 1, T0)).await?;
    backend.let_pass(index, EXPIRY_WAIT_MS).await;
    // Nothing read "unread" since it expired: the listing and forget must see that by themselves.
    let page = index
        .list_keys("ds", KeySort::Created, false, 0, 10)
        .await
        .call("list_keys")?;
    let keys: Vec<&str> = page.keys.iter().map(|k| k.key.as_str()).collect();
    ensure_eq(
        "(accounted, listed)",
        (page.accounted, keys),
        (3, vec!["long"]),
    )?;
    index.forget("ds", "unread", &unread).await.call("forget")?;
    miss(index, "ds", "short", T0 + 2).await?;
    hit(index, "ds", "long", T0 + 3).await?;
    let c = counters(index, "ds").await?;
    ensure_eq(
        "(hits, bytes_from_cache): neither the expired lookup nor forget changed them",
        (c.hits, c.bytes_from_cache),
        (2, 12),
    )?;
    ensure_eq(
        "entries until claimed",
        (c.entries, c.bytes_stored),
        (3, 15),
    )?;
    ensure(
        "an expired lease is granted to another holder",
        index
            .try_lease("o-lease", "b", DAY_MS)
            .await
            .call("try_lease")?,
    )?;
    let claimed = claim(
        index,
        "ds",
        &ClaimSelector::Expired,
        T0 + SHORT_TTL_MS,
        "t",
        10,
    )
    .await?;
    let mut got: Vec<(&str, ClaimReason, u64, bool)> = claimed
        .iter()
        .map(|c| (c.key.as_str(), c.reason, c.size, c.object_unheld))
        .collect();
    got.sort_by_key(|c| c.0);
    ensure_eq(
        "claimed as expired",
        got,
        vec![
            ("short", ClaimReason::Expired, 5, true),
            ("unread", ClaimReason::Expired, 3, true),
        ],
    )
}

/// `try_lease` is `SET NX`: one holder per object (not even the holder again), objects are
/// independent, and only the holder's release frees it.
async fn leases_are_set_nx_and_released_by_their_holder<I: Index>(index: &I) -> Result<(), String> {
    let lease = |object: &'static str, holder: &'static str| async move {
        index
            .try_lease(object, holder, DAY_MS)
            .await
            .call(&format!("try_lease {object} {holder}"))
    };
    ensure_eq("a takes o", lease("o", "a").await?, true)?;
    ensure_eq("b is refused o", lease("o", "b").await?, false)?;
    ensure_eq("a is refused o again", lease("o", "a").await?, false)?;
    ensure_eq("b takes another object", lease("p", "b").await?, true)?;
    index.release_lease("o", "b").await.call("release_lease")?;
    ensure_eq("b's release left a's lease", lease("o", "c").await?, false)?;
    index.release_lease("o", "a").await.call("release_lease")?;
    ensure_eq("b takes o once a released it", lease("o", "b").await?, true)?;
    index
        .release_lease("never-leased", "x")
        .await
        .call("release_lease of nothing")
}

/// A lookup's lease ask is `try_lease` in the same round trip (`HeldHere` for its holder), taken
/// only when there is no live entry (none written, or one claimed for removal) and not for a
/// versioned read sent elsewhere; a lease taken so is released by its holder like any other.
async fn lookups_take_the_lease_only_without_a_live_entry<I: Index>(
    index: &I,
) -> Result<(), String> {
    let look = |key: &'static str, object: &'static str, holder: &'static str| async move {
        let ask = LeaseAsk {
            object,
            holder,
            ttl_ms: DAY_MS,
        };
        index
            .lookup("ds", key, T0, None, None, Some(ask))
            .await
            .call(&format!(
                "lookup {key} asking {object}'s lease for {holder}"
            ))
    };
    let first = look("k", "o", "a").await?;
    ensure_eq(
        "(entry, lease) of a cold key",
        (first.entry, first.lease),
        (None, LeaseAnswer::Granted),
    )?;
    let second = look("k", "o", "b").await?;
    ensure_eq(
        "lease of a cold key whose object another holder leased",
        second.lease,
        LeaseAnswer::HeldElsewhere,
    )?;
    ensure_eq(
        "lease asked again by its holder",
        look("k", "o", "a").await?.lease,
        LeaseAnswer::HeldHere,
    )?;
    ensure_eq(
        "try_lease after a lookup took it",
        index
            .try_lease("o", "c", DAY_MS)
            .await
            .call("try_lease o")?,
        false,
    )?;
    index
        .release_lease("o", "a")
        .await
        .call("release_lease o")?;
    ensure_eq(
        "lease once its holder released it",
        look("k", "o", "b").await?.lease,
        LeaseAnswer::Granted,
    )?;
    let e = entry("p", 10, 5, T0);
    put(index, "ds", "live", &e).await?;
    let live = look("live", "p", "a").await?;
    ensure_eq(
        "(entry found, lease) of a live key",
        (live.entry.is_some(), live.lease),
        (true, LeaseAnswer::NotTaken),
    )?;
    ensure_eq(
        "try_lease of the live key's object (the lookup took nothing)",
        index
            .try_lease("p", "c", DAY_MS)
            .await
            .call("try_lease p")?,
        true,
    )?;
    let claimed = index
        .claim("ds", &ClaimSelector::Key("live".to_owned()), T0, "tok", 10)
        .await
        .call("claim live")?;
    ensure_eq("keys claimed", claimed.len(), 1)?;
    let gone = look("live", "q", "a").await?;
    ensure_eq(
        "(entry, lease) of a key claimed for removal",
        (gone.entry, gone.lease),
        (None, LeaseAnswer::Granted),
    )?;
    redirected_lookups_take_no_lease(index).await
}

/// `lookup_many` answers each read in order as `lookup` would, and records each (a key read
/// twice counts two hits), the file validators included.
async fn lookup_many_answers_as_lookups_do<I: Index>(index: &I) -> Result<(), String> {
    let e = entry("o", 10, 5, T0);
    put(index, "ds", "a", &e).await?;
    put(index, "other", "b", &e).await?;
    index
        .set_file_validator("http://o.test/f.nc", "\"v1\"", T0)
        .await
        .call("set_file_validator")?;
    let read = |dataset, key, file| LookupRead {
        dataset,
        key,
        now_ms: T0 + 1_000,
        file,
    };
    let reads = [
        read("ds", "a", Some("http://o.test/f.nc")),
        read("ds", "missing", None),
        read("other", "b", None),
        read("ds", "a", None),
    ];
    let answers = index.lookup_many(&reads).await.call("lookup_many")?;
    let found: Vec<(bool, Option<String>)> = answers
        .iter()
        .map(|l| (l.entry.is_some(), l.file_validator.clone()))
        .collect();
    ensure_eq(
        "(entry found, file validator) of each read",
        found,
        vec![
            (true, Some("\"v1\"".to_owned())),
            (false, None),
            (true, None),
            (true, None),
        ],
    )?;
    ensure_eq(
        "leases taken",
        answers
            .iter()
            .filter(|l| l.lease != LeaseAnswer::NotTaken)
            .count(),
        0,
    )?;
    ensure_eq("hits of ds", counters(index, "ds").await?.hits, 2)?;
    ensure_eq("hits of other", counters(index, "other").await?.hits, 1)?;
    ensure_eq(
        "an empty batch",
        index
            .lookup_many(&[])
            .await
            .call("lookup_many of none")?
            .len(),
        0,
    )
}

/// A versioned lookup sent to revalidate takes no lease (part of
/// `lookups_take_the_lease_only_without_a_live_entry`).
async fn redirected_lookups_take_no_lease<I: Index>(index: &I) -> Result<(), String> {
    let stale = index
        .lookup(
            "ds",
            "k2",
            T0,
            Some(VersionProbe {
                generation: 1,
                stale_after_ms: DAY_MS,
            }),
            None,
            Some(LeaseAsk {
                object: "r",
                holder: "a",
                ttl_ms: DAY_MS,
            }),
        )
        .await
        .call("versioned lookup with no source record")?;
    ensure_eq(
        "(source, lease) of a versioned lookup sent to revalidate",
        (stale.source, stale.lease),
        (SourceVersion::Stale, LeaseAnswer::NotTaken),
    )?;
    ensure_eq(
        "try_lease of that object (the lookup took nothing)",
        index
            .try_lease("r", "c", DAY_MS)
            .await
            .call("try_lease r")?,
        true,
    )
}

/// The same pattern as the unit tests (g/2 read and hit, then g/0, then g/1; 28 bytes against
/// 24): each policy's claim evicts its own victim, the lowest score of its order, and nothing
/// else; the victim is marked at once (lookups miss it, listings leave it out); a cost eviction
/// raises the dataset's GDSF clock.
async fn each_policy_claims_its_victim<I: Index>(index: &I) -> Result<(), String> {
    for (policy, evicted, survivors, lowest) in [
        (
            EvictionPolicy::Lru,
            "g/2",
            ["g/0", "g/1"],
            score(T0 + 2_000),
        ),
        (
            EvictionPolicy::Lfu,
            "g/0",
            ["g/1", "g/2"],
            lfu_score(1, T0 + 10_000),
        ),
        (EvictionPolicy::Size, "g/2", ["g/0", "g/1"], -16.0),
        (EvictionPolicy::Cost, "g/1", ["g/0", "g/2"], 1.0 / 8.0),
    ] {
        let ds = policy.as_str();
        let object = |name: &str| format!("{ds}-{name}");
        let fail = |e: String| format!("{ds}: {e}");
        put(index, ds, "g/2", &entry(&object("o2"), 16, 1, T0))
            .await
            .map_err(fail)?;
        hit(index, ds, "g/2", T0 + 1_000).await.map_err(fail)?;
        hit(index, ds, "g/2", T0 + 2_000).await.map_err(fail)?;
        if policy == EvictionPolicy::Cost {
            hit(index, ds, "g/2", T0 + 3_000).await.map_err(fail)?;
        }
        put(index, ds, "g/0", &entry(&object("o0"), 4, 1, T0 + 10_000))
            .await
            .map_err(fail)?;
        put(index, ds, "g/1", &entry(&object("o1"), 8, 1, T0 + 20_000))
            .await
            .map_err(fail)?;
        let scores = index
            .lowest_scores(&[ds.to_owned()], policy.order())
            .await
            .call("lowest_scores")
            .map_err(fail)?;
        ensure_eq(&format!("{ds}: lowest score"), scores, vec![Some(lowest)])?;
        let limit = Limit {
            capacity_bytes: 24,
            policy,
        };
        let selector = ClaimSelector::Capacity(limit);
        let claimed = claim(index, ds, &selector, T0 + 30_000, "tok", 10)
            .await
            .map_err(fail)?;
        let got: Vec<(&str, ClaimReason, bool)> = claimed
            .iter()
            .map(|c| (c.key.as_str(), c.reason, c.object_unheld))
            .collect();
        ensure_eq(
            &format!("{ds}: claimed"),
            got,
            vec![(evicted, ClaimReason::Evicted, true)],
        )?;
        miss(index, ds, evicted, T0 + 30_001).await.map_err(fail)?;
        let mut left = listed(index, ds, KeySort::Created, false)
            .await
            .map_err(fail)?;
        left.sort();
        ensure_eq(
            &format!("{ds}: listed after the claim"),
            left,
            strings(&survivors),
        )?;
        let c = counters(index, ds).await.map_err(fail)?;
        ensure(
            &format!("{ds}: within capacity once claimed, {c:?}"),
            c.entries == 2 && c.bytes_stored <= 24,
        )?;
        index
            .drop_claimed(ds, &[evicted.to_owned()], &[], "tok")
            .await
            .call("drop_claimed")
            .map_err(fail)?;
        let after = counters(index, ds).await.map_err(fail)?;
        ensure_eq(&format!("{ds}: counters after the drop"), after, c)?;
        let again = claim(index, ds, &selector, T0 + 30_000, "tok", 10)
            .await
            .map_err(fail)?;
        ensure_eq(
            &format!("{ds}: claimed within capacity"),
            keys_of(&again),
            vec![],
        )?;
    }
    // The cost policy's clock rose to the evicted priority (1/8): a new entry of priority 1/8
    // scores 1/4, as the others do.
    put(index, "cost", "g/3", &entry("cost-o3", 8, 1, T0 + 40_000)).await?;
    let scores = index
        .lowest_scores(&["cost".to_owned()], Order::Priority)
        .await
        .call("lowest_scores")?;
    ensure_eq(
        "cost: lowest priority after the clock rose",
        scores,
        vec![Some(0.25)],
    )
}

/// Head, key, prefix and whole-dataset claims take what they say, up to `most`; fewer than
/// `most` back means nothing is left.
async fn claim_selectors_pick_what_they_say<I: Index>(index: &I) -> Result<(), String> {
    for (i, key) in ["a/0", "a/1", "b/0", "b/1"].into_iter().enumerate() {
        let at = T0 + i as u64;
        put(index, "ds", key, &entry(&format!("o-{key}"), 1, 1, at)).await?;
    }
    let head = ClaimSelector::Head {
        count: 2,
        policy: EvictionPolicy::Lru,
    };
    let claimed = claim(index, "ds", &head, T0 + 10, "t", 10).await?;
    let got: Vec<(&str, ClaimReason)> =
        claimed.iter().map(|c| (c.key.as_str(), c.reason)).collect();
    ensure_eq(
        "head of the lru order",
        got,
        vec![("a/0", ClaimReason::Evicted), ("a/1", ClaimReason::Evicted)],
    )?;
    let absent = claim(index, "ds", &ClaimSelector::Key("zz".into()), T0, "t", 10).await?;
    ensure_eq("a key that is not cached", keys_of(&absent), vec![])?;
    let one = claim(index, "ds", &ClaimSelector::Key("b/1".into()), T0, "t", 10).await?;
    let got: Vec<(&str, ClaimReason, u64)> = one
        .iter()
        .map(|c| (c.key.as_str(), c.reason, c.size))
        .collect();
    ensure_eq("one key", got, vec![("b/1", ClaimReason::Purged, 1)])?;
    put(index, "ds", "c/0", &entry("o-c/0", 1, 1, T0)).await?;
    let first = claim(index, "ds", &ClaimSelector::All, T0, "t", 1).await?;
    ensure_eq(
        "all, at most 1, in key order",
        keys_of(&first),
        strings(&["b/0"]),
    )?;
    let rest = claim(index, "ds", &ClaimSelector::All, T0, "t", 5).await?;
    ensure_eq("all, the rest", keys_of(&rest), strings(&["c/0"]))?;
    let none = claim(index, "ds", &ClaimSelector::All, T0, "t", 5).await?;
    ensure_eq("all, nothing left", keys_of(&none), vec![])?;
    for key in ["x/0", "x/1", "x/2", "xy/0", "y/0"] {
        put(index, "p", key, &entry(&format!("o-p-{key}"), 1, 1, T0)).await?;
    }
    let prefix = ClaimSelector::Prefix("x/".into());
    let first = claim(index, "p", &prefix, T0, "t", 2).await?;
    ensure_eq(
        "prefix, at most 2",
        keys_of(&first),
        strings(&["x/0", "x/1"]),
    )?;
    let rest = claim(index, "p", &prefix, T0, "t", 10).await?;
    ensure_eq("prefix, the rest", keys_of(&rest), strings(&["x/2"]))?;
    let mut left = listed(index, "p", KeySort::Created, false).await?;
    left.sort();
    ensure_eq("left by the prefix claims", left, strings(&["xy/0", "y/0"]))
}

/// Expired keys are claimed first by any claim, as expired, whatever the selector.
async fn expired_keys_are_claimed_first<I: Index>(index: &I) -> Result<(), String> {
    put_ttl(index, "ds", "old", &entry("o1", 5, 1, T0), 60_000).await?;
    put(index, "ds", "new", &entry("o2", 5, 1, T0)).await?;
    let claimed = claim(index, "ds", &ClaimSelector::Expired, T0 + 61_000, "t", 10).await?;
    let got: Vec<(&str, ClaimReason)> =
        claimed.iter().map(|c| (c.key.as_str(), c.reason)).collect();
    ensure_eq("expired only", got, vec![("old", ClaimReason::Expired)])?;
    let scores = index
        .lowest_scores(&strings(&["ds", "empty"]), Order::LastAccess)
        .await
        .call("lowest_scores")?;
    ensure_eq("lowest scores", scores, vec![Some(score(T0)), None])?;
    ensure_eq(
        "lowest scores of no datasets",
        index
            .lowest_scores(&[], Order::LastAccess)
            .await
            .call("lowest_scores")?,
        vec![],
    )?;
    put_ttl(index, "ds", "old2", &entry("o3", 5, 1, T0), 60_000).await?;
    let claimed = claim(
        index,
        "ds",
        &ClaimSelector::Key("new".into()),
        T0 + 61_000,
        "t",
        10,
    )
    .await?;
    let got: Vec<(&str, ClaimReason)> =
        claimed.iter().map(|c| (c.key.as_str(), c.reason)).collect();
    ensure_eq(
        "a key claim takes the expired first",
        got,
        vec![("old2", ClaimReason::Expired), ("new", ClaimReason::Purged)],
    )
}

/// An object is unheld only when no dataset's entry holds it; a re-put after a claim survives
/// the drop; prefix, key and whole-dataset claims select what they say.
async fn claims_respect_shared_objects_and_rewrites<I: Index>(index: &I) -> Result<(), String> {
    put(index, "a", "v/0", &entry("shared", 10, 1, T0)).await?;
    put(index, "b", "v/0", &entry("shared", 10, 1, T0)).await?;
    put(index, "a", "v/1", &entry("own", 10, 1, T0)).await?;
    put(index, "a", "w/0", &entry("w", 10, 1, T0)).await?;
    let first = claim(
        index,
        "a",
        &ClaimSelector::Prefix("v/".into()),
        T0,
        "t1",
        10,
    )
    .await?;
    let mut got: Vec<(String, bool)> = first
        .iter()
        .map(|c| (c.key.clone(), c.object_unheld))
        .collect();
    got.sort();
    ensure_eq(
        "(key, unheld) of the prefix claim",
        got,
        vec![("v/0".to_owned(), false), ("v/1".to_owned(), true)],
    )?;
    ensure_eq(
        "held (shared, own)",
        held(index, &["shared", "own"]).await?,
        vec![true, false],
    )?;
    // v/1 is written again (with other bytes: its old object is being deleted, so the same
    // object would not be indexed) before the drop: the new entry stays.
    put(index, "a", "v/1", &entry("own-rewritten", 10, 1, T0 + 5)).await?;
    index
        .drop_claimed("a", &strings(&["v/0", "v/1"]), &[], "t1")
        .await
        .call("drop_claimed")?;
    let kept = hit(index, "a", "v/1", T0 + 6).await?;
    ensure_eq(
        "the rewrite survives",
        kept.object_key.as_str(),
        "own-rewritten",
    )?;
    miss(index, "a", "v/0", T0 + 6).await?;
    let key = claim(index, "b", &ClaimSelector::Key("v/0".into()), T0, "t2", 10).await?;
    let unheld: Vec<bool> = key.iter().map(|c| c.object_unheld).collect();
    ensure_eq("the last holder let go", unheld, vec![true])?;
    ensure_eq(
        "held (shared)",
        held(index, &["shared"]).await?,
        vec![false],
    )?;
    let all = claim(index, "a", &ClaimSelector::All, T0, "t3", 10).await?;
    ensure_eq("all of a", keys_of(&all), strings(&["v/1", "w/0"]))?;
    let stats = index
        .cache_stats(&strings(&["a", "b"]))
        .await
        .call("cache_stats")?;
    let entries: Vec<u64> = stats.iter().map(|s| s.counters.entries).collect();
    ensure_eq("entries left", entries, vec![0, 0])?;
    ensure_eq(
        "total_stored",
        index.total_stored().await.call("total_stored")?,
        0,
    )?;
    ensure_eq(
        "cached datasets",
        index.cached_datasets().await.call("cached_datasets")?,
        strings(&["a", "b"]),
    )?;
    index
        .drop_dataset_records("a")
        .await
        .call("drop_dataset_records")?;
    ensure_eq(
        "cached datasets after dropping a",
        index.cached_datasets().await.call("cached_datasets")?,
        strings(&["b"]),
    )
}

/// A claim marks the objects nobody holds any more as being deleted: until the removal lifts
/// the mark, neither a miss's write-back nor an adoption indexes them (the reads are counted),
/// so no entry vouches for an object the removal then deletes.
async fn objects_being_deleted_are_not_indexed<I: Index>(index: &I) -> Result<(), String> {
    let e = entry("shared", 10, 5, T0);
    put(index, "a", "k", &e).await?;
    let claimed = claim(index, "a", &ClaimSelector::All, T0, "tok", 10).await?;
    let unheld: Vec<bool> = claimed.iter().map(|c| c.object_unheld).collect();
    ensure_eq("claimed, unheld", unheld, vec![true])?;
    let written = index
        .record_miss("b", "k", 10, Some(&e), DAY_MS)
        .await
        .call("record_miss")?;
    ensure_eq("record_miss of an object being deleted", written, None)?;
    let adopted = index.adopt("b", "k2", &e, DAY_MS).await.call("adopt")?;
    ensure_eq("adopt of an object being deleted", adopted, None)?;
    for key in ["k", "k2"] {
        miss(index, "b", key, T0).await?;
    }
    let c = counters(index, "b").await?;
    ensure_eq(
        "(misses, hits, entries, entries_written)",
        (c.misses, c.hits, c.entries, c.entries_written),
        (1, 1, 0, 0),
    )?;
    ensure_eq(
        "held (shared)",
        held(index, &["shared"]).await?,
        vec![false],
    )?;
    // The removal deleted the object and lifts the mark: the same bytes are indexed again.
    index
        .drop_claimed("a", &keys_of(&claimed), &strings(&["shared"]), "tok")
        .await
        .call("drop_claimed")?;
    put(index, "b", "k", &e).await?;
    // A key whose object stays held by another entry marks nothing.
    let kept = entry("kept", 10, 5, T0);
    put(index, "a", "x", &kept).await?;
    put(index, "c", "x", &kept).await?;
    let claimed = claim(index, "a", &ClaimSelector::All, T0, "tok2", 10).await?;
    let unheld: Vec<bool> = claimed.iter().map(|c| c.object_unheld).collect();
    ensure_eq("claimed, still held", unheld, vec![false])?;
    put(index, "b", "x", &kept).await
}

/// `drop_claimed` lifts only the marks its own claim (its token) set: a drop with another
/// token leaves the object marked.
async fn deleting_marks_are_lifted_by_their_removal_only<I: Index>(
    index: &I,
) -> Result<(), String> {
    let e = entry("obj", 10, 5, T0);
    put(index, "a", "k", &e).await?;
    let claimed = claim(index, "a", &ClaimSelector::All, T0, "t1", 10).await?;
    ensure_eq("claimed", keys_of(&claimed), strings(&["k"]))?;
    index
        .drop_claimed("a", &strings(&["k"]), &strings(&["obj"]), "t2")
        .await
        .call("drop_claimed t2")?;
    let written = index
        .record_miss("b", "k", 10, Some(&e), DAY_MS)
        .await
        .call("record_miss")?;
    ensure_eq("record_miss after another token's drop", written, None)?;
    index
        .drop_claimed("a", &strings(&["k"]), &strings(&["obj"]), "t1")
        .await
        .call("drop_claimed t1")?;
    put(index, "b", "k", &e).await
}

/// `forget` undoes the hit and deletes the entry only when it is still the same one (object
/// and creation time); a lookup returns the entry as it was before that read was counted.
async fn forget_removes_only_the_same_entry<I: Index>(index: &I) -> Result<(), String> {
    put(index, "ds", "k", &entry("o1", 10, 5, T0)).await?;
    let found = hit(index, "ds", "k", T0 + 1).await?;
    ensure_eq(
        "(hits, last access) of a first lookup",
        (found.hits, found.last_access_ms),
        (0, T0),
    )?;
    let other = IndexEntry {
        created_ms: T0 + 999,
        ..found.clone()
    };
    index.forget("ds", "k", &other).await.call("forget other")?;
    let again = hit(index, "ds", "k", T0 + 2).await?;
    ensure_eq(
        "(hits, last access) of a second lookup",
        (again.hits, again.last_access_ms),
        (1, T0 + 1),
    )?;
    index.forget("ds", "k", &found).await.call("forget")?;
    miss(index, "ds", "k", T0 + 3).await?;
    let c = counters(index, "ds").await?;
    ensure_eq(
        "(hits, bytes_from_cache, entries, bytes_stored)",
        (c.hits, c.bytes_from_cache, c.entries, c.bytes_stored),
        (1, 10, 0, 0),
    )?;
    ensure_eq("held (o1)", held(index, &["o1"]).await?, vec![false])?;
    ensure_eq(
        "total_stored",
        index.total_stored().await.call("total_stored")?,
        0,
    )?;
    put(index, "ds", "j", &entry("o2", 10, 5, T0)).await?;
    let stale = hit(index, "ds", "j", T0 + 4).await?;
    put(index, "ds", "j", &entry("o3", 10, 5, T0 + 5)).await?;
    index.forget("ds", "j", &stale).await.call("forget stale")?;
    let fresh = hit(index, "ds", "j", T0 + 6).await?;
    ensure_eq("the fresher entry stays", fresh.object_key.as_str(), "o3")
}

/// `count_read` counts a shared hit (with its bytes) or a shared miss (no origin bytes); a miss
/// that stored nothing counts its origin bytes and writes no entry.
async fn shared_reads_and_unstored_misses_are_counted<I: Index>(index: &I) -> Result<(), String> {
    index
        .count_read("ds", true, 10)
        .await
        .call("count_read hit")?;
    index
        .count_read("ds", false, 99)
        .await
        .call("count_read miss")?;
    let c = counters(index, "ds").await?;
    ensure_eq(
        "(hits, bytes_from_cache, misses, bytes_from_origin)",
        (c.hits, c.bytes_from_cache, c.misses, c.bytes_from_origin),
        (1, 10, 1, 0),
    )?;
    let written = index
        .record_miss("ds", "k", 7, None, DAY_MS)
        .await
        .call("record_miss")?;
    ensure_eq("record_miss without an entry", written, None)?;
    miss(index, "ds", "k", T0).await?;
    let c = counters(index, "ds").await?;
    ensure_eq(
        "(hits, misses, bytes_from_origin, entries, entries_written)",
        (
            c.hits,
            c.misses,
            c.bytes_from_origin,
            c.entries,
            c.entries_written,
        ),
        (1, 2, 7, 0, 0),
    )
}

/// `adopt` writes and accounts the entry (at its last access), counts a hit, and answers the
/// bytes stored by the dataset and by all.
async fn adopt_writes_the_entry_and_counts_a_hit<I: Index>(index: &I) -> Result<(), String> {
    let adopted = IndexEntry {
        last_access_ms: T0 + 100,
        ..entry("o1", 10, 5, T0)
    };
    let stored = index
        .adopt("a", "k", &adopted, DAY_MS)
        .await
        .call("adopt")?;
    ensure_eq(
        "stored bytes after adopt",
        stored,
        Some(StoredBytes {
            dataset: 10,
            total: 10,
        }),
    )?;
    let c = counters(index, "a").await?;
    ensure_eq(
        "(hits, bytes_from_cache, misses, entries, bytes_stored, entries_written)",
        (
            c.hits,
            c.bytes_from_cache,
            c.misses,
            c.entries,
            c.bytes_stored,
            c.entries_written,
        ),
        (1, 10, 0, 1, 10, 0),
    )?;
    let found = hit(index, "a", "k", T0 + 200).await?;
    ensure_eq("adopted object", found.object_key.as_str(), "o1")?;
    let page = index
        .list_keys("a", KeySort::Created, false, 0, 10)
        .await
        .call("list_keys")?;
    let expires: Vec<u64> = page.keys.iter().map(|k| k.expires_ms).collect();
    ensure_eq(
        "expires a TTL after the last access",
        expires,
        vec![T0 + 100 + DAY_MS],
    )?;
    let stored = index
        .record_miss("b", "k", 5, Some(&entry("o2", 5, 1, T0)), DAY_MS)
        .await
        .call("record_miss")?;
    ensure_eq(
        "stored bytes after another dataset's miss",
        stored,
        Some(StoredBytes {
            dataset: 5,
            total: 15,
        }),
    )?;
    ensure_eq(
        "cached datasets",
        index.cached_datasets().await.call("cached_datasets")?,
        strings(&["a", "b"]),
    )
}

/// A key written again with another object lets go of the old one and is accounted once.
async fn rewrites_release_the_old_object<I: Index>(index: &I) -> Result<(), String> {
    ensure_eq("held of nothing", held(index, &[]).await?, vec![])?;
    put(index, "ds", "k", &entry("o1", 10, 1, T0)).await?;
    ensure_eq(
        "held (o1, never)",
        held(index, &["o1", "never"]).await?,
        vec![true, false],
    )?;
    put(index, "ds", "k", &entry("o2", 4, 1, T0 + 1)).await?;
    ensure_eq(
        "held (o1, o2)",
        held(index, &["o1", "o2"]).await?,
        vec![false, true],
    )?;
    let c = counters(index, "ds").await?;
    ensure_eq(
        "(entries, bytes_stored)",
        (c.entries, c.bytes_stored),
        (1, 4),
    )?;
    ensure_eq(
        "total_stored",
        index.total_stored().await.call("total_stored")?,
        4,
    )?;
    let found = hit(index, "ds", "k", T0 + 2).await?;
    ensure_eq(
        "(object, size)",
        (found.object_key.as_str(), found.size),
        ("o2", 4),
    )
}

/// Listings page by rank in every sort, ascending and descending, with the count of keys.
async fn list_keys_pages_and_sorts<I: Index>(index: &I) -> Result<(), String> {
    for (i, (size, fetch_ms)) in [(50, 5), (10, 4), (40, 3), (20, 2), (30, 1)]
        .into_iter()
        .enumerate()
    {
        let i = i as u64;
        let e = entry(&format!("o{i}"), size, fetch_ms, T0 + i * 10_000);
        put(index, "ds", &format!("k{i}"), &e).await?;
    }
    for (key, at) in [
        ("k3", 100_000),
        ("k3", 101_000),
        ("k3", 102_000),
        ("k1", 103_000),
    ] {
        hit(index, "ds", key, T0 + at).await?;
    }
    let mut pages = Vec::new();
    for offset in [0, 2, 4, 5] {
        let page = index
            .list_keys("ds", KeySort::Created, false, offset, 2)
            .await
            .call("list_keys")?;
        ensure_eq(&format!("accounted at rank {offset}"), page.accounted, 5)?;
        pages.push(page.keys.into_iter().map(|k| k.key).collect::<Vec<_>>());
    }
    let want: Vec<Vec<String>> = vec![
        strings(&["k0", "k1"]),
        strings(&["k2", "k3"]),
        strings(&["k4"]),
        vec![],
    ];
    ensure_eq("pages by creation", pages, want)?;
    for (sort, descending, want) in [
        (KeySort::Created, true, ["k4", "k3", "k2", "k1", "k0"]),
        (KeySort::Size, false, ["k1", "k3", "k4", "k2", "k0"]),
        (KeySort::Size, true, ["k0", "k2", "k4", "k3", "k1"]),
        (KeySort::FetchMs, false, ["k4", "k3", "k2", "k1", "k0"]),
        (KeySort::Hits, true, ["k3", "k1", "k4", "k2", "k0"]),
        (KeySort::Hits, false, ["k0", "k2", "k4", "k1", "k3"]),
        (KeySort::LastAccess, true, ["k1", "k3", "k4", "k2", "k0"]),
    ] {
        ensure_eq(
            &format!(
                "by {} {}",
                sort.as_str(),
                if descending { "desc" } else { "asc" }
            ),
            listed(index, "ds", sort, descending).await?,
            strings(&want),
        )?;
    }
    let page = index
        .list_keys("ds", KeySort::Hits, true, 0, 1)
        .await
        .call("list_keys")?;
    let top = page.keys.first().ok_or("an empty page of hits")?;
    ensure_eq(
        "(key, hits, last access, size) of the most hit",
        (
            top.key.as_str(),
            top.entry.hits,
            top.entry.last_access_ms,
            top.entry.size,
        ),
        ("k3", 3, T0 + 102_000, 20),
    )
}

/// Run-time datasets round-trip and every change raises the version lookups answer; stats
/// snapshots keep the newest, newest first.
async fn runtime_datasets_and_snapshots<I: Index>(index: &I) -> Result<(), String> {
    let version = || async {
        index
            .lookup("ds", "k", T0, None, None, None)
            .await
            .call("lookup")
            .map(|l| l.datasets_version)
    };
    ensure_eq("version at first", version().await?, 0)?;
    let define = |json: &'static str| index.put_runtime_dataset("x", json);
    ensure_eq(
        "a new dataset",
        define(r#"{"refs":"http://a/r.json"}"#).await.call("put")?,
        true,
    )?;
    ensure_eq(
        "a replaced dataset",
        define(r#"{"refs":"http://b/r.json"}"#).await.call("put")?,
        false,
    )?;
    let stored = index.runtime_datasets().await.call("runtime_datasets")?;
    ensure_eq(
        "definitions",
        stored.definitions,
        vec![("x".to_owned(), r#"{"refs":"http://b/r.json"}"#.to_owned())],
    )?;
    ensure_eq(
        "(version, lookup's version): every change raises it",
        (stored.version, version().await?),
        (2, 2),
    )?;
    index.put_runtime_dataset("w", "{}").await.call("put w")?;
    let remove = || index.remove_runtime_dataset("x");
    ensure_eq("removing it", remove().await.call("remove")?, true)?;
    ensure_eq("removing it again", remove().await.call("remove")?, false)?;
    let stored = index.runtime_datasets().await.call("runtime_datasets")?;
    ensure_eq(
        "(version, definitions) after the removals",
        (stored.version, stored.definitions),
        (5, vec![("w".to_owned(), "{}".to_owned())]),
    )?;
    ensure_eq("lookup's version after the removals", version().await?, 5)?;
    for n in 0..4 {
        index
            .record_snapshot("ds", &format!("{{\"n\":{n}}}"), 3)
            .await
            .call("record_snapshot")?;
    }
    ensure_eq(
        "snapshots",
        index.snapshots("ds", 10).await.call("snapshots")?,
        strings(&[r#"{"n":3}"#, r#"{"n":2}"#, r#"{"n":1}"#]),
    )?;
    ensure_eq(
        "the newest 2 snapshots",
        index.snapshots("ds", 2).await.call("snapshots")?,
        strings(&[r#"{"n":3}"#, r#"{"n":2}"#]),
    )?;
    ensure_eq(
        "another dataset's snapshots",
        index.snapshots("other", 10).await.call("snapshots")?,
        vec![],
    )?;
    ensure_eq(
        "no snapshots asked for",
        index.snapshots("ds", 0).await.call("snapshots")?,
        vec![],
    )?;
    index
        .record_snapshot("zero", "{}", 0)
        .await
        .call("record_snapshot")?;
    ensure_eq(
        "a history that keeps none",
        index.snapshots("zero", 10).await.call("snapshots")?,
        vec![],
    )?;
    index
        .drop_dataset_records("ds")
        .await
        .call("drop_dataset_records")?;
    ensure_eq(
        "snapshots after drop_dataset_records",
        index.snapshots("ds", 10).await.call("snapshots")?,
        vec![],
    )
}

/// The orphan cursor is `None` until set, then what was set last, and `None` again once cleared.
async fn orphan_cursor_round_trips<I: Index>(index: &I) -> Result<(), String> {
    let cursor = || index.orphan_cursor();
    ensure_eq("at first", cursor().await.call("orphan_cursor")?, None)?;
    for set in ["zec/v1/ab/cdef", "zec/v1/ff/0123"] {
        index
            .set_orphan_cursor(Some(set))
            .await
            .call("set_orphan_cursor")?;
        ensure_eq(
            "after set",
            cursor().await.call("orphan_cursor")?,
            Some(set.to_owned()),
        )?;
    }
    index
        .set_orphan_cursor(None)
        .await
        .call("set_orphan_cursor None")?;
    ensure_eq(
        "after clearing",
        cursor().await.call("orphan_cursor")?,
        None,
    )
}

/// Once a dataset's keys are removed, `drop_dataset_records` deletes its counters, orders and
/// snapshots and takes it off the cached datasets; another dataset keeps all of its own.
async fn drop_dataset_records_forgets_only_that_dataset<I: Index>(index: &I) -> Result<(), String> {
    put(index, "a", "k", &entry("o1", 10, 1, T0)).await?;
    put(index, "b", "k", &entry("o2", 20, 1, T0)).await?;
    hit(index, "a", "k", T0 + 1).await?;
    for dataset in ["a", "b"] {
        index
            .record_snapshot(dataset, "{}", 10)
            .await
            .call("record_snapshot")?;
    }
    let claimed = claim(index, "a", &ClaimSelector::All, T0, "t", 10).await?;
    index
        .drop_claimed("a", &keys_of(&claimed), &strings(&["o1"]), "t")
        .await
        .call("drop_claimed")?;
    index
        .drop_dataset_records("a")
        .await
        .call("drop_dataset_records")?;
    ensure_eq(
        "cached datasets",
        index.cached_datasets().await.call("cached_datasets")?,
        strings(&["b"]),
    )?;
    ensure_eq(
        "a's counters",
        counters(index, "a").await?,
        DatasetStats::default(),
    )?;
    let b = counters(index, "b").await?;
    ensure_eq(
        "b's (misses, entries, bytes_stored)",
        (b.misses, b.entries, b.bytes_stored),
        (1, 1, 20),
    )?;
    ensure_eq(
        "a's snapshots",
        index.snapshots("a", 10).await.call("snapshots")?,
        vec![],
    )?;
    ensure_eq(
        "b's snapshots",
        index.snapshots("b", 10).await.call("snapshots")?,
        strings(&["{}"]),
    )?;
    let scores = index
        .lowest_scores(&strings(&["a", "b"]), Order::Created)
        .await
        .call("lowest_scores")?;
    ensure_eq("lowest scores", scores, vec![None, Some(score(T0))])?;
    ensure_eq(
        "total_stored",
        index.total_stored().await.call("total_stored")?,
        20,
    )
}

/// A versioned lookup answers `Stale` without a fresh record and `Changed` for another
/// generation, both with no entry and nothing counted; only the current generation's lookup
/// finds and counts the entry. A first generation is its time (a lost record never repeats an
/// earlier one's numbers); a new digest raises it, the same digest keeps it, an older observation
/// changes nothing, and a bump raises it.
async fn source_versions_gate_versioned_lookups<I: Index>(index: &I) -> Result<(), String> {
    let probe = |generation| {
        Some(VersionProbe {
            generation,
            stale_after_ms: 60_000,
        })
    };
    let looked = |generation, at_ms| async move {
        let found = index
            .lookup("ds", "k", at_ms, probe(generation), None, None)
            .await
            .call("versioned lookup")?;
        Ok::<_, String>((found.source, found.entry.is_some()))
    };
    put(index, "ds", "k", &entry("o1", 10, 5, T0)).await?;
    ensure_eq(
        "no record",
        looked(0, T0).await?,
        (SourceVersion::Stale, false),
    )?;
    let first = index
        .set_source_version("ds", "d1", T0)
        .await
        .call("set_source_version")?;
    ensure_eq("a first generation is its time", first, T0)?;
    ensure_eq(
        "a lookup with no generation known",
        looked(0, T0 + 1).await?,
        (SourceVersion::Changed(T0), false),
    )?;
    ensure_eq(
        "the current generation",
        looked(T0, T0 + 2).await?,
        (SourceVersion::Current(T0), true),
    )?;
    ensure_eq(
        "a record older than stale_after_ms",
        looked(T0, T0 + 60_000).await?,
        (SourceVersion::Stale, false),
    )?;
    ensure_eq("hits counted", counters(index, "ds").await?.hits, 1)?;
    let unversioned = index
        .lookup("ds", "k", T0 + 60_000, None, None, None)
        .await
        .call("unversioned lookup")?;
    ensure_eq(
        "an unversioned lookup ignores the record",
        (unversioned.source, unversioned.entry.is_some()),
        (SourceVersion::Unprobed, true),
    )?;
    let set = |digest: &'static str, at_ms: u64| async move {
        index
            .set_source_version("ds", digest, at_ms)
            .await
            .call("set_source_version")
    };
    ensure_eq("the same digest", set("d1", T0 + 60_000).await?, T0)?;
    ensure_eq(
        "checked again: fresh",
        looked(T0, T0 + 60_001).await?.0,
        SourceVersion::Current(T0),
    )?;
    ensure_eq("a new digest", set("d2", T0 + 61_000).await?, T0 + 1)?;
    ensure_eq(
        "an older observation",
        set("d1", T0 + 60_500).await?,
        T0 + 1,
    )?;
    let bumped = index
        .bump_source_version("ds", T0 + 61_000)
        .await
        .call("bump_source_version")?;
    ensure_eq("a bump", bumped, T0 + 2)?;
    ensure_eq(
        "after the bump",
        looked(T0 + 1, T0 + 61_001).await?.0,
        SourceVersion::Changed(T0 + 2),
    )?;
    ensure_eq(
        "another dataset has no record",
        index
            .lookup("other", "k", T0, probe(T0 + 2), None, None)
            .await
            .call("lookup other")?
            .source,
        SourceVersion::Stale,
    )?;
    let fresh = index
        .bump_source_version("new", T0 + 5)
        .await
        .call("bump_source_version of a new record")?;
    ensure_eq("a bump of no record starts at its time", fresh, T0 + 5)
}

/// A lookup naming its source file returns the validator last recorded for that file (none
/// before one is), whatever the entry, and so does `file_validator`; an observation sent before the recorded one changes
/// nothing; a lookup naming no file returns none.
async fn file_validators_come_back_with_lookups<I: Index>(index: &I) -> Result<(), String> {
    let url = "http://o.test/a.nc";
    put(index, "ds", "k", &entry("o1", 10, 5, T0)).await?;
    let validator = |file| async move {
        let found = index
            .lookup("ds", "k", T0, None, file, None)
            .await
            .call("lookup with a file")?;
        Ok::<_, String>((found.file_validator, found.entry.is_some()))
    };
    ensure_eq(
        "nothing recorded",
        validator(Some(url)).await?,
        (None, true),
    )?;
    index
        .set_file_validator(url, "\"e1\"", T0)
        .await
        .call("set_file_validator")?;
    ensure_eq(
        "recorded",
        validator(Some(url)).await?,
        (Some("\"e1\"".to_owned()), true),
    )?;
    index
        .set_file_validator(url, "Tue, 01 Dec 2026 10:00:00 GMT", T0 + 10)
        .await
        .call("set_file_validator again")?;
    ensure_eq(
        "replaced",
        validator(Some(url)).await?.0,
        Some("Tue, 01 Dec 2026 10:00:00 GMT".to_owned()),
    )?;
    index
        .set_file_validator(url, "\"slow\"", T0 + 5)
        .await
        .call("set_file_validator from an earlier request")?;
    ensure_eq(
        "an observation sent earlier changes nothing",
        validator(Some(url)).await?.0,
        Some("Tue, 01 Dec 2026 10:00:00 GMT".to_owned()),
    )?;
    ensure_eq(
        "read alone",
        index.file_validator(url).await.call("file_validator")?,
        Some("Tue, 01 Dec 2026 10:00:00 GMT".to_owned()),
    )?;
    ensure_eq(
        "another file",
        validator(Some("http://o.test/b.nc")).await?.0,
        None,
    )?;
    ensure_eq(
        "another file read alone",
        index
            .file_validator("http://o.test/b.nc")
            .await
            .call("file_validator of another file")?,
        None,
    )?;
    ensure_eq("no file named", validator(None).await?.0, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeIndex;
    use futures::executor::block_on;

    /// The in-memory fake, its clock moved by hand.
    struct Fake;

    impl IndexUnderTest for Fake {
        type Index = FakeIndex;
        fn fresh(&self, _case: &str) -> FakeIndex {
            FakeIndex::healthy()
        }
        async fn let_pass(&self, index: &FakeIndex, ms: u64) {
            index.now_ms.set(index.now_ms.get() + ms);
        }
    }

    /// The fake index keeps the whole contract the Lua scripts keep.
    #[test]
    fn the_fake_index_keeps_the_contract() {
        let report = block_on(run(&Fake));
        if let Err(failure) = report.verify(&CASES) {
            panic!("{failure}");
        }
    }

    /// A fake whose TTLs never pass fails the expiry case (and only that): the suite can fail.
    #[test]
    fn a_clock_that_stands_still_fails_the_expiry_case() {
        struct Frozen;
        impl IndexUnderTest for Frozen {
            type Index = FakeIndex;
            fn fresh(&self, _case: &str) -> FakeIndex {
                FakeIndex::healthy()
            }
            async fn let_pass(&self, _index: &FakeIndex, _ms: u64) {}
        }
        let report = block_on(run(&Frozen));
        let failed: Vec<&str> = report.failures().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(failed, ["entries_and_leases_expire_after_their_ttl"]);
    }
}
