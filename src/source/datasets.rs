//! The configured datasets (`DATASETS`, a JSON object in the worker's vars) and the per-isolate
//! cache of their loaded references.
//!
//! Pure: loading goes through the [`ReferenceSource`] trait and
//! time is passed in. The cache is bounded by a memory budget (least recently used dataset dropped
//! first) and revalidates a dataset's references with their `ETag` after a configured interval.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Deserialize;

use std::cell::Cell;

use crate::clock::Clock;
use crate::error::ConfigError;
use crate::error::Error;
use crate::index::Index;
use crate::origin::url_policy::{redirect_target, HostPolicy, MAX_REDIRECTS};
use crate::policy::admission::Admission;
use crate::policy::capacity::{CapacityLimits, Limit};
use crate::policy::eviction::EvictionPolicy;
use crate::source::files::{FilesOrigin, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE};
use crate::source::kerchunk::{
    fetchable_url, LoadOptions, ReferenceStream, References, S3Endpoint,
};
use crate::source::parquet::ParquetRefs;
use crate::source::refs::{ReferenceSource, RefsFetch, RefsLocation, RefsSink};
use crate::source::routes::RoutesConfig;
use crate::source::zarr_http::{ZarrFormat, ZarrHttpStore, ZarrOrigin};
use crate::source::Source;

/// One dataset's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetConfig {
    /// The id in URLs (`/zarr/{id}/…`).
    pub id: String,
    /// What kind of source answers its keys.
    pub kind: DatasetKind,
    /// The file that describes the dataset, loaded and held per isolate: the reference file
    /// (kerchunk), or the store's version document (zarr: its consolidated metadata, for warm
    /// jobs and listings).
    pub refs: RefsLocation,
    /// Where a Zarr store over HTTP lives (kind `zarr` only).
    pub zarr: Option<ZarrOrigin>,
    /// Where the files of block mode live and their block size (kind `files` only).
    pub files: Option<FilesOrigin>,
    /// The directory of a parquet reference set, ending in `/` (its `.zmetadata` is `refs`).
    pub parquet_root: Option<RefsLocation>,
    /// Other routes of the origin passed through, some cached (`/routes/{id}/…`).
    pub routes: Option<RoutesConfig>,
    /// How often a source file served from the cache is checked for a new validator, in
    /// seconds (0: never); `None`: `REFS_REVALIDATE_SECONDS`.
    pub file_check_seconds: Option<u64>,
    /// How `s3://` URLs in the references map to HTTP(S).
    pub s3_endpoint: Option<S3Endpoint>,
    /// The secrets that sign requests to a private S3 origin (by name, never the values).
    pub s3_credentials: Option<CredentialSecrets>,
    /// How long a cached chunk stays valid, in seconds.
    pub ttl_seconds: u64,
    /// How long the edge tier (Workers Cache API) keeps answers, in seconds; 0 turns it off.
    pub edge_ttl_seconds: u64,
    /// Hosts (`host` or `host:port`) the worker may fetch chunks from for this dataset, as
    /// normalised by the URL parser.
    pub allowed_hosts: Vec<String>,
    /// The same hosts, parsed: what every fetch for this dataset is checked against.
    pub hosts: HostPolicy,
    /// A human description for listings.
    pub description: String,
    /// How many bytes of chunks the dataset may keep stored; `None` is unbounded.
    pub capacity_bytes: Option<u64>,
    /// What goes first when the capacity is exceeded.
    pub eviction: EvictionPolicy,
    /// Which misses are stored.
    pub admission: Admission,
    /// The configuration as written (for the admin listing).
    pub definition: serde_json::Value,
}

/// What kind of source answers a dataset's keys (`"kind"` in its definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// Kerchunk references (JSON) at `refs`: every key is inline bytes or a range of a file.
    #[default]
    Kerchunk,
    /// A Zarr store (v2 or v3) over HTTP at `url`, xpublish's zarr endpoint included: every key
    /// passes through to the origin.
    Zarr,
    /// Files under the prefix `url`, served by byte ranges and cached as aligned blocks (block
    /// mode, `/files/{id}/{path}`).
    Files,
}

impl DatasetKind {
    /// The kind named in a definition.
    fn parse(name: &str) -> Option<Self> {
        match name {
            "kerchunk" => Some(Self::Kerchunk),
            "zarr" => Some(Self::Zarr),
            "files" => Some(Self::Files),
            _ => None,
        }
    }
}

/// Default metadata TTL of a Zarr store over HTTP: how long its metadata keys are cached and a
/// check of its version document holds.
pub const DEFAULT_METADATA_TTL_SECONDS: u64 = 60;
/// Default time an origin's 404 is remembered.
pub const DEFAULT_ABSENT_TTL_SECONDS: u64 = 60;

/// Which worker secrets hold a dataset's S3 credentials (`s3_credentials`: names only, so that
/// `DATASETS` and the admin API never carry a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSecrets {
    /// The secret holding the access key id.
    pub access_key_id: String,
    /// The secret holding the secret access key.
    pub secret_access_key: String,
    /// The secret holding a session token, for temporary credentials.
    pub session_token: Option<String>,
    /// The signing region.
    pub region: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    access_key_id_secret: String,
    secret_access_key_secret: String,
    #[serde(default)]
    session_token_secret: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// A secret's name: what `wrangler secret put` accepts (letters, digits, `_`).
fn is_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// Default chunk TTL: one day.
pub const DEFAULT_TTL_SECONDS: u64 = 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    refs: Option<String>,
    #[serde(default)]
    refs_format: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    zarr_format: Option<u64>,
    #[serde(default)]
    block_size: Option<u64>,
    #[serde(default)]
    metadata_ttl_seconds: Option<u64>,
    #[serde(default)]
    absent_ttl_seconds: Option<u64>,
    #[serde(default)]
    routes: Option<serde_json::Value>,
    #[serde(default)]
    file_check_seconds: Option<u64>,
    #[serde(default)]
    s3_endpoint: Option<RawS3>,
    #[serde(default)]
    s3_credentials: Option<RawCredentials>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
    #[serde(default)]
    edge_ttl_seconds: Option<u64>,
    #[serde(default)]
    allowed_hosts: Option<Vec<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    capacity_bytes: Option<u64>,
    #[serde(default)]
    eviction: Option<String>,
    #[serde(default)]
    admission: Option<Admission>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    endpoint: String,
    #[serde(default = "yes")]
    path_style: bool,
}

fn yes() -> bool {
    true
}

/// Parses `DATASETS`: `{"id": {"kind"?: "kerchunk", "refs": URL, "s3_endpoint"?: {"endpoint", "path_style"?},
/// "s3_credentials"?: {"access_key_id_secret", "secret_access_key_secret",
/// "session_token_secret"?, "region"?},
/// "ttl_seconds"?, "edge_ttl_seconds"?, "allowed_hosts"?: [..], "description"?,
/// "capacity_bytes"?, "eviction"?: "lru"|"lfu"|"size"|"cost", "admission"?: {"include"?,
/// "exclude"?, "min_bytes"?, "max_bytes"?, "min_fetch_ms"?}}, …}`.
///
/// `edge_ttl_seconds` defaults to `ttl_seconds`; 0 turns the edge tier off for the dataset.
///
/// `allowed_hosts` defaults to the host of the `refs` URL (none for a bucket location, which then
/// must list them).
///
/// # Errors
/// [`ConfigError::Invalid`] naming the dataset and what is wrong.
pub fn parse_datasets(json: &str) -> Result<Vec<DatasetConfig>, ConfigError> {
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| ConfigError::Invalid {
            name: "DATASETS",
            reason: e.to_string(),
        })?;
    raw.into_iter()
        .map(|(id, definition)| {
            parse_dataset(&id, definition).map_err(|reason| ConfigError::Invalid {
                name: "DATASETS",
                reason,
            })
        })
        .collect()
}

