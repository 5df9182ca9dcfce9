//! The read-through path for one Zarr key at a URL: *look up* (index and storage together; a
//! hit is served from storage, bytes stored for another key are adopted), *else lock* (the
//! [`CacheLock`]: one fetch per object in the isolate and across instances), *fetch* from the
//! origin, *answer*, and return the *write-back* ([`WriteBack`]) the glue runs in
//! `ctx.wait_until` after the response, so it never delays the client.

use std::rc::Rc;

use futures::future::join;
use url::Url;

use crate::cache::envelope;
use crate::cache::lock::{acquire, CacheLock, Permit, Wait};
use crate::cache::settle::Settle;
use crate::cache::validators::{is_stale, FileCheck};
use crate::cache::{
    CacheBackends, CachePolicy, CacheSource, Chunk, ChunkBody, ChunkRequest, Expect, FetchRules,
    Timing, Versioned, WriteBack,
};
use crate::clock::Clock;
use crate::codec::DecodePlan;
use crate::error::{Error, PassedAnswer};
use crate::index::entry::{
    IndexEntry, LeaseAnswer, LeaseAsk, Lookup, SourceVersion, VersionProbe, ABSENT_CHECKSUM,
    ABSENT_DOCUMENT,
};
use crate::index::{Index, IndexError};
use crate::keys::content_checksum;
use crate::origin::auth::OriginAuth;
use crate::origin::check::{checked_body, fetch_following_redirects};
use crate::origin::url_policy::{redact, HostPolicy};
use crate::origin::{ByteRange, Origin};
use crate::platform::{Body, Platform};
use crate::store::{ChunkStore, StoreError, StoredObject};

/// What the shared miss future yields: the bytes, or an error; plus the instruction for the
/// leader, who alone runs it.
#[derive(Clone)]
struct Fetched {
    bytes: Rc<Vec<u8>>,
    checksum: String,
    source: CacheSource,
    origin_ms: u64,
    write_back: Option<WriteBack>,
    /// The origin has no such key (its 404, remembered).
    absent: bool,
    read_at_ms: u64,
}

/// One try of a read: done, or the source version record sent the reader elsewhere.
enum Attempt<B> {
    Done(Chunk<B>, Vec<WriteBack>),
    /// Another generation is current: retry with it.
    Moved(u64),
    /// The version document must be checked first.
    Stale,
}

/// How many times a versioned read follows a changed or stale source version before it gives
/// up (each step is one index round trip; two happen only when the source changes meanwhile).
const MAX_VERSION_ROUNDS: usize = 4;

/// How long after its last check a source generation still serves while the version document
/// cannot be read (the origin down, or answering garbage).
const STALE_IF_ERROR_MS: u64 = 3_600_000;

/// The outcome of one miss, shared by every request of the isolate that waited on it.
pub struct FetchedOutcome(Fetched);

impl FetchedOutcome {
    /// The outcome of a fetch made elsewhere (block mode's merged fetches): `bytes` from the
    /// origin (`hit` false) or from another instance's stored object (`hit` true), and the
    /// write-back its leader runs.
    pub(crate) fn new(
        bytes: Rc<Vec<u8>>,
        checksum: String,
        hit: bool,
        origin_ms: u64,
        write_back: Option<WriteBack>,
        read_at_ms: u64,
    ) -> Self {
        Self(Fetched {
            checksum,
            bytes,
            source: if hit {
                CacheSource::Hit
            } else {
                CacheSource::Miss
            },
            origin_ms,
            write_back,
            absent: false,
            read_at_ms,
        })
    }

    /// The bytes.
    pub(crate) fn bytes(&self) -> &Rc<Vec<u8>> {
        &self.0.bytes
    }

    /// Where they came from.
    pub(crate) fn source(&self) -> CacheSource {
        self.0.source
    }

    /// What the leader runs after the response.
    pub(crate) fn write_back(&self) -> Option<&WriteBack> {
        self.0.write_back.as_ref()
    }

    /// How long the fetch took.
    pub(crate) fn origin_ms(&self) -> u64 {
        self.0.origin_ms
    }
}

/// The isolate's cache lock over misses.
pub type Flights = CacheLock<Result<Rc<FetchedOutcome>, Error>>;

/// Reads `request`'s chunk through the cache.
///
/// Returns the chunk and the write-back to run after the response (only the request that led the
/// fetch gets one). A versioned read ([`ChunkRequest::version`]) keys its objects by the source
/// generation the index records: when that moved, it retries with the new one; when the record
/// is stale, it first reads the version document (through the cache) and records its digest.
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
    let Some(version) = request.version else {
        return match read_once(request, None, policy, backends, flights).await? {
            Attempt::Done(chunk, write_backs) => Ok((chunk, write_backs)),
            Attempt::Moved(_) | Attempt::Stale => Err(Error::Internal(format!(
                "{}/{}: a version answer to an unversioned read",
                request.dataset, request.key
            ))),
        };
    };
    let mut generation = version.generation;
    let mut deferred = Vec::new();
    let mut stale_after_ms = version.stale_after_ms;
    // Why the version document could not be read, once a read went on in the grace period.
    let mut unreadable: Option<Error> = None;
    for _ in 0..MAX_VERSION_ROUNDS {
        let probe = VersionProbe {
            generation,
            stale_after_ms,
        };
        match read_once(request, Some(probe), policy, backends, flights).await? {
            Attempt::Done(mut chunk, write_backs) => {
                chunk.generation = Some(generation);
                deferred.extend(write_backs);
                return Ok((chunk, deferred));
            }
            Attempt::Moved(current) => generation = current,
            Attempt::Stale => {
                if let Some(error) = unreadable {
                    return Err(error);
                }
                match revalidate(request, version, policy, backends, flights).await {
                    Ok((current, write_backs)) => {
                        deferred.extend(write_backs);
                        generation = current;
                    }
                    // The origin cannot answer for its version now: the generation checked
                    // last stands for a while (stale if error), never one older.
                    Err(error @ (Error::Upstream(_) | Error::OriginTimeout(_))) => {
                        stale_after_ms = stale_after_ms.saturating_add(STALE_IF_ERROR_MS);
                        unreadable = Some(error);
                    }
                    Err(error) => return Err(error),
                }
            }
        }
    }
    Err(Error::Upstream(format!(
        "{}/{}: the source version kept changing during the read",
        request.dataset, request.key
    )))
}

