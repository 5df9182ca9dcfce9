//! Block mode's read path: a byte range of a file, assembled from the aligned blocks it spans
//! (`source::files`), each block a cache entry like a chunk (index accounting, TTL, eviction,
//! admission, lease and single flight).
//!
//! One *window* of blocks is read at a time ([`read_window`]), so memory stays bounded whatever
//! the range:
//! 1. every block's index lookup and storage read start together; a block is a hit when its
//!    entry vouches for the stored object and was read from the file's current version (its
//!    [`FileMeta`]; a lookup that reports another version sends the reader back for it);
//! 2. the missing blocks that no request of the isolate is fetching are fetched in runs of
//!    adjacent blocks, one origin request per run (leases taken per block: a block another
//!    instance is fetching is waited for in storage), and the blocks others are fetching are
//!    followed;
//! 3. the window's parts (stored bodies and fetched bytes) and the write-backs (store and index
//!    each fetched block, after the response) go back to the caller.
//!
//! Objects are keyed by the file's URL, the block's range and the file's version, so bytes of
//! one version are never taken for another's.

use std::rc::Rc;

use futures::future::{join_all, FutureExt, LocalBoxFuture, Shared};
use futures::join;

use crate::cache::lock::{acquire, Permit, Wait, WritePermit};
use crate::cache::read::FetchedOutcome;
use crate::cache::validators::{FileCheck, FileChecks};
use crate::cache::{CacheBackends, CachePolicy, CacheSource, Flights, Timing, WriteBack};
use crate::clock::Clock;
use crate::error::Error;
use crate::index::entry::{IndexEntry, Lookup};
use crate::index::{Index, IndexError};
use crate::keys::{content_checksum, CacheKeys};
use crate::origin::auth::OriginAuth;
use crate::origin::check::{checked_body, fetch_following_redirects};
use crate::origin::url_policy::{redact, HostPolicy};
use crate::origin::{ByteRange, OriginResponse};
use crate::platform::{Body, Platform};
use crate::source::files::{file_id, FileMeta, FilesOrigin, MAX_MERGED_BYTES};
use crate::store::{ChunkStore, StoreError, StoredObject};

/// A file of a block-mode dataset: where it is and who reads it.
#[derive(Debug, Clone, Copy)]
pub struct FileAt<'a> {
    /// Dataset id.
    pub dataset: &'a str,
    /// The file's path in the dataset.
    pub path: &'a str,
    /// Its URL.
    pub url: &'a str,
    /// The hosts the dataset may fetch from.
    pub hosts: &'a HostPolicy,
    /// The dataset's signing identity for a private origin, if it has one.
    pub auth: Option<&'a OriginAuth>,
}

/// One file of a block-mode dataset, as the reader knows it.
#[derive(Debug, Clone, Copy)]
pub struct FileRead<'a> {
    /// The file.
    pub file: FileAt<'a>,
    /// Whether a block lookup that reports another recorded version of the file ends the read
    /// ([`WindowError::Changed`]); `false` once the origin confirmed `meta` (a record can be
    /// older than it).
    pub trust_record: bool,
    /// Identifies this request as a lease holder.
    pub holder: &'a str,
    /// The dataset's prefix and block size.
    pub files: &'a FilesOrigin,
    /// The file's size and validators, as the reader knows them.
    pub meta: &'a FileMeta,
    /// The isolate's file checks and metas.
    pub checks: &'a FileChecks,
}

/// A piece of an answer: bytes of one block.
pub enum Part<B> {
    /// A stored block's wanted bytes, unread (a ranged storage read).
    Stored(B),
    /// Bytes in memory: `bytes[start..end]`.
    Bytes {
        /// The whole block.
        bytes: Rc<Vec<u8>>,
        /// First byte wanted.
        start: usize,
        /// One past the last byte wanted.
        end: usize,
    },
}

/// One window of an answer.
pub struct Window<B> {
    /// Its parts, in order.
    pub parts: Vec<Part<B>>,
    /// What to run after the response.
    pub write_backs: Vec<WriteBack>,
    /// [`CacheSource::Hit`] when every block came from the cache.
    pub source: CacheSource,
    /// What it cost (the slowest block of each kind).
    pub timing: Timing,
}

/// Why a window was not read.
#[derive(Debug)]
pub enum WindowError {
    /// The file is not the version the reader knows: read again with this meta.
    Changed(FileMeta),
    /// The read failed.
    Failed(Error),
}

