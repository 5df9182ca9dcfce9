//! Kerchunk **parquet** references (fsspec's `LazyReferenceMapper`, `kerchunk.df`): a
//! directory with a `.zmetadata` and, per array, record files of `record_size` rows each.
//!
//! Lazy: loading a set reads only its `.zmetadata`; a chunk key's record file is read when a
//! key in it is first asked for — through [`SourceFiles`], which the HTTP layer implements over
//! the cache path, so record files are stored like chunks and other isolates read them from
//! storage — and kept decoded in a least-recently-used cache bounded in bytes.
//!
//! - [`layout`]: the `.zmetadata` (metadata, `record_size`, key → record and row).
//! - [`record`]: one record file, decoded and checked.

mod column;
pub mod layout;
pub mod record;
mod thrift;

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::Error;
use crate::origin::ByteRange;
use crate::source::files::escaped_url;
use crate::source::kerchunk::{LoadOptions, Resolver};
use crate::source::refs::RefsLocation;
use crate::source::{KeyAnswer, KeySource, Memo, SourceFiles};
use layout::{Layout, Position};
use record::{Record, Row};

/// A loaded parquet reference set.
#[derive(Debug)]
pub struct ParquetRefs {
    dataset: String,
    /// The set's directory, ending in `/`.
    root: RefsLocation,
    layout: Layout,
    resolver: Resolver,
    records: RefCell<RecordCache>,
    memo: Memo,
}

/// Decoded record files, least recently used dropped first once over `budget` bytes.
#[derive(Debug)]
struct RecordCache {
    budget: usize,
    bytes: usize,
    tick: u64,
    entries: Vec<CachedRecord>,
}

#[derive(Debug)]
struct CachedRecord {
    field: String,
    number: u64,
    record: Rc<Record>,
    used: u64,
}

impl ParquetRefs {
    /// A set of dataset `dataset` whose directory is `root` (ending in `/`), from its
    /// `.zmetadata`, keeping at most `budget` bytes of decoded record files.
    ///
    /// # Errors
    /// What is wrong with the document or the options (as text).
    pub fn new(
        dataset: &str,
        root: RefsLocation,
        document: Vec<u8>,
        options: &LoadOptions,
        budget: usize,
    ) -> Result<Self, String> {
        let layout = Layout::parse(document)?;
        let base = match &root {
            RefsLocation::Url(url) => Some(url.as_str()),
            RefsLocation::Bucket(_) => None,
        };
        let resolver = Resolver::new(base, options.s3_endpoint.as_ref())
            .map_err(|(value, why)| format!("{value}: {why}"))?;
        for (field, _) in layout.grids() {
            check_field(field)?;
        }
        Ok(Self {
            dataset: dataset.to_owned(),
            root,
            layout,
            resolver,
            records: RefCell::new(RecordCache {
                budget,
                bytes: 0,
                tick: 0,
                entries: Vec::new(),
            }),
            memo: Memo::default(),
        })
    }

    /// The set's `record_size`.
    #[must_use]
    pub fn record_size(&self) -> u64 {
        self.layout.record_size
    }

    /// How many record files are decoded in memory now.
    #[must_use]
    pub fn records_loaded(&self) -> usize {
        self.records.borrow().entries.len()
    }

