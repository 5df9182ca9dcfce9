//! In-memory fakes of the backend traits, for unit tests only (`#[cfg(test)]`).
//!
//! They count calls and inject faults, so tests can assert "written once", "deleted after a
//! failed read" and the like. Integration tests in `tests/` cannot see this module.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use crate::clock::Clock;
use crate::index::entry::{
    CacheStats, ClaimReason, ClaimSelector, ClaimedKey, DatasetStats, IndexEntry, KeyInfo, KeyPage,
    Lookup, RuntimeDatasets, StoredBytes,
};
use crate::index::transport::{RawReply, TransportError, UpstashTransport};
use crate::index::{Index, IndexError};
use crate::policy::eviction::{gdsf_priority, lfu_score, EvictionPolicy, Order};
use crate::policy::listing::{percentile_rank, KeySort};
use crate::store::{ChunkStore, ListedObject, ObjectPage, StoreError, StoredObject};
use crate::upstash::HttpCall;

/// A cheap handle to a fake's state: tests keep a clone and hand another to the code under
/// test, both seeing the same state (no forwarding impls over `Rc<T>`). Configure a fake
/// (`DerefMut`) before cloning it.
macro_rules! handle {
    ($(#[$doc:meta])* $handle:ident => $state:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $handle(Rc<$state>);

        impl Deref for $handle {
            type Target = $state;
            fn deref(&self) -> &$state {
                &self.0
            }
        }

        impl DerefMut for $handle {
            fn deref_mut(&mut self) -> &mut $state {
                Rc::get_mut(&mut self.0).expect("a fake is configured before it is shared")
            }
        }

        impl From<$state> for $handle {
            fn from(state: $state) -> Self {
                Self(Rc::new(state))
            }
        }
    };
}

/// The fakes as a platform: what the unit tests of the request handler and the cache path run on.
pub struct Fakes;

impl crate::platform::Platform for Fakes {
    type Index = FakeIndex;
    type Store = InMemoryStore;
    type Origin = FakeOrigin;
    type Clock = ManualClock;
    type Refs = FakeRefsSource;
}

/// A clock stuck at one instant (`sleep` does not move it).
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
    async fn sleep(&self, _ms: u64) {}
}

handle!(
    /// A clock that only moves when slept on or advanced, counting sleeps.
    ManualClock => ManualClockState
);

/// The state of a [`ManualClock`].
#[derive(Default)]
pub struct ManualClockState {
    pub now: Cell<u64>,
    pub sleeps: Cell<usize>,
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    async fn sleep(&self, ms: u64) {
        self.sleeps.set(self.sleeps.get() + 1);
        self.now.set(self.now.get() + ms);
        // Let other tasks run, as a real timer would.
        yield_once().await;
    }
}

/// An entry hash of the fake index: the entry, its expiry, and a claim mark.
#[derive(Clone)]
pub struct FakeEntry {
    pub entry: IndexEntry,
    pub expires_ms: u64,
    pub evicting: Option<String>,
}

/// What the fake index accounts for a cached key (the sorted sets of the real one).
#[derive(Clone)]
struct Accounting {
    object: String,
    size: u64,
    last_access_ms: u64,
    accesses: u64,
    fetch_ms: u64,
    created_ms: u64,
    expires_ms: u64,
    priority: f64,
}

impl Accounting {
    fn score(&self, order: Order) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        match order {
            Order::LastAccess => self.last_access_ms as f64,
            Order::Frequency => lfu_score(self.accesses, self.last_access_ms),
            Order::SizeDescending => -(self.size as f64),
            Order::FetchTime => self.fetch_ms as f64,
            Order::Created => self.created_ms as f64,
            Order::Expires => self.expires_ms as f64,
            Order::Priority => self.priority,
            Order::Key => 0.0,
        }
    }
}

type Id = (String, String);