/// Parses one dataset's definition (a `DATASETS` entry, or the body of an admin `PUT`).
///
/// # Errors
/// What is wrong, naming the dataset.
pub fn parse_dataset(id: &str, definition: serde_json::Value) -> Result<DatasetConfig, String> {
    validate_dataset_id(id).map_err(|e| e.to_string())?;
    let in_dataset = |why: String| format!("dataset {id:?}: {why}");
    let raw: RawDataset =
        serde_json::from_value(definition.clone()).map_err(|e| in_dataset(e.to_string()))?;
    let kind = match raw.kind.as_deref() {
        None => DatasetKind::default(),
        Some(name) => DatasetKind::parse(name).ok_or_else(|| {
            in_dataset(format!(
                "kind must be \"kerchunk\", \"zarr\" or \"files\", not {name:?}"
            ))
        })?,
    };
    let zarr = zarr_origin(kind, &raw).map_err(in_dataset)?;
    let files = files_origin(kind, &raw).map_err(in_dataset)?;
    let refs = match &files {
        // Nothing to load: the prefix stands in (its host is what fetches are checked against).
        Some(files) => RefsLocation::Url(files.base.clone()),
        None => refs_location(zarr.as_ref(), raw.refs.as_deref()).map_err(in_dataset)?,
    };
    let (refs, parquet_root) =
        parquet_layout(kind, raw.refs_format.as_deref(), refs).map_err(in_dataset)?;
    let hosts = match (raw.allowed_hosts, &refs) {
        (Some(hosts), _) => HostPolicy::new(&hosts, true).map_err(in_dataset)?,
        (None, RefsLocation::Url(url)) => {
            HostPolicy::derived_from(url).map_err(|e| in_dataset(format!("refs: {e}")))?
        }
        (None, RefsLocation::Bucket(_)) => {
            return Err(in_dataset(
                "allowed_hosts is required when refs live in the bucket".into(),
            ))
        }
    };
    // A refs URL (or a files prefix) on a loopback or private address must be listed
    // explicitly.
    if let RefsLocation::Url(url) = &refs {
        hosts
            .check_refs_url(url)
            .map_err(|e| in_dataset(format!("refs: {e}")))?;
    }
    let s3_credentials = raw
        .s3_credentials
        .map(credential_secrets)
        .transpose()
        .map_err(in_dataset)?;
    let routes = match raw.routes {
        None => None,
        Some(value) => {
            let routes = RoutesConfig::parse(value).map_err(in_dataset)?;
            hosts
                .check_chunk_url(&routes.base)
                .map_err(|e| in_dataset(format!("routes.base: {e}")))?;
            Some(routes)
        }
    };
    let ttl_seconds = raw.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if ttl_seconds == 0 {
        return Err(in_dataset("ttl_seconds must be at least 1".into()));
    }
    let eviction = match raw.eviction.as_deref() {
        None => EvictionPolicy::default(),
        Some(name) => EvictionPolicy::parse(name).ok_or_else(|| {
            in_dataset(format!(
                "eviction must be one of lru, lfu, size, cost, not {name:?}"
            ))
        })?,
    };
    let edge_ttl_seconds = edge_ttl(kind, raw.edge_ttl_seconds, ttl_seconds).map_err(in_dataset)?;
    Ok(DatasetConfig {
        kind,
        zarr,
        files,
        parquet_root,
        routes,
        file_check_seconds: raw.file_check_seconds,
        s3_credentials,
        refs,
        s3_endpoint: raw.s3_endpoint.map(|s| S3Endpoint {
            endpoint: s.endpoint,
            path_style: s.path_style,
        }),
        ttl_seconds,
        edge_ttl_seconds,
        allowed_hosts: hosts.entries(),
        hosts,
        description: raw.description,
        capacity_bytes: raw.capacity_bytes,
        eviction,
        admission: raw.admission.unwrap_or_default(),
        definition,
        id: id.to_owned(),
    })
}

/// The edge TTL: `ttl_seconds` unless the definition says; off for kinds whose changes the edge
/// tier cannot see (it answers before any lookup).
fn edge_ttl(kind: DatasetKind, edge: Option<u64>, ttl_seconds: u64) -> Result<u64, String> {
    Ok(match (kind, edge) {
        (DatasetKind::Zarr, Some(ttl)) if ttl > 0 => {
            return Err(
                "edge_ttl_seconds must be 0 for kind zarr: the edge tier cannot see a change \
                 of the store's version"
                    .into(),
            )
        }
        (DatasetKind::Files, Some(ttl)) if ttl > 0 => {
            return Err(
                "edge_ttl_seconds must be 0 for kind files: the edge tier cannot see a change \
                 of a file"
                    .into(),
            )
        }
        (DatasetKind::Zarr | DatasetKind::Files, _) => 0,
        (DatasetKind::Kerchunk, ttl) => ttl.unwrap_or(ttl_seconds),
    })
}

/// The file that describes the dataset: a zarr store's version document, or its `refs`.
fn refs_location(zarr: Option<&ZarrOrigin>, refs: Option<&str>) -> Result<RefsLocation, String> {
    match (zarr, refs) {
        (Some(zarr), _) => Ok(RefsLocation::Url(zarr.url_of(zarr.document_key()))),
        (None, None) => Err("refs is required".into()),
        (None, Some(refs)) => {
            if let Some(key) = refs.strip_prefix("r2://") {
                Ok(RefsLocation::Bucket(key.to_owned()))
            } else if refs.starts_with("http://") || refs.starts_with("https://") {
                Ok(RefsLocation::Url(refs.to_owned()))
            } else {
                Err(format!(
                    "refs must be an http(s):// URL or r2://key, not {refs:?}"
                ))
            }
        }
    }
}

/// The `.zmetadata` and directory of a parquet reference set, when `refs` names one: with
/// `refs_format: "parquet"`, or a `refs` ending in `/`, `.parq` or `.parquet` (what
/// `refs_to_dataframe` and `LazyReferenceMapper.create` write). Else `refs` as it is.
fn parquet_layout(
    kind: DatasetKind,
    format: Option<&str>,
    refs: RefsLocation,
) -> Result<(RefsLocation, Option<RefsLocation>), String> {
    let path = match &refs {
        RefsLocation::Url(url) => url.split(['?', '#']).next().unwrap_or(url),
        RefsLocation::Bucket(key) => key.as_str(),
    };
    let looks_parquet = path.ends_with('/')
        || [".parq", ".parquet", ".parq/", ".parquet/"]
            .iter()
            .any(|end| path.ends_with(end));
    let parquet = match (kind, format) {
        (DatasetKind::Kerchunk, None) => looks_parquet,
        (DatasetKind::Kerchunk, Some("parquet")) => true,
        (DatasetKind::Kerchunk, Some("json")) | (_, None) => false,
        (DatasetKind::Kerchunk, Some(other)) => {
            return Err(format!(
                "refs_format must be \"json\" or \"parquet\", not {other:?}"
            ))
        }
        (_, Some(_)) => return Err("refs_format is only for kind kerchunk".into()),
    };
    if !parquet {
        return Ok((refs, None));
    }
    let root = match refs {
        RefsLocation::Url(url) => {
            if url.contains(['?', '#']) {
                return Err("a parquet refs URL cannot have a query or fragment".into());
            }
            RefsLocation::Url(with_slash(url))
        }
        RefsLocation::Bucket(key) => RefsLocation::Bucket(with_slash(key)),
    };
    let document = match &root {
        RefsLocation::Url(url) => RefsLocation::Url(format!("{url}.zmetadata")),
        RefsLocation::Bucket(key) => RefsLocation::Bucket(format!("{key}.zmetadata")),
    };
    Ok((document, Some(root)))
}

