//! A Zarr store over HTTP as a [`KeySource`]: an xpublish dataset's zarr endpoint, or any
//! static Zarr v2 or v3 store on a web server or a public bucket. Every key passes through to
//! `{root}/{key}`; nothing is synthesised.
//!
//! The store's consolidated metadata (its *version document*: `zarr.json` for v3, `.zmetadata`
//! for v2) gives the chunk grid that warm jobs walk and the variables that listings show; the
//! cache keys the dataset's chunks by a generation derived from the same document's digest
//! (`cache::read::read_chunk`). Pure.

use serde_json::Value as Json;

use crate::error::Error;
use crate::source::zarr::Variable;
use crate::source::{KeyAnswer, KeySource, SourceFiles};

/// The most arrays a version document may describe (a document is hostile until checked).
const MAX_ARRAYS: usize = 10_000;
/// The most dimensions an array may have.
const MAX_DIMENSIONS: usize = 32;

/// Which Zarr format a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZarrFormat {
    /// Zarr v2: `.zmetadata`, `.zarray`, `var/0.0`.
    V2,
    /// Zarr v3: `zarr.json`, `var/c/0/0`.
    V3,
}

impl ZarrFormat {
    /// Its number (2 or 3), as `zarr_format` writes it.
    #[must_use]
    pub fn number(self) -> u8 {
        match self {
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }

    /// The format numbered `n` (2 or 3).
    #[must_use]
    pub fn from_number(n: u64) -> Option<Self> {
        match n {
            2 => Some(Self::V2),
            3 => Some(Self::V3),
            _ => None,
        }
    }
}

/// Where a Zarr store over HTTP lives and how its answers are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZarrOrigin {
    /// The store's root URL, without a trailing `/`.
    pub root: String,
    /// The format it speaks.
    pub format: ZarrFormat,
    /// How long metadata keys are cached before they are fetched again, and how long a check of
    /// the version document holds (seconds).
    pub metadata_ttl_seconds: u64,
    /// How long the origin's 404 for a key is remembered (seconds).
    pub absent_ttl_seconds: u64,
}

impl ZarrOrigin {
    /// The key of the version document (the consolidated metadata).
    #[must_use]
    pub fn document_key(&self) -> &'static str {
        match self.format {
            ZarrFormat::V2 => ".zmetadata",
            ZarrFormat::V3 => "zarr.json",
        }
    }

    /// The URL of `key` in the store.
    #[must_use]
    pub fn url_of(&self, key: &str) -> String {
        format!("{}/{key}", self.root)
    }
}

/// Whether `key` names Zarr metadata of either format (cached with the metadata TTL).
#[must_use]
pub fn is_metadata_key(key: &str) -> bool {
    let file = key.rsplit('/').next().unwrap_or(key);
    matches!(
        file,
        "zarr.json" | ".zmetadata" | ".zarray" | ".zattrs" | ".zgroup"
    )
}

/// How an array names its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyEncoding {
    /// v2 (`0.1.2`, or `0/1/2` with the `/` separator; `0` for a 0-d array), also v3's `v2`.
    V2(char),
    /// v3 default (`c/0/1/2` or `c.0.1.2`; `c` for a 0-d array).
    Default(char),
}

/// One array's chunk grid.
#[derive(Debug, Clone, PartialEq)]
struct ArrayGrid {
    path: String,
    shape: Vec<u64>,
    chunks: Vec<u64>,
    encoding: KeyEncoding,
    variable: Variable,
}

impl ArrayGrid {
    /// Chunks along each dimension.
    fn counts(&self) -> Vec<u64> {
        self.shape
            .iter()
            .zip(&self.chunks)
            .map(|(n, c)| n.div_ceil(*c))
            .collect()
    }

    fn key_of(&self, index: &[u64]) -> String {
        let joined = |separator: char| {
            index
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(&separator.to_string())
        };
        let name = match &self.encoding {
            KeyEncoding::V2(_) if index.is_empty() => "0".to_owned(),
            KeyEncoding::V2(separator) => joined(*separator),
            KeyEncoding::Default(_) if index.is_empty() => "c".to_owned(),
            KeyEncoding::Default(separator) => format!("c{separator}{}", joined(*separator)),
        };
        if self.path.is_empty() {
            name
        } else {
            format!("{}/{name}", self.path)
        }
    }
}

/// A Zarr store over HTTP, with the grid of its version document when one was loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct ZarrHttpStore {
    origin: ZarrOrigin,
    arrays: Vec<ArrayGrid>,
}

