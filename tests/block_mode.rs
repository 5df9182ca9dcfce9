//! Block mode on the real stack (`scripts/test`): `/files/{dataset}/{path}` serves the files of
//! an HTTP origin by byte ranges and caches them as aligned blocks. `t-files` (64 KiB blocks, the
//! file checked every second) and `t-files-mb` (1 MiB blocks) front nginx's docroot; each test
//! writes its own random files under `blocks-{test}-{pid}-{nanos}/` there, so that no two tests
//! or runs share cache state, and reads nginx's access log (with each request's `Range`) for what
//! the workers fetched:
//!
//! - random ranges (inside, open-ended, suffix, across blocks, the last partial block, past the
//!   end) answer exactly what the file's bytes say, cold and warm;
//! - a cold full read fetches every byte from nginx exactly once, block-aligned; a warm read
//!   fetches nothing;
//! - 50 concurrent cold readers on both worker instances fetch every block once;
//! - `HEAD` answers nginx's length and validators, `If-None-Match` a 304;
//! - a file rewritten in place is served new within seconds, never mixed with the old bytes;
//! - bad paths are 400, missing files and datasets 404, ranges past the end 416;
//! - `t-files-mb` fetches 1 MiB blocks.
//!
//! The random tests print their seed; `ZEC_BLOCK_SEED=N` repeats a run.
//!
//! The integration tests are `#[ignore]`d so that a bare `cargo test` never needs the stack.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{poll, send, stack_var, Answer};

/// `t-files`' block size.
const BLOCK: u64 = 64 * 1024;
/// `t-files-mb`'s block size.
const BLOCK_MB: u64 = 1024 * 1024;

/// splitmix64: a tiny deterministic generator, so that a failing run can be repeated.
struct Rng(u64);

impl Rng {
    /// The generator for `test`, seeded from `ZEC_BLOCK_SEED` when set, else from the clock;
    /// prints the seed.
    fn for_test(test: &str) -> Self {
        let seed = std::env::var("ZEC_BLOCK_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                now.as_secs().wrapping_mul(1_000_000_007)
                    ^ u64::from(now.subsec_nanos())
                    ^ u64::from(std::process::id()).rotate_left(32)
            });
        println!("{test}: seed {seed} (ZEC_BLOCK_SEED={seed} repeats it)");
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `n` random bytes.
    fn bytes(&mut self, n: u64) -> Vec<u8> {
        let n = at(n);
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Shuffles `items` (Fisher-Yates).
    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = at(self.below(i as u64 + 1));
            items.swap(i, j);
        }
    }
}

/// A byte offset as an index.
fn at(offset: u64) -> usize {
    usize::try_from(offset).unwrap()
}

/// A directory of nginx's docroot that no other test or run uses: `blocks-{test}-{pid}-{nanos}`.
fn test_dir(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("blocks-{test}-{}-{nanos}", std::process::id())
}

/// A file this test wrote into nginx's docroot, and its bytes.
struct OriginFile {
    /// Its path under the docroot, which is also its path under the `files` datasets.
    name: String,
    bytes: Vec<u8>,
}

impl OriginFile {
    /// Writes `bytes` as `{dir}/{file}` in nginx's docroot (`$ZEC_STATE_DIR/demo`).
    fn write(dir: &str, file: &str, bytes: Vec<u8>) -> Self {
        let written = Self {
            name: format!("{dir}/{file}"),
            bytes,
        };
        let disk = written.disk_path();
        std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
        std::fs::write(&disk, &written.bytes).unwrap();
        written
    }

    fn disk_path(&self) -> PathBuf {
        PathBuf::from(stack_var("ZEC_STATE_DIR"))
            .join("demo")
            .join(&self.name)
    }

    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// The worker path of the file in `dataset`.
    fn path(&self, dataset: &str) -> String {
        format!("/files/{dataset}/{}", self.name)
    }

    /// nginx's own answer to `HEAD` of the file.
    fn origin_head(&self) -> Answer {
        let head = send(
            &stack_var("ZEC_ORIGIN_URL"),
            "HEAD",
            &format!("/{}", self.name),
            &[],
            None,
        );
        assert_eq!(head.status, 200, "nginx's HEAD of {}", self.name);
        head
    }

