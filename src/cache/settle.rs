//! A hit answered from storage alone (a *storage-first* hit): correct bytes come from content
//! addressing and freshness, not from the lookup, so a read whose stored object is fresh by its
//! own metadata is answered at once, and its lookup is made after the response. [`Settle`] is
//! that lookup's write-back: it squares the index with what was served, so that stats, eviction
//! orders and entries are what they would have been had the reader waited.
//!
//! Late lookups are sent together: the first write-back to queue one in the isolate's
//! [`LateLookups`] waits [`LATE_LOOKUP_WINDOW_MS`] for others to join, then sends them all in
//! one pipeline ([`flush`]) and runs every follow-up itself (a write-back never waits on
//! another request's I/O, which the runtime would cancel). Each lookup is the one a waiting
//! read would have made, at the read's time: the index's one round trip and its parsing are
//! shared by every hit of the window.
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
//! Without an answer from the index nothing is recorded, as for any read while the index is
//! down.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::cache::validators::{is_stale, FileChecks};
use crate::cache::WriteBack;
use crate::index::entry::{IndexEntry, Lookup, LookupRead};
use crate::index::Index;
use crate::policy::capacity::CapacityLimits;

/// Where a late lookup leaves the run-time datasets' version it saw (the dataset registry
/// reads it after the response).
pub type VersionSink = Rc<Cell<Option<u64>>>;

/// How long the write-back that sends a batch of late lookups waits for others to join it.
pub const LATE_LOOKUP_WINDOW_MS: u64 = 20;

/// The most lookups sent in one pipeline (about 0.6 KB each).
pub const MAX_LATE_BATCH: usize = 100;

/// The isolate's late lookups waiting to be sent, and whether a write-back is about to send
/// them. A cheap handle: clones share the queue.
#[derive(Clone, Default)]
pub struct LateLookups {
    queue: Rc<RefCell<Vec<Settle>>>,
    due: Rc<Cell<bool>>,
}

impl std::fmt::Debug for LateLookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LateLookups")
            .field("queued", &self.queue.borrow().len())
            .field("due", &self.due.get())
            .finish()
    }
}

impl LateLookups {
    /// Queues `settle`; `true` when the caller is to send the batch ([`flush`]): no write-back
    /// was about to.
    #[must_use]
    pub fn push(&self, settle: Settle) -> bool {
        self.queue.borrow_mut().push(settle);
        !self.due.replace(true)
    }

    /// How many are queued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Whether none is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every queued lookup; the next one queued starts a batch of its own.
    fn take(&self) -> Vec<Settle> {
        self.due.set(false);
        std::mem::take(&mut *self.queue.borrow_mut())
    }
}

/// The write-back of a storage-first hit: its lookup, made later with others (see the module
/// documentation).
#[derive(Clone)]
pub struct Settle {
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
    /// When the read was answered (the access time recorded).
    pub read_ms: u64,
    /// The source file's URL and the isolate's file checks, where files are checked.
    pub file: Option<(String, FileChecks)>,
    /// Where the lookup's run-time datasets' version goes.
    pub versions: Option<VersionSink>,
    /// The isolate's queue of late lookups.
    pub queue: LateLookups,
}

impl std::fmt::Debug for Settle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settle")
            .field("dataset", &self.dataset)
            .field("key", &self.key)
            .field("entry", &self.entry)
            .field("read_ms", &self.read_ms)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Settle {
    fn eq(&self, other: &Self) -> bool {
        (&self.dataset, &self.key, &self.entry, self.read_ms)
            == (&other.dataset, &other.key, &other.entry, other.read_ms)
    }
}

impl Eq for Settle {}

