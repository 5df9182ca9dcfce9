//! The contract of [`ChunkStore`] as a suite of cases, run against every implementation: the
//! in-memory fake (unit tests) and the real R2 binding inside the worker (`POST
//! /__test/store-contract`, answered only by a test stack, see `tests/store_contract.rs`).
//!
//! What it holds a store to: a `put` then `get` returns the bytes and their size; absent keys
//! are `Ok(None)` for `get` and `get_range`; a ranged read returns exactly the requested bytes
//! and the whole object's size; `put` replaces; `delete` and `delete_many` delete exactly what
//! they name and are idempotent; `list` pages in key order under its prefix only, continues
//! from its cursor, never returns more than `limit`, and ends with no cursor; upload times are
//! milliseconds near the caller's clock, in write order, the same in listings as in reads;
//! the metadata put with an object comes back with every read of it, and a `put` replaces it.
//!
//! Every key the suite writes starts with the caller's `prefix` (unique per run, so that it can
//! share a bucket with anything else), and the last case deletes them all. Cases never panic;
//! see [`crate::contract`].

use crate::clock::Clock;
use crate::contract::{ensure, ensure_eq, CallContext, Report};
use crate::store::{ChunkStore, ListedObject, ObjectMeta, MAX_DELETE_BATCH};

/// Every case, in the order [`run`] runs them.
pub const CASES: [&str; 10] = [
    "put_then_get_returns_the_bytes",
    "metadata_comes_back_with_the_object",
    "absent_keys_are_none",
    "ranged_reads_return_exactly_the_range",
    "put_replaces_the_object",
    "delete_is_idempotent",
    "delete_many_deletes_exactly_those_keys",
    "list_pages_in_key_order_under_the_prefix",
    "upload_times_are_plausible",
    "cleanup_leaves_nothing_under_the_prefix",
];

/// How long the suite waits before writing a key again (R2 allows one write per second per
/// key).
pub const REWRITE_PAUSE_MS: u64 = 1_100;

/// How far an upload time may be from the caller's clock (catches seconds taken for
/// milliseconds, not clock skew).
const UPLOAD_CLOCK_SLACK_MS: u64 = 3_600_000;

/// Runs every case of [`CASES`] against `store`, writing only keys that start with `prefix`,
/// and reports each outcome. `clock` is the caller's time (upload times must be near it) and
/// waits between writes of one key.
pub async fn run<S: ChunkStore, C: Clock>(store: &S, clock: &C, prefix: &str) -> Report {
    let mut report = Report::default();
    macro_rules! case {
        ($name:ident) => {{
            let keys = format!("{prefix}{}/", stringify!($name));
            report.record(stringify!($name), $name(store, clock, &keys).await);
        }};
    }
    case!(put_then_get_returns_the_bytes);
    case!(metadata_comes_back_with_the_object);
    case!(absent_keys_are_none);
    case!(ranged_reads_return_exactly_the_range);
    case!(put_replaces_the_object);
    case!(delete_is_idempotent);
    case!(delete_many_deletes_exactly_those_keys);
    case!(list_pages_in_key_order_under_the_prefix);
    case!(upload_times_are_plausible);
    report.record(
        "cleanup_leaves_nothing_under_the_prefix",
        cleanup_leaves_nothing_under_the_prefix(store, prefix).await,
    );
    report
}

/// An object read whole: its size, upload time and bytes.
struct Read {
    size: u64,
    uploaded_ms: u64,
    bytes: Vec<u8>,
}

/// `len` bytes in which every byte value occurs (binary safety), not repeating with a short
/// period (an offset error shows).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let i = i as u64;
            #[allow(clippy::cast_possible_truncation)] // the low byte, on purpose
            let byte = (i ^ (i >> 8) ^ (i >> 16)).wrapping_mul(31) as u8;
            byte.wrapping_add(seed)
        })
        .collect()
}

async fn put<S: ChunkStore>(store: &S, key: &str, bytes: &[u8]) -> Result<(), String> {
    store
        .put(key, bytes.to_vec(), &ObjectMeta::default())
        .await
        .call(&format!("put {key}"))
}

/// `get` of `key` with its body read (`None` when absent).
async fn read<S: ChunkStore>(store: &S, key: &str) -> Result<Option<Read>, String> {
    let Some(object) = store.get(key).await.call(&format!("get {key}"))? else {
        return Ok(None);
    };
    let bytes = store
        .read_body(object.body)
        .await
        .call(&format!("read_body of get {key}"))?;
    Ok(Some(Read {
        size: object.size,
        uploaded_ms: object.uploaded_ms,
        bytes,
    }))
}

