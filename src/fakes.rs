//! In-memory fakes of the backend traits, for unit tests only (`#[cfg(test)]`).
//!
//! They count calls and inject faults, so tests can assert "written once", "deleted after a
//! failed read" and the like. Integration tests in `tests/` cannot see this module.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::backend::{
    ChunkStore, Clock, Index, IndexError, RawReply, StoreError, TransportError, UpstashTransport,
};
use crate::upstash::HttpCall;

/// A clock stuck at one instant.
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}

/// An index whose `ping` answers a fixed result.
pub struct FakeIndex {
    ping: Result<(), IndexError>,
}

impl FakeIndex {
    pub fn healthy() -> Self {
        Self { ping: Ok(()) }
    }
    pub fn failing(error: IndexError) -> Self {
        Self { ping: Err(error) }
    }
}

impl Index for FakeIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        self.ping.clone()
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

/// A chunk store in a `HashMap`, counting `(puts, gets, deletes)`.
#[derive(Default)]
pub struct InMemoryStore {
    objects: RefCell<HashMap<String, Vec<u8>>>,
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
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.puts.set(self.puts.get() + 1);
        match &self.fault {
            Some(StoreFault::Put(e)) => return Err(e.clone()),
            Some(StoreFault::LoseWrites) => return Ok(()),
            _ => {}
        }
        self.objects.borrow_mut().insert(key.to_owned(), bytes);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.gets.set(self.gets.get() + 1);
        if let Some(StoreFault::Get(e)) = &self.fault {
            return Err(e.clone());
        }
        let found = self.objects.borrow().get(key).cloned();
        if let (Some(StoreFault::CorruptReads), Some(mut bytes)) = (&self.fault, found.clone()) {
            bytes.push(b'!');
            return Ok(Some(bytes));
        }
        Ok(found)
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
