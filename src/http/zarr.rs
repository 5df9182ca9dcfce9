//! `GET /zarr/{dataset}/{key}`: the Zarr store endpoint. A key is answered by its dataset's
//! source (inline bytes, metadata, or bytes at a URL read through the cache), then shaped by
//! `ETag`/304, `Range`/206/416, `X-Cache` and `Server-Timing`.

use std::rc::Rc;

use crate::cache::{
    read_chunk, record_document, CacheSource, Chunk, ChunkBody, ChunkRequest, Timing, WriteBack,
};
use crate::clock::Clock;
use crate::codec::DecodePlan;
use crate::error::Error;
use crate::http::conditional::{etag, none_match, range_answer, RangeAnswer};
use crate::http::context::{key_plan, origin_auth, Backends, RequestParts};
use crate::http::response::{error_response, HttpResponse};
use crate::http::route::View;
use crate::http::source_files::CachedFiles;
use crate::keys::content_checksum;
use crate::platform::{Body, Platform};
use crate::source::datasets::DatasetConfig;
use crate::source::decoded::{self, decoded_index_key, Decoded};
use crate::source::v3::{self, V3Key};
use crate::source::zarr::{self, content_type};
use crate::source::{KeyAnswer, KeySource, SourceFiles};
use crate::store::ChunkStore;

/// `GET /zarr/{dataset}/{key}`: inline and metadata keys from memory, ranged keys through the
/// cache; in the decoded view (`/zarr/{dataset}@decoded/{key}`), metadata without codecs and
/// chunks decoded once, then cached as objects of their own.
pub async fn zarr_key<P: Platform>(
    request: &RequestParts<'_>,
    (dataset, key, view): (&str, &str, View),
    backends: &Backends<'_, P>,
) -> Result<(HttpResponse<Body<P>>, Vec<WriteBack>), Error> {
    let config = backends.datasets.config(dataset)?;
    check_view(&config, view)?;
    let source = backends
        .datasets
        .key_source(dataset, backends.refs_source, &backends.cache.clock)
        .await?;
    let plan = key_plan(&config, key, backends);
    // A parquet set's record file is read through the cache when a key in it is first asked
    // for; what that read writes back runs with the key's own write-backs.
    let files = CachedFiles::new(&config, backends, request.nonce);
    let ViewAnswer {
        answer,
        decode,
        index_key,
    } = view_answer(&source, key, view, &files).await;
    let file_write_backs = files.into_write_backs();
    // A failed or absent answer still runs what its record-file reads left: a valid file is
    // stored, an invalid one's lease released.
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return Ok((error_response(&error).with_stream_type(), file_write_backs)),
    };
    let (chunk, mut write_backs) = match answer {
        KeyAnswer::Absent => {
            let absent = Error::NotFound(format!(
                "{dataset}/{key} is not in the dataset (Zarr reads it as the fill value)"
            ));
            return Ok((error_response(&absent).with_stream_type(), file_write_backs));
        }
        KeyAnswer::Inline(bytes) => (
            Chunk {
                size: bytes.len() as u64,
                checksum: content_checksum(&bytes),
                body: ChunkBody::Bytes(Rc::new(bytes)),
                source: CacheSource::Inline,
                timing: Timing::default(),
                datasets_version: None,
                absent: false,
                generation: None,
                fetched_ms: 0,
            },
            Vec::new(),
        ),
        KeyAnswer::Range { .. } | KeyAnswer::Whole { .. } => {
            let Some((url, range)) = answer.location() else {
                return Err(Error::Internal(format!("{dataset}/{key}: no location")));
            };
            let auth = origin_auth(&config, backends)?;
            let chunk_request = ChunkRequest {
                dataset,
                key: index_key.as_deref().unwrap_or(key),
                url,
                hosts: &config.hosts,
                range,
                holder: request.nonce,
                auth: auth.as_ref(),
                rules: plan.rules,
                version: plan.version,
                // Versioned stores answer for their own freshness; kerchunk files are checked.
                checks: config.zarr.is_none().then_some(backends.file_checks),
                decode: decode.as_ref(),
            };
            let (chunk, write_backs) =
                read_chunk(chunk_request, plan.policy, backends.cache, backends.flights).await?;
            let admitted = write_backs
                .into_iter()
                .map(|w| match w {
                    // Its lookup finishes after the response: the version it sees is checked
                    // then (`DatasetRegistry::refresh_if_seen_changed`).
                    WriteBack::Settle(mut settle) => {
                        settle.report_versions_to(backends.datasets.version_sink());
                        WriteBack::Settle(settle)
                    }
                    w => w.admitted_by(&config.admission),
                })
                .collect();
            (chunk, admitted)
        }
    };
    write_backs.extend(file_write_backs);
    let (index, now_ms) = (&backends.cache.index, backends.cache.clock.now_ms());
    if let Some(generation) = chunk.generation {
        backends.datasets.set_generation(dataset, generation);
    }
    // The version document fresh from the origin: record its digest now, so that no chunk of
    // an older generation is served from here on.
    // An index that fails here does not fail the metadata read: the next chunk read of the
    // dataset finds the record stale and revalidates.
    if plan.is_document && chunk.source == CacheSource::Miss {
        if let Ok(generation) = record_document(index, dataset, &chunk).await {
            backends.datasets.set_generation(dataset, generation);
        }
    }
    match (chunk.source, chunk.datasets_version) {
        // No lookup (inline and metadata keys): reread them after the interval.
        (CacheSource::Inline, _) => backends.datasets.refresh_runtime(index, now_ms).await,
        // The lookup saw another version of the run-time datasets: reread them (a round trip
        // only when they changed).
        (_, Some(version)) if backends.datasets.runtime_version_changed(version) => {
            backends
                .datasets
                .refresh_runtime_if_older(index, now_ms, 0)
                .await;
        }
        // Same version, or no answer from the index (do not wait on it twice).
        _ => {}
    }
    if chunk.absent {
        return Ok((absent_response(dataset, key, chunk.source), write_backs));
    }
    let response =
        respond_with_chunk(request, chunk, key, plan.max_age, &backends.cache.store).await?;
    Ok((response, write_backs))
}