/// `path` ending in `/`.
fn with_slash(mut path: String) -> String {
    if !path.ends_with('/') {
        path.push('/');
    }
    path
}

/// The secret names of `s3_credentials`, checked.
fn credential_secrets(c: RawCredentials) -> Result<CredentialSecrets, String> {
    let names = [
        Some(&c.access_key_id_secret),
        Some(&c.secret_access_key_secret),
        c.session_token_secret.as_ref(),
    ];
    if let Some(bad) = names.into_iter().flatten().find(|n| !is_secret_name(n)) {
        return Err(format!(
            "s3_credentials name secrets (letters, digits, _), not {bad:?}"
        ));
    }
    Ok(CredentialSecrets {
        access_key_id: c.access_key_id_secret,
        secret_access_key: c.secret_access_key_secret,
        session_token: c.session_token_secret,
        region: c.region.unwrap_or_else(|| "us-east-1".into()),
    })
}

/// The store of a `zarr` dataset from its definition (`None` for other kinds, which may not
/// name one).
fn zarr_origin(kind: DatasetKind, raw: &RawDataset) -> Result<Option<ZarrOrigin>, String> {
    let zarr_only = [
        ("url", raw.url.is_some() && kind != DatasetKind::Files),
        ("zarr_format", raw.zarr_format.is_some()),
        ("metadata_ttl_seconds", raw.metadata_ttl_seconds.is_some()),
        ("absent_ttl_seconds", raw.absent_ttl_seconds.is_some()),
    ];
    if kind != DatasetKind::Zarr {
        if let Some((name, _)) = zarr_only.iter().find(|(_, set)| *set) {
            return Err(format!("{name} is only for kind \"zarr\""));
        }
        return Ok(None);
    }
    if raw.refs.is_some() {
        return Err("kind \"zarr\" has a url, not refs".into());
    }
    let url = raw
        .url
        .as_deref()
        .ok_or("kind \"zarr\" needs url (the store's root)")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("url must be an http(s):// URL, not {url:?}"));
    }
    let format = match raw.zarr_format {
        None => ZarrFormat::V3,
        Some(n) => ZarrFormat::from_number(n)
            .ok_or_else(|| format!("zarr_format must be 2 or 3, not {n}"))?,
    };
    let metadata_ttl_seconds = raw
        .metadata_ttl_seconds
        .unwrap_or(DEFAULT_METADATA_TTL_SECONDS);
    let absent_ttl_seconds = raw.absent_ttl_seconds.unwrap_or(DEFAULT_ABSENT_TTL_SECONDS);
    if metadata_ttl_seconds == 0 || absent_ttl_seconds == 0 {
        return Err("metadata_ttl_seconds and absent_ttl_seconds must be at least 1".into());
    }
    Ok(Some(ZarrOrigin {
        root: url.trim_end_matches('/').to_owned(),
        format,
        metadata_ttl_seconds,
        absent_ttl_seconds,
    }))
}

/// The prefix and block size of a `files` dataset from its definition (`None` for other kinds,
/// which may not name a block size).
fn files_origin(kind: DatasetKind, raw: &RawDataset) -> Result<Option<FilesOrigin>, String> {
    if kind != DatasetKind::Files {
        if raw.block_size.is_some() {
            return Err("block_size is only for kind \"files\"".into());
        }
        return Ok(None);
    }
    if raw.refs.is_some() || raw.routes.is_some() {
        return Err("kind \"files\" has a url, not refs or routes".into());
    }
    let written = raw
        .url
        .as_deref()
        .ok_or("kind \"files\" needs url (the prefix its paths are under)")?;
    // An S3 bucket prefix maps through s3_endpoint like the s3:// URLs of references (a
    // placeholder key, since a prefix may be the whole bucket).
    let mapped;
    let url = if written.starts_with("s3://") {
        let endpoint = raw.s3_endpoint.as_ref().map(|s| S3Endpoint {
            endpoint: s.endpoint.clone(),
            path_style: s.path_style,
        });
        let prefix = written.trim_end_matches('/');
        mapped = fetchable_url(&format!("{prefix}/_"), endpoint.as_ref())
            .map_err(|e| format!("url {written:?}: {e}"))?;
        mapped.trim_end_matches('_')
    } else {
        written
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "url must be an http(s):// URL or an s3:// prefix, not {url:?}"
        ));
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "url must be a plain prefix, without query or fragment: {url:?}"
        ));
    }
    let block_size = raw.block_size.unwrap_or(DEFAULT_BLOCK_SIZE);
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(format!(
            "block_size must be {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE} bytes, not {block_size}"
        ));
    }
    let base = if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    };
    Ok(Some(FilesOrigin { base, block_size }))
}

impl DatasetConfig {
    /// The limits a write-back of this dataset checks, with the deployment-wide one.
    #[must_use]
    pub fn limits(&self, total: Option<Limit>) -> CapacityLimits {
        CapacityLimits {
            dataset: self.capacity_bytes.map(|capacity_bytes| Limit {
                capacity_bytes,
                policy: self.eviction,
            }),
            total,
        }
    }

    fn load_options(&self) -> LoadOptions {
        LoadOptions {
            base_url: match &self.refs {
                RefsLocation::Url(url) => Some(url.clone()),
                RefsLocation::Bucket(_) => None,
            },
            s3_endpoint: self.s3_endpoint.clone(),
        }
    }
}

/// The load state of one dataset, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadState {
    /// Not loaded in this isolate yet (or dropped to stay within the budget).
    NotLoaded,
    /// Loaded and usable.
    Loaded,
    /// The last load failed with this message.
    Failed(String),
}

struct Loaded {
    source: Source,
    etag: Option<String>,
    checked_at_ms: u64,
    last_used_ms: u64,
}

/// Where a dataset's configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetSource {
    /// `DATASETS`, the worker's configuration.
    Static,
    /// Registered at run time through the admin API (kept in the index); it replaces a static
    /// dataset of the same id.
    Runtime,
}

impl DatasetSource {
    /// The name in answers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "static",
            Self::Runtime => "runtime",
        }
    }
}

/// The configured datasets (static ones merged with those registered at run time) and a
/// per-isolate cache of their loaded references, bounded by a memory budget.
pub struct DatasetRegistry {
    static_datasets: Vec<DatasetConfig>,
    runtime_datasets: RefCell<BTreeMap<String, DatasetConfig>>,
    /// Static and run-time datasets merged (run-time wins), sorted by id.
    merged: RefCell<Rc<Vec<Rc<DatasetConfig>>>>,
    /// Their ids, in that order (every response's write-backs are scoped by them).
    ids: RefCell<Rc<[String]>>,
    runtime_refresh_ms: u64,
    runtime_checked_ms: Cell<Option<u64>>,
    /// The version of the run-time datasets last read from the index.
    runtime_version: Cell<Option<u64>>,
    /// The version a lookup that finished after its response saw last ([`Self::version_sink`]).
    seen_version: Rc<Cell<Option<u64>>>,
    /// Raised by every change this isolate made itself ([`Self::put_runtime`],
    /// [`Self::remove_runtime`]): a reread that started before one must not undo it.
    local_changes: Cell<u64>,
    /// Rereads started, and the number of the last one applied: an answer that arrives after a
    /// later-started reread was applied is older than what the isolate has.
    rereads_started: Cell<u64>,
    reread_applied: Cell<u64>,
    budget_bytes: usize,
    revalidate_after_ms: u64,
    loaded: RefCell<BTreeMap<String, Loaded>>,
    /// First loads in progress, with the time after which their loader is presumed gone.
    loading: RefCell<BTreeMap<String, u64>>,
    /// How long a first load may take before another request loads the references itself.
    load_deadline_ms: u64,
    failures: RefCell<BTreeMap<String, String>>,
    /// The source generation each versioned dataset was last read in (the next read's guess).
    generations: RefCell<BTreeMap<String, u64>>,
}

