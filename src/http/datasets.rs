//! Dataset listings: `/api/datasets` and `/zarr/{dataset}` describe a dataset (configuration,
//! load state, variables; a `files` dataset its prefix and block size).

use serde_json::json;

use crate::http::context::Backends;
use crate::platform::Platform;
use crate::source::datasets::{DatasetConfig, LoadState};
use crate::source::zarr::variables;
use crate::source::{KeySource, Source};

/// One dataset for listings: its configuration, load state, variables and cache counters.
pub async fn describe_dataset<P: Platform>(
    config: &DatasetConfig,
    backends: &Backends<'_, P>,
) -> serde_json::Value {
    if let Some(files) = &config.files {
        // Block mode: files under a prefix, nothing to load.
        return json!({
            "id": config.id,
            "kind": config.kind,
            "description": config.description,
            "files": format!("/files/{}/", config.id),
            "url": files.base,
            "block_size": files.block_size,
            "ttl_seconds": config.ttl_seconds,
            "allowed_hosts": config.allowed_hosts,
            "capacity_bytes": config.capacity_bytes,
            "eviction": config.eviction,
            "state": "ready",
        });
    }
    let loaded = match backends
        .datasets
        .walkable_source(&config.id, backends.refs_source, &backends.cache.clock)
        .await
    {
        // A zarr store lists the arrays of its version document.
        Ok(Source::Zarr(store)) => Ok((std::rc::Rc::new(store.variables()), None)),
        Ok(source) => variables(&source)
            .await
            .map(|variables| (variables, source.key_count())),
        Err(error) => Err(error),
    };
    let mut entry = json!({
        "id": config.id,
        "kind": config.kind,
        "description": config.description,
        "zarr": format!("/zarr/{}", config.id),
        "ttl_seconds": config.ttl_seconds,
        "allowed_hosts": config.allowed_hosts,
        "capacity_bytes": config.capacity_bytes,
        "eviction": config.eviction,
    });
    if config.zarr.is_none() {
        // The other views of a reference dataset (`http::route::View`).
        entry["views"] = json!({
            "decoded": format!("/zarr/{}@decoded", config.id),
            "v3": format!("/zarr/{}@v3", config.id),
            "decoded_v3": format!("/zarr/{}@decoded-v3", config.id),
        });
    }
    if let Some(zarr) = &config.zarr {
        entry["url"] = json!(zarr.root);
        entry["zarr_format"] = json!(zarr.format.number());
        entry["metadata_ttl_seconds"] = json!(zarr.metadata_ttl_seconds);
        entry["absent_ttl_seconds"] = json!(zarr.absent_ttl_seconds);
        entry["generation"] = json!(backends.datasets.generation(&config.id));
    }
    if let Some(routes) = &config.routes {
        entry["routes"] = json!(format!("/routes/{}/", config.id));
        let cached: Vec<_> = routes
            .cache
            .iter()
            .map(|r| json!({"path": r.path, "ttl_seconds": r.ttl_seconds}))
            .collect();
        entry["cached_routes"] = json!(cached);
    }
    match loaded {
        Ok((variables, references)) => {
            entry["state"] = json!("loaded");
            entry["references"] = json!(references);
            entry["variables"] = json!(*variables);
        }
        Err(error) => {
            entry["state"] = json!("error");
            entry["error"] = json!(error.to_string());
            if let LoadState::Loaded = backends.datasets.state(&config.id) {
                entry["state"] = json!("loaded");
            }
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use crate::http::testing::*;

    /// The datasets listing shows variables of loaded datasets and the error of broken ones.
    #[test]
    fn datasets_listing() {
        let world = world();
        let body = json_body(&run(&world, "GET", "/api/datasets"));
        let datasets = body["datasets"].as_array().unwrap();
        assert_eq!(datasets.len(), 2);
        let broken = &datasets[0];
        assert_eq!(broken["id"], "broken");
        assert_eq!(broken["state"], "error");
        assert!(broken["error"].as_str().unwrap().contains("broken"));
        let demo = &datasets[1];
        assert_eq!(demo["state"], "loaded");
        assert_eq!(demo["allowed_hosts"], serde_json::json!(["origin.test"]));
        let t = &demo["variables"][0];
        assert_eq!(t["name"], "t");
        assert_eq!(t["shape"], serde_json::json!([6]));
        assert_eq!(t["dimensions"], serde_json::json!(["x"]));
        assert_eq!(t["dtype"], "|u1");
    }

    /// References load once per isolate, not once per request.
    #[test]
    fn references_load_once() {
        let world = world();
        for _ in 0..3 {
            assert_eq!(run(&world, "GET", "/zarr/demo/t/1").status, 200);
        }
        assert_eq!(world.refs.fetches.get(), 1);
    }

    /// A warm hit stays one index round trip however long since the run-time datasets were
    /// read; a change made on another instance arrives with the next lookup, and an unknown id
    /// is looked up in the index.
    #[test]
    fn runtime_datasets_propagate_without_extra_round_trips() {
        let world = world();
        read_at(&world, 1_000, "demo", "g/0");
        assert_eq!(read_at(&world, 1_001, "demo", "g/0"), "HIT");
        let before = world.index.round_trips.get();
        assert_eq!(read_at(&world, 900_000, "demo", "g/0"), "HIT");
        assert_eq!(world.index.round_trips.get() - before, 1, "one lookup");
        let definition = r#"{"refs": "http://origin.test/refs.json"}"#;
        block_on(world.index.put_runtime_dataset("elsewhere", definition)).unwrap();
        read_at(&world, 900_001, "demo", "g/0");
        assert!(
            world.registry.config("elsewhere").is_ok(),
            "seen via the lookup"
        );
        block_on(world.index.put_runtime_dataset("later", definition)).unwrap();
        world.clock.now.set(902_000);
        assert_eq!(run(&world, "GET", "/zarr/later/.zgroup").status, 200);
    }
}
