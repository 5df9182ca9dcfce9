//! The fuzz harnesses: one function per `cargo fuzz` target, shared by the targets in
//! `fuzz/fuzz_targets/` and by the corpus replay in `tests/fuzz_corpora.rs`, so that the replay
//! runs exactly what the fuzzer ran.
//!
//! Each function takes the raw fuzz input, must never panic on it, and asserts only invariants
//! that the code under test documents (or that follow directly from what it documents). A panic
//! here is either a crash in the code under test or a broken invariant: both are findings.

use std::borrow::Cow;

use zarr_edge_cache::codec::{CodecError, DecodePlan};
use zarr_edge_cache::http::conditional::{etag, none_match, range_answer, RangeAnswer};
use zarr_edge_cache::http::route::{
    is_admin_path, parse_zarr_key, query_pairs, route, AdminRoute, Route, ADMIN_PREFIX,
    MAX_KEY_BYTES,
};
use zarr_edge_cache::source::datasets::validate_dataset_id;
use zarr_edge_cache::source::kerchunk::{
    LoadOptions, Reference, ReferenceStream, References, S3Endpoint,
};
use zarr_edge_cache::source::parquet::record::{Record, Row};
use zarr_edge_cache::upstash::{decode_batch, decode_single, ReplyError, Value};

/// How many explicit keys a kerchunk input gets looked up (and derived keys built from).
const MAX_EXPLICIT_LOOKUPS: usize = 256;
/// How many explicit keys derived keys (`key/`, `key0`, a prefix) are built from.
const MAX_DERIVED_FROM: usize = 16;
/// How many `gen` entries are listed.
const MAX_GEN_PATTERNS: usize = 16;
/// How many keys of each `gen` entry are listed and looked up.
const MAX_GEN_KEYS: usize = 100;

// ---------------------------------------------------------------------------------------------
// kerchunk_refs
// ---------------------------------------------------------------------------------------------

/// The load options every kerchunk input is tried with: none (only absolute http(s) URLs load),
/// a base URL with a path-style S3 endpoint, and an `s3://` base URL with a virtual-hosted one.
fn kerchunk_options() -> [LoadOptions; 3] {
    [
        LoadOptions::default(),
        LoadOptions {
            base_url: Some("https://origin.test/refs/set/refs.json".into()),
            s3_endpoint: Some(S3Endpoint {
                endpoint: "http://s3.test:9000/prefix".into(),
                path_style: true,
            }),
        },
        LoadOptions {
            base_url: Some("s3://bucket/refs/refs.json?v=1".into()),
            s3_endpoint: Some(S3Endpoint {
                endpoint: "https://s3.us-west-2.amazonaws.com".into(),
                path_style: false,
            }),
        },
    ]
}

/// Loads `data` as kerchunk references (JSON) with each of [`kerchunk_options`] and exercises
/// every lookup on what loads.
///
/// Invariants checked, from `src/kerchunk/mod.rs`:
/// - explicit keys are listed sorted by code point, without duplicates, and there are
///   `len_explicit()` of them;
/// - without `gen` entries, every listed key has a reference, and an explicit byte range has
///   `offset + length` < 2⁶⁴;
/// - every URL a lookup answers with is an absolute `http(s)://host…` URL;
/// - a `gen` entry lists at most `key_count()` keys;
/// - a document fed to a `ReferenceStream` in pieces (of 1, 3 and 61 bytes) loads exactly when
///   it loads whole, with the same explicit keys and references;
/// - options only add ways to resolve URLs: a set that loads without options (so every URL is
///   already absolute http(s)) loads with them too, with the same explicit keys and, without
///   `gen` entries, the same references.
///
/// # Panics
/// On a crash in the parser or a lookup, or when an invariant above does not hold.
pub fn kerchunk_refs(data: &[u8]) {
    let [plain, with_base, with_s3_base] = kerchunk_options();
    same_in_pieces(data, &plain);
    let Ok(refs) = References::from_json(data, &plain) else {
        for options in [with_base, with_s3_base] {
            if let Ok(refs) = References::from_json(data, &options) {
                exercise_references(&refs);
            }
        }
        return;
    };
    exercise_references(&refs);
    for options in [with_base, with_s3_base] {
        let other = match References::from_json(data, &options) {
            Ok(other) => other,
            Err(e) => panic!("loads without options but not with {options:?}: {e}"),
        };
        exercise_references(&other);
        assert!(
            refs.explicit_keys().eq(other.explicit_keys()),
            "explicit keys differ with {options:?}"
        );
        if refs.gen_patterns().len() == 0 {
            for key in refs.explicit_keys().take(MAX_EXPLICIT_LOOKUPS) {
                assert_eq!(
                    refs.get(key),
                    other.get(key),
                    "reference of {key:?} differs with {options:?}"
                );
            }
        }
    }
}