/// A parquet set keeps at most this share of the references budget in decoded record files
/// (their bytes count in the budget like loaded references).
const RECORDS_SHARE: usize = 4;

/// How often a request waiting for another request's first load of a dataset checks it.
const FIRST_LOAD_POLL_MS: u64 = 20;
/// How long a first load may take by default: the default download time plus parsing.
pub const DEFAULT_LOAD_DEADLINE_MS: u64 = crate::settings::DEFAULT_REFS_TIMEOUT_MS as u64 + 10_000;

/// Takes a first load off the map when it ends or its future is dropped (its request was
/// cancelled), unless another loader took the dataset over meanwhile.
struct Loading<'a> {
    map: &'a RefCell<BTreeMap<String, u64>>,
    id: &'a str,
    deadline: u64,
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        let mut map = self.map.borrow_mut();
        if map.get(self.id) == Some(&self.deadline) {
            map.remove(self.id);
        }
    }
}

impl DatasetRegistry {
    /// A registry over `datasets` keeping at most `budget_bytes` of references in memory and
    /// revalidating them after `revalidate_after_ms`.
    #[must_use]
    pub fn new(
        datasets: Vec<DatasetConfig>,
        budget_bytes: usize,
        revalidate_after_ms: u64,
    ) -> Self {
        Self {
            ids: RefCell::new(datasets.iter().map(|d| d.id.clone()).collect()),
            merged: RefCell::new(Rc::new(datasets.iter().cloned().map(Rc::new).collect())),
            static_datasets: datasets,
            runtime_datasets: RefCell::default(),
            runtime_refresh_ms: u64::from(crate::settings::DEFAULT_DATASETS_REFRESH_SECONDS) * 1000,
            runtime_checked_ms: Cell::new(None),
            runtime_version: Cell::new(None),
            seen_version: Rc::default(),
            local_changes: Cell::new(0),
            rereads_started: Cell::new(0),
            reread_applied: Cell::new(0),
            budget_bytes,
            revalidate_after_ms,
            loaded: RefCell::default(),
            loading: RefCell::default(),
            load_deadline_ms: DEFAULT_LOAD_DEADLINE_MS,
            failures: RefCell::default(),
            generations: RefCell::default(),
        }
    }

    /// The source generation dataset `id` was last read in by this isolate (0: none yet).
    #[must_use]
    pub fn generation(&self, id: &str) -> u64 {
        self.generations.borrow().get(id).copied().unwrap_or(0)
    }

    /// Remembers the source generation a read of `id` was answered in.
    pub fn set_generation(&self, id: &str, generation: u64) {
        self.generations
            .borrow_mut()
            .insert(id.to_owned(), generation);
    }

    /// The same registry, letting a first load take `ms` before another request starts its own.
    #[must_use]
    pub fn with_load_deadline_ms(mut self, ms: u64) -> Self {
        self.load_deadline_ms = ms;
        self
    }

    /// The same registry, rereading run-time datasets from the index every `ms`.
    #[must_use]
    pub fn with_runtime_refresh_ms(mut self, ms: u64) -> Self {
        self.runtime_refresh_ms = ms;
        self
    }

    /// Every dataset, sorted by id.
    #[must_use]
    pub fn datasets(&self) -> Rc<Vec<Rc<DatasetConfig>>> {
        Rc::clone(&self.merged.borrow())
    }

    /// The ids of every dataset, sorted.
    #[must_use]
    pub fn ids(&self) -> Rc<[String]> {
        Rc::clone(&self.ids.borrow())
    }

    /// One dataset's configuration.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id.
    pub fn config(&self, id: &str) -> Result<Rc<DatasetConfig>, Error> {
        self.merged
            .borrow()
            .iter()
            .find(|d| d.id == id)
            .map(Rc::clone)
            .ok_or_else(|| Error::NotFound(format!("no dataset {id:?}")))
    }

    /// Where the dataset's configuration comes from (`None` for an unknown id).
    #[must_use]
    pub fn source(&self, id: &str) -> Option<DatasetSource> {
        if self.runtime_datasets.borrow().contains_key(id) {
            Some(DatasetSource::Runtime)
        } else if self.static_datasets.iter().any(|d| d.id == id) {
            Some(DatasetSource::Static)
        } else {
            None
        }
    }

    /// Whether `DATASETS` defines the dataset.
    #[must_use]
    pub fn is_static(&self, id: &str) -> bool {
        self.static_datasets.iter().any(|d| d.id == id)
    }

    /// Rereads the run-time datasets from the index when the last read is older than the refresh
    /// interval (`DATASETS_REFRESH_SECONDS`).
    pub async fn refresh_runtime(&self, index: &impl Index, now_ms: u64) {
        self.refresh_runtime_if_older(index, now_ms, self.runtime_refresh_ms)
            .await;
    }

    /// Where lookups that finish after their response (storage-first hits, see
    /// `cache::settle`) leave the run-time datasets' version they saw, for
    /// [`refresh_if_seen_changed`](Self::refresh_if_seen_changed).
    #[must_use]
    pub fn version_sink(&self) -> Rc<Cell<Option<u64>>> {
        Rc::clone(&self.seen_version)
    }

    /// Rereads the run-time datasets when a lookup that finished after its response saw a
    /// version other than the one this isolate read last (one round trip, only then).
    pub async fn refresh_if_seen_changed(&self, index: &impl Index, now_ms: u64) {
        if let Some(version) = self.seen_version.take() {
            if self.runtime_version_changed(version) {
                self.refresh_runtime_if_older(index, now_ms, 0).await;
            }
        }
    }

    /// Whether a lookup's run-time datasets `version` differs from the one this isolate read
    /// last (then [`refresh_runtime_if_older`](Self::refresh_runtime_if_older) with 0 picks the
    /// change up).
    #[must_use]
    pub fn runtime_version_changed(&self, version: u64) -> bool {
        self.runtime_version.get() != Some(version)
    }

    /// Rereads the run-time datasets from the index when the last read is older than
    /// `max_age_ms`. An index failure keeps the datasets already known (retried after the
    /// interval); a stored definition that no longer parses is left out and reported as the
    /// dataset's failure.
    pub async fn refresh_runtime_if_older(&self, index: &impl Index, now_ms: u64, max_age_ms: u64) {
        let fresh = self
            .runtime_checked_ms
            .get()
            .is_some_and(|at| now_ms.saturating_sub(at) < max_age_ms);
        if fresh {
            return;
        }
        self.runtime_checked_ms.set(Some(now_ms));
        let changes = self.local_changes.get();
        let reread = self.rereads_started.get() + 1;
        self.rereads_started.set(reread);
        let Ok(stored) = index.runtime_datasets().await else {
            return;
        };
        // Concurrent rereads of one isolate: an answer older than one already applied never
        // replaces it, nor a change this isolate made while it was on its way (the next request
        // rereads). Versions are not compared: an index that lost its data starts them over.
        if reread < self.reread_applied.get() || self.local_changes.get() != changes {
            self.runtime_checked_ms.set(None);
            return;
        }
        self.reread_applied.set(reread);
        let mut parsed = BTreeMap::new();
        for (id, json) in stored.definitions {
            let config = serde_json::from_str(&json)
                .map_err(|e| e.to_string())
                .and_then(|definition| parse_dataset(&id, definition));
            match config {
                Ok(config) => {
                    parsed.insert(id, config);
                }
                Err(error) => {
                    self.failures.borrow_mut().insert(id, error);
                }
            }
        }
        self.replace_runtime(parsed);
        self.runtime_version.set(Some(stored.version));
    }

