//! `GET`/`HEAD /files/{dataset}/{path}`: block mode. Any single byte range of a file under a
//! `files` dataset's prefix (or the whole file), answered 200/206/304/416 with the origin's
//! `ETag` and `Last-Modified`, assembled from the file's cached aligned blocks
//! (`cache::blocks`) one window at a time: the first window before the headers (it decides
//! `X-Cache`), the rest while the body is sent.

use std::collections::VecDeque;
use std::rc::Rc;

use futures::stream::{self, StreamExt};

use crate::cache::blocks::{
    due_check, file_meta, read_window, FileAt, FileRead, MetaLookup, Part, Window, WindowError,
};
use crate::cache::validators::FileChecks;
use crate::cache::{CacheBackends, CachePolicy, CacheSource, Flights, WriteBack};
use crate::clock::Clock;
use crate::error::Error;
use crate::http::conditional::{none_match, range_answer, RangeAnswer};
use crate::http::context::{cache_policy, origin_auth, Backends, RequestParts};
use crate::http::response::{HttpResponse, Piece, Pieces};
use crate::origin::auth::OriginAuth;
use crate::origin::url_policy::HostPolicy;
use crate::platform::{Body, Platform};
use crate::policy::admission::Admission;
use crate::source::files::{file_id, FileMeta, FilesOrigin};
use crate::store::ChunkStore;

/// `GET`/`HEAD /files/{dataset}/{path}`.
///
/// # Errors
/// [`Error::NotFound`] for an unknown dataset, one of another kind, or a file the origin does
/// not have; [`Error::Forbidden`] for a host the dataset may not fetch; what the origin fails
/// with.
pub async fn file_read<P: Platform>(
    request: &RequestParts<'_>,
    dataset: &str,
    path: &str,
    backends: &Backends<'_, P>,
) -> Result<(HttpResponse<Body<P>>, Vec<WriteBack>), Error> {
    let config = backends.datasets.config(dataset)?;
    let Some(files) = config.files.clone() else {
        return Err(Error::NotFound(format!(
            "dataset {dataset:?} is not of kind files: its keys are at /zarr/{dataset}/…"
        )));
    };
    let url = files.url_of(path);
    config
        .hosts
        .check_chunk_url(&url)
        .map_err(|refusal| Error::Forbidden(format!("{dataset}/{path}: {refusal}")))?;
    let policy = cache_policy(&config, backends);
    let auth = origin_auth(&config, backends)?;
    // What the isolate knows of a file is trusted for one check interval; block lookups
    // compare it with the index's record all along.
    let max_age_ms = if policy.file_check_ms > 0 {
        policy.file_check_ms
    } else {
        policy.ttl_ms
    };
    let file = FileAt {
        dataset,
        path,
        url: &url,
        hosts: &config.hosts,
        auth: auth.as_ref(),
    };
    let how = MetaLookup {
        max_age_ms,
        force: false,
        block_size: files.block_size,
    };
    let (mut meta, probed) = file_meta(file, backends.file_checks, how, backends.cache).await?;
    let mut answer = Answer {
        request,
        file,
        files: &files,
        policy,
        admission: &config.admission,
        probed,
        trust_record: true,
    };
    for attempt in 0..2 {
        match answer.respond(&meta, backends).await {
            Ok(done) => return Ok(done),
            Err(WindowError::Failed(error)) => return Err(error),
            // The index or the origin knows another version than the one read: the origin
            // says which is current (an index record may also be older than what this isolate
            // learned), and the read starts again with it, trusting that answer.
            Err(WindowError::Changed(_)) if attempt == 0 => {
                let again = MetaLookup { force: true, ..how };
                meta = file_meta(file, backends.file_checks, again, backends.cache)
                    .await?
                    .0;
                answer.probed = true;
                answer.trust_record = false;
            }
            Err(WindowError::Changed(_)) => break,
        }
    }
    Err(Error::Upstream(format!(
        "{dataset}/{path}: the file kept changing during the read; read it again"
    )))
}

/// One request's answer, for a file whose meta is known.
struct Answer<'r, 'a> {
    request: &'r RequestParts<'a>,
    file: FileAt<'r>,
    files: &'r FilesOrigin,
    policy: CachePolicy,
    admission: &'r Admission,
    /// The meta came from the origin just now.
    probed: bool,
    /// Whether a block lookup that reports another recorded version sends the read back.
    trust_record: bool,
}

