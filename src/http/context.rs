//! What one request may use: the platform's backends, the isolate's state (datasets, single
//! flight, health) and the deployment's settings.

use std::rc::Rc;

use crate::cache::validators::FileChecks;
use crate::cache::{CacheBackends, CachePolicy, Expect, FetchRules, Flights, Versioned};
use crate::error::{ConfigError, Error};
use crate::http::health::HealthCache;
use crate::origin::auth::OriginAuth;
use crate::origin::sigv4::Credentials;
use crate::platform::Platform;
use crate::settings::Settings;
use crate::source::datasets::{DatasetConfig, DatasetRegistry, DEFAULT_ABSENT_TTL_SECONDS};
use crate::source::refs::RefsLocation;
use crate::source::zarr_http::is_metadata_key;

/// The backends and state one request may use.
pub struct Backends<'a, P: Platform> {
    /// Index, chunk store, origin and clock (owned clones, shared with in-flight fetches).
    pub cache: &'a Rc<CacheBackends<P>>,
    /// Where reference files come from.
    pub refs_source: &'a P::Refs,
    /// The configured datasets and their loaded references (per isolate).
    pub datasets: &'a DatasetRegistry,
    /// In-isolate single flight of origin fetches.
    pub flights: &'a Flights,
    /// The admin API's bearer token (`None`: the admin API is off).
    pub admin_token: Option<&'a str>,
    /// Tuning values.
    pub settings: &'a Settings,
    /// The worker's secrets by name (datasets' `s3_credentials` name theirs).
    pub secrets: &'a dyn Fn(&str) -> Option<String>,
    /// The isolate's last health report.
    pub health: &'a HealthCache,
    /// When this isolate last checked each source file's validator.
    pub file_checks: &'a FileChecks,
}

/// The cache path's tunables for a dataset.
#[must_use]
pub fn cache_policy<P: Platform>(
    config: &DatasetConfig,
    backends: &Backends<'_, P>,
) -> CachePolicy {
    CachePolicy {
        origin_timeout_ms: backends.settings.origin_timeout_ms,
        ttl_ms: config.ttl_seconds.saturating_mul(1000),
        lease_ms: backends.settings.lease_ms,
        lease_wait_ms: backends.settings.lease_wait_ms,
        poll_ms: backends.settings.lease_poll_ms,
        limits: config.limits(backends.settings.total_capacity),
        file_check_ms: config
            .file_check_seconds
            .map_or(backends.settings.file_check_ms, |s| s.saturating_mul(1000)),
    }
}

/// How browsers and shared caches may keep metadata answers of kerchunk datasets (they change
/// when references are revalidated).
const METADATA_MAX_AGE_SECONDS: u64 = 60;

/// How one key of a dataset that lives at a URL is read through the cache and answered.
pub struct KeyPlan<'c> {
    /// How the origin's answer is checked and kept.
    pub rules: FetchRules,
    /// The cache path's tunables (the TTL is the key's own).
    pub policy: CachePolicy,
    /// The source version, for a chunk of a versioned dataset.
    pub version: Option<Versioned<'c>>,
    /// `Cache-Control: max-age` of the answer.
    pub max_age: u64,
    /// The key is the dataset's version document: a fresh read of it is recorded.
    pub is_document: bool,
}

/// The plan for `key` of `config`. Kerchunk: the dataset's TTL (the edge TTL for browsers), a
/// minute for metadata. Zarr over HTTP: metadata with its own short TTL, remembered 404s, and
/// chunks keyed by the source generation; browsers keep nothing longer than a version check
/// holds.
#[must_use]
pub fn key_plan<'c, P: Platform>(
    config: &'c DatasetConfig,
    key: &str,
    backends: &Backends<'_, P>,
) -> KeyPlan<'c> {
    let policy = cache_policy(config, backends);
    let Some(zarr) = &config.zarr else {
        let is_metadata = crate::source::zarr::content_type(key) == "application/json";
        let max_age = match (is_metadata, config.edge_ttl_seconds) {
            (true, _) => METADATA_MAX_AGE_SECONDS,
            (false, 0) => config.ttl_seconds,
            (false, edge) => edge,
        };
        return KeyPlan {
            rules: FetchRules::default(),
            policy,
            version: None,
            max_age,
            is_document: false,
        };
    };
    let metadata_ms = zarr.metadata_ttl_seconds.saturating_mul(1000);
    if is_metadata_key(key) {
        return KeyPlan {
            rules: FetchRules {
                absent_ttl_ms: Some(metadata_ms),
                expect: Expect::JsonObject,
                keep_content_type: false,
            },
            policy: CachePolicy {
                ttl_ms: metadata_ms,
                ..policy
            },
            version: None,
            max_age: zarr.metadata_ttl_seconds,
            is_document: key == zarr.document_key(),
        };
    }
    KeyPlan {
        rules: FetchRules {
            absent_ttl_ms: Some(zarr.absent_ttl_seconds.saturating_mul(1000)),
            expect: Expect::NotHtml,
            keep_content_type: false,
        },
        policy,
        version: versioned(config, backends),
        max_age: zarr.metadata_ttl_seconds,
        is_document: false,
    }
}

