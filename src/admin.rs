//! The admin API, behind `Authorization: Bearer <ADMIN_TOKEN>`: purge, warm, sweep now, and the
//! datasets registered at run time (kept in the index, merged with `DATASETS`).
//!
//! Generic over the backends like `service`; [`authorize`] runs before any admin route is even
//! parsed, so a refused call changes and reveals nothing.

use futures::stream::{self, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::backend::{ChunkStore, Clock, Index, Origin, ReferenceSource};
use crate::cache_entry::ClaimSelector;
use crate::cache_path::{read_chunk, run_write_back, CacheSource, ChunkRequest, WriteBack};
use crate::datasets::{parse_dataset, DatasetSource};
use crate::error::Error;
use crate::eviction::glob_matches;
use crate::maintenance::{remove_keys, scheduled_sweep, EvictionScope, SweepSettings};
use crate::response::HttpResponse;
use crate::route::AdminRoute;
use crate::service::{cache_policy, Backends};
use crate::zarr_store::{answer_key, KeyAnswer};

/// Default and largest `concurrency` of a warm job.
pub const WARM_CONCURRENCY: (usize, usize) = (6, 32);
/// Default and largest `limit` (keys) of a warm job: each key costs a handful of subrequests.
pub const WARM_LIMIT: (usize, usize) = (500, 1_000);
/// Failures listed in a warm job's answer (all are counted).
const WARM_FAILURES_LISTED: usize = 20;
/// The largest admin request body.
pub const MAX_ADMIN_BODY_BYTES: usize = 256 * 1024;

/// Checks the `Authorization` header against the admin token, in constant time.
///
/// # Errors
/// [`Error::Unauthorized`] without a bearer token; [`Error::Forbidden`] for a wrong one, or when
/// no `ADMIN_TOKEN` is configured (the admin API is off).
pub fn authorize(authorization: Option<&str>, admin_token: Option<&str>) -> Result<(), Error> {
    let Some(expected) = admin_token else {
        return Err(Error::Forbidden(
            "the admin API is off: set the ADMIN_TOKEN secret".into(),
        ));
    };
    let presented = authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(presented) = presented else {
        return Err(Error::Unauthorized(
            "send Authorization: Bearer <ADMIN_TOKEN>".into(),
        ));
    };
    if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(Error::Forbidden("wrong admin token".into()))
    }
}