impl Answer<'_, '_> {
    async fn respond<P: Platform>(
        &self,
        meta: &FileMeta,
        backends: &Backends<'_, P>,
    ) -> Result<(HttpResponse<Body<P>>, Vec<WriteBack>), WindowError> {
        let mut headers = file_headers(meta);
        let meta_source = if self.probed {
            CacheSource::Miss
        } else {
            CacheSource::Hit
        };
        let bare = |status, mut headers: Vec<(String, String)>, source: CacheSource| {
            headers.push(("x-cache".to_owned(), source.header_value().to_owned()));
            HttpResponse {
                status,
                headers,
                body: Vec::new(),
                stream: None,
                pieces: None,
            }
        };
        // Answers without blocks still check the file when it is due (a client revalidating
        // with If-None-Match would otherwise keep an old version alive).
        let check = || self.due_check(meta, backends);
        if let Some(etag) = &meta.etag {
            if none_match(self.request.if_none_match, etag) {
                return Ok((bare(304, headers, meta_source), check()));
            }
        }
        // If-Range (RFC 9110 13.1.5): the range only while the file has that validator, else
        // the whole current file.
        let range = self
            .request
            .range
            .filter(|_| if_range_holds(self.request.if_range, meta));
        let (status, start, end) = match range_answer(range, meta.size) {
            RangeAnswer::Unsatisfiable => {
                headers.push(("content-range".to_owned(), format!("bytes */{}", meta.size)));
                return Ok((bare(416, headers, meta_source), check()));
            }
            RangeAnswer::Full => (200, 0, meta.size.saturating_sub(1)),
            RangeAnswer::Partial { start, end } => {
                headers.push((
                    "content-range".to_owned(),
                    format!("bytes {start}-{end}/{}", meta.size),
                ));
                (206, start, end)
            }
        };
        let length = if meta.size == 0 { 0 } else { end - start + 1 };
        headers.push(("content-length".to_owned(), length.to_string()));
        if self.request.method == "HEAD" || length == 0 {
            return Ok((bare(status, headers, meta_source), check()));
        }
        let read = FileRead {
            file: self.file,
            trust_record: self.trust_record,
            holder: self.request.nonce,
            files: self.files,
            meta,
            checks: backends.file_checks,
        };
        let first_end = window_end(self.files, start, end);
        let window = read_window(
            &read,
            (start, first_end),
            self.policy,
            backends.cache,
            backends.flights,
        )
        .await?;
        let Window {
            mut parts,
            write_backs,
            source,
            timing,
        } = window;
        let write_backs = admitted(write_backs, self.admission);
        let source = if self.probed {
            CacheSource::Miss
        } else {
            source
        };
        headers.push(("x-cache".to_owned(), source.header_value().to_owned()));
        headers.push(("server-timing".to_owned(), timing.header_value()));
        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
            stream: None,
            pieces: None,
        };
        // One stored part is the whole answer: it streams from storage as it is.
        if first_end == end && parts.len() == 1 && matches!(parts.first(), Some(Part::Stored(_))) {
            if let Some(Part::Stored(body)) = parts.pop() {
                response.stream = Some(body);
                return Ok((response, write_backs));
            }
        }
        let rest = Rest::new(&read, self, backends, (first_end + 1, end), parts);
        response.pieces = Some(Pieces(rest.into_stream()));
        Ok((response, write_backs))
    }
}

impl Answer<'_, '_> {
    /// The check of the file after an answer that read no block, when one is due.
    fn due_check<P: Platform>(
        &self,
        meta: &FileMeta,
        backends: &Backends<'_, P>,
    ) -> Vec<WriteBack> {
        if self.probed {
            return Vec::new();
        }
        let id = file_id(self.file.url, self.file.auth);
        // Counted from this isolate's last check or probe of the file.
        let now = backends.cache.clock.now_ms();
        due_check(
            self.file,
            (&id, &meta.validator()),
            backends.file_checks,
            (0, now),
            self.policy.file_check_ms,
        )
        .into_iter()
        .collect()
    }
}

/// Whether a `Range` applies under `If-Range`: without one always; with one, when it is the
/// file's strong `ETag` or its exact `Last-Modified`.
fn if_range_holds(if_range: Option<&str>, meta: &FileMeta) -> bool {
    let Some(validator) = if_range.map(str::trim) else {
        return true;
    };
    if validator.starts_with("W/") {
        return false;
    }
    if validator.starts_with('"') {
        return meta.etag.as_deref() == Some(validator);
    }
    meta.last_modified.as_deref() == Some(validator)
}