impl ZarrHttpStore {
    /// The store without a loaded version document: it answers keys, and walks nothing.
    #[must_use]
    pub fn new(origin: ZarrOrigin) -> Self {
        Self {
            origin,
            arrays: Vec::new(),
        }
    }

    /// The store with the arrays its version document describes.
    ///
    /// # Errors
    /// What is wrong with the document (not JSON, not consolidated metadata of the store's
    /// format, an array without a usable shape or chunk shape).
    pub fn from_document(origin: ZarrOrigin, document: &[u8]) -> Result<Self, String> {
        let json: Json = serde_json::from_slice(document)
            .map_err(|e| format!("{} is not JSON: {e}", origin.document_key()))?;
        let arrays = match origin.format {
            ZarrFormat::V2 => v2_arrays(&json)?,
            ZarrFormat::V3 => v3_arrays(&json)?,
        };
        Ok(Self { origin, arrays })
    }

    /// The origin.
    #[must_use]
    pub fn origin(&self) -> &ZarrOrigin {
        &self.origin
    }

    /// The arrays of the version document, sorted by path.
    #[must_use]
    pub fn variables(&self) -> Vec<Variable> {
        self.arrays.iter().map(|a| a.variable.clone()).collect()
    }

    /// Bytes held in memory, for the registry's budget.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.arrays
            .iter()
            .map(|a| a.path.len() + 16 * (a.shape.len() + a.chunks.len()) + 256)
            .sum::<usize>()
            + self.origin.root.len()
    }
}

fn dims(value: &Json, what: &str) -> Result<Vec<u64>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{what} is not a list"))?;
    if items.len() > MAX_DIMENSIONS {
        return Err(format!("{what} has more than {MAX_DIMENSIONS} dimensions"));
    }
    items
        .iter()
        .map(|n| {
            n.as_u64()
                .ok_or_else(|| format!("{what} holds {n}, not a size"))
        })
        .collect()
}

fn grid(
    path: &str,
    shape: &Json,
    chunks: &Json,
    encoding: KeyEncoding,
    variable: Variable,
) -> Result<ArrayGrid, String> {
    let shape = dims(shape, &format!("{path}: shape"))?;
    let chunks = dims(chunks, &format!("{path}: chunk shape"))?;
    if shape.len() != chunks.len() || chunks.contains(&0) {
        return Err(format!(
            "{path}: chunk shape {chunks:?} does not fit shape {shape:?}"
        ));
    }
    Ok(ArrayGrid {
        path: path.to_owned(),
        shape,
        chunks,
        encoding,
        variable,
    })
}

fn separator(value: &Json, default: char) -> Result<char, String> {
    match value.as_str() {
        None => Ok(default),
        Some(".") => Ok('.'),
        Some("/") => Ok('/'),
        Some(other) => Err(format!("unknown separator {other:?}")),
    }
}

/// The arrays of a v2 `.zmetadata` (`{"metadata": {"var/.zarray": {...}, ...}}`).
fn v2_arrays(json: &Json) -> Result<Vec<ArrayGrid>, String> {
    let metadata = json["metadata"]
        .as_object()
        .ok_or(".zmetadata has no \"metadata\" object")?;
    let mut arrays = Vec::new();
    for (key, zarray) in metadata {
        let Some(path) = key.strip_suffix(".zarray") else {
            continue;
        };
        if arrays.len() == MAX_ARRAYS {
            return Err(format!(
                ".zmetadata describes more than {MAX_ARRAYS} arrays"
            ));
        }
        let path = path.trim_end_matches('/');
        let attrs_key = if path.is_empty() {
            ".zattrs".to_owned()
        } else {
            format!("{path}/.zattrs")
        };
        let attrs = metadata.get(&attrs_key).cloned().unwrap_or(Json::Null);
        let variable = Variable::from_v2(path.to_owned(), zarray, &attrs);
        let encoding = KeyEncoding::V2(separator(&zarray["dimension_separator"], '.')?);
        arrays.push(grid(
            path,
            &zarray["shape"],
            &zarray["chunks"],
            encoding,
            variable,
        )?);
    }
    arrays.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(arrays)
}

