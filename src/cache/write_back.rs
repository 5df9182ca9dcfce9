//! What runs after the response (`ctx.wait_until`): store the bytes, then index them (never
//! index what was not stored), release the lease, and evict when a capacity is exceeded.

use std::rc::Rc;

use crate::cache::maintenance::{enforce_limits, EvictionScope};
use crate::cache::settle::{flush, Settle, LATE_LOOKUP_WINDOW_MS};
use crate::cache::validators::{check_file, FileCheck};
use crate::clock::Clock;
use crate::index::entry::IndexEntry;
use crate::index::{Index, IndexError};
use crate::origin::url_policy::redact;
use crate::origin::Origin;
use crate::policy::admission::Admission;
use crate::policy::capacity::CapacityLimits;
use crate::store::{ChunkStore, ObjectMeta, StoreError};

/// Work to do after the response, in `ctx.wait_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    /// Store the bytes, then index them (never index what was not stored), then release the
    /// lease if one was taken. An absent entry (a remembered 404) is only indexed.
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
        /// The source file's URL and validator to record (it changed, or none was recorded).
        file: Option<(String, String)>,
    },
    /// Check whether a source file served from the cache changed (see
    /// [`validators`](crate::cache::validators)).
    CheckFile(FileCheck),
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
    /// Release a lease a lookup took for bytes that turned out to be stored already.
    ReleaseLease {
        /// The object.
        object: String,
        /// Its holder.
        holder: String,
    },
    /// A hit answered from storage alone: make its lookup (with the isolate's others), then
    /// square the index with it (see [`settle`](crate::cache::settle)).
    Settle(Settle),
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

impl WriteBack {
    /// The write-back as the dataset's admission filter allows it: a miss the filter refuses is
    /// only counted, not stored (its lease is still released).
    #[must_use]
    pub fn admitted_by(self, admission: &Admission) -> Self {
        match &self {
            Self::Store { key, entry, .. }
                if !entry.is_absent() && !admission.admits(key, entry.size, entry.fetch_ms) =>
            {
                self.discarded()
            }
            _ => self,
        }
    }