/// The headers every answer for the file carries: the origin's validators, and how to read it.
fn file_headers(meta: &FileMeta) -> Vec<(String, String)> {
    let mut headers = vec![
        ("accept-ranges".to_owned(), "bytes".to_owned()),
        (
            "content-type".to_owned(),
            "application/octet-stream".to_owned(),
        ),
        // Readers revalidate with the origin's ETag (a 304 costs no block read).
        ("cache-control".to_owned(), "no-cache".to_owned()),
    ];
    if let Some(etag) = &meta.etag {
        headers.push(("etag".to_owned(), etag.clone()));
    }
    if let Some(modified) = &meta.last_modified {
        headers.push(("last-modified".to_owned(), modified.clone()));
    }
    headers
}

/// The last byte of the window that starts at `start` (it ends at a block boundary, or `end`).
fn window_end(files: &FilesOrigin, start: u64, end: u64) -> u64 {
    let first_block = start / files.block_size;
    let past = first_block
        .saturating_add(files.window_blocks())
        .saturating_mul(files.block_size);
    end.min(past.saturating_sub(1))
}

/// The write-backs as the dataset's admission filter allows them.
fn admitted(write_backs: Vec<WriteBack>, admission: &Admission) -> Vec<WriteBack> {
    write_backs
        .into_iter()
        .map(|w| w.admitted_by(admission))
        .collect()
}

/// What is left of an answer once its headers are sent: parts read but not yet sent, and the
/// windows still to read.
struct Rest<P: Platform> {
    backends: Rc<CacheBackends<P>>,
    flights: Flights,
    checks: FileChecks,
    dataset: String,
    path: String,
    url: String,
    hosts: HostPolicy,
    auth: Option<OriginAuth>,
    holder: String,
    files: FilesOrigin,
    meta: FileMeta,
    policy: CachePolicy,
    admission: Admission,
    /// The first byte not read yet.
    next: u64,
    /// The answer's last byte.
    end: u64,
    parts: VecDeque<Part<Body<P>>>,
    /// Write-backs of the last window, sent with its first piece.
    pending: Vec<WriteBack>,
    /// A piece failed: the body ends.
    done: bool,
    /// The failure to end the body with, once the write-backs still pending went out.
    failure: Option<Error>,
}

impl<P: Platform> Rest<P> {
    /// The rest of `answer` from byte `next` to `end`, after the first window's `parts`.
    fn new(
        read: &FileRead<'_>,
        answer: &Answer<'_, '_>,
        backends: &Backends<'_, P>,
        (next, end): (u64, u64),
        parts: Vec<Part<Body<P>>>,
    ) -> Self {
        Self {
            backends: Rc::clone(backends.cache),
            flights: backends.flights.clone(),
            checks: backends.file_checks.clone(),
            dataset: read.file.dataset.to_owned(),
            path: read.file.path.to_owned(),
            url: read.file.url.to_owned(),
            hosts: read.file.hosts.clone(),
            auth: read.file.auth.cloned(),
            holder: read.holder.to_owned(),
            files: answer.files.clone(),
            meta: read.meta.clone(),
            policy: answer.policy,
            admission: answer.admission.clone(),
            next,
            end,
            parts: parts.into(),
            pending: Vec::new(),
            done: false,
            failure: None,
        }
    }

