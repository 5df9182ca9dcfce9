//! The in-memory chunk store, with injected faults.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::handle;
use crate::store::{ChunkStore, ListedObject, ObjectMeta, ObjectPage, StoreError, StoredObject};

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

/// An object as the fake keeps it: bytes, upload time, metadata.
type Kept = (Vec<u8>, u64, ObjectMeta);

/// A chunk store in a `HashMap`, counting `(puts, gets, deletes)`. Objects are stamped with
/// `now` (tests move it) when put.
#[derive(Default)]
pub struct InMemoryStoreState {
    objects: RefCell<HashMap<String, Kept>>,
    pub now: Cell<u64>,
    /// The next this many `get`s find nothing (an object written meanwhile by someone else).
    pub fail_next_gets: Cell<usize>,
    /// The next this many `put`s fail as retryable (a transient storage error).
    pub fail_next_puts: Cell<usize>,
    fault: Option<StoreFault>,
    puts: Cell<usize>,
    gets: Cell<usize>,
    deletes: Cell<usize>,
    /// Ranged reads (`get_range`); each also counts as a `get`.
    pub ranged_gets: Cell<usize>,
}

handle!(
    /// A handle to an [`InMemoryStoreState`].
    InMemoryStore => InMemoryStoreState
);

impl InMemoryStore {
    pub fn with_fault(fault: StoreFault) -> Self {
        InMemoryStoreState {
            fault: Some(fault),
            ..InMemoryStoreState::default()
        }
        .into()
    }
    pub fn len(&self) -> usize {
        self.objects.borrow().len()
    }
    pub fn contains(&self, key: &str) -> bool {
        self.objects.borrow().contains_key(key)
    }
    pub fn calls(&self) -> (usize, usize, usize) {
        (self.puts.get(), self.gets.get(), self.deletes.get())
    }
}

impl ChunkStore for InMemoryStore {
    type Body = Vec<u8>;

    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), StoreError> {
        self.puts.set(self.puts.get() + 1);
        if self.fail_next_puts.get() > 0 {
            self.fail_next_puts.set(self.fail_next_puts.get() - 1);
            return Err(StoreError::Retryable("transient".into()));
        }
        match &self.fault {
            Some(StoreFault::Put(e)) => return Err(e.clone()),
            Some(StoreFault::LoseWrites) => return Ok(()),
            _ => {}
        }
        self.objects.borrow_mut().insert(
            key.to_owned(),
            (bytes, self.now.get(), meta.clone().checked()),
        );
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
        if let (Some(StoreFault::CorruptReads), Some((bytes, ..))) = (&self.fault, found.as_mut()) {
            bytes.push(b'!');
        }
        Ok(found.map(|(body, uploaded_ms, meta)| StoredObject {
            size: body.len() as u64,
            uploaded_ms,
            meta,
            body,
        }))
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<Vec<u8>>>, StoreError> {
        self.ranged_gets.set(self.ranged_gets.get() + 1);
        let Some(object) = self.get(key).await? else {
            return Ok(None);
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(object.body.len());
        let end = usize::try_from(offset.saturating_add(length))
            .unwrap_or(usize::MAX)
            .min(object.body.len());
        Ok(Some(StoredObject {
            body: object.body[start..end].to_vec(),
            ..object
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

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        let objects = self.objects.borrow();
        let mut keys: Vec<(&String, u64)> = objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && cursor.is_none_or(|c| k.as_str() > c))
            .map(|(k, (_, uploaded_ms, _))| (k, *uploaded_ms))
            .collect();
        keys.sort();
        let limit = limit as usize;
        let more = keys.len() > limit;
        let page: Vec<ListedObject> = keys
            .into_iter()
            .take(limit)
            .map(|(key, uploaded_ms)| ListedObject {
                key: key.clone(),
                uploaded_ms,
            })
            .collect();
        Ok(ObjectPage {
            next_cursor: if more {
                page.last().map(|o| o.key.clone())
            } else {
                None
            },
            objects: page,
        })
    }
}