/// Reads the version document through the cache (metadata rules, its own short TTL) and
/// records its digest: the generation current now.
async fn revalidate<P: Platform>(
    request: ChunkRequest<'_>,
    version: Versioned<'_>,
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<(u64, Vec<WriteBack>), Error> {
    let document = ChunkRequest {
        key: version.document_key,
        url: version.document_url,
        range: None,
        rules: FetchRules {
            absent_ttl_ms: Some(version.stale_after_ms),
            expect: Expect::JsonObject,
            keep_content_type: false,
        },
        version: None,
        ..request
    };
    let policy = CachePolicy {
        ttl_ms: version.stale_after_ms,
        ..policy
    };
    match read_once(document, None, policy, backends, flights).await? {
        Attempt::Done(chunk, write_backs) => {
            let generation = record_document(&backends.index, request.dataset, &chunk).await?;
            Ok((generation, write_backs))
        }
        Attempt::Moved(_) | Attempt::Stale => Err(Error::Internal(format!(
            "{}/{}: a version answer to an unversioned read",
            request.dataset, version.document_key
        ))),
    }
}

/// Records a version document just read (its checksum, or that the origin has none) as the
/// dataset's source version, and returns the generation.
///
/// # Errors
/// [`Error::Index`] when the index cannot record it.
pub async fn record_document<B>(
    index: &impl Index,
    dataset: &str,
    document: &Chunk<B>,
) -> Result<u64, Error> {
    let digest = if document.absent {
        ABSENT_DOCUMENT
    } else {
        document.checksum.as_str()
    };
    Ok(index
        .set_source_version(dataset, digest, document.fetched_ms)
        .await?)
}

/// One try of [`read_chunk`], at the generation `probe` names (if versioned).
async fn read_once<P: Platform>(
    request: ChunkRequest<'_>,
    probe: Option<VersionProbe>,
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<Attempt<Body<P>>, Error> {
    let ChunkRequest { dataset, key, .. } = request;
    let target = request.checked_url()?;
    let object_key = object_key_of(&backends.keys, &request, probe);
    let start = backends.clock.now_ms();
    let (lookup, object, mut timing) = match look_up_and_open(
        backends,
        &request,
        &object_key,
        (probe, flights.holder()),
        policy,
    )
    .await
    {
        Opened::Both(lookup, object, timing) => (lookup, object, timing),
        Opened::StorageFirst(object, timing) => {
            let (chunk, write_backs) =
                storage_first(&request, object_key, (object, timing), policy, backends);
            return Ok(Attempt::Done(chunk, write_backs));
        }
    };
    match lookup.as_ref().map(|l| l.source) {
        Ok(SourceVersion::Changed(current)) => return Ok(Attempt::Moved(current)),
        Ok(SourceVersion::Stale) => return Ok(Attempt::Stale),
        _ => {}
    }
    let Said {
        datasets_version,
        file_validator,
        lease,
    } = what_the_lookup_says(&request, lookup.as_ref());
    let entry = lookup.map(|l| l.entry);
    // An entry read from an older version of its file: its stored bytes are of that version
    // too, so the leader does not look in storage again before fetching.
    let stale_file = matches!(&entry, Ok(Some(e)) if is_stale(e, file_validator.as_deref()));
    let mut deferred = Vec::new();
    let index_down = matches!(entry, Err(IndexError::Unavailable(_)));
    // Without the index a versioned read cannot know the generation: the origin answers, and
    // nothing is taken from or written to storage under a generation that may be old.
    let blind = index_down && probe.is_some();
    // A storage read that failed (not merely found nothing): the leader does not ask storage
    // again before fetching (it would wait out another storage timeout).
    let storage_down = object.is_err() || stale_file;
    match (entry, object) {
        // A remembered 404: no object, the entry is the answer.
        (Ok(Some(entry)), _)
            if entry.is_absent()
                && entry.object_key == object_key
                && !outlived(&entry, start, policy, request.rules) =>
        {
            let body = ChunkBody::Bytes(Rc::new(Vec::new()));
            let chunk = hit(entry, body, timing, datasets_version);
            return Ok(Attempt::Done(chunk, deferred));
        }
        (Ok(Some(entry)), Ok(Some(object)))
            if entry.object_key == object_key
                && entry.size == object.size
                && !stale_file
                && !outlived(&entry, start, policy, request.rules) =>
        {
            let now = backends.clock.now_ms();
            deferred.extend(file_check(&request, &entry, now, policy));
            let body = ChunkBody::Stored {
                body: object.body,
                object_key,
            };
            let chunk = hit(entry, body, timing, datasets_version);
            return Ok(Attempt::Done(chunk, deferred));
        }
        // The entry vouches for bytes that are gone (or differ): forget it. A storage *error*
        // says nothing about the object, so the entry stays.
        (Ok(Some(entry)), Ok(_)) => deferred.push(WriteBack::Forget {
            dataset: dataset.to_owned(),
            key: key.to_owned(),
            entry,
        }),
        // No entry, or no index to ask: bytes stored for this source range within the TTL are
        // served (and indexed for this key when the index answers), unless they are of
        // another version of their file than the index last said.
        (Ok(None) | Err(IndexError::Unavailable(_)), Ok(Some(object)))
            if !blind && adoptable(&request, &object, start, policy) =>
        {
            // The lookup took the lease (no live entry): the bytes are here, let it go.
            let lease = (lease == LeaseAnswer::Granted)
                .then(|| (object_key.clone(), flights.holder().to_owned()));
            let adoption = adopt(&request, &object_key, object, (policy, false), backends).await;
            if let Some(adoption) = adoption {
                let (timing, index_down) = ((timing, datasets_version), index_down);
                return Ok(adopted(adoption, timing, index_down, lease));
            }
        }
        _ => {}
    }

    let (outcome, leader, origin_ms) = share_fetch(
        request,
        target,
        (&object_key, file_validator, lease),
        (index_down, storage_down),
        policy,
        backends,
        flights,
    )
    .await?;
    timing.origin_ms = origin_ms;
    let chunk = fetched_chunk(&request, &outcome.0, (leader, blind), timing, &mut deferred);
    Ok(Attempt::Done(
        Chunk {
            datasets_version,
            ..chunk
        },
        deferred,
    ))
}

/// What an answered lookup tells a read beside its entry.
struct Said {
    /// The run-time datasets' version.
    datasets_version: Option<u64>,
    /// The source file's recorded validator (also learned by the isolate's file checks).
    file_validator: Option<String>,
    /// The object's lease as the lookup left it (not taken without an answer).
    lease: LeaseAnswer,
}

fn what_the_lookup_says(request: &ChunkRequest<'_>, lookup: Result<&Lookup, &IndexError>) -> Said {
    let Ok(lookup) = lookup else {
        return Said {
            datasets_version: None,
            file_validator: None,
            lease: LeaseAnswer::NotTaken,
        };
    };
    if let (Some(checks), Some(validator)) = (request.checks, &lookup.file_validator) {
        checks.learn_validator(request.url, validator);
    }
    Said {
        datasets_version: Some(lookup.datasets_version),
        file_validator: lookup.file_validator.clone(),
        lease: lookup.lease,
    }
}

/// The chunk a fetch under the cache lock answers, and what this reader leaves to record it.
fn fetched_chunk<B>(
    request: &ChunkRequest<'_>,
    fetched: &Fetched,
    (leader, blind): (bool, bool),
    timing: Timing,
    deferred: &mut Vec<WriteBack>,
) -> Chunk<B> {
    match (&fetched.write_back, leader) {
        // Blind (see `read_once`): the answer only, nothing written under a guessed generation.
        _ if blind => {}
        (Some(write_back), true) => deferred.push(write_back.clone()),
        // Served by another request's fetch in this isolate, or by another instance's bytes
        // in storage: nothing else records this read, so count it as what it answers.
        _ => deferred.push(WriteBack::CountRead {
            dataset: request.dataset.to_owned(),
            hit: fetched.source == CacheSource::Hit,
            bytes: fetched.bytes.len() as u64,
        }),
    }
    Chunk {
        size: fetched.bytes.len() as u64,
        checksum: fetched.checksum.clone(),
        body: ChunkBody::Bytes(Rc::clone(&fetched.bytes)),
        source: fetched.source,
        timing,
        datasets_version: None,
        absent: fetched.absent,
        generation: None,
        fetched_ms: fetched.read_at_ms,
    }
}

/// Where `request`'s bytes are stored: by URL and range, apart for a signing identity, by
/// dataset and source generation for a versioned read, and apart again for an answer kept with
/// its content type (an envelope is not the raw bytes of the same URL) and for decoded bytes
/// (per codec chain).
fn object_key_of(
    keys: &crate::keys::CacheKeys,
    request: &ChunkRequest<'_>,
    probe: Option<VersionProbe>,
) -> String {
    let marked;
    // A fragment is never sent, so no fetched URL has these forms.
    let url = if request.rules.keep_content_type {
        marked = format!("{}#zec-envelope", request.url);
        marked.as_str()
    } else if let Some(plan) = request.decode {
        marked = format!("{}#zec-decoded-{}", request.url, plan.id());
        marked.as_str()
    } else {
        request.url
    };
    let range = request.range;
    match (request.auth, probe) {
        (Some(auth), _) => keys.signed_object(url, range, &auth.credentials.access_key_id),
        (None, Some(probe)) => {
            keys.versioned_object(url, range, (request.dataset, probe.generation))
        }
        (None, None) => keys.object(url, range),
    }
}

/// Whether `entry` is older than its TTL by its own creation time: the index keeps an entry a
/// little longer (its expiry starts when the write-back runs, after the answer), and a version
/// document kept that way would look fresh to a check that must read a newer one.
fn outlived(entry: &IndexEntry, now_ms: u64, policy: CachePolicy, rules: FetchRules) -> bool {
    let ttl_ms = match rules.absent_ttl_ms {
        Some(absent_ttl) if entry.is_absent() => absent_ttl,
        _ => policy.ttl_ms,
    };
    now_ms.saturating_sub(entry.created_ms) >= ttl_ms
}

/// The check of the hit's source file, when it is due (see [`crate::cache::validators`]).
fn file_check(
    request: &ChunkRequest<'_>,
    entry: &IndexEntry,
    now_ms: u64,
    policy: CachePolicy,
) -> Option<WriteBack> {
    let (checks, validator) = (request.checks?, entry.origin_validator.as_ref()?);
    checks
        .due(request.url, entry.created_ms, now_ms, policy.file_check_ms)
        .then(|| {
            WriteBack::CheckFile(FileCheck {
                url: request.url.to_owned(),
                validator: validator.clone(),
                hosts: request.hosts.clone(),
                auth: request.auth.cloned(),
                sized: false,
            })
        })
}

/// The chunk an index entry vouches for (its bytes in `body`, or none when it remembers a 404).
fn hit<B>(
    entry: IndexEntry,
    body: ChunkBody<B>,
    timing: Timing,
    datasets_version: Option<u64>,
) -> Chunk<B> {
    Chunk {
        body,
        size: entry.size,
        absent: entry.is_absent(),
        checksum: entry.checksum,
        source: CacheSource::Hit,
        timing,
        datasets_version,
        generation: None,
        fetched_ms: entry.created_ms,
    }
}

/// The miss under the cache lock: the isolate's leader fetches ([`fetch_once`]), its concurrent
/// readers of the object follow its outcome. Returns it, whether this reader led, and the time
/// it took this reader.
async fn share_fetch<P: Platform>(
    request: ChunkRequest<'_>,
    target: Url,
    (object_key, file_validator, lease): (&str, Option<String>, LeaseAnswer),
    (index_down, storage_down): (bool, bool),
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<(Rc<FetchedOutcome>, bool, u64), Error> {
    let start = backends.clock.now_ms();
    let fetch = || {
        // Only the leader gets here. A lease already the isolate's was taken by another of its
        // readers: a follower of this very fetch (then the leader holds it), or the leader of a
        // fetch whose write-back is still storing the bytes (then they are coming: wait).
        let holder = flights.holder().to_owned();
        let leased = match lease {
            LeaseAnswer::NotTaken => LookupLease::NotAsked,
            LeaseAnswer::Granted => LookupLease::Held(holder),
            LeaseAnswer::HeldHere if !flights.is_storing(object_key, start, policy.lease_ms) => {
                LookupLease::Held(holder)
            }
            LeaseAnswer::HeldHere | LeaseAnswer::HeldElsewhere => LookupLease::Elsewhere,
        };
        fetch_once(
            Owned {
                auth: request.auth.cloned(),
                dataset: request.dataset.to_owned(),
                key: request.key.to_owned(),
                url: request.url.to_owned(),
                hosts: request.hosts.clone(),
                range: request.range,
                object_key: object_key.to_owned(),
                storage_down,
                rules: request.rules,
                decode: request.decode.cloned(),
                file_validator: file_validator.clone(),
                track_file: request.checks.is_some(),
                leased,
            },
            target,
            policy,
            Rc::clone(backends),
            (!index_down).then(|| request.holder.to_owned()),
        )
    };
    // A leader may take a lease wait plus an origin request; past that (its request was
    // cancelled) a follower takes over.
    let leader_ms = policy.lease_wait_ms + policy.origin_timeout_ms;
    let (outcome, leader) = flights
        .lead_or_follow(object_key, fetch, &backends.clock, leader_ms)
        .await;
    let outcome = outcome?;
    if leader
        && matches!(
            outcome.write_back(),
            Some(WriteBack::Store { lease: Some(_), .. })
        )
    {
        flights.storing(object_key, backends.clock.now_ms(), policy.lease_ms);
    }
    let waited = if leader {
        outcome.0.origin_ms
    } else {
        backends.clock.now_ms().saturating_sub(start)
    };
    Ok((outcome, leader, waited))
}

/// What the storage open and the index lookup gave.
enum Opened<B> {
    /// Both answered.
    Both(
        Result<Lookup, IndexError>,
        Result<Option<StoredObject<B>>, StoreError>,
        Timing,
    ),
    /// Storage answered with an object it can answer with alone ([`answers_alone`]): no
    /// lookup yet (it is made after the response, [`Settle`]).
    StorageFirst(StoredObject<B>, Timing),
}

/// Storage first, then the index lookup (asking for the object's lease,
/// taken only when there is no live entry) unless storage answers alone: a hit's time to first
/// byte is one storage round trip, and a miss waits on one index round trip before it fetches.
/// A versioned read starts both together: its lookup says which generation its objects are
/// keyed by.
async fn look_up_and_open<P: Platform>(
    backends: &CacheBackends<P>,
    request: &ChunkRequest<'_>,
    object_key: &str,
    (probe, holder): (Option<VersionProbe>, &str),
    policy: CachePolicy,
) -> Opened<Body<P>> {
    let clock = &backends.clock;
    let start = clock.now_ms();
    let lookup = async {
        let ask = LeaseAsk {
            object: object_key,
            holder,
            ttl_ms: policy.lease_ms,
        };
        // The source file's validator matters only where files are checked (kerchunk).
        let file = request.checks.map(|_| request.url);
        let (dataset, key) = (request.dataset, request.key);
        let lookup = backends
            .index
            .lookup(dataset, key, start, probe, file, Some(ask))
            .await;
        (lookup, clock.now_ms())
    };
    let storage = async {
        let object = backends.store.get(object_key).await;
        (object, clock.now_ms())
    };
    let timing = |index_ms: u64, storage_ms: u64| Timing {
        index_ms,
        storage_ms,
        origin_ms: 0,
    };
    if probe.is_some() {
        let ((lookup, index_done), (object, storage_done)) = join(lookup, storage).await;
        let (index_ms, storage_ms) = (
            index_done.saturating_sub(start),
            storage_done.saturating_sub(start),
        );
        return Opened::Both(lookup, object, timing(index_ms, storage_ms));
    }
    let (object, storage_done) = storage.await;
    let storage_ms = storage_done.saturating_sub(start);
    match object {
        Ok(Some(object)) if answers_alone(request, probe, &object, storage_done, policy) => {
            Opened::StorageFirst(object, timing(0, storage_ms))
        }
        object => {
            let (lookup, index_done) = lookup.await;
            let index_ms = index_done.saturating_sub(storage_done);
            // An entry for an object storage did not have a moment ago: it was written between
            // the two reads (the entry is written after the bytes); read storage once more.
            let written_meanwhile = matches!(
                (&object, &lookup),
                (Ok(None), Ok(Lookup { entry: Some(e), .. })) if !e.is_absent()
            );
            let object = if written_meanwhile {
                backends.store.get(object_key).await
            } else {
                object
            };
            Opened::Both(lookup, object, timing(index_ms, storage_ms))
        }
    }
}

/// Whether a stored object answers `request` before the index does: it is fresh by its own
/// upload time (within the TTL), carries its checksum (the `ETag`), covers the range it is
/// keyed by, and is not of a version of its file other than the one this isolate last heard of
/// from the index. Only unversioned reads: a versioned read learns the generation its objects
/// are keyed by from the lookup itself.
fn answers_alone<B>(
    request: &ChunkRequest<'_>,
    probe: Option<VersionProbe>,
    object: &StoredObject<B>,
    now_ms: u64,
    policy: CachePolicy,
) -> bool {
    probe.is_none()
        && object.meta.checksum.is_some()
        && request.stored_length().is_none_or(|n| n == object.size)
        && adoptable(request, object, now_ms, policy)
}

/// The storage-first hit: the object's bytes, streamed, and the [`Settle`] that makes the
/// lookup after the response.
fn storage_first<P: Platform>(
    request: &ChunkRequest<'_>,
    object_key: String,
    (object, timing): (StoredObject<Body<P>>, Timing),
    policy: CachePolicy,
    backends: &CacheBackends<P>,
) -> (Chunk<Body<P>>, Vec<WriteBack>) {
    let now = backends.clock.now_ms();
    let checksum = object.meta.checksum.clone().unwrap_or_default();
    let stamp = (object.size, object.uploaded_ms);
    let entry = adopted_entry(
        &object_key,
        stamp,
        &checksum,
        object.meta.validator.clone(),
        now,
    );
    let mut write_backs: Vec<WriteBack> = file_check(request, &entry, now, policy)
        .into_iter()
        .collect();
    write_backs.push(WriteBack::Settle(Settle {
        dataset: request.dataset.to_owned(),
        key: request.key.to_owned(),
        ttl_ms: remaining_ttl_ms(policy, object.uploaded_ms, now),
        limits: policy.limits,
        read_ms: now,
        file: request
            .checks
            .map(|checks| (request.url.to_owned(), checks.clone())),
        versions: None,
        queue: backends.late.clone(),
        entry,
    }));
    let body = ChunkBody::Stored {
        body: object.body,
        object_key,
    };
    let chunk = Chunk {
        timing,
        ..stored_hit(body, stamp, checksum)
    };
    (chunk, write_backs)
}

/// What the shared fetch owns of its request (it may outlive the request that started it).
struct Owned {
    auth: Option<OriginAuth>,
    dataset: String,
    key: String,
    url: String,
    hosts: HostPolicy,
    range: Option<ByteRange>,
    object_key: String,
    /// This request's storage read failed: do not ask storage again before fetching.
    storage_down: bool,
    rules: FetchRules,
    /// The decoded view's plan, applied to the origin's bytes.
    decode: Option<Rc<DecodePlan>>,
    /// The file's validator as the index recorded it (a fetch that sees another records it).
    file_validator: Option<String>,
    /// Whether the file's validator is tracked (see [`crate::cache::validators`]).
    track_file: bool,
    /// The object's lease as the isolate's lookups left it.
    leased: LookupLease,
}

impl Owned {
    /// As [`ChunkRequest::stored_length`].
    fn stored_length(&self) -> Option<u64> {
        match &self.decode {
            Some(plan) => Some(plan.decoded_len() as u64),
            None => self.range.map(|r| r.length),
        }
    }
}

/// The object's lease as the isolate's lookups left it, for the leader of its fetch.
enum LookupLease {
    /// No lookup took or saw it (a live entry, or no answer): ask for it.
    NotAsked,
    /// A lookup of the isolate took it for this holder.
    Held(String),
    /// Another instance holds it.
    Elsewhere,
}

/// The isolate leader's miss: lock the object across instances; with the write permit, fetch
/// (unless the bytes were stored meanwhile) and write back; with a read permit, wait for the
/// holder's bytes, else fetch without writing back.
async fn fetch_once<P: Platform>(
    owned: Owned,
    target: Url,
    policy: CachePolicy,
    backends: Rc<CacheBackends<P>>,
    holder: Option<String>,
) -> Result<Rc<FetchedOutcome>, Error> {
    let start = backends.clock.now_ms();
    let object_key = owned.object_key.as_str();
    // The lookup took the lease, or saw it held elsewhere: no second round trip. Else `holder`
    // is None when the index is down: fetch without a lease (waiting for one would cost
    // another index timeout) and still write back.
    let permit = match &owned.leased {
        LookupLease::Held(holder) => Permit::granted(object_key, holder),
        LookupLease::Elsewhere => Permit::held_elsewhere(object_key),
        LookupLease::NotAsked => {
            acquire(
                &backends.index,
                object_key,
                holder.as_deref(),
                policy.lease_ms,
            )
            .await
        }
    };
    match &permit {
        Permit::Read(reader) => {
            let wait = Wait {
                wait_ms: policy.lease_wait_ms,
                poll_ms: policy.poll_ms,
                expected_length: owned.stored_length(),
            };
            // Bytes older than the TTL are not the holder's: keep waiting for fresh ones.
            let is_current =
                |object: &StoredObject<Body<P>>| fresh(object, backends.clock.now_ms(), policy);
            if let Some(bytes) = reader
                .wait(&backends.store, &backends.clock, wait, is_current)
                .await
            {
                let now = backends.clock.now_ms();
                return Ok(Rc::new(FetchedOutcome(Fetched {
                    checksum: content_checksum(&bytes),
                    bytes: Rc::new(bytes),
                    source: CacheSource::Hit,
                    origin_ms: now.saturating_sub(start),
                    write_back: None,
                    absent: false,
                    read_at_ms: now,
                })));
            }
        }
        Permit::Write(writer) => {
            let request = ChunkRequest {
                dataset: &owned.dataset,
                key: &owned.key,
                url: &owned.url,
                hosts: &owned.hosts,
                range: owned.range,
                holder: writer.holder(),
                auth: owned.auth.as_ref(),
                rules: owned.rules,
                version: None,
                checks: None,
                decode: owned.decode.as_ref(),
            };
            // A lease taken with the lookup that found no entry: whoever stored the bytes
            // meanwhile indexed them before releasing theirs, so there is nothing to look for.
            let stored = if owned.storage_down || matches!(owned.leased, LookupLease::Held(_)) {
                None
            } else {
                stored_meanwhile(&request, object_key, policy, &backends).await
            };
            if let Some(stored) = stored {
                return stored;
            }
        }
        Permit::Unlocked => {}
    }
    let what = format!("{}/{}", owned.dataset, owned.key);
    let fetched = source_bytes(&owned, target, &what, policy, &backends).await;
    let answer = match decoded(fetched, owned.decode.as_deref(), &what) {
        Ok(answer) => answer,
        Err(error) => {
            if let Permit::Write(writer) = permit {
                writer.release(&backends.index).await;
            }
            return Err(error);
        }
    };
    let now = backends.clock.now_ms();
    Ok(missed(
        owned,
        permit,
        answer,
        (now, now.saturating_sub(start)),
        policy,
    ))
}

/// The bytes a miss reads: a decoded chunk's from storage when its encoded chunk is stored,
/// else the origin's.
async fn source_bytes<P: Platform>(
    owned: &Owned,
    target: Url,
    what: &str,
    policy: CachePolicy,
    backends: &CacheBackends<P>,
) -> Result<OriginAnswer, Error> {
    if let Some(answer) = encoded_in_storage(owned, policy, backends).await {
        return Ok(answer);
    }
    let auth = owned
        .auth
        .as_ref()
        .map(|auth| (auth, backends.clock.now_ms()));
    origin_bytes(
        &backends.origin,
        &owned.hosts,
        what,
        (target, owned.range),
        auth,
        owned.rules,
    )
    .await
}

/// A decoded chunk's source bytes from storage, when the encoded chunk of the same range is
/// stored (read through the encoded view): fresh by the TTL, the checksum it carries matching
/// its bytes, and of the file version the index recorded. Decode once, without the origin.
async fn encoded_in_storage<P: Platform>(
    owned: &Owned,
    policy: CachePolicy,
    backends: &CacheBackends<P>,
) -> Option<OriginAnswer> {
    if owned.decode.is_none() || owned.auth.is_some() || owned.storage_down {
        return None;
    }
    let object = backends
        .store
        .get(&backends.keys.object(&owned.url, owned.range))
        .await
        .ok()??;
    let validator = object.meta.validator.clone();
    let current = fresh(&object, backends.clock.now_ms(), policy)
        && owned.range.is_none_or(|r| r.length == object.size)
        && (owned.file_validator.is_none() || owned.file_validator == validator);
    let checksum = object.meta.checksum.clone();
    if !current || checksum.is_none() {
        return None;
    }
    let bytes = backends.store.read_body(object.body).await.ok()?;
    (checksum.as_deref() == Some(content_checksum(&bytes).as_str())).then_some(OriginAnswer {
        bytes,
        validator,
        absent: false,
    })
}

/// The decoded view stores and answers the decoded bytes; bytes that do not decode are
/// neither answered nor stored.
fn decoded(
    fetched: Result<OriginAnswer, Error>,
    plan: Option<&DecodePlan>,
    what: &str,
) -> Result<OriginAnswer, Error> {
    match (fetched, plan) {
        (Ok(mut answer), Some(plan)) if !answer.absent => {
            answer.bytes = plan
                .decode(&answer.bytes)
                .map_err(|error| Error::from_codec(what, error))?;
            Ok(answer)
        }
        (fetched, _) => fetched,
    }
}

/// A checked origin answer.
struct OriginAnswer {
    /// The body (wrapped with its content type when the rules say so); empty when absent.
    bytes: Vec<u8>,
    /// The origin's validator (`ETag`, else `Last-Modified`).
    validator: Option<String>,
    /// The origin answered 404 and the rules make that an absent key.
    absent: bool,
}

/// The outcome of a fetch from the origin: the bytes, and the write-back the permit allows
/// (store and index them, or, while another instance holds the lease, only count the miss). An
/// absent key is remembered (an entry without bytes) for the rules' absent TTL.
fn missed(
    owned: Owned,
    permit: Permit,
    answer: OriginAnswer,
    (now, fetch_ms): (u64, u64),
    policy: CachePolicy,
) -> Rc<FetchedOutcome> {
    let OriginAnswer {
        bytes,
        validator,
        absent,
    } = answer;
    let bytes = Rc::new(bytes);
    let checksum = if absent {
        ABSENT_CHECKSUM.to_owned()
    } else {
        content_checksum(&bytes)
    };
    let ttl_ms = match owned.rules.absent_ttl_ms {
        Some(absent_ttl) if absent => absent_ttl,
        _ => policy.ttl_ms,
    };
    let write_back = match permit {
        // Another instance is storing these bytes: only count the miss.
        Permit::Read(_) => WriteBack::RecordMiss {
            dataset: owned.dataset,
            key: owned.key,
            origin_bytes: bytes.len() as u64,
            lease: None,
        },
        Permit::Write(_) | Permit::Unlocked => WriteBack::Store {
            // The file's validator changed (or was never recorded): record it with the entry.
            file: validator
                .clone()
                .filter(|v| owned.track_file && owned.file_validator.as_ref() != Some(v))
                .map(|v| (owned.url.clone(), v)),
            entry: IndexEntry {
                object_key: owned.object_key,
                size: bytes.len() as u64,
                checksum: checksum.clone(),
                created_ms: now,
                last_access_ms: now,
                hits: 0,
                fetch_ms,
                origin_validator: validator,
            },
            bytes: Rc::clone(&bytes),
            ttl_ms,
            // The write-back releases the lease once the bytes are stored.
            lease: match permit {
                Permit::Write(writer) => Some(writer.into_holder()),
                _ => None,
            },
            limits: policy.limits,
            dataset: owned.dataset,
            key: owned.key,
        },
    };
    Rc::new(FetchedOutcome(Fetched {
        checksum,
        bytes,
        source: CacheSource::Miss,
        origin_ms: fetch_ms,
        write_back: Some(write_back),
        absent,
        read_at_ms: now,
    }))
}

/// The checked bytes of `range` at `target` (redirects followed only to `hosts`) and the
/// origin's validator (`ETag`, else `Last-Modified`).
async fn origin_bytes(
    origin: &impl Origin,
    hosts: &HostPolicy,
    what: &str,
    (target, range): (Url, Option<ByteRange>),
    auth: Option<(&OriginAuth, u64)>,
    rules: FetchRules,
) -> Result<OriginAnswer, Error> {
    let (answered_by, response) =
        fetch_following_redirects(origin, hosts, what, target, range, auth).await?;
    if response.status == 404 && rules.absent_ttl_ms.is_some() {
        return Ok(OriginAnswer {
            bytes: Vec::new(),
            validator: None,
            absent: true,
        });
    }
    // A passed-through route's client error (bad parameters) goes back as it is, uncached; a
    // refusal of this deployment's credentials (below) never does.
    if rules.keep_content_type
        && (400..500).contains(&response.status)
        && !matches!(response.status, 401 | 403)
    {
        return Err(Error::OriginRefused(Rc::new(PassedAnswer {
            status: response.status,
            content_type: response.content_type,
            body: response.body,
        })));
    }
    // A private origin that refuses this deployment (no or wrong credentials): the client may
    // not have it, and the message names the dataset and key, never a secret.
    if matches!(response.status, 401 | 403) {
        return Err(Error::Forbidden(format!(
            "{what}: the origin refused access (HTTP {}){}",
            response.status,
            if auth.is_some() {
                ": check the dataset's s3_credentials"
            } else {
                ": a private origin needs the dataset's s3_credentials"
            }
        )));
    }
    let validator = response
        .etag
        .clone()
        .or_else(|| response.last_modified.clone());
    let shown = format!("{what}: {}", redact(answered_by.as_str()));
    let content_type = response.content_type.clone();
    let body = checked_body(&shown, range, response)?;
    check_expected(&shown, rules.expect, content_type.as_deref(), &body)?;
    let bytes = if rules.keep_content_type {
        envelope::wrap(content_type.as_deref(), &body)
    } else {
        body
    };
    Ok(OriginAnswer {
        bytes,
        validator,
        absent: false,
    })
}

/// Refuses a body that is not what the key holds: an HTML page for Zarr bytes, anything but a
/// JSON object for Zarr metadata. Nothing refused here is served or stored.
fn check_expected(
    shown: &str,
    expect: Expect,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), Error> {
    let is_html = content_type.is_some_and(|t| {
        let t = t.trim_start().to_ascii_lowercase();
        t.starts_with("text/html") || t.starts_with("application/xhtml")
    });
    match expect {
        Expect::NotHtml if is_html => Err(Error::Upstream(format!(
            "{shown} answered an HTML page ({}), not Zarr bytes",
            content_type.unwrap_or_default()
        ))),
        Expect::Bytes | Expect::NotHtml => Ok(()),
        Expect::JsonObject => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(Error::Upstream(format!(
                "{shown} answered JSON that is not an object, not Zarr metadata"
            ))),
            Err(e) => Err(Error::Upstream(format!(
                "{shown} answered malformed Zarr metadata (not JSON: {e})"
            ))),
        },
    }
}

/// Whether stored bytes are younger than the dataset's TTL (by their upload time): the one
/// freshness rule for bytes taken from storage without an entry vouching for them.
fn fresh<B>(object: &StoredObject<B>, now_ms: u64, policy: CachePolicy) -> bool {
    now_ms.saturating_sub(object.uploaded_ms) < policy.ttl_ms
}

/// Whether stored bytes with no entry vouching for them may be served: younger than the TTL,
/// and not of another version of their file than the index last said.
fn adoptable<B>(
    request: &ChunkRequest<'_>,
    object: &StoredObject<B>,
    now_ms: u64,
    policy: CachePolicy,
) -> bool {
    fresh(object, now_ms, policy)
        && !request.checks.is_some_and(|checks| {
            checks.may_be_stale(request.url, object.meta.validator.as_deref())
        })
}

/// The answer of an adoption: with the lookup's timing and datasets' version; nothing to index
/// without the index; the lease the lookup took released.
fn adopted<B>(
    (mut chunk, mut write_backs): (Chunk<B>, Vec<WriteBack>),
    (timing, datasets_version): (Timing, Option<u64>),
    index_down: bool,
    lease: Option<(String, String)>,
) -> Attempt<B> {
    chunk.datasets_version = datasets_version;
    chunk.timing = timing;
    if index_down {
        write_backs.clear();
    }
    if let Some((object, holder)) = lease {
        write_backs.push(WriteBack::ReleaseLease { object, holder });
    }
    Attempt::Done(chunk, write_backs)
}

/// Serves bytes stored under `object_key` for a key with no entry (written for another dataset
/// or key with the same source range) as a hit, with an instruction to index them. Streamed
/// when the object carries its checksum, unless `in_memory` (a fetch outcome shared by the
/// isolate's readers); an object without one (written before objects carried it) is read whole
/// to compute it. `None` when it cannot be read whole.
async fn adopt<P: Platform>(
    request: &ChunkRequest<'_>,
    object_key: &str,
    object: StoredObject<Body<P>>,
    (policy, in_memory): (CachePolicy, bool),
    backends: &CacheBackends<P>,
) -> Option<(Chunk<Body<P>>, Vec<WriteBack>)> {
    if request.stored_length().is_some_and(|n| n != object.size) {
        return None;
    }
    let (size, uploaded_ms) = (object.size, object.uploaded_ms);
    let validator = object.meta.validator.clone();
    let streamed = object.meta.checksum.filter(|_| !in_memory);
    let (checksum, body) = if let Some(checksum) = streamed {
        let body = ChunkBody::Stored {
            body: object.body,
            object_key: object_key.to_owned(),
        };
        (checksum, body)
    } else {
        let bytes = backends.store.read_body(object.body).await.ok()?;
        if bytes.len() as u64 != size {
            return None;
        }
        (content_checksum(&bytes), ChunkBody::Bytes(Rc::new(bytes)))
    };
    let now = backends.clock.now_ms();
    let write_back = WriteBack::Adopt {
        dataset: request.dataset.to_owned(),
        key: request.key.to_owned(),
        entry: adopted_entry(object_key, (size, uploaded_ms), &checksum, validator, now),
        ttl_ms: remaining_ttl_ms(policy, uploaded_ms, now),
        limits: policy.limits,
    };
    Some((
        stored_hit(body, (size, uploaded_ms), checksum),
        vec![write_back],
    ))
}

/// The entry stored bytes stand for when no entry vouched for them: created at their upload,
/// read once now.
fn adopted_entry(
    object_key: &str,
    (size, uploaded_ms): (u64, u64),
    checksum: &str,
    validator: Option<String>,
    now_ms: u64,
) -> IndexEntry {
    IndexEntry {
        object_key: object_key.to_owned(),
        size,
        checksum: checksum.to_owned(),
        created_ms: uploaded_ms,
        last_access_ms: now_ms,
        hits: 1,
        fetch_ms: 0,
        origin_validator: validator,
    }
}

/// What is left of the TTL of bytes uploaded at `uploaded_ms`.
fn remaining_ttl_ms(policy: CachePolicy, uploaded_ms: u64, now_ms: u64) -> u64 {
    policy
        .ttl_ms
        .saturating_sub(now_ms.saturating_sub(uploaded_ms))
}

/// A hit answered by stored bytes of `size` uploaded at `uploaded_ms`, with no entry's word.
fn stored_hit<B>(
    body: ChunkBody<B>,
    (size, uploaded_ms): (u64, u64),
    checksum: String,
) -> Chunk<B> {
    Chunk {
        body,
        size,
        checksum,
        source: CacheSource::Hit,
        timing: Timing::default(),
        datasets_version: None,
        absent: false,
        generation: None,
        fetched_ms: uploaded_ms,
    }
}

/// After winning the write permit: another instance may have stored the bytes and released its
/// lease between our lookup and our lease. If so, serve them from storage (and release our
/// lease) instead of fetching the origin again.
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
    let (chunk, write_backs) = adopt(request, object_key, object, (policy, true), backends).await?;
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
        absent: false,
        read_at_ms: chunk.fetched_ms,
    }))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::maintenance::EvictionScope;
    use crate::cache::run_write_back;
    use crate::fakes::{
        yield_once, FakeIndex, FakeOrigin, Fakes, InMemoryStore, ManualClock, StoreFault,
    };
    use crate::index::IndexError;
    use crate::keys::CacheKeys;
    use crate::policy::capacity::CapacityLimits;
    use futures::executor::{block_on, LocalPool};
    use futures::task::LocalSpawnExt;
    use std::cell::RefCell;

    const URL: &str = "http://origin.test/f.bin";
    thread_local! {
        static HOSTS: &'static HostPolicy =
            Box::leak(Box::new(HostPolicy::new(&["origin.test".to_owned()], true).unwrap()));
    }
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
        file_check_ms: 60_000,
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
            late: crate::cache::settle::LateLookups::default(),
        })
    }

    fn request(range: Option<ByteRange>) -> ChunkRequest<'static> {
        ChunkRequest {
            dataset: "ds",
            key: "v/0",
            url: URL,
            hosts: HOSTS.with(|h| *h),
            range,
            holder: "me",
            auth: None,
            rules: FetchRules::default(),
            version: None,
            checks: None,
            decode: None,
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
            block_on(run_write_back(
                wb, &b.index, &b.store, &b.origin, &b.clock, &SCOPE,
            ))
            .unwrap();
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
        assert!(matches!(wbs.as_slice(), [WriteBack::Settle(_)]));
        write_back_all(&b, wbs);
        assert_eq!(body(hit), b"234");
        assert_eq!(b.origin.requests.borrow().len(), 1);
        assert_eq!(b.index.stats_of("ds").hits, 1);
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
            late: crate::cache::settle::LateLookups::default(),
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
        block_on(b.store.put(
            &object,
            b"234".to_vec(),
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap();
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
        block_on(b.store.put(
            &object,
            b"old".to_vec(),
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap();
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
        block_on(b.store.put(
            &object,
            b"234".to_vec(),
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap();
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
            .map(|wb| {
                block_on(run_write_back(
                    wb, &b.index, &b.store, &b.origin, &b.clock, &SCOPE,
                ))
            })
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
        block_on(b.store.put(
            &b.keys.object(URL, RANGE),
            b"234".to_vec(),
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        // The lookup found no entry and took the lease: released, the bytes being here.
        assert!(matches!(
            wbs.as_slice(),
            [
                WriteBack::Adopt { ttl_ms: 10_000, .. },
                WriteBack::ReleaseLease { .. }
            ]
        ));
        write_back_all(&b, wbs);
        assert!(b.index.leases.borrow().is_empty(), "lease released");
        assert_eq!(body(chunk), b"234");
        assert!(b.origin.requests.borrow().is_empty());
        let (again, _) = read(&b, &Flights::default()).unwrap();
        assert!(
            matches!(again.body, ChunkBody::Stored { .. }),
            "now a plain hit"
        );
        assert_eq!(b.index.stats_of("ds").hits, 2);
    }

    /// A storage error on a read does not make the entry forgotten, and storage is asked once:
    /// the leader does not wait out a failing store again before fetching.
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
        assert_eq!(b.store.calls().1, 1, "one storage read");
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

    /// A miss that wins the lease with `try_lease` (its lookup found an entry, so took none)
    /// after another instance stored the bytes serves them from storage instead of fetching
    /// the origin again.
    #[test]
    fn lease_winner_rechecks_storage() {
        let b = backends();
        let object = b.keys.object(URL, RANGE);
        let (_, wbs) = read(&b, &Flights::default()).unwrap();
        write_back_all(&b, wbs);
        // The entry's object is not there for the read, nor for its second look (written again
        // meanwhile).
        b.store.fail_next_gets.set(2);
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        assert_eq!(b.origin.requests.borrow().len(), 1, "only the first miss");
        assert!(matches!(wbs.as_slice(), [WriteBack::Forget { .. }, ..]));
        assert!(
            !b.index.leases.borrow().contains_key(&object),
            "lease released"
        );
    }

    /// A cold miss waits on one index round trip before its answer (the lookup takes the
    /// lease) and does not ask storage twice.
    #[test]
    fn cold_miss_waits_on_one_round_trip() {
        let b = backends();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Miss);
        assert_eq!(b.index.round_trips.get(), 1, "the lookup only");
        assert_eq!(b.store.calls().1, 1, "one storage open");
        let object = b.keys.object(URL, RANGE);
        assert_eq!(
            b.index.leases.borrow().get(&object).map(String::as_str),
            Some("isolate")
        );
        assert!(matches!(
            wbs.as_slice(),
            [WriteBack::Store { lease: Some(holder), .. }] if holder == "isolate"
        ));
        write_back_all(&b, wbs);
        assert!(b.index.leases.borrow().is_empty(), "released after storing");
    }

    /// A reader of the isolate that misses while the leader's write-back is still storing (its
    /// lease held) waits for the bytes in storage, never fetching the origin again; one whose
    /// storage read came just before the bytes landed, and whose lookup then found their entry,
    /// reads storage again instead of forgetting the entry.
    #[test]
    fn readers_during_a_write_back_fetch_nothing() {
        let b = backends();
        let flights = Flights::default();
        let (first, wbs) = read(&b, &flights).unwrap();
        assert_eq!(first.source, CacheSource::Miss);
        // The write-back has not run: the lease is held, nothing is stored.
        let waiting = ChunkRequest {
            holder: "other-request",
            ..request(RANGE)
        };
        let stored = {
            let (b2, wbs) = (Rc::clone(&b), wbs.clone());
            async move {
                b2.clock.sleep(100).await;
                for wb in wbs {
                    run_write_back(wb, &b2.index, &b2.store, &b2.origin, &b2.clock, &SCOPE)
                        .await
                        .unwrap();
                }
            }
        };
        let ((chunk, _), ()) = block_on(join(
            async { read_chunk(waiting, POLICY, &b, &flights).await.unwrap() },
            stored,
        ));
        assert_eq!(chunk.source, CacheSource::Hit, "served by the stored bytes");
        assert_eq!(b.origin.requests.borrow().len(), 1);
        // The entry is there now; a storage read that misses it once reads again.
        b.store.fail_next_gets.set(1);
        let (again, wbs) = read(&b, &flights).unwrap();
        assert_eq!(again.source, CacheSource::Hit);
        assert!(
            !wbs.iter().any(|w| matches!(w, WriteBack::Forget { .. })),
            "{wbs:?}"
        );
        assert_eq!(b.origin.requests.borrow().len(), 1);
    }

    /// A lease already the isolate's (another of its readers took it) is the leader's when
    /// no write-back of the isolate is storing the object, else its bytes are waited for.
    #[test]
    fn a_lease_held_here_is_the_leaders_unless_a_write_back_stores() {
        let b = backends();
        let flights = Flights::default();
        let object = b.keys.object(URL, RANGE);
        b.index
            .leases
            .borrow_mut()
            .insert(object.clone(), flights.holder().to_owned());
        let (chunk, wbs) = read(&b, &flights).unwrap();
        assert_eq!(
            chunk.source,
            CacheSource::Miss,
            "fetched under the isolate's lease"
        );
        assert!(matches!(
            wbs.as_slice(),
            [WriteBack::Store { lease: Some(holder), .. }] if holder == "isolate"
        ));
        assert!(flights.is_storing(&object, b.clock.now_ms(), POLICY.lease_ms));
    }

    /// Backends whose chunk is stored and indexed (a miss written back), with metadata.
    fn warm() -> Backends {
        let b = backends();
        let (_, wbs) = read(&b, &Flights::default()).unwrap();
        write_back_all(&b, wbs);
        b
    }

    /// A fresh stored object answers alone: streamed, its checksum from its metadata, no
    /// index round trip before the answer; the lookup is made in the write-back and counts the
    /// hit there, as a waiting read would have.
    #[test]
    fn storage_answers_before_the_index() {
        let b = warm();
        let before = b.index.round_trips.get();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        assert_eq!(chunk.checksum, content_checksum(b"234"));
        assert_eq!(chunk.timing.index_ms, 0);
        assert!(matches!(wbs.as_slice(), [WriteBack::Settle(_)]));
        assert_eq!(
            b.index.round_trips.get(),
            before,
            "no answer from the index yet"
        );
        assert_eq!(b.index.stats_of("ds").hits, 0);
        write_back_all(&b, wbs);
        assert_eq!(b.index.round_trips.get(), before + 1, "one lookup, after");
        let stats = b.index.stats_of("ds");
        assert_eq!(
            (stats.hits, stats.bytes_from_cache, stats.misses),
            (1, 3, 1)
        );
        let entries = b.index.entries.borrow();
        let entry = &entries[&("ds".to_owned(), "v/0".to_owned())];
        assert_eq!(
            entry.entry.hits, 1,
            "the late lookup counted the hit on the entry"
        );
        assert!(matches!(chunk.body, ChunkBody::Stored { body, .. } if body == b"234"));
        assert_eq!(b.origin.requests.borrow().len(), 1);
    }

    /// A key claimed for eviction between a storage-first answer and its late lookup is not
    /// indexed again: the lookup misses the claimed entry, the adoption is refused while the
    /// object is being deleted, and the read is still counted.
    #[test]
    fn late_lookup_never_recreates_a_claimed_entry() {
        let b = warm();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        let claimed = block_on(b.index.claim(
            "ds",
            &crate::index::entry::ClaimSelector::Key("v/0".into()),
            0,
            "evictor",
            10,
        ))
        .unwrap();
        assert_eq!(claimed.len(), 1);
        write_back_all(&b, wbs);
        let entries = b.index.entries.borrow();
        let entry = &entries[&("ds".to_owned(), "v/0".to_owned())];
        assert_eq!(
            entry.evicting.as_deref(),
            Some("evictor"),
            "still the claimed one"
        );
        assert_eq!(b.index.stats_of("ds").entries, 0, "not accounted again");
        assert_eq!(b.index.stats_of("ds").hits, 1);
    }

    /// Bytes stored for the same source range without an entry for this key answer alone too;
    /// the late lookup finds no entry and adopts the bytes (no lease taken).
    #[test]
    fn late_lookup_adopts_unindexed_bytes() {
        let b = backends();
        let meta = crate::store::ObjectMeta {
            checksum: Some(content_checksum(b"234")),
            validator: None,
        };
        let object = b.keys.object(URL, RANGE);
        block_on(b.store.put(&object, b"234".to_vec(), &meta)).unwrap();
        let (chunk, wbs) = read(&b, &Flights::default()).unwrap();
        assert_eq!(chunk.source, CacheSource::Hit);
        write_back_all(&b, wbs);
        assert!(b.index.leases.borrow().is_empty(), "no lease taken");
        let stats = b.index.stats_of("ds");
        assert_eq!((stats.hits, stats.entries, stats.bytes_stored), (1, 1, 3));
        assert!(b.origin.requests.borrow().is_empty());
    }

    /// What storage alone may answer: fresh, with its checksum, covering its range, not of a
    /// file version the isolate knows is old; never a versioned read.
    #[test]
    fn what_storage_answers_alone() {
        let object = |uploaded_ms, checksum: Option<&str>, validator: Option<&str>| StoredObject {
            size: 3,
            uploaded_ms,
            meta: crate::store::ObjectMeta {
                checksum: checksum.map(str::to_owned),
                validator: validator.map(str::to_owned),
            },
            body: (),
        };
        let sum = content_checksum(b"234");
        let checks = crate::cache::validators::FileChecks::default();
        let checked = ChunkRequest {
            checks: Some(&checks),
            ..request(RANGE)
        };
        let probe = Some(VersionProbe {
            generation: 1,
            stale_after_ms: 1,
        });
        let alone =
            |r: &ChunkRequest<'_>, p, o: &StoredObject<()>| answers_alone(r, p, o, 5_000, POLICY);
        assert!(alone(&request(RANGE), None, &object(0, Some(&sum), None)));
        assert!(
            !alone(&request(RANGE), None, &object(0, None, None)),
            "no checksum"
        );
        assert!(
            !alone(&request(RANGE), probe, &object(0, Some(&sum), None)),
            "versioned"
        );
        let old = object(0, Some(&sum), None);
        assert!(
            !answers_alone(&request(RANGE), None, &old, 10_000, POLICY),
            "TTL over"
        );
        let longer = request(Some(ByteRange {
            offset: 2,
            length: 4,
        }));
        assert!(
            !alone(&longer, None, &object(0, Some(&sum), None)),
            "another length"
        );
        assert!(
            alone(&checked, None, &object(0, Some(&sum), Some("v1"))),
            "no file news"
        );
        checks.learn_validator(URL, "v2");
        assert!(
            !alone(&checked, None, &object(0, Some(&sum), Some("v1"))),
            "older file"
        );
        assert!(
            !alone(&checked, None, &object(0, Some(&sum), None)),
            "file version unknown"
        );
        assert!(alone(&checked, None, &object(0, Some(&sum), Some("v2"))));
    }
}