/// `get` of `key`, which must be there.
async fn read_present<S: ChunkStore>(store: &S, key: &str) -> Result<Read, String> {
    read(store, key)
        .await?
        .ok_or_else(|| format!("get {key}: Ok(None), want the object"))
}

/// `get_range` of `key` with its body read: `(size, bytes)`, `None` when absent.
async fn read_range<S: ChunkStore>(
    store: &S,
    key: &str,
    offset: u64,
    length: u64,
) -> Result<Option<(u64, Vec<u8>)>, String> {
    let what = format!("get_range {key} {offset}+{length}");
    let Some(object) = store.get_range(key, offset, length).await.call(&what)? else {
        return Ok(None);
    };
    let bytes = store
        .read_body(object.body)
        .await
        .call(&format!("read_body of {what}"))?;
    Ok(Some((object.size, bytes)))
}

/// Every object under `prefix`, page by page (`limit` a page), checking each page's size and
/// that keys rise strictly; at most 100 pages.
async fn list_all<S: ChunkStore>(
    store: &S,
    prefix: &str,
    limit: u32,
) -> Result<Vec<ListedObject>, String> {
    let mut objects: Vec<ListedObject> = Vec::new();
    let mut cursor: Option<String> = None;
    for page_number in 0..100 {
        let page = store
            .list(prefix, cursor.as_deref(), limit)
            .await
            .call(&format!("list {prefix} page {page_number}"))?;
        ensure(
            &format!(
                "page {page_number} holds {} objects, over the limit {limit}",
                page.objects.len()
            ),
            page.objects.len() <= limit as usize,
        )?;
        for object in page.objects {
            ensure(
                &format!("{} is listed under {prefix}", object.key),
                object.key.starts_with(prefix),
            )?;
            if let Some(last) = objects.last() {
                ensure(
                    &format!("{} listed after {} (key order, once)", object.key, last.key),
                    object.key > last.key,
                )?;
            }
            objects.push(object);
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(objects),
        }
    }
    Err(format!("list {prefix}: still a cursor after 100 pages"))
}

fn keys_of(objects: &[ListedObject]) -> Vec<String> {
    objects.iter().map(|o| o.key.clone()).collect()
}

/// An upload time in ms near the caller's clock.
fn plausible(what: &str, uploaded_ms: u64, now_ms: u64) -> Result<(), String> {
    ensure(
        &format!("{what}: uploaded at {uploaded_ms} ms, not within an hour of now ({now_ms} ms)"),
        uploaded_ms > 0 && uploaded_ms.abs_diff(now_ms) <= UPLOAD_CLOCK_SLACK_MS,
    )
}

/// What was put is read back whole: the same bytes (every byte value, over 256 KiB) and size.
async fn put_then_get_returns_the_bytes<S: ChunkStore, C: Clock>(
    store: &S,
    clock: &C,
    keys: &str,
) -> Result<(), String> {
    let key = format!("{keys}object");
    let bytes = pattern(256 * 1024 + 3, 0);
    put(store, &key, &bytes).await?;
    let got = read_present(store, &key).await?;
    ensure_eq("size", got.size, bytes.len() as u64)?;
    ensure_eq("body length", got.bytes.len(), bytes.len())?;
    ensure("body equals what was put", got.bytes == bytes)?;
    plausible("uploaded_ms", got.uploaded_ms, clock.now_ms())?;
    let small = format!("{keys}small");
    put(store, &small, b"x").await?;
    let got = read_present(store, &small).await?;
    ensure_eq(
        "(size, body) of one byte",
        (got.size, got.bytes),
        (1, b"x".to_vec()),
    )
}