/// `data` fed in pieces loads as it does whole (see [`kerchunk_refs`]).
fn same_in_pieces(data: &[u8], options: &LoadOptions) {
    let whole = References::from_json(data, options);
    for size in [1, 3, 61] {
        let mut stream = ReferenceStream::new();
        let fed = data.chunks(size).try_for_each(|piece| stream.feed(piece));
        let pieces = fed.and_then(|()| References::from_stream(stream, options));
        match (&whole, &pieces) {
            (Ok(whole), Ok(pieces)) => {
                assert!(
                    whole.explicit_keys().eq(pieces.explicit_keys()),
                    "explicit keys differ in pieces of {size}"
                );
                for key in whole.explicit_keys().take(MAX_EXPLICIT_LOOKUPS) {
                    assert_eq!(
                        whole.get(key),
                        pieces.get(key),
                        "{key:?} in pieces of {size}"
                    );
                }
            }
            (Err(_), Err(_)) => {}
            (whole, pieces) => panic!(
                "whole: {:?}, in pieces of {size}: {:?}",
                whole.as_ref().map(|_| ()),
                pieces.as_ref().map(|_| ())
            ),
        }
    }
}

/// Decodes `data` as a parquet reference set's record file (with `record_size` its own row
/// count, at most 2²⁰) and reads every row.
///
/// Invariants checked, from `src/source/parquet/record.rs`:
/// - a decoded file holds at most `record_size` rows, and `row(i)` answers exactly for
///   `i < len()`;
/// - a byte range does not end past 2⁶⁴; a whole-file row has offset and size 0 (so is never
///   a range);
/// - `heap_bytes()` counts at least the inline bytes.
///
/// # Panics
/// On a crash in the decoder, or when an invariant above does not hold.
pub fn parquet_record(data: &[u8]) {
    const RECORD_SIZE: u64 = 1 << 20;
    // A file must hold exactly record_size rows: the row count its refusal names is tried
    // again, so the decoder runs on every file whose footer reads.
    let decoded = Record::decode(data.to_vec(), RECORD_SIZE).or_else(|why| {
        match why.split_once(" rows, not the set's record_size") {
            Some((rows, _)) => match rows.parse::<u64>() {
                Ok(rows) if rows <= RECORD_SIZE => Record::decode(data.to_vec(), rows),
                _ => Err(why),
            },
            None => Err(why),
        }
    });
    let Ok(record) = decoded else {
        return;
    };
    assert!(record.len() as u64 <= RECORD_SIZE);
    let mut inline = 0usize;
    for i in 0..record.len() {
        match record.row(i) {
            None => panic!("row {i} of {} missing", record.len()),
            Some(Row::Range { offset, size, .. }) => {
                assert!(offset.checked_add(size).is_some(), "row {i} overflows");
                assert!(offset != 0 || size != 0, "a whole file answered as a range");
            }
            Some(Row::Inline(bytes)) => inline += bytes.len(),
            Some(Row::Absent | Row::Whole(_)) => {}
        }
    }
    assert!(record.row(record.len()).is_none(), "a row past the end");
    assert!(
        record.heap_bytes() >= inline,
        "heap_bytes below the inline bytes"
    );
}

