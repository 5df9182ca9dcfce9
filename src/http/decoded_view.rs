//! Tests of the decoded view through the request handler (`/zarr/{dataset}@decoded/…`):
//! rewritten metadata, decoded chunks cached as entries of their own, codec errors.

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
    let unsupported = run(&world, "GET", "/zarr/packed@decoded/blosc/0");
    assert_eq!(unsupported.status, 422);
    let body = json_body(&unsupported);
    assert_eq!(body["error"], "unsupported_codec");
    assert!(
        body["message"].as_str().unwrap().contains("blosc"),
        "{body}"
    );
    assert_eq!(
        run(&world, "GET", "/zarr/packed@decoded/temp/3").status,
        404
    );
    assert_eq!(run(&world, "GET", "/zarr/packed/blosc/0").status, 200);
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