/// One block of the window.
#[derive(Debug, Clone)]
struct Block {
    key: String,
    object_key: String,
    range: ByteRange,
    /// The wanted bytes within the block: offset and length.
    want: (u64, u64),
}

impl Block {
    /// The index entry for this block's bytes (`checksum`), created and last read at the given
    /// times, fetched in `fetch_ms`, read from the file version `validator`.
    fn entry(
        &self,
        checksum: &str,
        (created_ms, last_access_ms): (u64, u64),
        fetch_ms: u64,
        validator: String,
    ) -> IndexEntry {
        IndexEntry {
            object_key: self.object_key.clone(),
            size: self.range.length,
            checksum: checksum.to_owned(),
            created_ms,
            last_access_ms,
            hits: 0,
            fetch_ms,
            origin_validator: Some(validator),
        }
    }
}

/// The storage key of one block of one version of a file, as its reader's identity reads it
/// ([`file_id`]).
fn object_key_of(keys: &CacheKeys, id: &str, version: &str, range: ByteRange) -> String {
    keys.object(&format!("{id}\n{version}"), Some(range))
}

/// The blocks that the bytes `start..=end` of the file span, keyed by the file's `id` and the
/// version `validator`.
fn blocks_of(
    read: &FileRead<'_>,
    keys: &CacheKeys,
    (id, validator): (&str, &str),
    (start, end): (u64, u64),
) -> Vec<Block> {
    let version = content_checksum(validator.as_bytes());
    let (first, last) = read.files.blocks_of(start, end);
    (first..=last)
        .filter_map(|n| {
            let range = read.files.block_range(n, read.meta.size)?;
            let from = start.max(range.offset) - range.offset;
            let to = end.min(range.offset + range.length - 1) - range.offset;
            Some(Block {
                key: FilesOrigin::block_key(read.file.path, n),
                object_key: object_key_of(keys, id, &version, range),
                range,
                want: (from, to - from + 1),
            })
        })
        .collect()
}

/// What one block's lookup and storage read found.
type Looked<B> = (
    Result<Lookup, IndexError>,
    Result<Option<StoredObject<B>>, StoreError>,
    u64,
    u64,
);

/// Reads the bytes `start..=end` (within one window: at most
/// [`FilesOrigin::window_blocks`] blocks) of `read`'s file through the cache.
///
/// # Errors
/// [`WindowError::Changed`] when the index or the origin knows another version of the file
/// than `read.meta` (nothing is answered from either version; the isolate now knows the new
/// one); [`WindowError::Failed`] when the origin fails or refuses.
pub async fn read_window<P: Platform>(
    read: &FileRead<'_>,
    (start, end): (u64, u64),
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<Window<Body<P>>, WindowError> {
    let record = file_id(read.file.url, read.file.auth);
    let validator = read.meta.validator();
    let blocks = blocks_of(read, &backends.keys, (&record, &validator), (start, end));
    let began = backends.clock.now_ms();
    let looked = join_all(
        blocks
            .iter()
            .map(|block| look_up(backends, read, block, &record, began)),
    )
    .await;
    let now = backends.clock.now_ms();
    let mut timing = Timing::default();
    let mut parts: Vec<Option<Part<Body<P>>>> = Vec::with_capacity(blocks.len());
    let mut misses = Vec::new();
    let mut deferred = Vec::new();
    let mut index_down = false;
    for (i, (lookup, object, index_at, storage_at)) in looked.into_iter().enumerate() {
        timing.index_ms = timing.index_ms.max(index_at.saturating_sub(began));
        timing.storage_ms = timing.storage_ms.max(storage_at.saturating_sub(began));
        let block = &blocks[i];
        let entry = match lookup {
            Ok(lookup) => {
                let other = lookup
                    .file_validator
                    .filter(|v| read.trust_record && *v != validator);
                if let Some(meta) = other.as_deref().and_then(FileMeta::from_validator) {
                    return Err(WindowError::Changed(meta));
                }
                lookup.entry
            }
            Err(error) => {
                index_down |= matches!(error, IndexError::Unavailable(_));
                None
            }
        };
        match (entry, object) {
            (Some(entry), Ok(Some(object)))
                if entry.object_key == block.object_key
                    && entry.size == block.range.length
                    && object.size == entry.size
                    && entry.origin_validator.as_deref() == Some(validator.as_str())
                    && now.saturating_sub(entry.created_ms) < policy.ttl_ms =>
            {
                deferred.extend(due_check(
                    read.file,
                    (&record, &validator),
                    read.checks,
                    (entry.created_ms, now),
                    policy.file_check_ms,
                ));
                parts.push(Some(Part::Stored(object.body)));
            }
            // The entry vouches for bytes that are gone, differ, or belong to another version:
            // forget it (the fetch below writes the current one).
            (Some(entry), Ok(_)) => {
                deferred.push(WriteBack::Forget {
                    dataset: read.file.dataset.to_owned(),
                    key: block.key.clone(),
                    entry,
                });
                parts.push(None);
                misses.push(i);
            }
            _ => {
                parts.push(None);
                misses.push(i);
            }
        }
    }
    let source = if misses.is_empty() {
        CacheSource::Hit
    } else {
        let fetched = fetch_misses(
            read, &blocks, &misses, index_down, policy, backends, flights,
        )
        .await
        .map_err(|error| match read.checks.meta(&record, now, u64::MAX) {
            // The fetch saw another version (and taught the isolate).
            Some(meta) if meta != *read.meta => WindowError::Changed(meta),
            _ => WindowError::Failed(error),
        })?;
        let filled = Filled {
            parts: &mut parts,
            write_backs: &mut deferred,
            timing: &mut timing,
        };
        filled.fill(read, &blocks, &misses, fetched)?
    };
    Ok(Window {
        parts: parts.into_iter().flatten().collect(),
        write_backs: deferred,
        source,
        timing,
    })
}

/// Where the fetched blocks of a window go.
struct Filled<'w, B> {
    parts: &'w mut Vec<Option<Part<B>>>,
    write_backs: &'w mut Vec<WriteBack>,
    timing: &'w mut Timing,
}

