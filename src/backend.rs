//! The I/O boundaries, as small traits whose docs state the contract.
//!
//! Core code is generic over these; runtime bindings (`worker::Fetch`, `worker::Bucket`,
//! `worker::Date`) appear only in their `glue` implementations. Traits are not `Send`: Workers
//! runs one thread and JS futures are `!Send`.

use crate::cache_entry::{
    CacheStats, ClaimSelector, ClaimedKey, IndexEntry, KeyPage, Lookup, RuntimeDatasets,
    StoredBytes,
};
use crate::eviction::{KeySort, Order};
use crate::upstash::HttpCall;

/// A raw HTTP answer from the Upstash REST API, before protocol decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// HTTP status code.
    pub status: u16,
    /// The body, unparsed.
    pub body: Vec<u8>,
}

/// Why a call to the Upstash REST API produced no HTTP answer at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No answer within the configured timeout.
    #[error("no answer within {0} ms")]
    Timeout(u32),
    /// The connection failed (DNS, refused, reset, TLS).
    #[error("request failed: {0}")]
    Network(String),
    /// Not sent: the index failed repeatedly and the isolate's circuit breaker is open.
    #[error("not sent: the index is failing (circuit open)")]
    CircuitOpen,
}

/// Sends one Upstash REST call. Implemented over `worker::Fetch` on wasm and over a blocking HTTP
/// client in the native integration tests.
#[allow(async_fn_in_trait)]
pub trait UpstashTransport {
    /// POSTs `call` to the database and returns whatever HTTP answer came back, any status.
    ///
    /// Contract: returns `Err` only when there is no HTTP answer (network failure or timeout);
    /// a 4xx/5xx answer is `Ok` and is classified by `upstash::reply`. Not retried here.
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError>;
}

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
    async fn lookup(&self, dataset: &str, key: &str, now_ms: u64) -> Result<Lookup, IndexError>;

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
    /// bytes may be stored and indexed again at once).
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

    /// Prepends a stats snapshot (JSON) to the dataset's history, keeping the newest `keep`.
    async fn record_snapshot(
        &self,
        dataset: &str,
        snapshot: &str,
        keep: u64,
    ) -> Result<(), IndexError>;

    /// The dataset's newest `most` snapshots, newest first.
    async fn snapshots(&self, dataset: &str, most: u64) -> Result<Vec<String>, IndexError>;

    /// Where the last orphan sweep stopped listing storage (`None`: start from the beginning).
    async fn orphan_cursor(&self) -> Result<Option<String>, IndexError>;

    /// Records where the orphan sweep stopped (`None` once it listed everything).
    async fn set_orphan_cursor(&self, cursor: Option<&str>) -> Result<(), IndexError>;
}

/// Why the chunk store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store refused a write to this key for now (R2 allows one write per second per key):
    /// not an error for a reader, the write can be dropped or retried later.
    #[error("write to {0} rate limited")]
    RateLimited(String),
    /// The store failed or is unreachable: retry later.
    #[error("{0}")]
    Unavailable(String),
}

/// How long a claimed object counts as being deleted: no entry may be written for it meanwhile.
/// Its removal deletes it right after the claim (one storage call, bounded by the storage
/// timeout), well within this.
pub const DELETING_MS: u64 = 60_000;

/// R2's error code for more than one write per second to a key.
pub const R2_RATE_LIMITED: u32 = 10_058;

impl StoreError {
    /// Classifies an R2 binding error. Its message ends with R2's numeric code in parentheses
    /// (`put: Reduce your rate of simultaneous writes to the same object. (10058)`); only that
    /// code means "rate limited on this key". Digits elsewhere in the message (an object key
    /// containing `429`) say nothing.
    #[must_use]
    pub fn from_r2(key: &str, message: &str) -> Self {
        if r2_error_code(message) == Some(R2_RATE_LIMITED) {
            Self::RateLimited(key.to_owned())
        } else {
            Self::Unavailable(format!("R2: {message}"))
        }
    }
}

