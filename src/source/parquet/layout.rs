//! The `.zmetadata` of a parquet reference set: its Zarr metadata, its `record_size`, and where
//! each chunk key's row is (fsspec's `LazyReferenceMapper` layout).
//!
//! A chunk key `{field}/{i.j.k}` is numbered in C order over its array's chunk grid
//! (`ceil(shape / chunks)` per dimension; a 0-d array has the one chunk `0`); its row is number
//! `n % record_size` of the record file `{field}/refs.{n / record_size}.parq`.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::source::zarr::is_metadata_key;

/// The most chunks an array may have (2⁴⁸: far past any real grid, and no row number overflows).
const MAX_CHUNKS: u64 = 1 << 48;

/// A parsed `.zmetadata` of a parquet reference set.
#[derive(Debug)]
pub struct Layout {
    /// Rows per record file.
    pub record_size: u64,
    /// The `.zmetadata` document as written.
    document: Vec<u8>,
    /// Each metadata key's JSON, serialised.
    metadata: BTreeMap<String, Vec<u8>>,
    /// Each array's chunk grid, by field (the key without its last part).
    grids: BTreeMap<String, Grid>,
}

/// An array's chunk grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grid {
    /// Chunks per dimension (empty for a 0-d array).
    pub counts: Vec<u64>,
    /// How many chunks in all.
    pub total: u64,
}

/// Where a key lives in the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position<'a> {
    /// A metadata key: its JSON.
    Metadata(&'a [u8]),
    /// The `.zmetadata` document.
    Consolidated(&'a [u8]),
    /// A chunk: row `row` of record `record` of `field`.
    Chunk {
        /// The array's field.
        field: &'a str,
        /// The record file's number.
        record: u64,
        /// The row in it.
        row: u64,
    },
    /// Not a key of the set (no such array, or outside its grid).
    Absent,
}

impl Layout {
    /// Parses a `.zmetadata` document.
    ///
    /// # Errors
    /// What is wrong: not JSON, no `metadata` object or `record_size`, a `.zarray` whose
    /// `shape`/`chunks` are not a grid.
    pub fn parse(document: Vec<u8>) -> Result<Self, String> {
        let json: Json = serde_json::from_slice(&document)
            .map_err(|e| format!(".zmetadata is not JSON: {e}"))?;
        let record_size = json
            .get("record_size")
            .and_then(Json::as_u64)
            .filter(|&n| n > 0)
            .ok_or(
                ".zmetadata has no positive integer record_size (not a parquet reference set)",
            )?;
        let Some(Json::Object(entries)) = json.get("metadata") else {
            return Err(".zmetadata has no metadata object".into());
        };
        let mut metadata = BTreeMap::new();
        let mut grids = BTreeMap::new();
        for (key, value) in entries {
            // fsspec writes objects; a JSON string holding the document is read as that.
            let parsed = match value {
                Json::String(text) => serde_json::from_str(text)
                    .map_err(|e| format!("metadata {key:?} is a string that is not JSON: {e}"))?,
                other => other.clone(),
            };
            if let Some(field) = key.strip_suffix("/.zarray") {
                grids.insert(field.to_owned(), grid(key, &parsed)?);
            } else if key == ".zarray" {
                return Err("a parquet set's root cannot be an array".into());
            }
            let bytes =
                serde_json::to_vec(&parsed).map_err(|e| format!("metadata {key:?}: {e}"))?;
            metadata.insert(key.clone(), bytes);
        }
        Ok(Self {
            record_size,
            document,
            metadata,
            grids,
        })
    }

    /// Where `key` lives.
    #[must_use]
    pub fn position<'a>(&'a self, key: &'a str) -> Position<'a> {
        if key == ".zmetadata" {
            return Position::Consolidated(&self.document);
        }
        if let Some(bytes) = self.metadata.get(key) {
            return Position::Metadata(bytes);
        }
        if is_metadata_key(key) {
            return Position::Absent;
        }
        let (field, chunk) = key.rsplit_once('/').unwrap_or(("", key));
        let Some(grid) = self.grids.get(field) else {
            return Position::Absent;
        };
        match grid.number(chunk) {
            Some(n) => Position::Chunk {
                field,
                record: n / self.record_size,
                row: n % self.record_size,
            },
            None => Position::Absent,
        }
    }

    /// The metadata keys.
    pub fn metadata_keys(&self) -> impl Iterator<Item = &str> {
        self.metadata.keys().map(String::as_str)
    }

    /// Each array's field and grid.
    pub fn grids(&self) -> impl Iterator<Item = (&str, &Grid)> {
        self.grids
            .iter()
            .map(|(field, grid)| (field.as_str(), grid))
    }

    /// The file name of record `record` of `field`, relative to the set's root.
    #[must_use]
    pub fn record_file(field: &str, record: u64) -> String {
        format!("{field}/refs.{record}.parq")
    }

    /// Bytes held in memory.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.document.capacity()
            + self
                .metadata
                .iter()
                .map(|(k, v)| k.len() + v.capacity() + 64)
                .sum::<usize>()
            + self
                .grids
                .iter()
                .map(|(k, g)| k.len() + g.counts.len() * 8 + 64)
                .sum::<usize>()
    }
}

impl Grid {
    /// The C-order number of the chunk named `chunk` (`i.j.k`), or `None` when it is not one
    /// of the grid's.
    #[must_use]
    pub fn number(&self, chunk: &str) -> Option<u64> {
        if self.counts.is_empty() {
            return (chunk == "0" && self.total == 1).then_some(0);
        }
        let mut n: u64 = 0;
        let mut parts = chunk.split('.');
        for &count in &self.counts {
            let part = parts.next()?;
            // Digits only: `+1`, `01`-style leading signs are not chunk names Zarr writes.
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let index: u64 = part.parse().ok()?;
            if index >= count {
                return None;
            }
            n = n * count + index;
        }
        parts.next().is_none().then_some(n)
    }