impl<B> Filled<'_, B> {
    /// Puts each fetched block in its place with its write-back (the leader's, else a count of
    /// the shared read); the window's source is a miss when any came from the origin.
    fn fill(
        self,
        read: &FileRead<'_>,
        blocks: &[Block],
        misses: &[usize],
        fetched: Vec<(Rc<FetchedOutcome>, bool)>,
    ) -> Result<CacheSource, WindowError> {
        let mut source = CacheSource::Hit;
        for (i, (outcome, leader)) in misses.iter().zip(fetched) {
            if outcome.source() == CacheSource::Miss {
                source = CacheSource::Miss;
            }
            self.timing.origin_ms = self.timing.origin_ms.max(outcome.origin_ms());
            let block = &blocks[*i];
            match (outcome.write_back(), leader) {
                (Some(write_back), true) => self.write_backs.push(write_back.clone()),
                _ => self.write_backs.push(WriteBack::CountRead {
                    dataset: read.file.dataset.to_owned(),
                    hit: outcome.source() == CacheSource::Hit,
                    bytes: block.want.1,
                }),
            }
            let start = usize::try_from(block.want.0).unwrap_or(usize::MAX);
            let end = usize::try_from(block.want.0 + block.want.1).unwrap_or(usize::MAX);
            if outcome.bytes().len() < end {
                return Err(WindowError::Failed(Error::Internal(format!(
                    "{}/{}: a fetched block is shorter than its range",
                    read.file.dataset, block.key
                ))));
            }
            self.parts[*i] = Some(Part::Bytes {
                bytes: Rc::clone(outcome.bytes()),
                start,
                end,
            });
        }
        Ok(source)
    }
}

/// One block's index lookup and storage read, started together (the storage read asks for the
/// wanted bytes only), with when each ended.
async fn look_up<P: Platform>(
    backends: &CacheBackends<P>,
    read: &FileRead<'_>,
    block: &Block,
    record: &str,
    now_ms: u64,
) -> Looked<Body<P>> {
    let index_read = async {
        let lookup = backends
            .index
            .lookup(
                read.file.dataset,
                &block.key,
                now_ms,
                None,
                Some(record),
                None,
            )
            .await;
        (lookup, backends.clock.now_ms())
    };
    let storage_read = async {
        let object = if block.want == (0, block.range.length) {
            backends.store.get(&block.object_key).await
        } else {
            let (offset, length) = block.want;
            backends
                .store
                .get_range(&block.object_key, offset, length)
                .await
        };
        (object, backends.clock.now_ms())
    };
    let ((lookup, index_at), (object, storage_at)) = join!(index_read, storage_read);
    (lookup, object, index_at, storage_at)
}