/// The code at the end of an R2 error message: `… (10058)` → 10058.
fn r2_error_code(message: &str) -> Option<u32> {
    let inner = message.trim_end().strip_suffix(')')?;
    let (_, code) = inner.rsplit_once('(')?;
    (code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| code.parse().ok())
        .flatten()
}

/// An object found in the chunk store: its size and its not yet read body.
#[derive(Debug)]
pub struct StoredObject<B> {
    /// Size in bytes.
    pub size: u64,
    /// When it was written, ms since the epoch.
    pub uploaded_ms: u64,
    /// The body, streamed to the client by the glue or read with
    /// [`ChunkStore::read_body`].
    pub body: B,
}

/// Where chunk bytes live (an R2 binding, or an S3-compatible bucket).
#[allow(async_fn_in_trait)]
pub trait ChunkStore {
    /// An object's unread body (an R2 object, streamed to the client without passing through
    /// wasm; plain bytes in the test fake).
    type Body: 'static;

    /// Stores `bytes` under `key`, replacing any object there.
    ///
    /// Contract: on `Ok` a following `get` of `key` returns these bytes. On `Err` the object may or
    /// may not have landed (a reported failure can still have written): callers must not assume
    /// either, and must never index an object whose `put` failed.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Opens the object under `key`; `Ok(None)` when there is none. The body is not read yet.
    async fn get(&self, key: &str) -> Result<Option<StoredObject<Self::Body>>, StoreError>;

    /// Opens `length` bytes of the object under `key` from `offset` (a ranged read: only those
    /// bytes are transferred); `Ok(None)` when there is no object.
    ///
    /// Contract: the returned body holds exactly the requested bytes when the object covers
    /// them; `size` is the whole object's size.
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<Self::Body>>, StoreError>;

    /// Reads a body from [`get`](Self::get) into memory.
    async fn read_body(&self, body: Self::Body) -> Result<Vec<u8>, StoreError>;

    /// Deletes the object under `key`. Idempotent: deleting nothing is `Ok`.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes the objects under `keys` (at most [`MAX_DELETE_BATCH`]) in one call. Idempotent.
    ///
    /// Contract: on `Err` any subset may have been deleted.
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError>;

    /// One page of the objects whose key starts with `prefix`, in key order, after `cursor` (from
    /// the previous page).
    ///
    /// Contract: `next_cursor` is `None` on the last page; a page may be shorter than `limit`.
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError>;
}

/// The most keys one [`ChunkStore::delete_many`] call takes (R2's limit).
pub const MAX_DELETE_BATCH: usize = 1_000;

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// When it was written, ms since the epoch.
    pub uploaded_ms: u64,
}

/// A page of [`ChunkStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectPage {
    /// The objects.
    pub objects: Vec<ListedObject>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

/// The current time, passed in so that core code never calls `SystemTime::now()` (it panics on
/// `wasm32-unknown-unknown`), and a way to wait.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;

    /// Waits `ms` milliseconds (a timer on wasm; the test clock just advances).
    async fn sleep(&self, ms: u64);
}

/// What a reference source returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefsFetch {
    /// The validator still matches: keep the references already loaded.
    NotModified,
    /// The source answered a redirect to `location` (not followed: the caller checks it).
    Redirect {
        /// The `Location` header, as sent.
        location: String,
    },
    /// The reference file, with its validator when the source gave one.
    Body {
        /// The file's bytes (JSON).
        bytes: Vec<u8>,
        /// Its `ETag`, for revalidation.
        etag: Option<String>,
    },
}

/// Where reference files come from (an HTTP URL, or a key in the bucket).
#[allow(async_fn_in_trait)]
pub trait ReferenceSource {
    /// Fetches the reference file at `location`, conditionally when `if_none_match` is given.
    ///
    /// Contract: [`RefsFetch::NotModified`] only when `if_none_match` was given and matches;
    /// a redirect is returned as [`RefsFetch::Redirect`], never followed;
    /// `Err` is [`Error::Upstream`](crate::error::Error::Upstream) (unreachable, non-success status)
    /// or [`Error::NotFound`](crate::error::Error::NotFound) (no such object in the bucket).
    async fn fetch_refs(
        &self,
        location: &crate::datasets::RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<RefsFetch, crate::error::Error>;
}

/// An inclusive byte range `[offset, offset + length)` of a remote file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes (at least 1).
    pub length: u64,
}