/// Parses a JSON request body.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.len() > MAX_ADMIN_BODY_BYTES {
        return Err(Error::BadRequest(format!(
            "body larger than {MAX_ADMIN_BODY_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    dataset: String,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmRequest {
    dataset: String,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Runs one admin route (already authorized).
///
/// # Errors
/// Whatever the route fails with; the service turns it into a JSON error.
pub async fn handle_admin<I, S, O, C, R>(
    route: &AdminRoute,
    body: &[u8],
    token: &str,
    backends: &Backends<'_, I, S, O, C, R>,
) -> Result<HttpResponse, Error>
where
    I: Index + 'static,
    S: ChunkStore + 'static,
    O: Origin + 'static,
    C: Clock + 'static,
    R: ReferenceSource,
{
    match route {
        AdminRoute::Purge => purge(parse_body(body)?, token, backends).await,
        AdminRoute::Warm => warm(parse_body(body)?, token, backends).await,
        AdminRoute::Sweep => {
            let cache = backends.cache;
            let report = scheduled_sweep(
                cache,
                backends.datasets,
                SweepSettings {
                    total: backends.total_capacity,
                    orphan_grace_ms: backends.orphan_grace_ms,
                    orphan_pages: backends.orphan_pages,
                    total_evictions: backends.total_evictions,
                },
                token,
            )
            .await;
            Ok(HttpResponse::json(200, &report))
        }
        AdminRoute::ListDatasets => {
            let listing: Vec<_> = backends
                .datasets
                .datasets()
                .iter()
                .map(|d| {
                    let source = backends.datasets.source(&d.id).map(DatasetSource::as_str);
                    json!({"id": d.id, "source": source, "config": d.definition})
                })
                .collect();
            Ok(HttpResponse::json(200, &json!({ "datasets": listing })))
        }
        AdminRoute::PutDataset { dataset } => {
            let definition: serde_json::Value = parse_body(body)?;
            let config = parse_dataset(dataset, definition.clone()).map_err(Error::BadRequest)?;
            let created = backends
                .cache
                .index
                .put_runtime_dataset(dataset, &definition.to_string())
                .await?;
            backends.datasets.put_runtime(config);
            Ok(HttpResponse::json(
                if created { 201 } else { 200 },
                &json!({"id": dataset, "source": "runtime", "config": definition}),
            ))
        }
        AdminRoute::DeleteDataset { dataset } => delete_dataset(dataset, token, backends).await,
    }
}

/// `POST /api/admin/purge`.
async fn purge<I, S, O, C, R>(
    request: PurgeRequest,
    token: &str,
    backends: &Backends<'_, I, S, O, C, R>,
) -> Result<HttpResponse, Error>
where
    I: Index,
    S: ChunkStore,
    C: Clock,
{
    // A dataset no longer configured can still be purged while it has cached keys.
    if let Err(unknown) = backends.datasets.config(&request.dataset) {
        let cached = backends.cache.index.cached_datasets().await?;
        if !cached.contains(&request.dataset) {
            return Err(unknown);
        }
    }
    let selector = match (request.key, request.prefix) {
        (Some(_), Some(_)) => {
            return Err(Error::BadRequest("give a key or a prefix, not both".into()))
        }
        (Some(key), None) if !key.is_empty() => ClaimSelector::Key(key),
        (None, Some(prefix)) if !prefix.is_empty() => ClaimSelector::Prefix(prefix),
        (None, None) => ClaimSelector::All,
        _ => return Err(Error::BadRequest("key and prefix must not be empty".into())),
    };
    let cache = backends.cache;
    let report = remove_keys(
        &cache.index,
        &cache.store,
        &request.dataset,
        &selector,
        cache.clock.now_ms(),
        token,
    )
    .await?;
    let mut body = json!(report);
    body["dataset"] = json!(request.dataset);
    Ok(HttpResponse::json(200, &body))
}

/// `DELETE /api/admin/datasets/{id}`: purge the dataset's cache, then forget the run-time
/// definition (a static definition of the same id takes over again).
async fn delete_dataset<I, S, O, C, R>(
    dataset: &str,
    token: &str,
    backends: &Backends<'_, I, S, O, C, R>,
) -> Result<HttpResponse, Error>
where
    I: Index,
    S: ChunkStore,
    C: Clock,
{
    match backends.datasets.source(dataset) {
        None => return Err(Error::NotFound(format!("no dataset {dataset:?}"))),
        Some(DatasetSource::Static) => {
            return Err(Error::Conflict(format!(
                "{dataset} is defined in DATASETS, the worker's configuration; change it there"
            )))
        }
        Some(DatasetSource::Runtime) => {}
    }
    let cache = backends.cache;
    let purged = remove_keys(
        &cache.index,
        &cache.store,
        dataset,
        &ClaimSelector::All,
        cache.clock.now_ms(),
        token,
    )
    .await?;
    cache.index.remove_runtime_dataset(dataset).await?;
    let static_remains = backends.datasets.is_static(dataset);
    if !static_remains && purged.complete {
        cache.index.drop_dataset_records(dataset).await?;
    }
    backends.datasets.remove_runtime(dataset);
    Ok(HttpResponse::json(
        200,
        &json!({
            "id": dataset,
            "removed": true,
            "static_definition_remains": static_remains,
            "purged": purged,
        }),
    ))
}

/// The ranged keys of `refs` a warm job selects (explicit and generated, each once), at most
/// `limit`; `true` when more matched.
fn matching_keys(
    refs: &crate::kerchunk::References,
    request: &WarmRequest,
    limit: usize,
) -> (
    Vec<(String, String, Option<crate::backend::ByteRange>)>,
    bool,
) {
    let wanted = |key: &str| {
        request.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && request
                .pattern
                .as_deref()
                .is_none_or(|p| glob_matches(p, key))
    };
    let explicit = refs.explicit_keys().map(str::to_owned);
    let generated = refs.gen_patterns().flat_map(|p| p.keys());
    let mut matched = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for key in explicit.chain(generated) {
        if !wanted(&key) || seen.contains(&key) {
            continue;
        }
        if let Ok(KeyAnswer::Fetch { url, range }) = answer_key(refs, &key) {
            if matched.len() == limit {
                return (matched, true);
            }
            seen.insert(key.clone());
            matched.push((key, url, range));
        }
    }
    (matched, false)
}

/// What happened to one key of a warm job.
enum Warmed {
    Fetched,
    Skipped,
    Failed(String),
}

/// `POST /api/admin/warm`: read matching ranged keys through the cache (bounded concurrency)
/// and store them before answering.
async fn warm<I, S, O, C, R>(
    request: WarmRequest,
    token: &str,
    backends: &Backends<'_, I, S, O, C, R>,
) -> Result<HttpResponse, Error>
where
    I: Index + 'static,
    S: ChunkStore + 'static,
    O: Origin + 'static,
    C: Clock + 'static,
    R: ReferenceSource,
{
    let concurrency = request
        .concurrency
        .unwrap_or(WARM_CONCURRENCY.0)
        .clamp(1, WARM_CONCURRENCY.1);
    let limit = request.limit.unwrap_or(WARM_LIMIT.0).clamp(1, WARM_LIMIT.1);
    let config = backends.datasets.config(&request.dataset)?;
    let refs = backends
        .datasets
        .references(
            &request.dataset,
            backends.refs_source,
            &backends.cache.clock,
        )
        .await?;
    let (matched, truncated) = matching_keys(&refs, &request, limit);
    let policy = cache_policy(&config, backends);
    let ids = backends.datasets.ids();
    let now_ms = backends.cache.clock.now_ms();
    let scope = EvictionScope {
        datasets: &ids,
        now_ms,
        token,
        total_evictions: backends.total_evictions,
    };
    let outcomes: Vec<(String, Warmed)> = stream::iter(matched.iter().enumerate())
        .map(|(i, (key, url, range))| {
            let (config, scope) = (&config, &scope);
            async move {
                let holder = format!("{token}-{i}");
                let chunk_request = ChunkRequest {
                    dataset: &config.id,
                    key,
                    url,
                    hosts: &config.hosts,
                    range: *range,
                    holder: &holder,
                };
                let read =
                    read_chunk(chunk_request, policy, backends.cache, backends.flights).await;
                let outcome = match read {
                    Err(e) => Warmed::Failed(e.to_string()),
                    Ok((chunk, write_backs)) => {
                        let write_backs: Vec<WriteBack> = write_backs
                            .into_iter()
                            .map(|w| w.admitted_by(&config.admission))
                            .collect();
                        let stores = write_backs.iter().any(WriteBack::stores);
                        let mut failure = None;
                        for write_back in write_backs {
                            let cache = backends.cache;
                            if let Err(e) =
                                run_write_back(write_back, &cache.index, &cache.store, scope).await
                            {
                                failure = Some(e);
                            }
                        }
                        match (chunk.source, stores, failure) {
                            (_, _, Some(e)) => Warmed::Failed(e),
                            (CacheSource::Miss, true, None) => Warmed::Fetched,
                            _ => Warmed::Skipped,
                        }
                    }
                };
                (key.clone(), outcome)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let (mut fetched, mut skipped, mut failures) = (0, 0, Vec::new());
    for (key, outcome) in outcomes {
        match outcome {
            Warmed::Fetched => fetched += 1,
            Warmed::Skipped => skipped += 1,
            Warmed::Failed(error) => failures.push(json!({"key": key, "error": error})),
        }
    }
    let failed = failures.len();
    failures.truncate(WARM_FAILURES_LISTED);
    Ok(HttpResponse::json(
        200,
        &json!({
            "dataset": request.dataset,
            "matched": matched.len(),
            "truncated": truncated,
            "fetched": fetched,
            "skipped": skipped,
            "failed": failed,
            "failures": failures,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No token configured: 403; no or malformed header: 401; wrong token: 403; right: ok.
    #[test]
    fn authorize_table() {
        let token = Some("0123456789abcdef");
        let status = |header, token| {
            authorize(header, token).map_err(|e| crate::response::error_status(&e).0)
        };
        assert_eq!(status(Some("Bearer 0123456789abcdef"), token), Ok(()));
        assert_eq!(status(Some("bearer  0123456789abcdef "), token), Ok(()));
        assert_eq!(status(None, token), Err(401));
        assert_eq!(status(Some("Basic abc"), token), Err(401));
        assert_eq!(status(Some("0123456789abcdef"), token), Err(401));
        assert_eq!(status(Some("Bearer 0123456789abcdeF"), token), Err(403));
        assert_eq!(status(Some("Bearer 0123456789abcde"), token), Err(403));
        assert_eq!(status(Some("Bearer x"), None), Err(403));
    }
}
