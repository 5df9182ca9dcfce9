//! A hit answered from storage before the index did (a *storage-first* hit): correct bytes
//! come from content addressing and freshness, not from the lookup, so a read whose stored
//! object is fresh by its own metadata is answered at once, and its lookup, started with the
//! storage open, finishes after the response. [`Settle`] is that lookup's write-back: it squares
//! the index with what was served, so that stats, eviction orders and entries are what they
//! would have been had the reader waited.
//!
//! What the late lookup found decides ([`Settle::follow_ups`]):
//! - the entry of the object served: the lookup itself counted the hit (entry hits, last
//!   access, orders, dataset counters), nothing is left to do;
//! - no live entry (never written, expired, or claimed for removal): the bytes are adopted as
//!   [`WriteBack::Adopt`] does, which writes no entry while a removal is deleting the object
//!   (so an entry claimed for eviction is never re-created) and counts the hit either way;
//! - an entry of another object (the references moved the key): it is forgotten (its counted
//!   hit undone) and the served object adopted;
//! - the file's recorded validator is not the one the object was read under: the bytes were
//!   of an older version of the file; no entry vouches for them (an entry of them is dropped),
//!   the isolate remembers the file's validator (its next reads of the file wait for the index)
//!   and the read is counted as the hit it answered.
//!
//! A lease the lookup took (there was no live entry) is released once that is done. Without an
//! answer from the index nothing is recorded, as for any read while the index is down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures::future::LocalBoxFuture;

use crate::cache::validators::{is_stale, FileChecks};
use crate::cache::WriteBack;
use crate::index::entry::{IndexEntry, LeaseAnswer, Lookup};
use crate::index::{Index, IndexError};
use crate::policy::capacity::CapacityLimits;

/// A lookup on its way, owning what it needs (it outlives the request's borrows).
pub type PendingLookup = LocalBoxFuture<'static, Result<Lookup, IndexError>>;

/// Where a late lookup leaves the run-time datasets' version it saw (the dataset registry
/// reads it after the response).
pub type VersionSink = Rc<Cell<Option<u64>>>;

/// The write-back of a storage-first hit: finish its lookup, then square the index with it.
/// Clones share the one lookup (the first to run it takes it).
#[derive(Clone)]
pub struct Settle {
    lookup: Rc<RefCell<Option<PendingLookup>>>,
    /// Dataset id.
    pub dataset: String,
    /// Zarr key.
    pub key: String,
    /// The entry the served object stands for (its key, size, checksum, upload time and the
    /// file's validator it was read under), as adoption writes it.
    pub entry: IndexEntry,
    /// The entry's remaining TTL.
    pub ttl_ms: u64,
    /// The capacities an adoption enforces.
    pub limits: CapacityLimits,
    /// Who asked for the object's lease in the lookup.
    pub holder: String,
    /// The source file's URL and the isolate's file checks, where files are checked.
    file: Option<(String, FileChecks)>,
    versions: Option<VersionSink>,
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settle")
            .field("dataset", &self.dataset)
            .field("key", &self.key)
            .field("entry", &self.entry)
            .field("pending", &self.lookup.borrow().is_some())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Settle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.lookup, &other.lookup)
    }
}

impl Eq for Settle {}

/// What a [`Settle`] is made of.
pub struct SettleParts {
    /// The lookup on its way.
    pub lookup: PendingLookup,
    /// Dataset id.
    pub dataset: String,
    /// Zarr key.
    pub key: String,
    /// The entry the served object stands for.
    pub entry: IndexEntry,
    /// Its remaining TTL.
    pub ttl_ms: u64,
    /// The capacities an adoption enforces.
    pub limits: CapacityLimits,
    /// Who asked for the lease.
    pub holder: String,
    /// The source file's URL and the isolate's checks, where files are checked.
    pub file: Option<(String, FileChecks)>,
}

impl Settle {
    /// The write-back of a storage-first hit.
    #[must_use]
    pub fn new(parts: SettleParts) -> Self {
        Self {
            lookup: Rc::new(RefCell::new(Some(parts.lookup))),
            dataset: parts.dataset,
            key: parts.key,
            entry: parts.entry,
            ttl_ms: parts.ttl_ms,
            limits: parts.limits,
            holder: parts.holder,
            file: parts.file,
            versions: None,
        }
    }

    /// Leaves the run-time datasets' version the lookup sees in `sink`.
    pub fn report_versions_to(&mut self, sink: VersionSink) {
        self.versions = Some(sink);
    }

    /// Finishes the lookup and returns what is left to do ([`follow_ups`](Self::follow_ups));
    /// releases a lease the lookup took. Nothing when a clone already ran it.
    ///
    /// # Errors
    /// The lookup's or the release's failure, described.
    pub async fn finish(self, index: &impl Index) -> Result<Vec<WriteBack>, String> {
        let Some(pending) = self.lookup.borrow_mut().take() else {
            return Ok(Vec::new());
        };
        let what = format!(
            "index {}/{} (after a storage-first hit)",
            self.dataset, self.key
        );
        let lookup = pending.await.map_err(|e| format!("{what}: {e}"))?;
        if let Some(sink) = &self.versions {
            sink.set(Some(lookup.datasets_version));
        }
        if let (Some((url, checks)), Some(validator)) = (&self.file, &lookup.file_validator) {
            checks.learn_validator(url, validator);
        }
        let follow_ups = self.follow_ups(&lookup);
        if lookup.lease == LeaseAnswer::Granted {
            index
                .release_lease(&self.entry.object_key, &self.holder)
                .await
                .map_err(|e| format!("{what}: release the lease: {e}"))?;
        }
        Ok(follow_ups)
    }