    /// nginx's validators of the file as it is now.
    fn validators(&self) -> Validators {
        let head = self.origin_head();
        Validators {
            etag: head.header("etag").expect("nginx sends an ETag").to_owned(),
            last_modified: head
                .header("last-modified")
                .expect("nginx sends Last-Modified")
                .to_owned(),
        }
    }
}

/// The origin's validators, which the worker's answers carry.
struct Validators {
    etag: String,
    last_modified: String,
}

/// A request's `Range`.
#[derive(Clone, Copy, Debug)]
enum Ask {
    /// No `Range`.
    Whole,
    /// `bytes=first-last`
    Span(u64, u64),
    /// `bytes=first-`
    From(u64),
    /// `bytes=-n`
    Suffix(u64),
}

/// What RFC 9110 says a file of some size answers to an [`Ask`].
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expected {
    /// 200, the whole file.
    Whole,
    /// 206 with these first and last bytes.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

impl Ask {
    fn header(self) -> Option<String> {
        match self {
            Ask::Whole => None,
            Ask::Span(first, last) => Some(format!("bytes={first}-{last}")),
            Ask::From(first) => Some(format!("bytes={first}-")),
            Ask::Suffix(n) => Some(format!("bytes=-{n}")),
        }
    }

    /// The answer for a file of `size` bytes: a range starting at or past the end is
    /// unsatisfiable (any range of an empty file is), a last byte past the end is clipped, a
    /// suffix longer than the file is the whole file.
    fn expected(self, size: u64) -> Expected {
        match self {
            Ask::Whole => Expected::Whole,
            Ask::Span(first, _) | Ask::From(first) if first >= size => Expected::Unsatisfiable,
            Ask::Span(first, last) => Expected::Partial(first, last.min(size - 1)),
            Ask::From(first) => Expected::Partial(first, size - 1),
            Ask::Suffix(_) if size == 0 => Expected::Unsatisfiable,
            Ask::Suffix(n) => Expected::Partial(size - n.min(size), size - 1),
        }
    }
}

/// GETs `path` with the `Range` of `ask`.
fn get(base: &str, path: &str, ask: Ask) -> Answer {
    let range = ask.header();
    let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", r.as_str())).collect();
    send(base, "GET", path, &headers, None)
}

/// Asserts that `answer` is what `ask` of `file` should answer (status, body, `Content-Range`,
/// `Content-Length`, `Accept-Ranges`, the origin's validators), and returns what was expected.
fn check(
    answer: &Answer,
    ask: Ask,
    file: &OriginFile,
    origin: &Validators,
    context: &str,
) -> Expected {
    let size = file.size();
    let expected = ask.expected(size);
    let context = format!("{context}: {ask:?} of {} ({size} bytes)", file.name);
    let (status, range, body) = match expected {
        Expected::Unsatisfiable => {
            assert_eq!(answer.status, 416, "{context}: {}", answer.text());
            assert_eq!(
                answer.header("content-range"),
                Some(format!("bytes */{size}").as_str()),
                "{context}"
            );
            return expected;
        }
        Expected::Whole => (200, None, &file.bytes[..]),
        Expected::Partial(first, last) => (
            206,
            Some(format!("bytes {first}-{last}/{size}")),
            &file.bytes[at(first)..=at(last)],
        ),
    };
    assert_eq!(answer.status, status, "{context}: {}", answer.text());
    assert!(
        answer.body == body,
        "{context}: {} bytes that differ from the file's {} (first difference at {:?})",
        answer.body.len(),
        body.len(),
        answer.body.iter().zip(body).position(|(a, b)| a != b)
    );
    assert_eq!(
        answer.header("content-range"),
        range.as_deref(),
        "{context}"
    );
    let length = body.len().to_string();
    if body.is_empty() {
        // An empty file's 200: an empty body may come without a Content-Length.
        assert!(
            matches!(answer.header("content-length"), None | Some("0")),
            "{context}: {:?}",
            answer.header("content-length")
        );
    } else {
        assert_eq!(
            answer.header("content-length"),
            Some(length.as_str()),
            "{context}"
        );
    }
    assert_eq!(answer.header("accept-ranges"), Some("bytes"), "{context}");
    assert_eq!(
        answer.header("etag"),
        Some(origin.etag.as_str()),
        "{context}"
    );
    assert_eq!(
        answer.header("last-modified"),
        Some(origin.last_modified.as_str()),
        "{context}"
    );
    expected
}

/// About 60 ranges of a file of `size` bytes in random order: the whole file, single bytes,
/// inside spans, open-ended and suffix ranges (some longer than the file), spans across block
/// boundaries, the last (partial) block, last bytes past the end, and ranges past the end.
fn random_asks(rng: &mut Rng, size: u64, block: u64) -> Vec<Ask> {
    if size == 0 {
        return vec![
            Ask::Whole,
            Ask::Span(0, 0),
            Ask::From(0),
            Ask::Suffix(1),
            Ask::Suffix(10),
            Ask::Span(5, 10),
        ];
    }
    let last_block = (size - 1) / block * block;
    let mut asks = vec![
        Ask::Whole,
        Ask::Span(0, 0),
        Ask::Span(size - 1, size - 1),
        Ask::Span(0, size - 1),
        Ask::From(0),
        Ask::From(last_block),
        Ask::Span(last_block, size + 5),
        Ask::Suffix(1),
        Ask::Suffix(size),
        Ask::Suffix(size + 1_000),
        Ask::From(size),
        Ask::Span(size, size + 10),
    ];
    while asks.len() < 60 {
        let first = rng.below(size);
        asks.push(match rng.below(7) {
            0 => Ask::Span(first, first + rng.below((size - first).min(3 * block))),
            1 => Ask::From(first),
            2 => Ask::Suffix(1 + rng.below(size + block)),
            3 if size > block => {
                // Across the boundary at the start of block k (1 ≤ k, k·block < size).
                let boundary = (1 + rng.below((size - 1) / block)) * block;
                let before = 1 + rng.below(100.min(boundary));
                Ask::Span(boundary - before, boundary + rng.below(100))
            }
            4 => Ask::Span(first, first),
            5 => {
                let past = size + rng.below(block);
                if rng.below(2) == 0 {
                    Ask::From(past)
                } else {
                    Ask::Span(past, past + rng.below(block))
                }
            }
            _ => Ask::Span(first, size + rng.below(block)),
        });
    }
    rng.shuffle(&mut asks);
    asks
}

/// A GET of a file in nginx's access log.
#[derive(Debug)]
struct Logged {
    status: u16,
    /// `$body_bytes_sent`.
    sent: u64,
    /// The `Range` header, if any.
    range: Option<String>,
}

/// The GETs of `name` in nginx's access log so far, whose lines read
/// `$remote_addr [$time_iso8601] "$request" $status $body_bytes_sent "$http_range"`.
fn logged_gets(name: &str) -> Vec<Logged> {
    let log = PathBuf::from(stack_var("ZEC_STATE_DIR")).join("nginx/access.log");
    let request = format!("\"GET /{name} HTTP/");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let after = &line[line.find(&request)? + request.len()..];
            let mut fields = after[after.find('"')? + 1..].split_whitespace();
            let status = fields.next()?.parse().ok()?;
            let sent = fields.next()?.parse().ok()?;
            let range = fields.next().unwrap_or("\"-\"").trim_matches('"');
            Some(Logged {
                status,
                sent,
                range: (range != "-").then(|| range.to_owned()),
            })
        })
        .collect()
}

