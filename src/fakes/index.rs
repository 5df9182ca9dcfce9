//! The in-memory index: the semantics of the Lua scripts, held to the same contract suite.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::handle;
use crate::index::entry::{
    CacheStats, ClaimReason, ClaimSelector, ClaimedKey, DatasetStats, IndexEntry, KeyInfo, KeyPage,
    LeaseAnswer, LeaseAsk, Lookup, LookupRead, RuntimeDatasets, SourceVersion, StoredBytes,
    VersionProbe,
};
use crate::index::{Index, IndexError};
use crate::policy::eviction::{gdsf_priority, lfu_score, EvictionPolicy, Order};
use crate::policy::listing::{percentile_rank, KeySort};

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
    /// Recorded file validators by URL, with when the request that saw each was sent.
    pub file_validators: RefCell<HashMap<String, (String, u64)>>,
    /// Source version records by dataset: `(generation, digest, checked_ms)`.
    pub source_versions: RefCell<HashMap<String, (u64, String, u64)>>,
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
    /// One lookup as the script makes it.
    fn look(
        &self,
        dataset: &str,
        key: &str,
        now_ms: u64,
        (probe, file): (Option<VersionProbe>, Option<&str>),
        lease: Option<LeaseAsk<'_>>,
    ) -> Lookup {
        let datasets_version = self.runtime_version.get();
        let file_validator = file.and_then(|url| {
            self.file_validators
                .borrow()
                .get(url)
                .map(|(v, _)| v.clone())
        });
        let source = match probe {
            None => SourceVersion::Unprobed,
            Some(probe) => match self.source_versions.borrow().get(dataset) {
                Some((generation, _, checked))
                    if now_ms.saturating_sub(*checked) < probe.stale_after_ms =>
                {
                    if *generation == probe.generation {
                        SourceVersion::Current(*generation)
                    } else {
                        SourceVersion::Changed(*generation)
                    }
                }
                _ => SourceVersion::Stale,
            },
        };
        if matches!(source, SourceVersion::Changed(_) | SourceVersion::Stale) {
            return Lookup {
                entry: None,
                datasets_version,
                source,
                file_validator,
                lease: LeaseAnswer::NotTaken,
            };
        }
        let entry = self.lookup_entry(dataset, key, now_ms);
        let lease = match lease {
            Some(ask) if entry.is_none() => {
                let mine = self.leased(ask.object)
                    && self.leases.borrow().get(ask.object).map(String::as_str) == Some(ask.holder);
                if mine {
                    LeaseAnswer::HeldHere
                } else if self.take_lease(ask.object, ask.holder, ask.ttl_ms) {
                    LeaseAnswer::Granted
                } else {
                    LeaseAnswer::HeldElsewhere
                }
            }
            _ => LeaseAnswer::NotTaken,
        };
        Lookup {
            entry,
            datasets_version,
            source,
            file_validator,
            lease,
        }
    }

    /// `SET NX PX`: whether `holder` now holds the lease on `object`.
    fn take_lease(&self, object: &str, holder: &str, ttl_ms: u64) -> bool {
        if self.leased(object) {
            return false;
        }
        self.leases
            .borrow_mut()
            .insert(object.to_owned(), holder.to_owned());
        self.lease_expiry
            .borrow_mut()
            .insert(object.to_owned(), self.now_ms.get() + ttl_ms.max(1));
        true
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

    async fn lookup(
        &self,
        dataset: &str,
        key: &str,
        now_ms: u64,
        probe: Option<VersionProbe>,
        file: Option<&str>,
        lease: Option<LeaseAsk<'_>>,
    ) -> Result<Lookup, IndexError> {
        self.trip()?;
        Ok(self.look(dataset, key, now_ms, (probe, file), lease))
    }

    async fn lookup_many(&self, reads: &[LookupRead<'_>]) -> Result<Vec<Lookup>, IndexError> {
        self.trip()?;
        Ok(reads
            .iter()
            .map(|r| self.look(r.dataset, r.key, r.now_ms, (None, r.file), None))
            .collect())
    }

    async fn file_validator(&self, url: &str) -> Result<Option<String>, IndexError> {
        self.trip()?;
        Ok(self
            .file_validators
            .borrow()
            .get(url)
            .map(|(v, _)| v.clone()))
    }

    async fn set_file_validator(
        &self,
        url: &str,
        validator: &str,
        seen_ms: u64,
    ) -> Result<(), IndexError> {
        self.trip()?;
        let mut records = self.file_validators.borrow_mut();
        if records.get(url).is_none_or(|(_, seen)| *seen <= seen_ms) {
            records.insert(url.to_owned(), (validator.to_owned(), seen_ms));
        }
        Ok(())
    }

    async fn set_source_version(
        &self,
        dataset: &str,
        digest: &str,
        read_at_ms: u64,
    ) -> Result<u64, IndexError> {
        self.trip()?;
        let mut records = self.source_versions.borrow_mut();
        let record = records
            .entry(dataset.to_owned())
            .or_insert((0, String::new(), 0));
        if read_at_ms < record.2 {
            return Ok(record.0);
        }
        if record.0 == 0 {
            record.0 = read_at_ms;
        } else if record.1 != digest {
            record.0 += 1;
        }
        record.1 = digest.to_owned();
        record.2 = read_at_ms;
        Ok(record.0)
    }

    async fn bump_source_version(&self, dataset: &str, now_ms: u64) -> Result<u64, IndexError> {
        self.trip()?;
        let mut records = self.source_versions.borrow_mut();
        let record = records
            .entry(dataset.to_owned())
            .or_insert((0, String::new(), 0));
        record.0 = if record.0 == 0 { now_ms } else { record.0 + 1 };
        Ok(record.0)
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
        Ok(self.take_lease(object, holder, ttl_ms))
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