/// The conditional check of `file` (read as `id`, of the version `validator`), when this
/// isolate's checks say one is due: its version was known current at `known_at_ms` (see
/// [`crate::cache::validators`]).
#[must_use]
pub fn due_check(
    file: FileAt<'_>,
    (id, validator): (&str, &str),
    checks: &FileChecks,
    (known_at_ms, now_ms): (u64, u64),
    every_ms: u64,
) -> Option<WriteBack> {
    checks.due(id, known_at_ms, now_ms, every_ms).then(|| {
        WriteBack::CheckFile(FileCheck {
            url: file.url.to_owned(),
            validator: validator.to_owned(),
            hosts: file.hosts.clone(),
            auth: file.auth.cloned(),
            sized: true,
        })
    })
}

/// What a run of blocks fetched together yields: one outcome per block, in order.
type RunOutput = Result<Rc<Vec<Rc<FetchedOutcome>>>, Error>;
type SharedRun = Shared<LocalBoxFuture<'static, RunOutput>>;

/// A run of adjacent blocks to fetch together, owned (it may outlive the request that started
/// it, and other requests of the isolate follow its blocks).
struct Run {
    dataset: String,
    path: String,
    url: String,
    hosts: HostPolicy,
    auth: Option<OriginAuth>,
    /// The file's identity for this reader ([`file_id`]).
    id: String,
    /// `None` when the index is down: no leases (waiting on a failing index twice).
    holder: Option<String>,
    meta: FileMeta,
    checks: FileChecks,
    blocks: Vec<Block>,
    policy: CachePolicy,
}

impl Run {
    fn of(read: &FileRead<'_>, blocks: Vec<Block>, index_down: bool, policy: CachePolicy) -> Self {
        Self {
            dataset: read.file.dataset.to_owned(),
            path: read.file.path.to_owned(),
            url: read.file.url.to_owned(),
            hosts: read.file.hosts.clone(),
            auth: read.file.auth.cloned(),
            id: file_id(read.file.url, read.file.auth),
            holder: (!index_down).then(|| read.holder.to_owned()),
            meta: read.meta.clone(),
            checks: read.checks.clone(),
            blocks,
            policy,
        }
    }
}

/// The missing blocks `misses` (indices into `blocks`, ascending): led in runs when no request
/// of the isolate fetches them, else followed. One outcome per miss, and whether this request
/// led it.
async fn fetch_misses<P: Platform>(
    read: &FileRead<'_>,
    blocks: &[Block],
    misses: &[usize],
    index_down: bool,
    policy: CachePolicy,
    backends: &Rc<CacheBackends<P>>,
    flights: &Flights,
) -> Result<Vec<(Rc<FetchedOutcome>, bool)>, Error> {
    // Runs of adjacent blocks nobody fetches yet; the check and the registrations below run
    // without a pause in between, so no other request of the isolate can slip in.
    let mut runs: Vec<Vec<usize>> = Vec::new();
    for &i in misses {
        if flights.is_running(&blocks[i].object_key) {
            continue;
        }
        match runs.last_mut() {
            Some(run)
                if run.last().is_some_and(|&j| j + 1 == i)
                    && run_bytes(blocks, run) + blocks[i].range.length <= MAX_MERGED_BYTES =>
            {
                run.push(i);
            }
            _ => runs.push(vec![i]),
        }
    }
    let shared: Vec<(Vec<usize>, SharedRun)> = runs
        .into_iter()
        .map(|run| {
            let owned = Run::of(
                read,
                run.iter().map(|&i| blocks[i].clone()).collect(),
                index_down,
                policy,
            );
            (
                run,
                fetch_run(owned, Rc::clone(backends)).boxed_local().shared(),
            )
        })
        .collect();
    // A run's leader may take a lease round, a storage read, a lease wait and an origin request
    // (a late one after the wait): past that its request was cancelled and a follower leads.
    let leader_ms = policy.lease_wait_ms + 2 * policy.origin_timeout_ms;
    let flights_of = misses.iter().map(|&i| {
        let led = shared.iter().find_map(|(run, future)| {
            run.iter()
                .position(|&j| j == i)
                .map(|at| (future.clone(), at))
        });
        let single = Run::of(read, vec![blocks[i].clone()], index_down, policy);
        let (owned, object_key) = (Rc::clone(backends), &blocks[i].object_key);
        let work = move || -> LocalBoxFuture<'static, Result<Rc<FetchedOutcome>, Error>> {
            match led {
                Some((future, at)) => future.map(move |run| pick(run, at)).boxed_local(),
                // A block another request fetches (this one takes over if it fails to).
                None => fetch_run(single, owned)
                    .map(|run| pick(run, 0))
                    .boxed_local(),
            }
        };
        flights.lead_or_follow(object_key, work, &backends.clock, leader_ms)
    });
    let outcomes = join_all(flights_of).await;
    outcomes
        .into_iter()
        .map(|(outcome, leader)| outcome.map(|o| (o, leader)))
        .collect()
}