/// The worker's one-byte probes of the file's size and validator (`Range: bytes=0-0`).
fn probes(name: &str) -> usize {
    logged_gets(name)
        .iter()
        .filter(|g| g.range.as_deref() == Some("bytes=0-0"))
        .count()
}

/// The bytes nginx sent to fill blocks of `name` (`size` bytes): its 200 and 206 answers to
/// GETs but the one-byte probes, as (first, last) byte, the last clipped to the file.
fn block_fetches(name: &str, size: u64) -> Vec<(u64, u64)> {
    logged_gets(name)
        .into_iter()
        .filter(|g| matches!(g.status, 200 | 206) && g.range.as_deref() != Some("bytes=0-0"))
        .map(|g| {
            let (first, last) = match &g.range {
                None => (0, size.saturating_sub(1)),
                Some(range) => {
                    let spec = range.strip_prefix("bytes=").unwrap_or_else(|| {
                        panic!("{name}: a Range nginx logged is not bytes=: {g:?}")
                    });
                    let (first, last) = spec.split_once('-').unwrap();
                    let first: u64 = first
                        .parse()
                        .unwrap_or_else(|_| panic!("{name}: not one range from an offset: {g:?}"));
                    let last = if last.is_empty() {
                        size - 1
                    } else {
                        last.parse::<u64>()
                            .unwrap_or_else(|_| panic!("{name}: not one range: {g:?}"))
                            .min(size - 1)
                    };
                    (first, last)
                }
            };
            assert_eq!(
                g.sent,
                last + 1 - first,
                "{name}: nginx sent other than the range's bytes: {g:?}"
            );
            (first, last)
        })
        .collect()
}

