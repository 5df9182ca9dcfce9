//! [`R2Store`]: the chunk store over an R2 bucket binding. Object keys come from `cache_keys`,
//! already prefixed with the deployment's key prefix. Bodies are R2 objects, streamed to the
//! client by `convert` without passing through wasm. Every call is bounded by a timeout.

use worker::{Bucket, Object, Range};

use super::timeout::within;
use crate::store::{ChunkStore, ListedObject, ObjectMeta, ObjectPage, StoreError, StoredObject};

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

    /// Opens the object (a range of it when given), within the timeout.
    async fn open(
        &self,
        key: &str,
        range: Option<Range>,
    ) -> Result<Option<StoredObject<Object>>, StoreError> {
        let get = async {
            let mut request = self.bucket.get(key);
            if let Some(range) = range {
                request = request.range(range);
            }
            request.execute().await.map_err(|e| store_error(key, &e))
        };
        let object = self.bounded("get", get).await?;
        Ok(object
            .filter(|o| o.body().is_some())
            .map(|body| StoredObject {
                size: body.size(),
                uploaded_ms: body.uploaded().as_millis(),
                meta: body
                    .custom_metadata()
                    .map(|pairs| ObjectMeta::read(|name| pairs.get(name).cloned()))
                    .unwrap_or_default(),
                body,
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
    type Body = Object;

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

    async fn get(&self, key: &str) -> Result<Option<StoredObject<Object>>, StoreError> {
        self.open(key, None).await
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<Object>>, StoreError> {
        self.open(key, Some(Range::OffsetWithLength { offset, length }))
            .await
    }

    async fn read_body(&self, body: Object) -> Result<Vec<u8>, StoreError> {
        let key = body.key();
        match body.body() {
            Some(stream) => {
                let read = async { stream.bytes().await.map_err(|e| store_error(&key, &e)) };
                self.bounded("read", read).await
            }
            None => Err(StoreError::Retryable(format!(
                "R2 object {key} has no body"
            ))),
        }
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