/// The metadata put with an object comes back with whole and ranged reads; a value that is not
/// well formed is not kept; a later `put` replaces the metadata with its own (none included).
async fn metadata_comes_back_with_the_object<S: ChunkStore, C: Clock>(
    store: &S,
    clock: &C,
    keys: &str,
) -> Result<(), String> {
    let key = format!("{keys}object");
    let meta = ObjectMeta {
        checksum: Some("0123456789abcdef0123456789abcdef".to_owned()),
        validator: Some("W/\"5f3-1a2b\"".to_owned()),
    };
    store
        .put(&key, b"with metadata".to_vec(), &meta)
        .await
        .call(&format!("put {key} with metadata"))?;
    let whole = store.get(&key).await.call(&format!("get {key}"))?;
    ensure_eq(
        "metadata of a whole read",
        whole.map(|o| o.meta),
        Some(meta.clone()),
    )?;
    let ranged = store
        .get_range(&key, 5, 3)
        .await
        .call(&format!("get_range {key}"))?;
    ensure_eq(
        "metadata of a ranged read",
        ranged.map(|o| o.meta),
        Some(meta),
    )?;
    let malformed = format!("{keys}malformed");
    let bad = ObjectMeta {
        checksum: Some("not a checksum".to_owned()),
        validator: Some("\"caf\u{e9}\"".to_owned()),
    };
    store
        .put(&malformed, b"x".to_vec(), &bad)
        .await
        .call(&format!("put {malformed}"))?;
    let got = store
        .get(&malformed)
        .await
        .call(&format!("get {malformed}"))?;
    ensure_eq(
        "metadata of malformed values",
        got.map(|o| o.meta),
        Some(ObjectMeta::default()),
    )?;
    clock.sleep(REWRITE_PAUSE_MS).await;
    put(store, &key, b"without").await?;
    let replaced = store.get(&key).await.call(&format!("get {key}"))?;
    ensure_eq(
        "metadata after a put without any",
        replaced.map(|o| o.meta),
        Some(ObjectMeta::default()),
    )
}

/// Keys never written (or under nothing) are `Ok(None)` for whole and ranged reads, and an
/// empty listing.
async fn absent_keys_are_none<S: ChunkStore, C: Clock>(
    store: &S,
    _clock: &C,
    keys: &str,
) -> Result<(), String> {
    let key = format!("{keys}never-written");
    ensure(
        "get of a key never written is None",
        read(store, &key).await?.is_none(),
    )?;
    ensure(
        "get_range of a key never written is None",
        read_range(store, &key, 0, 10).await?.is_none(),
    )?;
    let page = store
        .list(keys, None, 10)
        .await
        .call(&format!("list {keys}"))?;
    ensure_eq(
        "(listing, cursor) of an empty prefix",
        (keys_of(&page.objects), page.next_cursor),
        (vec![], None),
    )
}

/// A ranged read holds exactly the requested bytes, at the start, in the middle, at the end
/// and over the whole object; its size is the whole object's.
async fn ranged_reads_return_exactly_the_range<S: ChunkStore, C: Clock>(
    store: &S,
    _clock: &C,
    keys: &str,
) -> Result<(), String> {
    let key = format!("{keys}object");
    let bytes = pattern(1_000, 7);
    put(store, &key, &bytes).await?;
    for (start, length) in [
        (0, 10),
        (990, 10),
        (123, 456),
        (0, 1_000),
        (999, 1),
        (500, 1),
    ] {
        let what = format!("range {start}+{length}");
        let (size, got) = read_range(store, &key, start as u64, length as u64)
            .await?
            .ok_or_else(|| format!("{what}: Ok(None), want the bytes"))?;
        ensure_eq(&format!("{what}: size"), size, 1_000)?;
        let want = bytes.get(start..start + length).unwrap_or_default();
        ensure_eq(&format!("{what}: bytes"), got.as_slice(), want)?;
    }
    Ok(())
}

/// A second `put` of a key (after R2's one write per second) replaces the object: bytes, size
/// and ranged reads are the new ones, and it was uploaded no earlier than the first.
async fn put_replaces_the_object<S: ChunkStore, C: Clock>(
    store: &S,
    clock: &C,
    keys: &str,
) -> Result<(), String> {
    let key = format!("{keys}object");
    put(store, &key, b"first version").await?;
    let first = read_present(store, &key).await?;
    clock.sleep(REWRITE_PAUSE_MS).await;
    put(store, &key, b"second, longer version").await?;
    let second = read_present(store, &key).await?;
    ensure_eq(
        "(size, body) after the second put",
        (second.size, second.bytes.as_slice()),
        (22, b"second, longer version".as_slice()),
    )?;
    ensure(
        &format!(
            "the replacement was uploaded at {} ms, before the first ({} ms)",
            second.uploaded_ms, first.uploaded_ms
        ),
        second.uploaded_ms >= first.uploaded_ms,
    )?;
    let range = read_range(store, &key, 8, 6).await?;
    ensure_eq(
        "a ranged read of the replacement",
        range,
        Some((22, b"longer".to_vec())),
    )?;
    Ok(())
}

