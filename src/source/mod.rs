//! The source layer: what a dataset's Zarr keys are and where their bytes come from.
//!
//! Every kind of dataset answers keys through one trait, [`KeySource`]: inline bytes, a byte
//! range of a URL, a whole object at a URL, or absent. The cache path only ever sees the URL
//! and range, so a new kind of dataset (a Zarr store over HTTP, parquet references) is a new
//! implementation and a [`Source`] variant, and nothing in `cache` changes.
//!
//! - [`datasets`]: dataset configuration (with its [`datasets::DatasetKind`]) and the
//!   per-isolate registry of loaded sources.
//! - [`refs`]: where reference files come from (location, fetch trait).
//! - [`kerchunk`]: kerchunk references (versions 0 and 1, templates, lazy `gen`) in a compact form.
//! - [`kerchunk_store`]: kerchunk references as a [`KeySource`].
//! - [`zarr`]: the Zarr v2 surface over any source (`.zmetadata` synthesis, content types,
//!   variables).
//! - [`decoded`]: the decoded view (metadata without codecs, each chunk's decode plan).
//! - [`v3`]: the Zarr v3 view (`zarr.json` and `c/…` keys synthesised from v2 metadata).
//! - [`zarr_http`]: a Zarr store (v2 or v3) over HTTP, xpublish's included, as a [`KeySource`].
//! - [`parquet`]: kerchunk parquet references, their record files read on demand.
//! - [`files`]: block mode's files under an origin prefix (block geometry, file meta).
//! - [`routes`]: other GET routes of a dataset's origin (xpublish plugins) and which are cached.

pub mod datasets;
pub mod decoded;
pub mod files;
pub mod kerchunk;
pub mod kerchunk_store;
pub mod parquet;
pub mod refs;
pub mod routes;
pub mod v3;
pub mod zarr;
pub mod zarr_http;

use std::rc::Rc;

use crate::error::Error;
use crate::origin::ByteRange;
use crate::source::kerchunk::References;
use crate::source::parquet::ParquetRefs;
use crate::source::refs::RefsLocation;
use crate::source::zarr_http::ZarrHttpStore;

/// What a dataset answers for one Zarr key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAnswer {
    /// The key's whole content, known without a fetch (inline data, metadata).
    Inline(Vec<u8>),
    /// `range` of the file at `url` (read through the cache).
    Range {
        /// The resolved absolute URL.
        url: String,
        /// The byte range (at least one byte).
        range: ByteRange,
    },
    /// The whole object at `url` (read through the cache).
    Whole {
        /// The resolved absolute URL.
        url: String,
    },
    /// The dataset has no such key: Zarr reads a missing chunk as the fill value (404).
    Absent,
}

impl KeyAnswer {
    /// The URL and range to read, for answers that live at a URL.
    #[must_use]
    pub fn location(&self) -> Option<(&str, Option<ByteRange>)> {
        match self {
            Self::Range { url, range } => Some((url, Some(*range))),
            Self::Whole { url } => Some((url, None)),
            Self::Inline(_) | Self::Absent => None,
        }
    }
}

/// The keys of one dataset: the seam every kind of dataset implements.
#[allow(async_fn_in_trait)]
pub trait KeySource {
    /// What to answer for `key` (already validated as a Zarr key by the router).
    ///
    /// Contract: [`KeyAnswer::Inline`] is the key's whole content; [`KeyAnswer::Range`] and
    /// [`KeyAnswer::Whole`] name bytes the caller reads through the cache (the cache checks the
    /// URL against the dataset's allowed hosts); [`KeyAnswer::Absent`] only when the dataset
    /// has no such key. `Err` is the source's own failure
    /// ([`Error::BadReferences`], [`Error::Upstream`]), never a missing key. Idempotent.
    /// Files the source needs besides its reference file (a parquet set's record files) are
    /// read through `files`.
    async fn answer(&self, key: &str, files: &impl SourceFiles) -> Result<KeyAnswer, Error>;

    /// The dataset's Zarr metadata keys (`.zgroup`, `.zattrs`, `.zarray`, `.zmetadata` when it
    /// has one), in any order.
    async fn metadata_keys(&self) -> Result<Vec<String>, Error>;

    /// The keys whose bytes live at a URL and that `wanted` accepts, each once, at most
    /// `limit`; `true` when more matched (what a warm job reads).
    async fn chunk_keys(
        &self,
        wanted: &dyn Fn(&str) -> bool,
        limit: usize,
        files: &impl SourceFiles,
    ) -> Result<(Vec<String>, bool), Error>;

    /// How many keys the dataset lists explicitly, when it knows (for listings).
    fn key_count(&self) -> Option<u64>;

    /// Where the Zarr surface keeps what it computes once per loaded source (a synthesised
    /// `.zmetadata`, the variables listing); `None`: computed per request (a source whose
    /// metadata passes through to an origin).
    fn memo(&self) -> Option<&Memo> {
        None
    }
}

