//! The read-through cache for one ranged Zarr key: index and storage looked up together, a hit
//! served from storage, a miss fetched from the origin once and written back afterwards.
//!
//! Generic over the backend traits and free of worker types. The write-back is returned as an
//! instruction ([`WriteBack`]) that the glue runs in `ctx.wait_until` after the response, so it
//! never delays the client.
//!
//! Single flight has two levels:
//! - inside an isolate, concurrent misses for one object share one future ([`SingleFlight`]);
//! - across isolates, the leader takes a lease in the index (`SET NX PX`). Whoever finds the lease
//!   taken polls storage for the object for a bounded time and serves it from there, or falls back
//!   to the origin without writing back. A dead holder's lease expires by itself.

use std::rc::Rc;

use futures::join;
use url::Url;

use crate::cache::maintenance::{enforce_limits, EvictionScope};
use crate::cache::single_flight::SingleFlight;
use crate::clock::Clock;
use crate::error::Error;
use crate::index::entry::IndexEntry;
use crate::index::{Index, IndexError};
use crate::keys::{content_checksum, CacheKeys};
use crate::origin::check::{checked_body, fetch_following_redirects};
use crate::origin::url_policy::{redact, HostPolicy};
use crate::origin::{ByteRange, Origin};
use crate::platform::{Body, Platform};
use crate::policy::eviction::{Admission, CapacityLimits};
use crate::store::{ChunkStore, StoreError};

/// How the bytes were obtained, as reported in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSource {
    /// From the chunk store, vouched for by the index (or written by the lease holder meanwhile).
    Hit,
    /// From the origin.
    Miss,
    /// Inline in the references (no fetch, nothing cached).
    Inline,
}

impl CacheSource {
    /// The `X-Cache` header value.
    #[must_use]
    pub fn header_value(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Inline => "INLINE",
        }
    }
}

/// Milliseconds spent per backend, for `Server-Timing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// The index lookup.
    pub index_ms: u64,
    /// The storage read (opening the object).
    pub storage_ms: u64,
    /// The origin fetch, or waiting for another instance's fetch.
    pub origin_ms: u64,
}

impl Timing {
    /// The `Server-Timing` header value.
    #[must_use]
    pub fn header_value(&self) -> String {
        format!(
            "index;dur={}, storage;dur={}, origin;dur={}",
            self.index_ms, self.storage_ms, self.origin_ms
        )
    }
}

/// The body of a chunk: streamed from storage, or bytes in memory.
#[derive(Debug)]
pub enum ChunkBody<B> {
    /// An unread stored object (the glue streams it), and its storage key (for ranged reads).
    Stored {
        /// The unread body.
        body: B,
        /// Where it is stored.
        object_key: String,
    },
    /// Bytes in memory (from the origin, or read from storage).
    Bytes(Rc<Vec<u8>>),
}

/// A chunk ready to answer with.
#[derive(Debug)]
pub struct Chunk<B> {
    /// The body.
    pub body: ChunkBody<B>,
    /// Its size in bytes.
    pub size: u64,
    /// Its content checksum (the `ETag`).
    pub checksum: String,
    /// Where it came from.
    pub source: CacheSource,
    /// What it cost.
    pub timing: Timing,
    /// The run-time datasets' version the index lookup returned (`None` without a lookup).
    pub datasets_version: Option<u64>,
}

/// Work to do after the response, in `ctx.wait_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    /// Store the bytes, then index them (never index what was not stored), then release the
    /// lease if one was taken.
    Store {
        /// Dataset id.
        dataset: String,
        /// Zarr key.
        key: String,
        /// The entry to write (its `object_key` is where the bytes go).
        entry: IndexEntry,
        /// The bytes.
        bytes: Rc<Vec<u8>>,
        /// Entry TTL.
        ttl_ms: u64,
        /// The lease to release, with its holder id.
        lease: Option<String>,
        /// The capacities to enforce once it is indexed.
        limits: CapacityLimits,
    },
    /// Record a miss served without writing back (another instance is writing it, or the
    /// dataset's admission filter refused it).
    RecordMiss {
        /// Dataset id.
        dataset: String,
        /// Zarr key.
        key: String,
        /// Bytes fetched from the origin.
        origin_bytes: u64,
        /// A lease to release: `(object key, holder)`.
        lease: Option<(String, String)>,
    },
    /// The bytes were already stored (same source range, written for another dataset or key):
    /// index them for this key and count the read as a hit.
    Adopt {
        /// Dataset id.
        dataset: String,
        /// Zarr key.
        key: String,
        /// The entry to write.
        entry: IndexEntry,
        /// Its remaining TTL.
        ttl_ms: u64,
        /// The capacities to enforce once it is indexed.
        limits: CapacityLimits,
    },
    /// Count a read that shared another read's outcome (a follower of a fetch in this isolate, or
    /// a reader served by another instance's stored bytes) as the hit or miss it answers. Origin
    /// bytes are not added: the fetch that brought them counted them.
    CountRead {
        /// Dataset id.
        dataset: String,
        /// Whether it answers `HIT` (else `MISS`).
        hit: bool,
        /// Bytes served.
        bytes: u64,
    },
    /// The index vouched for an object the store does not have: drop the entry and undo the hit.
    Forget {
        /// Dataset id.
        dataset: String,
        /// Zarr key.
        key: String,
        /// The stale entry.
        entry: IndexEntry,
    },
}

/// How often a request waiting on another request's fetch in the same isolate checks it.
const FOLLOWER_POLL_MS: u64 = 10;

