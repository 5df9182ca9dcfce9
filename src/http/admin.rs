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

use crate::cache::maintenance::{remove_keys, scheduled_sweep, EvictionScope};
use crate::cache::{read_chunk, CacheSource, ChunkRequest, WriteBack};
use crate::clock::Clock;
use crate::error::Error;
use crate::http::context::{key_plan, origin_auth, Backends};
use crate::http::response::HttpResponse;
use crate::http::route::AdminRoute;
use crate::http::source_files::CachedFiles;
use crate::index::entry::ClaimSelector;
use crate::index::Index;
use crate::origin::ByteRange;
use crate::platform::Platform;
use crate::policy::admission::glob_matches;
use crate::source::datasets::{parse_dataset, DatasetConfig, DatasetSource};
use crate::source::{KeySource, Source, SourceFiles};

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
pub async fn handle_admin<P: Platform>(
    route: &AdminRoute,
    body: &[u8],
    token: &str,
    backends: &Backends<'_, P>,
) -> Result<HttpResponse, Error> {
    match route {
        AdminRoute::Purge => purge(parse_body(body)?, token, backends).await,
        AdminRoute::Warm => warm(parse_body(body)?, token, backends).await,
        AdminRoute::Sweep => {
            let cache = backends.cache;
            let report = scheduled_sweep(cache, backends.datasets, *backends.settings, token).await;
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
        AdminRoute::BumpVersion { dataset } => {
            let config = backends.datasets.config(dataset)?;
            if config.zarr.is_none() {
                return Err(Error::BadRequest(format!(
                    "dataset {dataset} is not versioned (only kind zarr is)"
                )));
            }
            let now_ms = backends.cache.clock.now_ms();
            let generation = backends
                .cache
                .index
                .bump_source_version(dataset, now_ms)
                .await?;
            backends.datasets.set_generation(dataset, generation);
            Ok(HttpResponse::json(
                200,
                &json!({"id": dataset, "generation": generation}),
            ))
        }
    }
}

/// `POST /api/admin/purge`.
async fn purge<P: Platform>(
    request: PurgeRequest,
    token: &str,
    backends: &Backends<'_, P>,
) -> Result<HttpResponse, Error> {
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
async fn delete_dataset<P: Platform>(
    dataset: &str,
    token: &str,
    backends: &Backends<'_, P>,
) -> Result<HttpResponse, Error> {
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

/// The keys of `source` a warm job selects (those whose bytes live at a URL, explicit and
/// generated, each once) with where they live, at most `limit`; `true` when more matched.
async fn matching_keys(
    source: &Source,
    request: &WarmRequest,
    limit: usize,
    files: &impl SourceFiles,
) -> Result<(Vec<(String, String, Option<ByteRange>)>, bool), Error> {
    let wanted = |key: &str| {
        request.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && request
                .pattern
                .as_deref()
                .is_none_or(|p| glob_matches(p, key))
    };
    let (keys, truncated) = source.chunk_keys(&wanted, limit, files).await?;
    let mut matched = Vec::with_capacity(keys.len());
    for key in keys {
        let answer = source.answer(&key, files).await?;
        if let Some((url, range)) = answer.location() {
            matched.push((key, url.to_owned(), range));
        }
    }
    Ok((matched, truncated))
}

/// [`matching_keys`] with a parquet set's record files read through the cache as the walk
/// needs them, and what those reads write back run before it returns (one that fails to store
/// is read again by the next walk: not a key's failure).
async fn matching_keys_cached<P: Platform>(
    source: &Source,
    request: &WarmRequest,
    limit: usize,
    (config, backends, scope): (&DatasetConfig, &Backends<'_, P>, &EvictionScope<'_>),
) -> Result<(Vec<(String, String, Option<ByteRange>)>, bool), Error> {
    let files = CachedFiles::new(config, backends, scope.token);
    let matched = matching_keys(source, request, limit, &files).await;
    for write_back in files.into_write_backs() {
        let _ = backends.cache.write_back(write_back, scope).await;
    }
    matched
}

/// What happened to one key of a warm job.
enum Warmed {
    Fetched,
    Skipped,
    Failed(String),
}

/// `POST /api/admin/warm`: read matching ranged keys through the cache (bounded concurrency)
/// and store them before answering.
async fn warm<P: Platform>(
    request: WarmRequest,
    token: &str,
    backends: &Backends<'_, P>,
) -> Result<HttpResponse, Error> {
    let concurrency = request
        .concurrency
        .unwrap_or(WARM_CONCURRENCY.0)
        .clamp(1, WARM_CONCURRENCY.1);
    let limit = request.limit.unwrap_or(WARM_LIMIT.0).clamp(1, WARM_LIMIT.1);
    let config = backends.datasets.config(&request.dataset)?;
    // A zarr store's grid comes from its version document: the walkable source loads it.
    let (refs, clock) = (backends.refs_source, &backends.cache.clock);
    let source = backends
        .datasets
        .walkable_source(&request.dataset, refs, clock)
        .await?;
    let ids = backends.datasets.ids();
    let now_ms = backends.cache.clock.now_ms();
    let scope = EvictionScope {
        datasets: &ids,
        now_ms,
        token,
        total_evictions: backends.settings.total_evictions,
    };
    let (matched, truncated) =
        matching_keys_cached(&source, &request, limit, (&config, backends, &scope)).await?;
    let auth = origin_auth(&config, backends)?;
    let outcomes: Vec<(String, Warmed)> = stream::iter(matched.iter().enumerate())
        .map(|(i, (key, url, range))| {
            let (config, scope, auth) = (&config, &scope, &auth);
            async move {
                let holder = format!("{token}-{i}");
                let plan = key_plan(config, key, backends);
                let chunk_request = ChunkRequest {
                    dataset: &config.id,
                    key,
                    url,
                    hosts: &config.hosts,
                    range: *range,
                    holder: &holder,
                    auth: auth.as_ref(),
                    rules: plan.rules,
                    version: plan.version,
                    checks: None,
                    decode: None,
                };
                let read =
                    read_chunk(chunk_request, plan.policy, backends.cache, backends.flights).await;
                let outcome = match read {
                    Err(e) => Warmed::Failed(e.to_string()),
                    Ok((chunk, write_backs)) => {
                        if let Some(generation) = chunk.generation {
                            backends.datasets.set_generation(&config.id, generation);
                        }
                        let write_backs: Vec<WriteBack> = write_backs
                            .into_iter()
                            .map(|w| w.admitted_by(&config.admission))
                            .collect();
                        let stores = write_backs.iter().any(WriteBack::stores);
                        let mut failure = None;
                        for write_back in write_backs {
                            if let Err(e) = backends.cache.write_back(write_back, scope).await {
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
            authorize(header, token).map_err(|e| crate::http::response::error_status(&e).0)
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

    mod through_the_handler {
        use crate::http::testing::*;

        /// Without the right bearer token the admin API refuses (401/403) and changes nothing.
        #[test]
        fn admin_api_needs_the_token() {
            let world = world();
            read_at(&world, 1_000, "demo", "g/0");
            let purge = br#"{"dataset": "demo"}"#;
            for (headers, status) in [
                (vec![], 401),
                (vec![("authorization", "Basic eDp5")], 401),
                (
                    vec![("authorization", "Bearer wrong-token-0123456789")],
                    403,
                ),
            ] {
                let refused =
                    request_with_body(&world, "POST", "/api/admin/purge", &headers, purge);
                assert_eq!(refused.status, status);
                if status == 401 {
                    assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
                }
                let unknown = request_with_body(&world, "GET", "/api/admin/nothing", &headers, b"");
                assert_eq!(unknown.status, status, "refused before routing");
            }
            assert_eq!(world.index.cached_keys("demo"), ["g/0"]);
            assert_eq!(read_at(&world, 2_000, "demo", "g/0"), "HIT");
            assert_eq!(admin(&world, "GET", "/api/admin/nothing", "").0, 404);
            assert_eq!(admin(&world, "POST", "/api/admin/purge", "{").0, 400);
        }

        /// Purging a key, a prefix or a dataset removes entries and objects, but an object another
        /// dataset still holds (same source range) stays.
        #[test]
        fn purge_removes_entries_and_unheld_objects() {
            let world = world_with(&dataset("twin", ""));
            for key in ["g/0", "g/1", "t/0"] {
                read_at(&world, 1_000, "demo", key);
            }
            assert_eq!(read_at(&world, 1_001, "twin", "g/0"), "HIT", "adopted");
            let (status, report) = admin(
                &world,
                "POST",
                "/api/admin/purge",
                r#"{"dataset": "demo", "key": "g/0"}"#,
            );
            assert_eq!(status, 200);
            assert_eq!(report["entries_removed"], 1);
            assert_eq!(report["objects_deleted"], 0, "twin still holds it");
            assert_eq!(read_at(&world, 1_002, "twin", "g/0"), "HIT");
            let (_, report) = admin(
                &world,
                "POST",
                "/api/admin/purge",
                r#"{"dataset": "demo", "prefix": "g/"}"#,
            );
            assert_eq!(
                (
                    report["entries_removed"].clone(),
                    report["bytes_freed"].clone()
                ),
                (1.into(), 8.into())
            );
            assert_eq!(world.index.cached_keys("demo"), ["t/0"]);
            let (_, report) = admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "twin"}"#);
            assert_eq!(report["objects_deleted"], 1);
            let (_, report) = admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "demo"}"#);
            assert_eq!(report["objects_deleted"], 1);
            assert_eq!(world.store.len(), 0);
            assert!(world.index.entries.borrow().is_empty());
            assert_eq!(read_at(&world, 2_000, "demo", "g/0"), "MISS");
            assert_eq!(
                admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "nope"}"#).0,
                404
            );
        }

        /// Warming fetches and stores matching ranged keys before answering; a second warm skips
        /// them; metadata and inline keys are never matched.
        #[test]
        fn warm_prefetches_matching_keys() {
            let world = world();
            let body = r#"{"dataset": "demo", "prefix": "g/", "concurrency": 2}"#;
            let (status, report) = admin(&world, "POST", "/api/admin/warm", body);
            assert_eq!(status, 200, "{report}");
            assert_eq!(
                (
                    report["matched"].clone(),
                    report["fetched"].clone(),
                    report["skipped"].clone()
                ),
                (3.into(), 3.into(), 0.into())
            );
            let (_, again) = admin(&world, "POST", "/api/admin/warm", body);
            assert_eq!(
                (again["fetched"].clone(), again["skipped"].clone()),
                (0.into(), 3.into())
            );
            let requests = world.origin.requests.borrow().len();
            for key in ["g/0", "g/1", "g/2"] {
                assert_eq!(read_at(&world, 2_000, "demo", key), "HIT");
            }
            assert_eq!(world.origin.requests.borrow().len(), requests);
            let (_, all) = admin(
                &world,
                "POST",
                "/api/admin/warm",
                r#"{"dataset": "demo", "pattern": "*"}"#,
            );
            assert_eq!(all["matched"], 6, "t/0, short/0, far/0 and g/*: {all}");
            assert_eq!(
                all["failed"], 2,
                "short/0 is short, far/0 is not allowed: {all}"
            );
        }

        /// Datasets registered at run time are served at once, listed with their source, and
        /// removed with their cache; static ones cannot be removed.
        #[test]
        fn runtime_datasets_lifecycle() {
            let world = world();
            let definition = r#"{"refs": "http://origin.test/refs.json", "capacity_bytes": 100}"#;
            assert_eq!(
                admin(&world, "PUT", "/api/admin/datasets/fresh", definition).0,
                201
            );
            assert_eq!(
                admin(&world, "PUT", "/api/admin/datasets/fresh", definition).0,
                200
            );
            assert_eq!(
                admin(
                    &world,
                    "PUT",
                    "/api/admin/datasets/bad",
                    r#"{"refs": "ftp://x"}"#
                )
                .0,
                400
            );
            assert_eq!(read_at(&world, 1_000, "fresh", "g/0"), "MISS");
            let (_, listing) = admin(&world, "GET", "/api/admin/datasets", "");
            let fresh = dataset_row(&listing, "fresh");
            assert_eq!(fresh["source"], "runtime");
            assert_eq!(fresh["config"]["capacity_bytes"], 100);
            let (status, removed) = admin(&world, "DELETE", "/api/admin/datasets/fresh", "");
            assert_eq!(status, 200);
            assert_eq!(removed["purged"]["entries_removed"], 1);
            assert_eq!(run(&world, "GET", "/zarr/fresh/.zgroup").status, 404);
            assert!(world.index.runtime.borrow().is_empty());
            assert_eq!(
                admin(&world, "DELETE", "/api/admin/datasets/demo", "").0,
                409
            );
            assert_eq!(
                admin(&world, "DELETE", "/api/admin/datasets/fresh", "").0,
                404
            );
        }

        /// The sweep removes expired entries (and their objects), deletes objects no entry holds
        /// once they are older than the grace period, enforces capacities, and snapshots stats.
        #[test]
        fn sweep_removes_expired_orphans_and_excess() {
            let world = world_with(&dataset("short", r#", "ttl_seconds": 1"#));
            read_at(&world, 1_000, "short", "g/0");
            read_at(&world, 1_000, "demo", "g/1");
            block_on(world.store.put(
                "t/v1/ab/orphan",
                vec![1, 2, 3],
                &crate::store::ObjectMeta::default(),
            ))
            .unwrap();
            world.store.now.set(5_000);
            block_on(world.store.put(
                "t/v1/cd/young",
                vec![1],
                &crate::store::ObjectMeta::default(),
            ))
            .unwrap();
            world.index.now_ms.set(3_000);
            world.clock.now.set(5_500);
            let (status, report) = admin(&world, "POST", "/api/admin/sweep", "");
            assert_eq!(status, 200, "{report}");
            let short = dataset_row(&report, "short");
            assert_eq!(short["expired_removed"], 1);
            assert_eq!(short["objects_deleted"], 1);
            assert_eq!(report["orphans_deleted"], 1, "{report}");
            assert!(
                world.store.contains("t/v1/cd/young"),
                "within the grace period"
            );
            assert!(!world.store.contains("t/v1/ab/orphan"));
            assert_eq!(world.index.cached_keys("demo"), ["g/1"]);
            let history = json_body(&run(&world, "GET", "/api/stats/history?dataset=demo"));
            assert_eq!(history["snapshots"][0]["entries"], 1);
            assert_eq!(history["snapshots"][0]["misses"], 1);
        }

        /// The deployment-wide capacity evicts across datasets by its own policy.
        #[test]
        fn total_capacity_evicts_across_datasets() {
            let mut world = world_with(&dataset("other", ""));
            world.total_capacity = Some(Limit {
                capacity_bytes: 20,
                policy: crate::policy::eviction::EvictionPolicy::Lru,
            });
            read_at(&world, 1_000, "demo", "g/1");
            read_at(&world, 2_000, "other", "t/0");
            read_at(&world, 3_000, "other", "g/2");
            assert!(
                world.index.cached_keys("demo").is_empty(),
                "oldest, in another dataset"
            );
            assert_eq!(world.index.cached_keys("other"), ["g/2", "t/0"]);
            let total = json_body(&run(&world, "GET", "/api/stats"))["total"].clone();
            assert_eq!(total["bytes_stored"], 19);
            assert_eq!(total["capacity_bytes"], 20);
        }

        /// A dataset that is no longer configured keeps its cached keys until they expire (and can
        /// be purged meanwhile); the sweep then removes them, deletes their objects and forgets it.
        #[test]
        fn unconfigured_datasets_expire_and_are_forgotten() {
            let world = world();
            let definition = r#"{"refs": "http://origin.test/refs.json", "ttl_seconds": 60}"#;
            for id in ["old", "older"] {
                admin(
                    &world,
                    "PUT",
                    &format!("/api/admin/datasets/{id}"),
                    definition,
                );
                read_at(&world, 1_000, id, "g/2");
                read_at(&world, 1_000, id, "t/0");
                // Removed from the configuration without a purge (as an edited DATASETS would).
                block_on(world.index.remove_runtime_dataset(id)).unwrap();
                world.registry.remove_runtime(id);
            }
            assert_eq!(world.store.len(), 2, "both datasets share the objects");
            let (status, purged) = admin(
                &world,
                "POST",
                "/api/admin/purge",
                r#"{"dataset": "older", "key": "t/0"}"#,
            );
            assert_eq!((status, purged["entries_removed"].clone()), (200, 1.into()));
            let (_, report) = admin(&world, "POST", "/api/admin/sweep", "");
            assert_eq!(
                report["forgotten_datasets"],
                serde_json::json!([]),
                "not expired yet"
            );
            world.index.now_ms.set(70_000);
            world.clock.now.set(70_000);
            let (_, report) = admin(&world, "POST", "/api/admin/sweep", "");
            assert_eq!(
                report["forgotten_datasets"],
                serde_json::json!(["old", "older"])
            );
            assert_eq!(world.store.len(), 0);
            assert!(world.index.cached_keys("old").is_empty());
            assert_eq!(
                admin(&world, "POST", "/api/admin/purge", r#"{"dataset": "old"}"#).0,
                404
            );
        }
    }
}