/// Every lookup a loaded set offers, with the invariants of [`kerchunk_refs`].
fn exercise_references(refs: &References) {
    assert!(refs.heap_bytes() >= std::mem::size_of::<References>());

    let no_gen = refs.gen_patterns().len() == 0;
    let mut listed = 0usize;
    let mut previous: Option<&str> = None;
    for key in refs.explicit_keys() {
        if let Some(previous) = previous {
            assert!(
                previous < key,
                "explicit keys not strictly sorted: {previous:?} then {key:?}"
            );
        }
        previous = Some(key);
        listed += 1;
    }
    assert_eq!(
        listed,
        refs.len_explicit(),
        "len_explicit() and the listing"
    );

    let mut derived: Vec<String> = [
        "",
        "/",
        ".zmetadata",
        ".zgroup",
        ".zattrs",
        "0",
        "0.0",
        "0.0.0",
    ]
    .map(str::to_owned)
    .into();
    for (i, key) in refs.explicit_keys().take(MAX_EXPLICIT_LOOKUPS).enumerate() {
        let found = refs.get(key);
        if no_gen {
            let Some(reference) = &found else {
                panic!("listed key {key:?} has no reference");
            };
            if let Reference::Range { offset, length, .. } = reference {
                assert!(
                    offset.checked_add(*length).is_some(),
                    "{key:?}: offset {offset} + length {length} overflows"
                );
            }
        }
        check_reference(key, found.as_ref());
        if i < MAX_DERIVED_FROM {
            derived.push(format!("{key}/"));
            derived.push(format!("{key}0"));
            derived.push(format!("/{key}"));
            let mut shorter = key.to_owned();
            shorter.pop();
            derived.push(shorter);
            if let Some((group, _)) = key.rsplit_once('/') {
                derived.push(format!("{group}/.zarray"));
            }
        }
    }

    for pattern in refs.gen_patterns().take(MAX_GEN_PATTERNS) {
        let template = pattern.key_template();
        derived.push(template.to_owned());
        let count = pattern.key_count();
        let mut yielded = 0u64;
        for key in pattern.keys().take(MAX_GEN_KEYS) {
            yielded += 1;
            let found = refs.get(&key);
            check_reference(&key, found.as_ref());
            if yielded <= 2 {
                derived.push(format!("{key}x"));
                let mut shorter = key.clone();
                shorter.pop();
                derived.push(shorter);
            }
        }
        assert!(
            yielded <= count,
            "gen entry {template:?} listed {yielded} keys but counts {count}"
        );
    }

    for key in &derived {
        check_reference(key, refs.get(key).as_ref());
    }
}

/// A reference's URL, if it has one, is an absolute `http(s)://` URL with something after `//`.
fn check_reference(key: &str, reference: Option<&Reference<'_>>) {
    let url: &Cow<'_, str> = match reference {
        None | Some(Reference::Inline(_)) => return,
        Some(Reference::Range { url, .. } | Reference::Whole { url }) => url,
    };
    let rest = url.split_once(':').and_then(|(scheme, rest)| {
        (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
            .then_some(rest)
    });
    assert!(
        rest.is_some_and(|rest| rest.starts_with("//") && rest.len() > 2),
        "{key:?} resolves to {url:?}, not an absolute http(s) URL"
    );
}

// ---------------------------------------------------------------------------------------------
// route_and_key
// ---------------------------------------------------------------------------------------------

/// Routes `data` as a request line: the method up to the first `\n`, then the path, with the
/// query after the first `?` (invalid UTF-8 replaced). Also feeds the path directly to
/// `parse_zarr_key`, `validate_dataset_id`, `is_admin_path`, and the query to `query_pairs`.
///
/// Invariants checked, from `src/route.rs`:
/// - a key `parse_zarr_key` accepts is at most `MAX_KEY_BYTES` bytes, has no control character,
///   no backslash, no empty, `.` or `..` segment, as many `/` as the raw path (no encoded
///   slashes), and equals its input when that has no `%`;
/// - `validate_dataset_id` accepts exactly its documented ids, unchanged;
/// - `query_pairs` gives one pair per non-empty `&`-separated part;
/// - `route`: `OPTIONS` is always a preflight and only `OPTIONS` is; a path under the admin
///   prefix routes to the admin API or fails, and an admin route's path is an admin path; a
///   Zarr route's dataset and key are what the two validators make of the path's parts; other
///   routes answer only `GET` and `HEAD`.
///
/// # Panics
/// On a crash in the router or when an invariant above does not hold.
pub fn route_and_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (method, target) = text.split_once('\n').unwrap_or(("GET", &text));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    check_zarr_key(path);
    if let Some(rest) = path.strip_prefix("/zarr/") {
        let (dataset, key) = rest.split_once('/').unwrap_or((rest, ""));
        check_dataset_id(dataset);
        check_zarr_key(key);
    }
    check_dataset_id(path);
    check_dataset_id(target);
    check_query(query);
    check_query(target);

    for method in [method, "GET", "OPTIONS"] {
        check_route(method, path);
    }
}

