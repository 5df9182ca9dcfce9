//! The stats endpoints: `GET /api/stats` (every dataset's counters, stored bytes, capacity and
//! fetch-time percentiles), `GET /api/stats/keys` (a dataset's cached keys sorted by the index,
//! paged) and `GET /api/stats/history` (the sweep's snapshots).

use serde_json::json;

use crate::cache::maintenance::StatsSnapshot;
use crate::error::Error;
use crate::http::response::HttpResponse;
use crate::http::route::query_pairs;
use crate::index::Index;
use crate::policy::capacity::Limit;
use crate::policy::listing::KeySort;
use crate::source::datasets::DatasetRegistry;

/// Default and largest page of `GET /api/stats/keys`.
pub const KEYS_PAGE: (u64, u64) = (100, 1_000);

/// `GET /api/stats`: one pipeline for every dataset.
///
/// # Errors
/// [`Error::Index`] when the index fails.
pub async fn all_stats(
    index: &impl Index,
    registry: &DatasetRegistry,
    total: Option<Limit>,
) -> Result<HttpResponse, Error> {
    let datasets = registry.datasets();
    let ids = registry.ids();
    let stats = index.cache_stats(&ids).await?;
    let (mut entries, mut bytes_stored) = (0, 0);
    let listing: Vec<serde_json::Value> = datasets
        .iter()
        .zip(stats)
        .map(|(config, stats)| {
            let c = &stats.counters;
            entries += c.entries;
            bytes_stored += c.bytes_stored;
            let reads = c.hits + c.misses;
            #[allow(clippy::cast_precision_loss)] // counters far below 2^52
            let hit_ratio = (reads > 0).then(|| c.hits as f64 / reads as f64);
            let mut entry = json!(c);
            entry["id"] = json!(config.id);
            entry["hit_ratio"] = json!(hit_ratio);
            entry["capacity_bytes"] = json!(config.capacity_bytes);
            entry["eviction"] = json!(config.eviction);
            entry["fetch_ms_p50"] = json!(stats.fetch_ms_p50);
            entry["fetch_ms_p95"] = json!(stats.fetch_ms_p95);
            entry
        })
        .collect();
    Ok(HttpResponse::json(
        200,
        &json!({
            "datasets": listing,
            "total": {
                "entries": entries,
                "bytes_stored": bytes_stored,
                "capacity_bytes": total.map(|t| t.capacity_bytes),
                "eviction": total.map(|t| t.policy),
            },
        }),
    ))
}

/// The `dataset` query parameter, which must name a known dataset.
fn dataset_param(pairs: &[(String, String)], registry: &DatasetRegistry) -> Result<String, Error> {
    let id = pairs
        .iter()
        .find(|(name, _)| name == "dataset")
        .map(|(_, value)| value.clone())
        .ok_or_else(|| Error::BadRequest("the dataset parameter is required".into()))?;
    registry.config(&id)?;
    Ok(id)
}

/// A whole-number query parameter within `1..=max` (or `0..` for offsets when `min` is 0).
fn number_param(
    pairs: &[(String, String)],
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, Error> {
    match pairs.iter().find(|(n, _)| n == name) {
        None => Ok(default),
        Some((_, value)) => value
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                Error::BadRequest(format!("{name} must be a whole number from {min} to {max}"))
            }),
    }
}

/// `GET /api/stats/keys?dataset=&sort=&order=&limit=&cursor=`.
///
/// The cursor is a rank in the chosen order: keys that move between pages while paging (a hit
/// changes `hits` and `last_access`) can be seen twice or not at all, as with any ranked listing.
///
/// # Errors
/// [`Error::BadRequest`] for a bad parameter, [`Error::NotFound`] for an unknown dataset,
/// [`Error::Index`] when the index fails.
pub async fn keys_listing(
    index: &impl Index,
    registry: &DatasetRegistry,
    query: &str,
) -> Result<HttpResponse, Error> {
    let pairs = query_pairs(query)?;
    let dataset = dataset_param(&pairs, registry)?;
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let sort = match param("sort") {
        None => KeySort::LastAccess,
        Some(name) => KeySort::parse(name).ok_or_else(|| {
            Error::BadRequest(format!(
                "sort must be hits, last_access, size, fetch_ms or created, not {name:?}"
            ))
        })?,
    };
    let descending = match param("order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "order must be asc or desc, not {other:?}"
            )))
        }
    };
    let limit = number_param(&pairs, "limit", KEYS_PAGE.0, 1, KEYS_PAGE.1)?;
    let offset = number_param(&pairs, "cursor", 0, 0, u64::from(u32::MAX))?;
    let page = index
        .list_keys(&dataset, sort, descending, offset, limit)
        .await?;
    let keys: Vec<serde_json::Value> = page
        .keys
        .iter()
        .map(|k| {
            json!({
                "key": k.key,
                "size": k.entry.size,
                "hits": k.entry.hits,
                "last_access_ms": k.entry.last_access_ms,
                "created_ms": k.entry.created_ms,
                "fetch_ms": k.entry.fetch_ms,
                "expires_ms": k.expires_ms,
                "checksum": k.entry.checksum,
                "object_key": k.entry.object_key,
            })
        })
        .collect();
    let next = offset + limit;
    Ok(HttpResponse::json(
        200,
        &json!({
            "dataset": dataset,
            "sort": sort.as_str(),
            "order": if descending { "desc" } else { "asc" },
            "keys": keys,
            "next_cursor": (next < page.accounted).then(|| next.to_string()),
        }),
    ))
}