    /// What squares the index with the hit, given what the late lookup found (see the module
    /// documentation).
    #[must_use]
    pub fn follow_ups(&self, lookup: &Lookup) -> Vec<WriteBack> {
        let served_stale = is_stale(&self.entry, lookup.file_validator.as_deref());
        let count_hit = || WriteBack::CountRead {
            dataset: self.dataset.clone(),
            hit: true,
            bytes: self.entry.size,
        };
        let forget = |entry: &IndexEntry| WriteBack::Forget {
            dataset: self.dataset.clone(),
            key: self.key.clone(),
            entry: entry.clone(),
        };
        let adopt = || WriteBack::Adopt {
            dataset: self.dataset.clone(),
            key: self.key.clone(),
            entry: self.entry.clone(),
            ttl_ms: self.ttl_ms,
            limits: self.limits,
        };
        match &lookup.entry {
            Some(found)
                if found.object_key == self.entry.object_key && found.size == self.entry.size =>
            {
                if served_stale || is_stale(found, lookup.file_validator.as_deref()) {
                    // The lookup counted the hit; forgetting the stale entry undoes it.
                    vec![forget(found), count_hit()]
                } else {
                    Vec::new()
                }
            }
            Some(other) => vec![
                forget(other),
                if served_stale { count_hit() } else { adopt() },
            ],
            None if served_stale => vec![count_hit()],
            None => vec![adopt()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::entry::SourceVersion;

    fn entry(object: &str, validator: Option<&str>) -> IndexEntry {
        IndexEntry {
            object_key: object.to_owned(),
            size: 3,
            checksum: "c".repeat(32),
            created_ms: 10,
            last_access_ms: 10,
            hits: 1,
            fetch_ms: 0,
            origin_validator: validator.map(str::to_owned),
        }
    }

    fn settle(validator: Option<&str>) -> Settle {
        Settle::new(SettleParts {
            lookup: Box::pin(async { Err(IndexError::Unavailable("unused".into())) }),
            dataset: "ds".into(),
            key: "k".into(),
            entry: entry("o", validator),
            ttl_ms: 1_000,
            limits: CapacityLimits::default(),
            holder: "h".into(),
            file: None,
        })
    }

    fn lookup(found: Option<IndexEntry>, file_validator: Option<&str>) -> Lookup {
        Lookup {
            entry: found,
            datasets_version: 0,
            source: SourceVersion::Unprobed,
            file_validator: file_validator.map(str::to_owned),
            lease: LeaseAnswer::NotTaken,
        }
    }

    fn kinds(follow_ups: &[WriteBack]) -> Vec<&'static str> {
        follow_ups
            .iter()
            .map(|w| match w {
                WriteBack::Adopt { .. } => "adopt",
                WriteBack::Forget { .. } => "forget",
                WriteBack::CountRead { hit: true, .. } => "count hit",
                _ => "other",
            })
            .collect()
    }

    /// Each thing a late lookup can find leaves the index as a waiting reader would have: one
    /// hit counted, an entry only for current bytes of this key.
    #[test]
    fn follow_ups_square_the_index_with_the_hit() {
        let s = settle(Some("v1"));
        let cases: [(Option<IndexEntry>, Option<&str>, &[&str]); 7] = [
            (Some(entry("o", Some("v1"))), Some("v1"), &[]),
            (Some(entry("o", Some("v1"))), None, &[]),
            (None, None, &["adopt"]),
            (None, Some("v1"), &["adopt"]),
            (None, Some("v2"), &["count hit"]),
            (Some(entry("other", None)), Some("v1"), &["forget", "adopt"]),
            (
                Some(entry("o", Some("v1"))),
                Some("v2"),
                &["forget", "count hit"],
            ),
        ];
        for (found, file, want) in cases {
            let got = s.follow_ups(&lookup(found.clone(), file));
            assert_eq!(
                kinds(&got),
                want,
                "found {found:?}, file validator {file:?}"
            );
        }
        // An entry of another object, the served bytes stale: the stale bytes are not adopted.
        let got = s.follow_ups(&lookup(Some(entry("other", None)), Some("v2")));
        assert_eq!(kinds(&got), ["forget", "count hit"]);
    }

    /// The lookup runs once however many clones there are; an index failure is reported.
    #[test]
    fn the_lookup_runs_once() {
        let index = crate::fakes::FakeIndex::healthy();
        let s = settle(None);
        let twin = s.clone();
        assert_eq!(s, twin);
        let first = futures::executor::block_on(s.finish(&index));
        assert!(first.unwrap_err().contains("unused"));
        let second = futures::executor::block_on(twin.finish(&index));
        assert_eq!(second, Ok(Vec::new()));
    }
}