/// Tunables of the cache path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Entry TTL.
    pub ttl_ms: u64,
    /// Lease length: longer than an origin fetch normally takes.
    pub lease_ms: u64,
    /// How long a request waits for another instance's fetch before going to the origin itself.
    pub lease_wait_ms: u64,
    /// Poll interval while waiting.
    pub poll_ms: u64,
    /// How long one origin request may take.
    pub origin_timeout_ms: u64,
    /// The capacities a write-back enforces.
    pub limits: CapacityLimits,
}

impl WriteBack {
    /// The write-back as the dataset's admission filter allows it: a miss the filter refuses is
    /// only counted, not stored (its lease is still released).
    #[must_use]
    pub fn admitted_by(self, admission: &Admission) -> Self {
        match self {
            Self::Store {
                dataset,
                key,
                entry,
                lease,
                ..
            } if !admission.admits(&key, entry.size, entry.fetch_ms) => Self::RecordMiss {
                dataset,
                key,
                origin_bytes: entry.size,
                lease: lease.map(|holder| (entry.object_key, holder)),
            },
            other => other,
        }
    }

    /// Whether this write-back stores bytes.
    #[must_use]
    pub fn stores(&self) -> bool {
        matches!(self, Self::Store { .. })
    }
}

/// The backends the cache path needs, owned (cheap clones) so that shared futures can outlive
/// the request that started them.
pub struct CacheBackends<P: Platform> {
    /// The index.
    pub index: P::Index,
    /// The chunk store.
    pub store: P::Store,
    /// The origin.
    pub origin: P::Origin,
    /// The clock.
    pub clock: P::Clock,
    /// Key formatting.
    pub keys: CacheKeys,
}

/// What the shared miss future yields: the bytes, or an error; plus the instruction for the
/// leader, who alone runs it.
#[derive(Clone)]
struct Fetched {
    bytes: Rc<Vec<u8>>,
    checksum: String,
    source: CacheSource,
    origin_ms: u64,
    write_back: Option<WriteBack>,
}

/// Shared single-flight state of an isolate.
pub type Flights = Rc<SingleFlight<Result<Rc<FetchedOutcome>, Error>>>;

/// The outcome of one miss, shared by every request of the isolate that waited on it.
pub struct FetchedOutcome(Fetched);

/// One ranged key to read through the cache.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRequest<'a> {
    /// Dataset id.
    pub dataset: &'a str,
    /// Zarr key.
    pub key: &'a str,
    /// The resolved reference URL (storage is addressed by it).
    pub url: &'a str,
    /// The hosts the dataset may fetch from: the URL, and any redirect, is checked against them
    /// before anything is read.
    pub hosts: &'a HostPolicy,
    /// The byte range, or `None` for the whole file.
    pub range: Option<ByteRange>,
    /// Identifies this request as a lease holder.
    pub holder: &'a str,
}

impl ChunkRequest<'_> {
    /// The URL to fetch, when the dataset allows its host.
    fn checked_url(&self) -> Result<Url, Error> {
        self.hosts.check_chunk_url(self.url).map_err(|refusal| {
            Error::Forbidden(format!("{}/{}: {refusal}", self.dataset, self.key))
        })
    }
}