/// Block `at` of a run's outcome.
fn pick(run: RunOutput, at: usize) -> Result<Rc<FetchedOutcome>, Error> {
    run.and_then(|outcomes| {
        outcomes
            .get(at)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("a run has no block {at}")))
    })
}

/// The bytes of the blocks `run` (indices into `blocks`).
fn run_bytes(blocks: &[Block], run: &[usize]) -> u64 {
    run.iter().map(|&i| blocks[i].range.length).sum()
}

/// The leader's fetch of a run: a lease per block; the blocks this request may write are
/// fetched in merged ranges and written back, those another instance holds are waited for in
/// storage (and fetched without writing back when the wait ends without them).
async fn fetch_run<P: Platform>(run: Run, backends: Rc<CacheBackends<P>>) -> RunOutput {
    let policy = run.policy;
    let permits = join_all(run.blocks.iter().map(|block| {
        acquire(
            &backends.index,
            &block.object_key,
            run.holder.as_deref(),
            policy.lease_ms,
        )
    }))
    .await;
    let mut writable = Vec::new();
    let mut waiting = Vec::new();
    for (i, permit) in permits.into_iter().enumerate() {
        match permit {
            Permit::Write(writer) => writable.push((i, Some(writer))),
            Permit::Unlocked => writable.push((i, None)),
            Permit::Read(reader) => waiting.push((i, reader)),
        }
    }
    let mut outcomes: Vec<Option<Rc<FetchedOutcome>>> = vec![None; run.blocks.len()];
    let fetch_now = take_stored(&run, writable, &mut outcomes, &backends).await;
    let waits = join_all(waiting.iter().map(|(i, reader)| {
        let block = &run.blocks[*i];
        let wait = Wait {
            wait_ms: policy.lease_wait_ms,
            poll_ms: policy.poll_ms,
            expected_length: Some(block.range.length),
        };
        let start = backends.clock.now_ms();
        let backends = &backends;
        async move {
            let is_current = |object: &StoredObject<Body<P>>| {
                backends.clock.now_ms().saturating_sub(object.uploaded_ms) < policy.ttl_ms
            };
            let bytes = reader
                .wait(&backends.store, &backends.clock, wait, is_current)
                .await;
            (*i, bytes, backends.clock.now_ms().saturating_sub(start))
        }
    }));
    let merged = join_all(
        adjacent(fetch_now)
            .into_iter()
            .map(|group| fetch_merged(&run, group, true, &backends)),
    );
    let (waited, fetched) = join!(waits, merged);
    let mut failed = None;
    for group in fetched {
        match group {
            Ok(group) => {
                for (i, outcome) in group {
                    outcomes[i] = Some(outcome);
                }
            }
            Err(error) => failed = failed.or(Some(error)),
        }
    }
    if let Some(error) = failed {
        // The run fails as a whole; the leases of the blocks it did fetch are released now
        // (their write-backs will not run), so other instances need not wait them out.
        release_leases(&outcomes, &backends.index).await;
        return Err(error);
    }
    let late = take_waited(waited, &mut outcomes, &backends.clock);
    for group in adjacent(late) {
        match fetch_merged(&run, group, false, &backends).await {
            Ok(group) => {
                for (i, outcome) in group {
                    outcomes[i] = Some(outcome);
                }
            }
            Err(error) => {
                release_leases(&outcomes, &backends.index).await;
                return Err(error);
            }
        }
    }
    let outcomes: Option<Vec<_>> = outcomes.into_iter().collect();
    outcomes.map(Rc::new).ok_or_else(|| {
        Error::Internal(format!(
            "{}/{}: a block of a run was not read",
            run.dataset, run.path
        ))
    })
}

/// The blocks another instance's lease made this run wait for: those whose bytes appeared are
/// outcomes (hits), the others are returned, to fetch without writing back.
fn take_waited(
    waited: Vec<(usize, Option<Vec<u8>>, u64)>,
    outcomes: &mut [Option<Rc<FetchedOutcome>>],
    clock: &impl Clock,
) -> Vec<(usize, Option<WritePermit>)> {
    let mut late = Vec::new();
    for (i, bytes, waited_ms) in waited {
        match bytes {
            Some(bytes) => {
                let checksum = content_checksum(&bytes);
                let outcome = FetchedOutcome::new(
                    Rc::new(bytes),
                    checksum,
                    true,
                    waited_ms,
                    None,
                    clock.now_ms(),
                );
                outcomes[i] = Some(Rc::new(outcome));
            }
            None => late.push((i, None)),
        }
    }
    late
}

