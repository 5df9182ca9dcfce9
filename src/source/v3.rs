//! The Zarr v3 view of a dataset's v2 keys (`/zarr/{dataset}@v3/…`, and `@decoded-v3/…` over
//! the decoded view): a `zarr.json` for every group and array, synthesised from `.zgroup`,
//! `.zarray` and `.zattrs` (the root's carries the consolidated metadata of every node), and
//! chunk keys in v3's default encoding (`var/c/0/1/2`), each the v2 chunk of the same
//! indices, so that zarr-python 3's defaults and zarrita's v3 path open the dataset natively.
//!
//! The arrays' codecs become v3 codecs (`bytes` with the dtype's byte order, then `gzip`,
//! `zstd`, `blosc` as v3 names them and the rest as `numcodecs.*`, which zarr-python
//! resolves); `_ARRAY_DIMENSIONS` becomes `dimension_names`, and the fill value is kept as
//! xarray expects it of v3 (`_FillValue` in the attributes, floats base64-encoded).

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use crate::codec::dtype::{ByteOrder, Dtype, Kind};
use crate::codec::{decoded_zarray, CodecError};
use crate::error::Error;
use crate::source::zarr::metadata_json;
use crate::source::KeySource;

/// What the v3 view answers for a key.
#[derive(Debug, PartialEq, Eq)]
pub enum V3Key {
    /// A `zarr.json`, synthesised.
    Metadata(Vec<u8>),
    /// A chunk: the v2 key with the same indices, answered by the v2 view underneath.
    Chunk(String),
    /// No such key in the v3 view.
    Absent,
}

/// The v3 view's answer for `key` of `source`; `decoded`: over the decoded view (no codecs,
/// little-endian items).
///
/// # Errors
/// What the source fails with; [`Error::Unprocessable`] for an array the v3 view cannot
/// describe (a dtype v3 has no name for, an unknown codec order).
pub async fn answer<S: KeySource>(source: &S, key: &str, decoded: bool) -> Result<V3Key, Error> {
    if key == "zarr.json" || key.ends_with("/zarr.json") {
        let node = key
            .strip_suffix("zarr.json")
            .unwrap_or("")
            .trim_end_matches('/');
        // The root's consolidated metadata walks every metadata key: made once per source.
        let root = source
            .memo()
            .filter(|_| node.is_empty())
            .map(|memo| &memo.v3_roots[usize::from(decoded)]);
        if let Some(done) = root.and_then(std::cell::OnceCell::get) {
            return Ok(V3Key::Metadata(done.to_vec()));
        }
        return match node_json(source, node, decoded).await? {
            Some(mut json) => {
                if node.is_empty() {
                    json["consolidated_metadata"] = consolidated(source, decoded).await?;
                }
                let document = json.to_string().into_bytes();
                if let Some(root) = root {
                    let _ = root.set(std::rc::Rc::new(document.clone()));
                }
                Ok(V3Key::Metadata(document))
            }
            None => Ok(V3Key::Absent),
        };
    }
    // `{array}/c/{i}/{j}…` (`c` alone for a 0-d array): the array is the longest prefix before
    // a `c` segment that has a `.zarray`.
    let segments: Vec<&str> = key.split('/').collect();
    for (at, _) in segments
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, s)| **s == "c")
    {
        let array = segments[..at].join("/");
        let Some(zarray) = metadata_json(source, &meta_key(&array, ".zarray")).await? else {
            continue;
        };
        let indices = &segments[at + 1..];
        let rank = zarray["shape"].as_array().map_or(0, Vec::len);
        let valid = indices.len() == rank
            && indices
                .iter()
                .all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()));
        if !valid {
            return Ok(V3Key::Absent);
        }
        let separator = zarray["dimension_separator"].as_str().unwrap_or(".");
        let v2_indices = if rank == 0 {
            "0".to_owned()
        } else {
            indices.join(separator)
        };
        return Ok(V3Key::Chunk(meta_key(&array, &v2_indices)));
    }
    Ok(V3Key::Absent)
}

/// `{node}/{name}`, or `name` at the root.
fn meta_key(node: &str, name: &str) -> String {
    if node.is_empty() {
        name.to_owned()
    } else {
        format!("{node}/{name}")
    }
}

