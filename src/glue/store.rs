//! [`WorkerStore`]: the chunk store this deployment chose at start (`CHUNK_STORE`), one variant
//! per kind of store. The cache sees only [`ChunkStore`]; a new store is a new variant here and
//! a new implementation beside `r2_store`.

use futures::StreamExt as _;
use worker::{Env, ResponseBody};

use super::convert::IntoResponseBody;
use super::r2_store::{R2Body, R2Store};
use super::s3_fetch::{FetchS3, S3Body};
use super::WorkerClock;
use crate::config::{ChunkStoreConfig, Config};
use crate::error::Error;
use crate::origin::sigv4::Credentials;
use crate::source::refs::RefsSink;
use crate::store::s3::{S3Config, S3Store};
use crate::store::{ChunkStore, ObjectMeta, ObjectPage, StoreError, StoredObject};

/// The chunk store chosen by the configuration.
#[derive(Clone)]
pub enum WorkerStore {
    /// An R2 bucket binding.
    R2(R2Store),
    /// An S3-compatible bucket over `fetch`, signed with `SigV4`.
    S3(S3Store<FetchS3, WorkerClock>),
}

/// The unread body of an object of a [`WorkerStore`].
pub enum WorkerBody {
    /// An R2 object, streamed to the client without passing through wasm.
    R2(R2Body),
    /// An S3 answer's body, streamed likewise.
    S3(S3Body),
}

impl WorkerStore {
    /// Hands an object's body to `sink` piece by piece as it is read, never whole; a sink error
    /// stops the read and is returned as `Ok(Err(..))`.
    ///
    /// # Errors
    /// The body could not be read.
    pub async fn stream_body(
        &self,
        body: WorkerBody,
        sink: &mut RefsSink<'_>,
    ) -> Result<Result<(), Error>, StoreError> {
        let failed = |e: &worker::Error| StoreError::Retryable(format!("a body read failed: {e}"));
        let mut stream = match body {
            WorkerBody::R2(body) => worker::ResponseBuilder::new()
                .stream(body.into_stream())
                .stream()
                .map_err(|e| failed(&e))?,
            WorkerBody::S3(body) => body.into_response().stream().map_err(|e| failed(&e))?,
        };
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(|e| failed(&e))?;
            if let Err(e) = sink(&piece) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

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
            ChunkStoreConfig::S3(s3) => Ok(Self::S3(S3Store::new(
                FetchS3::new(config.storage_timeout_ms),
                WorkerClock,
                S3Config {
                    endpoint: s3.endpoint.clone(),
                    region: s3.region.clone(),
                    bucket: s3.bucket.clone(),
                    path_style: s3.path_style,
                },
                Credentials {
                    access_key_id: s3.access_key_id.clone(),
                    secret_access_key: s3.secret_access_key.clone(),
                    session_token: s3.session_token.clone(),
                },
            ))),
        }
    }
}

impl IntoResponseBody for WorkerBody {
    fn into_response_body(self) -> worker::Result<ResponseBody> {
        match self {
            Self::R2(body) => Ok(ResponseBody::Stream(body.into_stream())),
            Self::S3(body) => body.into_response_body(),
        }
    }
}

fn wrap<B>(
    object: Option<StoredObject<B>>,
    body: impl FnOnce(B) -> WorkerBody,
) -> Option<StoredObject<WorkerBody>> {
    object.map(|o| StoredObject {
        size: o.size,
        uploaded_ms: o.uploaded_ms,
        meta: o.meta,
        body: body(o.body),
    })
}

impl ChunkStore for WorkerStore {
    type Body = WorkerBody;

    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), StoreError> {
        match self {
            Self::R2(store) => store.put(key, bytes, meta).await,
            Self::S3(store) => store.put(key, bytes, meta).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<WorkerBody>>, StoreError> {
        match self {
            Self::R2(store) => store.get(key).await.map(|o| wrap(o, WorkerBody::R2)),
            Self::S3(store) => store.get(key).await.map(|o| wrap(o, WorkerBody::S3)),
        }
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<WorkerBody>>, StoreError> {
        match self {
            Self::R2(store) => store
                .get_range(key, offset, length)
                .await
                .map(|o| wrap(o, WorkerBody::R2)),
            Self::S3(store) => store
                .get_range(key, offset, length)
                .await
                .map(|o| wrap(o, WorkerBody::S3)),
        }
    }

    async fn read_body(&self, body: WorkerBody) -> Result<Vec<u8>, StoreError> {
        match (self, body) {
            (Self::R2(store), WorkerBody::R2(object)) => store.read_body(object).await,
            (Self::S3(store), WorkerBody::S3(body)) => store.read_body(body).await,
            _ => Err(StoreError::Fatal(
                "a body read through another store than the one that opened it".into(),
            )),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::R2(store) => store.delete(key).await,
            Self::S3(store) => store.delete(key).await,
        }
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        match self {
            Self::R2(store) => store.delete_many(keys).await,
            Self::S3(store) => store.delete_many(keys).await,
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
            Self::S3(store) => store.list(prefix, cursor, limit).await,
        }
    }
}