/// `delete` removes the object (whole and ranged reads find nothing, listings leave it out)
/// and is `Ok` again, and for a key never written.
async fn delete_is_idempotent<S: ChunkStore, C: Clock>(
    store: &S,
    _clock: &C,
    keys: &str,
) -> Result<(), String> {
    let key = format!("{keys}object");
    let kept = format!("{keys}kept");
    put(store, &key, b"bytes").await?;
    put(store, &kept, b"kept").await?;
    store.delete(&key).await.call(&format!("delete {key}"))?;
    ensure(
        "get after delete is None",
        read(store, &key).await?.is_none(),
    )?;
    ensure(
        "get_range after delete is None",
        read_range(store, &key, 0, 2).await?.is_none(),
    )?;
    store
        .delete(&key)
        .await
        .call(&format!("delete {key} again"))?;
    let never = format!("{keys}never-written");
    store
        .delete(&never)
        .await
        .call(&format!("delete {never}"))?;
    ensure_eq(
        "listed after delete",
        keys_of(&list_all(store, keys, 10).await?),
        vec![kept.clone()],
    )?;
    let left = read_present(store, &kept).await?;
    ensure_eq("the other object", left.bytes, b"kept".to_vec())
}

/// `delete_many` deletes exactly the keys it names (absent ones included, no error), is
/// idempotent, and takes an empty batch.
async fn delete_many_deletes_exactly_those_keys<S: ChunkStore, C: Clock>(
    store: &S,
    _clock: &C,
    keys: &str,
) -> Result<(), String> {
    let names: Vec<String> = (0..5).map(|i| format!("{keys}k{i}")).collect();
    for name in &names {
        put(store, name, name.as_bytes()).await?;
    }
    let doomed = vec![
        names[1].clone(),
        names[3].clone(),
        format!("{keys}never-written"),
    ];
    store.delete_many(&doomed).await.call("delete_many")?;
    let survivors = vec![names[0].clone(), names[2].clone(), names[4].clone()];
    ensure_eq(
        "listed after delete_many",
        keys_of(&list_all(store, keys, 10).await?),
        survivors.clone(),
    )?;
    for name in &doomed[..2] {
        ensure(
            &format!("get {name} after delete_many is None"),
            read(store, name).await?.is_none(),
        )?;
    }
    for name in &survivors {
        let got = read_present(store, name).await?;
        ensure_eq(
            &format!("{name} after delete_many"),
            got.bytes,
            name.as_bytes().to_vec(),
        )?;
    }
    store.delete_many(&doomed).await.call("delete_many again")?;
    store
        .delete_many(&[])
        .await
        .call("delete_many of nothing")?;
    ensure_eq(
        "listed after the repeats",
        keys_of(&list_all(store, keys, 10).await?),
        survivors,
    )
}

/// Listings page in key order (whatever the write order), only under their prefix, continue
/// from their cursor without repeats or gaps, hold at most `limit` objects, and end with no
/// cursor; a listing that fits one page has no cursor.
async fn list_pages_in_key_order_under_the_prefix<S: ChunkStore, C: Clock>(
    store: &S,
    _clock: &C,
    keys: &str,
) -> Result<(), String> {
    let listed_prefix = format!("{keys}list/");
    let names = ["f", "c/2", "a", "e", "c/1", "b", "d"];
    for name in names {
        put(store, &format!("{listed_prefix}{name}"), name.as_bytes()).await?;
    }
    // Beside the prefix, not under it: "list-other" and "listing" share its first characters.
    for sibling in ["list-other", "listing", "lisu"] {
        put(store, &format!("{keys}{sibling}"), b"sibling").await?;
    }
    let mut want: Vec<String> = names
        .iter()
        .map(|n| format!("{listed_prefix}{n}"))
        .collect();
    want.sort();
    for limit in [1, 2, 3, 7, 100] {
        ensure_eq(
            &format!("listing by pages of {limit}"),
            keys_of(&list_all(store, &listed_prefix, limit).await?),
            want.clone(),
        )?;
    }
    let whole = store
        .list(&listed_prefix, None, 100)
        .await
        .call("list in one page")?;
    ensure_eq(
        "(objects, cursor) of a listing in one page",
        (whole.objects.len(), whole.next_cursor),
        (7, None),
    )?;
    let first = store
        .list(&listed_prefix, None, 3)
        .await
        .call("list a first page")?;
    ensure(
        "a first page of 3 of 7 has a cursor",
        first.next_cursor.is_some(),
    )?;
    let nested = format!("{listed_prefix}c/");
    ensure_eq(
        "listing a nested prefix",
        keys_of(&list_all(store, &nested, 10).await?),
        vec![format!("{nested}1"), format!("{nested}2")],
    )
}