/// `GET /api/stats/history?dataset=&limit=`: the sweep's snapshots, newest first.
///
/// # Errors
/// As [`keys_listing`].
pub async fn history(
    index: &impl Index,
    registry: &DatasetRegistry,
    query: &str,
) -> Result<HttpResponse, Error> {
    let pairs = query_pairs(query)?;
    let dataset = dataset_param(&pairs, registry)?;
    let limit = number_param(
        &pairs,
        "limit",
        crate::cache::maintenance::SNAPSHOTS_KEPT,
        1,
        crate::cache::maintenance::SNAPSHOTS_KEPT,
    )?;
    let snapshots: Vec<StatsSnapshot> = index
        .snapshots(&dataset, limit)
        .await?
        .iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    Ok(HttpResponse::json(
        200,
        &json!({ "dataset": dataset, "snapshots": snapshots }),
    ))
}

#[cfg(test)]
mod tests {
    use crate::http::testing::*;

    /// `/api/stats` reports each dataset's counters and hit ratio after reads.
    #[test]
    fn stats_report_counters() {
        let world = world();
        run(&world, "GET", "/zarr/demo/t/0");
        run(&world, "GET", "/zarr/demo/t/0");
        run(&world, "GET", "/zarr/demo/t/0");
        let body = json_body(&run(&world, "GET", "/api/stats"));
        let demo = dataset_row(&body, "demo");
        assert_eq!(demo["hits"], 2);
        assert_eq!(demo["misses"], 1);
        assert_eq!(demo["bytes_from_origin"], 3);
        assert_eq!(demo["bytes_from_cache"], 6);
        assert!((demo["hit_ratio"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(body["datasets"][0]["hit_ratio"], serde_json::Value::Null);
    }

    /// Stats count entries, bytes stored and fetch-time percentiles; the keys listing sorts by
    /// the index and pages with a cursor.
    #[test]
    fn stats_and_keys_listing() {
        let world = world();
        for (at, key) in [
            (1_000, "g/1"),
            (1_001, "g/0"),
            (1_002, "g/2"),
            (1_003, "g/0"),
        ] {
            read_at(&world, at, "demo", key);
        }
        let stats = json_body(&run(&world, "GET", "/api/stats"));
        let demo = stats["datasets"][1].clone();
        assert_eq!(demo["id"], "demo");
        assert_eq!(
            (demo["entries"].clone(), demo["bytes_stored"].clone()),
            (3.into(), 28.into())
        );
        assert_eq!(
            (demo["hits"].clone(), demo["misses"].clone()),
            (1.into(), 3.into())
        );
        assert_eq!(demo["fetch_ms_p50"], 0);
        assert_eq!(demo["capacity_bytes"], serde_json::Value::Null);
        assert_eq!(demo["eviction"], "lru");
        let page =
            |query: &str| json_body(&run(&world, "GET", &format!("/api/stats/keys?{query}")));
        let keys = |page: &serde_json::Value| -> Vec<String> {
            page["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["key"].as_str().unwrap().to_owned())
                .collect()
        };
        let first = page("dataset=demo&sort=size&order=asc&limit=2");
        assert_eq!(keys(&first), ["g/0", "g/1"]);
        assert_eq!(first["next_cursor"], "2");
        let second = page("dataset=demo&sort=size&order=asc&limit=2&cursor=2");
        assert_eq!(keys(&second), ["g/2"]);
        assert_eq!(second["next_cursor"], serde_json::Value::Null);
        assert_eq!(keys(&page("dataset=demo&sort=hits")), ["g/0", "g/2", "g/1"]);
        assert_eq!(
            keys(&page("dataset=demo")),
            ["g/0", "g/2", "g/1"],
            "last access, newest first"
        );
        assert_eq!(page("dataset=demo&sort=size")["keys"][0]["size"], 16);
        for (query, status) in [
            ("sort=size", 400),
            ("dataset=nope", 404),
            ("dataset=demo&sort=colour", 400),
            ("dataset=demo&order=up", 400),
            ("dataset=demo&limit=0", 400),
            ("dataset=demo&limit=1001", 400),
        ] {
            assert_eq!(
                run(&world, "GET", &format!("/api/stats/keys?{query}")).status,
                status,
                "{query}"
            );
        }
    }
}
