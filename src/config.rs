//! Worker configuration, read from environment variables and secrets and validated at start.
//!
//! Pure: [`Config::from_lookup`] takes a lookup function, so the glue passes `Env` vars and
//! secrets and the tests pass a table. Token values never appear in errors.

use crate::error::ConfigError;
use crate::policy::capacity::Limit;
use crate::policy::eviction::EvictionPolicy;
#[allow(clippy::wildcard_imports)]
use crate::settings::*;
use crate::source::datasets::{parse_datasets, DatasetConfig};

/// Validated configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Base URL of the Upstash REST API (`UPSTASH_REDIS_REST_URL`).
    pub upstash_url: String,
    /// Bearer token for it (`UPSTASH_REDIS_REST_TOKEN`, a secret).
    pub upstash_token: String,
    /// How long one index call may take before it counts as failed (`INDEX_TIMEOUT_MS`).
    pub index_timeout_ms: u32,
    /// The configured datasets (`DATASETS`, a JSON object; see `datasets::parse_datasets`).
    pub datasets: Vec<DatasetConfig>,
    /// Memory budget for loaded references in one isolate (`REFS_BUDGET_BYTES`).
    pub refs_budget_bytes: usize,
    /// How long loaded references are used before revalidating them with their `ETag`
    /// (`REFS_REVALIDATE_SECONDS`).
    pub refs_revalidate_seconds: u32,
    /// How long one origin request may take (`ORIGIN_TIMEOUT_MS`).
    pub origin_timeout_ms: u32,
    /// How long a cross-instance fetch lease lasts (`LEASE_MS`): longer than an origin fetch.
    pub lease_ms: u32,
    /// How long a request waits for another instance's fetch before going to the origin itself
    /// (`LEASE_WAIT_MS`).
    pub lease_wait_ms: u32,
    /// Prefix of every index key and storage key this deployment writes (`KEY_PREFIX`), so that
    /// several deployments or test runs can share one Redis and one bucket.
    pub key_prefix: String,
    /// The bearer token of the admin API (`ADMIN_TOKEN`, a secret); `None` turns the API off.
    pub admin_token: Option<String>,
    /// The capacity of all datasets together and its policy (`CACHE_CAPACITY_BYTES`,
    /// `CACHE_EVICTION`).
    pub total_capacity: Option<Limit>,
    /// How often an isolate rereads the datasets registered at run time
    /// (`DATASETS_REFRESH_SECONDS`).
    pub datasets_refresh_seconds: u32,
    /// How old a stored object with no index entry must be before the sweep deletes it
    /// (`ORPHAN_GRACE_SECONDS`): longer than any write-back takes between its storage write and
    /// its index write.
    pub orphan_grace_seconds: u32,
    /// The largest reference file the worker downloads (`REFS_MAX_BYTES`).
    pub refs_max_bytes: u64,
    /// How long downloading one reference file may take, body included (`REFS_TIMEOUT_MS`).
    pub refs_timeout_ms: u32,
    /// How long one chunk-store call (get, put, delete, list) may take (`STORAGE_TIMEOUT_MS`).
    pub storage_timeout_ms: u32,
    /// Which chunk store holds the bytes (`CHUNK_STORE`), chosen at start.
    pub chunk_store: ChunkStoreConfig,
    /// How many storage listing pages (500 objects each) one sweep scans for orphans
    /// (`SWEEP_ORPHAN_PAGES`).
    pub sweep_orphan_pages: u32,
    /// The most keys the deployment-wide capacity evicts per request or sweep
    /// (`TOTAL_EVICTIONS_PER_RUN`; four subrequests each).
    pub total_evictions_per_run: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("upstash_url", &self.upstash_url)
            .field("upstash_token", &"<redacted>")
            .field("index_timeout_ms", &self.index_timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("datasets", &self.datasets)
            .field("refs_budget_bytes", &self.refs_budget_bytes)
            .field("refs_revalidate_seconds", &self.refs_revalidate_seconds)
            .field("origin_timeout_ms", &self.origin_timeout_ms)
            .field("lease_ms", &self.lease_ms)
            .field("lease_wait_ms", &self.lease_wait_ms)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("total_capacity", &self.total_capacity)
            .field("datasets_refresh_seconds", &self.datasets_refresh_seconds)
            .field("orphan_grace_seconds", &self.orphan_grace_seconds)
            .field("refs_max_bytes", &self.refs_max_bytes)
            .field("refs_timeout_ms", &self.refs_timeout_ms)
            .field("storage_timeout_ms", &self.storage_timeout_ms)
            .field("chunk_store", &self.chunk_store)
            .field("sweep_orphan_pages", &self.sweep_orphan_pages)
            .field("total_evictions_per_run", &self.total_evictions_per_run)
            .finish()
    }
}