/// Releases the leases the write-backs of `outcomes` would have released.
async fn release_leases(outcomes: &[Option<Rc<FetchedOutcome>>], index: &impl Index) {
    for outcome in outcomes.iter().flatten() {
        if let Some(WriteBack::Store {
            entry,
            lease: Some(holder),
            ..
        }) = outcome.write_back()
        {
            let _ = index.release_lease(&entry.object_key, holder).await;
        }
    }
}

/// The writable blocks whose bytes another instance stored between this request's lookup and
/// its lease (its write-back released the lease): taken from storage (their leases released),
/// not fetched again. Returns the others.
async fn take_stored<P: Platform>(
    run: &Run,
    writable: Vec<(usize, Option<WritePermit>)>,
    outcomes: &mut [Option<Rc<FetchedOutcome>>],
    backends: &CacheBackends<P>,
) -> Vec<(usize, Option<WritePermit>)> {
    let stored = join_all(writable.iter().map(|(i, permit)| async move {
        match permit {
            Some(_) => stored_meanwhile(run, &run.blocks[*i], backends).await,
            None => None,
        }
    }))
    .await;
    let mut fetch_now = Vec::new();
    for ((i, permit), found) in writable.into_iter().zip(stored) {
        match found {
            Some(outcome) => {
                if let Some(writer) = permit {
                    writer.release(&backends.index).await;
                }
                outcomes[i] = Some(outcome);
            }
            None => fetch_now.push((i, permit)),
        }
    }
    fetch_now
}

/// The block's bytes if they were stored (fresh, whole) since the lookup, with the write-back
/// that indexes them for this key (asked only with the block's lease in hand).
async fn stored_meanwhile<P: Platform>(
    run: &Run,
    block: &Block,
    backends: &CacheBackends<P>,
) -> Option<Rc<FetchedOutcome>> {
    let object = backends.store.get(&block.object_key).await.ok()??;
    let now = backends.clock.now_ms();
    let age = now.saturating_sub(object.uploaded_ms);
    if object.size != block.range.length || age >= run.policy.ttl_ms {
        return None;
    }
    let uploaded_ms = object.uploaded_ms;
    let bytes = backends.store.read_body(object.body).await.ok()?;
    if bytes.len() as u64 != block.range.length {
        return None;
    }
    let checksum = content_checksum(&bytes);
    let adopt = WriteBack::Adopt {
        dataset: run.dataset.clone(),
        key: block.key.clone(),
        entry: block.entry(&checksum, (uploaded_ms, now), 0, run.meta.validator()),
        ttl_ms: run.policy.ttl_ms - age,
        limits: run.policy.limits,
    };
    let outcome = FetchedOutcome::new(Rc::new(bytes), checksum, true, 0, Some(adopt), now);
    Some(Rc::new(outcome))
}

/// Groups of adjacent block indices (ascending input), each with its permit.
fn adjacent(blocks: Vec<(usize, Option<WritePermit>)>) -> Vec<Vec<(usize, Option<WritePermit>)>> {
    let mut groups: Vec<Vec<(usize, Option<WritePermit>)>> = Vec::new();
    for (i, permit) in blocks {
        match groups.last_mut() {
            Some(group) if group.last().is_some_and(|(j, _)| j + 1 == i) => {
                group.push((i, permit));
            }
            _ => groups.push(vec![(i, permit)]),
        }
    }
    groups
}