/// The `zarr.json` of the group or array at `node`, if there is one.
async fn node_json<S: KeySource>(
    source: &S,
    node: &str,
    decoded: bool,
) -> Result<Option<Json>, Error> {
    let attrs = metadata_json(source, &meta_key(node, ".zattrs"))
        .await?
        .unwrap_or_else(|| json!({}));
    if let Some(zarray) = metadata_json(source, &meta_key(node, ".zarray")).await? {
        let zarray = if decoded {
            decoded_zarray(&zarray)
        } else {
            zarray
        };
        return array_json(&zarray, &attrs)
            .map(Some)
            .map_err(|e| Error::from_codec(&meta_key(node, "zarr.json"), e));
    }
    if metadata_json(source, &meta_key(node, ".zgroup"))
        .await?
        .is_some()
    {
        return Ok(Some(group_json(&attrs)));
    }
    Ok(None)
}

/// The root's `consolidated_metadata`: every other node's `zarr.json` (arrays v3 cannot
/// describe are left out; their own `zarr.json` says why).
async fn consolidated<S: KeySource>(source: &S, decoded: bool) -> Result<Json, Error> {
    let mut nodes: Vec<String> = source
        .metadata_keys()
        .await?
        .into_iter()
        .filter_map(|k| {
            let node = k
                .strip_suffix(".zarray")
                .or_else(|| k.strip_suffix(".zgroup"))?;
            Some(node.trim_end_matches('/').to_owned())
        })
        .filter(|n| !n.is_empty())
        .collect();
    nodes.sort();
    nodes.dedup();
    let mut metadata = Map::new();
    for node in nodes {
        match node_json(source, &node, decoded).await {
            Ok(Some(json)) => {
                metadata.insert(node, json);
            }
            Ok(None) | Err(Error::Unprocessable(_)) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(json!({"kind": "inline", "must_understand": false, "metadata": metadata}))
}

/// A group's `zarr.json`.
fn group_json(attrs: &Json) -> Json {
    json!({"zarr_format": 3, "node_type": "group", "attributes": attrs})
}

/// An array's `zarr.json` from its v2 `.zarray` and `.zattrs`.
///
/// # Errors
/// [`CodecError::Unsupported`] for a dtype v3 has no core name for or codecs in an order v3
/// cannot express.
pub fn array_json(zarray: &Json, attrs: &Json) -> Result<Json, CodecError> {
    let dtype_text = zarray["dtype"]
        .as_str()
        .ok_or_else(|| CodecError::Unsupported("structured dtypes have no v3 name".into()))?;
    let dtype = Dtype::parse(dtype_text)?;
    let data_type = data_type(&dtype, dtype_text)?;
    let shape = zarray["shape"].clone();
    let rank = shape.as_array().map_or(0, Vec::len);
    let mut attributes = attrs.as_object().cloned().unwrap_or_default();
    let dimensions = attributes.remove("_ARRAY_DIMENSIONS");
    let v2_fill = match &zarray["fill_value"] {
        Json::Null => attributes.get("_FillValue").cloned(),
        fill => Some(fill.clone()),
    };
    attributes.remove("_FillValue");
    if let Some(fill) = v2_fill
        .as_ref()
        .and_then(|f| xarray_fill_attribute(f, &dtype))
    {
        attributes.insert("_FillValue".into(), fill);
    }
    let mut out = json!({
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": zarray["chunks"]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": v3_fill(zarray["fill_value"].clone(), &dtype),
        "codecs": codecs(zarray, &dtype, rank)?,
        "attributes": attributes,
    });
    if let Some(names) = dimensions.filter(|d| d.as_array().is_some_and(|d| d.len() == rank)) {
        out["dimension_names"] = names;
    }
    Ok(out)
}

/// v3's name of a dtype.
fn data_type(dtype: &Dtype, text: &str) -> Result<&'static str, CodecError> {
    let body = &text[1..];
    Ok(match (dtype.kind, body) {
        (_, "b1") => "bool",
        (Kind::Signed, "i1") => "int8",
        (Kind::Signed, "i2") => "int16",
        (Kind::Signed, "i4") => "int32",
        (Kind::Signed, "i8") => "int64",
        (Kind::Unsigned, "u1") => "uint8",
        (Kind::Unsigned, "u2") => "uint16",
        (Kind::Unsigned, "u4") => "uint32",
        (Kind::Unsigned, "u8") => "uint64",
        (Kind::Float, "f2") => "float16",
        (Kind::Float, "f4") => "float32",
        (Kind::Float, "f8") => "float64",
        (_, "c8") => "complex64",
        (_, "c16") => "complex128",
        _ => {
            return Err(CodecError::Unsupported(format!(
                "dtype {text:?} has no Zarr v3 core data type"
            )))
        }
    })
}

/// The v3 fill value (never null: v3 requires one; the v2 default of zeros).
fn v3_fill(fill: Json, dtype: &Dtype) -> Json {
    match (fill, dtype.kind) {
        (Json::Null, _) if dtype.itemsize == 1 && dtype.kind == Kind::Unsigned => json!(0),
        (Json::Null, Kind::Float) => json!(0.0),
        (Json::Null, Kind::Other) => json!([0.0, 0.0]),
        (Json::Null, _) => json!(0),
        (Json::Number(n), Kind::Unsigned | Kind::Signed) if n.is_f64() => {
            // A float fill of an integer array (netCDF writers do this): its integer value.
            #[allow(clippy::cast_possible_truncation)]
            let v = n.as_f64().unwrap_or(0.0) as i64;
            json!(v)
        }
        (fill, _) => fill,
    }
}

/// `_FillValue` as xarray writes it in v3 attributes (`FillValueCoder`): floats as the
/// base64 of the little-endian double, integers as integers, booleans as booleans.
fn xarray_fill_attribute(fill: &Json, dtype: &Dtype) -> Option<Json> {
    let as_f64 = match fill {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        Json::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }?;
    let name = dtype.little_endian();
    Some(match dtype.kind {
        Kind::Float => {
            json!(base64::engine::general_purpose::STANDARD.encode(as_f64.to_le_bytes()))
        }
        _ if name.ends_with("b1") => json!(as_f64 != 0.0),
        #[allow(clippy::cast_possible_truncation)]
        Kind::Signed | Kind::Unsigned => json!(as_f64 as i64),
        Kind::Other => return None,
    })
}

/// numcodecs filters that work on items (array → array in v3); the others work on bytes.
const ITEM_FILTERS: [&str; 6] = [
    "delta",
    "fixedscaleoffset",
    "quantize",
    "bitround",
    "astype",
    "categorize",
];

/// The v3 codec chain of a v2 array: item filters, `bytes`, byte filters, the compressor.
fn codecs(zarray: &Json, dtype: &Dtype, rank: usize) -> Result<Json, CodecError> {
    let mut chain = Vec::new();
    if zarray["order"].as_str() == Some("F") && rank > 1 {
        let order: Vec<usize> = (0..rank).rev().collect();
        chain.push(json!({"name": "transpose", "configuration": {"order": order}}));
    }
    let filters = zarray["filters"].as_array().cloned().unwrap_or_default();
    let mut past_bytes = false;
    let mut serializer = json!({"name": "bytes"});
    if dtype.swap_unit > 1 || dtype.order == ByteOrder::Big {
        let endian = if dtype.order == ByteOrder::Big {
            "big"
        } else {
            "little"
        };
        serializer["configuration"] = json!({ "endian": endian });
    }
    for filter in &filters {
        let id = filter["id"].as_str().unwrap_or_default();
        let item = ITEM_FILTERS.contains(&id);
        if item && past_bytes {
            return Err(CodecError::Unsupported(format!(
                "filter {id:?} after a byte filter has no v3 order"
            )));
        }
        if !item && !past_bytes {
            chain.push(serializer.clone());
            past_bytes = true;
        }
        chain.push(numcodecs(filter));
    }
    if !past_bytes {
        chain.push(serializer);
    }
    match &zarray["compressor"] {
        Json::Null => {}
        compressor => chain.push(v3_compressor(compressor, dtype)),
    }
    Ok(Json::Array(chain))
}

/// A numcodecs codec as zarr-python 3 names it (`numcodecs.{id}` with its configuration).
fn numcodecs(codec: &Json) -> Json {
    let mut configuration = codec.as_object().cloned().unwrap_or_default();
    let id = configuration
        .remove("id")
        .and_then(|id| id.as_str().map(str::to_owned))
        .unwrap_or_default();
    json!({"name": format!("numcodecs.{id}"), "configuration": configuration})
}

/// A v2 compressor as a v3 codec: `gzip`, `zstd` and `blosc` by their v3 names.
fn v3_compressor(codec: &Json, dtype: &Dtype) -> Json {
    let level = |default: i64| codec["level"].as_i64().unwrap_or(default);
    match codec["id"].as_str() {
        Some("gzip") => json!({"name": "gzip", "configuration": {"level": level(1)}}),
        Some("zstd") => json!({"name": "zstd", "configuration": {
            "level": level(0), "checksum": codec["checksum"].as_bool().unwrap_or(false)}}),
        Some("blosc") => {
            let shuffle = match codec["shuffle"].as_i64() {
                Some(0) => "noshuffle",
                Some(2) => "bitshuffle",
                _ => "shuffle",
            };
            json!({"name": "blosc", "configuration": {
                "cname": codec["cname"].as_str().unwrap_or("lz4"),
                "clevel": codec["clevel"].as_i64().unwrap_or(5),
                "shuffle": shuffle,
                "typesize": dtype.itemsize,
                "blocksize": codec["blocksize"].as_i64().unwrap_or(0)}})
        }
        _ => numcodecs(codec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_netcdf4_array_becomes_a_v3_array() {
        let zarray = json!({"shape": [8, 46, 90], "chunks": [4, 23, 45], "dtype": "<f4",
            "compressor": null, "fill_value": -9999.0, "order": "C", "zarr_format": 2,
            "filters": [{"id": "shuffle", "elementsize": 4}, {"id": "zlib", "level": 4}]});
        let attrs = json!({"_ARRAY_DIMENSIONS": ["time", "lat", "lon"], "units": "K"});
        let out = array_json(&zarray, &attrs).unwrap();
        assert_eq!(out["data_type"], "float32");
        assert_eq!(out["dimension_names"], json!(["time", "lat", "lon"]));
        assert_eq!(
            out["chunk_grid"]["configuration"]["chunk_shape"],
            json!([4, 23, 45])
        );
        assert_eq!(
            out["codecs"],
            json!([
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}},
                {"name": "numcodecs.zlib", "configuration": {"level": 4}},
            ])
        );
        assert_eq!(out["fill_value"], -9999.0);
        // base64 of struct.pack("<d", -9999.0), as xarray's FillValueCoder writes it.
        assert_eq!(out["attributes"]["_FillValue"], "AAAAAICHw8A=");
        assert_eq!(out["attributes"]["units"], "K");
        assert!(out["attributes"].get("_ARRAY_DIMENSIONS").is_none());
    }

    #[test]
    fn decoded_and_big_endian_and_compressed_arrays() {
        let zarray = json!({"shape": [6], "chunks": [6], "dtype": ">i2", "fill_value": null,
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0},
            "filters": [{"id": "delta", "dtype": ">i2"}], "order": "C"});
        let out = array_json(&zarray, &json!({})).unwrap();
        assert_eq!(
            out["codecs"],
            json!([
                {"name": "numcodecs.delta", "configuration": {"dtype": ">i2"}},
                {"name": "bytes", "configuration": {"endian": "big"}},
                {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle",
                    "typesize": 2, "blocksize": 0}},
            ])
        );
        assert_eq!(
            (
                out["fill_value"].clone(),
                out["attributes"].get("_FillValue")
            ),
            (json!(0), None)
        );
        let decoded = array_json(&decoded_zarray(&zarray), &json!({})).unwrap();
        assert_eq!(
            decoded["codecs"],
            json!([{"name": "bytes", "configuration": {"endian": "little"}}])
        );
        let bytes = array_json(
            &json!({"shape": [], "chunks": [], "dtype": "|u1", "fill_value": 3,
            "compressor": null, "filters": null}),
            &json!({}),
        )
        .unwrap();
        assert_eq!(bytes["codecs"], json!([{"name": "bytes"}]));
        assert_eq!(bytes["attributes"]["_FillValue"], 3);
    }

    #[test]
    fn what_v3_cannot_name_is_refused() {
        for dtype in ["<M8[ns]", "|S4", "<U3"] {
            let zarray = json!({"shape": [1], "chunks": [1], "dtype": dtype, "fill_value": null,
                "compressor": null, "filters": null});
            assert!(array_json(&zarray, &json!({})).is_err(), "{dtype}");
        }
        let zarray = json!({"shape": [1], "chunks": [1], "dtype": "<f4", "fill_value": null,
            "compressor": null, "filters": [{"id": "shuffle"}, {"id": "delta", "dtype": "<f4"}]});
        assert!(array_json(&zarray, &json!({})).is_err());
    }
}