/// How many times each block of `block` bytes of a `size`-byte file was fetched; panics on a
/// fetch not aligned to blocks (from a block's start to a block's end or the file's end).
fn block_counts(fetches: &[(u64, u64)], size: u64, block: u64) -> Vec<u32> {
    let mut counts = vec![0; at(size.div_ceil(block))];
    for &(first, last) in fetches {
        assert!(
            first % block == 0 && ((last + 1) % block == 0 || last == size - 1),
            "a fetch not aligned to {block}-byte blocks: bytes={first}-{last} of {size}: {fetches:?}"
        );
        for count in &mut counts[at(first / block)..=at(last / block)] {
            *count += 1;
        }
    }
    counts
}

/// Asserts that `fetches` cover every byte of a `size`-byte file exactly once.
fn assert_every_byte_once(fetches: &[(u64, u64)], size: u64) {
    let mut sorted = fetches.to_vec();
    sorted.sort_unstable();
    let mut next = 0;
    for &(first, last) in &sorted {
        assert!(
            first <= next,
            "bytes {next}-{} never fetched: {sorted:?}",
            first - 1
        );
        assert!(
            first >= next,
            "bytes {first}-{} fetched twice: {sorted:?}",
            next - 1
        );
        next = last + 1;
    }
    assert_eq!(next, size, "bytes from {next} never fetched: {sorted:?}");
}

/// Until every block `wanted` says is fetched at least once, by nginx's log (its lines are
/// written as its answers end): the fetches and their counts per block.
fn wait_for_fetches(
    file: &OriginFile,
    block: u64,
    wanted: impl Fn(usize) -> bool,
) -> (Vec<(u64, u64)>, Vec<u32>) {
    poll(
        "nginx's log of the block fetches",
        Duration::from_secs(10),
        || {
            let fetches = block_fetches(&file.name, file.size());
            let counts = block_counts(&fetches, file.size(), block);
            if (0..counts.len()).all(|b| !wanted(b) || counts[b] > 0) {
                Ok((fetches, counts))
            } else {
                Err(format!("{counts:?}"))
            }
        },
    )
}

/// Write-backs run after the answers: reads the whole file until it is a HIT (every block in
/// the cache; the files here are under the 4 MiB that `X-Cache` speaks for), checking each read.
fn wait_until_cached(base: &str, file: &OriginFile, dataset: &str, origin: &Validators) {
    poll("every block cached", Duration::from_secs(10), || {
        let whole = get(base, &file.path(dataset), Ask::Whole);
        check(&whole, Ask::Whole, file, origin, "until cached");
        (whole.x_cache() == "HIT")
            .then_some(())
            .ok_or_else(|| whole.x_cache().to_owned())
    });
}

/// About 60 random ranges of files of several blocks and a partial one, whole blocks, less than
/// a block, one byte and none answer what the files' bytes say: cold (the first answer a MISS),
/// then warm (every answer a HIT).
#[test]
#[ignore = "needs the stack from scripts/test"]
fn random_ranges_answer_the_files_bytes_cold_and_warm() {
    let mut rng = Rng::for_test("random_ranges_answer_the_files_bytes_cold_and_warm");
    let base = stack_var("ZEC_BASE_URL");
    let dir = test_dir("random");
    for (name, size) in [
        ("blocks-and-a-part.bin", 4 * BLOCK + 12_345),
        ("whole-blocks.bin", 3 * BLOCK),
        ("under-a-block.bin", 1_000),
        ("one-byte.bin", 1),
        ("empty.bin", 0),
    ] {
        let file = OriginFile::write(&dir, name, rng.bytes(size));
        let origin = file.validators();
        let path = file.path("t-files");
        let asks = random_asks(&mut rng, size, BLOCK);
        let mut first = true;
        for (i, &ask) in asks.iter().enumerate() {
            let answer = get(&base, &path, ask);
            let expected = check(&answer, ask, &file, &origin, &format!("cold #{i}"));
            if size > 0 && expected != Expected::Unsatisfiable && first {
                assert_eq!(
                    answer.x_cache(),
                    "MISS",
                    "cold #{i} {ask:?}: the first read"
                );
                first = false;
            }
        }
        if size == 0 {
            continue; // no block to cache; a second pass would say the same
        }
        wait_until_cached(&base, &file, "t-files", &origin);
        for (i, &ask) in asks.iter().enumerate() {
            let answer = get(&base, &path, ask);
            if check(&answer, ask, &file, &origin, &format!("warm #{i}")) != Expected::Unsatisfiable
            {
                assert_eq!(answer.x_cache(), "HIT", "warm #{i} {ask:?} of {name}");
            }
        }
    }
}