/// Which chunk store a deployment uses (`CHUNK_STORE`): chosen at start, not at compile time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkStoreConfig {
    /// An R2 bucket binding (`r2`, or `r2:BINDING`; the default binding is `CHUNKS`).
    R2 {
        /// The binding's name in `wrangler.toml` (`[[r2_buckets]] binding`).
        binding: String,
    },
    /// An S3-compatible bucket (`s3`, with the `S3_*` variables and secrets).
    S3(S3StoreConfig),
}

/// Where an S3-compatible chunk store is, and its credentials (secrets; `Debug` redacts them).
#[derive(Clone, PartialEq, Eq)]
pub struct S3StoreConfig {
    /// `S3_ENDPOINT`: `https://…` (or `http://` for a local server).
    pub endpoint: url::Url,
    /// `S3_REGION` (default `us-east-1`; `auto` for R2's S3 API).
    pub region: String,
    /// `S3_BUCKET`.
    pub bucket: String,
    /// `S3_ADDRESSING`: `path` (default: `endpoint/bucket/key`) or `virtual` (`bucket.endpoint/key`).
    pub path_style: bool,
    /// `S3_ACCESS_KEY_ID` (a secret).
    pub access_key_id: String,
    /// `S3_SECRET_ACCESS_KEY` (a secret).
    pub secret_access_key: String,
    /// `S3_SESSION_TOKEN` (a secret, for temporary credentials).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3StoreConfig")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl S3StoreConfig {
    fn parse(get: impl Fn(&'static str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let raw_endpoint = required("S3_ENDPOINT")?;
        let endpoint = url::Url::parse(&raw_endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .filter(|u| u.username().is_empty() && u.password().is_none() && u.query().is_none())
            .ok_or_else(|| ConfigError::Invalid {
                name: "S3_ENDPOINT",
                reason: "must be an http(s):// URL without credentials or query".into(),
            })?;
        let bucket = required("S3_BUCKET")?;
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'));
        if !valid_bucket {
            return Err(ConfigError::Invalid {
                name: "S3_BUCKET",
                reason: "must be 3 to 63 lower-case letters, digits, '-' or '.'".into(),
            });
        }
        let path_style = match get("S3_ADDRESSING").as_deref() {
            None | Some("path") => true,
            Some("virtual") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "S3_ADDRESSING",
                    reason: format!("{other:?} is neither path nor virtual"),
                })
            }
        };
        Ok(Self {
            endpoint,
            region: get("S3_REGION").unwrap_or_else(|| "us-east-1".into()),
            bucket,
            path_style,
            access_key_id: required("S3_ACCESS_KEY_ID")?,
            secret_access_key: required("S3_SECRET_ACCESS_KEY")?,
            session_token: get("S3_SESSION_TOKEN"),
        })
    }
}

/// The R2 binding used when `CHUNK_STORE` names none.
pub const DEFAULT_R2_BINDING: &str = "CHUNKS";

impl ChunkStoreConfig {
    fn parse(
        value: Option<&str>,
        get: impl Fn(&'static str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            name: "CHUNK_STORE",
            reason,
        };
        if value == Some("s3") {
            return S3StoreConfig::parse(get).map(Self::S3);
        }
        match value {
            None | Some("r2") => Ok(Self::R2 {
                binding: DEFAULT_R2_BINDING.to_owned(),
            }),
            Some(other) => match other.strip_prefix("r2:") {
                Some(binding)
                    if !binding.is_empty()
                        && binding
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    Ok(Self::R2 {
                        binding: binding.to_owned(),
                    })
                }
                _ => Err(invalid(format!(
                    "{other:?} is not a chunk store; use r2, r2:BINDING or s3"
                ))),
            },
        }
    }
}

