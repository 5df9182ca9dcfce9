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

/// What is kept with an object's bytes and read back with it, so that a reader can answer
/// from storage alone (before, or without, the index): stored as R2 custom metadata or S3
/// user metadata (`x-amz-meta-…`). Read back, it is hostile input: [`ObjectMeta::checked`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The content checksum (`keys::content_checksum`: the `ETag` served for the bytes).
    pub checksum: Option<String>,
    /// The source file's validator (`ETag`, else `Last-Modified`) when the bytes were read.
    pub validator: Option<String>,
}

impl ObjectMeta {
    /// The metadata name of the checksum.
    pub const CHECKSUM: &'static str = "zec-checksum";
    /// The metadata name of the validator.
    pub const VALIDATOR: &'static str = "zec-validator";
    /// The longest validator kept (longer ones are not kept: a reader then waits on the index).
    const MAX_VALIDATOR: usize = 256;

    /// The `(name, value)` pairs to store: only well-formed values (a checksum of 32 lowercase
    /// hex digits, a validator of visible ASCII), so that every value is a valid header value.
    #[must_use]
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let checked = self.clone().checked();
        [
            (Self::CHECKSUM, checked.checksum),
            (Self::VALIDATOR, checked.validator),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| (name, value)))
        .collect()
    }

    /// The metadata read back by `value_of(name)`, checked: a malformed value counts as absent.
    #[must_use]
    pub fn read(value_of: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            checksum: value_of(Self::CHECKSUM),
            validator: value_of(Self::VALIDATOR),
        }
        .checked()
    }

    /// Drops the values that are not well formed (see [`pairs`](Self::pairs)).
    #[must_use]
    pub fn checked(self) -> Self {
        let is_checksum =
            |c: &String| c.len() == 32 && c.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let is_validator = |v: &String| {
            !v.is_empty()
                && v.len() <= Self::MAX_VALIDATOR
                && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        };
        Self {
            checksum: self.checksum.filter(is_checksum),
            validator: self.validator.filter(is_validator),
        }
    }
}

/// An object found in the chunk store: its size, its metadata and its not yet read body.
#[derive(Debug)]
pub struct StoredObject<B> {
    /// Size in bytes.
    pub size: u64,
    /// When it was written, ms since the epoch.
    pub uploaded_ms: u64,
    /// What was stored with it (checked).
    pub meta: ObjectMeta,
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

    /// Stores `bytes` under `key` with `meta`, replacing any object there.
    ///
    /// Contract: on `Ok` a following `get` of `key` returns these bytes and the well-formed
    /// values of `meta` ([`ObjectMeta::pairs`]). On `Err` the object may or
    /// may not have landed (a reported failure can still have written): callers must not assume
    /// either, and must never index an object whose `put` failed.
    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), StoreError>;

    /// Opens the object under `key`; `Ok(None)` when there is none. The body is not read yet.
    async fn get(&self, key: &str) -> Result<Option<StoredObject<Self::Body>>, StoreError>;

    /// Opens `length` bytes of the object under `key` from `offset` (a ranged read: only those
    /// bytes are transferred); `Ok(None)` when there is no object.
    ///
    /// Contract: the returned body holds exactly the requested bytes when the object covers
    /// them; `size` is the whole object's size, `meta` the whole object's metadata. A range the object does not cover is never
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