    /// Registers (or replaces) a run-time dataset in this isolate at once.
    pub fn put_runtime(&self, config: DatasetConfig) {
        self.local_changes.set(self.local_changes.get() + 1);
        let mut runtime = self.runtime_datasets.borrow().clone();
        runtime.insert(config.id.clone(), config);
        self.replace_runtime(runtime);
    }

    /// Removes a run-time dataset in this isolate at once.
    pub fn remove_runtime(&self, id: &str) {
        self.local_changes.set(self.local_changes.get() + 1);
        let mut runtime = self.runtime_datasets.borrow().clone();
        runtime.remove(id);
        self.replace_runtime(runtime);
    }

    /// Installs a new set of run-time datasets; loaded references of datasets whose definition
    /// changed (or that are gone) are dropped.
    fn replace_runtime(&self, runtime: BTreeMap<String, DatasetConfig>) {
        let mut merged: BTreeMap<String, DatasetConfig> = self
            .static_datasets
            .iter()
            .map(|d| (d.id.clone(), d.clone()))
            .collect();
        merged.extend(runtime.iter().map(|(id, d)| (id.clone(), d.clone())));
        let old = self.datasets();
        let changed: Vec<String> = old
            .iter()
            .filter(|d| merged.get(&d.id) != Some(&**d))
            .map(|d| d.id.clone())
            .collect();
        for id in &changed {
            self.loaded.borrow_mut().remove(id);
            self.failures.borrow_mut().remove(id);
        }
        *self.runtime_datasets.borrow_mut() = runtime;
        let merged: Vec<Rc<DatasetConfig>> = merged.into_values().map(Rc::new).collect();
        *self.ids.borrow_mut() = merged.iter().map(|d| d.id.clone()).collect();
        *self.merged.borrow_mut() = Rc::new(merged);
    }

    /// The dataset's load state in this isolate.
    #[must_use]
    pub fn state(&self, id: &str) -> LoadState {
        if self.loaded.borrow().contains_key(id) {
            LoadState::Loaded
        } else if let Some(message) = self.failures.borrow().get(id) {
            LoadState::Failed(message.clone())
        } else {
            LoadState::NotLoaded
        }
    }

    /// The source that answers dataset `id`'s keys, loading what its kind needs (kerchunk:
    /// the references, see [`load`](Self::load); zarr: nothing, every key passes through).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown dataset; what loading fails with.
    pub async fn key_source(
        &self,
        id: &str,
        refs_source: &impl ReferenceSource,
        clock: &impl Clock,
    ) -> Result<Source, Error> {
        let config = self.config(id)?;
        match (config.kind, &config.zarr) {
            (DatasetKind::Zarr, Some(origin)) => {
                let loaded = self
                    .loaded
                    .borrow()
                    .get(id)
                    .map(|entry| entry.source.clone());
                Ok(loaded
                    .unwrap_or_else(|| Source::Zarr(Rc::new(ZarrHttpStore::new(origin.clone())))))
            }
            _ => self.load(id, refs_source, clock).await,
        }
    }

    /// The source with everything a walk over its keys needs (warm jobs, listings): for a zarr
    /// store, its version document is loaded (and held like references) for the chunk grid.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown dataset; what loading fails with.
    pub async fn walkable_source(
        &self,
        id: &str,
        refs_source: &impl ReferenceSource,
        clock: &impl Clock,
    ) -> Result<Source, Error> {
        self.load(id, refs_source, clock).await
    }

    /// The dataset's kerchunk references (see [`load`](Self::load)).
    ///
    /// # Errors
    /// As [`load`](Self::load); [`Error::Internal`] for a dataset of another kind.
    pub async fn references(
        &self,
        id: &str,
        refs_source: &impl ReferenceSource,
        clock: &impl Clock,
    ) -> Result<Rc<References>, Error> {
        match self.load(id, refs_source, clock).await? {
            Source::Kerchunk(refs) => Ok(refs),
            Source::Zarr(_) | Source::Parquet(_) => Err(Error::Internal(format!(
                "dataset {id} has no JSON references"
            ))),
        }
    }

    /// The dataset's loaded file (references, or a zarr store's version document): from memory
    /// while fresh, else (re)loaded through `source`.
    ///
    /// A revalidation that fails keeps serving what is already loaded (stale beats down).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; [`Error::Upstream`] when the file cannot be
    /// fetched; [`Error::BadReferences`] when it does not parse.
    pub async fn load(
        &self,
        id: &str,
        source: &impl ReferenceSource,
        clock: &impl Clock,
    ) -> Result<Source, Error> {
        // A first load is shared: concurrent requests of a cold isolate (a Zarr client opens a
        // dataset with many requests at once) must not each download and parse the file, which
        // for a million references would not fit twice in the isolate's memory. Waiters poll
        // with their own timer (the runtime cancels a request that only awaits another request's
        // I/O). A loader whose request was cancelled either drops its future (its guard ends the
        // load at once) or is never polled again (its deadline passes): then a waiter loads.
        loop {
            let loaded = self.loaded.borrow().contains_key(id);
            let deadline = self.loading.borrow().get(id).copied();
            match deadline {
                Some(deadline) if !loaded && clock.now_ms() < deadline => {
                    clock.sleep(FIRST_LOAD_POLL_MS).await;
                }
                _ => break,
            }
        }
        let _guard = if self.loaded.borrow().contains_key(id) {
            None
        } else {
            let deadline = clock.now_ms().saturating_add(self.load_deadline_ms);
            self.loading.borrow_mut().insert(id.to_owned(), deadline);
            Some(Loading {
                map: &self.loading,
                id,
                deadline,
            })
        };
        self.load_at(id, source, clock.now_ms()).await
    }

    /// [`load`](Self::load) at time `now_ms`, without sharing a first load.
    async fn load_at(
        &self,
        id: &str,
        source: &impl ReferenceSource,
        now_ms: u64,
    ) -> Result<Source, Error> {
        let config = self.config(id)?;
        if config.kind == DatasetKind::Files {
            return Err(Error::NotFound(format!(
                "dataset {id:?} is of kind files: it has no Zarr keys; read its files at \
                 /files/{id}/{{path}}"
            )));
        }
        let cached = self.loaded.borrow_mut().get_mut(id).map(|entry| {
            entry.last_used_ms = now_ms;
            let fresh = now_ms.saturating_sub(entry.checked_at_ms) < self.revalidate_after_ms;
            (entry.source.clone(), entry.etag.clone(), fresh)
        });
        if let Some((refs, _, true)) = &cached {
            return Ok(refs.clone());
        }
        let etag = cached.as_ref().and_then(|(_, etag, _)| etag.clone());
        // JSON references are parsed as they arrive: the document is never held whole.
        let streamed = config.zarr.is_none() && config.parquet_root.is_none();
        let mut stream = ReferenceStream::new();
        let mut parse_error = None;
        let mut sink = |piece: &[u8]| {
            stream.feed(piece).map_err(|e| {
                let error = Error::BadReferences(format!("dataset {id}: {e}"));
                parse_error = Some(error.clone());
                error
            })
        };
        let sink: Option<&mut RefsSink<'_>> = if streamed { Some(&mut sink) } else { None };
        let fetched = fetch_refs_checked(&config, source, etag.as_deref(), sink).await;
        if let Some(error) = parse_error {
            // A document that does not parse is an error even where older references are
            // loaded (as when it arrived whole), not a reason to keep serving them.
            self.failures
                .borrow_mut()
                .insert(id.to_owned(), error.to_string());
            return Err(error);
        }
        match (fetched, cached) {
            (Ok(RefsFetch::NotModified), Some((refs, _, _))) => {
                if let Some(entry) = self.loaded.borrow_mut().get_mut(id) {
                    entry.checked_at_ms = now_ms;
                }
                Ok(refs)
            }
            (Err(_), Some((refs, _, _))) => {
                // Keep serving what we have; the next request after the interval tries again.
                if let Some(entry) = self.loaded.borrow_mut().get_mut(id) {
                    entry.checked_at_ms = now_ms;
                }
                Ok(refs)
            }
            (Ok(RefsFetch::Redirect { .. }), _) => Err(Error::Internal(format!(
                "reference source for {id} answered a redirect that was not followed"
            ))),
            (Ok(RefsFetch::NotModified), None) => Err(Error::Internal(format!(
                "reference source answered 'not modified' for {id} without a validator"
            ))),
            (Err(error), None) => {
                self.failures
                    .borrow_mut()
                    .insert(id.to_owned(), error.to_string());
                Err(error)
            }
            (Ok(RefsFetch::Streamed { etag }), _) => {
                let parsed = References::from_stream(stream, &config.load_options())
                    .map(|refs| Source::Kerchunk(Rc::new(refs)))
                    .map_err(|e| e.to_string());
                self.keep(id, parsed, etag, now_ms)
            }
            (Ok(RefsFetch::Body { bytes, etag }), _) => {
                let parsed = match (&config.zarr, &config.parquet_root) {
                    (Some(origin), _) => ZarrHttpStore::from_document(origin.clone(), &bytes)
                        .map(|store| Source::Zarr(Rc::new(store))),
                    (None, Some(root)) => ParquetRefs::new(
                        id,
                        root.clone(),
                        bytes,
                        &config.load_options(),
                        self.budget_bytes / RECORDS_SHARE,
                    )
                    .map(|refs| Source::Parquet(Rc::new(refs))),
                    (None, None) => References::from_json(&bytes, &config.load_options())
                        .map(|refs| Source::Kerchunk(Rc::new(refs)))
                        .map_err(|e| e.to_string()),
                };
                self.keep(id, parsed, etag, now_ms)
            }
        }
    }