fn check_zarr_key(raw: &str) {
    let Ok(key) = parse_zarr_key(raw) else {
        return;
    };
    assert!(
        key.len() <= MAX_KEY_BYTES,
        "{raw:?}: key longer than the limit"
    );
    assert!(
        !key.chars().any(char::is_control),
        "{raw:?}: key {key:?} has a control character"
    );
    assert!(!key.contains('\\'), "{raw:?}: key {key:?} has a backslash");
    assert!(
        key.split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != ".."),
        "{raw:?}: key {key:?} has an empty, '.' or '..' segment"
    );
    assert_eq!(
        key.matches('/').count(),
        raw.matches('/').count(),
        "{raw:?}: key {key:?} has a slash the path did not show"
    );
    if !raw.contains('%') {
        assert_eq!(key, raw, "a key without percent-encoding changed");
    }
}

fn check_dataset_id(id: &str) {
    let documented = (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match validate_dataset_id(id) {
        Ok(valid) => {
            assert!(documented, "accepted dataset id {id:?}");
            assert_eq!(valid, id, "a dataset id changed");
        }
        Err(_) => assert!(!documented, "refused dataset id {id:?}"),
    }
}

fn check_query(query: &str) {
    let Ok(pairs) = query_pairs(query) else {
        return;
    };
    let parts = query
        .trim_start_matches('?')
        .split('&')
        .filter(|part| !part.is_empty())
        .count();
    assert_eq!(pairs.len(), parts, "{query:?}: pairs and parts");
    if !query.contains(['%', '+', '=']) {
        let names: Vec<&str> = query
            .trim_start_matches('?')
            .split('&')
            .filter(|part| !part.is_empty())
            .collect();
        for ((name, value), raw) in pairs.iter().zip(names) {
            assert_eq!(name, raw, "a plain query name changed");
            assert!(value.is_empty(), "{raw:?} has no '=' but a value");
        }
    }
}

fn check_route(method: &str, path: &str) {
    let routed = route(method, path);
    let is_admin = is_admin_path(path);
    assert_eq!(
        is_admin,
        path == ADMIN_PREFIX || path.starts_with("/api/admin/"),
        "is_admin_path({path:?})"
    );
    if method == "OPTIONS" {
        assert!(
            matches!(routed, Ok(Route::Preflight)),
            "OPTIONS {path:?} is {routed:?}"
        );
        return;
    }
    if is_admin {
        assert!(
            matches!(routed, Ok(Route::Admin(_)) | Err(_)),
            "{method} {path:?} is under the admin prefix but routes to {routed:?}"
        );
    }
    let Ok(routed) = routed else {
        return;
    };
    match &routed {
        Route::Preflight => panic!("{method} {path:?} routes to a preflight"),
        Route::Admin(admin) => {
            assert!(is_admin, "{method} {path:?} routes to {routed:?}");
            check_admin_route(method, path, admin);
        }
        Route::OriginRoute {
            dataset,
            path: route_path,
        } => {
            assert!(
                validate_dataset_id(dataset).is_ok(),
                "{path:?}: {dataset:?}"
            );
            let raw = path
                .strip_prefix("/routes/")
                .and_then(|rest| rest.strip_prefix(dataset.as_str()))
                .and_then(|rest| rest.strip_prefix('/'));
            let Some(raw) = raw else {
                panic!("{path:?} routes to {routed:?}");
            };
            assert_eq!(
                parse_zarr_key(raw).ok().as_ref(),
                Some(route_path),
                "{path:?}: the routed path is not parse_zarr_key's"
            );
            check_zarr_key(raw);
        }
        Route::DatasetRoot { dataset } => {
            assert!(matches!(method, "GET" | "HEAD"), "{method} {path:?}");
            assert!(
                validate_dataset_id(dataset).is_ok(),
                "{path:?}: {dataset:?}"
            );
            assert!(
                path == format!("/zarr/{dataset}") || path == format!("/zarr/{dataset}/"),
                "{path:?} routes to {routed:?}"
            );
        }
        Route::ZarrKey { dataset, key, .. } | Route::File { dataset, path: key } => {
            assert!(matches!(method, "GET" | "HEAD"), "{method} {path:?}");
            let prefix = if matches!(routed, Route::File { .. }) {
                "/files/"
            } else {
                "/zarr/"
            };
            check_keyed_route(path, prefix, dataset, key);
        }
        Route::Health | Route::Datasets | Route::Stats | Route::StatsKeys | Route::StatsHistory => {
            assert!(matches!(method, "GET" | "HEAD"), "{method} {path:?}");
            assert!(path.starts_with("/api/"), "{path:?} routes to {routed:?}");
        }
    }
}

/// An admin route: the method its endpoint takes, and the dataset id of its path.
fn check_admin_route(method: &str, path: &str, admin: &AdminRoute) {
    let routed = admin;
    match admin {
        AdminRoute::Purge | AdminRoute::Warm | AdminRoute::Sweep => {
            assert_eq!(method, "POST", "{path:?}: {routed:?}");
        }
        AdminRoute::ListDatasets => {
            assert!(matches!(method, "GET" | "HEAD"), "{path:?}: {routed:?}");
        }
        AdminRoute::PutDataset { dataset } | AdminRoute::DeleteDataset { dataset } => {
            let put = matches!(admin, AdminRoute::PutDataset { .. });
            assert_eq!(method, if put { "PUT" } else { "DELETE" }, "{path:?}");
            check_dataset_id(dataset);
            assert!(
                validate_dataset_id(dataset).is_ok(),
                "{path:?}: dataset {dataset:?}"
            );
            assert_eq!(
                path.trim_end_matches('/'),
                format!("{ADMIN_PREFIX}/datasets/{dataset}"),
                "{routed:?}"
            );
        }
        AdminRoute::BumpVersion { dataset } => {
            assert_eq!(method, "POST", "{path:?}");
            let expected = format!("{ADMIN_PREFIX}/datasets/{dataset}/version");
            assert_eq!(path.trim_end_matches('/'), expected, "{routed:?}");
        }
    }
}

/// A route `{prefix}{dataset}/{key}`: the dataset id is valid and the key is what
/// `parse_zarr_key` makes of the rest of the path.
fn check_keyed_route(path: &str, prefix: &str, dataset: &str, key: &str) {
    assert!(
        validate_dataset_id(dataset).is_ok(),
        "{path:?}: {dataset:?}"
    );
    let raw_key = path
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(dataset))
        .and_then(|rest| rest.strip_prefix('/'));
    let Some(raw_key) = raw_key else {
        panic!("{path:?} routes to {dataset:?} {key:?}");
    };
    assert_eq!(
        parse_zarr_key(raw_key).ok().as_deref(),
        Some(key),
        "{path:?}: the routed key is not parse_zarr_key's"
    );
    check_zarr_key(raw_key);
}