/// A cold full read fetches every byte from nginx exactly once, in block-aligned ranges, after
/// one probe of the file; once written back, full and ranged reads fetch nothing.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn a_cold_full_read_fetches_every_block_once() {
    let mut rng = Rng::for_test("a_cold_full_read_fetches_every_block_once");
    let base = stack_var("ZEC_BASE_URL");
    let size = 5 * BLOCK + 777;
    let file = OriginFile::write(&test_dir("once"), "file.bin", rng.bytes(size));
    let origin = file.validators();
    let path = file.path("t-files");
    let cold = get(&base, &path, Ask::Whole);
    check(&cold, Ask::Whole, &file, &origin, "cold");
    assert_eq!(cold.x_cache(), "MISS");
    wait_for_fetches(&file, BLOCK, |_| true);
    // Lines of any straggling fetch would be written by now.
    std::thread::sleep(Duration::from_millis(300));
    let fetches = block_fetches(&file.name, size);
    block_counts(&fetches, size, BLOCK);
    assert_every_byte_once(&fetches, size);
    assert_eq!(probes(&file.name), 1, "one probe of the size and validator");

    // Polling reads may still miss (and fetch) while the write-backs run: the counts above were
    // taken before them. Once a read is a HIT, no read fetches a block (the periodic check's
    // probes after hits are not block fetches).
    std::thread::sleep(Duration::from_secs(1));
    wait_until_cached(&base, &file, "t-files", &origin);
    let before = block_fetches(&file.name, size);
    let warm = get(&base, &path, Ask::Whole);
    check(&warm, Ask::Whole, &file, &origin, "warm");
    assert_eq!(warm.x_cache(), "HIT");
    let across = Ask::Span(BLOCK - 7, 3 * BLOCK + 7);
    let part = get(&base, &path, across);
    check(&part, across, &file, &origin, "warm");
    assert_eq!(part.x_cache(), "HIT");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        block_fetches(&file.name, size),
        before,
        "warm reads reached nginx"
    );
}

/// 50 concurrent readers of overlapping random ranges of a cold file, alternating between the
/// two worker instances, all get the file's bytes, and nginx sends every block they read once.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn concurrent_cold_readers_fetch_each_block_once() {
    let mut rng = Rng::for_test("concurrent_cold_readers_fetch_each_block_once");
    let bases = [stack_var("ZEC_BASE_URL"), stack_var("ZEC_BASE_URL_2")];
    let size = 12 * BLOCK + 4_321;
    let file = OriginFile::write(&test_dir("concurrent"), "file.bin", rng.bytes(size));
    let origin = file.validators();
    let path = file.path("t-files");
    let asks: Vec<Ask> = (0..50)
        .map(|i| match i % 10 {
            0 => Ask::Suffix(1 + rng.below(3 * BLOCK)),
            1 => Ask::From(size - 1 - rng.below(3 * BLOCK)),
            _ => {
                let first = rng.below(size);
                Ask::Span(first, first + rng.below(4 * BLOCK))
            }
        })
        .collect();
    let barrier = std::sync::Barrier::new(asks.len());
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let readers: Vec<_> = asks
            .iter()
            .enumerate()
            .map(|(i, &ask)| {
                let (base, path, barrier) = (&bases[i % bases.len()], &path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    get(base, path, ask)
                })
            })
            .collect();
        readers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut read = vec![false; at(size.div_ceil(BLOCK))];
    for (i, (answer, &ask)) in answers.iter().zip(&asks).enumerate() {
        let context = format!("reader {i} on {}", bases[i % bases.len()]);
        if let Expected::Partial(first, last) = check(answer, ask, &file, &origin, &context) {
            read[at(first / BLOCK)..=at(last / BLOCK)].fill(true);
        }
    }
    wait_for_fetches(&file, BLOCK, |b| read[b]);
    std::thread::sleep(Duration::from_millis(500));
    let fetches = block_fetches(&file.name, size);
    let counts = block_counts(&fetches, size, BLOCK);
    // Readers of a block in one instance share its fetch; the other instance's readers find the
    // lease and wait for the stored block. Only a lease wait that timed out (`LEASE_WAIT_MS`,
    // 5 s by default, against nginx on loopback answering in milliseconds) would let a second
    // instance fetch a block again: in this stack that is a failure too.
    for (b, &count) in counts.iter().enumerate() {
        if read[b] {
            assert_eq!(
                count, 1,
                "block {b} (read) fetched {count} times: {fetches:?}"
            );
        } else {
            assert!(
                count <= 1,
                "block {b} (unread) fetched {count} times: {fetches:?}"
            );
        }
    }
}