/// Whether the dataset has `view`: the other views are of reference datasets (a Zarr store
/// over HTTP is read as it is).
fn check_view(config: &DatasetConfig, view: View) -> Result<(), Error> {
    if view != View::Encoded && config.zarr.is_some() {
        return Err(Error::Unprocessable(format!(
            "{}: the decoded and v3 views serve reference datasets; a Zarr store over HTTP \
             is read as it is",
            config.id
        )));
    }
    Ok(())
}

/// A key's answer in a view: what the source answers, the decode plan of a chunk read
/// through the cache, and the key its entry has when it is not the requested one (a decoded
/// chunk's own; a v3 chunk shares its v2 chunk's).
struct ViewAnswer {
    answer: Result<KeyAnswer, Error>,
    decode: Option<Rc<DecodePlan>>,
    index_key: Option<String>,
}

/// The key's answer in `view`.
async fn view_answer<S: KeySource>(
    source: &S,
    key: &str,
    view: View,
    files: &impl SourceFiles,
) -> ViewAnswer {
    let done = |answer| ViewAnswer {
        answer,
        decode: None,
        index_key: None,
    };
    // The encoded view (the hot path) allocates nothing here.
    let v2_key: std::borrow::Cow<'_, str> = if view.v3() {
        match v3::answer(source, key, view.decoded()).await {
            Ok(V3Key::Metadata(bytes)) => return done(Ok(KeyAnswer::Inline(bytes))),
            Ok(V3Key::Absent) => return done(Ok(KeyAnswer::Absent)),
            Ok(V3Key::Chunk(v2_key)) => v2_key.into(),
            Err(error) => return done(Err(error)),
        }
    } else {
        key.into()
    };
    if !view.decoded() {
        let answer = zarr::answer(source, &v2_key, files).await;
        return ViewAnswer {
            answer,
            decode: None,
            index_key: (v2_key != key).then(|| v2_key.into_owned()),
        };
    }
    match decoded::answer(source, &v2_key, files).await {
        Ok(Decoded::Inline(bytes)) => done(Ok(KeyAnswer::Inline(bytes))),
        Ok(Decoded::Absent) => done(Ok(KeyAnswer::Absent)),
        Ok(Decoded::Chunk { answer, plan }) => ViewAnswer {
            answer: Ok(answer),
            decode: Some(plan),
            index_key: Some(decoded_index_key(&v2_key)),
        },
        Err(error) => done(Err(error)),
    }
}

/// What every answer read through the cache carries: `ETag`, `X-Cache`, `Server-Timing` and
/// `Cache-Control`.
#[must_use]
pub fn cache_headers(
    tag: &str,
    source: CacheSource,
    timing: Timing,
    max_age: u64,
) -> Vec<(String, String)> {
    vec![
        ("etag".to_owned(), tag.to_owned()),
        ("x-cache".to_owned(), source.header_value().to_owned()),
        ("server-timing".to_owned(), timing.header_value()),
        (
            "cache-control".to_owned(),
            format!("public, max-age={max_age}"),
        ),
    ]
}

