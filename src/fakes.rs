//! In-memory fakes of the backend traits, for unit tests only (`#[cfg(test)]`).
//!
//! They count calls and inject faults, so tests can assert "written once", "deleted after a
//! failed read" and the like. Integration tests in `tests/` cannot see this module.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::backend::{
    ChunkStore, Clock, Index, IndexError, RawReply, StoreError, StoredObject, TransportError,
    UpstashTransport,
};
use crate::cache_entry::{DatasetStats, IndexEntry};
use crate::upstash::HttpCall;

/// A clock stuck at one instant (`sleep` does not move it).
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
    async fn sleep(&self, _ms: u64) {}
}

/// A clock that only moves when slept on or advanced, counting sleeps.
#[derive(Default)]
pub struct ManualClock {
    pub now: Cell<u64>,
    pub sleeps: Cell<usize>,
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.get()
    }
    async fn sleep(&self, ms: u64) {
        self.sleeps.set(self.sleeps.get() + 1);
        self.now.set(self.now.get() + ms);
        // Let other tasks run, as a real timer would.
        yield_once().await;
    }
}

/// An in-memory index with Redis semantics (entries expire at `now + ttl`, leases are
/// `SET NX`), counting round trips. `failing` makes every call fail with one error.
#[derive(Default)]
pub struct FakeIndex {
    failure: Option<IndexError>,
    /// Entries by `(dataset, key)` with their expiry in ms.
    pub entries: RefCell<HashMap<(String, String), (IndexEntry, u64)>>,
    pub stats: RefCell<HashMap<String, DatasetStats>>,
    pub leases: RefCell<HashMap<String, String>>,
    /// The clock the fake uses for expiry (tests move it).
    pub now_ms: Cell<u64>,
    pub round_trips: Cell<usize>,
}