    fn into_stream(self) -> futures::stream::LocalBoxStream<'static, Result<Piece, Error>> {
        stream::unfold(self, |mut rest| async move {
            let piece = rest.next_piece().await?;
            Some((piece, rest))
        })
        .boxed_local()
    }

    /// The next piece; `None` at the end (or after a failure).
    async fn next_piece(&mut self) -> Option<Result<Piece, Error>> {
        if let Some(error) = self.failure.take() {
            return Some(Err(error));
        }
        if self.done {
            return None;
        }
        loop {
            if let Some(part) = self.parts.pop_front() {
                let bytes = match part {
                    Part::Stored(body) => match self.backends.store.read_body(body).await {
                        Ok(bytes) => bytes,
                        Err(error) => return Some(self.fail(Error::Store(error))),
                    },
                    Part::Bytes { bytes, start, end } => bytes
                        .get(start..end)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default(),
                };
                let write_backs = std::mem::take(&mut self.pending);
                return Some(Ok(Piece { bytes, write_backs }));
            }
            if self.next > self.end {
                return None;
            }
            let window_end = window_end(&self.files, self.next, self.end);
            let read = FileRead {
                file: FileAt {
                    dataset: &self.dataset,
                    path: &self.path,
                    url: &self.url,
                    hosts: &self.hosts,
                    auth: self.auth.as_ref(),
                },
                trust_record: false,
                holder: &self.holder,
                files: &self.files,
                meta: &self.meta,
                checks: &self.checks,
            };
            let window = read_window(
                &read,
                (self.next, window_end),
                self.policy,
                &self.backends,
                &self.flights,
            )
            .await;
            match window {
                Ok(window) => {
                    self.parts.extend(window.parts);
                    self.pending
                        .extend(admitted(window.write_backs, &self.admission));
                    self.next = window_end + 1;
                }
                Err(error) => {
                    let error = match error {
                        WindowError::Failed(error) => error,
                        WindowError::Changed(meta) => Error::Upstream(format!(
                            "{}/{}: the file changed during the read (now {} bytes); read it \
                             again",
                            self.dataset, self.path, meta.size
                        )),
                    };
                    return Some(self.fail(error));
                }
            }
        }
    }

    /// Ends the body with `error`, after a piece without bytes carrying the write-backs still
    /// pending (fetched blocks are stored, and their leases released, even so).
    fn fail(&mut self, error: Error) -> Result<Piece, Error> {
        self.done = true;
        self.parts.clear();
        let write_backs = std::mem::take(&mut self.pending);
        if write_backs.is_empty() {
            return Err(error);
        }
        self.failure = Some(error);
        Ok(Piece {
            bytes: Vec::new(),
            write_backs,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::http::testing::{json_body, request, run, world_with, World};
    use crate::origin::ByteRange;

    const URL: &str = "http://origin.test/data/big.bin";
    const BLOCK_BYTES: usize = 65_536;
    const BLOCK: u64 = BLOCK_BYTES as u64;

    /// A world with `blk`, a `files` dataset over `http://origin.test/data/` in 64 KiB blocks
    /// (file checks every second), and a file of `size` bytes at [`URL`].
    fn blocks_world(size: usize) -> (World, Vec<u8>) {
        let world = world_with(
            r#", "blk": {"kind": "files", "url": "http://origin.test/data/", "block_size": 65536,
                "file_check_seconds": 1}"#,
        );
        let bytes = pattern(size, 1);
        world.origin.put_file(URL, &bytes, "\"v1\"");
        (world, bytes)
    }

    fn pattern(size: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    /// The origin requests made so far for [`URL`], as ranges.
    fn origin_ranges(world: &World) -> Vec<Option<ByteRange>> {
        world
            .origin
            .requests
            .borrow()
            .iter()
            .filter(|(url, _)| url == URL)
            .map(|(_, range)| *range)
            .collect()
    }

    fn range(offset: u64, length: u64) -> Option<ByteRange> {
        ByteRange { offset, length }.into()
    }

    /// A whole file, cold: one size probe and one merged request for all its blocks; warm: all
    /// from the cache, no origin request.
    #[test]
    fn whole_file_cold_then_warm() {
        let size = 3 * BLOCK_BYTES + 1234;
        let (world, bytes) = blocks_world(size);
        let cold = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(cold.status, 200, "{}", String::from_utf8_lossy(&cold.body));
        assert_eq!(cold.body, bytes);
        assert_eq!(cold.header("x-cache"), Some("MISS"));
        assert_eq!(
            cold.header("content-length"),
            Some(size.to_string().as_str())
        );
        assert_eq!(cold.header("etag"), Some("\"v1\""));
        assert_eq!(cold.header("accept-ranges"), Some("bytes"));
        assert_eq!(
            origin_ranges(&world),
            vec![range(0, 1), range(0, size as u64)]
        );
        let warm = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!((warm.status, warm.header("x-cache")), (200, Some("HIT")));
        assert_eq!(warm.body, bytes);
        assert_eq!(
            origin_ranges(&world).len(),
            2,
            "nothing more from the origin"
        );
    }

    /// Ranges of every shape equal the file's bytes, cold and warm; past the end is 416.
    #[test]
    fn ranges_equal_the_file() {
        let size = 2 * BLOCK_BYTES + 100;
        let (world, bytes) = blocks_world(size);
        let s = size as u64;
        let cases: Vec<(String, u64, u64)> = vec![
            ("bytes=0-0".into(), 0, 0),
            ("bytes=10-20".into(), 10, 20),
            (
                format!("bytes={}-{}", BLOCK - 5, BLOCK + 5),
                BLOCK - 5,
                BLOCK + 5,
            ),
            (format!("bytes={}-", 2 * BLOCK + 50), 2 * BLOCK + 50, s - 1),
            ("bytes=-7".into(), s - 7, s - 1),
            (format!("bytes=-{}", s + 99), 0, s - 1),
            (format!("bytes=5-{}", s + 1000), 5, s - 1),
        ];
        for pass in ["cold", "warm"] {
            for (header, start, end) in &cases {
                let answer = crate::http::testing::request(
                    &world,
                    "GET",
                    "/files/blk/big.bin",
                    &[("range", header)],
                );
                assert_eq!(answer.status, 206, "{pass} {header}");
                let (a, b) = (
                    usize::try_from(*start).unwrap(),
                    usize::try_from(*end).unwrap(),
                );
                assert_eq!(answer.body, bytes[a..=b], "{pass} {header}");
                assert_eq!(
                    answer.header("content-range"),
                    Some(format!("bytes {start}-{end}/{size}").as_str()),
                    "{pass} {header}"
                );
            }
        }
        let beyond = request(
            &world,
            "GET",
            "/files/blk/big.bin",
            &[("range", &format!("bytes={s}-"))],
        );
        assert_eq!(beyond.status, 416);
        assert_eq!(
            beyond.header("content-range"),
            Some(format!("bytes */{size}").as_str())
        );
    }

    /// Only the blocks a request lacks are fetched, adjacent ones in one request.
    #[test]
    fn only_missing_blocks_are_fetched_and_merged() {
        let size = 4 * BLOCK_BYTES;
        let (world, bytes) = blocks_world(size);
        let middle = format!("bytes={}-{}", BLOCK + 1, 2 * BLOCK + 1);
        let first = request(&world, "GET", "/files/blk/big.bin", &[("range", &middle)]);
        assert_eq!(first.status, 206);
        let all = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(all.body, bytes);
        assert_eq!(all.header("x-cache"), Some("MISS"));
        assert_eq!(
            origin_ranges(&world),
            vec![
                range(0, 1),
                range(BLOCK, 2 * BLOCK),
                range(0, BLOCK),
                range(3 * BLOCK, BLOCK)
            ]
        );
    }

    /// A range longer than one window is read window by window, its later windows' blocks
    /// written back as well.
    #[test]
    fn long_ranges_stream_window_by_window() {
        let size = usize::try_from(crate::source::files::WINDOW_BYTES + 3 * BLOCK).unwrap();
        let (world, bytes) = blocks_world(size);
        let cold = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(cold.header("x-test-body-error"), None);
        assert_eq!(cold.body, bytes);
        let window = crate::source::files::WINDOW_BYTES;
        assert_eq!(
            origin_ranges(&world),
            vec![range(0, 1), range(0, window), range(window, 3 * BLOCK)]
        );
        let warm = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(warm.body, bytes);
        assert_eq!(origin_ranges(&world).len(), 3);
    }

    /// HEAD reports the length without reading blocks; If-None-Match with the origin's `ETag`
    /// is a 304.
    #[test]
    fn head_and_conditional() {
        let (world, _) = blocks_world(1000);
        let head = run(&world, "HEAD", "/files/blk/big.bin");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("1000"));
        assert!(head.body.is_empty());
        assert_eq!(origin_ranges(&world), vec![range(0, 1)], "the probe only");
        let again = request(
            &world,
            "GET",
            "/files/blk/big.bin",
            &[("if-none-match", "\"v1\"")],
        );
        assert_eq!(again.status, 304);
        assert_eq!(origin_ranges(&world).len(), 1, "the size is known");
    }

    /// An empty file: 200 with no body, any range 416.
    #[test]
    fn empty_files() {
        let (world, _) = blocks_world(0);
        let whole = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!((whole.status, whole.body.len()), (200, 0));
        assert_eq!(whole.header("content-length"), Some("0"));
        let ranged = request(
            &world,
            "GET",
            "/files/blk/big.bin",
            &[("range", "bytes=0-")],
        );
        assert_eq!(ranged.status, 416);
    }

    /// A file rewritten at the origin: once a hit's check after the interval sees it, the old
    /// blocks are not served; the new file's bytes and size are.
    #[test]
    fn a_changed_file_is_read_again() {
        let (world, old) = blocks_world(BLOCK_BYTES + 10);
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").body, old);
        let new = pattern(2 * BLOCK_BYTES + 3, 2);
        world.origin.put_file(URL, &new, "\"v2\"");
        world.clock.now.set(world.clock.now.get() + 1_500);
        // This hit is old (the check runs after it), the next reads the new file.
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").body, old);
        world.clock.now.set(world.clock.now.get() + 1_500);
        let read = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(read.header("etag"), Some("\"v2\""));
        assert_eq!(read.body, new);
        let ranged = request(
            &world,
            "GET",
            "/files/blk/big.bin",
            &[("range", "bytes=-3")],
        );
        assert_eq!(ranged.body, new[new.len() - 3..]);
    }

    /// A stale isolate memo meets the index's newer record in a block lookup: the read starts
    /// again with the new size instead of answering old bytes.
    #[test]
    fn a_newer_record_restarts_the_read() {
        let (world, old) = blocks_world(100);
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").body, old);
        let new = pattern(300, 3);
        world.origin.put_file(URL, &new, "\"v3\"");
        // Another instance recorded the new version.
        let meta = crate::source::files::FileMeta {
            size: 300,
            etag: Some("\"v3\"".into()),
            last_modified: None,
        };
        world.index.file_validators.borrow_mut().insert(
            crate::source::files::file_id(URL, None),
            (meta.validator(), world.clock.now.get()),
        );
        let read = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(read.status, 200);
        assert_eq!(read.body, new);
        assert_eq!(read.header("content-length"), Some("300"));
    }

    /// An S3 prefix maps through the dataset's endpoint and its reads are signed; the same
    /// prefix without credentials is refused and never gets the signed bytes.
    #[test]
    fn s3_prefixes_are_signed() {
        let world = world_with(
            r#", "s3f": {"kind": "files", "url": "s3://bkt/data", "block_size": 65536,
                  "s3_endpoint": {"endpoint": "http://private.test"},
                  "s3_credentials": {"access_key_id_secret": "ORIGIN_KEY_ID",
                                     "secret_access_key_secret": "ORIGIN_SECRET"}},
                "s3f-open": {"kind": "files", "url": "s3://bkt/data/", "block_size": 65536,
                  "s3_endpoint": {"endpoint": "http://private.test"}}"#,
        );
        let bytes = pattern(70_000, 4);
        world
            .origin
            .put_file("http://private.test/bkt/data/x%20y.bin", &bytes, "\"s\"");
        let signed = run(&world, "GET", "/files/s3f/x%20y.bin");
        assert_eq!(
            signed.status,
            200,
            "{}",
            String::from_utf8_lossy(&signed.body)
        );
        assert_eq!(signed.body, bytes);
        let headers = world.origin.headers.borrow().clone();
        assert!(headers
            .iter()
            .all(|h| h.iter().any(|(name, _)| name == "authorization")));
        let open = run(&world, "GET", "/files/s3f-open/x%20y.bin");
        assert_eq!(open.status, 403, "{}", String::from_utf8_lossy(&open.body));
    }

    /// The listing shows the prefix, the block size and where to read.
    #[test]
    fn listed_with_prefix_and_block_size() {
        let (world, _) = blocks_world(10);
        let listing = json_body(&run(&world, "GET", "/api/datasets"));
        let row = crate::http::testing::dataset_row(&listing, "blk");
        assert_eq!(row["kind"], "files");
        assert_eq!(row["files"], "/files/blk/");
        assert_eq!(row["url"], "http://origin.test/data/");
        assert_eq!(row["block_size"], 65_536);
        assert_eq!(row["state"], "ready");
    }

    /// If-Range: the range while the file has that validator, else the whole current file.
    #[test]
    fn if_range_guards_resumed_reads() {
        let (world, bytes) = blocks_world(1000);
        let ranged = |if_range: &str| {
            request(
                &world,
                "GET",
                "/files/blk/big.bin",
                &[("range", "bytes=10-19"), ("if-range", if_range)],
            )
        };
        let same = ranged("\"v1\"");
        assert_eq!((same.status, same.body.as_slice()), (206, &bytes[10..20]));
        let other = ranged("\"v0\"");
        assert_eq!((other.status, other.body.len()), (200, 1000));
        assert_eq!(other.header("content-range"), None);
        assert_eq!(
            ranged("W/\"v1\"").status,
            200,
            "weak validators never match"
        );
    }

    /// Answers that read no block (304, HEAD) still check the file when due: a client that
    /// only revalidates learns of a rewrite.
    #[test]
    fn revalidations_check_the_file() {
        let (world, _) = blocks_world(1000);
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").status, 200);
        world.origin.put_file(URL, &pattern(500, 5), "\"v2\"");
        world.clock.now.set(world.clock.now.get() + 1_500);
        let revalidated = request(
            &world,
            "GET",
            "/files/blk/big.bin",
            &[("if-none-match", "\"v1\"")],
        );
        assert_eq!(revalidated.status, 304, "the check runs after this answer");
        world.clock.now.set(world.clock.now.get() + 1_500);
        let head = run(&world, "HEAD", "/files/blk/big.bin");
        assert_eq!(head.header("etag"), Some("\"v2\""));
        assert_eq!(head.header("content-length"), Some("500"));
    }

    /// An index record older than what the isolate learned from the origin (a lost
    /// compare-and-set) does not send the read back to the old version: the origin decides.
    #[test]
    fn an_older_record_does_not_win() {
        let (world, _) = blocks_world(100);
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").status, 200);
        let new = pattern(300, 6);
        world.origin.put_file(URL, &new, "\"v2\"");
        let meta = crate::source::files::FileMeta {
            size: 300,
            etag: Some("\"v2\"".into()),
            last_modified: None,
        };
        let id = crate::source::files::file_id(URL, None);
        world.file_checks.remember(&id, meta, world.clock.now.get());
        let read = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(read.status, 200, "{}", String::from_utf8_lossy(&read.body));
        assert_eq!(read.body, new);
    }

    /// A put that fails in a retryable way is tried again after growing pauses (the block is
    /// a hit after); one that fails every try stores nothing (the next read fetches it again).
    #[test]
    fn transient_put_failures_are_retried_with_pauses() {
        use crate::cache::write_back::PUT_RETRY_PAUSES_MS;
        let tries = PUT_RETRY_PAUSES_MS.len() + 1;
        let (world, bytes) = blocks_world(1000);
        world.store.fail_next_puts.set(tries - 1);
        let before = world.clock.now.get();
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").body, bytes);
        let warm = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(warm.header("x-cache"), Some("HIT"));
        assert_eq!(world.clock.sleeps.get(), tries - 1);
        assert_eq!(
            world.clock.now.get() - before,
            PUT_RETRY_PAUSES_MS.iter().sum::<u64>()
        );
        let (mut world, bytes) = blocks_world(1000);
        world.write_backs_may_fail = true;
        world.store.fail_next_puts.set(tries);
        assert_eq!(run(&world, "GET", "/files/blk/big.bin").body, bytes);
        let again = run(&world, "GET", "/files/blk/big.bin");
        assert_eq!(
            (again.header("x-cache"), again.body.len()),
            (Some("MISS"), 1000)
        );
    }

    /// Bad paths, missing files, other kinds of dataset: clear JSON errors.
    #[test]
    fn refusals() {
        let (world, _) = blocks_world(10);
        for path in [
            "/files/blk/a/../big.bin",
            "/files/blk/a%2Fb",
            "/files/blk/a//b",
        ] {
            let answer = run(&world, "GET", path);
            assert_eq!(answer.status, 400, "{path}");
            assert!(json_body(&answer)["message"].is_string(), "{path}");
        }
        let missing = run(&world, "GET", "/files/blk/nothing.bin");
        assert_eq!(missing.status, 404);
        assert!(json_body(&missing)["message"]
            .as_str()
            .unwrap()
            .contains("no such file"));
        assert_eq!(
            run(&world, "GET", "/files/demo/x.bin").status,
            404,
            "kerchunk"
        );
        assert_eq!(run(&world, "GET", "/files/nope/x.bin").status, 404);
        assert_eq!(run(&world, "GET", "/zarr/blk/.zmetadata").status, 404);
        assert_eq!(run(&world, "POST", "/files/blk/big.bin").status, 405);
    }
}
