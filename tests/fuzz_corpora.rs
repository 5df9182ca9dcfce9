//! The committed fuzz corpora, replayed as ordinary tests: every file of `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/` goes through the same harness function the `cargo fuzz`
//! target calls (`fuzz/harness.rs`), so an input the fuzzer once found interesting, or once
//! crashed on, keeps being checked by a plain `cargo test`. See `fuzz/README.md`.
//!
//! Not `#[ignore]`d: no service is needed, and the corpora are small.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/harness.rs"]
mod harness;

/// The files of `dir`, sorted by name; none when `dir` does not exist.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    files.retain(|path| path.is_file());
    files.sort();
    files
}

/// Feeds every corpus and regression input of `target` to `harness`, each under its own
/// `catch_unwind`, and fails naming every input that panicked. Also fails when the corpus is
/// empty, so that a moved or deleted corpus cannot pass on nothing.
fn replay(target: &str, harness: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is missing or empty"
    );
    let regressions = inputs(&fuzz.join("regressions").join(target));
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data =
            std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if panic::catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked (messages above):\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
}

/// Kerchunk reference sets: loading and every lookup never panic.
#[test]
fn kerchunk_refs_corpus() {
    replay("kerchunk_refs", harness::kerchunk_refs);
}

/// Methods and paths: routing and key validation keep their documented invariants.
#[test]
fn route_and_key_corpus() {
    replay("route_and_key", harness::route_and_key);
}

/// `Range` and `If-None-Match` headers: answers are within the body and as RFC 9110 says.
#[test]
fn range_header_corpus() {
    replay("range_header", harness::range_header);
}

/// Upstash REST replies: decoding never panics and classifies errors by status.
#[test]
fn upstash_reply_corpus() {
    replay("upstash_reply", harness::upstash_reply);
}

/// Chunks through the decoded view's codec chains: never a panic, never a short chunk.
#[test]
fn codec_decode_corpus() {
    replay("codec_decode", harness::codec_decode);
}

/// Parquet record files: decoding and every row read never panic.
#[test]
fn parquet_record_corpus() {
    replay("parquet_record", harness::parquet_record);
}
