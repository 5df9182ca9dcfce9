//! Removing cached keys: eviction to capacity, purges, and the scheduled sweep (expired entries,
//! capacities, orphaned objects, stats snapshots).
//!
//! Generic over the backend traits. Every removal follows the same three steps: the index claims
//! the keys (atomically takes them out of the accounting and marks their entries, so lookups
//! miss them), the objects no entry holds any more are deleted from storage, and only then are
//! the marked entries deleted. A crash between the steps leaves a marked entry that expires by
//! itself and, at worst, an object no entry holds, which the sweep deletes: never an entry that
//! vouches for a deleted object (the claim marks the objects it will delete, and no entry is
//! written for a marked object until the removal lifts the mark). Storage is shared by datasets
//! reading the same source range, so an object is deleted only when no dataset's entry holds it.

use serde::Serialize;

use crate::cache::CacheBackends;
use crate::clock::Clock;
use crate::error::Error;
use crate::index::entry::{ClaimReason, ClaimSelector, ClaimedKey};
use crate::index::Index;
use crate::keys::CacheKeys;
use crate::platform::Platform;
use crate::policy::capacity::{CapacityLimits, Limit};
use crate::settings::Settings;
use crate::source::datasets::DatasetRegistry;
use crate::store::{ChunkStore, MAX_DELETE_BATCH};

/// Keys claimed per index call.
pub const CLAIM_BATCH: u64 = 200;
/// Claims one removal makes at most (bounds one request's subrequests: two index calls and one
/// batched storage delete each). What is left is removed by the next call or sweep.
pub const MAX_CLAIM_ROUNDS: usize = 20;
/// Victims one deployment-wide eviction takes at most, one at a time.
pub const MAX_TOTAL_EVICTIONS: usize = crate::settings::DEFAULT_TOTAL_EVICTIONS_PER_RUN as usize;
/// Objects listed per storage page in the orphan sweep.
pub const ORPHAN_PAGE: u32 = 500;
/// Stats snapshots kept per dataset (a week of hourly sweeps).
pub const SNAPSHOTS_KEPT: u64 = 168;

/// What an eviction needs besides the index, the store and the dataset.
#[derive(Debug, Clone, Copy)]
pub struct EvictionScope<'a> {
    /// Every dataset (a deployment-wide limit picks its victims among them).
    pub datasets: &'a [String],
    /// Now, ms since the epoch (decides which entries have expired).
    pub now_ms: u64,
    /// A value unique to this run, marking the entries it claims.
    pub token: &'a str,
    /// The most keys the deployment-wide limit evicts in this run (four subrequests each:
    /// `TOTAL_EVICTIONS_PER_RUN`); the next run goes on.
    pub total_evictions: usize,
}

/// What a removal did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemovalReport {
    /// Entries removed, whatever the reason.
    pub entries_removed: u64,
    /// Of those, expired ones.
    pub expired_removed: u64,
    /// Of those, evicted for capacity.
    pub evicted: u64,
    /// Storage objects deleted (objects other datasets still hold stay).
    pub objects_deleted: u64,
    /// Bytes taken out of the accounting.
    pub bytes_freed: u64,
    /// Whether everything selected was removed (false when the round limit stopped it).
    pub complete: bool,
    /// Storage deletes that failed (the objects are left for the sweep).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

impl RemovalReport {
    /// Nothing removed yet, nothing left over.
    fn complete() -> Self {
        Self {
            complete: true,
            ..Self::default()
        }
    }

    /// Adds `other`'s removals; the result is complete only if both parts are.
    fn add(&mut self, other: Self) {
        self.entries_removed += other.entries_removed;
        self.expired_removed += other.expired_removed;
        self.evicted += other.evicted;
        self.objects_deleted += other.objects_deleted;
        self.bytes_freed += other.bytes_freed;
        self.complete &= other.complete;
        self.failures.extend(other.failures);
    }
}

