//! The storage layer: where chunk bytes live (the R2 binding now, S3-compatible stores next),
//! behind one trait whose errors say what the caller must do.
//!
//! - [`ChunkStore`]: the trait and its contract; absent objects are `Ok(None)`, not errors.
//! - [`s3`]: the S3-compatible store over any HTTP transport (`SigV4`, XML answers).
//! - [`error`]: [`StoreError`] (rate limited on this key, retryable, fatal) and how each
//!   store's failures map onto it.
//! - [`contract`]: the trait's contract as a suite of cases, run against the fake and, inside
//!   the worker, the real store.

pub mod contract;
pub mod error;
pub mod s3;

pub use error::StoreError;

/// An object found in the chunk store: its size and its not yet read body.
#[derive(Debug)]
pub struct StoredObject<B> {
    /// Size in bytes.
    pub size: u64,
    /// When it was written, ms since the epoch.
    pub uploaded_ms: u64,
    /// The body, streamed to the client by the glue or read with
    /// [`ChunkStore::read_body`].
    pub body: B,
}

/// Where chunk bytes live (an R2 binding, or an S3-compatible bucket).
#[allow(async_fn_in_trait)]
pub trait ChunkStore {
    /// An object's unread body (an R2 object, streamed to the client without passing through
    /// wasm; plain bytes in the test fake).
    type Body: 'static;

    /// Stores `bytes` under `key`, replacing any object there.
    ///
    /// Contract: on `Ok` a following `get` of `key` returns these bytes. On `Err` the object may or
    /// may not have landed (a reported failure can still have written): callers must not assume
    /// either, and must never index an object whose `put` failed.
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError>;

    /// Opens the object under `key`; `Ok(None)` when there is none. The body is not read yet.
    async fn get(&self, key: &str) -> Result<Option<StoredObject<Self::Body>>, StoreError>;

    /// Opens `length` bytes of the object under `key` from `offset` (a ranged read: only those
    /// bytes are transferred); `Ok(None)` when there is no object.
    ///
    /// Contract: the returned body holds exactly the requested bytes when the object covers
    /// them; `size` is the whole object's size. A range the object does not cover is never
    /// answered with other bytes (the cache only asks for ranges within `size`).
    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<Self::Body>>, StoreError>;

    /// Reads a body from [`get`](Self::get) into memory.
    async fn read_body(&self, body: Self::Body) -> Result<Vec<u8>, StoreError>;

    /// Deletes the object under `key`. Idempotent: deleting nothing is `Ok`.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes the objects under `keys` (at most [`MAX_DELETE_BATCH`]) in one call. Idempotent.
    ///
    /// Contract: on `Err` any subset may have been deleted.
    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError>;

    /// One page of the objects whose key starts with `prefix`, in key order, after `cursor` (from
    /// the previous page).
    ///
    /// Contract: `next_cursor` is `None` on the last page; a page may be shorter than `limit`.
    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError>;
}

/// The most keys one [`ChunkStore::delete_many`] call takes (R2's limit).
pub const MAX_DELETE_BATCH: usize = 1_000;

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// When it was written, ms since the epoch.
    pub uploaded_ms: u64,
}

/// A page of [`ChunkStore::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectPage {
    /// The objects.
    pub objects: Vec<ListedObject>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}