/// An in-memory index with the semantics of the real one (entries and leases expire at
/// `now + ttl`, leases are `SET NX`, keys are accounted in eviction orders and object holders),
/// counting round trips. `failing` makes every call fail with one error. It passes the same
/// contract suite as the real index (`index::contract`, `tests/index_contract.rs`).
#[derive(Default)]
pub struct FakeIndexState {
    failure: Option<IndexError>,
    /// Entry hashes by `(dataset, key)`.
    pub entries: RefCell<HashMap<Id, FakeEntry>>,
    accounting: RefCell<HashMap<Id, Accounting>>,
    holders: RefCell<HashMap<String, BTreeSet<Id>>>,
    gdsf_clocks: RefCell<HashMap<String, f64>>,
    pub stats: RefCell<HashMap<String, DatasetStats>>,
    /// Leases by object: their holder. A lease inserted here by a test never expires.
    pub leases: RefCell<HashMap<String, String>>,
    /// When each lease granted by `try_lease` expires (the fake's `now_ms`).
    lease_expiry: RefCell<HashMap<String, u64>>,
    pub runtime: RefCell<BTreeMap<String, String>>,
    pub runtime_version: Cell<u64>,
    /// Datasets that have (had) cached keys.
    cached: RefCell<BTreeSet<String>>,
    pub snapshots: RefCell<HashMap<String, Vec<String>>>,
    pub orphan_cursor: RefCell<Option<String>>,
    /// Objects a claim marked as being deleted: the claim's token, and until when (the fake's
    /// `now_ms`).
    deleting: RefCell<HashMap<String, (String, u64)>>,
    /// The clock the fake uses for expiry (tests move it).
    pub now_ms: Cell<u64>,
    pub round_trips: Cell<usize>,
}

handle!(
    /// A handle to a [`FakeIndexState`].
    FakeIndex => FakeIndexState
);