/// Removes the keys `selector` picks in `dataset` (expired keys always go too), in rounds of
/// [`CLAIM_BATCH`], at most [`MAX_CLAIM_ROUNDS`].
///
/// # Errors
/// [`Error::Index`] when the index fails (keys claimed before stay claimed and expire).
pub async fn remove_keys<I: Index, S: ChunkStore>(
    index: &I,
    store: &S,
    dataset: &str,
    selector: &ClaimSelector,
    now_ms: u64,
    token: &str,
) -> Result<RemovalReport, Error> {
    let mut report = RemovalReport::complete();
    for _ in 0..MAX_CLAIM_ROUNDS {
        let claimed = index
            .claim(dataset, selector, now_ms, token, CLAIM_BATCH)
            .await?;
        let last = (claimed.len() as u64) < CLAIM_BATCH;
        report.add(remove_claimed(index, store, dataset, claimed, token).await?);
        if last {
            return Ok(report);
        }
    }
    report.complete = false;
    Ok(report)
}

/// Deletes the objects of `claimed` that no entry holds, then the claimed entries.
async fn remove_claimed<I: Index, S: ChunkStore>(
    index: &I,
    store: &S,
    dataset: &str,
    claimed: Vec<ClaimedKey>,
    token: &str,
) -> Result<RemovalReport, Error> {
    let mut report = RemovalReport::complete();
    let unheld: Vec<String> = claimed
        .iter()
        .filter(|k| k.object_unheld && !k.object_key.is_empty())
        .map(|k| k.object_key.clone())
        .collect();
    for batch in unheld.chunks(MAX_DELETE_BATCH) {
        match store.delete_many(batch).await {
            Ok(()) => report.objects_deleted += batch.len() as u64,
            Err(e) => report
                .failures
                .push(format!("delete {} objects: {e}", batch.len())),
        }
    }
    for key in &claimed {
        report.entries_removed += 1;
        report.bytes_freed += key.size;
        match key.reason {
            ClaimReason::Expired => report.expired_removed += 1,
            ClaimReason::Evicted => report.evicted += 1,
            ClaimReason::Purged => {}
        }
    }
    let keys: Vec<String> = claimed.into_iter().map(|k| k.key).collect();
    index.drop_claimed(dataset, &keys, &unheld, token).await?;
    Ok(report)
}

/// Evicts until `dataset` is within its capacity and all datasets within the deployment's.
///
/// The deployment-wide limit evicts one key at a time from the dataset whose lowest score (in
/// that limit's policy order) is lowest overall.
///
/// # Errors
/// [`Error::Index`] when the index fails.
pub async fn enforce_limits<I: Index, S: ChunkStore>(
    index: &I,
    store: &S,
    dataset: &str,
    limits: CapacityLimits,
    scope: &EvictionScope<'_>,
) -> Result<RemovalReport, Error> {
    let mut report = RemovalReport::complete();
    if let Some(limit) = limits.dataset {
        report.add(
            remove_keys(
                index,
                store,
                dataset,
                &ClaimSelector::Capacity(limit),
                scope.now_ms,
                scope.token,
            )
            .await?,
        );
    }
    if let Some(total) = limits.total {
        report.add(enforce_total(index, store, total, scope).await?);
    }
    Ok(report)
}