    /// Bytes held in memory: the metadata and the decoded record files.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.layout.heap_bytes() + self.records.borrow().bytes
    }

    /// Where record file `name` (relative to the root) lives.
    fn location_of(&self, name: &str) -> RefsLocation {
        match &self.root {
            RefsLocation::Url(root) => RefsLocation::Url(escaped_url(root, name)),
            RefsLocation::Bucket(prefix) => RefsLocation::Bucket(format!("{prefix}{name}")),
        }
    }

    /// Record `number` of `field`, read and decoded when not in memory.
    async fn record(
        &self,
        field: &str,
        number: u64,
        files: &impl SourceFiles,
    ) -> Result<Rc<Record>, Error> {
        if let Some(record) = self.records.borrow_mut().get(field, number) {
            return Ok(record);
        }
        let name = Layout::record_file(field, number);
        let bytes = match files.read_file(&name, &self.location_of(&name)).await {
            Ok(bytes) => bytes,
            // kerchunk's writer leaves out the file of a record with no references; fsspec reads
            // its keys as absent, and so do we (remembered like any decoded record).
            Err(Error::NotFound(_)) => {
                // Its remembered 404 is kept, so other isolates do not ask the origin again.
                files.settle(&name, true);
                let record = Rc::new(Record::missing());
                self.records
                    .borrow_mut()
                    .insert(field, number, Rc::clone(&record));
                return Ok(record);
            }
            Err(Error::Upstream(why)) => {
                return Err(Error::Upstream(format!(
                    "dataset {}: record file {name}: {why}",
                    self.dataset
                )))
            }
            Err(other) => return Err(other),
        };
        // Another request may have decoded it while this one read (it followed the same fetch).
        if let Some(record) = self.records.borrow_mut().get(field, number) {
            files.settle(&name, true);
            return Ok(record);
        }
        match Record::decode(bytes, self.layout.record_size) {
            Ok(record) => {
                files.settle(&name, true);
                let record = Rc::new(record);
                self.records
                    .borrow_mut()
                    .insert(field, number, Rc::clone(&record));
                Ok(record)
            }
            Err(why) => {
                files.settle(&name, false);
                Err(Error::BadReferences(format!(
                    "dataset {}: record file {name}: {why}",
                    self.dataset
                )))
            }
        }
    }

    /// The answer for chunk `key`, row `row` of `record` (file `field`/`number`).
    fn row_answer(
        &self,
        key: &str,
        record: &Record,
        (field, number, row): (&str, u64, u64),
    ) -> Result<KeyAnswer, Error> {
        let found = usize::try_from(row).ok().and_then(|row| record.row(row));
        let Some(found) = found else {
            return Err(Error::BadReferences(format!(
                "dataset {}: {key} is row {row} of {}, which holds {} rows: the set's \
                 record_size {} does not match its files",
                self.dataset,
                Layout::record_file(field, number),
                record.len(),
                self.layout.record_size
            )));
        };
        let resolve = |path: &str| -> Result<String, Error> {
            self.resolver
                .resolve(path)
                .map(std::borrow::Cow::into_owned)
                .map_err(|why| {
                    Error::BadReferences(format!("dataset {}: {key}: {why}", self.dataset))
                })
        };
        Ok(match found {
            Row::Inline(bytes) => KeyAnswer::Inline(bytes.to_vec()),
            Row::Absent => KeyAnswer::Absent,
            Row::Whole(path) => KeyAnswer::Whole {
                url: resolve(path)?,
            },
            // An empty range is an empty chunk, as in JSON references.
            Row::Range { size: 0, .. } => KeyAnswer::Inline(Vec::new()),
            Row::Range { path, offset, size } => KeyAnswer::Range {
                url: resolve(path)?,
                range: ByteRange {
                    offset,
                    length: size,
                },
            },
        })
    }
}

impl KeySource for ParquetRefs {
    async fn answer(&self, key: &str, files: &impl SourceFiles) -> Result<KeyAnswer, Error> {
        match self.layout.position(key) {
            Position::Metadata(bytes) | Position::Consolidated(bytes) => {
                Ok(KeyAnswer::Inline(bytes.to_vec()))
            }
            Position::Absent => Ok(KeyAnswer::Absent),
            Position::Chunk { field, record, row } => {
                let decoded = self.record(field, record, files).await?;
                self.row_answer(key, &decoded, (field, record, row))
            }
        }
    }

    async fn metadata_keys(&self) -> Result<Vec<String>, Error> {
        let mut keys: Vec<String> = self.layout.metadata_keys().map(str::to_owned).collect();
        keys.push(".zmetadata".into());
        Ok(keys)
    }

