//! The cache layer: the read-through path for one key and what keeps it correct and small.
//!
//! The path reads as *look up, else lock, fetch, answer, write back*:
//! - [`read`]: the path for one key (lookup and storage open together, adoption of bytes
//!   stored for another key, the leader's fetch);
//! - [`lock`]: the cache lock, one origin fetch per object in an isolate and across
//!   instances (write and read permits);
//! - [`write_back`]: what runs after the response (store, index, release, evict);
//! - [`settle`]: a hit answered from storage before the index, whose lookup finishes after
//!   the response;
//! - [`single_flight`]: the in-isolate primitive the lock is built on;
//! - [`blocks`]: block mode, a byte range of a file assembled from cached aligned blocks
//!   (merged origin fetches, a window at a time);
//! - [`envelope`]: origin answers kept with their content type (cached routes);
//! - [`validators`]: entries of a source file that changed are not served;
//! - [`maintenance`]: removing keys (claim, delete unheld objects, drop entries): eviction to
//!   capacity, purges, the scheduled sweep.
//!
//! Generic over the [`Platform`] and free of worker types.

pub mod blocks;
pub mod envelope;
pub mod lock;
pub mod maintenance;
pub mod read;
pub mod settle;
pub mod single_flight;
pub mod validators;
pub mod write_back;

use std::rc::Rc;

use url::Url;

use crate::codec::DecodePlan;
use crate::error::Error;
use crate::keys::CacheKeys;
use crate::origin::auth::OriginAuth;
use crate::origin::url_policy::HostPolicy;
use crate::origin::ByteRange;
use crate::platform::Platform;
use crate::policy::capacity::CapacityLimits;

pub use read::{read_chunk, record_document, FetchedOutcome, Flights};
pub use write_back::{run_write_back, WriteBack};

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
    /// The origin has no such key (a 404, perhaps remembered): answer 404; the body is empty.
    pub absent: bool,
    /// The source generation the chunk was read in (versioned datasets only).
    pub generation: Option<u64>,
    /// When the bytes were read from the origin, as far as known (ms since the epoch).
    pub fetched_ms: u64,
}

/// How an origin answer is checked and kept, beyond status and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FetchRules {
    /// A 404 is an absent key, remembered this long; `None`: a 404 is an origin error (the
    /// references say the bytes exist).
    pub absent_ttl_ms: Option<u64>,
    /// What the body must be.
    pub expect: Expect,
    /// Keep the origin's `Content-Type` with the bytes ([`envelope`]).
    pub keep_content_type: bool,
}

/// What an origin answer's body must be before it is served or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Any bytes (a referenced range).
    #[default]
    Bytes,
    /// Zarr chunk bytes from a store over HTTP: never an HTML page (a misconfigured server or a
    /// login page answering 200).
    NotHtml,
    /// A JSON object (Zarr metadata: `zarr.json`, `.zarray`, `.zmetadata`).
    JsonObject,
}

/// A read of a dataset whose source has generations (a Zarr store over HTTP): objects are
/// keyed by the generation, and the generation by the digest of the version document.
#[derive(Debug, Clone, Copy)]
pub struct Versioned<'a> {
    /// The generation the reader believes current (0: none known yet).
    pub generation: u64,
    /// How long a check of the version document stays valid (the metadata TTL).
    pub stale_after_ms: u64,
    /// The version document's key (`zarr.json` or `.zmetadata`).
    pub document_key: &'a str,
    /// Its URL.
    pub document_url: &'a str,
}

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
    /// How often a source file served from the cache is checked for a new validator (0: never).
    pub file_check_ms: u64,
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
    /// This isolate's late lookups of storage-first hits, sent in batches ([`settle`]).
    pub late: settle::LateLookups,
}

impl<P: Platform> CacheBackends<P> {
    /// Runs `write_back` on these backends ([`run_write_back`]).
    ///
    /// # Errors
    /// The first index or storage failure, described.
    pub async fn write_back(
        &self,
        write_back: WriteBack,
        scope: &maintenance::EvictionScope<'_>,
    ) -> Result<(), String> {
        let (index, store, origin, clock) = (&self.index, &self.store, &self.origin, &self.clock);
        run_write_back(write_back, index, store, origin, clock, scope).await
    }
}

/// One key at a URL to read through the cache.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRequest<'a> {
    /// Dataset id.
    pub dataset: &'a str,
    /// Zarr key.
    pub key: &'a str,
    /// The resolved URL (storage is addressed by it and the range).
    pub url: &'a str,
    /// The hosts the dataset may fetch from: the URL, and any redirect, is checked against them
    /// before anything is read.
    pub hosts: &'a HostPolicy,
    /// The byte range, or `None` for the whole object.
    pub range: Option<ByteRange>,
    /// Identifies this request as a lease holder.
    pub holder: &'a str,
    /// The dataset's signing identity for a private origin, if it has one.
    pub auth: Option<&'a OriginAuth>,
    /// How the origin's answer is checked and kept.
    pub rules: FetchRules,
    /// The source version, for datasets that have one.
    pub version: Option<Versioned<'a>>,
    /// The isolate's file checks: a hit whose file is due is checked after the response.
    pub checks: Option<&'a validators::FileChecks>,
    /// The decoded view: the origin's bytes are decoded by this plan before they are answered
    /// and stored, and stored apart from the encoded bytes of the same range.
    pub decode: Option<&'a Rc<DecodePlan>>,
}

impl ChunkRequest<'_> {
    /// The size of the object this request's bytes are stored as, when known before reading
    /// it: the decoded size, else the range's length.
    #[must_use]
    pub fn stored_length(&self) -> Option<u64> {
        match self.decode {
            Some(plan) => Some(plan.decoded_len() as u64),
            None => self.range.map(|r| r.length),
        }
    }

    /// The URL to fetch, when the dataset allows its host.
    fn checked_url(&self) -> Result<Url, Error> {
        self.hosts.check_chunk_url(self.url).map_err(|refusal| {
            Error::Forbidden(format!("{}/{}: {refusal}", self.dataset, self.key))
        })
    }
}