impl Config {
    /// The tuning values requests and sweeps run with.
    #[must_use]
    pub fn settings(&self) -> Settings {
        Settings {
            origin_timeout_ms: u64::from(self.origin_timeout_ms),
            lease_ms: u64::from(self.lease_ms),
            lease_wait_ms: u64::from(self.lease_wait_ms),
            lease_poll_ms: LEASE_POLL_MS,
            total_capacity: self.total_capacity,
            orphan_grace_ms: u64::from(self.orphan_grace_seconds) * 1000,
            orphan_pages: self.sweep_orphan_pages,
            total_evictions: self.total_evictions_per_run as usize,
            file_check_ms: u64::from(self.refs_revalidate_seconds) * 1000,
        }
    }

    /// Reads and validates the configuration through `lookup(name)`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first variable that is missing or invalid.
    #[allow(clippy::too_many_lines)] // one validation per variable, in order
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let upstash_url =
            get("UPSTASH_REDIS_REST_URL").ok_or(ConfigError::Missing("UPSTASH_REDIS_REST_URL"))?;
        if !(upstash_url.starts_with("https://") || upstash_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "UPSTASH_REDIS_REST_URL",
                reason: "must start with https:// (or http:// for a local server)".into(),
            });
        }
        let upstash_token = get("UPSTASH_REDIS_REST_TOKEN")
            .ok_or(ConfigError::Missing("UPSTASH_REDIS_REST_TOKEN"))?;
        let number = |name: &'static str, default: u64, max: u64| match get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ConfigError::Invalid {
                    name,
                    reason: format!("{v:?} is not a whole number from 1 to {max}"),
                }),
        };
        let index_timeout_ms = number("INDEX_TIMEOUT_MS", DEFAULT_INDEX_TIMEOUT_MS.into(), 60_000)?;
        let origin_timeout_ms = number(
            "ORIGIN_TIMEOUT_MS",
            DEFAULT_ORIGIN_TIMEOUT_MS.into(),
            300_000,
        )?;
        let refs_revalidate_seconds = number(
            "REFS_REVALIDATE_SECONDS",
            DEFAULT_REFS_REVALIDATE_SECONDS.into(),
            86_400 * 365,
        )?;
        let refs_budget_bytes = number(
            "REFS_BUDGET_BYTES",
            DEFAULT_REFS_BUDGET_BYTES as u64,
            1 << 30,
        )?;
        let lease_ms = number("LEASE_MS", DEFAULT_LEASE_MS.into(), 600_000)?;
        let lease_wait_ms = number("LEASE_WAIT_MS", DEFAULT_LEASE_WAIT_MS.into(), 60_000)?;
        if lease_ms <= origin_timeout_ms {
            return Err(ConfigError::Invalid {
                name: "LEASE_MS",
                reason: format!(
                    "must be longer than ORIGIN_TIMEOUT_MS ({origin_timeout_ms}), or a lease can \
                     expire while its holder is still fetching"
                ),
            });
        }
        let datasets = match get("DATASETS") {
            None => Vec::new(),
            Some(json) => parse_datasets(&json)?,
        };
        let key_prefix = get("KEY_PREFIX").unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned());
        if !key_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || key_prefix.len() > 64
        {
            return Err(ConfigError::Invalid {
                name: "KEY_PREFIX",
                reason: "use at most 64 ASCII letters, digits, '-', '_' or '.'".into(),
            });
        }
        let datasets_refresh_seconds = number(
            "DATASETS_REFRESH_SECONDS",
            DEFAULT_DATASETS_REFRESH_SECONDS.into(),
            86_400,
        )?;
        let orphan_grace_seconds = number(
            "ORPHAN_GRACE_SECONDS",
            DEFAULT_ORPHAN_GRACE_SECONDS.into(),
            86_400 * 30,
        )?;
        let refs_max_bytes = number("REFS_MAX_BYTES", DEFAULT_REFS_MAX_BYTES, 1 << 32)?;
        let refs_timeout_ms = number("REFS_TIMEOUT_MS", DEFAULT_REFS_TIMEOUT_MS.into(), 600_000)?;
        let storage_timeout_ms = number(
            "STORAGE_TIMEOUT_MS",
            DEFAULT_STORAGE_TIMEOUT_MS.into(),
            300_000,
        )?;
        let sweep_orphan_pages = number(
            "SWEEP_ORPHAN_PAGES",
            DEFAULT_SWEEP_ORPHAN_PAGES.into(),
            3_000,
        )?;
        let total_evictions_per_run = number(
            "TOTAL_EVICTIONS_PER_RUN",
            DEFAULT_TOTAL_EVICTIONS_PER_RUN.into(),
            2_500,
        )?;
        let total_policy = match get("CACHE_EVICTION") {
            None => EvictionPolicy::Lru,
            Some(name) => EvictionPolicy::parse(&name).ok_or(ConfigError::Invalid {
                name: "CACHE_EVICTION",
                reason: format!("{name:?} is not one of lru, lfu, size, cost"),
            })?,
        };
        let total_capacity = match get("CACHE_CAPACITY_BYTES") {
            None => None,
            Some(_) => Some(Limit {
                capacity_bytes: number("CACHE_CAPACITY_BYTES", 0, u64::MAX)?,
                policy: total_policy,
            }),
        };
        let admin_token = get("ADMIN_TOKEN");
        if admin_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid {
                name: "ADMIN_TOKEN",
                reason: "must be at least 16 characters".into(),
            });
        }
        // The bounds above keep every value within the target types.
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Self {
            upstash_url,
            upstash_token,
            index_timeout_ms: narrow(index_timeout_ms),
            key_prefix,
            datasets,
            refs_budget_bytes: usize::try_from(refs_budget_bytes).unwrap_or(usize::MAX),
            refs_revalidate_seconds: narrow(refs_revalidate_seconds),
            origin_timeout_ms: narrow(origin_timeout_ms),
            lease_ms: narrow(lease_ms),
            lease_wait_ms: narrow(lease_wait_ms),
            admin_token,
            total_capacity,
            datasets_refresh_seconds: narrow(datasets_refresh_seconds),
            orphan_grace_seconds: narrow(orphan_grace_seconds),
            refs_max_bytes,
            refs_timeout_ms: narrow(refs_timeout_ms),
            storage_timeout_ms: narrow(storage_timeout_ms),
            chunk_store: ChunkStoreConfig::parse(get("CHUNK_STORE").as_deref(), get)?,
            sweep_orphan_pages: narrow(sweep_orphan_pages),
            total_evictions_per_run: narrow(total_evictions_per_run),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 2] = [
        ("UPSTASH_REDIS_REST_URL", "http://127.0.0.1:8079"),
        ("UPSTASH_REDIS_REST_TOKEN", "secret-token"),
    ];

    const S3: [(&str, &str); 5] = [
        ("CHUNK_STORE", "s3"),
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("S3_BUCKET", "chunks"),
        ("S3_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("S3_SECRET_ACCESS_KEY", "s3-secret-0123456789"),
    ];

    /// `CHUNK_STORE=s3` reads the bucket's place and credentials; `Debug` shows neither secret.
    #[test]
    fn s3_chunk_store() {
        let config = Config::from_lookup(lookup(&[&BASE[..], &S3[..]].concat())).unwrap();
        let ChunkStoreConfig::S3(s3) = &config.chunk_store else {
            panic!("not s3: {:?}", config.chunk_store);
        };
        assert_eq!(s3.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(
            (s3.region.as_str(), s3.bucket.as_str()),
            ("us-east-1", "chunks")
        );
        assert!(s3.path_style);
        assert_eq!(s3.secret_access_key, "s3-secret-0123456789");
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("s3-secret") && !printed.contains("AKIDEXAMPLE"),
            "{printed}"
        );
        let virtual_hosted = Config::from_lookup(lookup(
            &[
                &BASE[..],
                &S3[..],
                &[("S3_ADDRESSING", "virtual"), ("S3_REGION", "auto")],
            ]
            .concat(),
        ))
        .unwrap();
        let ChunkStoreConfig::S3(s3) = virtual_hosted.chunk_store else {
            panic!("not s3");
        };
        assert!(!s3.path_style);
        assert_eq!(s3.region, "auto");
    }

    /// With only the two required values, the defaults apply.
    #[test]
    fn defaults_apply_when_optional_values_are_absent() {
        let config = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(config.upstash_url, "http://127.0.0.1:8079");
        assert_eq!(config.index_timeout_ms, DEFAULT_INDEX_TIMEOUT_MS);
        assert_eq!(config.key_prefix, DEFAULT_KEY_PREFIX);
        assert_eq!(config.admin_token, None);
        assert_eq!(config.total_capacity, None);
        assert_eq!(
            config.chunk_store,
            ChunkStoreConfig::R2 {
                binding: "CHUNKS".into()
            }
        );
        let other = Config::from_lookup(lookup(&[BASE[0], BASE[1], ("CHUNK_STORE", "r2:CACHE_2")]));
        assert_eq!(
            other.unwrap().chunk_store,
            ChunkStoreConfig::R2 {
                binding: "CACHE_2".into()
            }
        );
        let capped = Config::from_lookup(lookup(&[
            BASE[0],
            BASE[1],
            ("CACHE_CAPACITY_BYTES", "1000"),
            ("CACHE_EVICTION", "size"),
        ]))
        .unwrap();
        assert_eq!(
            capped.total_capacity,
            Some(Limit {
                capacity_bytes: 1000,
                policy: EvictionPolicy::Size
            })
        );
    }

    /// Each bad value is named in the error, and the token never is printed.
    #[test]
    fn invalid_values_are_named() {
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![BASE[1]], "UPSTASH_REDIS_REST_URL is not set"),
            (vec![BASE[0]], "UPSTASH_REDIS_REST_TOKEN is not set"),
            (
                vec![("UPSTASH_REDIS_REST_URL", "redis://x"), BASE[1]],
                "UPSTASH_REDIS_REST_URL is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("INDEX_TIMEOUT_MS", "0")],
                "INDEX_TIMEOUT_MS is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("KEY_PREFIX", "a b")],
                "KEY_PREFIX is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("ORIGIN_TIMEOUT_MS", "soon")],
                "ORIGIN_TIMEOUT_MS is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("DATASETS", "[1]")],
                "DATASETS is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("LEASE_MS", "20000")],
                "LEASE_MS is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("ADMIN_TOKEN", "short")],
                "ADMIN_TOKEN is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("CACHE_EVICTION", "fifo")],
                "CACHE_EVICTION is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("CACHE_CAPACITY_BYTES", "-1")],
                "CACHE_CAPACITY_BYTES is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("CHUNK_STORE", "gcs")],
                "CHUNK_STORE is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("CHUNK_STORE", "r2:")],
                "CHUNK_STORE is invalid",
            ),
            (
                vec![BASE[0], BASE[1], ("CHUNK_STORE", "s3")],
                "S3_ENDPOINT is not set",
            ),
            (
                [&BASE[..], &S3[..], &[("S3_ENDPOINT", "ftp://s3.test")]].concat(),
                "S3_ENDPOINT is invalid",
            ),
            (
                [&BASE[..], &S3[..], &[("S3_BUCKET", "No_Such")]].concat(),
                "S3_BUCKET is invalid",
            ),
            (
                [&BASE[..], &S3[..], &[("S3_ADDRESSING", "dns")]].concat(),
                "S3_ADDRESSING is invalid",
            ),
            (
                [&BASE[..], &S3[..4]].concat(),
                "S3_SECRET_ACCESS_KEY is not set",
            ),
        ];
        for (pairs, want) in cases {
            let err = Config::from_lookup(lookup(&pairs)).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err} should start with {want}");
        }
        let config = Config::from_lookup(lookup(&[
            BASE[0],
            BASE[1],
            ("ADMIN_TOKEN", "admin-secret-0123456789"),
        ]))
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("secret-token") && !printed.contains("admin-secret"));
    }
}
