//! The index layer: the shared index of cached keys, its schema and its Upstash implementation.
//!
//! - [`Index`]: the trait and its contract (one round trip per method).
//! - [`entry`]: the schema of entries, dataset counters and management answers.
//! - [`upstash`]: [`upstash::UpstashIndex`], the index over any Upstash transport.
//! - [`scripts`]: the Lua scripts it runs (`scripts/*.lua`, sent with `EVALSHA`).
//! - [`transport`]: the Upstash REST transport trait.
//! - [`circuit`]: the per-isolate circuit breaker in front of the transport.
//! - [`contract`]: the trait's contract as a suite of cases, run against the fake and the real
//!   index.

pub mod circuit;
pub mod contract;
pub mod entry;
pub mod scripts;
pub mod transport;
pub mod upstash;

use crate::index::entry::{
    CacheStats, ClaimSelector, ClaimedKey, IndexEntry, KeyPage, LeaseAsk, Lookup, LookupRead,
    RuntimeDatasets, StoredBytes, VersionProbe,
};
use crate::policy::eviction::Order;
use crate::policy::listing::KeySort;

/// Why the index could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The index server is unreachable, timed out, refused the token or is failing: retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The index answered, but not as expected (a refused command, a malformed reply): a bug or a
    /// version mismatch, not worth retrying.
    #[error("{0}")]
    Protocol(String),
}

/// The shared index of cached keys (Redis semantics, reached over the Upstash REST API).
///
/// Every method is one round trip. Entries expire by themselves (a Redis TTL); an entry is
/// written only after its bytes are in the chunk store, so an entry never vouches for bytes that
/// were not stored (the reverse, bytes without an entry, is harmless and swept later).
#[allow(async_fn_in_trait)]
pub trait Index {
    /// One round trip that proves the index answers commands (`PING` → `PONG`).
    ///
    /// Contract: `Ok` only when the server executed the command; idempotent, no side effects.
    async fn ping(&self) -> Result<(), IndexError>;

    /// The entry for `key` of `dataset`, recording the read as a hit (entry hits and last
    /// access, dataset hits and bytes served from cache, eviction orders) in the same round trip,
    /// with the run-time datasets' version.
    ///
    /// Contract: `entry` is `None` when there is no live entry (never written, expired, or
    /// claimed for removal); then nothing is recorded. Not idempotent (counts the hit).
    ///
    /// With a `probe` (a versioned dataset), the dataset's source version record is read first
    /// in the same round trip: unless the probe's generation is current and the record was
    /// checked within `probe.stale_after_ms` of `now_ms`, the answer is
    /// [`SourceVersion::Changed`](entry::SourceVersion::Changed) or
    /// [`SourceVersion::Stale`](entry::SourceVersion::Stale) with no entry, and nothing is
    /// recorded.
    ///
    /// With a `file` (the URL the key's bytes come from), the validator last recorded for that
    /// file ([`set_file_validator`](Self::set_file_validator)) comes back too.
    ///
    /// With a `lease` ask, when there is no live entry (and the probe, if any, found its
    /// generation current), the object's lease is tried as [`try_lease`](Self::try_lease)
    /// tries it, in the same round trip: [`LeaseAnswer::Granted`](entry::LeaseAnswer::Granted),
    /// [`HeldHere`](entry::LeaseAnswer::HeldHere) when the asker already holds it (an isolate
    /// asks for all its readers in one name), or
    /// [`HeldElsewhere`](entry::LeaseAnswer::HeldElsewhere); otherwise nothing is taken.
    async fn lookup(
        &self,
        dataset: &str,
        key: &str,
        now_ms: u64,
        probe: Option<VersionProbe>,
        file: Option<&str>,
        lease: Option<LeaseAsk<'_>>,
    ) -> Result<Lookup, IndexError>;