// ---------------------------------------------------------------------------------------------
// range_header
// ---------------------------------------------------------------------------------------------

/// Body sizes every `Range` header is also checked against.
const FIXED_SIZES: [u64; 6] = [0, 1, 2, 10, 4096, u64::MAX];

/// Reads `data` as a body size (the first 8 bytes, little-endian; missing bytes are 0) and the
/// rest as text: a `Range` header up to the first `\n`, then an `If-None-Match` header up to the
/// next `\n`, then a checksum for the `ETag`.
///
/// Invariants checked, from `src/conditional.rs` and RFC 9110 §14:
/// - no header, or one without `bytes=`, is `Full`; a 206 answer has `start <= end < size`, so
///   its length `end - start + 1` is between 1 and `size`;
/// - for the canonical forms with decimal numbers, the exact answer: `bytes=a-b` (`a <= b`) is
///   `start = a`, `end = min(b, size - 1)` or 416 when `a >= size`, and `a > b` is ignored;
///   `bytes=a-` ends at the last byte; `bytes=-n` is the last `min(n, size)` bytes, 416 when
///   `n = 0` or the body is empty;
/// - `If-None-Match`: absent never matches; `*`, the tag itself, its weak form and any list
///   holding it match.
///
/// # Panics
/// On a crash in the header parsing or when an invariant above does not hold.
pub fn range_header(data: &[u8]) {
    let (size_bytes, rest) = data.split_at(data.len().min(8));
    let mut size = [0u8; 8];
    size[..size_bytes.len()].copy_from_slice(size_bytes);
    let size = u64::from_le_bytes(size);
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.splitn(3, '\n');
    let header = lines.next().unwrap_or_default();
    let if_none_match = lines.next().unwrap_or_default();
    let checksum = lines.next().unwrap_or_default();

    for size in std::iter::once(size).chain(FIXED_SIZES) {
        check_range(header, size);
    }
    assert_eq!(range_answer(None, size), RangeAnswer::Full);

    // Real ETags are quoted hex checksums; make one from whatever the input gives.
    let hex: String = checksum
        .bytes()
        .take(16)
        .flat_map(|b| [b >> 4, b & 0xf])
        .filter_map(|nibble| char::from_digit(u32::from(nibble), 16))
        .collect();
    let tag = etag(&hex);
    assert!(!none_match(None, &tag), "no If-None-Match matched");
    let _ = none_match(Some(if_none_match), &tag);
    let _ = none_match(Some(if_none_match), if_none_match);
    for matching in [
        "*".to_owned(),
        tag.clone(),
        format!("W/{tag}"),
        format!("{if_none_match}, {tag}"),
        format!("{tag},{if_none_match}"),
    ] {
        assert!(
            none_match(Some(&matching), &tag),
            "If-None-Match {matching:?} does not match {tag:?}"
        );
    }
}