/// Evicts across datasets until all of them together are within `total`.
async fn enforce_total<I: Index, S: ChunkStore>(
    index: &I,
    store: &S,
    total: Limit,
    scope: &EvictionScope<'_>,
) -> Result<RemovalReport, Error> {
    let mut report = RemovalReport::complete();
    for _ in 0..scope.total_evictions {
        if index.total_stored().await? <= total.capacity_bytes {
            return Ok(report);
        }
        let scores = index
            .lowest_scores(scope.datasets, total.policy.order())
            .await?;
        let victim = scope
            .datasets
            .iter()
            .zip(scores)
            .filter_map(|(dataset, score)| Some((dataset, score?)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((dataset, _)) = victim else {
            return Ok(report);
        };
        let selector = ClaimSelector::Head {
            count: 1,
            policy: total.policy,
        };
        let claimed = index
            .claim(dataset, &selector, scope.now_ms, scope.token, 1)
            .await?;
        if claimed.is_empty() {
            return Ok(report);
        }
        report.add(remove_claimed(index, store, dataset, claimed, scope.token).await?);
    }
    report.complete = false;
    Ok(report)
}

/// One dataset's part of a sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetSweep {
    /// The dataset.
    pub id: String,
    /// What was removed.
    #[serde(flatten)]
    pub removed: RemovalReport,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Per dataset: expired entries and evictions.
    pub datasets: Vec<DatasetSweep>,
    /// Deployment-wide evictions.
    pub total_evicted: u64,
    /// Stored objects looked at for orphans.
    pub objects_scanned: u64,
    /// Objects no entry held, deleted.
    pub orphans_deleted: u64,
    /// Whether the orphan scan reached the end of the bucket in this run (otherwise the next run
    /// goes on from where this one stopped).
    pub orphan_scan_complete: bool,
    /// Stats snapshots recorded.
    pub snapshots: u64,
    /// Datasets no longer configured whose last cached key is gone, forgotten.
    pub forgotten_datasets: Vec<String>,
    /// What failed (the sweep goes on past failures).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
}

/// The scheduled sweep: for every dataset, remove expired entries and enforce its capacity
/// (datasets no longer configured only expire, and are forgotten once empty); then
/// the deployment-wide capacity; then delete stored objects no entry holds that are older than
/// the grace period; then record a stats snapshot per dataset.
pub async fn sweep<I: Index, S: ChunkStore, C: Clock>(
    index: &I,
    store: &S,
    clock: &C,
    keys: &CacheKeys,
    datasets: &[(String, CapacityLimits)],
    settings: Settings,
    token: &str,
) -> SweepReport {
    let mut report = SweepReport::default();
    let configured: Vec<String> = datasets.iter().map(|(id, _)| id.clone()).collect();
    // Datasets no longer configured keep their cached keys until these expire; then they are
    // forgotten, so their objects do not stay forever.
    let unconfigured: Vec<(String, CapacityLimits)> = match index.cached_datasets().await {
        Ok(cached) => cached
            .into_iter()
            .filter(|id| !configured.contains(id))
            .map(|id| (id, CapacityLimits::default()))
            .collect(),
        Err(e) => {
            report.failures.push(format!("cached datasets: {e}"));
            Vec::new()
        }
    };
    let ids: Vec<String> = configured
        .iter()
        .cloned()
        .chain(unconfigured.iter().map(|(id, _)| id.clone()))
        .collect();
    let now_ms = clock.now_ms();
    for (id, limits) in datasets.iter().chain(&unconfigured) {
        let selector = limits
            .dataset
            .map_or(ClaimSelector::Expired, ClaimSelector::Capacity);
        match remove_keys(index, store, id, &selector, now_ms, token).await {
            Ok(mut removed) => {
                report.failures.append(&mut removed.failures);
                report.datasets.push(DatasetSweep {
                    id: id.clone(),
                    removed,
                });
            }
            Err(e) => report.failures.push(format!("{id}: {e}")),
        }
    }
    if let Some(total) = settings.total_capacity {
        let scope = EvictionScope {
            datasets: &ids,
            now_ms,
            token,
            total_evictions: settings.total_evictions,
        };
        match enforce_total(index, store, total, &scope).await {
            Ok(removed) => report.total_evicted = removed.evicted,
            Err(e) => report.failures.push(format!("total capacity: {e}")),
        }
    }
    if let Err(e) = delete_orphans(index, store, keys, clock.now_ms(), settings, &mut report).await
    {
        report.failures.push(format!("orphans: {e}"));
    }
    if let Err(e) = forget_emptied(index, &unconfigured, &mut report).await {
        report.failures.push(format!("unconfigured datasets: {e}"));
    }
    match record_snapshots(index, &configured, clock.now_ms()).await {
        Ok(n) => report.snapshots = n,
        Err(e) => report.failures.push(format!("snapshots: {e}")),
    }
    report
}

/// The sweep over every dataset of `registry` (run-time datasets reread first): what the cron
/// trigger and `POST /api/admin/sweep` run.
pub async fn scheduled_sweep<P: Platform>(
    cache: &CacheBackends<P>,
    registry: &DatasetRegistry,
    settings: Settings,
    token: &str,
) -> SweepReport {
    registry
        .refresh_runtime(&cache.index, cache.clock.now_ms())
        .await;
    let datasets: Vec<(String, CapacityLimits)> = registry
        .datasets()
        .iter()
        .map(|d| (d.id.clone(), d.limits(settings.total_capacity)))
        .collect();
    sweep(
        &cache.index,
        &cache.store,
        &cache.clock,
        &cache.keys,
        &datasets,
        settings,
        token,
    )
    .await
}

/// Forgets the unconfigured datasets that have no cached key left.
async fn forget_emptied<I: Index>(
    index: &I,
    unconfigured: &[(String, CapacityLimits)],
    report: &mut SweepReport,
) -> Result<(), Error> {
    let ids: Vec<String> = unconfigured.iter().map(|(id, _)| id.clone()).collect();
    let stats = index.cache_stats(&ids).await?;
    for (id, stats) in ids.into_iter().zip(stats) {
        if stats.counters.entries == 0 {
            index.drop_dataset_records(&id).await?;
            report.forgotten_datasets.push(id);
        }
    }
    Ok(())
}

/// Lists chunk objects and deletes those no entry holds, if older than the grace period: at most
/// `settings.orphan_pages` pages of [`ORPHAN_PAGE`] objects per run (three subrequests a page:
/// list, holders, delete), going on from where the previous run stopped, so a bucket of any size
/// is covered in turn within the plan's subrequest limit.
async fn delete_orphans<I: Index, S: ChunkStore>(
    index: &I,
    store: &S,
    keys: &CacheKeys,
    now_ms: u64,
    settings: Settings,
    report: &mut SweepReport,
) -> Result<(), Error> {
    let prefix = keys.object_prefix();
    let mut cursor = index.orphan_cursor().await?;
    for _ in 0..settings.orphan_pages {
        let page = store.list(&prefix, cursor.as_deref(), ORPHAN_PAGE).await?;
        report.objects_scanned += page.objects.len() as u64;
        let old: Vec<String> = page
            .objects
            .into_iter()
            .filter(|o| now_ms.saturating_sub(o.uploaded_ms) >= settings.orphan_grace_ms)
            .map(|o| o.key)
            .collect();
        let held = index.objects_held(&old).await?;
        let orphans: Vec<String> = old
            .into_iter()
            .zip(held)
            .filter_map(|(object, held)| (!held).then_some(object))
            .collect();
        if !orphans.is_empty() {
            match store.delete_many(&orphans).await {
                Ok(()) => report.orphans_deleted += orphans.len() as u64,
                Err(e) => report
                    .failures
                    .push(format!("delete {} orphans: {e}", orphans.len())),
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            report.orphan_scan_complete = true;
            break;
        }
    }
    index.set_orphan_cursor(cursor.as_deref()).await?;
    Ok(())
}

/// A point in a dataset's stats history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// Reads served from the cache so far.
    pub hits: u64,
    /// Reads served from the origin so far.
    pub misses: u64,
    /// Bytes served from the cache so far.
    pub bytes_from_cache: u64,
    /// Bytes fetched from the origin so far.
    pub bytes_from_origin: u64,
    /// Keys cached then.
    pub entries: u64,
    /// Bytes stored then.
    pub bytes_stored: u64,
}

/// Records one [`StatsSnapshot`] per dataset; returns how many.
async fn record_snapshots<I: Index>(index: &I, ids: &[String], now_ms: u64) -> Result<u64, Error> {
    let stats = index.cache_stats(ids).await?;
    let mut recorded = 0;
    for (id, stats) in ids.iter().zip(stats) {
        let c = stats.counters;
        let snapshot = StatsSnapshot {
            at_ms: now_ms,
            hits: c.hits,
            misses: c.misses,
            bytes_from_cache: c.bytes_from_cache,
            bytes_from_origin: c.bytes_from_origin,
            entries: c.entries,
            bytes_stored: c.bytes_stored,
        };
        let json = serde_json::to_string(&snapshot)
            .map_err(|e| Error::Internal(format!("snapshot: {e}")))?;
        index.record_snapshot(id, &json, SNAPSHOTS_KEPT).await?;
        recorded += 1;
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FakeIndex, InMemoryStore, StoreFault};
    use crate::index::entry::IndexEntry;
    use crate::store::StoreError;
    use futures::executor::block_on;

    /// An entry of 10 bytes for `object`.
    fn entry_for(object: &str) -> IndexEntry {
        IndexEntry {
            object_key: object.to_owned(),
            size: 10,
            checksum: String::new(),
            created_ms: 0,
            last_access_ms: 0,
            hits: 0,
            fetch_ms: 1,
            origin_validator: None,
        }
    }

    fn store_keys(index: &FakeIndex, store: &InMemoryStore, dataset: &str, n: usize) {
        for i in 0..n {
            let object = format!("t/v1/{i:05}");
            block_on(store.put(&object, vec![0; 10], &crate::store::ObjectMeta::default()))
                .unwrap();
            let entry = entry_for(&object);
            let key = format!("k/{i:05}");
            block_on(index.record_miss(dataset, &key, 10, Some(&entry), 1_000_000)).unwrap();
        }
    }

    /// The deployment-wide limit evicts at most its budget per run and says it is not done.
    #[test]
    fn total_evictions_are_budgeted() {
        let (index, store) = (FakeIndex::healthy(), InMemoryStore::default());
        store_keys(&index, &store, "a", 5);
        let datasets = ["a".to_owned()];
        let scope = EvictionScope {
            datasets: &datasets,
            now_ms: 0,
            token: "t",
            total_evictions: 3,
        };
        let total = Limit {
            capacity_bytes: 0,
            policy: crate::policy::eviction::EvictionPolicy::Lru,
        };
        let report = block_on(enforce_total(&index, &store, total, &scope)).unwrap();
        assert_eq!((report.evicted, report.complete), (3, false));
        assert_eq!(store.len(), 2);
    }

    /// A write-back or adoption of an object between its claim and its delete (another dataset
    /// reading the same source range) is not indexed: no entry vouches for the deleted object.
    /// Once the removal is over, the same bytes are indexed again.
    #[test]
    fn no_entry_is_written_for_an_object_being_deleted() {
        let (index, store) = (FakeIndex::healthy(), InMemoryStore::default());
        store_keys(&index, &store, "a", 1);
        let claimed = block_on(index.claim("a", &ClaimSelector::All, 0, "t", CLAIM_BATCH)).unwrap();
        let object = claimed[0].object_key.clone();
        assert!(claimed[0].object_unheld);
        let entry = entry_for(&object);
        // Dataset b stores (or adopts) the same bytes while a's removal is under way.
        block_on(store.put(&object, vec![0; 10], &crate::store::ObjectMeta::default())).unwrap();
        let written = block_on(index.record_miss("b", "k", 10, Some(&entry), 1_000_000)).unwrap();
        assert_eq!(written, None);
        assert_eq!(
            block_on(index.adopt("b", "k2", &entry, 1_000_000)).unwrap(),
            None
        );
        assert_eq!(
            (index.stats_of("b").misses, index.stats_of("b").hits),
            (1, 1),
            "the reads are counted"
        );
        let report = block_on(remove_claimed(&index, &store, "a", claimed, "t")).unwrap();
        assert_eq!(report.objects_deleted, 1);
        assert!(!store.contains(&object));
        assert!(block_on(index.lookup("b", "k", 0, None, None, None))
            .unwrap()
            .entry
            .is_none());
        assert!(block_on(index.lookup("b", "k2", 0, None, None, None))
            .unwrap()
            .entry
            .is_none());
        // Once the removal is done, the same bytes are indexed as usual.
        let written = block_on(index.record_miss("b", "k", 10, Some(&entry), 1_000_000)).unwrap();
        assert!(written.is_some());
    }

    /// The orphan scan reads at most its page budget per run and goes on where the last run
    /// stopped; a full pass says so and starts over next time. Held objects stay.
    #[test]
    fn orphan_scan_is_budgeted_and_resumes() {
        let (index, store) = (FakeIndex::healthy(), InMemoryStore::default());
        let keys = CacheKeys::new("t");
        store_keys(&index, &store, "ds", 3);
        let orphans = usize::try_from(ORPHAN_PAGE).unwrap() * 2 + 7;
        for i in 0..orphans {
            block_on(store.put(
                &format!("{}orphan-{i:05}", keys.object_prefix()),
                vec![1],
                &crate::store::ObjectMeta::default(),
            ))
            .unwrap();
        }
        let settings = Settings {
            orphan_grace_ms: 0,
            orphan_pages: 1,
            ..Settings::default()
        };
        let mut deleted = 0;
        let mut runs = 0;
        loop {
            let mut report = SweepReport::default();
            block_on(delete_orphans(
                &index,
                &store,
                &keys,
                10,
                settings,
                &mut report,
            ))
            .unwrap();
            runs += 1;
            assert!(report.objects_scanned <= u64::from(ORPHAN_PAGE));
            deleted += report.orphans_deleted;
            if report.orphan_scan_complete {
                break;
            }
            assert!(
                index.orphan_cursor.borrow().is_some(),
                "run {runs} left a cursor"
            );
        }
        assert_eq!(runs, 3);
        assert_eq!(deleted, orphans as u64);
        assert_eq!(store.len(), 3, "the held objects stay");
        assert!(
            index.orphan_cursor.borrow().is_none(),
            "a full pass starts over"
        );
    }

    /// A removal stops after its round limit and says so; the next call finishes the job.
    #[test]
    fn removal_is_bounded_and_reports_completeness() {
        let (index, store) = (FakeIndex::healthy(), InMemoryStore::default());
        let most = usize::try_from(CLAIM_BATCH).unwrap() * MAX_CLAIM_ROUNDS;
        store_keys(&index, &store, "ds", most + 1);
        let first = block_on(remove_keys(
            &index,
            &store,
            "ds",
            &ClaimSelector::All,
            0,
            "t",
        ))
        .unwrap();
        assert!(!first.complete);
        assert_eq!(first.entries_removed, most as u64);
        assert_eq!(first.objects_deleted, most as u64);
        let second = block_on(remove_keys(
            &index,
            &store,
            "ds",
            &ClaimSelector::All,
            0,
            "t",
        ))
        .unwrap();
        assert!(second.complete);
        assert_eq!((second.entries_removed, second.bytes_freed), (1, 10));
        assert_eq!(store.len(), 0);
        assert!(index.entries.borrow().is_empty());
    }

    /// A failed storage delete is reported, the entries still go (the sweep deletes the objects
    /// later), and the removal is not an error.
    #[test]
    fn failed_deletes_leave_orphans_for_the_sweep() {
        let index = FakeIndex::healthy();
        let store =
            InMemoryStore::with_fault(StoreFault::Delete(StoreError::Retryable("down".into())));
        store_keys(&index, &store, "ds", 3);
        let report = block_on(remove_keys(
            &index,
            &store,
            "ds",
            &ClaimSelector::All,
            0,
            "t",
        ))
        .unwrap();
        assert_eq!((report.entries_removed, report.objects_deleted), (3, 0));
        assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
        assert!(index.entries.borrow().is_empty());
        assert_eq!(store.len(), 3);
    }
}