impl FakeIndex {
    pub fn healthy() -> Self {
        Self::default()
    }
    pub fn failing(error: IndexError) -> Self {
        Self {
            failure: Some(error),
            ..Self::default()
        }
    }
    fn trip(&self) -> Result<(), IndexError> {
        self.round_trips.set(self.round_trips.get() + 1);
        self.failure.clone().map_or(Ok(()), Err)
    }
    pub fn stats_of(&self, dataset: &str) -> DatasetStats {
        self.stats
            .borrow()
            .get(dataset)
            .cloned()
            .unwrap_or_default()
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
    ) -> Result<Option<IndexEntry>, IndexError> {
        self.trip()?;
        let id = (dataset.to_owned(), key.to_owned());
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(&id) {
            Some((entry, expires)) if *expires > self.now_ms.get() => {
                let found = entry.clone();
                entry.hits += 1;
                entry.last_access_ms = now_ms;
                let mut stats = self.stats.borrow_mut();
                let stats = stats.entry(dataset.to_owned()).or_default();
                stats.hits += 1;
                stats.bytes_from_cache += found.size;
                Ok(Some(found))
            }
            Some(_) => {
                entries.remove(&id);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn record_miss(
        &self,
        dataset: &str,
        key: &str,
        origin_bytes: u64,
        stored: Option<&IndexEntry>,
        ttl_ms: u64,
    ) -> Result<(), IndexError> {
        self.trip()?;
        let mut stats = self.stats.borrow_mut();
        let stats = stats.entry(dataset.to_owned()).or_default();
        stats.misses += 1;
        stats.bytes_from_origin += origin_bytes;
        if let Some(entry) = stored {
            stats.entries_written += 1;
            stats.bytes_written += entry.size;
            self.entries.borrow_mut().insert(
                (dataset.to_owned(), key.to_owned()),
                (entry.clone(), self.now_ms.get() + ttl_ms),
            );
        }
        Ok(())
    }

    async fn forget(&self, dataset: &str, key: &str, entry: &IndexEntry) -> Result<(), IndexError> {
        self.trip()?;
        let id = (dataset.to_owned(), key.to_owned());
        let mut entries = self.entries.borrow_mut();
        let same = entries.get(&id).is_some_and(|(current, _)| {
            current.object_key == entry.object_key && current.created_ms == entry.created_ms
        });
        if !same {
            return Ok(());
        }
        entries.remove(&id);
        let mut stats = self.stats.borrow_mut();
        let stats = stats.entry(dataset.to_owned()).or_default();
        stats.hits -= 1;
        stats.bytes_from_cache -= entry.size;
        Ok(())
    }

    async fn adopt(
        &self,
        dataset: &str,
        key: &str,
        entry: &IndexEntry,
        ttl_ms: u64,
    ) -> Result<(), IndexError> {
        self.trip()?;
        self.entries.borrow_mut().insert(
            (dataset.to_owned(), key.to_owned()),
            (entry.clone(), self.now_ms.get() + ttl_ms),
        );
        let mut stats = self.stats.borrow_mut();
        let stats = stats.entry(dataset.to_owned()).or_default();
        stats.hits += 1;
        stats.bytes_from_cache += entry.size;
        Ok(())
    }

    async fn try_lease(
        &self,
        object: &str,
        holder: &str,
        _ttl_ms: u64,
    ) -> Result<bool, IndexError> {
        self.trip()?;
        let mut leases = self.leases.borrow_mut();
        if leases.contains_key(object) {
            return Ok(false);
        }
        leases.insert(object.to_owned(), holder.to_owned());
        Ok(true)
    }

    async fn release_lease(&self, object: &str, holder: &str) -> Result<(), IndexError> {
        self.trip()?;
        let mut leases = self.leases.borrow_mut();
        if leases.get(object).is_some_and(|h| h == holder) {
            leases.remove(object);
        }
        Ok(())
    }

    async fn dataset_stats(&self, dataset: &str) -> Result<DatasetStats, IndexError> {
        self.trip()?;
        Ok(self.stats_of(dataset))
    }
}

/// A fault the in-memory store injects.
#[derive(Clone)]
pub enum StoreFault {
    Put(StoreError),
    Get(StoreError),
    Delete(StoreError),
    /// `put` reports success but stores nothing.
    LoseWrites,
    /// `get` returns different bytes from those stored.
    CorruptReads,
}

/// A chunk store in a `HashMap`, counting `(puts, gets, deletes)`. Objects are stamped with
/// `now` (tests move it) when put.
#[derive(Default)]
pub struct InMemoryStore {
    objects: RefCell<HashMap<String, (Vec<u8>, u64)>>,
    pub now: Cell<u64>,
    /// The next this many `get`s find nothing (an object written meanwhile by someone else).
    pub fail_next_gets: Cell<usize>,
    fault: Option<StoreFault>,
    puts: Cell<usize>,
    gets: Cell<usize>,
    deletes: Cell<usize>,
}

impl InMemoryStore {
    pub fn with_fault(fault: StoreFault) -> Self {
        Self {
            fault: Some(fault),
            ..Self::default()
        }
    }
    pub fn len(&self) -> usize {
        self.objects.borrow().len()
    }
    pub fn calls(&self) -> (usize, usize, usize) {
        (self.puts.get(), self.gets.get(), self.deletes.get())
    }
}

impl ChunkStore for InMemoryStore {
    type Body = Vec<u8>;

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.puts.set(self.puts.get() + 1);
        match &self.fault {
            Some(StoreFault::Put(e)) => return Err(e.clone()),
            Some(StoreFault::LoseWrites) => return Ok(()),
            _ => {}
        }
        self.objects
            .borrow_mut()
            .insert(key.to_owned(), (bytes, self.now.get()));
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<Vec<u8>>>, StoreError> {
        self.gets.set(self.gets.get() + 1);
        if let Some(StoreFault::Get(e)) = &self.fault {
            return Err(e.clone());
        }
        if self.fail_next_gets.get() > 0 {
            self.fail_next_gets.set(self.fail_next_gets.get() - 1);
            return Ok(None);
        }
        let mut found = self.objects.borrow().get(key).cloned();
        if let (Some(StoreFault::CorruptReads), Some((bytes, _))) = (&self.fault, found.as_mut()) {
            bytes.push(b'!');
        }
        Ok(found.map(|(body, uploaded_ms)| StoredObject {
            size: body.len() as u64,
            uploaded_ms,
            body,
        }))
    }

    async fn read_body(&self, body: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        Ok(body)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.deletes.set(self.deletes.get() + 1);
        if let Some(StoreFault::Delete(e)) = &self.fault {
            return Err(e.clone());
        }
        self.objects.borrow_mut().remove(key);
        Ok(())
    }
}

/// An Upstash transport that answers every call with one canned reply and records the calls.
pub struct CannedTransport {
    reply: Result<RawReply, TransportError>,
    pub sent: RefCell<Vec<HttpCall>>,
}

impl CannedTransport {
    pub fn answering(status: u16, body: &str) -> Self {
        Self {
            reply: Ok(RawReply {
                status,
                body: body.as_bytes().to_vec(),
            }),
            sent: RefCell::default(),
        }
    }
    pub fn failing(error: TransportError) -> Self {
        Self {
            reply: Err(error),
            sent: RefCell::default(),
        }
    }
}

impl UpstashTransport for CannedTransport {
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
        self.sent.borrow_mut().push(call.clone());
        self.reply.clone()
    }
}

/// An origin serving files from a map, honouring `Range` with 206, counting requests. A gated
/// origin answers only once the gate's sender fires (or is dropped), like a slow network.
#[derive(Default)]
pub struct FakeOrigin {
    files: HashMap<String, Vec<u8>>,
    gate: Option<futures::future::Shared<futures::channel::oneshot::Receiver<()>>>,
    pub requests: RefCell<Vec<(String, Option<crate::backend::ByteRange>)>>,
}

impl FakeOrigin {
    pub fn gated(mut self) -> (Self, futures::channel::oneshot::Sender<()>) {
        use futures::FutureExt as _;
        let (open, gate) = futures::channel::oneshot::channel();
        self.gate = Some(gate.shared());
        (self, open)
    }

    pub fn with_file(mut self, url: &str, bytes: &[u8]) -> Self {
        self.files.insert(url.to_owned(), bytes.to_vec());
        self
    }
}

impl crate::backend::Origin for FakeOrigin {
    async fn get(
        &self,
        url: &str,
        range: Option<crate::backend::ByteRange>,
    ) -> Result<crate::backend::OriginResponse, crate::backend::OriginError> {
        self.requests.borrow_mut().push((url.to_owned(), range));
        if let Some(gate) = &self.gate {
            let _ = gate.clone().await;
        }
        let answer = |status, body: Vec<u8>, content_range| crate::backend::OriginResponse {
            status,
            content_range,
            etag: None,
            last_modified: None,
            body,
        };
        let Some(file) = self.files.get(url) else {
            return Ok(answer(404, b"not found".to_vec(), None));
        };
        let Some(range) = range else {
            return Ok(answer(200, file.clone(), None));
        };
        let start = usize::try_from(range.offset).unwrap();
        let end = (start + usize::try_from(range.length).unwrap()).min(file.len());
        if start >= file.len() {
            return Ok(answer(416, Vec::new(), None));
        }
        Ok(answer(
            206,
            file[start..end].to_vec(),
            Some(format!("bytes {start}-{}/{}", end - 1, file.len())),
        ))
    }
}

/// Reference files from a map keyed by URL (or `r2://key`), with fixed `ETag`s, counting fetches.
#[derive(Default)]
pub struct FakeRefsSource {
    files: RefCell<HashMap<String, (Vec<u8>, String)>>,
    pub fetches: Cell<usize>,
    pub not_modified: Cell<usize>,
}

impl FakeRefsSource {
    pub fn with(self, location: &str, json: &str, etag: &str) -> Self {
        self.replace(location, json, etag);
        self
    }
    pub fn replace(&self, location: &str, json: &str, etag: &str) {
        self.files.borrow_mut().insert(
            location.to_owned(),
            (json.as_bytes().to_vec(), etag.to_owned()),
        );
    }
}

impl crate::backend::ReferenceSource for FakeRefsSource {
    async fn fetch_refs(
        &self,
        location: &crate::datasets::RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<crate::backend::RefsFetch, crate::error::Error> {
        self.fetches.set(self.fetches.get() + 1);
        // Like a real download, let other tasks run meanwhile.
        yield_once().await;
        let name = match location {
            crate::datasets::RefsLocation::Url(url) => url.clone(),
            crate::datasets::RefsLocation::Bucket(key) => format!("r2://{key}"),
        };
        let files = self.files.borrow();
        let Some((bytes, etag)) = files.get(&name) else {
            return Err(crate::error::Error::Upstream(format!("{name}: HTTP 404")));
        };
        if if_none_match == Some(etag.as_str()) {
            self.not_modified.set(self.not_modified.get() + 1);
            return Ok(crate::backend::RefsFetch::NotModified);
        }
        Ok(crate::backend::RefsFetch::Body {
            bytes: bytes.clone(),
            etag: Some(etag.clone()),
        })
    }
}

/// Pending once (and woken at once), so other tasks of a local executor get to run.
pub async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}