/// One origin request for the adjacent blocks `group` of `run`, split into blocks: with
/// `write`, each with the write-back that stores and indexes it (releasing its lease), else
/// only counting the miss. Leases are released at once on a failure.
async fn fetch_merged<P: Platform>(
    run: &Run,
    group: Vec<(usize, Option<WritePermit>)>,
    write: bool,
    backends: &CacheBackends<P>,
) -> Result<Vec<(usize, Rc<FetchedOutcome>)>, Error> {
    let (Some((first, _)), Some((last, _))) = (group.first(), group.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (&run.blocks[*first], &run.blocks[*last]);
    let range = ByteRange {
        offset: first.range.offset,
        length: last.range.offset + last.range.length - first.range.offset,
    };
    let start = backends.clock.now_ms();
    let answer = merged_answer(run, range, start, backends).await;
    let body = match answer {
        Ok(body) => body,
        Err(error) => {
            for (_, permit) in group {
                if let Some(writer) = permit {
                    writer.release(&backends.index).await;
                }
            }
            return Err(error);
        }
    };
    let now = backends.clock.now_ms();
    let fetch_ms = now.saturating_sub(start);
    let validator = run.meta.validator();
    let mut outcomes = Vec::with_capacity(group.len());
    for (i, permit) in group {
        let block = &run.blocks[i];
        let from = usize::try_from(block.range.offset - range.offset).unwrap_or(usize::MAX);
        let to = usize::try_from(block.range.length).map_or(usize::MAX, |n| from.saturating_add(n));
        let Some(piece) = body.get(from..to) else {
            return Err(Error::Internal(format!(
                "{}/{}: the merged answer does not cover the block",
                run.dataset, block.key
            )));
        };
        let bytes = Rc::new(piece.to_vec());
        let checksum = content_checksum(&bytes);
        let write_back = if write {
            WriteBack::Store {
                dataset: run.dataset.clone(),
                key: block.key.clone(),
                entry: block.entry(&checksum, (now, now), fetch_ms, validator.clone()),
                bytes: Rc::clone(&bytes),
                ttl_ms: run.policy.ttl_ms,
                lease: permit.map(WritePermit::into_holder),
                limits: run.policy.limits,
                file: None,
            }
        } else {
            WriteBack::RecordMiss {
                dataset: run.dataset.clone(),
                key: block.key.clone(),
                origin_bytes: block.range.length,
                lease: None,
            }
        };
        let outcome = FetchedOutcome::new(bytes, checksum, false, fetch_ms, Some(write_back), now);
        outcomes.push((i, Rc::new(outcome)));
    }
    Ok(outcomes)
}

/// The origin's bytes of `range` of the run's file, checked: the answer must be of the version
/// the run reads (size and validators), else the new version is recorded (index and isolate)
/// and the read fails.
async fn merged_answer<P: Platform>(
    run: &Run,
    range: ByteRange,
    sent_ms: u64,
    backends: &CacheBackends<P>,
) -> Result<Vec<u8>, Error> {
    let what = format!("{}/{}", run.dataset, run.path);
    let target = run
        .hosts
        .check_chunk_url(&run.url)
        .map_err(|refusal| Error::Forbidden(format!("{what}: {refusal}")))?;
    let auth = run
        .auth
        .as_ref()
        .map(|auth| (auth, backends.clock.now_ms()));
    let (answered_by, response) = fetch_following_redirects(
        &backends.origin,
        &run.hosts,
        &what,
        target,
        Some(range),
        auth,
    )
    .await?;
    refuse_status(&what, &response)?;
    let shown = format!("{what}: {}", redact(answered_by.as_str()));
    if !matches!(response.status, 200 | 206) {
        // A failure, not another version: say so (checked_body names the status).
        return Ok(checked_body(&shown, Some(range), response)?);
    }
    let seen = FileMeta::of_answer(&response);
    let same = match &seen {
        Some(seen) => *seen == run.meta,
        // A 206 without Content-Range: the validators alone tell.
        None => response.etag == run.meta.etag && response.last_modified == run.meta.last_modified,
    };
    if !same {
        if let Some(seen) = seen {
            let _ = backends
                .index
                .set_file_validator(&run.id, &seen.validator(), sent_ms)
                .await;
            run.checks
                .remember(&run.id, seen.clone(), backends.clock.now_ms());
            return Err(Error::Upstream(format!(
                "{what}: the file changed during the read (now {} bytes); read it again",
                seen.size
            )));
        }
        return Err(Error::Upstream(format!(
            "{what}: the file changed during the read; read it again"
        )));
    }
    Ok(checked_body(&shown, Some(range), response)?)
}

/// The statuses that say something about the file rather than the answer: gone (404, 410), or
/// refused (401, 403).
///
/// # Errors
/// [`Error::NotFound`] or [`Error::Forbidden`] naming `what`.
pub fn refuse_status(what: &str, response: &OriginResponse) -> Result<(), Error> {
    match response.status {
        404 | 410 => Err(Error::NotFound(format!(
            "{what}: the origin has no such file (HTTP {})",
            response.status
        ))),
        401 | 403 => Err(Error::Forbidden(format!(
            "{what}: the origin refused access (HTTP {})",
            response.status
        ))),
        _ => Ok(()),
    }
}

/// How long a probe of a file's size may lead before another request of the isolate takes over.
const PROBE_LEAD_MS: u64 = 30_000;
/// How often a request waiting on another request's probe looks at it.
const PROBE_POLL_MS: u64 = 10;

/// How a file's meta is looked for.
#[derive(Debug, Clone, Copy)]
pub struct MetaLookup {
    /// How long what the isolate learned is trusted.
    pub max_age_ms: u64,
    /// Ask the origin whatever the isolate and the index know (they disagree with a read).
    pub force: bool,
    /// The dataset's block size: an origin that ignores `Range` may serve files of at most
    /// one block.
    pub block_size: u64,
}

/// The file's size and validators: as this isolate learned them within `max_age_ms`, else as
/// the index records them, else from the origin (a one-byte ranged `GET`, one per file at a
/// time in the isolate, recorded in the index for every instance). `true` with a meta that
/// came from the origin.
///
/// # Errors
/// [`Error::Forbidden`] for a URL the dataset may not fetch, or a refusing origin;
/// [`Error::NotFound`] for a file the origin does not have; [`Error::Upstream`] or
/// [`Error::OriginTimeout`] when the origin fails, does not say the size, or ignores `Range`
/// for a file of more than one block.
pub async fn file_meta<P: Platform>(
    file: FileAt<'_>,
    checks: &FileChecks,
    how: MetaLookup,
    backends: &Rc<CacheBackends<P>>,
) -> Result<(FileMeta, bool), Error> {
    let id = file_id(file.url, file.auth);
    let now = backends.clock.now_ms();
    if !how.force {
        if let Some(meta) = checks.meta(&id, now, how.max_age_ms) {
            return Ok((meta, false));
        }
        if let Ok(Some(validator)) = backends.index.file_validator(&id).await {
            if let Some(meta) = FileMeta::from_validator(&validator) {
                checks.remember(&id, meta.clone(), backends.clock.now_ms());
                return Ok((meta, false));
            }
        }
    }
    let owned = (
        format!("{}/{}", file.dataset, file.path),
        (file.url.to_owned(), id.clone()),
        (file.hosts.clone(), file.auth.cloned()),
        checks.clone(),
        Rc::clone(backends),
    );
    let probe = move || async move {
        let (what, (url, id), (hosts, auth), checks, backends) = owned;
        let file = Probe {
            what: &what,
            url: &url,
            id: &id,
            hosts: &hosts,
            auth: auth.as_ref(),
            block_size: how.block_size,
        };
        probe_file(file, &checks, &backends).await
    };
    let clock = &backends.clock;
    let (meta, _) = checks
        .probes()
        .run(
            &id,
            probe,
            || clock.sleep(PROBE_POLL_MS),
            || clock.now_ms(),
            PROBE_LEAD_MS,
        )
        .await;
    Ok((meta?, true))
}

/// What a probe of one file needs.
struct Probe<'a> {
    what: &'a str,
    url: &'a str,
    id: &'a str,
    hosts: &'a HostPolicy,
    auth: Option<&'a OriginAuth>,
    block_size: u64,
}