/// `HEAD` answers what nginx's `HEAD` says (length, `ETag`, `Last-Modified`, `Accept-Ranges`),
/// cold and warm, without a body; `If-None-Match` with the `ETag` is a 304, with another a 200.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn head_and_if_none_match_answer_the_origins_validators() {
    let mut rng = Rng::for_test("head_and_if_none_match_answer_the_origins_validators");
    let base = stack_var("ZEC_BASE_URL");
    let file = OriginFile::write(&test_dir("head"), "file.bin", rng.bytes(2 * BLOCK + 100));
    let path = file.path("t-files");
    let nginx = file.origin_head();
    let origin = file.validators();
    let same_headers = |answer: &Answer, context: &str| {
        for name in ["content-length", "etag", "last-modified", "accept-ranges"] {
            assert_eq!(answer.header(name), nginx.header(name), "{context}: {name}");
        }
        assert_eq!(answer.header("accept-ranges"), Some("bytes"), "{context}");
    };
    let cold = send(&base, "HEAD", &path, &[], None);
    assert_eq!(cold.status, 200, "{}", cold.text());
    assert!(cold.body.is_empty(), "a HEAD answer has no body");
    same_headers(&cold, "cold HEAD");
    let full = get(&base, &path, Ask::Whole);
    check(&full, Ask::Whole, &file, &origin, "GET");
    same_headers(&full, "GET");
    wait_until_cached(&base, &file, "t-files", &origin);
    let warm = send(&base, "HEAD", &path, &[], None);
    assert_eq!(warm.status, 200, "{}", warm.text());
    assert!(warm.body.is_empty(), "a HEAD answer has no body");
    same_headers(&warm, "warm HEAD");

    let etag = origin.etag.as_str();
    let not_modified = send(&base, "GET", &path, &[("If-None-Match", etag)], None);
    assert_eq!(not_modified.status, 304, "{}", not_modified.text());
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag));
    let other = send(&base, "GET", &path, &[("If-None-Match", "\"other\"")], None);
    check(
        &other,
        Ask::Whole,
        &file,
        &origin,
        "If-None-Match with another ETag",
    );
}