/// The 404 for a key the origin does not have (Zarr reads it as the fill value), with where
/// that answer came from (`MISS`: the origin said so now, `HIT`: remembered).
#[must_use]
pub fn absent_response<B>(dataset: &str, key: &str, source: CacheSource) -> HttpResponse<B> {
    error_response(&Error::NotFound(format!(
        "{dataset}/{key}: the origin has no such key (Zarr reads it as the fill value)"
    )))
    .with_header("x-cache", source.header_value())
    .with_stream_type()
}

/// Builds the 200/206/304/416 answer for a chunk of known size and checksum.
async fn respond_with_chunk<S: ChunkStore>(
    request: &RequestParts<'_>,
    chunk: Chunk<S::Body>,
    key: &str,
    max_age: u64,
    store: &S,
) -> Result<HttpResponse<S::Body>, Error> {
    let tag = etag(&chunk.checksum);
    let mut headers = cache_headers(&tag, chunk.source, chunk.timing, max_age);
    headers.push(("accept-ranges".to_owned(), "bytes".to_owned()));
    let response = |status, headers, body, stream| HttpResponse {
        status,
        headers,
        body,
        stream,
        pieces: None,
    };
    if none_match(request.if_none_match, &tag) {
        return Ok(response(304, headers, Vec::new(), None));
    }
    headers.push(("content-type".to_owned(), content_type(key).to_owned()));
    match range_answer(request.range, chunk.size) {
        RangeAnswer::Full => {
            headers.push(("content-length".to_owned(), chunk.size.to_string()));
            Ok(match chunk.body {
                ChunkBody::Stored { body, .. } => response(200, headers, Vec::new(), Some(body)),
                ChunkBody::Bytes(bytes) => response(200, headers, bytes.to_vec(), None),
            })
        }
        RangeAnswer::Unsatisfiable => {
            headers.push((
                "content-range".to_owned(),
                format!("bytes */{}", chunk.size),
            ));
            Ok(response(416, headers, Vec::new(), None))
        }
        RangeAnswer::Partial { start, end } => {
            headers.push((
                "content-range".to_owned(),
                format!("bytes {start}-{end}/{}", chunk.size),
            ));
            headers.push(("content-length".to_owned(), (end - start + 1).to_string()));
            match chunk.body {
                // A ranged read of a stored chunk reads only that range from storage, streamed.
                ChunkBody::Stored { object_key, .. } => {
                    let part = store
                        .get_range(&object_key, start, end - start + 1)
                        .await?
                        .ok_or_else(|| {
                            Error::Store(crate::store::StoreError::Retryable(format!(
                                "{key}: the stored object vanished during the read"
                            )))
                        })?;
                    Ok(response(206, headers, Vec::new(), Some(part.body)))
                }
                ChunkBody::Bytes(bytes) => {
                    let (first, last) = (
                        usize::try_from(start).unwrap_or(usize::MAX),
                        usize::try_from(end).unwrap_or(usize::MAX),
                    );
                    let Some(slice) = bytes.get(first..=last) else {
                        return Err(Error::Internal(format!(
                            "{key}: {} bytes do not cover {start}-{end}",
                            bytes.len()
                        )));
                    };
                    Ok(response(206, headers, slice.to_vec(), None))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::http::testing::*;

    /// A ranged key is fetched from the origin with exactly its range.
    #[test]
    fn ranged_key_comes_from_origin() {
        let world = world();
        let response = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"234");
        assert_eq!(
            response.header("content-type"),
            Some("application/octet-stream")
        );
        assert_eq!(response.header("x-cache"), Some("MISS"));
        let requests = world.origin.requests.borrow();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].1.unwrap().header_value(), "bytes=2-4");
    }

    /// Inline and metadata keys never touch the origin.
    #[test]
    fn inline_and_metadata_keys_come_from_memory() {
        let world = world();
        let inline = run(&world, "GET", "/zarr/demo/t/1");
        assert_eq!(
            (inline.status, inline.body.as_slice()),
            (200, &[0u8, 1, 2][..])
        );
        assert_eq!(inline.header("x-cache"), Some("INLINE"));
        let zarray = run(&world, "GET", "/zarr/demo/t/.zarray");
        assert_eq!(zarray.header("content-type"), Some("application/json"));
        assert_eq!(json_body(&zarray)["chunks"], serde_json::json!([3]));
        assert!(world.origin.requests.borrow().is_empty());
    }

    /// `.zmetadata` is synthesised from every metadata key.
    #[test]
    fn consolidated_metadata_is_synthesised() {
        let world = world();
        let response = run(&world, "GET", "/zarr/demo/.zmetadata");
        assert_eq!(response.status, 200);
        let body = json_body(&response);
        assert_eq!(body["zarr_consolidated_format"], 1);
        let keys: Vec<&String> = body["metadata"].as_object().unwrap().keys().collect();
        assert_eq!(keys, [".zattrs", ".zgroup", "t/.zarray", "t/.zattrs"]);
        assert_eq!(
            body["metadata"]["t/.zattrs"]["_ARRAY_DIMENSIONS"],
            serde_json::json!(["x"])
        );
    }

    /// Absent keys are 404 (the fill value), unknown datasets 404, foreign hosts 403, short
    /// origin reads 502.
    #[test]
    fn error_answers() {
        let world = world();
        for (path, status) in [
            ("/zarr/demo/t/5", 404),
            ("/zarr/demo/zarr.json", 404),
            ("/zarr/nope/.zgroup", 404),
            ("/zarr/demo/far/0", 403),
            ("/zarr/demo/short/0", 502),
            ("/zarr/broken/.zgroup", 502),
            ("/zarr/demo/a/../b", 400),
        ] {
            let response = run(&world, "GET", path);
            assert_eq!(response.status, status, "{path}");
            assert_eq!(
                response.header("content-type"),
                Some("application/json"),
                "{path}"
            );
        }
    }

    /// First read is a MISS from the origin and is written back; the second is a HIT from
    /// storage with identical bytes and no new origin request; counters say so.
    #[test]
    fn miss_then_hit() {
        let world = world();
        let first = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!((first.status, first.header("x-cache")), (200, Some("MISS")));
        let second = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(
            (second.status, second.header("x-cache")),
            (200, Some("HIT"))
        );
        assert_eq!(second.body, first.body);
        assert_eq!(second.header("etag"), first.header("etag"));
        assert_eq!(second.header("content-length"), Some("3"));
        assert!(second
            .header("server-timing")
            .is_some_and(|t| t.starts_with("index;dur=")));
        assert_eq!(world.origin.requests.borrow().len(), 1);
        let stats = world.index.stats_of("demo");
        assert_eq!(
            (
                stats.hits,
                stats.misses,
                stats.bytes_from_cache,
                stats.bytes_from_origin
            ),
            (1, 1, 3, 3)
        );
    }

    /// A matching If-None-Match is 304 without a body, for cached and inline keys.
    #[test]
    fn if_none_match_gives_not_modified() {
        let world = world();
        for path in ["/zarr/demo/t/0", "/zarr/demo/t/1", "/zarr/demo/.zgroup"] {
            let tag = run(&world, "GET", path).header("etag").unwrap().to_owned();
            let again = request(&world, "GET", path, &[("if-none-match", &tag)]);
            assert_eq!(again.status, 304, "{path}");
            assert!(again.body.is_empty());
            assert_eq!(again.header("etag"), Some(tag.as_str()));
        }
    }

    /// Range on any key: 206 with Content-Range, 416 when unsatisfiable, on MISS and HIT alike.
    #[test]
    fn range_requests() {
        let world = world();
        for _ in 0..2 {
            let part = request(&world, "GET", "/zarr/demo/t/0", &[("range", "bytes=1-")]);
            assert_eq!(part.status, 206);
            assert_eq!(part.body, b"34");
            assert_eq!(part.header("content-range"), Some("bytes 1-2/3"));
        }
        // The second read was a HIT: its range was read from storage, not the whole object.
        assert_eq!(world.store.ranged_gets.get(), 1);
        let inline = request(&world, "GET", "/zarr/demo/t/1", &[("range", "bytes=-1")]);
        assert_eq!((inline.status, inline.body.as_slice()), (206, &[2u8][..]));
        let beyond = request(&world, "GET", "/zarr/demo/t/0", &[("range", "bytes=3-")]);
        assert_eq!(beyond.status, 416);
        assert_eq!(beyond.header("content-range"), Some("bytes */3"));
    }

    /// The same access pattern (g/2 read and hit twice, then g/0, then g/1; 28 bytes against a
    /// capacity of 24) leaves a different set under each policy.
    #[test]
    fn each_policy_evicts_its_own_victim() {
        for (policy, survivors, evicted) in [
            ("lru", ["g/0", "g/1"], "g/2"),
            ("lfu", ["g/1", "g/2"], "g/0"),
            ("size", ["g/0", "g/1"], "g/2"),
            ("cost", ["g/0", "g/2"], "g/1"),
        ] {
            let settings = format!(r#", "capacity_bytes": 24, "eviction": "{policy}""#);
            let world = world_with(&dataset("capped", &settings));
            assert_eq!(read_at(&world, 1_000, "capped", "g/2"), "MISS");
            for at in [1_001, 1_002] {
                assert_eq!(read_at(&world, at, "capped", "g/2"), "HIT");
            }
            if policy == "cost" {
                // Cost per byte: g/2 read three times over 16 bytes outranks g/1's once over 8.
                assert_eq!(read_at(&world, 1_003, "capped", "g/2"), "HIT");
            }
            read_at(&world, 2_000, "capped", "g/0");
            read_at(&world, 3_000, "capped", "g/1");
            assert_eq!(world.index.cached_keys("capped"), survivors, "{policy}");
            let stats = world.index.stats_of("capped");
            assert!(stats.bytes_stored <= 24, "{policy}: {stats:?}");
            assert_eq!(
                world.store.len(),
                2,
                "{policy}: the evicted object is deleted"
            );
            assert_eq!(
                read_at(&world, 4_000, "capped", evicted),
                "MISS",
                "{policy}"
            );
        }
    }

    /// The admission filter stores only what it admits; the rest is served and counted.
    #[test]
    fn admission_filter_decides_what_is_stored() {
        let settings = r#", "admission": {"exclude": ["g/1"], "max_bytes": 8}"#;
        let world = world_with(&dataset("picky", settings));
        for key in ["g/0", "g/1", "g/2"] {
            read_at(&world, 1_000, "picky", key);
        }
        assert_eq!(read_at(&world, 2_000, "picky", "g/0"), "HIT");
        assert_eq!(read_at(&world, 2_000, "picky", "g/1"), "MISS");
        assert_eq!(read_at(&world, 2_000, "picky", "g/2"), "MISS");
        assert_eq!(world.index.cached_keys("picky"), ["g/0"]);
        assert_eq!(world.index.stats_of("picky").misses, 5);
        assert!(world.index.leases.borrow().is_empty(), "leases released");
    }

    const PRIVATE_REFS: &str = r#"{"version": 1, "refs": {
        ".zgroup": "{\"zarr_format\": 2}",
        "v/0": ["http://private.test/p.bin", 1, 4]}}"#;

    /// A dataset over a private origin signs its reads with the secrets it names (never
    /// showing them); without credentials the origin's refusal is a 403 naming the dataset (the
    /// signed dataset's stored bytes are not shared with it);
    /// a named secret that is not set is a configuration error naming the secret, not a value.
    #[test]
    fn private_origins_are_signed_with_the_named_secrets() {
        let secrets = r#""s3_credentials": {"access_key_id_secret": "ORIGIN_KEY_ID",
                         "secret_access_key_secret": "ORIGIN_SECRET", "region": "eu-west-1"}"#;
        let unset = r#""s3_credentials": {"access_key_id_secret": "NOT_SET",
                       "secret_access_key_secret": "ORIGIN_SECRET"}"#;
        let common =
            r#""refs": "http://origin.test/private.json", "allowed_hosts": ["private.test"]"#;
        let world = world_with(&format!(
            r#", "signed": {{{common}, {secrets}}}, "open": {{{common}}}, "unset": {{{common}, {unset}}}"#
        ));
        world
            .refs
            .replace("http://origin.test/private.json", PRIVATE_REFS, "\"p\"");
        let signed = run(&world, "GET", "/zarr/signed/v/0");
        assert_eq!(signed.status, 200);
        assert_eq!(signed.body, b"riva");
        let sent = world.origin.headers.borrow().last().cloned().unwrap();
        let authorization = &sent.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(
            authorization
                .contains("Credential=ORIGIN_KEY_ID-value-0123456789/19700101/eu-west-1/s3/"),
            "{authorization}"
        );
        let open = run(&world, "GET", "/zarr/open/v/0");
        assert_eq!(open.status, 403);
        let text = String::from_utf8_lossy(&open.body).into_owned();
        assert!(
            text.contains("open/v/0") && text.contains("s3_credentials"),
            "{text}"
        );
        let missing = run(&world, "GET", "/zarr/unset/v/0");
        assert_eq!(missing.status, 500);
        let text = String::from_utf8_lossy(&missing.body).into_owned();
        assert!(text.contains("NOT_SET") && text.contains("unset"), "{text}");
        for answer in [&signed, &open, &missing] {
            assert!(!String::from_utf8_lossy(&answer.body).contains("-value-0123456789"));
        }
    }

    /// A Zarr store over HTTP: keys pass through (v3 metadata as JSON, never synthesised),
    /// metadata and chunks are cached, an absent chunk is a 404 that is remembered for the
    /// absent TTL, and nothing else reaches the origin meanwhile.
    #[test]
    fn zarr_store_keys_pass_through_and_are_cached() {
        let world = zarr_world();
        let document = run(&world, "GET", "/zarr/xp/zarr.json");
        assert_eq!(document.status, 200);
        assert_eq!(document.header("content-type"), Some("application/json"));
        assert_eq!(document.body, XP_DOCUMENT.as_bytes());
        assert_eq!(document.header("cache-control"), Some("public, max-age=60"));
        let chunk = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!((chunk.status, chunk.body.as_slice()), (200, &[1u8, 2][..]));
        assert_eq!(chunk.header("x-cache"), Some("MISS"));
        assert_eq!(chunk.header("cache-control"), Some("public, max-age=60"));
        assert_eq!(
            run(&world, "GET", "/zarr/xp/t/c/0").header("x-cache"),
            Some("HIT")
        );
        assert_eq!(
            run(&world, "GET", "/zarr/xp/zarr.json").header("x-cache"),
            Some("HIT")
        );
        let absent = run(&world, "GET", "/zarr/xp/t/c/1");
        assert_eq!(
            (absent.status, absent.header("x-cache")),
            (404, Some("MISS"))
        );
        let again = run(&world, "GET", "/zarr/xp/t/c/1");
        assert_eq!((again.status, again.header("x-cache")), (404, Some("HIT")));
        assert_eq!(
            origin_requests(&world, "/zarr/t/c/1"),
            1,
            "the 404 is remembered"
        );
        assert_eq!(origin_requests(&world, "/zarr/zarr.json"), 1);
        assert_eq!(origin_requests(&world, "/zarr/t/c/0"), 1);
        // After the absent TTL (30 s) the origin is asked again; metadata checks (60 s) hold.
        world.clock.now.set(world.clock.now.get() + 31_000);
        world.index.now_ms.set(world.clock.now.get());
        assert_eq!(
            run(&world, "GET", "/zarr/xp/t/c/1").header("x-cache"),
            Some("MISS")
        );
        assert_eq!(origin_requests(&world, "/zarr/t/c/1"), 2);
    }

    /// Once a changed version document is seen (the metadata TTL after the last check), no
    /// chunk of the old generation is served: the new bytes come from the origin. Within the
    /// TTL the old generation stands.
    #[test]
    fn a_changed_document_retires_the_old_chunks() {
        let mut world = zarr_world();
        assert_eq!(run(&world, "GET", "/zarr/xp/t/c/0").body, [1, 2]);
        // A first generation is the time the document was read.
        let first = world.registry.generation("xp");
        assert_eq!(first, world.clock.now.get());
        let changed = XP_DOCUMENT.replace(r#"{"v": 1}"#, r#"{"v": 2}"#);
        world.set_origin(xp_origin(&changed, &[3, 4]));
        world.clock.now.set(world.clock.now.get() + 30_000);
        world.index.now_ms.set(world.clock.now.get());
        let within = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!(
            (within.body.as_slice(), within.header("x-cache")),
            (&[1u8, 2][..], Some("HIT"))
        );
        world.clock.now.set(world.clock.now.get() + 31_000);
        world.index.now_ms.set(world.clock.now.get());
        let after = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!(
            (after.body.as_slice(), after.header("x-cache")),
            (&[3u8, 4][..], Some("MISS"))
        );
        assert_eq!(world.registry.generation("xp"), first + 1);
        let next = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!(
            (next.body.as_slice(), next.header("x-cache")),
            (&[3u8, 4][..], Some("HIT"))
        );
        // The same document read again (the next check) keeps the generation.
        world.clock.now.set(world.clock.now.get() + 61_000);
        world.index.now_ms.set(world.clock.now.get());
        assert_eq!(
            run(&world, "GET", "/zarr/xp/t/c/0").header("x-cache"),
            Some("HIT")
        );
        assert_eq!(world.registry.generation("xp"), first + 1);
    }

    /// A bump by the operator retires every chunk at once, without a metadata change; a dataset
    /// that is not versioned cannot be bumped; the bump needs the admin token.
    #[test]
    fn an_operator_bump_retires_the_old_chunks() {
        let mut world = zarr_world();
        assert_eq!(run(&world, "GET", "/zarr/xp/t/c/0").body, [1, 2]);
        world.set_origin(xp_origin(XP_DOCUMENT, &[9, 9]));
        assert_eq!(
            run(&world, "GET", "/zarr/xp/t/c/0").body,
            [1, 2],
            "the data changed unseen"
        );
        let first = world.registry.generation("xp");
        let (status, body) = admin(&world, "POST", "/api/admin/datasets/xp/version", "");
        assert_eq!(
            (status, body["generation"].as_u64()),
            (200, Some(first + 1))
        );
        let after = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!(
            (after.body.as_slice(), after.header("x-cache")),
            (&[9u8, 9][..], Some("MISS"))
        );
        assert_eq!(
            admin(&world, "POST", "/api/admin/datasets/demo/version", "").0,
            400
        );
        assert_eq!(
            run(&world, "POST", "/api/admin/datasets/xp/version").status,
            401
        );
    }

    /// Hostile answers of a Zarr store: an HTML page for a chunk, malformed metadata, a 5xx:
    /// a clear JSON error, nothing stored, and the next read asks the origin again.
    #[test]
    fn bad_store_answers_are_refused_and_not_stored() {
        let mut world = zarr_world();
        let base = "http://xp.test/datasets/air/zarr";
        world.set_origin(
            xp_origin(XP_DOCUMENT, &[1, 2])
                .with_file(&format!("{base}/t/c/2"), b"<html>login</html>")
                .with_content_type(&format!("{base}/t/c/2"), "text/html; charset=utf-8")
                .with_file(&format!("{base}/bad/zarr.json"), b"{\"zarr_format\": ")
                .with_file(&format!("{base}/list/zarr.json"), b"[1, 2]")
                .with_status(&format!("{base}/t/c/3"), 503),
        );
        for (key, status, says) in [
            ("t/c/2", 502, "HTML"),
            ("bad/zarr.json", 502, "malformed Zarr metadata"),
            ("list/zarr.json", 502, "not an object"),
            ("t/c/3", 502, "HTTP 503"),
        ] {
            for _ in 0..2 {
                let response = run(&world, "GET", &format!("/zarr/xp/{key}"));
                assert_eq!(response.status, status, "{key}");
                assert_eq!(response.header("content-type"), Some("application/json"));
                let message = json_body(&response)["message"].as_str().unwrap().to_owned();
                assert!(message.contains(says), "{key}: {message}");
            }
            assert_eq!(origin_requests(&world, key), 2, "{key}: nothing cached");
        }
        let stored = world.store.calls().0;
        assert_eq!(
            stored, 0,
            "no bytes stored (the document's check stores no chunk)"
        );
    }

    /// A warm job walks the chunk grid of the version document and stores what exists.
    #[test]
    fn warm_walks_the_grid_of_a_zarr_store() {
        let world = zarr_world();
        let (status, body) = admin(&world, "POST", "/api/admin/warm", r#"{"dataset": "xp"}"#);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["fetched"], 2, "{body}");
        assert_eq!(
            run(&world, "GET", "/zarr/xp/t/c/0").header("x-cache"),
            Some("HIT")
        );
        let absent = run(&world, "GET", "/zarr/xp/t/c/1");
        assert_eq!(
            (absent.status, absent.header("x-cache")),
            (404, Some("HIT"))
        );
    }

    /// Listings describe a zarr store: its URL, format, TTLs, arrays and routes.
    #[test]
    fn listing_describes_a_zarr_store() {
        let world = zarr_world();
        let listing = json_body(&run(&world, "GET", "/api/datasets"));
        let xp = dataset_row(&listing, "xp");
        assert_eq!(xp["kind"], "zarr");
        assert_eq!(xp["zarr_format"], 3);
        assert_eq!(xp["url"], "http://xp.test/datasets/air/zarr");
        assert_eq!(xp["variables"][0]["name"], "t");
        assert_eq!(xp["cached_routes"][0]["path"], "edr/**");
    }

    /// A source file replaced behind kerchunk references: within the check interval the cached
    /// bytes stand; the first hit after it checks the file (after the response), and from then
    /// on its old entries are not served: the new bytes come from the origin.
    #[test]
    fn a_replaced_source_file_retires_its_entries() {
        let mut world = world();
        let file = "http://origin.test/f.bin";
        world.set_origin(
            FakeOrigin::default()
                .with_file(file, b"0123456789")
                .with_etag(file, "\"e1\""),
        );
        assert_eq!(run(&world, "GET", "/zarr/demo/t/0").body, b"234");
        assert_eq!(
            run(&world, "GET", "/zarr/demo/t/0").header("x-cache"),
            Some("HIT")
        );
        world.set_origin(
            FakeOrigin::default()
                .with_file(file, b"01xyz56789")
                .with_etag(file, "\"e2\""),
        );
        let within = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(
            (within.body.as_slice(), within.header("x-cache")),
            (&b"234"[..], Some("HIT"))
        );
        assert!(
            world.origin.requests.borrow().is_empty(),
            "no check within the interval"
        );
        world.clock.now.set(world.clock.now.get() + 301_000);
        world.index.now_ms.set(world.clock.now.get());
        let checked = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(
            (checked.body.as_slice(), checked.header("x-cache")),
            (&b"234"[..], Some("HIT"))
        );
        let check = world.origin.requests.borrow().clone();
        assert_eq!(check.len(), 1, "one check of the file");
        assert_eq!(check[0].1.map(|r| (r.offset, r.length)), Some((0, 1)));
        assert_eq!(
            world.origin.headers.borrow()[0],
            [("if-none-match".to_owned(), "\"e1\"".to_owned())]
        );
        let after = run(&world, "GET", "/zarr/demo/t/0");
        assert_eq!(
            (after.body.as_slice(), after.header("x-cache")),
            (&b"xyz"[..], Some("MISS"))
        );
        assert_eq!(
            run(&world, "GET", "/zarr/demo/t/0").header("x-cache"),
            Some("HIT")
        );
        assert_eq!(run(&world, "GET", "/zarr/demo/t/0").body, b"xyz");
    }

    /// With the index down, a Zarr store over HTTP still answers: metadata and chunks from the
    /// origin, and nothing is stored under a generation the reader cannot know.
    #[test]
    fn a_zarr_store_answers_with_the_index_down() {
        let mut world = zarr_world();
        world.index = FakeIndex::failing(crate::index::IndexError::Unavailable("down".into()));
        world.write_backs_may_fail = true;
        world.set_origin(world.origin.clone());
        let document = run(&world, "GET", "/zarr/xp/zarr.json");
        assert_eq!(
            document.status,
            200,
            "{}",
            String::from_utf8_lossy(&document.body)
        );
        for _ in 0..2 {
            let chunk = run(&world, "GET", "/zarr/xp/t/c/0");
            assert_eq!((chunk.status, chunk.body.as_slice()), (200, &[1u8, 2][..]));
            assert_eq!(chunk.header("x-cache"), Some("MISS"));
        }
        assert_eq!(origin_requests(&world, "/zarr/t/c/0"), 2);
        let stored = world.store.calls().0;
        assert_eq!(stored, 1, "only the document (unversioned) was stored");
    }

    /// The index keeps an entry a little past its TTL (its expiry starts at the write-back):
    /// a version check then reads the document again instead of taking the outlived entry (which
    /// would leave the record stale and the read going round).
    #[test]
    fn an_outlived_document_is_read_again() {
        let world = zarr_world();
        assert_eq!(run(&world, "GET", "/zarr/xp/t/c/0").status, 200);
        // The worker's clock passes the metadata TTL; the index's has not expired the entry.
        world.clock.now.set(world.clock.now.get() + 60_000);
        let chunk = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!((chunk.status, chunk.header("x-cache")), (200, Some("HIT")));
        assert_eq!(
            origin_requests(&world, "/zarr/zarr.json"),
            2,
            "the document read again"
        );
    }

    /// A version document the origin cannot serve after the TTL: the generation checked last
    /// stands (stale if error) and cached chunks are served; a store whose document was never
    /// readable answers the document's error.
    #[test]
    fn an_unreadable_document_keeps_the_last_generation() {
        let mut world = zarr_world();
        assert_eq!(run(&world, "GET", "/zarr/xp/t/c/0").body, [1, 2]);
        let base = "http://xp.test/datasets/air/zarr";
        world.set_origin(
            xp_origin(XP_DOCUMENT, &[1, 2]).with_status(&format!("{base}/zarr.json"), 503),
        );
        world.clock.now.set(world.clock.now.get() + 61_000);
        world.index.now_ms.set(world.clock.now.get());
        let chunk = run(&world, "GET", "/zarr/xp/t/c/0");
        assert_eq!((chunk.status, chunk.header("x-cache")), (200, Some("HIT")));
        assert_eq!(chunk.body, [1, 2]);

        let mut fresh = zarr_world();
        fresh.set_origin(
            xp_origin(XP_DOCUMENT, &[1, 2]).with_status(&format!("{base}/zarr.json"), 503),
        );
        let refused = run(&fresh, "GET", "/zarr/xp/t/c/0");
        assert_eq!(refused.status, 502);
        assert!(json_body(&refused)["message"]
            .as_str()
            .unwrap()
            .contains("zarr.json"));
    }
}