/// The arrays of a v3 `zarr.json` with inline consolidated metadata.
fn v3_arrays(json: &Json) -> Result<Vec<ArrayGrid>, String> {
    if json["zarr_format"].as_u64() != Some(3) {
        return Err("zarr.json is not Zarr v3 metadata (zarr_format is not 3)".into());
    }
    let Some(metadata) = json["consolidated_metadata"]["metadata"].as_object() else {
        // An unconsolidated store: keys are served, there is no grid to walk.
        return Ok(Vec::new());
    };
    let mut arrays = Vec::new();
    for (path, node) in metadata {
        if node["node_type"].as_str() != Some("array") {
            continue;
        }
        if arrays.len() == MAX_ARRAYS {
            return Err(format!("zarr.json describes more than {MAX_ARRAYS} arrays"));
        }
        let encoding_name = node["chunk_key_encoding"]["name"]
            .as_str()
            .unwrap_or("default");
        let configured = &node["chunk_key_encoding"]["configuration"]["separator"];
        let encoding = match encoding_name {
            "default" => KeyEncoding::Default(separator(configured, '/')?),
            "v2" => KeyEncoding::V2(separator(configured, '.')?),
            other => return Err(format!("{path}: unknown chunk key encoding {other:?}")),
        };
        if node["chunk_grid"]["name"].as_str() != Some("regular") {
            return Err(format!("{path}: only regular chunk grids are walked"));
        }
        let chunks = &node["chunk_grid"]["configuration"]["chunk_shape"];
        let codec = |c: &Json| c.get("name").cloned().unwrap_or(Json::Null);
        let codecs: Vec<Json> = node["codecs"]
            .as_array()
            .map(|c| c.iter().map(codec).collect())
            .unwrap_or_default();
        let variable = Variable {
            name: path.clone(),
            shape: node["shape"].clone(),
            chunks: chunks.clone(),
            dtype: node["data_type"].clone(),
            compressor: codecs.last().cloned().unwrap_or(Json::Null),
            filters: codecs,
            dimensions: node["dimension_names"].clone(),
            fill_value: node["fill_value"].clone(),
        };
        arrays.push(grid(path, &node["shape"], chunks, encoding, variable)?);
    }
    arrays.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(arrays)
}

impl KeySource for ZarrHttpStore {
    async fn answer(&self, key: &str, _: &impl SourceFiles) -> Result<KeyAnswer, Error> {
        Ok(KeyAnswer::Whole {
            url: self.origin.url_of(key),
        })
    }

    async fn metadata_keys(&self) -> Result<Vec<String>, Error> {
        Ok(vec![self.origin.document_key().to_owned()])
    }

