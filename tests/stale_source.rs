//! Stale kerchunk bytes on the real stack (`scripts/test`): `t-stale` reads a copy of `air.nc`
//! (`air-stale.nc` in nginx's docroot) and checks its file every second. The test rewrites a
//! chunk's bytes in place (nginx's `ETag` follows the file's modification time): after the
//! check, the old bytes are not served; the new ones come from the origin, then from the cache.
//!
//! The integration tests are `#[ignore]`d so that a bare `cargo test` never needs the stack.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use common::{poll, send, stack_var};

/// The first ranged key of the references: `(key, offset, length)`.
fn first_ranged_key() -> (String, u64, u64) {
    let refs = PathBuf::from(stack_var("ZEC_STATE_DIR")).join("demo/refs/air-stale.json");
    let refs: serde_json::Value = serde_json::from_slice(&std::fs::read(refs).unwrap()).unwrap();
    let (key, value) = refs["refs"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, v)| {
            k.starts_with("air_temperature/") && v.as_array().is_some_and(|a| a.len() == 3)
        })
        .unwrap();
    let range = value.as_array().unwrap();
    (
        key.clone(),
        range[1].as_u64().unwrap(),
        range[2].as_u64().unwrap(),
    )
}

/// Conditional checks of the file so far: one-byte ranged GETs in nginx's access log.
fn checks() -> usize {
    let log = PathBuf::from(stack_var("ZEC_STATE_DIR")).join("nginx/access.log");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"GET /air-stale.nc HTTP/") && l.ends_with("\"bytes=0-0\""))
        .count()
}

#[test]
#[ignore = "needs the stack from scripts/test"]
fn a_rewritten_source_file_is_not_served_from_the_cache() {
    let base = stack_var("ZEC_BASE_URL");
    let (key, offset, length) = first_ranged_key();
    let path = format!("/zarr/t-stale/{key}");
    let first = send(&base, "GET", &path, &[], None);
    assert_eq!(
        (first.status, first.x_cache()),
        (200, "MISS"),
        "{}",
        first.text()
    );
    let old = first.body.clone();
    poll("the write-back", Duration::from_secs(5), || {
        let again = send(&base, "GET", &path, &[], None);
        (again.x_cache() == "HIT")
            .then_some(())
            .ok_or(again.x_cache().to_owned())
    });
    // nginx's ETag is the modification time (seconds) and size: let a second pass first.
    std::thread::sleep(Duration::from_millis(1_100));
    let file = PathBuf::from(stack_var("ZEC_STATE_DIR")).join("demo/air-stale.nc");
    let new: Vec<u8> = old.iter().map(|b| b ^ 0x5a).collect();
    let mut handle = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    handle.seek(SeekFrom::Start(offset)).unwrap();
    handle.write_all(&new).unwrap();
    drop(handle);
    assert_eq!(new.len() as u64, length);
    let checks_before = checks();
    // Within a second or two: a hit after the check interval checks the file (after its
    // answer), and the next read gets the new bytes from the origin.
    let served = poll("the new bytes", Duration::from_secs(10), || {
        let answer = send(&base, "GET", &path, &[], None);
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert!(
            answer.body == old || answer.body == new,
            "neither the old nor the new bytes"
        );
        if answer.body == new {
            Ok(answer.x_cache().to_owned())
        } else {
            std::thread::sleep(Duration::from_millis(300));
            Err("still the old bytes".to_owned())
        }
    });
    assert_eq!(served, "MISS", "the new bytes came from the origin");
    assert!(
        checks() > checks_before,
        "a conditional check of the file reached nginx"
    );
    poll("the new bytes cached", Duration::from_secs(5), || {
        let answer = send(&base, "GET", &path, &[], None);
        (answer.x_cache() == "HIT" && answer.body == new)
            .then_some(())
            .ok_or(answer.x_cache().to_owned())
    });
}
