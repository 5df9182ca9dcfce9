//! The Zarr v2 surface over any [`KeySource`]: the answer for a key (with `.zmetadata`
//! synthesised when the source has none), content types, and the variables listing, all
//! built from the source's metadata keys.

use std::rc::Rc;

use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::error::Error;
use crate::source::{KeyAnswer, KeySource, NoFiles, SourceFiles};

/// The metadata file names of Zarr v2.
const METADATA_FILES: [&str; 3] = [".zgroup", ".zattrs", ".zarray"];

/// The answer for `key` of `source`. A `.zmetadata` the source lacks is synthesised from its
/// metadata keys.
///
/// # Errors
/// What the source fails with; [`Error::BadReferences`] when `.zmetadata` must be synthesised
/// and a metadata key is not inline JSON.
pub async fn answer<S: KeySource>(
    source: &S,
    key: &str,
    files: &impl SourceFiles,
) -> Result<KeyAnswer, Error> {
    match source.answer(key, files).await? {
        KeyAnswer::Absent if key == ".zmetadata" => {
            if let Some(done) = source.memo().and_then(|m| m.consolidated.get()) {
                return Ok(KeyAnswer::Inline(done.to_vec()));
            }
            let document = consolidated_metadata(source).await?;
            if let Some(memo) = source.memo() {
                let _ = memo.consolidated.set(Rc::new(document.clone()));
            }
            Ok(KeyAnswer::Inline(document))
        }
        answer => Ok(answer),
    }
}