impl ByteRange {
    /// The `Range` header value: `bytes=first-last`.
    #[must_use]
    pub fn header_value(&self) -> String {
        let last = self.offset + self.length.saturating_sub(1);
        format!("bytes={}-{last}", self.offset)
    }
}

/// An origin's answer, before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginResponse {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Range` header, if any.
    pub content_range: Option<String>,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The `Last-Modified` header, if any.
    pub last_modified: Option<String>,
    /// The `Location` header of a redirect, if any.
    pub location: Option<String>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why the origin gave no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// No answer within the time allowed.
    #[error("origin did not answer within {0} ms")]
    Timeout(u32),
    /// The connection failed.
    #[error("origin request failed: {0}")]
    Network(String),
    /// The answer is larger than the worker will hold in memory.
    #[error("origin answer of {0} bytes is larger than the worker holds")]
    TooLarge(u64),
}

/// The archive the references point into (HTTP servers, S3-compatible stores).
#[allow(async_fn_in_trait)]
pub trait Origin {
    /// GETs `url`, with `Range: bytes=…` when `range` is given, and returns the whole answer.
    ///
    /// Contract: `Err` only when there is no HTTP answer; any status is `Ok` and is checked by the
    /// caller (`origin::checked_body`). Redirects are **not** followed: a 3xx is returned with its
    /// `location`, and the caller decides whether its target may be fetched
    /// (`origin::fetch_following_redirects`). Not retried here. Idempotent.
    async fn get(&self, url: &str, range: Option<ByteRange>)
        -> Result<OriginResponse, OriginError>;
}

impl<T: Origin> Origin for std::rc::Rc<T> {
    async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
    ) -> Result<OriginResponse, OriginError> {
        (**self).get(url, range).await
    }
}