    async fn chunk_keys(
        &self,
        wanted: &dyn Fn(&str) -> bool,
        limit: usize,
        files: &impl SourceFiles,
    ) -> Result<(Vec<String>, bool), Error> {
        let mut matched = Vec::new();
        for (field, grid) in self.layout.grids() {
            for n in 0..grid.total {
                let key = format!("{field}/{}", grid.name(n));
                if !wanted(&key) {
                    continue;
                }
                let (record, row) = (n / self.layout.record_size, n % self.layout.record_size);
                let decoded = self.record(field, record, files).await?;
                if let KeyAnswer::Range { .. } | KeyAnswer::Whole { .. } =
                    self.row_answer(&key, &decoded, (field, record, row))?
                {
                    if matched.len() == limit {
                        return Ok((matched, true));
                    }
                    matched.push(key);
                }
            }
        }
        Ok((matched, false))
    }

    fn key_count(&self) -> Option<u64> {
        // Counting the present keys would read every record file.
        None
    }

    fn memo(&self) -> Option<&Memo> {
        Some(&self.memo)
    }
}

impl RecordCache {
    /// The record, marked as just used.
    fn get(&mut self, field: &str, number: u64) -> Option<Rc<Record>> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self
            .entries
            .iter_mut()
            .find(|e| e.number == number && e.field == field)?;
        entry.used = tick;
        Some(Rc::clone(&entry.record))
    }

    /// Keeps `record`, dropping the least recently used others while over the budget (the new
    /// one stays even when it alone is over: the request that read it answers from it).
    fn insert(&mut self, field: &str, number: u64, record: Rc<Record>) {
        self.tick += 1;
        self.bytes += record.heap_bytes();
        self.entries.push(CachedRecord {
            field: field.to_owned(),
            number,
            record,
            used: self.tick,
        });
        while self.bytes > self.budget && self.entries.len() > 1 {
            let Some((oldest, _)) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.used)
            else {
                break;
            };
            let dropped = self.entries.swap_remove(oldest);
            self.bytes -= dropped.record.heap_bytes();
        }
    }
}