/// The `Content-Type` for a key: JSON for metadata files, bytes for chunks.
#[must_use]
pub fn content_type(key: &str) -> &'static str {
    let file = key.rsplit('/').next().unwrap_or(key);
    if METADATA_FILES.contains(&file) || file == ".zmetadata" || file == "zarr.json" {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// Whether `key` names a Zarr v2 metadata file (`.zgroup`, `.zattrs`, `.zarray`).
#[must_use]
pub fn is_metadata_key(key: &str) -> bool {
    let file = key.rsplit('/').next().unwrap_or(key);
    METADATA_FILES.contains(&file)
}

/// Parses an inline metadata key as JSON.
pub(crate) async fn metadata_json<S: KeySource>(
    source: &S,
    key: &str,
) -> Result<Option<Json>, Error> {
    // Metadata keys are in memory for every kind of source: no file is read for them.
    match source.answer(key, &NoFiles).await? {
        KeyAnswer::Inline(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::BadReferences(format!("{key} is not JSON: {e}"))),
        KeyAnswer::Range { .. } | KeyAnswer::Whole { .. } => Err(Error::BadReferences(format!(
            "{key} points into a remote file; only inline metadata is supported"
        ))),
        KeyAnswer::Absent => Ok(None),
    }
}

/// Builds consolidated metadata (`{"metadata": {key: json}, "zarr_consolidated_format": 1}`) from
/// every `.zgroup`, `.zattrs` and `.zarray` key, as `zarr.consolidate_metadata` would.
///
/// # Errors
/// [`Error::BadReferences`] when a metadata key is not inline JSON.
pub async fn consolidated_metadata<S: KeySource>(source: &S) -> Result<Vec<u8>, Error> {
    let mut metadata = Map::new();
    for key in source.metadata_keys().await? {
        if !is_metadata_key(&key) {
            continue;
        }
        if let Some(json) = metadata_json(source, &key).await? {
            metadata.insert(key, json);
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
pub async fn variables<S: KeySource>(source: &S) -> Result<Rc<Vec<Variable>>, Error> {
    if let Some(done) = source.memo().and_then(|m| m.variables.get()) {
        return Ok(Rc::clone(done));
    }
    let listed = Rc::new(list_variables(source).await?);
    if let Some(memo) = source.memo() {
        let _ = memo.variables.set(Rc::clone(&listed));
    }
    Ok(listed)
}

/// [`variables`], computed.
async fn list_variables<S: KeySource>(source: &S) -> Result<Vec<Variable>, Error> {
    let mut out = Vec::new();
    let mut keys = source.metadata_keys().await?;
    keys.sort();
    for key in keys.iter().filter(|k| k.ends_with(".zarray")) {
        let name = key
            .strip_suffix(".zarray")
            .unwrap_or(key)
            .trim_end_matches('/')
            .to_owned();
        let Some(zarray) = metadata_json(source, key).await? else {
            continue;
        };
        let attrs_key = if name.is_empty() {
            ".zattrs".to_owned()
        } else {
            format!("{name}/.zattrs")
        };
        let attrs = metadata_json(source, &attrs_key)
            .await?
            .unwrap_or(Json::Null);
        out.push(Variable::from_v2(name, &zarray, &attrs));
    }
    Ok(out)
}

impl Variable {
    /// The variable a v2 `.zarray` and its `.zattrs` describe.
    #[must_use]
    pub fn from_v2(name: String, zarray: &Json, attrs: &Json) -> Self {
        let id_of = |codec: &Json| codec.get("id").cloned().unwrap_or(Json::Null);
        Self {
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
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::executor::block_on;

    use super::*;

    /// A source that is not kerchunk: a table of answers, as a Zarr store over HTTP would give
    /// (metadata inline here, chunks as whole objects).
    struct Table(BTreeMap<&'static str, KeyAnswer>);

    impl KeySource for Table {
        async fn answer(&self, key: &str, _: &impl SourceFiles) -> Result<KeyAnswer, Error> {
            Ok(self.0.get(key).cloned().unwrap_or(KeyAnswer::Absent))
        }
        async fn metadata_keys(&self) -> Result<Vec<String>, Error> {
            Ok(self
                .0
                .keys()
                .filter(|k| is_metadata_key(k) || **k == ".zmetadata")
                .map(|k| (*k).to_owned())
                .collect())
        }
        async fn chunk_keys(
            &self,
            wanted: &dyn Fn(&str) -> bool,
            limit: usize,
            _: &impl SourceFiles,
        ) -> Result<(Vec<String>, bool), Error> {
            let keys: Vec<String> = self
                .0
                .iter()
                .filter(|(k, a)| wanted(k) && a.location().is_some())
                .map(|(k, _)| (*k).to_owned())
                .collect();
            let more = keys.len() > limit;
            Ok((keys.into_iter().take(limit).collect(), more))
        }
        fn key_count(&self) -> Option<u64> {
            None
        }
    }

    fn inline(json: &str) -> KeyAnswer {
        KeyAnswer::Inline(json.as_bytes().to_vec())
    }

    fn table() -> Table {
        Table(BTreeMap::from([
            (".zgroup", inline(r#"{"zarr_format": 2}"#)),
            (
                "v/.zarray",
                inline(
                    r#"{"shape": [4], "chunks": [2], "dtype": "<f4", "compressor": {"id": "zlib"}, "filters": null, "fill_value": 0}"#,
                ),
            ),
            ("v/.zattrs", inline(r#"{"_ARRAY_DIMENSIONS": ["x"]}"#)),
            (
                "v/0",
                KeyAnswer::Whole {
                    url: "http://o.test/store/v/0".into(),
                },
            ),
        ]))
    }

    /// Any source gets the same Zarr surface: chunk answers pass through, `.zmetadata` is
    /// synthesised from its metadata keys, variables come from its `.zarray`s.
    #[test]
    fn the_zarr_surface_works_over_any_source() {
        let source = table();
        assert_eq!(
            block_on(answer(&source, "v/0", &NoFiles)).unwrap(),
            KeyAnswer::Whole {
                url: "http://o.test/store/v/0".into()
            }
        );
        assert_eq!(
            block_on(answer(&source, "v/9", &NoFiles)).unwrap(),
            KeyAnswer::Absent
        );
        let KeyAnswer::Inline(bytes) = block_on(answer(&source, ".zmetadata", &NoFiles)).unwrap()
        else {
            panic!("not synthesised");
        };
        let consolidated: Json = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(consolidated["zarr_consolidated_format"], 1);
        assert_eq!(consolidated["metadata"]["v/.zarray"]["dtype"], "<f4");
        assert_eq!(consolidated["metadata"][".zgroup"]["zarr_format"], 2);
        let listed = block_on(variables(&source)).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "v");
        assert_eq!(listed[0].compressor, "zlib");
        assert_eq!(listed[0].dimensions, serde_json::json!(["x"]));
    }

    /// A source's own `.zmetadata` is passed through, never rebuilt; metadata that lives at a
    /// URL cannot be consolidated here and says so.
    #[test]
    fn own_metadata_is_passed_through() {
        let mut source = table();
        source.0.insert(
            ".zmetadata",
            KeyAnswer::Whole {
                url: "http://o.test/store/.zmetadata".into(),
            },
        );
        assert_eq!(
            block_on(answer(&source, ".zmetadata", &NoFiles)).unwrap(),
            KeyAnswer::Whole {
                url: "http://o.test/store/.zmetadata".into()
            }
        );
        let mut remote = table();
        remote.0.insert(
            "v/.zarray",
            KeyAnswer::Whole {
                url: "http://o.test/store/v/.zarray".into(),
            },
        );
        assert!(matches!(
            block_on(answer(&remote, ".zmetadata", &NoFiles)),
            Err(Error::BadReferences(_))
        ));
    }
}
