//! [`WorkerStore`]: the chunk store this deployment chose at start (`CHUNK_STORE`), one variant
//! per kind of store. The cache sees only [`ChunkStore`]; a new store is a new variant here and
//! a new implementation beside `r2_store`.

use worker::{Env, Object, ResponseBody};

use super::convert::IntoResponseBody;
use super::r2_store::R2Store;
use crate::config::{ChunkStoreConfig, Config};
use crate::error::Error;
use crate::store::{ChunkStore, ObjectPage, StoreError, StoredObject};

/// The chunk store chosen by the configuration.
#[derive(Clone)]
pub enum WorkerStore {
    /// An R2 bucket binding.
    R2(R2Store),
}

/// The unread body of an object of a [`WorkerStore`].
pub enum WorkerBody {
    /// An R2 object, streamed to the client without passing through wasm.
    R2(Object),
}

impl WorkerStore {
    /// The store `config` names, over the bindings in `env`.
    ///
    /// # Errors
    /// [`Error::Store`] (fatal) when the named binding is missing: the deployment is
    /// misconfigured.
    pub fn from_env(env: &Env, config: &Config) -> Result<Self, Error> {
        match &config.chunk_store {
            ChunkStoreConfig::R2 { binding } => {
                let bucket = env.bucket(binding).map_err(|e| {
                    Error::Store(StoreError::Fatal(format!(
                        "R2 binding {binding} (CHUNK_STORE) is missing: {e}"
                    )))
                })?;
                Ok(Self::R2(R2Store::new(bucket, config.storage_timeout_ms)))
            }
        }
    }
}

impl IntoResponseBody for WorkerBody {
    fn into_response_body(self) -> worker::Result<ResponseBody> {
        match self {
            Self::R2(object) => object.into_response_body(),
        }
    }
}

fn wrap(object: Option<StoredObject<Object>>) -> Option<StoredObject<WorkerBody>> {
    object.map(|o| StoredObject {
        size: o.size,
        uploaded_ms: o.uploaded_ms,
        body: WorkerBody::R2(o.body),
    })
}

impl ChunkStore for WorkerStore {
    type Body = WorkerBody;

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Self::R2(store) => store.put(key, bytes).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<WorkerBody>>, StoreError> {
        match self {
            Self::R2(store) => store.get(key).await.map(wrap),
        }
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<WorkerBody>>, StoreError> {
        match self {
            Self::R2(store) => store.get_range(key, offset, length).await.map(wrap),
        }
    }

    async fn read_body(&self, body: WorkerBody) -> Result<Vec<u8>, StoreError> {
        match (self, body) {
            (Self::R2(store), WorkerBody::R2(object)) => store.read_body(object).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::R2(store) => store.delete(key).await,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        match self {
            Self::R2(store) => store.delete_many(keys).await,
        }
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        match self {
            Self::R2(store) => store.list(prefix, cursor, limit).await,
        }
    }
}