    /// Keeps a freshly parsed source of `id`, or records why it did not parse.
    fn keep(
        &self,
        id: &str,
        parsed: Result<Source, String>,
        etag: Option<String>,
        now_ms: u64,
    ) -> Result<Source, Error> {
        let loaded = parsed.map_err(|e| {
            let error = Error::BadReferences(format!("dataset {id}: {e}"));
            self.failures
                .borrow_mut()
                .insert(id.to_owned(), error.to_string());
            error
        })?;
        self.failures.borrow_mut().remove(id);
        self.insert(id, loaded.clone(), etag, now_ms);
        Ok(loaded)
    }

    fn insert(&self, id: &str, source: Source, etag: Option<String>, now_ms: u64) {
        let mut loaded = self.loaded.borrow_mut();
        loaded.insert(
            id.to_owned(),
            Loaded {
                source,
                etag,
                checked_at_ms: now_ms,
                last_used_ms: now_ms,
            },
        );
        // Drop least recently used datasets (never the one just loaded) until within budget.
        loop {
            let total: usize = loaded.values().map(|l| l.source.heap_bytes()).sum();
            if total <= self.budget_bytes {
                break;
            }
            let victim = loaded
                .iter()
                .filter(|(other, _)| other.as_str() != id)
                .min_by_key(|(_, l)| l.last_used_ms)
                .map(|(other, _)| other.clone());
            match victim {
                Some(victim) => {
                    loaded.remove(&victim);
                }
                None => break,
            }
        }
    }
}

/// Fetches `config`'s reference file, following at most [`MAX_REDIRECTS`] redirects, each only
/// to a URL its hosts allow for references (any public host; an internal one only when listed).
/// With a `sink`, the body is streamed into it ([`ReferenceSource::stream_refs`]).
async fn fetch_refs_checked(
    config: &DatasetConfig,
    source: &impl ReferenceSource,
    if_none_match: Option<&str>,
    mut sink: Option<&mut RefsSink<'_>>,
) -> Result<RefsFetch, Error> {
    let id = &config.id;
    let mut location = config.refs.clone();
    let mut hops = 0;
    loop {
        // Fetch exactly the URL that was checked (its WHATWG serialisation); it is also the base
        // a redirect's Location resolves against.
        let checked = match &location {
            RefsLocation::Url(url) => {
                let checked = config.hosts.check_refs_url(url).map_err(|refusal| {
                    Error::Upstream(format!("dataset {id}: references: {refusal}"))
                })?;
                location = RefsLocation::Url(checked.as_str().to_owned());
                Some(checked)
            }
            RefsLocation::Bucket(_) => None,
        };
        let answer = match sink.as_deref_mut() {
            Some(sink) => source.stream_refs(&location, if_none_match, sink).await?,
            None => source.fetch_refs(&location, if_none_match).await?,
        };
        let next = match answer {
            RefsFetch::Redirect { location: next } => next,
            answer => return Ok(answer),
        };
        let Some(from) = checked else {
            return Err(Error::Internal(format!(
                "dataset {id}: the bucket answered a redirect"
            )));
        };
        if hops == MAX_REDIRECTS {
            return Err(Error::Upstream(format!(
                "dataset {id}: references: more than {MAX_REDIRECTS} redirects"
            )));
        }
        hops += 1;
        let target = redirect_target(&from, &next)
            .map_err(|e| Error::Upstream(format!("dataset {id}: references redirected to {e}")))?;
        location = RefsLocation::Url(target);
    }
}