/// Asks the origin for the file's first byte and learns its size and validators from the
/// answer; records them (index and isolate).
async fn probe_file<P: Platform>(
    file: Probe<'_>,
    checks: &FileChecks,
    backends: &CacheBackends<P>,
) -> Result<FileMeta, Error> {
    let what = file.what;
    let target = file
        .hosts
        .check_chunk_url(file.url)
        .map_err(|refusal| Error::Forbidden(format!("{what}: {refusal}")))?;
    let sent = backends.clock.now_ms();
    let first_byte = ByteRange {
        offset: 0,
        length: 1,
    };
    let auth = file.auth.map(|auth| (auth, sent));
    let (_, response) = fetch_following_redirects(
        &backends.origin,
        file.hosts,
        what,
        target,
        Some(first_byte),
        auth,
    )
    .await?;
    refuse_status(what, &response)?;
    // An origin that ignores Range would send the whole file for every run of blocks.
    if response.status == 200 && response.body.len() as u64 > file.block_size {
        return Err(Error::Upstream(format!(
            "{what}: the origin ignores Range (it sent all {} bytes for one): block mode needs \
             byte ranges",
            response.body.len()
        )));
    }
    let meta = FileMeta::of_answer(&response).ok_or_else(|| {
        Error::Upstream(format!(
            "{what}: the origin's answer to a ranged GET (HTTP {}) does not say the file's size",
            response.status
        ))
    })?;
    let _ = backends
        .index
        .set_file_validator(file.id, &meta.validator(), sent)
        .await;
    checks.remember(file.id, meta.clone(), backends.clock.now_ms());
    checks.checked(file.id, sent);
    Ok(meta)
}