fn check_range(header: &str, size: u64) {
    let answer = range_answer(Some(header), size);
    if let RangeAnswer::Partial { start, end } = answer {
        assert!(
            start <= end && end < size,
            "{header:?} on {size} bytes: {answer:?}"
        );
        let length = end - start + 1;
        assert!((1..=size).contains(&length), "{header:?}: length {length}");
    }
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        assert_eq!(answer, RangeAnswer::Full, "{header:?} has no bytes= prefix");
        return;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return;
    };
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u64>().ok()
        }
    };
    let want = match (
        first.is_empty(),
        number(first),
        last.is_empty(),
        number(last),
    ) {
        (false, Some(a), false, Some(b)) => {
            if a > b {
                RangeAnswer::Full
            } else if a >= size {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: a,
                    end: b.min(size - 1),
                }
            }
        }
        (false, Some(a), true, _) => {
            if a >= size {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: a,
                    end: size - 1,
                }
            }
        }
        (true, _, false, Some(n)) => {
            if n == 0 || size == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Partial {
                    start: size - n.min(size),
                    end: size - 1,
                }
            }
        }
        _ => return,
    };
    assert_eq!(answer, want, "{header:?} on a body of {size} bytes");
}

// ---------------------------------------------------------------------------------------------
// upstash_reply
// ---------------------------------------------------------------------------------------------

/// Deepest JSON nesting for the single-versus-batch comparison (wrapping a reply in a batch adds
/// a level, and `serde_json` refuses documents deeper than 128).
const MAX_COMPARED_DEPTH: usize = 100;