impl FakeIndex {
    pub fn healthy() -> Self {
        Self::default()
    }
    pub fn failing(error: IndexError) -> Self {
        FakeIndexState {
            failure: Some(error),
            ..FakeIndexState::default()
        }
        .into()
    }
    fn trip(&self) -> Result<(), IndexError> {
        self.round_trips.set(self.round_trips.get() + 1);
        self.failure.clone().map_or(Ok(()), Err)
    }
    pub fn stats_of(&self, dataset: &str) -> DatasetStats {
        let mut stats = self
            .stats
            .borrow()
            .get(dataset)
            .cloned()
            .unwrap_or_default();
        for ((d, _), a) in self.accounting.borrow().iter() {
            if d == dataset {
                stats.entries += 1;
                stats.bytes_stored += a.size;
            }
        }
        stats
    }
    /// The keys `dataset` accounts, sorted.
    pub fn cached_keys(&self, dataset: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .accounting
            .borrow()
            .keys()
            .filter(|(d, _)| d == dataset)
            .map(|(_, k)| k.clone())
            .collect();
        keys.sort();
        keys
    }
    fn counters(&self, dataset: &str, change: impl FnOnce(&mut DatasetStats)) {
        change(
            self.stats
                .borrow_mut()
                .entry(dataset.to_owned())
                .or_default(),
        );
    }
    fn stored_bytes(&self, dataset: &str) -> StoredBytes {
        let accounting = self.accounting.borrow();
        StoredBytes {
            dataset: accounting
                .iter()
                .filter(|((d, _), _)| d == dataset)
                .map(|(_, a)| a.size)
                .sum(),
            total: accounting.values().map(|a| a.size).sum(),
        }
    }
    /// `release` of the index scripts: takes a key out of the accounting.
    fn release(&self, id: &Id) -> Option<ClaimedKey> {
        let accounted = self.accounting.borrow_mut().remove(id)?;
        let mut holders = self.holders.borrow_mut();
        let unheld = holders.get_mut(&accounted.object).is_none_or(|set| {
            set.remove(id);
            set.is_empty()
        });
        if unheld {
            holders.remove(&accounted.object);
        }
        Some(ClaimedKey {
            key: id.1.clone(),
            object_key: accounted.object,
            size: accounted.size,
            object_unheld: unheld,
            reason: ClaimReason::Purged,
        })
    }
    fn put_entry(&self, dataset: &str, key: &str, entry: &IndexEntry, ttl_ms: u64, now_ms: u64) {
        let id = (dataset.to_owned(), key.to_owned());
        self.release(&id);
        self.cached.borrow_mut().insert(dataset.to_owned());
        let accesses = entry.hits + 1;
        let clock = self
            .gdsf_clocks
            .borrow()
            .get(dataset)
            .copied()
            .unwrap_or(0.0);
        self.accounting.borrow_mut().insert(
            id.clone(),
            Accounting {
                object: entry.object_key.clone(),
                size: entry.size,
                last_access_ms: now_ms,
                accesses,
                fetch_ms: entry.fetch_ms,
                created_ms: entry.created_ms,
                expires_ms: now_ms + ttl_ms,
                priority: gdsf_priority(clock, accesses, entry.fetch_ms, entry.size),
            },
        );
        self.holders
            .borrow_mut()
            .entry(entry.object_key.clone())
            .or_default()
            .insert(id.clone());
        self.entries.borrow_mut().insert(
            id,
            FakeEntry {
                entry: entry.clone(),
                expires_ms: self.now_ms.get() + ttl_ms,
                evicting: None,
            },
        );
    }
    /// Whether a removal is deleting `object` now.
    fn is_deleting(&self, object: &str) -> bool {
        self.deleting
            .borrow()
            .get(object)
            .is_some_and(|(_, until)| *until > self.now_ms.get())
    }
    /// Whether the entry of `id` is there and its TTL has not passed (Redis has deleted it
    /// otherwise).
    fn live_entry(&self, id: &Id) -> Option<FakeEntry> {
        self.entries
            .borrow()
            .get(id)
            .filter(|e| e.expires_ms > self.now_ms.get())
            .cloned()
    }
    /// Whether another holder has the lease on `object` now (one past its TTL is gone).
    fn leased(&self, object: &str) -> bool {
        let expired = self
            .lease_expiry
            .borrow()
            .get(object)
            .is_some_and(|until| *until <= self.now_ms.get());
        if expired {
            self.leases.borrow_mut().remove(object);
            self.lease_expiry.borrow_mut().remove(object);
        }
        self.leases.borrow().contains_key(object)
    }
    /// Claims one key: out of the accounting, its entry marked with `token`; an object nobody
    /// holds any more is marked as being deleted.
    fn claim_one(&self, id: &Id, reason: ClaimReason, token: &str) -> Option<ClaimedKey> {
        let mut key = self.release(id)?;
        key.reason = reason;
        if key.object_unheld {
            self.deleting.borrow_mut().insert(
                key.object_key.clone(),
                (
                    token.to_owned(),
                    self.now_ms.get() + crate::index::DELETING_MS,
                ),
            );
        }
        if let Some(e) = self.entries.borrow_mut().get_mut(id) {
            e.evicting = Some(token.to_owned());
        }
        Some(key)
    }
    /// Claims the key lowest in `policy`'s order (raising the GDSF clock for `cost`).
    fn evict_lowest(
        &self,
        dataset: &str,
        policy: EvictionPolicy,
        token: &str,
    ) -> Option<ClaimedKey> {
        let (id, score) = self.lowest(dataset, policy.order())?;
        if policy == EvictionPolicy::Cost {
            self.gdsf_clocks
                .borrow_mut()
                .insert(dataset.to_owned(), score);
        }
        self.claim_one(&id, ClaimReason::Evicted, token)
    }
    /// The live entry of `key` (counting the hit), as the lookup script does.
    fn lookup_entry(&self, dataset: &str, key: &str, now_ms: u64) -> Option<IndexEntry> {
        let id = (dataset.to_owned(), key.to_owned());
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(&id) {
            Some(e) if e.expires_ms > self.now_ms.get() && e.evicting.is_none() => {
                let found = e.entry.clone();
                e.entry.hits += 1;
                e.entry.last_access_ms = now_ms;
                if let Some(a) = self.accounting.borrow_mut().get_mut(&id) {
                    a.accesses = e.entry.hits + 1;
                    a.last_access_ms = now_ms;
                    let clock = self
                        .gdsf_clocks
                        .borrow()
                        .get(dataset)
                        .copied()
                        .unwrap_or(0.0);
                    a.priority = gdsf_priority(clock, a.accesses, a.fetch_ms, a.size);
                }
                self.counters(dataset, |s| {
                    s.hits += 1;
                    s.bytes_from_cache += found.size;
                });
                Some(found)
            }
            Some(e) if e.expires_ms <= self.now_ms.get() => {
                entries.remove(&id);
                None
            }
            _ => None,
        }
    }

    /// The accounted key of `dataset` lowest in `order` (ties by key, as Redis orders them).
    fn lowest(&self, dataset: &str, order: Order) -> Option<(Id, f64)> {
        self.accounting
            .borrow()
            .iter()
            .filter(|((d, _), _)| d == dataset)
            .map(|(id, a)| (id.clone(), a.score(order)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)))
    }
}