/// Reads `request`'s chunk through the cache.
///
/// Returns the chunk and the write-back to run after the response (only the request that led the
/// fetch gets one).
///
/// # Errors
/// [`Error::Forbidden`] when the URL's host is not allowed (nothing is read, not even from the
/// cache); [`Error::Upstream`] when the origin fails, answers wrongly or redirects to a host that
/// is not allowed. Index and storage failures are not errors for the reader: the origin answers
/// instead.
pub async fn read_chunk<P: Platform>(
    request: ChunkRequest<'_>,
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<(Chunk<Body<P>>, Vec<WriteBack>), Error> {
    let ChunkRequest {
        dataset,
        key,
        url,
        range,
        ..
    } = request;
    let target = request.checked_url()?;
    let object_key = backends.keys.object(url, range);
    let start = backends.clock.now_ms();
    let (lookup, object, mut timing) = look_up_and_open(backends, dataset, key, &object_key).await;
    let datasets_version = lookup.as_ref().ok().map(|l| l.datasets_version);
    let entry = lookup.map(|l| l.entry);
    let mut deferred = Vec::new();
    let index_down = matches!(entry, Err(IndexError::Unavailable(_)));
    match (entry, object) {
        (Ok(Some(entry)), Ok(Some(object)))
            if entry.object_key == object_key && entry.size == object.size =>
        {
            return Ok((
                Chunk {
                    body: ChunkBody::Stored {
                        body: object.body,
                        object_key,
                    },
                    size: entry.size,
                    checksum: entry.checksum,
                    source: CacheSource::Hit,
                    timing,
                    datasets_version,
                },
                deferred,
            ));
        }
        // The entry vouches for bytes that are gone (or differ): forget it. A storage *error*
        // says nothing about the object, so the entry stays.
        (Ok(Some(entry)), Ok(_)) => deferred.push(WriteBack::Forget {
            dataset: dataset.to_owned(),
            key: key.to_owned(),
            entry,
        }),
        // No entry, or no index to ask: bytes stored for this source range within the TTL are
        // served (and indexed for this key when the index answers).
        (Ok(None) | Err(IndexError::Unavailable(_)), Ok(Some(object)))
            if fresh(&object, start, policy) =>
        {
            if let Some((mut chunk, write_backs)) =
                adopt(&request, &object_key, object, policy, backends).await
            {
                chunk.datasets_version = datasets_version;
                chunk.timing = timing;
                let write_backs = if index_down { Vec::new() } else { write_backs };
                return Ok((chunk, write_backs));
            }
        }
        _ => {}
    }

    let (outcome, leader, origin_ms) = share_fetch(
        request,
        target,
        &object_key,
        index_down,
        policy,
        backends,
        flights,
    )
    .await?;
    timing.origin_ms = origin_ms;
    let fetched = &outcome.0;
    match (&fetched.write_back, leader) {
        (Some(write_back), true) => deferred.push(write_back.clone()),
        // Served by another request's fetch in this isolate, or by another instance's bytes
        // in storage: nothing else records this read, so count it as what it answers.
        _ => deferred.push(WriteBack::CountRead {
            dataset: dataset.to_owned(),
            hit: fetched.source == CacheSource::Hit,
            bytes: fetched.bytes.len() as u64,
        }),
    }
    Ok((
        Chunk {
            size: fetched.bytes.len() as u64,
            checksum: fetched.checksum.clone(),
            body: ChunkBody::Bytes(Rc::clone(&fetched.bytes)),
            source: fetched.source,
            timing,
            datasets_version,
        },
        deferred,
    ))
}

/// The miss, shared by the isolate's concurrent readers of the object: the leader fetches
/// ([`fetch_once`]), the others poll its outcome. Returns it, whether this reader led, and the
/// time it took this reader.
async fn share_fetch<P: Platform>(
    request: ChunkRequest<'_>,
    target: Url,
    object_key: &str,
    index_down: bool,
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<(Rc<FetchedOutcome>, bool, u64), Error> {
    let start = backends.clock.now_ms();
    let (outcome, leader) = flights
        .run(
            object_key,
            || {
                fetch_once(
                    request.dataset.to_owned(),
                    request.key.to_owned(),
                    (request.url.to_owned(), target, request.hosts.clone()),
                    request.range,
                    object_key.to_owned(),
                    policy,
                    Rc::clone(backends),
                    (!index_down).then(|| request.holder.to_owned()),
                )
            },
            || backends.clock.sleep(FOLLOWER_POLL_MS),
            || backends.clock.now_ms(),
            // A leader may take a lease wait plus an origin request; past that (its request
            // was cancelled) a follower takes over.
            policy.lease_wait_ms + policy.origin_timeout_ms,
        )
        .await;
    let outcome = outcome?;
    let waited = if leader {
        outcome.0.origin_ms
    } else {
        backends.clock.now_ms().saturating_sub(start)
    };
    Ok((outcome, leader, waited))
}

/// The index lookup and the storage open, started together (time to first byte is one round
/// trip), with what each took.
async fn look_up_and_open<P: Platform>(
    backends: &CacheBackends<P>,
    dataset: &str,
    key: &str,
    object_key: &str,
) -> (
    Result<crate::index::entry::Lookup, IndexError>,
    Result<Option<crate::store::StoredObject<Body<P>>>, StoreError>,
    Timing,
) {
    let start = backends.clock.now_ms();
    let index_read = async {
        let lookup = backends.index.lookup(dataset, key, start).await;
        (lookup, backends.clock.now_ms())
    };
    let storage_read = async {
        let object = backends.store.get(object_key).await;
        (object, backends.clock.now_ms())
    };
    let ((lookup, index_done), (object, storage_done)) = join!(index_read, storage_read);
    let timing = Timing {
        index_ms: index_done.saturating_sub(start),
        storage_ms: storage_done.saturating_sub(start),
        origin_ms: 0,
    };
    (lookup, object, timing)
}

/// The leader's miss: take the lease and fetch, or wait for the holder's bytes in storage.
#[allow(clippy::too_many_arguments)]
async fn fetch_once<P: Platform>(
    dataset: String,
    key: String,
    (url, target, hosts): (String, Url, HostPolicy),
    range: Option<ByteRange>,
    object_key: String,
    policy: CachePolicy,
    backends: Rc<CacheBackends<P>>,
    holder: Option<String>,
) -> Result<Rc<FetchedOutcome>, Error> {
    let start = backends.clock.now_ms();
    // `holder` is None when the index is down: fetch without a lease (waiting for one would cost
    // another index timeout) and still write back.
    let lease = match holder {
        None => Lease::Unknown,
        Some(holder) => match backends
            .index
            .try_lease(&object_key, &holder, policy.lease_ms)
            .await
        {
            Ok(true) => Lease::Held(holder),
            Ok(false) => Lease::HeldElsewhere,
            Err(_) => Lease::Unknown,
        },
    };
    if lease == Lease::HeldElsewhere {
        let expected = range.map(|r| r.length);
        if let Some(bytes) = wait_for_object(&backends, &object_key, expected, policy).await {
            return Ok(Rc::new(FetchedOutcome(Fetched {
                checksum: content_checksum(&bytes),
                bytes: Rc::new(bytes),
                source: CacheSource::Hit,
                origin_ms: backends.clock.now_ms().saturating_sub(start),
                write_back: None,
            })));
        }
    }
    if let Lease::Held(holder) = &lease {
        let request = ChunkRequest {
            dataset: &dataset,
            key: &key,
            url: &url,
            hosts: &hosts,
            range,
            holder,
        };
        if let Some(stored) = stored_meanwhile(&request, &object_key, policy, &backends).await {
            return stored;
        }
    }
    let what = format!("{dataset}/{key}");
    let body = match origin_bytes(&backends.origin, &hosts, &what, target, range).await {
        Ok(body) => body,
        Err(error) => {
            if let Lease::Held(holder) = &lease {
                // Let another instance try at once rather than after the lease expires.
                let _ = backends.index.release_lease(&object_key, holder).await;
            }
            return Err(error);
        }
    };
    let (bytes, validator) = body;
    let now = backends.clock.now_ms();
    let fetch_ms = now.saturating_sub(start);
    let bytes = Rc::new(bytes);
    let checksum = content_checksum(&bytes);
    let write_back = if lease == Lease::HeldElsewhere {
        WriteBack::RecordMiss {
            dataset,
            key,
            origin_bytes: bytes.len() as u64,
            lease: None,
        }
    } else {
        WriteBack::Store {
            entry: IndexEntry {
                object_key,
                size: bytes.len() as u64,
                checksum: checksum.clone(),
                created_ms: now,
                last_access_ms: now,
                hits: 0,
                fetch_ms,
                origin_validator: validator,
            },
            bytes: Rc::clone(&bytes),
            ttl_ms: policy.ttl_ms,
            lease: match lease {
                Lease::Held(holder) => Some(holder),
                _ => None,
            },
            limits: policy.limits,
            dataset,
            key,
        }
    };
    Ok(Rc::new(FetchedOutcome(Fetched {
        checksum,
        bytes,
        source: CacheSource::Miss,
        origin_ms: fetch_ms,
        write_back: Some(write_back),
    })))
}

/// The checked bytes of `range` at `target` (redirects followed only to `hosts`) and the
/// origin's validator (`ETag`, else `Last-Modified`).
async fn origin_bytes(
    origin: &impl Origin,
    hosts: &HostPolicy,
    what: &str,
    target: Url,
    range: Option<ByteRange>,
) -> Result<(Vec<u8>, Option<String>), Error> {
    let (answered_by, response) =
        fetch_following_redirects(origin, hosts, what, target, range).await?;
    let validator = response
        .etag
        .clone()
        .or_else(|| response.last_modified.clone());
    let shown = format!("{what}: {}", redact(answered_by.as_str()));
    let body = checked_body(&shown, range, response)?;
    Ok((body, validator))
}

/// Whether stored bytes are younger than the dataset's TTL (by their upload time): the one
/// freshness rule for bytes taken from storage without an entry vouching for them.
fn fresh<B>(object: &crate::store::StoredObject<B>, now_ms: u64, policy: CachePolicy) -> bool {
    now_ms.saturating_sub(object.uploaded_ms) < policy.ttl_ms
}

/// Whether this request holds the cross-instance lease for its object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lease {
    /// We hold it, as this holder id.
    Held(String),
    /// Another instance holds it.
    HeldElsewhere,
    /// The index could not say (down): fetch without one.
    Unknown,
}

/// Serves bytes stored under `object_key` for a key with no entry (written for another dataset
/// or key with the same source range) as a hit, with an instruction to index them. `None` when
/// they cannot be read whole.
async fn adopt<P: Platform>(
    request: &ChunkRequest<'_>,
    object_key: &str,
    object: crate::store::StoredObject<Body<P>>,
    policy: CachePolicy,
    backends: &CacheBackends<P>,
) -> Option<(Chunk<Body<P>>, Vec<WriteBack>)> {
    if request.range.is_some_and(|r| r.length != object.size) {
        return None;
    }
    let (size, uploaded_ms) = (object.size, object.uploaded_ms);
    let bytes = backends.store.read_body(object.body).await.ok()?;
    if bytes.len() as u64 != size {
        return None;
    }
    let now = backends.clock.now_ms();
    let checksum = content_checksum(&bytes);
    let entry = IndexEntry {
        object_key: object_key.to_owned(),
        size,
        checksum: checksum.clone(),
        created_ms: uploaded_ms,
        last_access_ms: now,
        hits: 1,
        fetch_ms: 0,
        origin_validator: None,
    };
    let write_back = WriteBack::Adopt {
        dataset: request.dataset.to_owned(),
        key: request.key.to_owned(),
        entry,
        ttl_ms: policy
            .ttl_ms
            .saturating_sub(now.saturating_sub(uploaded_ms)),
        limits: policy.limits,
    };
    Some((
        Chunk {
            body: ChunkBody::Bytes(Rc::new(bytes)),
            size,
            checksum,
            source: CacheSource::Hit,
            timing: Timing::default(),
            datasets_version: None,
        },
        vec![write_back],
    ))
}

/// After winning the lease: another instance may have stored the bytes and released its lease
/// between our lookup and our lease. If so, serve them from storage (and release our lease)
/// instead of fetching the origin again.
async fn stored_meanwhile<P: Platform>(
    request: &ChunkRequest<'_>,
    object_key: &str,
    policy: CachePolicy,
    backends: &CacheBackends<P>,
) -> Option<Result<Rc<FetchedOutcome>, Error>> {
    let object = backends.store.get(object_key).await.ok()??;
    if !fresh(&object, backends.clock.now_ms(), policy) {
        return None;
    }
    let (chunk, write_backs) = adopt(request, object_key, object, policy, backends).await?;
    let _ = backends
        .index
        .release_lease(object_key, request.holder)
        .await;
    let ChunkBody::Bytes(bytes) = chunk.body else {
        return Some(Err(Error::Internal("adopted chunk without bytes".into())));
    };
    Some(Ok(Rc::new(FetchedOutcome(Fetched {
        bytes,
        checksum: chunk.checksum,
        source: CacheSource::Hit,
        origin_ms: 0,
        write_back: write_backs.into_iter().next(),
    }))))
}

/// Polls storage for `object_key` until it appears (the lease holder wrote it) or the wait ends.
async fn wait_for_object<P: Platform>(
    backends: &CacheBackends<P>,
    object_key: &str,
    expected_length: Option<u64>,
    policy: CachePolicy,
) -> Option<Vec<u8>> {
    let deadline = backends.clock.now_ms() + policy.lease_wait_ms;
    loop {
        backends.clock.sleep(policy.poll_ms).await;
        if let Ok(Some(object)) = backends.store.get(object_key).await {
            // Bytes older than the TTL are not the holder's: keep waiting for fresh ones.
            let complete = expected_length.is_none_or(|length| object.size == length)
                && fresh(&object, backends.clock.now_ms(), policy);
            if let (true, Ok(bytes)) = (complete, backends.store.read_body(object.body).await) {
                return Some(bytes);
            }
        }
        if backends.clock.now_ms() >= deadline {
            return None;
        }
    }
}

/// Runs a write-back instruction, then, when it took its dataset (or the deployment) over a
/// capacity, evicts. Failures are returned for logging; nothing is retried (the next miss writes
/// again, the next sweep evicts).
///
/// # Errors
/// The first index or storage failure, described.
pub async fn run_write_back<I: Index, S: ChunkStore>(
    write_back: WriteBack,
    index: &I,
    store: &S,
    scope: &EvictionScope<'_>,
) -> Result<(), String> {
    let describe = |dataset: &str, key: &str| {
        let (dataset, key) = (dataset.to_owned(), key.to_owned());
        move |e: IndexError| format!("index {dataset}/{key}: {e}")
    };
    let (dataset, stored, limits) = match write_back {
        WriteBack::Store {
            dataset,
            key,
            entry,
            bytes,
            ttl_ms,
            lease,
            limits,
        } => {
            let origin_bytes = bytes.len() as u64;
            // By now the answer went out and no reader holds the bytes: store them without a copy.
            let bytes = Rc::try_unwrap(bytes).unwrap_or_else(|shared| shared.to_vec());
            let stored = match store.put(&entry.object_key, bytes).await {
                Ok(()) => Ok(true),
                // Another writer is putting these very bytes (content-addressed key); its put may
                // still fail, so this one indexes nothing. Not an error.
                Err(StoreError::RateLimited(_)) => Ok(false),
                Err(error) => Err(format!("store {}: {error}", entry.object_key)),
            };
            let indexed = index
                .record_miss(
                    &dataset,
                    &key,
                    origin_bytes,
                    matches!(stored, Ok(true)).then_some(&entry),
                    ttl_ms,
                )
                .await
                .map_err(describe(&dataset, &key));
            if let Some(holder) = lease {
                let _ = index.release_lease(&entry.object_key, &holder).await;
            }
            stored?;
            (dataset, indexed?, limits)
        }
        WriteBack::Adopt {
            dataset,
            key,
            entry,
            ttl_ms,
            limits,
        } => {
            let stored = index
                .adopt(&dataset, &key, &entry, ttl_ms)
                .await
                .map_err(describe(&dataset, &key))?;
            (dataset, stored, limits)
        }
        WriteBack::RecordMiss {
            dataset,
            key,
            origin_bytes,
            lease,
        } => {
            let recorded = index
                .record_miss(&dataset, &key, origin_bytes, None, 0)
                .await
                .map_err(describe(&dataset, &key));
            if let Some((object, holder)) = lease {
                let _ = index.release_lease(&object, &holder).await;
            }
            return recorded.map(|_| ());
        }
        WriteBack::CountRead {
            dataset,
            hit,
            bytes,
        } => {
            return index
                .count_read(&dataset, hit, bytes)
                .await
                .map_err(|e| format!("index {dataset}: {e}"))
        }
        WriteBack::Forget {
            dataset,
            key,
            entry,
        } => {
            return index
                .forget(&dataset, &key, &entry)
                .await
                .map_err(describe(&dataset, &key))
        }
    };
    match stored {
        Some(bytes) if limits.exceeded(bytes.dataset, bytes.total) => {
            enforce_limits(index, store, &dataset, limits, scope)
                .await
                .map(|_| ())
                .map_err(|e| format!("evicting for {dataset}: {e}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{
        yield_once, FakeIndex, FakeOrigin, Fakes, InMemoryStore, ManualClock, StoreFault,
    };
    use crate::index::IndexError;
    use futures::executor::{block_on, LocalPool};
    use futures::task::LocalSpawnExt;
    use std::cell::RefCell;

    const URL: &str = "http://origin.test/f.bin";
    static HOSTS: std::sync::LazyLock<HostPolicy> =
        std::sync::LazyLock::new(|| HostPolicy::new(&["origin.test".to_owned()], true).unwrap());
    const RANGE: Option<ByteRange> = Some(ByteRange {
        offset: 2,
        length: 3,
    });
    const POLICY: CachePolicy = CachePolicy {
        origin_timeout_ms: 1_000,
        ttl_ms: 10_000,
        lease_ms: 30_000,
        lease_wait_ms: 200,
        poll_ms: 50,
        limits: CapacityLimits {
            dataset: None,
            total: None,
        },
    };
    const SCOPE: EvictionScope<'static> = EvictionScope {
        datasets: &[],
        now_ms: 0,
        token: "sweep",
        total_evictions: crate::cache::maintenance::MAX_TOTAL_EVICTIONS,
    };

    type Backends = Rc<CacheBackends<Fakes>>;

    fn backends_with(index: FakeIndex, store: InMemoryStore) -> Backends {
        Rc::new(CacheBackends {
            index,
            store,
            origin: FakeOrigin::default().with_file(URL, b"0123456789"),
            clock: ManualClock::default(),
            keys: CacheKeys::new("t"),
        })
    }

    fn request(range: Option<ByteRange>) -> ChunkRequest<'static> {
        ChunkRequest {
            dataset: "ds",
            key: "v/0",
            url: URL,
            hosts: &HOSTS,
            range,
            holder: "me",
        }
    }

    fn backends() -> Backends {
        backends_with(FakeIndex::healthy(), InMemoryStore::default())
    }

    /// Backends whose index answers nothing.
    fn index_down() -> Backends {
        backends_with(
            FakeIndex::failing(IndexError::Unavailable("down".into())),
            InMemoryStore::default(),
        )
    }

    /// Another instance holds the lease on the test chunk's object; returns the object key.
    fn leased_elsewhere(b: &Backends) -> String {
        let object = b.keys.object(URL, RANGE);
        b.index
            .leases
            .borrow_mut()
            .insert(object.clone(), "other".into());
        object
    }

    fn read(b: &Backends, flights: &Flights) -> Result<(Chunk<Vec<u8>>, Vec<WriteBack>), Error> {
        block_on(read_chunk(request(RANGE), POLICY, b, flights))
    }

    fn write_back_all(b: &Backends, write_backs: Vec<WriteBack>) {
        for wb in write_backs {
            block_on(run_write_back(wb, &b.index, &b.store, &SCOPE)).unwrap();
        }
    }

    fn body(chunk: Chunk<Vec<u8>>) -> Vec<u8> {
        match chunk.body {
            ChunkBody::Stored { body, .. } => body,
            ChunkBody::Bytes(bytes) => bytes.to_vec(),
        }
    }

    fn with_origin(origin: FakeOrigin) -> Backends {
        Rc::new(CacheBackends {
            origin,
            ..Rc::try_unwrap(backends()).ok().unwrap()
        })
    }

    /// A URL whose host is not allowed is refused before the index, storage or origin is asked.
    #[test]
    fn disallowed_hosts_read_nothing() {
        let b = backends();
        let flights = Flights::default();
        for url in [
            "http://127.0.0.1:9/x",
            "http://origin.test:8080/f.bin",
            "http://evil.test\\@origin.test/f.bin",
            "http://user@origin.test/f.bin",
        ] {
            let request = ChunkRequest {
                url,
                ..request(RANGE)
            };
            let got = block_on(read_chunk(request, POLICY, &b, &flights));
            assert!(matches!(got, Err(Error::Forbidden(_))), "{url}");
        }
        assert!(b.origin.requests.borrow().is_empty());
        assert_eq!(b.index.round_trips.get(), 0);
        assert_eq!(b.store.calls(), (0, 0, 0));
    }

    /// Redirects are followed only to allowed hosts, at most `MAX_REDIRECTS` times; a refused
    /// one is a 502 naming the dataset and key, and its target is never requested.
    #[test]
    fn redirects_are_checked() {
        let flights = Flights::default();
        let moved = "http://origin.test/moved.bin";
        let allowed = with_origin(
            FakeOrigin::default()
                .with_redirect(URL, "/moved.bin")
                .with_file(moved, b"0123456789"),
        );
        let (chunk, _) = block_on(read_chunk(request(RANGE), POLICY, &allowed, &flights)).unwrap();
        assert_eq!(body(chunk), b"234");
        assert_eq!(allowed.origin.requests.borrow()[1].0, moved);

        let stolen = "http://127.0.0.1:9/stolen";
        let refused = with_origin(
            FakeOrigin::default()
                .with_redirect(URL, stolen)
                .with_file(stolen, b"secret-bytes"),
        );
        let got = block_on(read_chunk(
            request(RANGE),
            POLICY,
            &refused,
            &Flights::default(),
        ));
        let Err(Error::Upstream(message)) = got else {
            panic!("{:?}", got.map(|_| ()))
        };
        assert!(message.starts_with("ds/v/0: "), "{message}");
        assert!(message.contains("does not allow"), "{message}");
        let requested: Vec<String> = refused
            .origin
            .requests
            .borrow()
            .iter()
            .map(|r| r.0.clone())
            .collect();
        assert_eq!(requested, [URL]);

        let mut looping = FakeOrigin::default();
        for hop in 0..10 {
            let from = if hop == 0 {
                URL.to_owned()
            } else {
                format!("http://origin.test/{hop}")
            };
            looping = looping.with_redirect(&from, &format!("/{}", hop + 1));
        }
        let looping = with_origin(looping);
        let got = block_on(read_chunk(
            request(RANGE),
            POLICY,
            &looping,
            &Flights::default(),
        ));
        assert!(matches!(got, Err(Error::Upstream(m)) if m.contains("redirects")));
        assert_eq!(
            looping.origin.requests.borrow().len(),
            crate::origin::url_policy::MAX_REDIRECTS + 1
        );
    }

    /// A miss fetches once, writes storage then index, releases the lease; the next read hits.
    #[test]
    fn miss_writes_back_then_hits() {
        let b = backends();
        let flights = Flights::default();
        let (chunk, wbs) = read(&b, &flights).unwrap();
        assert_eq!(chunk.source, CacheSource::Miss);
        assert_eq!(wbs.len(), 1);
        assert!(b
            .index
            .leases
            .borrow()
            .contains_key(&b.keys.object(URL, RANGE)));
        write_back_all(&b, wbs);
        assert!(b.index.leases.borrow().is_empty(), "lease released");
        assert_eq!(b.store.calls().0, 1);
        let (hit, wbs) = read(&b, &flights).unwrap();
        assert_eq!(hit.source, CacheSource::Hit);
        assert!(wbs.is_empty());
        assert_eq!(body(hit), b"234");
        assert_eq!(b.origin.requests.borrow().len(), 1);
    }

    /// After the TTL the entry is gone and the read is a miss again.
    #[test]
    fn expired_entry_is_a_miss() {
        let b = backends();
        let flights = Flights::default();
        let (_, wbs) = read(&b, &flights).unwrap();
        write_back_all(&b, wbs);
        b.index.now_ms.set(POLICY.ttl_ms + 1);
        b.clock.now.set(POLICY.ttl_ms + 1);
        let (again, _) = read(&b, &flights).unwrap();
        assert_eq!(again.source, CacheSource::Miss);
        assert_eq!(b.origin.requests.borrow().len(), 2);
    }

    /// Concurrent misses in one isolate share one origin fetch; only one write-back results.
    #[test]
    fn concurrent_misses_fetch_once() {
        let (origin, open) = FakeOrigin::default().with_file(URL, b"0123456789").gated();
        let b: Backends = Rc::new(CacheBackends {
            index: FakeIndex::healthy(),
            store: InMemoryStore::default(),
            origin,
            clock: ManualClock::default(),
            keys: CacheKeys::new("t"),
        });
        let flights = Flights::default();
        let results = Rc::new(RefCell::new(Vec::new()));
        let mut pool = LocalPool::new();
        // The manual clock moves by every follower's every pause: give the leader time enough
        // that none of them reaches its deadline.
        let policy = CachePolicy {
            origin_timeout_ms: 600_000,
            ..POLICY
        };
        for _ in 0..20 {
            let (b, flights, results) = (b.clone(), flights.clone(), results.clone());
            pool.spawner()
                .spawn_local(async move {
                    let out = read_chunk(request(RANGE), policy, &b, &flights).await;
                    results.borrow_mut().push(out.unwrap());
                })
                .unwrap();
        }
        // Every task starts and waits (followers poll with the clock), then the origin answers.
        let watcher = flights.clone();
        pool.spawner()
            .spawn_local(async move {
                for _ in 0..5 {
                    yield_once().await;
                }
                assert_eq!(watcher.in_flight(), 1, "all 20 wait on one fetch");
                open.send(()).unwrap();
            })
            .unwrap();
        pool.run();
        let results = results.borrow();
        assert_eq!(results.len(), 20);
        assert_eq!(b.origin.requests.borrow().len(), 1);
        let write_backs: Vec<WriteBack> = results
            .iter()
            .flat_map(|(_, wbs)| wbs.iter().cloned())
            .collect();
        assert_eq!(write_backs.iter().filter(|w| w.stores()).count(), 1);
        assert_eq!(write_backs.len(), 20, "the 19 followers are counted too");
        write_back_all(&b, write_backs);
        let stats = b.index.stats_of("ds");
        assert_eq!(
            (stats.misses, stats.bytes_from_origin, stats.hits),
            (20, 3, 0),
            "every reader answered MISS; the origin sent 3 bytes once"
        );
    }

    /// When another instance holds the lease, the reader waits for its bytes in storage and
    /// serves them without going to the origin.
    #[test]
    fn lease_held_elsewhere_waits_for_storage() {
        let b = backends();
        let object = leased_elsewhere(&b);
        block_on(b.store.put(&object, b"234".to_vec())).unwrap();
        // The lookup's storage read misses it (the holder writes it meanwhile): only the wait
        // finds it.
        b.store.fail_next_gets.set(1);
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        assert_eq!(
            wbs,
            [WriteBack::CountRead {
                dataset: "ds".into(),
                hit: true,
                bytes: 3
            }],
            "counted as the hit it answers"
        );
        assert_eq!(body(chunk), b"234");
        assert!(b.origin.requests.borrow().is_empty());
    }

    /// Bytes older than the TTL in storage are not what the lease holder is writing: the waiter
    /// never serves them, and reads the origin after its wait.
    #[test]
    fn lease_waiters_ignore_stale_bytes() {
        let b = backends();
        let object = leased_elsewhere(&b);
        block_on(b.store.put(&object, b"old".to_vec())).unwrap();
        b.clock.now.set(POLICY.ttl_ms);
        let (chunk, _) = read(&b, &Flights::default()).unwrap();
        assert_eq!(
            (chunk.source, body(chunk)),
            (CacheSource::Miss, b"234".to_vec())
        );
        assert_eq!(b.origin.requests.borrow().len(), 1);
    }

    /// With the index down, bytes stored within the TTL are served as a hit without asking the
    /// origin (nothing is written to the failing index); stale ones are not.
    #[test]
    fn index_outage_serves_fresh_stored_bytes() {
        let b = index_down();
        let object = b.keys.object(URL, RANGE);
        block_on(b.store.put(&object, b"234".to_vec())).unwrap();
        b.clock.now.set(POLICY.ttl_ms - 1);
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(
            (chunk.source, body(chunk)),
            (CacheSource::Hit, b"234".to_vec())
        );
        assert!(wbs.is_empty());
        assert!(b.origin.requests.borrow().is_empty());
        b.clock.now.set(POLICY.ttl_ms);
        let (chunk, _) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Miss);
        assert_eq!(b.origin.requests.borrow().len(), 1);
    }

    /// If the holder never writes, the reader gives up after the wait and reads the origin
    /// without writing back (only the miss is recorded).
    #[test]
    fn lease_wait_is_bounded() {
        let b = backends();
        leased_elsewhere(&b);
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Miss);
        assert!(b.clock.now.get() >= POLICY.lease_wait_ms);
        assert_eq!(b.clock.sleeps.get(), 4);
        assert!(matches!(
            wbs.as_slice(),
            [WriteBack::RecordMiss {
                origin_bytes: 3,
                ..
            }]
        ));
        write_back_all(&b, wbs);
        assert_eq!(b.store.calls().0, 0, "nothing stored");
        assert_eq!(b.index.stats_of("ds").misses, 1);
    }

    /// With the index down, reads still succeed from the origin.
    #[test]
    fn index_outage_still_serves() {
        let b = index_down();
        let (chunk, _) = read(&b, &Flights::default()).unwrap();
        assert_eq!(
            (chunk.source, body(chunk)),
            (CacheSource::Miss, b"234".to_vec())
        );
    }

    /// A short origin read is an error, nothing is written back, and the lease is released.
    #[test]
    fn short_origin_read_is_not_cached() {
        let b = backends();
        let range = Some(ByteRange {
            offset: 8,
            length: 5,
        });
        let error = block_on(read_chunk(request(range), POLICY, &b, &Flights::default()));
        assert!(matches!(error, Err(Error::Upstream(_))));
        assert!(b.index.leases.borrow().is_empty());
        assert_eq!(b.store.calls().0, 0);
    }

    /// An entry whose object vanished is a miss; the write-back forgets it and undoes the hit.
    #[test]
    fn entry_without_object_is_forgotten() {
        let b = backends();
        let flights = Flights::default();
        let (_, wbs) = read(&b, &flights).unwrap();
        write_back_all(&b, wbs);
        block_on(b.store.delete(&b.keys.object(URL, RANGE))).unwrap();
        let (chunk, wbs) = read(&b, &flights).unwrap();
        assert_eq!(chunk.source, CacheSource::Miss);
        assert!(wbs.iter().any(|wb| matches!(wb, WriteBack::Forget { .. })));
        write_back_all(&b, wbs);
        let stats = b.index.stats_of("ds");
        assert_eq!((stats.hits, stats.misses), (0, 2));
    }

    /// A failed store write leaves no index entry (never index what was not stored).
    #[test]
    fn failed_store_write_is_not_indexed() {
        let b = backends_with(
            FakeIndex::healthy(),
            InMemoryStore::with_fault(StoreFault::Put(StoreError::Retryable("full".into()))),
        );
        let (_, wbs) = read(&b, &Flights::default()).unwrap();
        let outcome: Vec<_> = wbs
            .into_iter()
            .map(|wb| block_on(run_write_back(wb, &b.index, &b.store, &SCOPE)))
            .collect();
        assert!(outcome[0].as_ref().is_err_and(|e| e.contains("full")));
        assert!(b.index.entries.borrow().is_empty());
        assert_eq!(b.index.stats_of("ds").misses, 1);
        assert!(b.index.leases.borrow().is_empty());
    }

    /// Bytes stored for the same source range under another dataset (no entry here) are served
    /// as a hit and indexed for this key, without an origin request.
    #[test]
    fn stored_bytes_without_entry_are_adopted() {
        let b = backends();
        block_on(b.store.put(&b.keys.object(URL, RANGE), b"234".to_vec())).unwrap();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        assert!(matches!(
            wbs.as_slice(),
            [WriteBack::Adopt { ttl_ms: 10_000, .. }]
        ));
        write_back_all(&b, wbs);
        assert_eq!(body(chunk), b"234");
        assert!(b.origin.requests.borrow().is_empty());
        let (again, _) = read(&b, &Flights::default()).unwrap();
        assert!(
            matches!(again.body, ChunkBody::Stored { .. }),
            "now a plain hit"
        );
        assert_eq!(b.index.stats_of("ds").hits, 2);
    }

    /// A storage error on a read does not make the entry forgotten.
    #[test]
    fn storage_error_keeps_the_entry() {
        let b = backends_with(
            FakeIndex::healthy(),
            InMemoryStore::with_fault(StoreFault::Get(StoreError::Retryable("blip".into()))),
        );
        let entry = IndexEntry {
            object_key: b.keys.object(URL, RANGE),
            size: 3,
            checksum: "x".into(),
            created_ms: 0,
            last_access_ms: 0,
            hits: 0,
            fetch_ms: 1,
            origin_validator: None,
        };
        block_on(b.index.record_miss("ds", "v/0", 3, Some(&entry), 60_000)).unwrap();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Miss);
        assert!(!wbs.iter().any(|wb| matches!(wb, WriteBack::Forget { .. })));
    }

    /// Forgetting a stale entry leaves a fresher entry written meanwhile in place.
    #[test]
    fn forget_spares_a_fresh_entry() {
        let b = backends();
        let stale = IndexEntry {
            object_key: "old".into(),
            size: 3,
            checksum: "x".into(),
            created_ms: 1,
            last_access_ms: 1,
            hits: 0,
            fetch_ms: 1,
            origin_validator: None,
        };
        let fresh = IndexEntry {
            created_ms: 2,
            ..stale.clone()
        };
        block_on(b.index.record_miss("ds", "v/0", 3, Some(&fresh), 60_000)).unwrap();
        let forget = WriteBack::Forget {
            dataset: "ds".into(),
            key: "v/0".into(),
            entry: stale,
        };
        write_back_all(&b, vec![forget]);
        assert_eq!(b.index.entries.borrow().len(), 1);
    }

    /// With the index down, no lease is asked for (it would cost another timeout) and the bytes
    /// are still stored.
    #[test]
    fn index_down_skips_the_lease() {
        let b = index_down();
        let (_, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(b.index.round_trips.get(), 1, "only the lookup");
        assert!(matches!(
            wbs.as_slice(),
            [WriteBack::Store { lease: None, .. }]
        ));
    }

    /// A miss that wins the lease after another instance stored the bytes (and released its
    /// lease) serves them from storage instead of fetching the origin again.
    #[test]
    fn lease_winner_rechecks_storage() {
        let b = backends();
        let object = b.keys.object(URL, RANGE);
        // The lookup sees nothing: the other instance's put lands between lookup and lease.
        b.store.fail_next_gets.set(1);
        block_on(b.store.put(&object, b"234".to_vec())).unwrap();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        assert!(b.origin.requests.borrow().is_empty());
        assert!(matches!(wbs.as_slice(), [WriteBack::Adopt { .. }]));
        assert!(b.index.leases.borrow().is_empty(), "lease released");
    }
}