impl<T: Index> Index for std::rc::Rc<T> {
    async fn ping(&self) -> Result<(), IndexError> {
        (**self).ping().await
    }
    async fn lookup(&self, dataset: &str, key: &str, now_ms: u64) -> Result<Lookup, IndexError> {
        (**self).lookup(dataset, key, now_ms).await
    }
    async fn record_miss(
        &self,
        dataset: &str,
        key: &str,
        origin_bytes: u64,
        stored: Option<&IndexEntry>,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError> {
        (**self)
            .record_miss(dataset, key, origin_bytes, stored, ttl_ms)
            .await
    }
    async fn forget(&self, dataset: &str, key: &str, entry: &IndexEntry) -> Result<(), IndexError> {
        (**self).forget(dataset, key, entry).await
    }
    async fn count_read(&self, dataset: &str, hit: bool, bytes: u64) -> Result<(), IndexError> {
        (**self).count_read(dataset, hit, bytes).await
    }
    async fn adopt(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
    ) -> Result<Option<StoredBytes>, IndexError> {
        (**self).adopt(dataset, key, entry, ttl_ms).await
    }
    async fn try_lease(&self, object: &str, holder: &str, ttl_ms: u64) -> Result<bool, IndexError> {
        (**self).try_lease(object, holder, ttl_ms).await
    }
    async fn release_lease(&self, object: &str, holder: &str) -> Result<(), IndexError> {
        (**self).release_lease(object, holder).await
    }
    async fn cache_stats(&self, datasets: &[String]) -> Result<Vec<CacheStats>, IndexError> {
        (**self).cache_stats(datasets).await
    }
    async fn claim(
        &self,
        dataset: &str,
        selector: &ClaimSelector,
        now_ms: u64,
        token: &str,
        most: u64,
    ) -> Result<Vec<ClaimedKey>, IndexError> {
        (**self).claim(dataset, selector, now_ms, token, most).await
    }
    async fn drop_claimed(
        &self,
        dataset: &str,
        keys: &[String],
        deleted: &[String],
        token: &str,
    ) -> Result<(), IndexError> {
        (**self).drop_claimed(dataset, keys, deleted, token).await
    }
    async fn lowest_scores(
        &self,
        datasets: &[String],
        order: Order,
    ) -> Result<Vec<Option<f64>>, IndexError> {
        (**self).lowest_scores(datasets, order).await
    }
    async fn total_stored(&self) -> Result<u64, IndexError> {
        (**self).total_stored().await
    }
    async fn list_keys(
        &self,
        dataset: &str,
        sort: KeySort,
        descending: bool,
        offset: u64,
        limit: u64,
    ) -> Result<KeyPage, IndexError> {
        (**self)
            .list_keys(dataset, sort, descending, offset, limit)
            .await
    }
    async fn objects_held(&self, objects: &[String]) -> Result<Vec<bool>, IndexError> {
        (**self).objects_held(objects).await
    }
    async fn runtime_datasets(&self) -> Result<RuntimeDatasets, IndexError> {
        (**self).runtime_datasets().await
    }
    async fn put_runtime_dataset(&self, id: &str, json: &str) -> Result<bool, IndexError> {
        (**self).put_runtime_dataset(id, json).await
    }
    async fn remove_runtime_dataset(&self, id: &str) -> Result<bool, IndexError> {
        (**self).remove_runtime_dataset(id).await
    }
    async fn cached_datasets(&self) -> Result<Vec<String>, IndexError> {
        (**self).cached_datasets().await
    }
    async fn drop_dataset_records(&self, dataset: &str) -> Result<(), IndexError> {
        (**self).drop_dataset_records(dataset).await
    }
    async fn record_snapshot(
        &self,
        dataset: &str,
        snapshot: &str,
        keep: u64,
    ) -> Result<(), IndexError> {
        (**self).record_snapshot(dataset, snapshot, keep).await
    }
    async fn snapshots(&self, dataset: &str, most: u64) -> Result<Vec<String>, IndexError> {
        (**self).snapshots(dataset, most).await
    }
    async fn orphan_cursor(&self) -> Result<Option<String>, IndexError> {
        (**self).orphan_cursor().await
    }
    async fn set_orphan_cursor(&self, cursor: Option<&str>) -> Result<(), IndexError> {
        (**self).set_orphan_cursor(cursor).await
    }
}

impl<T: ChunkStore> ChunkStore for std::rc::Rc<T> {
    type Body = T::Body;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        (**self).put(key, bytes).await
    }
    async fn get(&self, key: &str) -> Result<Option<StoredObject<Self::Body>>, StoreError> {
        (**self).get(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<Self::Body>>, StoreError> {
        (**self).get_range(key, offset, length).await
    }
    async fn read_body(&self, body: Self::Body) -> Result<Vec<u8>, StoreError> {
        (**self).read_body(body).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        (**self).delete_many(keys).await
    }
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        (**self).list(prefix, cursor, limit).await
    }
}

impl<T: Clock> Clock for std::rc::Rc<T> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }
    async fn sleep(&self, ms: u64) {
        (**self).sleep(ms).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only R2's trailing code 10058 is a rate limit; a key or message with "429" is not.
    #[test]
    fn r2_errors_are_classified_by_their_code() {
        let limited = "put: Reduce your rate of simultaneous writes to the same object. (10058)";
        assert_eq!(
            StoreError::from_r2("k", limited),
            StoreError::RateLimited("k".into())
        );
        for other in [
            "get: zec/v1/42/429abc not found (10007)",
            "put: object zec/v1/429/x failed: HTTP 429",
            "put: rate limit exceeded",
            "put: internal error (10001)",
            "put: (10058) in the middle, then (10001)",
            "",
        ] {
            assert!(
                matches!(
                    StoreError::from_r2("zec/v1/429", other),
                    StoreError::Unavailable(_)
                ),
                "{other}"
            );
        }
    }
}
