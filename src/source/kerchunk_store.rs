//! The Zarr v2 store surface over a dataset's references: what to answer for a key, the
//! synthesised consolidated metadata (`.zmetadata`), and the variables listing.
//!
//! Pure: decides from the references alone; fetching ranged keys is the service's job.

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::error::Error;
use crate::origin::ByteRange;
use crate::source::kerchunk::{Reference, References};

/// The metadata file names of Zarr v2.
const METADATA_FILES: [&str; 3] = [".zgroup", ".zattrs", ".zarray"];

/// What to answer for one Zarr key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAnswer {
    /// Bytes known without any fetch: inline data, metadata, synthesised `.zmetadata`.
    Inline(Vec<u8>),
    /// Bytes to fetch from the origin (a range, or the whole file when `range` is `None`).
    Fetch {
        /// The resolved absolute URL.
        url: String,
        /// The byte range, or `None` for the whole file.
        range: Option<ByteRange>,
    },
    /// The key is not in the references: Zarr reads a missing chunk as the fill value.
    Absent,
}

/// Decides the answer for `key`. A `.zmetadata` the references lack is synthesised.
///
/// # Errors
/// [`Error::BadReferences`] when `.zmetadata` must be synthesised and a metadata key is not JSON,
/// or when a range ends past 2⁶⁴.
pub fn answer_key(refs: &References, key: &str) -> Result<KeyAnswer, Error> {
    match refs.get(key) {
        Some(Reference::Inline(bytes)) => Ok(KeyAnswer::Inline(bytes.to_vec())),
        // An empty range is an empty chunk: nothing to fetch (`Range: bytes=o-(o-1)` is invalid).
        Some(Reference::Range { length: 0, .. }) => Ok(KeyAnswer::Inline(Vec::new())),
        Some(Reference::Range {
            url,
            offset,
            length,
        }) => {
            if offset.checked_add(length).is_none() {
                return Err(Error::BadReferences(format!(
                    "{key}: the range at offset {offset} of {length} bytes ends past 2^64"
                )));
            }
            Ok(KeyAnswer::Fetch {
                url: url.into_owned(),
                range: Some(ByteRange { offset, length }),
            })
        }
        Some(Reference::Whole { url }) => Ok(KeyAnswer::Fetch {
            url: url.into_owned(),
            range: None,
        }),
        None if key == ".zmetadata" => consolidated_metadata(refs).map(KeyAnswer::Inline),
        None => Ok(KeyAnswer::Absent),
    }
}

/// The `Content-Type` for a key: JSON for metadata files, bytes for chunks.
#[must_use]
pub fn content_type(key: &str) -> &'static str {
    let file = key.rsplit('/').next().unwrap_or(key);
    if METADATA_FILES.contains(&file) || file == ".zmetadata" {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

fn is_metadata_key(key: &str) -> bool {
    let file = key.rsplit('/').next().unwrap_or(key);
    METADATA_FILES.contains(&file)
}

/// Parses an inline metadata key as JSON.
fn metadata_json(refs: &References, key: &str) -> Result<Option<Json>, Error> {
    match refs.get(key) {
        Some(Reference::Inline(bytes)) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| Error::BadReferences(format!("{key} is not JSON: {e}"))),
        Some(_) => Err(Error::BadReferences(format!(
            "{key} points into a remote file; only inline metadata is supported"
        ))),
        None => Ok(None),
    }
}

/// Builds consolidated metadata (`{"metadata": {key: json}, "zarr_consolidated_format": 1}`) from
/// every `.zgroup`, `.zattrs` and `.zarray` key, as `zarr.consolidate_metadata` would.
///
/// # Errors
/// [`Error::BadReferences`] when a metadata key is not inline JSON.
pub fn consolidated_metadata(refs: &References) -> Result<Vec<u8>, Error> {
    let mut metadata = Map::new();
    for key in refs.explicit_keys().filter(|k| is_metadata_key(k)) {
        if let Some(json) = metadata_json(refs, key)? {
            metadata.insert(key.to_owned(), json);
        }
    }
    let document = serde_json::json!({
        "metadata": metadata,
        "zarr_consolidated_format": 1,
    });
    serde_json::to_vec(&document).map_err(|e| Error::Internal(e.to_string()))
}

/// One array of a dataset, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variable {
    /// Its path in the group (`air_temperature`, `grp/x`).
    pub name: String,
    /// Array shape.
    pub shape: Json,
    /// Chunk shape.
    pub chunks: Json,
    /// Zarr dtype (`<f4`, `>i2`, …).
    pub dtype: Json,
    /// Compressor id, or null.
    pub compressor: Json,
    /// Filter ids, in order.
    pub filters: Vec<Json>,
    /// Dimension names from `_ARRAY_DIMENSIONS`, when present.
    pub dimensions: Json,
    /// Fill value.
    pub fill_value: Json,
}

/// Every array in the references, sorted by name.
///
/// # Errors
/// [`Error::BadReferences`] when a `.zarray` or `.zattrs` is not inline JSON.
pub fn variables(refs: &References) -> Result<Vec<Variable>, Error> {
    let mut out = Vec::new();
    for key in refs.explicit_keys().filter(|k| k.ends_with(".zarray")) {
        let name = key
            .strip_suffix(".zarray")
            .unwrap_or(key)
            .trim_end_matches('/')
            .to_owned();
        let Some(zarray) = metadata_json(refs, key)? else {
            continue;
        };
        let attrs_key = if name.is_empty() {
            ".zattrs".to_owned()
        } else {
            format!("{name}/.zattrs")
        };
        let attrs = metadata_json(refs, &attrs_key)?.unwrap_or(Json::Null);
        let id_of = |codec: &Json| codec.get("id").cloned().unwrap_or(Json::Null);
        out.push(Variable {
            shape: zarray["shape"].clone(),
            chunks: zarray["chunks"].clone(),
            dtype: zarray["dtype"].clone(),
            compressor: id_of(&zarray["compressor"]),
            filters: zarray["filters"]
                .as_array()
                .map(|filters| filters.iter().map(id_of).collect())
                .unwrap_or_default(),
            dimensions: attrs["_ARRAY_DIMENSIONS"].clone(),
            fill_value: zarray["fill_value"].clone(),
            name,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kerchunk::LoadOptions;

    fn refs(json: &str) -> References {
        References::from_json(json.as_bytes(), &LoadOptions::default()).unwrap()
    }

    /// An empty range is an empty chunk (never a `Range: bytes=o-(o-1)` request); a range that
    /// ends past 2⁶⁴ is refused when the references load.
    #[test]
    fn empty_and_overflowing_ranges() {
        let r = refs(
            r#"{"version": 1, "refs": {
                "v/0": ["http://o.test/f", 100, 0],
                "v/2": ["http://o.test/f", 1, 2]}}"#,
        );
        assert_eq!(
            answer_key(&r, "v/0").unwrap(),
            KeyAnswer::Inline(Vec::new())
        );
        let overflow =
            r#"{"version": 1, "refs": {"v/1": ["http://o.test/f", 18446744073709551615, 2]}}"#;
        assert!(References::from_json(overflow.as_bytes(), &LoadOptions::default()).is_err());
        assert_eq!(
            answer_key(&r, "v/2").unwrap(),
            KeyAnswer::Fetch {
                url: "http://o.test/f".into(),
                range: Some(ByteRange {
                    offset: 1,
                    length: 2
                })
            }
        );
        assert_eq!(answer_key(&r, "v/3").unwrap(), KeyAnswer::Absent);
    }
}