impl Index for FakeIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        self.trip()
    }

    async fn lookup(&self, dataset: &str, key: &str, now_ms: u64) -> Result<Lookup, IndexError> {
        self.trip()?;
        Ok(Lookup {
            entry: self.lookup_entry(dataset, key, now_ms),
            datasets_version: self.runtime_version.get(),
        })
    }

    async fn record_miss(
        &self,
        dataset: &str,
        key: &str,
        origin_bytes: u64,
        stored: Option<&IndexEntry>,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError> {
        self.trip()?;
        let stored = stored.filter(|entry| !self.is_deleting(&entry.object_key));
        self.counters(dataset, |s| {
            s.misses += 1;
            s.bytes_from_origin += origin_bytes;
            if let Some(entry) = stored {
                s.entries_written += 1;
                s.bytes_written += entry.size;
            }
        });
        Ok(stored.map(|entry| {
            self.put_entry(dataset, key, entry, ttl_ms, entry.created_ms);
            self.stored_bytes(dataset)
        }))
    }

    async fn count_read(&self, dataset: &str, hit: bool, bytes: u64) -> Result<(), IndexError> {
        self.trip()?;
        self.counters(dataset, |s| {
            if hit {
                s.hits += 1;
                s.bytes_from_cache += bytes;
            } else {
                s.misses += 1;
            }
        });
        Ok(())
    }

    async fn forget(&self, dataset: &str, key: &str, entry: &IndexEntry) -> Result<(), IndexError> {
        self.trip()?;
        let id = (dataset.to_owned(), key.to_owned());
        let same = self.live_entry(&id).is_some_and(|current| {
            current.entry.object_key == entry.object_key
                && current.entry.created_ms == entry.created_ms
        });
        if !same {
            return Ok(());
        }
        self.entries.borrow_mut().remove(&id);
        self.release(&id);
        self.counters(dataset, |s| {
            s.hits = s.hits.saturating_sub(1);
            s.bytes_from_cache = s.bytes_from_cache.saturating_sub(entry.size);
        });
        Ok(())
    }

    async fn adopt(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError> {
        self.trip()?;
        self.counters(dataset, |s| {
            s.hits += 1;
            s.bytes_from_cache += entry.size;
        });
        if self.is_deleting(&entry.object_key) {
            return Ok(None);
        }
        self.put_entry(dataset, key, entry, ttl_ms, entry.last_access_ms);
        Ok(Some(self.stored_bytes(dataset)))
    }

    async fn try_lease(&self, object: &str, holder: &str, ttl_ms: u64) -> Result<bool, IndexError> {
        self.trip()?;
        if self.leased(object) {
            return Ok(false);
        }
        self.leases
            .borrow_mut()
            .insert(object.to_owned(), holder.to_owned());
        self.lease_expiry
            .borrow_mut()
            .insert(object.to_owned(), self.now_ms.get() + ttl_ms.max(1));
        Ok(true)
    }

    async fn release_lease(&self, object: &str, holder: &str) -> Result<(), IndexError> {
        self.trip()?;
        if self.leased(object)
            && self
                .leases
                .borrow()
                .get(object)
                .is_some_and(|h| h == holder)
        {
            self.leases.borrow_mut().remove(object);
            self.lease_expiry.borrow_mut().remove(object);
        }
        Ok(())
    }

    async fn cache_stats(&self, datasets: &[String]) -> Result<Vec<CacheStats>, IndexError> {
        self.trip()?;
        Ok(datasets
            .iter()
            .map(|d| {
                let mut times: Vec<u64> = self
                    .accounting
                    .borrow()
                    .iter()
                    .filter(|((ds, _), _)| ds == d)
                    .map(|(_, a)| a.fetch_ms)
                    .collect();
                times.sort_unstable();
                let at = |p| {
                    percentile_rank(times.len() as u64, p)
                        .and_then(|r| times.get(usize::try_from(r).ok()?).copied())
                };
                CacheStats {
                    counters: self.stats_of(d),
                    fetch_ms_p50: at(50),
                    fetch_ms_p95: at(95),
                }
            })
            .collect())
    }

    async fn claim(
        &self,
        dataset: &str,
        selector: &ClaimSelector,
        now_ms: u64,
        token: &str,
        most: u64,
    ) -> Result<Vec<ClaimedKey>, IndexError> {
        self.trip()?;
        let most = usize::try_from(most.max(1)).unwrap_or(usize::MAX);
        let mut claimed = Vec::new();
        let mut expired: Vec<(Id, u64)> = self
            .accounting
            .borrow()
            .iter()
            .filter(|((d, _), a)| d == dataset && a.expires_ms <= now_ms)
            .map(|(id, a)| (id.clone(), a.expires_ms))
            .collect();
        expired.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        for (id, _) in expired.into_iter().take(most) {
            claimed.extend(self.claim_one(&id, ClaimReason::Expired, token));
        }
        let id_of = |key: &str| (dataset.to_owned(), key.to_owned());
        match selector {
            ClaimSelector::Expired => {}
            ClaimSelector::Capacity(limit) => {
                while claimed.len() < most
                    && self.stored_bytes(dataset).dataset > limit.capacity_bytes
                {
                    let Some(key) = self.evict_lowest(dataset, limit.policy, token) else {
                        break;
                    };
                    claimed.push(key);
                }
            }
            ClaimSelector::Head { count, policy } => {
                for _ in 0..*count {
                    if claimed.len() >= most {
                        break;
                    }
                    let Some(key) = self.evict_lowest(dataset, *policy, token) else {
                        break;
                    };
                    claimed.push(key);
                }
            }
            ClaimSelector::Key(key) => {
                claimed.extend(self.claim_one(&id_of(key), ClaimReason::Purged, token));
            }
            ClaimSelector::Prefix(_) | ClaimSelector::All => {
                for key in self.cached_keys(dataset) {
                    let selected = match selector {
                        ClaimSelector::Prefix(prefix) => key.starts_with(prefix.as_str()),
                        _ => true,
                    };
                    if selected && claimed.len() < most {
                        claimed.extend(self.claim_one(&id_of(&key), ClaimReason::Purged, token));
                    }
                }
            }
        }
        Ok(claimed)
    }

    async fn drop_claimed(
        &self,
        dataset: &str,
        keys: &[String],
        deleted: &[String],
        token: &str,
    ) -> Result<(), IndexError> {
        self.trip()?;
        let mut marks = self.deleting.borrow_mut();
        for object in deleted {
            if marks.get(object).is_some_and(|(by, _)| by == token) {
                marks.remove(object);
            }
        }
        let mut entries = self.entries.borrow_mut();
        for key in keys {
            let id = (dataset.to_owned(), key.clone());
            if entries
                .get(&id)
                .is_some_and(|e| e.evicting.as_deref() == Some(token))
            {
                entries.remove(&id);
            }
        }
        Ok(())
    }

    async fn lowest_scores(
        &self,
        datasets: &[String],
        order: Order,
    ) -> Result<Vec<Option<f64>>, IndexError> {
        self.trip()?;
        Ok(datasets
            .iter()
            .map(|d| self.lowest(d, order).map(|(_, score)| score))
            .collect())
    }

    async fn total_stored(&self) -> Result<u64, IndexError> {
        self.trip()?;
        Ok(self.accounting.borrow().values().map(|a| a.size).sum())
    }

    async fn list_keys(
        &self,
        dataset: &str,
        sort: KeySort,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> Result<KeyPage, IndexError> {
        self.trip()?;
        let (order, negated) = sort.order();
        let mut ranked: Vec<(Id, f64, u64)> = self
            .accounting
            .borrow()
            .iter()
            .filter(|((d, _), _)| d == dataset)
            .map(|(id, a)| (id.clone(), a.score(order), a.expires_ms))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        if descending != negated {
            ranked.reverse();
        }
        let accounted = ranked.len() as u64;
        let entries = self.entries.borrow();
        let keys = ranked
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit.max(1)).unwrap_or(usize::MAX))
            .filter_map(|(id, _, expires_ms)| {
                let e = entries
                    .get(&id)
                    .filter(|e| e.evicting.is_none() && e.expires_ms > self.now_ms.get())?;
                Some(KeyInfo {
                    key: id.1.clone(),
                    entry: e.entry.clone(),
                    expires_ms,
                })
            })
            .collect();
        Ok(KeyPage { accounted, keys })
    }

    async fn objects_held(&self, objects: &[String]) -> Result<Vec<bool>, IndexError> {
        self.trip()?;
        let holders = self.holders.borrow();
        Ok(objects
            .iter()
            .map(|o| holders.get(o).is_some_and(|set| !set.is_empty()))
            .collect())
    }

    async fn runtime_datasets(&self) -> Result<RuntimeDatasets, IndexError> {
        self.trip()?;
        Ok(RuntimeDatasets {
            version: self.runtime_version.get(),
            definitions: self
                .runtime
                .borrow()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    async fn put_runtime_dataset(&self, id: &str, json: &str) -> Result<bool, IndexError> {
        self.trip()?;
        self.runtime_version.set(self.runtime_version.get() + 1);
        Ok(self
            .runtime
            .borrow_mut()
            .insert(id.to_owned(), json.to_owned())
            .is_none())
    }

    async fn remove_runtime_dataset(&self, id: &str) -> Result<bool, IndexError> {
        self.trip()?;
        self.runtime_version.set(self.runtime_version.get() + 1);
        Ok(self.runtime.borrow_mut().remove(id).is_some())
    }

    async fn cached_datasets(&self) -> Result<Vec<String>, IndexError> {
        self.trip()?;
        let mut ids: Vec<String> = self.cached.borrow().iter().cloned().collect();
        ids.sort();
        Ok(ids)
    }

    async fn drop_dataset_records(&self, dataset: &str) -> Result<(), IndexError> {
        self.trip()?;
        self.cached.borrow_mut().remove(dataset);
        self.stats.borrow_mut().remove(dataset);
        self.snapshots.borrow_mut().remove(dataset);
        self.gdsf_clocks.borrow_mut().remove(dataset);
        Ok(())
    }

    async fn record_snapshot(
        &self,
        dataset: &str,
        snapshot: &str,
        keep: u64,
    ) -> Result<(), IndexError> {
        self.trip()?;
        let mut snapshots = self.snapshots.borrow_mut();
        let list = snapshots.entry(dataset.to_owned()).or_default();
        list.insert(0, snapshot.to_owned());
        list.truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        Ok(())
    }

    async fn orphan_cursor(&self) -> Result<Option<String>, IndexError> {
        self.trip()?;
        Ok(self.orphan_cursor.borrow().clone())
    }
    async fn set_orphan_cursor(&self, cursor: Option<&str>) -> Result<(), IndexError> {
        self.trip()?;
        *self.orphan_cursor.borrow_mut() = cursor.map(str::to_owned);
        Ok(())
    }
    async fn snapshots(&self, dataset: &str, most: u64) -> Result<Vec<String>, IndexError> {
        self.trip()?;
        let snapshots = self.snapshots.borrow();
        Ok(snapshots
            .get(dataset)
            .map(|list| {
                list.iter()
                    .take(usize::try_from(most).unwrap_or(usize::MAX))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A fault the in-memory store injects.
#[derive(Clone)]
pub enum StoreFault {
    Put(StoreError),
    Get(StoreError),
    Delete(StoreError),
    /// `put` reports success but stores nothing.
    LoseWrites,
    /// `get` returns different bytes from those stored.
    CorruptReads,
}

/// A chunk store in a `HashMap`, counting `(puts, gets, deletes)`. Objects are stamped with
/// `now` (tests move it) when put.
#[derive(Default)]
pub struct InMemoryStoreState {
    objects: RefCell<HashMap<String, (Vec<u8>, u64)>>,
    pub now: Cell<u64>,
    /// The next this many `get`s find nothing (an object written meanwhile by someone else).
    pub fail_next_gets: Cell<usize>,
    fault: Option<StoreFault>,
    puts: Cell<usize>,
    gets: Cell<usize>,
    deletes: Cell<usize>,
    /// Ranged reads (`get_range`); each also counts as a `get`.
    pub ranged_gets: Cell<usize>,
}

handle!(
    /// A handle to an [`InMemoryStoreState`].
    InMemoryStore => InMemoryStoreState
);

impl InMemoryStore {
    pub fn with_fault(fault: StoreFault) -> Self {
        InMemoryStoreState {
            fault: Some(fault),
            ..InMemoryStoreState::default()
        }
        .into()
    }
    pub fn len(&self) -> usize {
        self.objects.borrow().len()
    }
    pub fn contains(&self, key: &str) -> bool {
        self.objects.borrow().contains_key(key)
    }
    pub fn calls(&self) -> (usize, usize, usize) {
        (self.puts.get(), self.gets.get(), self.deletes.get())
    }
}

impl ChunkStore for InMemoryStore {
    type Body = Vec<u8>;

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.puts.set(self.puts.get() + 1);
        match &self.fault {
            Some(StoreFault::Put(e)) => return Err(e.clone()),
            Some(StoreFault::LoseWrites) => return Ok(()),
            _ => {}
        }
        self.objects
            .borrow_mut()
            .insert(key.to_owned(), (bytes, self.now.get()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<Vec<u8>>>, StoreError> {
        self.gets.set(self.gets.get() + 1);
        if let Some(StoreFault::Get(e)) = &self.fault {
            return Err(e.clone());
        }
        if self.fail_next_gets.get() > 0 {
            self.fail_next_gets.set(self.fail_next_gets.get() - 1);
            return Ok(None);
        }
        let mut found = self.objects.borrow().get(key).cloned();
        if let (Some(StoreFault::CorruptReads), Some((bytes, _))) = (&self.fault, found.as_mut()) {
            bytes.push(b'!');
        }
        Ok(found.map(|(body, uploaded_ms)| StoredObject {
            size: body.len() as u64,
            uploaded_ms,
            body,
        }))
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<Vec<u8>>>, StoreError> {
        self.ranged_gets.set(self.ranged_gets.get() + 1);
        let Some(object) = self.get(key).await? else {
            return Ok(None);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(object.body.len());
        let end = usize::try_from(offset.saturating_add(length))
            .unwrap_or(usize::MAX)
            .min(object.body.len());
        Ok(Some(StoredObject {
            body: object.body[start..end].to_vec(),
            ..object
        }))
    }

    async fn read_body(&self, body: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        Ok(body)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.deletes.set(self.deletes.get() + 1);
        if let Some(StoreFault::Delete(e)) = &self.fault {
            return Err(e.clone());
        }
        self.objects.borrow_mut().remove(key);
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        let objects = self.objects.borrow();
        let mut keys: Vec<(&String, u64)> = objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && cursor.is_none_or(|c| k.as_str() > c))
            .map(|(k, (_, uploaded_ms))| (k, *uploaded_ms))
            .collect();
        keys.sort();
        let limit = limit as usize;
        let more = keys.len() > limit;
        let page: Vec<ListedObject> = keys
            .into_iter()
            .take(limit)
            .map(|(key, uploaded_ms)| ListedObject {
                key: key.clone(),
                uploaded_ms,
            })
            .collect();
        Ok(ObjectPage {
            next_cursor: if more {
                page.last().map(|o| o.key.clone())
            } else {
                None
            },
            objects: page,
        })
    }
}

/// An Upstash transport that answers every call with one canned reply and records the calls.
#[derive(Debug)]
pub struct CannedTransport {
    reply: Result<RawReply, TransportError>,
    pub sent: RefCell<Vec<HttpCall>>,
}

impl CannedTransport {
    pub fn answering(status: u16, body: &str) -> Self {
        Self {
            reply: Ok(RawReply {
                status,
                body: body.as_bytes().to_vec(),
            }),
            sent: RefCell::default(),
        }
    }
    pub fn failing(error: TransportError) -> Self {
        Self {
            reply: Err(error),
            sent: RefCell::default(),
        }
    }
}

impl UpstashTransport for CannedTransport {
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
        self.sent.borrow_mut().push(call.clone());
        self.reply.clone()
    }
}

/// An origin serving files from a map, honouring `Range` with 206, counting requests. A gated
/// origin answers only once the gate's sender fires (or is dropped), like a slow network.
#[derive(Default)]
pub struct FakeOriginState {
    files: HashMap<String, Vec<u8>>,
    /// URL → the `Location` of a 302 it answers.
    redirects: HashMap<String, String>,
    gate: Option<futures::future::Shared<futures::channel::oneshot::Receiver<()>>>,
    pub requests: RefCell<Vec<(String, Option<crate::origin::ByteRange>)>>,
}

handle!(
    /// A handle to a [`FakeOriginState`].
    FakeOrigin => FakeOriginState
);

impl FakeOrigin {
    pub fn gated(mut self) -> (Self, futures::channel::oneshot::Sender<()>) {
        use futures::FutureExt as _;
        let (open, gate) = futures::channel::oneshot::channel();
        self.gate = Some(gate.shared());
        (self, open)
    }

    pub fn with_file(mut self, url: &str, bytes: &[u8]) -> Self {
        self.files.insert(url.to_owned(), bytes.to_vec());
        self
    }

    /// `url` answers `302 Location: location`.
    pub fn with_redirect(mut self, url: &str, location: &str) -> Self {
        self.redirects.insert(url.to_owned(), location.to_owned());
        self
    }
}

impl crate::origin::Origin for FakeOrigin {
    async fn get(
        &self,
        url: &str,
        range: Option<crate::origin::ByteRange>,
    ) -> Result<crate::origin::OriginResponse, crate::origin::OriginError> {
        self.requests.borrow_mut().push((url.to_owned(), range));
        if let Some(gate) = &self.gate {
            let _ = gate.clone().await;
        }
        let answer = |status, body: Vec<u8>, content_range| crate::origin::OriginResponse {
            status,
            content_range,
            etag: None,
            last_modified: None,
            location: None,
            body,
        };
        if let Some(location) = self.redirects.get(url) {
            return Ok(crate::origin::OriginResponse {
                location: Some(location.clone()),
                ..answer(302, Vec::new(), None)
            });
        }
        let Some(file) = self.files.get(url) else {
            return Ok(answer(404, b"not found".to_vec(), None));
        };
        let Some(range) = range else {
            return Ok(answer(200, file.clone(), None));
        };
        let start = usize::try_from(range.offset).unwrap();
        let end = (start + usize::try_from(range.length).unwrap()).min(file.len());
        if start >= file.len() {
            return Ok(answer(416, Vec::new(), None));
        }
        Ok(answer(
            206,
            file[start..end].to_vec(),
            Some(format!("bytes {start}-{}/{}", end - 1, file.len())),
        ))
    }
}

/// Reference files from a map keyed by URL (or `r2://key`), with fixed `ETag`s, counting fetches.
#[derive(Default)]
pub struct FakeRefsSource {
    files: RefCell<HashMap<String, (Vec<u8>, String)>>,
    /// Location → where it redirects.
    redirects: RefCell<HashMap<String, String>>,
    pub fetches: Cell<usize>,
    pub not_modified: Cell<usize>,
}

impl FakeRefsSource {
    pub fn with(self, location: &str, json: &str, etag: &str) -> Self {
        self.replace(location, json, etag);
        self
    }
    /// `location` answers a redirect to `target`.
    pub fn with_redirect(self, location: &str, target: &str) -> Self {
        self.redirects
            .borrow_mut()
            .insert(location.to_owned(), target.to_owned());
        self
    }
    pub fn replace(&self, location: &str, json: &str, etag: &str) {
        self.files.borrow_mut().insert(
            location.to_owned(),
            (json.as_bytes().to_vec(), etag.to_owned()),
        );
    }
}

impl crate::source::refs::ReferenceSource for FakeRefsSource {
    async fn fetch_refs(
        &self,
        location: &crate::source::refs::RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<crate::source::refs::RefsFetch, crate::error::Error> {
        self.fetches.set(self.fetches.get() + 1);
        // Like a real download, let other tasks run meanwhile.
        yield_once().await;
        let name = match location {
            crate::source::refs::RefsLocation::Url(url) => url.clone(),
            crate::source::refs::RefsLocation::Bucket(key) => format!("r2://{key}"),
        };
        if let Some(target) = self.redirects.borrow().get(&name) {
            return Ok(crate::source::refs::RefsFetch::Redirect {
                location: target.clone(),
            });
        }
        let files = self.files.borrow();
        let Some((bytes, etag)) = files.get(&name) else {
            return Err(crate::error::Error::Upstream(format!("{name}: HTTP 404")));
        };
        if if_none_match == Some(etag.as_str()) {
            self.not_modified.set(self.not_modified.get() + 1);
            return Ok(crate::source::refs::RefsFetch::NotModified);
        }
        Ok(crate::source::refs::RefsFetch::Body {
            bytes: bytes.clone(),
            etag: Some(etag.clone()),
        })
    }
}

/// Pending once (and woken at once), so other tasks of a local executor get to run.
pub async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}
