//! [`R2Store`]: the chunk store over an R2 bucket binding. Keys are prefixed with the deployment's
//! key prefix so several deployments can share a bucket.

use worker::Bucket;

use crate::backend::{ChunkStore, StoreError};

/// Chunk storage in R2.
pub struct R2Store {
    bucket: Bucket,
    prefix: String,
}

impl R2Store {
    /// A store writing under `prefix/` in `bucket`.
    pub fn new(bucket: Bucket, prefix: &str) -> Self {
        Self {
            bucket,
            prefix: prefix.to_owned(),
        }
    }

    fn object_key(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
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
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.bucket
            .put(self.object_key(key), bytes)
            .execute()
            .await
            .map(|_| ())
            .map_err(|e| store_error(key, &e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(object) = self
            .bucket
            .get(self.object_key(key))
            .execute()
            .await
            .map_err(|e| store_error(key, &e))?
        else {
            return Ok(None);
        };
        let Some(body) = object.body() else {
            return Ok(None);
        };
        body.bytes()
            .await
            .map(Some)
            .map_err(|e| store_error(key, &e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.bucket
            .delete(self.object_key(key))
            .await
            .map_err(|e| store_error(key, &e))
    }
}
