//! What one request may use: the platform's backends, the isolate's state (datasets, single
//! flight, health) and the deployment's settings.

use std::rc::Rc;

use crate::cache::{CacheBackends, CachePolicy, Flights};
use crate::error::{ConfigError, Error};
use crate::http::health::HealthCache;
use crate::origin::auth::OriginAuth;
use crate::origin::sigv4::Credentials;
use crate::platform::Platform;
use crate::settings::Settings;
use crate::source::datasets::{DatasetConfig, DatasetRegistry};

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
    }
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
    /// The request body (read only for the admin API).
    pub body: &'a [u8],
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// A value unique to this request (the glue draws it at random), for probe keys and leases.
    pub nonce: &'a str,
    /// The `Range` header.
    pub range: Option<&'a str>,
    /// The `If-None-Match` header.
    pub if_none_match: Option<&'a str>,
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