    /// [`lookup`](Self::lookup) of each of `reads` (no probe, no lease ask), in one round trip:
    /// the answers in order.
    ///
    /// Contract: the same answers and the same records as the lookups made one after another
    /// (a key read twice is counted twice); on `Err` any of them may have been recorded.
    async fn lookup_many(&self, reads: &[LookupRead<'_>]) -> Result<Vec<Lookup>, IndexError>;

    /// The validator last recorded for the source file at `url`
    /// ([`set_file_validator`](Self::set_file_validator)), if any.
    ///
    /// Contract: the value a lookup naming the file would return.
    async fn file_validator(&self, url: &str) -> Result<Option<String>, IndexError>;

    /// Records `validator` as the current one of the source file at `url`, seen in an origin
    /// answer to a request sent at `seen_ms`, for lookups to compare entries against; it lives
    /// [`FILE_VALIDATOR_TTL_MS`].
    ///
    /// Contract: an observation sent earlier than the recorded one changes nothing (a slow
    /// fetch from before a change never undoes the change).
    async fn set_file_validator(
        &self,
        url: &str,
        validator: &str,
        seen_ms: u64,
    ) -> Result<(), IndexError>;

    /// Records that `dataset`'s version document (its consolidated metadata) had `digest` when
    /// read from the origin at `read_at_ms`, and returns the source generation: raised when the
    /// digest differs from the recorded one (or there was none).
    ///
    /// Contract: a first generation is `read_at_ms`; an observation read earlier than the
    /// recorded one changes nothing (a slow
    /// revalidation never undoes a newer one); the same digest keeps the generation and marks
    /// the record checked at `read_at_ms`.
    async fn set_source_version(
        &self,
        dataset: &str,
        digest: &str,
        read_at_ms: u64,
    ) -> Result<u64, IndexError>;

    /// Raises `dataset`'s source generation (an operator saw a change its metadata does not
    /// show) and returns the new one. The record's check time is kept.
    ///
    /// Contract (also for [`set_source_version`](Self::set_source_version)): a record made
    /// anew (never written, or lost) starts at the time given, so generations never repeat.
    async fn bump_source_version(&self, dataset: &str, now_ms: u64) -> Result<u64, IndexError>;

    /// Records a read served from the origin: the dataset's misses and origin bytes, and, when
    /// `stored` is given (its bytes are already in the chunk store), writes that entry with a
    /// TTL of `ttl_ms` and accounts it (eviction orders, holders of its object, bytes stored).
    ///
    /// Contract: returns the bytes stored afterwards when an entry was written, `None` otherwise.
    async fn record_miss(
        &self,
        dataset: &str,
        key: &str,
        origin_bytes: u64,
        stored: Option<&IndexEntry>,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError>;

    /// Writes and accounts `entry` (TTL `ttl_ms`) for bytes that are already stored, written for
    /// another dataset or key with the same source range, and counts the read as a hit. Returns
    /// the bytes stored afterwards.
    ///
    /// Contract (also for [`record_miss`](Self::record_miss)): while a removal is deleting the
    /// entry's object (between its [`claim`](Self::claim) and [`DELETING_MS`] later), no entry
    /// is written and `None` is returned; the read is counted all the same.
    async fn adopt(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError>;

    /// Counts a read that shared another read's outcome: a hit (and its bytes served from cache)
    /// or a miss (no origin bytes: the shared fetch counted them).
    async fn count_read(&self, dataset: &str, hit: bool, bytes: u64) -> Result<(), IndexError>;

    /// Undoes a hit that [`lookup`](Self::lookup) recorded for an entry whose bytes turned out
    /// to be missing from the store, and deletes that entry, but only if it is still that entry
    /// (same object and creation time): a fresher entry written meanwhile stays.
    async fn forget(&self, dataset: &str, key: &str, entry: &IndexEntry) -> Result<(), IndexError>;

    /// Tries to become the one instance fetching `object` from the origin: `SET NX PX`.
    ///
    /// Contract: `Ok(true)` when this `holder` now holds the lease for `ttl_ms` (a dead holder's
    /// lease expires by itself), `Ok(false)` when another holder has it.
    async fn try_lease(&self, object: &str, holder: &str, ttl_ms: u64) -> Result<bool, IndexError>;

    /// Releases the lease on `object` if `holder` still holds it (never someone else's).
    async fn release_lease(&self, object: &str, holder: &str) -> Result<(), IndexError>;

    /// Each dataset's counters and fetch-time percentiles, in the order given (one round trip).
    async fn cache_stats(&self, datasets: &[String]) -> Result<Vec<CacheStats>, IndexError>;

    /// Takes up to `most` keys of `dataset` out of its accounting (expired keys first, then what
    /// `selector` picks) and marks their entries with `token`, so that lookups miss them.
    ///
    /// Contract: the caller then deletes the objects of the returned keys whose
    /// `object_unheld` is set, within [`DELETING_MS`], and only then calls
    /// [`drop_claimed`](Self::drop_claimed). Those objects are marked as being deleted for
    /// [`DELETING_MS`]: no entry is written for them meanwhile, so an entry never vouches for a
    /// deleted object. Fewer than `most` keys back means nothing is left to
    /// claim. An entry rewritten meanwhile is a new, unmarked entry and survives.
    async fn claim(
        &self,
        dataset: &str,
        selector: &ClaimSelector,
        now_ms: u64,
        token: &str,
        most: u64,
    ) -> Result<Vec<ClaimedKey>, IndexError>;

    /// Deletes the entries of `keys` that still carry `token` (see [`claim`](Self::claim)), and
    /// lifts the *being deleted* marks of the `deleted` objects (their delete is done: the same
    /// bytes may be stored and indexed again at once) that this removal's claim set: a mark
    /// another removal set since (another token) stays.
    async fn drop_claimed(
        &self,
        dataset: &str,
        keys: &[String],
        deleted: &[String],
        token: &str,
    ) -> Result<(), IndexError>;

    /// The lowest score of `order` in each dataset (`None` for a dataset with no keys).
    async fn lowest_scores(
        &self,
        datasets: &[String],
        order: Order,
    ) -> Result<Vec<Option<f64>>, IndexError>;

    /// Bytes stored by all datasets together.
    async fn total_stored(&self) -> Result<u64, IndexError>;

    /// A page of `dataset`'s cached keys in `sort` order, from rank `offset`.
    async fn list_keys(
        &self,
        dataset: &str,
        sort: KeySort,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> Result<KeyPage, IndexError>;

    /// For each storage object, whether any entry still holds it (one round trip).
    async fn objects_held(&self, objects: &[String]) -> Result<Vec<bool>, IndexError>;

    /// Datasets registered at run time, with their version.
    async fn runtime_datasets(&self) -> Result<RuntimeDatasets, IndexError>;

    /// Registers or replaces a run-time dataset and raises the version; `true` when it is new.
    async fn put_runtime_dataset(&self, id: &str, json: &str) -> Result<bool, IndexError>;

    /// Removes a run-time dataset and raises the version; `true` when there was one.
    async fn remove_runtime_dataset(&self, id: &str) -> Result<bool, IndexError>;

    /// The ids of every dataset with cached keys (configured or not), sorted.
    async fn cached_datasets(&self) -> Result<Vec<String>, IndexError>;

    /// Deletes a dataset's counters, orders and snapshots, and takes it off the cached datasets
    /// (after its keys were removed).
    async fn drop_dataset_records(&self, dataset: &str) -> Result<(), IndexError>;

    /// Prepends a stats snapshot (JSON) to the dataset's history, keeping the newest `keep`
    /// (none for 0).
    async fn record_snapshot(
        &self,
        dataset: &str,
        snapshot: &str,
        keep: u64,
    ) -> Result<(), IndexError>;

    /// The dataset's newest `most` snapshots, newest first (none for 0).
    async fn snapshots(&self, dataset: &str, most: u64) -> Result<Vec<String>, IndexError>;

    /// Where the last orphan sweep stopped listing storage (`None`: start from the beginning).
    async fn orphan_cursor(&self) -> Result<Option<String>, IndexError>;

    /// Records where the orphan sweep stopped (`None` once it listed everything).
    async fn set_orphan_cursor(&self, cursor: Option<&str>) -> Result<(), IndexError>;
}

/// How long a recorded file validator lives: longer than any entry it judges (entries live a
/// dataset's TTL, a day by default).
pub const FILE_VALIDATOR_TTL_MS: u64 = 7 * 86_400_000;

/// How long a claimed object counts as being deleted: no entry may be written for it meanwhile.
/// Its removal deletes it right after the claim (one storage call, bounded by the storage
/// timeout), well within this.
pub const DELETING_MS: u64 = 60_000;