/// Checks a dataset id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, not starting with `.`.
///
/// # Errors
/// [`Error::BadRequest`] naming what is wrong.
pub fn validate_dataset_id(id: &str) -> Result<String, Error> {
    let ok = (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Error::BadRequest(format!(
            "invalid dataset id {id:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::FakeRefsSource;
    use futures::executor::block_on;

    const SMALL: &str = r#"{"version": 1, "refs": {".zgroup": "{\"zarr_format\": 2}"}}"#;

    fn big(n: usize) -> String {
        let refs: Vec<String> = (0..n)
            .map(|i| format!(r#""v/{i}": ["http://o.test/f.nc", {i}, 10]"#))
            .collect();
        format!(r#"{{"version": 1, "refs": {{{}}}}}"#, refs.join(","))
    }

    /// Valid configurations parse with defaults; each invalid one names the problem.
    #[test]
    fn parse_datasets_table() {
        let parsed = parse_datasets(
            r#"{"air": {"refs": "https://data.test:8443/refs/air.json"},
                "b": {"refs": "r2://refs/b.json", "allowed_hosts": ["s3.test"], "ttl_seconds": 60,
                      "s3_endpoint": {"endpoint": "https://s3.test", "path_style": false}}}"#,
        )
        .unwrap();
        assert_eq!(parsed[0].id, "air");
        assert_eq!(parsed[0].kind, DatasetKind::Kerchunk);
        assert_eq!(parsed[0].allowed_hosts, ["data.test:8443"]);
        assert_eq!(parsed[0].ttl_seconds, DEFAULT_TTL_SECONDS);
        let hosts = &parsed[0].hosts;
        assert!(hosts.check_chunk_url("https://DATA.test:8443/x.nc").is_ok());
        assert!(hosts.check_chunk_url("https://data.test/x.nc").is_err());
        assert_eq!(parsed[1].refs, RefsLocation::Bucket("refs/b.json".into()));
        assert_eq!(
            (parsed[0].capacity_bytes, parsed[0].eviction),
            (None, EvictionPolicy::Lru)
        );
        assert!(parsed[0].admission.is_open());
        let managed = parse_datasets(
            r#"{"m": {"refs": "http://x/r.json", "capacity_bytes": 1000, "eviction": "cost",
                      "admission": {"include": ["t/*"], "min_fetch_ms": 5}}}"#,
        )
        .unwrap();
        let limits = managed[0].limits(None);
        assert_eq!(
            limits.dataset,
            Some(Limit {
                capacity_bytes: 1000,
                policy: EvictionPolicy::Cost
            })
        );
        assert!(managed[0].admission.admits("t/0", 1, 5));
        assert!(!managed[0].admission.admits("t/0", 1, 4));
        assert_eq!(managed[0].definition["capacity_bytes"], 1000);
        assert_eq!(
            parsed[1].s3_endpoint.as_ref().map(|s| s.path_style),
            Some(false)
        );
        for (json, want) in [
            (r#"{"a": {"refs": "ftp://x/r.json"}}"#, "refs must be"),
            (
                r#"{"a": {"kind": "parquet", "refs": "http://x/r"}}"#,
                "kind must be",
            ),
            (r#"{"a": {"kind": "files"}}"#, "needs url"),
            (
                r#"{"a": {"kind": "files", "url": "s3://b/p/"}}"#,
                "no S3 endpoint",
            ),
            (
                r#"{"a": {"kind": "files", "url": "http://x/d/", "block_size": 1000}}"#,
                "block_size must be",
            ),
            (
                r#"{"a": {"kind": "files", "url": "http://x/d/", "block_size": 33554432}}"#,
                "block_size must be",
            ),
            (
                r#"{"a": {"kind": "files", "url": "http://x/d/", "edge_ttl_seconds": 60}}"#,
                "edge_ttl_seconds must be 0 for kind files",
            ),
            (
                r#"{"a": {"kind": "files", "url": "http://x/d/?q=1"}}"#,
                "plain prefix",
            ),
            (
                r#"{"a": {"kind": "files", "url": "http://x/d/", "refs": "http://x/r"}}"#,
                "not refs",
            ),
            (
                r#"{"a": {"refs": "http://x/r", "block_size": 65536}}"#,
                "only for kind \"files\"",
            ),
            (
                r#"{"a": {"kind": "files", "url": "http://x/d", "zarr_format": 2}}"#,
                "only for kind \"zarr\"",
            ),
            (
                r#"{"a": {"refs": "http://127.0.0.1:8090/r.json"}}"#,
                "list it in the dataset's allowed_hosts",
            ),
            (
                r#"{"a": {"refs": "http://169.254.169.254/r.json", "allowed_hosts": ["s3.test"]}}"#,
                "list it in the dataset's allowed_hosts",
            ),
            (r#"{"a": {"refs": "http://u:p@x/r.json"}}"#, "user info"),
            (
                r#"{"a": {"refs": "http://x/r.json", "allowed_hosts": ["x/y"]}}"#,
                "must be a host or host:port",
            ),
            (
                r#"{"a": {"refs": "r2://r.json"}}"#,
                "allowed_hosts is required",
            ),
            (
                r#"{"a b": {"refs": "http://x/r.json"}}"#,
                "invalid dataset id",
            ),
            (
                r#"{"a": {"refs": "http://x/r.json", "ttl_seconds": 0}}"#,
                "ttl_seconds",
            ),
            (
                r#"{"a": {"refs": "http://x/r.json", "colour": 1}}"#,
                "unknown field",
            ),
            (r#"{"a": {}}"#, "refs is required"),
            (
                r#"{"a": {"refs": "http://x/r.json", "eviction": "fifo"}}"#,
                "eviction must be one of lru, lfu, size, cost",
            ),
            (
                r#"{"a": {"refs": "http://x/r.json", "admission": {"include": "x"}}}"#,
                "invalid type",
            ),
            (
                r#"{"a": {"refs": "http://x/r.json", "admission": {"max_size": 1}}}"#,
                "unknown field",
            ),
            (
                r#"{"a": {"refs": "http://x/r.json", "capacity_bytes": -1}}"#,
                "invalid value",
            ),
        ] {
            let error = parse_datasets(json).unwrap_err().to_string();
            assert!(error.contains(want), "{json}: {error}");
        }
    }

    /// After the interval, references are revalidated with their `ETag` and kept when unchanged,
    /// and reloaded when the file changed.
    #[test]
    fn revalidates_with_etag() {
        let datasets = parse_datasets(r#"{"a": {"refs": "http://o.test/a.json"}}"#).unwrap();
        let registry = DatasetRegistry::new(datasets, 1 << 20, 1_000);
        let source = FakeRefsSource::default().with("http://o.test/a.json", SMALL, "\"1\"");
        block_on(registry.load_at("a", &source, 0)).unwrap();
        block_on(registry.load_at("a", &source, 999)).unwrap();
        assert_eq!(source.fetches.get(), 1, "fresh within the interval");
        block_on(registry.load_at("a", &source, 1_000)).unwrap();
        assert_eq!((source.fetches.get(), source.not_modified.get()), (2, 1));
        source.replace("http://o.test/a.json", &big(3), "\"2\"");
        let Source::Kerchunk(refs) = block_on(registry.load_at("a", &source, 2_500)).unwrap()
        else {
            panic!("not references")
        };
        assert_eq!(refs.len_explicit(), 3);
    }

    /// Reference redirects are followed to public hosts and to internal hosts the dataset lists;
    /// a redirect to any other internal address is refused and never fetched.
    #[test]
    fn refs_redirects_are_checked() {
        let datasets = parse_datasets(
            r#"{"pub": {"refs": "http://o.test/a.json"},
                "local": {"refs": "http://127.0.0.1:8090/a.json",
                          "allowed_hosts": ["127.0.0.1:8090"]}}"#,
        )
        .unwrap();
        let registry = DatasetRegistry::new(datasets, 1 << 20, 1_000);
        let source = FakeRefsSource::default()
            .with_redirect("http://o.test/a.json", "https://cdn.test/a.json")
            .with("https://cdn.test/a.json", SMALL, "\"1\"")
            .with_redirect(
                "http://127.0.0.1:8090/a.json",
                "http://169.254.169.254/meta",
            )
            .with("http://169.254.169.254/meta", SMALL, "\"1\"");
        assert!(block_on(registry.load_at("pub", &source, 0)).is_ok());
        assert_eq!(source.fetches.get(), 2);
        let refused = block_on(registry.load_at("local", &source, 0));
        assert!(
            matches!(&refused, Err(Error::Upstream(m)) if m.contains("169.254.169.254")),
            "{:?}",
            refused.map(|_| ())
        );
        assert_eq!(
            source.fetches.get(),
            3,
            "the internal target is never fetched"
        );
    }

    /// A version a late lookup (a storage-first hit's) left in the sink rereads the run-time
    /// datasets after the response when it differs from the isolate's, and only then; a
    /// version taken is not acted on twice.
    #[test]
    fn late_lookups_versions_reread_the_runtime_datasets() {
        use crate::fakes::FakeIndex;
        let registry = DatasetRegistry::new(Vec::new(), 1 << 20, 1_000);
        let index = FakeIndex::healthy();
        block_on(registry.refresh_runtime_if_older(&index, 0, 0));
        let sink = registry.version_sink();
        sink.set(Some(0));
        block_on(registry.refresh_if_seen_changed(&index, 10));
        assert_eq!(index.round_trips.get(), 1, "the same version: no reread");
        let x = r#"{"refs": "http://o.test/x.json"}"#;
        block_on(index.put_runtime_dataset("x", x)).unwrap();
        assert!(registry.config("x").is_err(), "another instance's change");
        let trips = index.round_trips.get();
        sink.set(Some(index.runtime_version.get()));
        block_on(registry.refresh_if_seen_changed(&index, 20));
        assert!(registry.config("x").is_ok(), "reread after the response");
        assert_eq!(index.round_trips.get(), trips + 1);
        block_on(registry.refresh_if_seen_changed(&index, 30));
        assert_eq!(index.round_trips.get(), trips + 1, "nothing seen since");
    }

    /// Rereads apply what the index holds, even when its version went back (an index that lost
    /// its data, e.g. a Redis restarted without persistence, counts from 0 again): the isolate
    /// must not keep rereading on every lookup.
    #[test]
    fn rereads_follow_an_index_that_started_over() {
        use crate::fakes::FakeIndex;
        let registry = DatasetRegistry::new(Vec::new(), 1 << 20, 1_000);
        let index = FakeIndex::healthy();
        let x = r#"{"refs": "http://o.test/x.json"}"#;
        block_on(index.put_runtime_dataset("x", x)).unwrap();
        block_on(index.put_runtime_dataset("x", x)).unwrap();
        block_on(registry.refresh_runtime_if_older(&index, 0, 0));
        assert!(registry.config("x").is_ok());
        assert!(!registry.runtime_version_changed(2));
        // The index lost everything; one dataset was registered again since.
        index.runtime.borrow_mut().clear();
        index.runtime_version.set(0);
        let y = r#"{"refs": "http://o.test/y.json"}"#;
        block_on(index.put_runtime_dataset("y", y)).unwrap();
        assert!(registry.runtime_version_changed(1));
        block_on(registry.refresh_runtime_if_older(&index, 10, 0));
        assert!(registry.config("x").is_err() && registry.config("y").is_ok());
        assert_eq!(
            &*registry.ids(),
            ["y".to_owned()],
            "the ids follow the datasets"
        );
        assert!(
            !registry.runtime_version_changed(1),
            "no reread on the next lookup"
        );
    }

    /// A reference source that never answers.
    struct Hanging;

    impl ReferenceSource for Hanging {
        async fn fetch_refs(&self, _: &RefsLocation, _: Option<&str>) -> Result<RefsFetch, Error> {
            futures::future::pending().await
        }
    }

    /// A first load whose request was cancelled does not hold later requests back: dropped, it
    /// lets the next one load at once; never polled again, it is given up at its deadline.
    #[test]
    fn a_cancelled_first_load_is_taken_over() {
        use crate::fakes::ManualClock;
        use futures::executor::LocalPool;
        use futures::task::LocalSpawnExt;
        use futures::FutureExt as _;
        let datasets = parse_datasets(r#"{"a": {"refs": "http://o.test/a.json"}}"#).unwrap();
        let registry =
            Rc::new(DatasetRegistry::new(datasets, 1 << 20, 1_000).with_load_deadline_ms(5_000));
        let clock = Rc::new(ManualClock::default());
        let source = FakeRefsSource::default().with("http://o.test/a.json", SMALL, "\"1\"");

        // Dropped: the next reader loads without a single pause.
        let mut pool = LocalPool::new();
        let (loader, handle) = {
            let (registry, clock) = (Rc::clone(&registry), Rc::clone(&clock));
            async move {
                let _ = registry.references("a", &Hanging, &*clock).await;
            }
            .remote_handle()
        };
        pool.spawner().spawn_local(loader).unwrap();
        pool.run_until_stalled();
        drop(handle);
        pool.run_until_stalled();
        assert!(pool
            .run_until(registry.references("a", &source, &*clock))
            .is_ok());
        assert_eq!(clock.sleeps.get(), 0);

        // Never polled again: a reader arriving after the deadline loads at once, one arriving
        // before it waits out the rest only.
        let fresh = parse_datasets(r#"{"b": {"refs": "http://o.test/a.json"}}"#).unwrap();
        let registry =
            Rc::new(DatasetRegistry::new(fresh, 1 << 20, 1_000).with_load_deadline_ms(5_000));
        let mut abandoned = LocalPool::new();
        let stuck = (Rc::clone(&registry), Rc::clone(&clock));
        abandoned
            .spawner()
            .spawn_local(async move {
                let _ = stuck.0.references("b", &Hanging, &*stuck.1).await;
            })
            .unwrap();
        abandoned.run_until_stalled();
        clock.now.set(clock.now.get() + 4_000);
        assert!(pool
            .run_until(registry.references("b", &source, &*clock))
            .is_ok());
        let waited = clock.sleeps.get() as u64 * FIRST_LOAD_POLL_MS;
        assert!(
            (1_000..1_000 + FIRST_LOAD_POLL_MS).contains(&waited),
            "{waited}"
        );
    }

    /// A failed revalidation keeps serving the references already loaded; a failed first load
    /// is reported in the state.
    #[test]
    fn stale_beats_down() {
        let datasets = parse_datasets(
            r#"{"a": {"refs": "http://o.test/a.json"}, "b": {"refs": "http://o.test/b.json"}}"#,
        )
        .unwrap();
        let registry = DatasetRegistry::new(datasets, 1 << 20, 10);
        let source = FakeRefsSource::default().with("http://o.test/a.json", SMALL, "\"1\"");
        block_on(registry.load_at("a", &source, 0)).unwrap();
        let gone = FakeRefsSource::default();
        assert!(block_on(registry.load_at("a", &gone, 100)).is_ok());
        assert!(block_on(registry.load_at("b", &gone, 100)).is_err());
        assert_eq!(registry.state("a"), LoadState::Loaded);
        assert!(matches!(registry.state("b"), LoadState::Failed(m) if m.contains("404")));
        assert_eq!(registry.state("zzz"), LoadState::NotLoaded);
    }

    /// Over the memory budget, the least recently used dataset is dropped (never the new one).
    #[test]
    fn budget_drops_least_recently_used() {
        let datasets = parse_datasets(
            r#"{"a": {"refs": "http://o.test/a.json"}, "b": {"refs": "http://o.test/b.json"},
                "c": {"refs": "http://o.test/c.json"}}"#,
        )
        .unwrap();
        let source = FakeRefsSource::default()
            .with("http://o.test/a.json", &big(1000), "a")
            .with("http://o.test/b.json", &big(1000), "b")
            .with("http://o.test/c.json", &big(1000), "c");
        let one = block_on(
            DatasetRegistry::new(datasets.clone(), usize::MAX, 60_000).load_at("a", &source, 0),
        )
        .unwrap()
        .heap_bytes();
        let registry = DatasetRegistry::new(datasets, one * 2 + one / 2, 60_000);
        block_on(registry.load_at("a", &source, 1)).unwrap();
        block_on(registry.load_at("b", &source, 2)).unwrap();
        block_on(registry.load_at("a", &source, 3)).unwrap();
        block_on(registry.load_at("c", &source, 4)).unwrap();
        assert_eq!(registry.state("a"), LoadState::Loaded);
        assert_eq!(
            registry.state("b"),
            LoadState::NotLoaded,
            "b was least recently used"
        );
        assert_eq!(registry.state("c"), LoadState::Loaded);
    }

    /// Concurrent first loads of one dataset download the file once.
    #[test]
    fn concurrent_first_loads_fetch_once() {
        use crate::fakes::{yield_once, ManualClock};
        use futures::task::LocalSpawnExt;
        let datasets = parse_datasets(r#"{"a": {"refs": "http://o.test/a.json"}}"#).unwrap();
        let registry = Rc::new(DatasetRegistry::new(datasets, 1 << 20, 60_000));
        let source = Rc::new(FakeRefsSource::default().with("http://o.test/a.json", SMALL, "1"));
        let clock = Rc::new(ManualClock::default());
        let mut pool = futures::executor::LocalPool::new();
        for _ in 0..10 {
            let (registry, source, clock) = (registry.clone(), source.clone(), clock.clone());
            pool.spawner()
                .spawn_local(async move {
                    yield_once().await;
                    registry.references("a", &*source, &*clock).await.unwrap();
                })
                .unwrap();
        }
        pool.run();
        assert_eq!(source.fetches.get(), 1);
    }
}