/// Checks an array's field as a path under the set's root: `/`-separated segments, none empty,
/// `.` or `..`, no control characters (it names the record files' URLs and bucket keys).
fn check_field(field: &str) -> Result<(), String> {
    let bad = field.is_empty()
        || field
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        || field.chars().any(char::is_control);
    if bad {
        Err(format!(
            "array {field:?}: not a name record files can live under"
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use futures::executor::block_on;

    use super::*;
    use crate::source::kerchunk::References;
    use crate::source::NoFiles;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/parquet");
    const ROOT: &str = "http://origin.test/refs/set.parq/";

    /// Record files from a fixture directory, with what was read and settled.
    struct DirFiles {
        dir: PathBuf,
        replaced: BTreeMap<String, Vec<u8>>,
        reads: RefCell<Vec<String>>,
        settled: RefCell<Vec<(String, bool)>>,
    }

    impl DirFiles {
        fn new(set: &str) -> Self {
            Self {
                dir: PathBuf::from(FIXTURES).join(set),
                replaced: BTreeMap::new(),
                reads: RefCell::default(),
                settled: RefCell::default(),
            }
        }
    }

    impl SourceFiles for DirFiles {
        async fn read_file(&self, name: &str, location: &RefsLocation) -> Result<Vec<u8>, Error> {
            assert_eq!(location, &RefsLocation::Url(format!("{ROOT}{name}")));
            self.reads.borrow_mut().push(name.to_owned());
            if let Some(bytes) = self.replaced.get(name) {
                return Ok(bytes.clone());
            }
            std::fs::read(self.dir.join(name)).map_err(|e| Error::NotFound(e.to_string()))
        }

        fn settle(&self, name: &str, valid: bool) {
            self.settled.borrow_mut().push((name.to_owned(), valid));
        }
    }

    fn open(set: &str, budget: usize) -> ParquetRefs {
        let document = std::fs::read(PathBuf::from(FIXTURES).join(set).join(".zmetadata")).unwrap();
        ParquetRefs::new(
            "d",
            RefsLocation::Url(ROOT.into()),
            document,
            &LoadOptions::default(),
            budget,
        )
        .unwrap()
    }

    fn json_twin(file: &str) -> References {
        let path = PathBuf::from(FIXTURES).join("..").join(file);
        References::from_json(&std::fs::read(path).unwrap(), &LoadOptions::default()).unwrap()
    }

    /// Every key of kerchunk's parquet output answers as the JSON references it was written
    /// from: the same URLs and ranges, inline bytes, absent keys and whole files; metadata as
    /// the same JSON. Keys outside every grid are absent.
    #[test]
    fn parquet_sets_answer_as_their_json_references() {
        for (set, json) in [
            ("hdf5_single.parq", "kerchunk/hdf5_single.json"),
            ("arrow_v2.parq", "kerchunk/hdf5_single.json"),
            ("arrow_plain.parq", "kerchunk/hdf5_single.json"),
            ("combine_series.parq", "kerchunk/combine_series.json"),
            ("lazy_holes.parq", "parquet/lazy_holes.json"),
        ] {
            let refs = open(set, 1 << 20);
            let twin = json_twin(json);
            let files = DirFiles::new(set);
            let mut keys: Vec<String> = twin.explicit_keys().map(str::to_owned).collect();
            for (field, grid) in refs.layout.grids() {
                keys.extend((0..grid.total).map(|n| format!("{field}/{}", grid.name(n))));
            }
            keys.push("nope/0.0".into());
            keys.sort();
            keys.dedup();
            let mut kinds = BTreeMap::new();
            for key in &keys {
                let got = block_on(refs.answer(key, &files)).unwrap();
                let want = block_on(twin.answer(key, &NoFiles)).unwrap();
                if crate::source::zarr::is_metadata_key(key) {
                    let (KeyAnswer::Inline(got), KeyAnswer::Inline(want)) = (&got, &want) else {
                        panic!("{set} {key}: {got:?} / {want:?}");
                    };
                    let got: serde_json::Value = serde_json::from_slice(got).unwrap();
                    let want: serde_json::Value = serde_json::from_slice(want).unwrap();
                    assert_eq!(got, want, "{set} {key}");
                    continue;
                }
                assert_eq!(got, want, "{set} {key}");
                let kind = match got {
                    KeyAnswer::Inline(_) => "inline",
                    KeyAnswer::Range { .. } => "range",
                    KeyAnswer::Whole { .. } => "whole",
                    KeyAnswer::Absent => "absent",
                };
                *kinds.entry(kind).or_insert(0) += 1;
            }
            assert!(
                kinds["range"] > 0 && kinds["absent"] > 0,
                "{set}: {kinds:?}"
            );
            if set == "lazy_holes.parq" {
                assert_eq!(kinds.get("whole"), Some(&1), "{kinds:?}");
            }
            if set.starts_with("hdf5") || set.starts_with("arrow") {
                assert!(kinds["inline"] > 0, "{kinds:?}");
            }
            // Each record file is read once and said valid.
            let reads = files.reads.borrow();
            let distinct: std::collections::BTreeSet<_> = reads.iter().collect();
            assert_eq!(reads.len(), distinct.len(), "{set}: {reads:?}");
            assert!(reads.len() >= 2, "{set}: {reads:?}");
            assert!(files.settled.borrow().iter().all(|(_, valid)| *valid));
            let Ok(KeyAnswer::Inline(doc)) = block_on(refs.answer(".zmetadata", &files)) else {
                panic!("{set}: no .zmetadata");
            };
            assert_eq!(doc, std::fs::read(files.dir.join(".zmetadata")).unwrap());
        }
    }

    /// Decoded record files stay within the budget, least recently used first; a dropped one
    /// is read again when needed.
    #[test]
    fn decoded_records_stay_within_the_budget() {
        let refs = open("hdf5_single.parq", 1);
        let files = DirFiles::new("hdf5_single.parq");
        let (field, grid) = refs
            .layout
            .grids()
            .find(|(_, g)| g.total > 3)
            .map(|(f, g)| (f.to_owned(), g.clone()))
            .unwrap();
        let first = format!("{field}/{}", grid.name(0));
        let later = format!("{field}/{}", grid.name(3));
        block_on(refs.answer(&first, &files)).unwrap();
        block_on(refs.answer(&later, &files)).unwrap();
        assert_eq!(refs.records_loaded(), 1);
        block_on(refs.answer(&first, &files)).unwrap();
        assert_eq!(files.reads.borrow().len(), 3);
        let unbounded = open("hdf5_single.parq", 1 << 20);
        block_on(unbounded.answer(&first, &files)).unwrap();
        block_on(unbounded.answer(&later, &files)).unwrap();
        assert_eq!(unbounded.records_loaded(), 2);
        assert!(unbounded.heap_bytes() > refs.layout.heap_bytes());
    }

    /// A truncated, corrupt, mistyped or oversized record file is a clear error naming the
    /// dataset and file, said invalid (so nothing of it is kept), and the set stays usable; a
    /// missing one holds only absent keys.
    #[test]
    fn bad_record_files_are_refused() {
        let refs = open("hdf5_single.parq", 1 << 20);
        let (field, grid) = refs
            .layout
            .grids()
            .find(|(_, g)| g.total > 3)
            .map(|(f, g)| (f.to_owned(), g.clone()))
            .unwrap();
        let key = format!("{field}/{}", grid.name(0));
        let name = Layout::record_file(&field, 0);
        let good =
            std::fs::read(PathBuf::from(FIXTURES).join("hdf5_single.parq").join(&name)).unwrap();
        let bad = PathBuf::from(FIXTURES).join("bad");
        let mut flipped = good.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        for (bytes, why) in [
            (good[..good.len() / 2].to_vec(), "parquet"),
            (Vec::new(), "parquet"),
            (b"PAR1 not really".to_vec(), "parquet"),
            (flipped, ""),
            (
                std::fs::read(bad.join("string_offset.parq")).unwrap(),
                "column \"offset\"",
            ),
            (
                std::fs::read(bad.join("five_rows.parq")).unwrap(),
                "record_size 3",
            ),
        ] {
            let mut files = DirFiles::new("hdf5_single.parq");
            files.replaced.insert(name.clone(), bytes);
            match block_on(refs.answer(&key, &files)) {
                Err(Error::BadReferences(message)) => {
                    assert!(
                        message.contains("dataset d") && message.contains(&name),
                        "{message}"
                    );
                    assert!(message.contains(why), "{message}");
                    assert_eq!(*files.settled.borrow(), vec![(name.clone(), false)]);
                }
                // A flipped byte in a page may still decode (no checksums): then it is valid
                // parquet, and the answer is what it says.
                Ok(_) if why.is_empty() => {}
                other => panic!("{why}: {other:?}"),
            }
        }
        // A record file that does not exist holds no references (kerchunk's writer leaves such
        // files out): its keys are absent, as fsspec reads them.
        let elsewhere = open("hdf5_single.parq", 1 << 20);
        let mut files = DirFiles::new("hdf5_single.parq");
        files.dir = PathBuf::from(FIXTURES).join("nowhere");
        assert_eq!(
            block_on(elsewhere.answer(&key, &files)).unwrap(),
            KeyAnswer::Absent
        );
        assert_eq!(elsewhere.records_loaded(), 1);
        let files = DirFiles::new("hdf5_single.parq");
        assert!(matches!(
            block_on(refs.answer(&key, &files)),
            Ok(KeyAnswer::Range { .. })
        ));
    }

    /// An array whose name cannot be a path under the root is refused when the set loads.
    #[test]
    fn unsafe_array_names_are_refused() {
        for field in ["..", "a/../b", "a//b", "./a"] {
            let doc = serde_json::json!({"record_size": 2, "metadata": {
                format!("{field}/.zarray"): {"shape": [2], "chunks": [1]}}});
            let error = ParquetRefs::new(
                "d",
                RefsLocation::Url(ROOT.into()),
                serde_json::to_vec(&doc).unwrap(),
                &LoadOptions::default(),
                1,
            )
            .unwrap_err();
            assert!(error.contains("record files"), "{field}: {error}");
        }
    }
}