    /// The chunk name of number `n` (`i.j.k`; `0` for a 0-d array).
    #[must_use]
    pub fn name(&self, mut n: u64) -> String {
        if self.counts.is_empty() {
            return "0".into();
        }
        let mut parts = vec![0; self.counts.len()];
        for (slot, &count) in parts.iter_mut().zip(&self.counts).rev() {
            *slot = n % count;
            n /= count;
        }
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The chunk grid of the `.zarray` under `key`.
fn grid(key: &str, zarray: &Json) -> Result<Grid, String> {
    let dims = |name: &str| -> Result<Vec<u64>, String> {
        zarray
            .get(name)
            .and_then(Json::as_array)
            .ok_or_else(|| format!("{key} has no {name} list"))?
            .iter()
            .map(|d| {
                d.as_u64()
                    .ok_or_else(|| format!("{key}: {name} holds {d}, not a size"))
            })
            .collect()
    };
    let shape = dims("shape")?;
    let chunks = dims("chunks")?;
    if shape.len() != chunks.len() {
        return Err(format!(
            "{key}: shape has {} dimensions, chunks {}",
            shape.len(),
            chunks.len()
        ));
    }
    if let Some(sep) = zarray.get("dimension_separator").and_then(Json::as_str) {
        if sep != "." {
            return Err(format!(
                "{key}: dimension_separator {sep:?} (parquet references name chunks with \".\")"
            ));
        }
    }
    let mut counts = Vec::with_capacity(shape.len());
    let mut total: u64 = 1;
    for (&size, &chunk) in shape.iter().zip(&chunks) {
        if chunk == 0 {
            return Err(format!("{key}: a chunk size of 0"));
        }
        let count = size.div_ceil(chunk);
        total = total
            .checked_mul(count)
            .filter(|&t| t <= MAX_CHUNKS)
            .ok_or_else(|| format!("{key}: more than 2^48 chunks"))?;
        counts.push(count);
    }
    Ok(Grid { counts, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(record_size: u64) -> Layout {
        let doc = serde_json::json!({
            "record_size": record_size,
            "metadata": {
                ".zgroup": {"zarr_format": 2},
                "t/.zarray": {"shape": [5, 4], "chunks": [2, 3], "dtype": "<f4"},
                "t/.zattrs": "{\"units\": \"K\"}",
                "s/.zarray": {"shape": [], "chunks": [], "dtype": "<f8"},
                "g/v/.zarray": {"shape": [10], "chunks": [3], "dtype": "<i2"}
            }
        });
        Layout::parse(serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    /// Keys number in C order over `ceil(shape / chunks)`, split by `record_size`; keys outside
    /// the grid, of unknown arrays or malformed are absent.
    #[test]
    fn keys_map_to_rows_in_c_order() {
        let l = layout(4);
        // t: 3 x 2 chunks; "2.1" is number 5 → record 1, row 1.
        assert_eq!(
            l.position("t/2.1"),
            Position::Chunk {
                field: "t",
                record: 1,
                row: 1
            }
        );
        assert_eq!(
            l.position("t/0.0"),
            Position::Chunk {
                field: "t",
                record: 0,
                row: 0
            }
        );
        assert_eq!(
            l.position("g/v/3"),
            Position::Chunk {
                field: "g/v",
                record: 0,
                row: 3
            }
        );
        assert_eq!(
            l.position("s/0"),
            Position::Chunk {
                field: "s",
                record: 0,
                row: 0
            }
        );
        for absent in [
            "t/3.0",
            "t/0.2",
            "t/0",
            "t/0.0.0",
            "t/+1.0",
            "t/a.0",
            "u/0.0",
            "s/1",
            "t/.zarray_",
        ] {
            assert_eq!(l.position(absent), Position::Absent, "{absent}");
        }
        assert_eq!(
            l.position("t/.zattrs"),
            Position::Metadata(br#"{"units":"K"}"#)
        );
        assert_eq!(l.position("x/.zattrs"), Position::Absent);
        let grid = &l.grids["t"];
        for n in 0..grid.total {
            assert_eq!(grid.number(&grid.name(n)), Some(n));
        }
    }

    /// A document that is not a parquet set's is refused with what is wrong.
    #[test]
    fn bad_documents_are_refused() {
        for (doc, why) in [
            (r#"{"metadata": {}}"#, "record_size"),
            (r#"{"record_size": 0, "metadata": {}}"#, "record_size"),
            (r#"{"record_size": 10}"#, "metadata"),
            (
                r#"{"record_size": 10, "metadata": {"a/.zarray": {"shape": [1]}}}"#,
                "chunks",
            ),
            (
                r#"{"record_size": 10, "metadata": {"a/.zarray": {"shape": [1], "chunks": [0]}}}"#,
                "0",
            ),
            (
                r#"{"record_size": 10, "metadata": {"a/.zarray": {"shape": [1,2], "chunks": [1]}}}"#,
                "dimensions",
            ),
            (
                r#"{"record_size": 10, "metadata": {"a/.zarray": {"shape": [4294967296, 4294967296], "chunks": [1, 1]}}}"#,
                "2^48",
            ),
            (
                r#"{"record_size": 10, "metadata": {"a/.zarray": "{"}}"#,
                "not JSON",
            ),
            ("[", "not JSON"),
        ] {
            let error = Layout::parse(doc.as_bytes().to_vec()).unwrap_err();
            assert!(error.contains(why), "{doc}: {error}");
        }
    }
}