    /// The write-back of a read whose bytes turned out invalid (a record file that does not
    /// decode): nothing is stored or indexed; the read is only counted and its lease released.
    #[must_use]
    pub fn discarded(self) -> Self {
        match self {
            Self::Store {
                dataset,
                key,
                entry,
                lease,
                ..
            } => Self::RecordMiss {
                dataset,
                key,
                origin_bytes: entry.size,
                lease: lease.map(|holder| (entry.object_key, holder)),
            },
            Self::Adopt { dataset, entry, .. } => Self::CountRead {
                dataset,
                hit: true,
                bytes: entry.size,
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

fn stored_any(stored: &Result<Option<crate::index::entry::StoredBytes>, String>) -> bool {
    matches!(stored, Ok(Some(_)))
}

/// After a miss's bytes were stored (or not): release its lease, and record its file's
/// validator when it was indexed (`file` is then given).
async fn release_and_record_file(
    index: &impl Index,
    entry: &IndexEntry,
    lease: Option<String>,
    file: Option<(String, String)>,
) -> Result<(), String> {
    if let Some(holder) = lease {
        let _ = index.release_lease(&entry.object_key, &holder).await;
    }
    if let Some((url, validator)) = file {
        index
            .set_file_validator(
                &url,
                &validator,
                entry.created_ms.saturating_sub(entry.fetch_ms),
            )
            .await
            .map_err(|e| format!("index the validator of {}: {e}", redact(&url)))?;
    }
    Ok(())
}

/// Runs `write_backs` in order ([`run_write_back`]); stops at the first failure.
async fn run_all<I: Index, S: ChunkStore>(
    write_backs: Vec<WriteBack>,
    index: &I,
    store: &S,
    origin: &impl Origin,
    clock: &impl Clock,
    scope: &EvictionScope<'_>,
) -> Result<(), String> {
    for write_back in write_backs {
        Box::pin(run_write_back(
            write_back, index, store, origin, clock, scope,
        ))
        .await?;
    }
    Ok(())
}

/// Stores a miss's bytes (none for a remembered 404), then records the miss and, when they were
/// stored, their entry. Returns the bytes stored afterwards (for the capacity check).
/// Pauses before each retry of a put that failed in a way worth retrying, ms (the first try
/// and then one retry per pause).
pub const PUT_RETRY_PAUSES_MS: [u64; 3] = [20, 80, 320];

async fn store_and_index(
    index: &impl Index,
    store: &impl ChunkStore,
    clock: &impl Clock,
    (dataset, key): (&str, &str),
    entry: &IndexEntry,
    bytes: Rc<Vec<u8>>,
    ttl_ms: u64,
) -> Result<Option<crate::index::entry::StoredBytes>, String> {
    let origin_bytes = bytes.len() as u64;
    // Kept with the bytes: a reader answers from storage alone with them (see `cache::read`).
    let meta = ObjectMeta {
        checksum: Some(entry.checksum.clone()),
        validator: entry.origin_validator.clone(),
    };
    let put = async {
        // A put that failed in a way worth retrying (R2's transient errors; local R2's SQLite
        // busy under concurrent writers) is tried again after a growing pause: a lost put
        // costs another origin fetch, and other instances waiting on this object's lease
        // would fetch it too. The copy kept for that is one object, once the answer went out.
        for ms in PUT_RETRY_PAUSES_MS {
            match store.put(&entry.object_key, bytes.to_vec(), &meta).await {
                Err(StoreError::Retryable(_)) => clock.sleep(ms).await,
                done => return done,
            }
        }
        // The last try takes the bytes without a copy (no reader holds them by now).
        let bytes = Rc::try_unwrap(bytes).unwrap_or_else(|shared| shared.to_vec());
        store.put(&entry.object_key, bytes, &meta).await
    };
    let stored = match if entry.is_absent() { Ok(()) } else { put.await } {
        Ok(()) => Ok(true),
        // Another writer is putting these very bytes (content-addressed key); its put may
        // still fail, so this one indexes nothing. Not an error.
        Err(StoreError::RateLimited(_)) => Ok(false),
        Err(error) => Err(format!("store {}: {error}", entry.object_key)),
    };
    let indexed = index
        .record_miss(
            dataset,
            key,
            origin_bytes,
            matches!(stored, Ok(true)).then_some(entry),
            ttl_ms,
        )
        .await
        .map_err(|e| format!("index {dataset}/{key}: {e}"));
    stored?;
    indexed
}

/// Runs a write-back instruction, then, when it took its dataset (or the deployment) over a
/// capacity, evicts. A put that failed in a way worth retrying is tried again after the pauses
/// of [`PUT_RETRY_PAUSES_MS`] (on `clock`); other failures are returned for logging, not
/// retried (the next miss writes again, the next sweep evicts).
///
/// # Errors
/// The first index or storage failure, described.
pub async fn run_write_back<I: Index, S: ChunkStore>(
    write_back: WriteBack,
    index: &I,
    store: &S,
    origin: &impl Origin,
    clock: &impl Clock,
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
            file,
        } => {
            let stored =
                store_and_index(index, store, clock, (&dataset, &key), &entry, bytes, ttl_ms).await;
            release_and_record_file(index, &entry, lease, file.filter(|_| stored_any(&stored)))
                .await?;
            (dataset, stored?, limits)
        }
        WriteBack::CheckFile(check) => {
            return check_file(origin, index, &check, scope.now_ms).await;
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
        WriteBack::ReleaseLease { object, holder } => {
            return index
                .release_lease(&object, &holder)
                .await
                .map_err(|e| format!("index: release the lease on {object}: {e}"))
        }
        WriteBack::Settle(settle) => {
            let queue = settle.queue.clone();
            // Another write-back is about to send this lookup with its own.
            if !queue.push(settle) {
                return Ok(());
            }
            clock.sleep(LATE_LOOKUP_WINDOW_MS).await;
            let follow_ups = flush(&queue, index).await?;
            return run_all(follow_ups, index, store, origin, clock, scope).await;
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
