//! [`R2Store`]: the chunk store over an R2 bucket binding. Object keys come from `cache_keys`,
//! already prefixed with the deployment's key prefix. Bodies are R2 objects, streamed to the
//! client by `convert` without passing through wasm.

use worker::{Bucket, Object};

use crate::backend::{ChunkStore, ListedObject, ObjectPage, StoreError, StoredObject};

/// Chunk storage in R2.
#[derive(Clone)]
pub struct R2Store {
    bucket: Bucket,
}

impl R2Store {
    /// A store in `bucket`.
    pub fn new(bucket: Bucket) -> Self {
        Self { bucket }
    }
}

/// R2 answers more than one write per second to a key with 429 (error code 10058).
fn store_error(key: &str, error: &worker::Error) -> StoreError {
    let text = error.to_string();
    if text.contains("10058") || text.contains("429") || text.to_lowercase().contains("rate limit")
    {
        StoreError::RateLimited(key.to_owned())
    } else {
        StoreError::Unavailable(format!("R2: {text}"))
    }
}

impl ChunkStore for R2Store {
    type Body = Object;

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.bucket
            .put(key, bytes)
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| store_error(key, &e))
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<Object>>, StoreError> {
        let object = self
            .bucket
            .get(key)
            .execute()
            .await
            .map_err(|e| store_error(key, &e))?;
        Ok(object
            .filter(|o| o.body().is_some())
            .map(|body| StoredObject {
                size: body.size(),
                uploaded_ms: body.uploaded().as_millis(),
                body,
            }))
    }

    async fn read_body(&self, body: Object) -> Result<Vec<u8>, StoreError> {
        let key = body.key();
        match body.body() {
            Some(stream) => stream.bytes().await.map_err(|e| store_error(&key, &e)),
            None => Err(StoreError::Unavailable(format!(
                "R2 object {key} has no body"
            ))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket
            .delete(key)
            .await
            .map_err(|e| store_error(key, &e))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.bucket
            .delete_multiple(keys.iter().map(String::as_str).collect())
            .await
            .map_err(|e| store_error(&keys[0], &e))
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
        let listing = request
            .execute()
            .await
            .map_err(|e| store_error(prefix, &e))?;
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