/// What [`zarr`] computes from a loaded source's metadata once, not per request: scanning a
/// million keys for the metadata ones on every `.zmetadata` would cost more than the answer.
#[derive(Debug, Default)]
pub struct Memo {
    /// The synthesised `.zmetadata`.
    pub consolidated: std::cell::OnceCell<Rc<Vec<u8>>>,
    /// The variables listing.
    pub variables: std::cell::OnceCell<Rc<Vec<zarr::Variable>>>,
    /// The v3 views' root `zarr.json` (encoded, decoded): its consolidated metadata walks every
    /// metadata key, as `.zmetadata`'s synthesis does.
    pub v3_roots: [std::cell::OnceCell<Rc<Vec<u8>>>; 2],
    /// The decoded view's plan of each array, by its `.zarray` key (parsed once, not per chunk).
    pub decode_plans:
        std::cell::RefCell<std::collections::HashMap<String, Rc<crate::codec::DecodePlan>>>,
}

/// Files a source reads on demand besides its reference file: a parquet set's record files.
#[allow(async_fn_in_trait)]
pub trait SourceFiles {
    /// The whole file `name` (its path under the set's root, also its name in the cache) at
    /// `location`.
    ///
    /// Contract: the file's bytes, whole and as the source holds them; [`Error::NotFound`]
    /// when there is no such file; other errors as reading fails ([`Error::Upstream`],
    /// [`Error::Forbidden`], [`Error::OriginTimeout`], ...). What a read brings is kept (stored for
    /// other readers) only once [`settle`](Self::settle) says the bytes were valid.
    async fn read_file(&self, name: &str, location: &RefsLocation) -> Result<Vec<u8>, Error>;

    /// Says whether the bytes [`read_file`](Self::read_file) gave for `name` were valid: only
    /// valid files are kept; an invalid one is forgotten (nothing of it is cached).
    fn settle(&self, name: &str, valid: bool);
}

/// [`SourceFiles`] for reads that never need a file besides the reference file (metadata
/// keys, and sources that keep everything in memory): any read is refused.
pub struct NoFiles;

impl SourceFiles for NoFiles {
    async fn read_file(&self, name: &str, _: &RefsLocation) -> Result<Vec<u8>, Error> {
        Err(Error::Internal(format!(
            "{name}: this read cannot fetch a source's files"
        )))
    }

    fn settle(&self, _: &str, _: bool) {}
}

/// A loaded dataset source, by kind. A new kind adds a variant here and its own
/// [`KeySource`] implementation.
#[derive(Clone)]
pub enum Source {
    /// Kerchunk references (JSON), loaded and held in memory.
    Kerchunk(Rc<References>),
    /// A Zarr store over HTTP (with its grid when the version document was loaded).
    Zarr(Rc<ZarrHttpStore>),
    /// Kerchunk parquet references: the metadata in memory, record files read on demand.
    Parquet(Rc<ParquetRefs>),
}

impl Source {
    /// Bytes held in memory, for the registry's budget.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        match self {
            Self::Kerchunk(refs) => refs.heap_bytes(),
            Self::Zarr(store) => store.heap_bytes(),
            Self::Parquet(refs) => refs.heap_bytes(),
        }
    }
}

impl KeySource for Source {
    async fn answer(&self, key: &str, files: &impl SourceFiles) -> Result<KeyAnswer, Error> {
        match self {
            Self::Kerchunk(refs) => refs.answer(key, files).await,
            Self::Zarr(store) => store.answer(key, files).await,
            Self::Parquet(refs) => refs.answer(key, files).await,
        }
    }

    async fn metadata_keys(&self) -> Result<Vec<String>, Error> {
        match self {
            Self::Kerchunk(refs) => refs.metadata_keys().await,
            Self::Zarr(store) => store.metadata_keys().await,
            Self::Parquet(refs) => refs.metadata_keys().await,
        }
    }

    async fn chunk_keys(
        &self,
        wanted: &dyn Fn(&str) -> bool,
        limit: usize,
        files: &impl SourceFiles,
    ) -> Result<(Vec<String>, bool), Error> {
        match self {
            Self::Kerchunk(refs) => refs.chunk_keys(wanted, limit, files).await,
            Self::Zarr(store) => store.chunk_keys(wanted, limit, files).await,
            Self::Parquet(refs) => refs.chunk_keys(wanted, limit, files).await,
        }
    }

    fn memo(&self) -> Option<&Memo> {
        match self {
            Self::Kerchunk(refs) => KeySource::memo(&**refs),
            Self::Zarr(store) => store.memo(),
            Self::Parquet(refs) => refs.memo(),
        }
    }

    fn key_count(&self) -> Option<u64> {
        match self {
            Self::Kerchunk(refs) => refs.key_count(),
            Self::Zarr(store) => store.key_count(),
            Self::Parquet(refs) => refs.key_count(),
        }
    }
}