impl Settle {
    /// Leaves the run-time datasets' version the lookup sees in `sink`.
    pub fn report_versions_to(&mut self, sink: VersionSink) {
        self.versions = Some(sink);
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

    /// Passes on what the lookup says beyond the entry: the run-time datasets' version, the
    /// file's validator (learned by the isolate's file checks).
    fn observe(&self, lookup: &Lookup) {
        if let Some(sink) = &self.versions {
            sink.set(Some(lookup.datasets_version));
        }
        if let (Some((url, checks)), Some(validator)) = (&self.file, &lookup.file_validator) {
            checks.learn_validator(url, validator);
        }
    }
}

/// Sends every late lookup queued in `queue` (one pipeline per [`MAX_LATE_BATCH`]) and returns
/// what squares the index with them, in order.
///
/// # Errors
/// An index failure, described: the lookups of that pipeline record nothing more.
pub async fn flush(queue: &LateLookups, index: &impl Index) -> Result<Vec<WriteBack>, String> {
    let settles = queue.take();
    let mut follow_ups = Vec::new();
    for batch in settles.chunks(MAX_LATE_BATCH) {
        let reads: Vec<LookupRead<'_>> = batch
            .iter()
            .map(|s| LookupRead {
                dataset: &s.dataset,
                key: &s.key,
                now_ms: s.read_ms,
                file: s.file.as_ref().map(|(url, _)| url.as_str()),
            })
            .collect();
        let lookups = index.lookup_many(&reads).await.map_err(|e| {
            format!(
                "index: {} lookups after storage-first hits: {e}",
                reads.len()
            )
        })?;
        for (settle, lookup) in batch.iter().zip(&lookups) {
            settle.observe(lookup);
            follow_ups.extend(settle.follow_ups(lookup));
        }
    }
    Ok(follow_ups)
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::fakes::FakeIndex;
    use crate::index::entry::{LeaseAnswer, SourceVersion};

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

    fn settle(key: &str, validator: Option<&str>, queue: &LateLookups) -> Settle {
        Settle {
            dataset: "ds".into(),
            key: key.into(),
            entry: entry("o", validator),
            ttl_ms: 1_000,
            limits: CapacityLimits::default(),
            read_ms: 20,
            file: None,
            versions: None,
            queue: queue.clone(),
        }
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
        let s = settle("k", Some("v1"), &LateLookups::default());
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

    /// The first settle queued sends the batch; those queued before it is sent join it (one
    /// round trip for all); one queued after starts the next batch.
    #[test]
    fn late_lookups_go_in_batches() {
        let (index, queue) = (FakeIndex::healthy(), LateLookups::default());
        assert!(queue.push(settle("a", None, &queue)), "the first sends");
        assert!(
            !queue.push(settle("b", None, &queue)),
            "the second joins it"
        );
        assert!(!queue.push(settle("a", None, &queue)));
        let follow_ups = block_on(flush(&queue, &index)).unwrap();
        assert_eq!(index.round_trips.get(), 1);
        assert_eq!(kinds(&follow_ups), ["adopt", "adopt", "adopt"]);
        assert!(queue.is_empty());
        assert!(queue.push(settle("c", None, &queue)), "a new batch");
    }

    /// More than a pipeline's worth goes in several pipelines, in order; the versions seen are
    /// passed on.
    #[test]
    fn big_batches_are_split_and_versions_passed_on() {
        let (index, queue) = (FakeIndex::healthy(), LateLookups::default());
        let sink = VersionSink::default();
        index.runtime_version.set(7);
        for i in 0..=MAX_LATE_BATCH {
            let mut s = settle(&format!("k{i}"), None, &queue);
            s.report_versions_to(Rc::clone(&sink));
            let _ = queue.push(s);
        }
        let follow_ups = block_on(flush(&queue, &index)).unwrap();
        assert_eq!(follow_ups.len(), MAX_LATE_BATCH + 1);
        assert_eq!(index.round_trips.get(), 2);
        assert_eq!(sink.get(), Some(7));
    }

    /// An index failure is reported and the batch is gone (nothing recorded, as for reads
    /// while the index is down); the queue starts over.
    #[test]
    fn a_failed_batch_is_reported() {
        let index = FakeIndex::failing(crate::index::IndexError::Unavailable("down".into()));
        let queue = LateLookups::default();
        let _ = queue.push(settle("a", None, &queue));
        let error = block_on(flush(&queue, &index)).unwrap_err();
        assert!(error.contains("down"), "{error}");
        assert!(queue.push(settle("b", None, &queue)));
    }
}
