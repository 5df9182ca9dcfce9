//! [`R2Store`]: the chunk store over an R2 bucket binding. Object keys come from `cache_keys`,
//! already prefixed with the deployment's key prefix. Bodies are R2 objects' streams, streamed
//! to the client by `convert` without passing through wasm. Every call is bounded by a timeout.
//! Reads (every hit makes one) go through `host::r2_read`, one crossing into the runtime; the
//! rest through the `worker` crate.

use worker::Bucket;

use super::host;
use super::timeout::within;
use crate::store::{ChunkStore, ListedObject, ObjectMeta, ObjectPage, StoreError, StoredObject};

/// An R2 object's unread body.
pub struct R2Body {
    key: String,
    stream: web_sys::ReadableStream,
}

impl R2Body {
    /// The body's stream.
    pub fn into_stream(self) -> web_sys::ReadableStream {
        self.stream
    }
}

/// Chunk storage in R2.
#[derive(Clone)]
pub struct R2Store {
    bucket: Bucket,
    timeout_ms: u32,
}

impl R2Store {
    /// A store in `bucket` whose calls fail after `timeout_ms`.
    pub fn new(bucket: Bucket, timeout_ms: u32) -> Self {
        Self { bucket, timeout_ms }
    }

    /// Opens the object (`range`: offset and length), within the timeout.
    async fn open(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<StoredObject<R2Body>>, StoreError> {
        let read = host::r2_read(self.bucket.as_ref(), key, range, self.timeout_ms)
            .await
            .map_err(|e| StoreError::from_r2(key, &e))?;
        Ok(read.map(|read| StoredObject {
            size: read.size,
            uploaded_ms: read.uploaded_ms,
            meta: ObjectMeta {
                checksum: read.checksum,
                validator: read.validator,
            }
            .checked(),
            body: R2Body {
                key: key.to_owned(),
                stream: read.body,
            },
        }))
    }

    /// `call` within the timeout; a late call is [`StoreError::Retryable`].
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        within(self.timeout_ms, call).await.unwrap_or_else(|| {
            Err(StoreError::Retryable(format!(
                "R2 {what}: no answer within {} ms",
                self.timeout_ms
            )))
        })
    }
}

fn store_error(key: &str, error: &worker::Error) -> StoreError {
    StoreError::from_r2(key, &error.to_string())
}

impl ChunkStore for R2Store {
    type Body = R2Body;

    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), StoreError> {
        let custom: std::collections::HashMap<String, String> = meta
            .pairs()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        let put = async {
            self.bucket
                .put(key, bytes)
                .custom_metadata(custom)
                .execute()
                .await
                .map(|_| ())
                .map_err(|e| store_error(key, &e))
        };
        self.bounded("put", put).await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<R2Body>>, StoreError> {
        self.open(key, None).await
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<R2Body>>, StoreError> {
        self.open(key, Some((offset, length))).await
    }

    async fn read_body(&self, body: R2Body) -> Result<Vec<u8>, StoreError> {
        host::read_stream(&body.stream, self.timeout_ms)
            .await
            .map_err(|e| StoreError::from_r2(&body.key, &e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let delete = async {
            self.bucket
                .delete(key)
                .await
                .map_err(|e| store_error(key, &e))
        };
        self.bounded("delete", delete).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let delete = async {
            self.bucket
                .delete_multiple(keys.iter().map(String::as_str).collect())
                .await
                .map_err(|e| store_error(&keys[0], &e))
        };
        self.bounded("delete_multiple", delete).await
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        let mut request = self.bucket.list().prefix(prefix).limit(limit);
        if let Some(cursor) = cursor {
            request = request.cursor(cursor);
        }
        let list = async { request.execute().await.map_err(|e| store_error(prefix, &e)) };
        let listing = self.bounded("list", list).await?;
        Ok(ObjectPage {
            objects: listing
                .objects()
                .iter()
                .map(|o| ListedObject {
                    key: o.key(),
                    uploaded_ms: o.uploaded().as_millis(),
                })
                .collect(),
            next_cursor: if listing.truncated() {
                listing.cursor()
            } else {
                None
            },
        })
    }
}