/// Upload times are milliseconds near the caller's clock, in write order, and a listing shows
/// the time a read shows.
async fn upload_times_are_plausible<S: ChunkStore, C: Clock>(
    store: &S,
    clock: &C,
    keys: &str,
) -> Result<(), String> {
    let (a, b) = (format!("{keys}a"), format!("{keys}b"));
    put(store, &a, b"first").await?;
    put(store, &b, b"second").await?;
    let now = clock.now_ms();
    let (read_a, read_b) = (
        read_present(store, &a).await?,
        read_present(store, &b).await?,
    );
    plausible("a", read_a.uploaded_ms, now)?;
    plausible("b", read_b.uploaded_ms, now)?;
    ensure(
        &format!(
            "b (written second) uploaded at {} ms, before a at {} ms",
            read_b.uploaded_ms, read_a.uploaded_ms
        ),
        read_b.uploaded_ms >= read_a.uploaded_ms,
    )?;
    let listed: Vec<(String, u64)> = list_all(store, keys, 10)
        .await?
        .into_iter()
        .map(|o| (o.key, o.uploaded_ms))
        .collect();
    ensure_eq(
        "listed upload times",
        listed,
        vec![(a, read_a.uploaded_ms), (b, read_b.uploaded_ms)],
    )
}

/// Deletes everything under `prefix` in batches, and then nothing is listed there.
async fn cleanup_leaves_nothing_under_the_prefix<S: ChunkStore>(
    store: &S,
    prefix: &str,
) -> Result<(), String> {
    let written = keys_of(&list_all(store, prefix, 1_000).await?);
    ensure(
        "the suite wrote objects under its prefix",
        !written.is_empty(),
    )?;
    for batch in written.chunks(MAX_DELETE_BATCH) {
        store.delete_many(batch).await.call("delete_many")?;
    }
    ensure_eq(
        "listed after the cleanup",
        keys_of(&list_all(store, prefix, 1_000).await?),
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{FixedClock, InMemoryStore, StoreFault};
    use futures::executor::block_on;

    const NOW: u64 = 1_800_000_000_000;

    fn store(fault: Option<StoreFault>) -> InMemoryStore {
        let store = fault.map_or_else(InMemoryStore::default, InMemoryStore::with_fault);
        store.now.set(NOW);
        store
    }

    /// The in-memory store keeps the whole contract, and the suite leaves nothing behind.
    #[test]
    fn the_in_memory_store_keeps_the_contract() {
        let store = store(None);
        block_on(store.put(
            "other/kept",
            b"not the suite's".to_vec(),
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap();
        let report = block_on(run(&store, &FixedClock(NOW), "run-1/"));
        if let Err(failure) = report.verify(&CASES) {
            panic!("{failure}");
        }
        assert_eq!(store.len(), 1, "only the object outside the prefix is left");
        assert!(store.contains("other/kept"));
    }

    /// Stores that break the contract fail the cases that check what they break.
    #[test]
    fn broken_stores_fail_their_cases() {
        let failed = |store: &InMemoryStore, clock: &FixedClock| {
            let report = block_on(run(store, clock, "run/"));
            report
                .failures()
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        };
        let corrupt = failed(&store(Some(StoreFault::CorruptReads)), &FixedClock(NOW));
        for case in ["put_then_get_returns_the_bytes", "delete_is_idempotent"] {
            assert!(corrupt.iter().any(|c| c == case), "{corrupt:?}");
        }
        let lost = failed(&store(Some(StoreFault::LoseWrites)), &FixedClock(NOW));
        assert!(lost.len() >= 7, "{lost:?}");
        assert!(
            !lost.iter().any(|c| c == "absent_keys_are_none"),
            "{lost:?}"
        );
        // Upload times in seconds (or a clock an hour away) are not plausible.
        let seconds = failed(&store(None), &FixedClock(NOW / 1_000));
        assert_eq!(
            seconds,
            [
                "put_then_get_returns_the_bytes",
                "upload_times_are_plausible"
            ]
        );
    }
}