    async fn chunk_keys(
        &self,
        wanted: &dyn Fn(&str) -> bool,
        limit: usize,
        _: &impl SourceFiles,
    ) -> Result<(Vec<String>, bool), Error> {
        let mut keys = Vec::new();
        for array in &self.arrays {
            let counts = array.counts();
            if counts.contains(&0) {
                continue;
            }
            // Walk the grid in C order, like an odometer (a 0-d array has one chunk).
            let mut index = vec![0u64; counts.len()];
            'walk: loop {
                let key = array.key_of(&index);
                if wanted(&key) {
                    if keys.len() == limit {
                        return Ok((keys, true));
                    }
                    keys.push(key);
                }
                let mut dim = counts.len();
                loop {
                    if dim == 0 {
                        break 'walk;
                    }
                    dim -= 1;
                    index[dim] += 1;
                    if index[dim] < counts[dim] {
                        break;
                    }
                    index[dim] = 0;
                }
            }
        }
        Ok((keys, false))
    }

    fn key_count(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::NoFiles;
    use futures::executor::block_on;

    fn origin(format: ZarrFormat) -> ZarrOrigin {
        ZarrOrigin {
            root: "http://o.test/store.zarr".into(),
            format,
            metadata_ttl_seconds: 60,
            absent_ttl_seconds: 60,
        }
    }

    fn all_keys(store: &ZarrHttpStore) -> Vec<String> {
        block_on(store.chunk_keys(&|_| true, 1000, &NoFiles))
            .unwrap()
            .0
    }

    /// A v3 document's grid is walked in C order with each array's key encoding; keys pass
    /// through to the root.
    #[test]
    fn v3_grid_is_walked() {
        let document = serde_json::json!({
            "zarr_format": 3, "node_type": "group",
            "consolidated_metadata": {"kind": "inline", "metadata": {
                "t": {"node_type": "array", "shape": [3, 4], "data_type": "float32",
                      "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 4]}},
                      "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                      "codecs": [{"name": "bytes"}, {"name": "zstd"}], "fill_value": 0,
                      "dimension_names": ["y", "x"]},
                "s": {"node_type": "array", "shape": [], "data_type": "int8",
                      "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": []}},
                      "chunk_key_encoding": {"name": "default", "configuration": {"separator": "."}}},
                "g": {"node_type": "group"}
            }}
        });
        let store =
            ZarrHttpStore::from_document(origin(ZarrFormat::V3), document.to_string().as_bytes())
                .unwrap();
        assert_eq!(all_keys(&store), ["s/c", "t/c/0/0", "t/c/1/0"]);
        let variables = store.variables();
        assert_eq!(variables[1].dimensions, serde_json::json!(["y", "x"]));
        assert_eq!(variables[1].compressor, serde_json::json!("zstd"));
        let (limited, more) =
            block_on(store.chunk_keys(&|k| k.starts_with("t/"), 1, &NoFiles)).unwrap();
        assert_eq!((limited, more), (vec!["t/c/0/0".to_owned()], true));
        assert_eq!(
            block_on(store.answer("t/c/1/0", &NoFiles)).unwrap(),
            KeyAnswer::Whole {
                url: "http://o.test/store.zarr/t/c/1/0".into()
            }
        );
    }

    /// A v2 `.zmetadata` grid uses each array's dimension separator; 0-d arrays have key `0`.
    #[test]
    fn v2_grid_is_walked() {
        let document = serde_json::json!({"zarr_consolidated_format": 1, "metadata": {
            ".zgroup": {"zarr_format": 2},
            "a/.zarray": {"shape": [5], "chunks": [2], "dtype": "<f4", "compressor": {"id": "zlib"},
                           "filters": null, "fill_value": "NaN", "zarr_format": 2},
            "a/.zattrs": {"_ARRAY_DIMENSIONS": ["x"]},
            "b/.zarray": {"shape": [2, 2], "chunks": [1, 2], "dtype": "<i2",
                           "dimension_separator": "/", "zarr_format": 2},
            "z/.zarray": {"shape": [], "chunks": [], "dtype": "<i8", "zarr_format": 2}
        }});
        let store =
            ZarrHttpStore::from_document(origin(ZarrFormat::V2), document.to_string().as_bytes())
                .unwrap();
        assert_eq!(
            all_keys(&store),
            ["a/0", "a/1", "a/2", "b/0/0", "b/1/0", "z/0"]
        );
        assert_eq!(store.variables()[0].dimensions, serde_json::json!(["x"]));
    }

    /// Hostile documents are refused with what is wrong, never a panic.
    #[test]
    fn bad_documents_are_refused() {
        for (format, document) in [
            (ZarrFormat::V3, "<html>"),
            (ZarrFormat::V3, r#"{"zarr_format": 2}"#),
            (ZarrFormat::V2, r#"{"nothing": 1}"#),
            (
                ZarrFormat::V2,
                r#"{"metadata": {"a/.zarray": {"shape": [2], "chunks": [0]}}}"#,
            ),
            (
                ZarrFormat::V2,
                r#"{"metadata": {"a/.zarray": {"shape": [2, 2], "chunks": [1]}}}"#,
            ),
            (
                ZarrFormat::V2,
                r#"{"metadata": {"a/.zarray": {"shape": [-1], "chunks": [1]}}}"#,
            ),
            (
                ZarrFormat::V2,
                r#"{"metadata": {"a/.zarray": {"shape": [1], "chunks": [1], "dimension_separator": "-"}}}"#,
            ),
        ] {
            let got = ZarrHttpStore::from_document(origin(format), document.as_bytes());
            assert!(got.is_err(), "{document}");
        }
        // Unconsolidated v3: served, nothing to walk.
        let bare = ZarrHttpStore::from_document(
            origin(ZarrFormat::V3),
            br#"{"zarr_format": 3, "node_type": "group"}"#,
        )
        .unwrap();
        assert!(all_keys(&bare).is_empty());
    }

    /// Metadata keys of both formats are recognised at any depth.
    #[test]
    fn metadata_keys_of_both_formats() {
        for key in [
            "zarr.json",
            "a/zarr.json",
            ".zmetadata",
            "a/.zarray",
            "a/b/.zattrs",
            ".zgroup",
        ] {
            assert!(is_metadata_key(key), "{key}");
        }
        for key in ["a/c/0/0", "a/0.0", "zarr.json.bak", "a/zarr"] {
            assert!(!is_metadata_key(key), "{key}");
        }
    }
}
