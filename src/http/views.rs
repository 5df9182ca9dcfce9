//! Tests of the dataset views through the request handler: the decoded view
//! (`/zarr/{dataset}@decoded/…`: rewritten metadata, decoded chunks cached as entries of their
//! own, codec errors) and the v3 views (`@v3`, `@decoded-v3`: `zarr.json`, `c/…` keys).

use crate::http::testing::*;

fn packed_world() -> World {
    world_with(r#", "packed": {"refs": "http://origin.test/packed.json", "edge_ttl_seconds": 0}"#)
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `.zarray` and `.zmetadata` of the decoded view have no codecs and little-endian dtypes,
/// and the rest of each is as the source has it.
#[test]
fn decoded_metadata_has_no_codecs() {
    let world = packed_world();
    let zarray = json_body(&run(&world, "GET", "/zarr/packed@decoded/temp/.zarray"));
    assert_eq!(zarray["compressor"], serde_json::Value::Null);
    assert_eq!(zarray["filters"], serde_json::Value::Null);
    assert_eq!(
        (zarray["dtype"].as_str(), zarray["shape"][0].as_u64()),
        (Some("<f4"), Some(5))
    );
    assert_eq!(zarray["fill_value"], -9999.0);
    let meta = json_body(&run(&world, "GET", "/zarr/packed@decoded/.zmetadata"));
    assert_eq!(meta["metadata"]["big/.zarray"]["dtype"], "<i2");
    assert_eq!(
        meta["metadata"]["big/.zarray"]["compressor"],
        serde_json::Value::Null
    );
    assert_eq!(
        meta["metadata"]["temp/.zattrs"]["_ARRAY_DIMENSIONS"][0],
        "x"
    );
    let encoded = json_body(&run(&world, "GET", "/zarr/packed/.zmetadata"));
    assert_eq!(encoded["metadata"]["big/.zarray"]["dtype"], ">i2");
}

/// A chunk is decoded once: the first read misses, the second is a hit of the decoded object,
/// which has an entry of its own beside the encoded key's.
#[test]
fn decoded_chunks_are_cached_apart() {
    let world = packed_world();
    let first = run(&world, "GET", "/zarr/packed@decoded/temp/0");
    assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
    assert_eq!(floats(&first.body), PACKED_TEMP[0]);
    assert_eq!(first.header("content-length"), Some("16"));
    let again = run(&world, "GET", "/zarr/packed@decoded/temp/0");
    assert_eq!((again.status, again.header("x-cache")), (200, Some("HIT")));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("etag"), first.header("etag"));
    // The partial edge chunk has the full chunk size.
    let edge = run(&world, "GET", "/zarr/packed@decoded/temp/1");
    assert_eq!(floats(&edge.body), PACKED_TEMP[1]);
    let encoded = run(&world, "GET", "/zarr/packed/temp/0");
    assert_eq!(encoded.header("x-cache"), Some("MISS"));
    assert_ne!(encoded.body, first.body);
    let keys = world.index.cached_keys("packed");
    assert!(keys.contains(&"@decoded/temp/0".to_owned()), "{keys:?}");
    assert!(keys.contains(&"temp/0".to_owned()), "{keys:?}");
    // Ranges of a decoded chunk are of its decoded bytes.
    let part = request(
        &world,
        "GET",
        "/zarr/packed@decoded/temp/0",
        &[("range", "bytes=4-7")],
    );
    assert_eq!((part.status, floats(&part.body)), (206, vec![-2.0]));
}

#[test]
fn big_endian_integers_come_out_little_endian() {
    let world = packed_world();
    let response = run(&world, "GET", "/zarr/packed@decoded/big/0");
    let values: Vec<i16> = response
        .body
        .chunks_exact(2)
        .map(|c| i16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(values, PACKED_BIG);
}

/// A corrupt stream is a 502 naming the key, and nothing is stored; an unknown codec is a
/// 422 naming it; an absent key is a 404; the encoded view is unchanged.
#[test]
fn bad_chunks_are_clear_errors_and_not_cached() {
    let world = packed_world();
    let stored_before = world.store.len();
    let corrupt = run(&world, "GET", "/zarr/packed@decoded/temp/9");
    assert_eq!(corrupt.status, 502);
    let body = json_body(&corrupt);
    assert_eq!(body["error"], "undecodable_chunk");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("packed/@decoded/temp/9"),
        "{body}"
    );
    assert_eq!(world.store.len(), stored_before);
    let unsupported = run(&world, "GET", "/zarr/packed@decoded/lzma/0");
    assert_eq!(unsupported.status, 422);
    let body = json_body(&unsupported);
    assert_eq!(body["error"], "unsupported_codec");
    assert!(body["message"].as_str().unwrap().contains("lzma"), "{body}");
    assert_eq!(
        run(&world, "GET", "/zarr/packed@decoded/temp/3").status,
        404
    );
    assert_eq!(run(&world, "GET", "/zarr/packed/lzma/0").status, 200);
    assert_eq!(run(&world, "GET", "/zarr/packed@nope/temp/0").status, 404);
}

/// Inline chunks are decoded in memory, nothing cached.
#[test]
fn plain_inline_chunks_pass_through_the_decoded_view() {
    let world = world();
    let inline = run(&world, "GET", "/zarr/demo@decoded/t/1");
    assert_eq!(
        (inline.status, inline.body.as_slice()),
        (200, &[0u8, 1, 2][..])
    );
    assert_eq!(inline.header("x-cache"), Some("INLINE"));
}

/// The v3 view: the root `zarr.json` consolidates every array; an array's has v3 codecs; a
/// `c/…` key is the v2 chunk of the same indices (the same entry), decoded in `@decoded-v3`.
#[test]
fn the_v3_view_is_synthesised_from_v2() {
    let world = packed_world();
    let root = json_body(&run(&world, "GET", "/zarr/packed@v3/zarr.json"));
    assert_eq!(
        (root["zarr_format"].as_u64(), root["node_type"].as_str()),
        (Some(3), Some("group"))
    );
    let nodes = &root["consolidated_metadata"]["metadata"];
    assert_eq!(nodes["temp"]["data_type"], "float32");
    assert_eq!(nodes["big"]["codecs"][0]["configuration"]["endian"], "big");
    assert_eq!(nodes["lzma"]["codecs"][1]["name"], "numcodecs.lzma");
    let temp = json_body(&run(&world, "GET", "/zarr/packed@v3/temp/zarr.json"));
    assert_eq!(&temp, &nodes["temp"]);
    assert_eq!(temp["dimension_names"], json!(["x"]));
    let v2 = run(&world, "GET", "/zarr/packed/temp/0");
    let v3 = run(&world, "GET", "/zarr/packed@v3/temp/c/0");
    assert_eq!((v3.status, v3.header("x-cache")), (200, Some("HIT")));
    assert_eq!((&v3.body, v3.header("etag")), (&v2.body, v2.header("etag")));
    let decoded = json_body(&run(&world, "GET", "/zarr/packed@decoded-v3/big/zarr.json"));
    assert_eq!(
        decoded["codecs"],
        json!([{"name": "bytes", "configuration": {"endian": "little"}}])
    );
    let chunk = run(&world, "GET", "/zarr/packed@decoded-v3/temp/c/1");
    assert_eq!(floats(&chunk.body), PACKED_TEMP[1]);
    for absent in [
        "temp/c/7",
        "temp/c/0/0",
        "temp/c",
        "temp/0",
        "nope/zarr.json",
        "temp/c/x",
    ] {
        let response = run(&world, "GET", &format!("/zarr/packed@v3/{absent}"));
        assert_eq!(response.status, 404, "{absent}");
    }
}

/// Decoded entries are purged with the prefix `@decoded/`, the encoded ones left.
#[test]
fn decoded_entries_purge_by_their_prefix() {
    let world = packed_world();
    run(&world, "GET", "/zarr/packed@decoded/temp/0");
    run(&world, "GET", "/zarr/packed/temp/0");
    let (status, report) = admin(
        &world,
        "POST",
        "/api/admin/purge",
        r#"{"dataset": "packed", "prefix": "@decoded/"}"#,
    );
    assert_eq!((status, report["entries_removed"].as_u64()), (200, Some(1)));
    assert_eq!(world.index.cached_keys("packed"), ["temp/0"]);
    let again = run(&world, "GET", "/zarr/packed@decoded/temp/0");
    assert_eq!(again.header("x-cache"), Some("MISS"));
}

/// The listing names a reference dataset's views.
#[test]
fn the_listing_names_the_views() {
    let world = packed_world();
    let body = json_body(&run(&world, "GET", "/api/datasets"));
    let packed = dataset_row(&body, "packed");
    assert_eq!(packed["views"]["decoded"], "/zarr/packed@decoded");
    assert_eq!(packed["views"]["decoded_v3"], "/zarr/packed@decoded-v3");
    let root = json_body(&run(&world, "GET", "/zarr/packed@v3/zarr.json"));
    assert_eq!(root["node_type"], "group");
}

/// A chunk already cached encoded is decoded from storage: the origin is not asked again.
#[test]
fn a_cached_encoded_chunk_is_decoded_without_the_origin() {
    let world = packed_world();
    assert_eq!(
        run(&world, "GET", "/zarr/packed/temp/0").header("x-cache"),
        Some("MISS")
    );
    let asked = world.origin.requests.borrow().len();
    let decoded = run(&world, "GET", "/zarr/packed@decoded/temp/0");
    assert_eq!(
        decoded.header("x-cache"),
        Some("MISS"),
        "a miss of the decoded entry"
    );
    assert_eq!(floats(&decoded.body), PACKED_TEMP[0]);
    assert_eq!(
        world.origin.requests.borrow().len(),
        asked,
        "no origin request"
    );
    // Its own entry now: a hit.
    assert_eq!(
        run(&world, "GET", "/zarr/packed@decoded/temp/0").header("x-cache"),
        Some("HIT")
    );
}