/// The plan for a cached route of `config` (an answer of an xpublish plugin) with its rule's
/// TTL: kept with its content type, a 404 remembered, versioned like the dataset's chunks.
#[must_use]
pub fn route_plan<'c, P: Platform>(
    config: &'c DatasetConfig,
    ttl_seconds: u64,
    backends: &Backends<'_, P>,
) -> KeyPlan<'c> {
    let absent_seconds = config
        .zarr
        .as_ref()
        .map_or(DEFAULT_ABSENT_TTL_SECONDS, |z| z.absent_ttl_seconds);
    let version = versioned(config, backends);
    let max_age = config
        .zarr
        .as_ref()
        .map_or(ttl_seconds, |z| ttl_seconds.min(z.metadata_ttl_seconds));
    KeyPlan {
        rules: FetchRules {
            absent_ttl_ms: Some(absent_seconds.saturating_mul(1000)),
            expect: Expect::Bytes,
            keep_content_type: true,
        },
        policy: CachePolicy {
            ttl_ms: ttl_seconds.saturating_mul(1000),
            ..cache_policy(config, backends)
        },
        version,
        max_age,
        is_document: false,
    }
}

/// The version a read of `config` keys its objects by (zarr stores only).
fn versioned<'c, P: Platform>(
    config: &'c DatasetConfig,
    backends: &Backends<'_, P>,
) -> Option<Versioned<'c>> {
    let zarr = config.zarr.as_ref()?;
    let RefsLocation::Url(document_url) = &config.refs else {
        return None;
    };
    Some(Versioned {
        generation: backends.datasets.generation(&config.id),
        stale_after_ms: zarr.metadata_ttl_seconds.saturating_mul(1000),
        document_key: zarr.document_key(),
        document_url,
    })
}

/// What the handler needs from the incoming request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    /// The HTTP method, upper case.
    pub method: &'a str,
    /// The URL path, not decoded.
    pub path: &'a str,
    /// The URL query, without `?`, not decoded.
    pub query: &'a str,
    /// The request body (read only for the admin API and passed-through routes).
    pub body: &'a [u8],
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The `Cookie` header (a request with cookies is never cached).
    pub cookie: Option<&'a str>,
    /// The `Content-Type` header (passed on with a passed-through body).
    pub content_type: Option<&'a str>,
    /// A value unique to this request (the glue draws it at random), for probe keys and leases.
    pub nonce: &'a str,
    /// The `Range` header.
    pub range: Option<&'a str>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<&'a str>,
    /// The `If-Range` header: a `Range` applies only while the file still has this validator
    /// (block mode; a resumed download never gets bytes of another version).
    pub if_range: Option<&'a str>,
}

/// The signing identity of `config`'s private origin, from the secrets it names; `None` for a
/// dataset without `s3_credentials`.
///
/// # Errors
/// [`Error::Config`] naming the dataset and the missing secret's *name* (500: the operator
/// must set it).
pub fn origin_auth<P: Platform>(
    config: &DatasetConfig,
    backends: &Backends<'_, P>,
) -> Result<Option<OriginAuth>, Error> {
    let Some(names) = &config.s3_credentials else {
        return Ok(None);
    };
    let secret = |name: &str| {
        (backends.secrets)(name).ok_or_else(|| {
            Error::Config(ConfigError::Invalid {
                name: "DATASETS",
                reason: format!(
                    "dataset {:?}: the secret {name} (s3_credentials) is not set",
                    config.id
                ),
            })
        })
    };
    let mut credentials = Credentials::new(
        &secret(&names.access_key_id)?,
        &secret(&names.secret_access_key)?,
    );
    if let Some(token) = &names.session_token {
        credentials = credentials.with_session_token(&secret(token)?);
    }
    Ok(Some(OriginAuth {
        credentials,
        region: names.region.clone(),
    }))
}
