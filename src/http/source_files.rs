//! [`SourceFiles`] over the cache path: a parquet set's record files read like chunks (index
//! entry, storage, single flight, lease, write-back), so an isolate that needs one reads it from
//! storage when any other has read it; a set kept in the bucket is read from the bucket.
//!
//! A record file is written back only once its source says it decoded: the write-backs of a
//! read wait in `pending` until [`SourceFiles::settle`]; an invalid file's are turned into a
//! counted miss that releases its lease, so nothing of it is stored.

use std::cell::RefCell;
use std::rc::Rc;

use crate::cache::{read_chunk, ChunkBody, ChunkRequest, WriteBack};
use crate::error::Error;
use crate::http::context::{key_plan, origin_auth, Backends};
use crate::platform::Platform;
use crate::source::datasets::{DatasetConfig, DEFAULT_ABSENT_TTL_SECONDS};
use crate::source::refs::{ReferenceSource, RefsFetch, RefsLocation};
use crate::source::SourceFiles;
use crate::store::ChunkStore;

/// A request's reads of its dataset's source files, and the write-backs they leave.
pub struct CachedFiles<'r, 'b, P: Platform> {
    config: &'r DatasetConfig,
    backends: &'r Backends<'b, P>,
    holder: &'r str,
    pending: RefCell<Vec<(String, Vec<WriteBack>)>>,
    settled: RefCell<Vec<WriteBack>>,
}

impl<'r, 'b, P: Platform> CachedFiles<'r, 'b, P> {
    /// Reads for dataset `config` by the request `holder` (its lease holder id).
    #[must_use]
    pub fn new(config: &'r DatasetConfig, backends: &'r Backends<'b, P>, holder: &'r str) -> Self {
        Self {
            config,
            backends,
            holder,
            pending: RefCell::default(),
            settled: RefCell::default(),
        }
    }

    /// The write-backs of the settled reads (the request runs them after its answer). A read
    /// never settled (its request failed first) leaves only the release of its lease.
    #[must_use]
    pub fn into_write_backs(self) -> Vec<WriteBack> {
        let mut out = self.settled.into_inner();
        for (_, write_backs) in self.pending.into_inner() {
            out.extend(write_backs.into_iter().map(WriteBack::discarded));
        }
        out
    }

    /// Reads the file at `url` through the cache, as key `name` of the dataset.
    async fn read_through_cache(&self, name: &str, url: &str) -> Result<Vec<u8>, Error> {
        let config = self.config;
        let hosts = config.hosts.for_refs_file(url).map_err(|refusal| {
            Error::Forbidden(format!("{}: record file {name}: {refusal}", config.id))
        })?;
        let auth = origin_auth(config, self.backends)?;
        let mut plan = key_plan(config, name, self.backends);
        // A record file the origin does not have is remembered as absent for a while: kerchunk's
        // writer leaves out the files of records with no references.
        plan.rules.absent_ttl_ms = Some(DEFAULT_ABSENT_TTL_SECONDS * 1000);
        let request = ChunkRequest {
            dataset: &config.id,
            key: name,
            url,
            hosts: &hosts,
            range: None,
            holder: self.holder,
            auth: auth.as_ref(),
            rules: plan.rules,
            version: None,
            checks: Some(self.backends.file_checks),
            decode: None,
        };
        let (chunk, write_backs) = read_chunk(
            request,
            plan.policy,
            self.backends.cache,
            self.backends.flights,
        )
        .await?;
        self.pending
            .borrow_mut()
            .push((name.to_owned(), write_backs));
        if chunk.absent {
            return Err(Error::NotFound(format!("{url} is absent at the origin")));
        }
        match chunk.body {
            ChunkBody::Bytes(bytes) => Ok(Rc::try_unwrap(bytes).unwrap_or_else(|rc| (*rc).clone())),
            ChunkBody::Stored { body, .. } => self
                .backends
                .cache
                .store
                .read_body(body)
                .await
                .map_err(Error::from),
        }
    }
}

impl<P: Platform> SourceFiles for CachedFiles<'_, '_, P> {
    async fn read_file(&self, name: &str, location: &RefsLocation) -> Result<Vec<u8>, Error> {
        match location {
            RefsLocation::Url(url) => self.read_through_cache(name, url).await,
            // Already in the bucket: nothing to cache.
            RefsLocation::Bucket(_) => {
                match self.backends.refs_source.fetch_refs(location, None).await? {
                    RefsFetch::Body { bytes, .. } => Ok(bytes),
                    RefsFetch::NotModified
                    | RefsFetch::Redirect { .. }
                    | RefsFetch::Streamed { .. } => Err(Error::Internal(format!(
                        "{name}: the bucket answered without a body"
                    ))),
                }
            }
        }
    }

    fn settle(&self, name: &str, valid: bool) {
        let mut pending = self.pending.borrow_mut();
        let mut settled = self.settled.borrow_mut();
        let mut i = 0;
        while i < pending.len() {
            if pending[i].0 == name {
                let (_, write_backs) = pending.swap_remove(i);
                if valid {
                    settled.extend(write_backs);
                } else {
                    settled.extend(write_backs.into_iter().map(WriteBack::discarded));
                }
            } else {
                i += 1;
            }
        }
    }
}