/// Decodes `data` as an Upstash REST answer: the HTTP status from the first 2 bytes
/// (little-endian), the body after them; as a single reply and as a batch (of as many commands as
/// the body has items, and of one more), with that status and with 200.
///
/// Invariants checked, from `src/upstash/reply.rs`:
/// - a decoded value comes only with a 2xx status, and a batch has exactly `expected` answers;
/// - `Http` errors carry the status received, which is not 2xx; `Command` errors come with 400
///   or 2xx; `Protocol` errors with 2xx;
/// - a single reply that decodes, sent as the one item of a batch, decodes to the same value.
///
/// # Panics
/// On a crash in the decoder or when an invariant above does not hold.
pub fn upstash_reply(data: &[u8]) {
    let (status, body) = match data {
        [lo, hi, body @ ..] => (u16::from_le_bytes([*lo, *hi]), body),
        _ => (200, data),
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let items = match &json {
        Some(serde_json::Value::Array(items)) => items.len(),
        _ => 1,
    };
    for status in [status, 200] {
        let single = decode_single(status, body);
        check_status(status, single.as_ref().err(), single.is_ok());
        if let Ok(value) = &single {
            exercise_value(value);
            if let Some(json) = json.as_ref().filter(|j| depth(j) <= MAX_COMPARED_DEPTH) {
                let wrapped = serde_json::Value::Array(vec![json.clone()]).to_string();
                let batch = decode_batch(status, wrapped.as_bytes(), 1);
                assert_eq!(
                    batch,
                    Ok(vec![Ok(value.clone())]),
                    "a decoded single reply as a batch of one"
                );
            }
        }
        for expected in [items, items + 1] {
            let batch = decode_batch(status, body, expected);
            check_status(status, batch.as_ref().err(), batch.is_ok());
            if let Ok(answers) = &batch {
                assert_eq!(answers.len(), expected, "batch answer count");
                for answer in answers {
                    match answer {
                        Ok(value) => exercise_value(value),
                        Err(ReplyError::Command(_) | ReplyError::Protocol(_)) => {}
                        Err(e @ ReplyError::Http { .. }) => {
                            panic!("one command of a batch failed at the HTTP level: {e}")
                        }
                    }
                }
            }
        }
    }
}

fn check_status(status: u16, error: Option<&ReplyError>, ok: bool) {
    let success = (200..300).contains(&status);
    if ok {
        assert!(success, "decoded a reply with status {status}");
    }
    match error {
        None => {}
        Some(ReplyError::Http { status: got, .. }) => {
            assert_eq!(*got, status, "the Http error's status");
            assert!(!success, "an Http error with status {status}");
        }
        Some(ReplyError::Command(_)) => {
            assert!(
                success || status == 400,
                "a Command error with status {status}"
            );
        }
        Some(ReplyError::Protocol(_)) => {
            assert!(success, "a Protocol error with status {status}");
        }
    }
}

fn exercise_value(value: &Value) {
    let text = value.as_str();
    let int = value.as_int();
    match value {
        Value::Nil | Value::Array(_) => assert!(text.is_none() && int.is_none()),
        Value::Int(n) => assert_eq!(int, Some(*n)),
        Value::Bytes(bytes) => {
            if let Some(text) = text {
                assert_eq!(text.as_bytes(), bytes.as_slice());
            }
        }
    }
    if let Value::Array(items) = value {
        items.iter().for_each(exercise_value);
    }
}

fn depth(json: &serde_json::Value) -> usize {
    match json {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------------
// codec_decode
// ---------------------------------------------------------------------------------------------

/// The chains a `codec_decode` input is decoded with, picked by its first byte: each codec
/// alone and as kerchunk and numcodecs combine them (the decoded view's plans).
const CODEC_CHAINS: [&str; 10] = [
    r#"{"dtype": "<f4", "chunks": [64, 64], "compressor": {"id": "zlib"}, "filters": null}"#,
    r#"{"dtype": "<f8", "chunks": [512], "compressor": {"id": "gzip"}, "filters": null}"#,
    r#"{"dtype": "<i2", "chunks": [1000], "compressor": {"id": "zstd"}, "filters": null}"#,
    r#"{"dtype": "<i4", "chunks": [4096], "compressor": {"id": "blosc"}, "filters": null}"#,
    r#"{"dtype": "|u1", "chunks": [65536], "compressor": {"id": "blosc"}, "filters": null}"#,
    r#"{"dtype": "<f4", "chunks": [8, 23, 45], "compressor": null, "filters": [{"id": "shuffle", "elementsize": 4}, {"id": "zlib"}]}"#,
    r#"{"dtype": ">i4", "chunks": [300], "compressor": {"id": "zstd"}, "filters": [{"id": "delta", "dtype": ">i4", "astype": ">i2"}]}"#,
    r#"{"dtype": "<f8", "chunks": [19, 36], "compressor": null, "filters": [{"id": "grib"}]}"#,
    r#"{"dtype": "<f4", "chunks": [73, 144], "compressor": null, "filters": [{"id": "grib"}]}"#,
    r#"{"dtype": ">f8", "chunks": [100], "compressor": null, "filters": null}"#,
];

/// `codec_decode`: the first byte picks a chain of [`CODEC_CHAINS`]; the rest is one chunk's
/// bytes. Checks: decoding never panics; `Ok` has exactly the plan's decoded length (what the
/// decoded view promises every chunk has); errors are `Corrupt`, or `Unsupported` only for a
/// Blosc buffer asking for bit shuffle or a GRIB2 message of a grid or edition not decoded.
pub fn codec_decode(data: &[u8]) {
    let Some((&pick, chunk)) = data.split_first() else {
        return;
    };
    let chain = CODEC_CHAINS[usize::from(pick) % CODEC_CHAINS.len()];
    let Ok(zarray) = serde_json::from_str::<serde_json::Value>(chain) else {
        panic!("{chain}: not JSON");
    };
    let Ok(plan) = DecodePlan::from_zarray(&zarray) else {
        panic!("{chain}: a chain the decoded view does not apply");
    };
    match plan.decode(chunk) {
        Ok(bytes) => assert_eq!(bytes.len(), plan.decoded_len(), "{chain}"),
        Err(CodecError::Corrupt(_)) => {}
        Err(CodecError::Unsupported(why)) => assert!(
            why.contains("bit shuffle") || why.starts_with("grib:"),
            "{chain}: {why}"
        ),
    }
}