/// A file rewritten in place (same size, every byte changed, a later modification second, so
/// nginx's `ETag` changes) is served new through `t-files` within seconds of the periodic check;
/// no answer mixes old and new bytes or carries the other version's `ETag`, and once the new
/// bytes are served the old ones never are again.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn a_file_rewritten_in_place_is_served_new_never_mixed() {
    let mut rng = Rng::for_test("a_file_rewritten_in_place_is_served_new_never_mixed");
    let base = stack_var("ZEC_BASE_URL");
    let mut file = OriginFile::write(
        &test_dir("rewrite"),
        "file.bin",
        rng.bytes(3 * BLOCK + 5_000),
    );
    let path = file.path("t-files");
    let old_origin = file.validators();
    let first = get(&base, &path, Ask::Whole);
    check(&first, Ask::Whole, &file, &old_origin, "before the rewrite");
    wait_until_cached(&base, &file, "t-files", &old_origin);
    let old = file.bytes.clone();
    let new: Vec<u8> = old.iter().map(|b| b ^ 0xa5).collect();
    // nginx's ETag is the modification time (seconds) and size: let a second pass first.
    std::thread::sleep(Duration::from_millis(1_100));
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .open(file.disk_path())
        .unwrap();
    handle.write_all(&new).unwrap();
    handle.sync_all().unwrap();
    drop(handle);
    let new_origin = file.validators();
    assert_ne!(
        new_origin.etag, old_origin.etag,
        "nginx's ETag did not change"
    );

    let across = Ask::Span(BLOCK - 10, 2 * BLOCK + 10);
    let (a, b) = (at(BLOCK - 10), at(2 * BLOCK + 10));
    let version = |answer: &Answer, whole: bool, context: &str| -> bool {
        let (old_body, new_body) = if whole {
            (&old[..], &new[..])
        } else {
            (&old[a..=b], &new[a..=b])
        };
        assert!(
            matches!(answer.status, 200 | 206),
            "{context}: {}",
            answer.text()
        );
        let is_new = answer.body == new_body;
        assert!(
            is_new || answer.body == old_body,
            "{context}: neither the old nor the new bytes (a mix?)"
        );
        let etag = if is_new {
            &new_origin.etag
        } else {
            &old_origin.etag
        };
        assert_eq!(
            answer.header("etag"),
            Some(etag.as_str()),
            "{context}: the ETag of the bytes"
        );
        is_new
    };
    poll("the new bytes", Duration::from_secs(10), || {
        // Hits trigger the check (at most every second, after their answer).
        let part = get(&base, &path, across);
        version(&part, false, "a range while polling");
        let whole = get(&base, &path, Ask::Whole);
        if version(&whole, true, "the file while polling") {
            Ok(())
        } else {
            std::thread::sleep(Duration::from_millis(200));
            Err("still the old bytes".to_owned())
        }
    });
    file.bytes = new.clone();
    for _ in 0..3 {
        let part = get(&base, &path, across);
        assert!(
            version(&part, false, "a range after the new bytes"),
            "the old bytes again"
        );
    }
    wait_until_cached(&base, &file, "t-files", &new_origin);
    let mut asks = random_asks(&mut rng, file.size(), BLOCK);
    asks.truncate(20);
    for ask in asks {
        check(
            &get(&base, &path, ask),
            ask,
            &file,
            &new_origin,
            "the new bytes, cached",
        );
    }
}

/// Encoded slashes and empty segments are 400 (a dot segment is resolved by URL parsing before
/// the worker sees it: never a traversal); a file nginx does not have and an unknown dataset are
/// 404 with a JSON error; ranges past the end are 416, cold and warm.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn bad_paths_missing_files_and_ranges_past_the_end() {
    let mut rng = Rng::for_test("bad_paths_missing_files_and_ranges_past_the_end");
    let base = stack_var("ZEC_BASE_URL");
    let dir = test_dir("paths");
    let file = OriginFile::write(&dir, "present.bin", rng.bytes(1_000));
    let origin = file.validators();
    for bad in [
        format!("{dir}/..%2F..%2Fetc%2Fpasswd"),
        format!("{dir}/a%2Fb"),
        format!("{dir}%2Fpresent.bin"),
        format!("{dir}//present.bin"),
        format!("{dir}/present.bin/"),
    ] {
        let answer = get(&base, &format!("/files/t-files/{bad}"), Ask::Whole);
        assert_eq!(answer.status, 400, "{bad}: {}", answer.text());
        assert_eq!(answer.json()["error"], "bad_request", "{bad}");
    }
    for dots in [
        format!("/files/t-files/{dir}/../../etc/passwd"),
        format!("/files/t-files/{dir}/%2E%2E/%2E%2E/etc/passwd"),
    ] {
        let answer = get(&base, &dots, Ask::Whole);
        assert!(
            matches!(answer.status, 400 | 404),
            "{dots}: {}",
            answer.status
        );
    }
    for _ in 0..2 {
        let missing = get(
            &base,
            &format!("/files/t-files/{dir}/absent.bin"),
            Ask::Whole,
        );
        assert_eq!(missing.status, 404, "{}", missing.text());
        assert_eq!(missing.header("content-type"), Some("application/json"));
        let error = missing.json();
        assert!(
            error["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{error}"
        );
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
    let unknown = get(
        &base,
        &format!("/files/no-such-dataset/{}", file.name),
        Ask::Whole,
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert!(unknown.json()["error"].is_string());

    let past = [
        Ask::From(1_000),
        Ask::Span(1_000, 1_000),
        Ask::Span(5_000, 6_000),
    ];
    for pass in ["cold", "warm"] {
        for ask in past {
            check(
                &get(&base, &file.path("t-files"), ask),
                ask,
                &file,
                &origin,
                pass,
            );
        }
        if pass == "cold" {
            wait_until_cached(&base, &file, "t-files", &origin);
        }
    }
}

/// `t-files-mb` caches 1 MiB blocks: a cold small range fetches exactly its block, and a 3.5 MiB
/// file read whole and by ranges (across blocks, the last partial one, suffix, past the end)
/// equals the file, cold and warm, every fetch aligned to 1 MiB.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn one_mib_blocks_read_whole_and_by_ranges() {
    let mut rng = Rng::for_test("one_mib_blocks_read_whole_and_by_ranges");
    let base = stack_var("ZEC_BASE_URL");
    let size = 3 * BLOCK_MB + BLOCK_MB / 2;
    let file = OriginFile::write(&test_dir("mb"), "file.bin", rng.bytes(size));
    let origin = file.validators();
    let path = file.path("t-files-mb");
    let small = Ask::Span(BLOCK_MB + 1_000, BLOCK_MB + 2_000);
    let answer = get(&base, &path, small);
    check(&answer, small, &file, &origin, "cold");
    assert_eq!(answer.x_cache(), "MISS");
    let (fetches, _) = wait_for_fetches(&file, BLOCK_MB, |b| b == 1);
    assert_eq!(fetches, [(BLOCK_MB, 2 * BLOCK_MB - 1)], "one 1 MiB block");

    let asks = [
        Ask::Whole,
        Ask::Span(BLOCK_MB - 100, BLOCK_MB + 100),
        Ask::Span(500_000, 2_600_000),
        Ask::From(3 * BLOCK_MB),
        Ask::Span(size - 10, size + 100),
        Ask::Suffix(100),
        Ask::Suffix(size + 1),
        Ask::From(size),
    ];
    for pass in ["cold", "warm"] {
        for ask in asks {
            let answer = get(&base, &path, ask);
            if check(&answer, ask, &file, &origin, pass) != Expected::Unsatisfiable
                && pass == "warm"
            {
                assert_eq!(answer.x_cache(), "HIT", "{ask:?}");
            }
        }
        if pass == "cold" {
            wait_until_cached(&base, &file, "t-files-mb", &origin);
        }
    }
    block_counts(&block_fetches(&file.name, size), size, BLOCK_MB);
}

/// `t-files-s3` reads the prefix `s3://private-archive/` of the stack's S3 server (s3s-fs,
/// which checks every signature): air.nc read whole and by ranges through the worker equals
/// the file, cold and warm; `t-files-s3-open`, the same prefix without credentials, is refused
/// (403) and never served the signed bytes.
#[test]
#[ignore = "needs the stack from scripts/test"]
fn s3_prefixes_are_read_signed() {
    let base = stack_var("ZEC_BASE_URL");
    let bytes =
        std::fs::read(PathBuf::from(stack_var("ZEC_STATE_DIR")).join("demo/air.nc")).unwrap();
    let size = bytes.len() as u64;
    let asks = [
        (None, 0, size - 1),
        (Some("bytes=100-70000".to_owned()), 100, 70_000),
        (
            Some(format!("bytes=-{}", size / 3)),
            size - size / 3,
            size - 1,
        ),
    ];
    for pass in ["cold", "warm"] {
        for (range, first, last) in &asks {
            let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", r.as_str())).collect();
            let answer = send(&base, "GET", "/files/t-files-s3/air.nc", &headers, None);
            let want = if range.is_some() { 206 } else { 200 };
            assert_eq!(answer.status, want, "{pass} {range:?}: {}", answer.text());
            assert!(
                answer.body == bytes[at(*first)..=at(*last)],
                "{pass} {range:?}: other bytes than air.nc's"
            );
        }
        if pass == "cold" {
            poll("the blocks stored", Duration::from_secs(10), || {
                let again = send(&base, "GET", "/files/t-files-s3/air.nc", &[], None);
                (again.x_cache() == "HIT")
                    .then_some(())
                    .ok_or(again.x_cache().to_owned())
            });
        }
    }
    let open = send(&base, "GET", "/files/t-files-s3-open/air.nc", &[], None);
    assert_eq!(open.status, 403, "{}", open.text());
    assert!(open.json()["message"].as_str().unwrap().contains("refused"));
}
