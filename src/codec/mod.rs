//! The codec layer: undoing a Zarr v2 array's codec chain at the edge, so that every client
//! reads plain little-endian items (the decoded view, `/zarr/{dataset}@decoded/…`).
//!
//! - [`DecodePlan`]: what a `.zarray` says its chunks are (compressor, filters, dtype, chunk
//!   shape), checked before anything is inflated; applying it to one chunk's bytes.
//! - [`decoded_zarray`]: the `.zarray` that describes the decoded chunks.
//! - [`dtype`], [`filters`], [`inflate`], [`blosc`]: data types, `shuffle`/`delta`,
//!   `zlib`/`gzip`/`zstd`, Blosc 1; [`grib`]: kerchunk's `grib` filter (GRIB2 messages).
//!
//! Pure: bytes in, bytes out.

pub mod blosc;
pub mod dtype;
pub mod filters;
pub mod grib;
pub mod inflate;

use serde_json::Value as Json;

use crate::codec::dtype::{swap_bytes, Dtype, Kind};
use crate::codec::inflate::Compressor;

/// The largest decoded chunk the view produces (the origin's answer cap, too).
pub const MAX_DECODED_BYTES: usize = 64 << 20;

/// Why a chunk cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The view cannot apply this chain (an unknown codec, an object dtype, a chunk larger than
    /// [`MAX_DECODED_BYTES`]): the client must read the encoded view. A 422 naming it.
    #[error("{0}")]
    Unsupported(String),
    /// The bytes do not decode as the metadata says (a corrupt stream, a wrong length): the
    /// origin or the references are wrong. A 502; nothing is cached.
    #[error("{0}")]
    Corrupt(String),
}

/// One step of a decode, in the order it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Inflate(Compressor),
    Unshuffle(usize),
    Undelta {
        dtype: Dtype,
        astype: Dtype,
    },
    /// A whole GRIB2 message to the grid's values, as items of the dtype (`<f8` or `<f4`).
    Grib,
}

/// How one array's chunks are decoded: the steps, the item type and the size every decoded
/// chunk has (a partial edge chunk is stored full size in Zarr v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodePlan {
    steps: Vec<Step>,
    dtype: Dtype,
    decoded_len: usize,
    /// The largest intermediate result (a delta's `astype` may be wider than the dtype).
    limit: usize,
    id: String,
}

impl DecodePlan {
    /// The plan for the chunks of an array described by `zarray` (a Zarr v2 `.zarray`).
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] naming the codec or dtype the view cannot apply, or the
    /// decoded chunk size when it exceeds [`MAX_DECODED_BYTES`].
    pub fn from_zarray(zarray: &Json) -> Result<Self, CodecError> {
        let dtype_text = zarray["dtype"].as_str().ok_or_else(|| {
            CodecError::Unsupported("dtype: only simple (string) dtypes are decoded".into())
        })?;
        let dtype = Dtype::parse(dtype_text)?;
        let items = chunk_items(&zarray["chunks"])?;
        let too_large = || {
            CodecError::Unsupported(format!(
                "a decoded chunk of {items} × {} bytes exceeds the view's {MAX_DECODED_BYTES}",
                dtype.itemsize
            ))
        };
        let decoded_len = items
            .checked_mul(dtype.itemsize)
            .filter(|&n| n <= MAX_DECODED_BYTES)
            .ok_or_else(too_large)?;
        let mut steps = Vec::new();
        let mut limit = decoded_len;
        match &zarray["compressor"] {
            Json::Null => {}
            codec => steps.push(Step::Inflate(compressor(codec)?)),
        }
        let filters = match &zarray["filters"] {
            Json::Null => Vec::new(),
            Json::Array(filters) => filters.clone(),
            _ => return Err(CodecError::Unsupported("filters: not a list".into())),
        };
        let grib = filters.iter().any(|f| f["id"] == "grib");
        if grib
            && (filters.len() != 1
                || !steps.is_empty()
                || dtype.kind != Kind::Float
                || dtype.itemsize == 2)
        {
            return Err(CodecError::Unsupported(
                "grib: only as the one codec of a float array (kerchunk's scan_grib form)".into(),
            ));
        }
        for filter in filters.iter().rev() {
            let step = filter_step(filter, &dtype)?;
            if let Step::Undelta { astype, .. } = &step {
                limit = items
                    .checked_mul(astype.itemsize)
                    .filter(|&n| n <= MAX_DECODED_BYTES)
                    .ok_or_else(too_large)?
                    .max(limit);
            }
            steps.push(step);
        }
        let canonical = serde_json::json!([
            zarray["compressor"],
            zarray["filters"],
            dtype_text,
            zarray["chunks"]
        ]);
        let id = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(canonical.to_string().as_bytes())
        );
        Ok(Self {
            steps,
            dtype,
            decoded_len,
            limit,
            id,
        })
    }

    /// Every decoded chunk's size in bytes.
    #[must_use]
    pub fn decoded_len(&self) -> usize {
        self.decoded_len
    }

    /// A short digest of the chain, the dtype and the chunk shape: decoded objects are stored
    /// apart per chain.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Decodes one chunk's bytes into plain little-endian items, exactly
    /// [`decoded_len`](Self::decoded_len) bytes.
    ///
    /// # Errors
    /// [`CodecError::Corrupt`] when a step fails or the result has another length.
    pub fn decode(&self, encoded: &[u8]) -> Result<Vec<u8>, CodecError> {
        let mut bytes: Option<Vec<u8>> = None;
        for step in &self.steps {
            let input = bytes.as_deref().unwrap_or(encoded);
            let output = match step {
                Step::Inflate(c) => c.decompress(input, self.limit)?,
                Step::Unshuffle(size) => filters::unshuffle(input, *size),
                Step::Undelta { dtype, astype } => filters::undelta(input, dtype, astype)?,
                Step::Grib => self.grib_items(input)?,
            };
            bytes = Some(output);
        }
        let mut bytes = bytes.unwrap_or_else(|| encoded.to_vec());
        if bytes.len() != self.decoded_len {
            return Err(CodecError::Corrupt(format!(
                "decodes to {} bytes, but the chunk shape and dtype make {}",
                bytes.len(),
                self.decoded_len
            )));
        }
        if self.dtype.needs_swap() {
            swap_bytes(&mut bytes, self.dtype.swap_unit);
        }
        Ok(bytes)
    }
}

impl DecodePlan {
    /// A GRIB2 message's values as little-endian items of the plan's float dtype.
    fn grib_items(&self, message: &[u8]) -> Result<Vec<u8>, CodecError> {
        let points = self.decoded_len / self.dtype.itemsize;
        let values = grib::decode(message, points)?;
        let mut out = Vec::with_capacity(self.decoded_len);
        for value in values {
            if self.dtype.itemsize == 4 {
                #[allow(clippy::cast_possible_truncation)]
                out.extend_from_slice(&(value as f32).to_le_bytes());
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        Ok(out)
    }
}

/// The number of items in a chunk of shape `chunks` (0-d arrays have one).
fn chunk_items(chunks: &Json) -> Result<usize, CodecError> {
    let bad = || CodecError::Unsupported("chunks: not a list of positive integers".into());
    let dims = chunks.as_array().ok_or_else(bad)?;
    dims.iter().try_fold(1usize, |n, d| {
        let d = d
            .as_u64()
            .filter(|&d| d > 0)
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(bad)?;
        n.checked_mul(d)
            .ok_or_else(|| CodecError::Unsupported("chunks: the chunk has too many items".into()))
    })
}

/// The codec's numcodecs id.
fn codec_id(codec: &Json) -> Result<&str, CodecError> {
    codec["id"]
        .as_str()
        .ok_or_else(|| CodecError::Unsupported(format!("codec without an id: {codec}")))
}

fn compressor(codec: &Json) -> Result<Compressor, CodecError> {
    match codec_id(codec)? {
        "zlib" => Ok(Compressor::Zlib),
        "gzip" => Ok(Compressor::Gzip),
        "zstd" => Ok(Compressor::Zstd),
        "blosc" => Ok(Compressor::Blosc),
        other => Err(unsupported_codec(other)),
    }
}

fn unsupported_codec(id: &str) -> CodecError {
    CodecError::Unsupported(format!(
        "codec {id:?} is not applied by the decoded view (it applies zlib, gzip, zstd, \
         blosc, shuffle, delta and grib); read the encoded view"
    ))
}

/// A filter's step. Compressors may be filters too: kerchunk writes HDF5's deflate as one
/// (`filters: [shuffle, zlib]`, `compressor: null`).
fn filter_step(filter: &Json, dtype: &Dtype) -> Result<Step, CodecError> {
    let id = codec_id(filter)?;
    match id {
        "zlib" | "gzip" | "zstd" | "blosc" => Ok(Step::Inflate(compressor(filter)?)),
        "shuffle" => {
            let size = match &filter["elementsize"] {
                Json::Null => dtype.itemsize,
                n => n
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=4096).contains(n))
                    .ok_or_else(|| CodecError::Unsupported(format!("shuffle: elementsize {n}")))?,
            };
            Ok(Step::Unshuffle(size))
        }
        "grib" => Ok(Step::Grib),
        "delta" => {
            let parse = |field: &str| match &filter[field] {
                Json::String(t) => Dtype::parse(t),
                Json::Null => Ok(dtype.clone()),
                other => Err(CodecError::Unsupported(format!("delta: {field} {other}"))),
            };
            Ok(Step::Undelta {
                dtype: parse("dtype")?,
                astype: parse("astype")?,
            })
        }
        other => Err(unsupported_codec(other)),
    }
}

/// The `.zarray` of the decoded view: no compressor, no filters, the dtype little-endian;
/// everything else (shape, chunks, fill value, order, attributes' keys) as it was.
#[must_use]
pub fn decoded_zarray(zarray: &Json) -> Json {
    let mut out = zarray.clone();
    if let Json::Object(map) = &mut out {
        map.insert("compressor".into(), Json::Null);
        map.insert("filters".into(), Json::Null);
        if let Some(dtype) = zarray["dtype"].as_str().and_then(|t| Dtype::parse(t).ok()) {
            map.insert("dtype".into(), Json::String(dtype.little_endian()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(4));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn shuffled(plain: &[u8], size: usize) -> Vec<u8> {
        let count = plain.len() / size;
        (0..size)
            .flat_map(|b| (0..count).map(move |i| (i, b)))
            .map(|(i, b)| plain[i * size + b])
            .collect()
    }

    fn floats(values: &[f32], big: bool) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| {
                if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                }
            })
            .collect()
    }

    /// kerchunk's netCDF4 form (`filters: [shuffle, zlib]`, no compressor) and the form with
    /// zlib as the compressor decode to the same little-endian items.
    #[test]
    fn hdf5_and_numcodecs_orders_decode_alike() {
        let values: Vec<f32> = (0..12i16).map(|i| f32::from(i) * 0.5 - 2.0).collect();
        let plain = floats(&values, false);
        let encoded = zlib(&shuffled(&plain, 4));
        let kerchunk = json!({"dtype": "<f4", "chunks": [3, 4], "compressor": null,
            "filters": [{"id": "shuffle", "elementsize": 4}, {"id": "zlib", "level": 4}]});
        let numcodecs = json!({"dtype": "<f4", "chunks": [3, 4], "compressor": {"id": "zlib", "level": 4},
            "filters": [{"id": "shuffle", "elementsize": 4}]});
        for zarray in [kerchunk, numcodecs] {
            let chain = DecodePlan::from_zarray(&zarray).unwrap();
            assert_eq!(chain.decoded_len(), 48);
            assert_eq!(chain.decode(&encoded).unwrap(), plain);
        }
    }

    #[test]
    fn big_endian_items_come_out_little_endian() {
        let values = [1.0f32, -3.25, 1e6];
        let zarray = json!({"dtype": ">f4", "chunks": [3], "compressor": null, "filters": null});
        let swapped = DecodePlan::from_zarray(&zarray).unwrap();
        assert_eq!(
            swapped.decode(&floats(&values, true)).unwrap(),
            floats(&values, false)
        );
        assert_eq!(decoded_zarray(&zarray)["dtype"], "<f4");
    }

    #[test]
    fn the_decoded_zarray_has_no_codecs_and_keeps_the_rest() {
        let zarray = json!({"dtype": "<i2", "chunks": [2], "shape": [3], "fill_value": -1,
            "order": "C", "zarr_format": 2, "compressor": {"id": "zlib"}, "filters": [{"id": "shuffle"}]});
        let out = decoded_zarray(&zarray);
        assert_eq!(
            out,
            json!({"dtype": "<i2", "chunks": [2], "shape": [3], "fill_value": -1,
            "order": "C", "zarr_format": 2, "compressor": null, "filters": null})
        );
    }

    #[test]
    fn wrong_lengths_and_codecs_are_named() {
        let zarray =
            json!({"dtype": "<f4", "chunks": [4], "compressor": {"id": "zlib"}, "filters": null});
        let plan = DecodePlan::from_zarray(&zarray).unwrap();
        // Inflates to fewer bytes than the chunk has: never served short.
        let short = plan.decode(&zlib(&[0u8; 12])).unwrap_err();
        assert!(
            matches!(short, CodecError::Corrupt(ref m) if m.contains("12 bytes")),
            "{short}"
        );
        // More than declared: stopped while inflating.
        assert!(matches!(
            plan.decode(&zlib(&[0u8; 17])),
            Err(CodecError::Corrupt(_))
        ));
        assert!(matches!(
            plan.decode(b"garbage"),
            Err(CodecError::Corrupt(_))
        ));
        for (zarray, named) in [
            (
                json!({"dtype": "<f4", "chunks": [4], "compressor": {"id": "lzma"}, "filters": null}),
                "lzma",
            ),
            (
                json!({"dtype": "<f4", "chunks": [4], "compressor": null, "filters": [{"id": "fletcher32"}]}),
                "fletcher32",
            ),
            (
                json!({"dtype": "|O", "chunks": [4], "compressor": null, "filters": [{"id": "vlen-utf8"}]}),
                "object",
            ),
            (
                json!({"dtype": [["a", "<f4"]], "chunks": [4], "compressor": null, "filters": null}),
                "simple",
            ),
            (
                json!({"dtype": "<f8", "chunks": [100_000, 100_000], "compressor": null, "filters": null}),
                "exceeds",
            ),
            (
                json!({"dtype": "<f8", "chunks": [u64::MAX, 4], "compressor": null, "filters": null}),
                "too many",
            ),
            (
                json!({"dtype": "<f8", "chunks": [0], "compressor": null, "filters": null}),
                "positive",
            ),
        ] {
            let error = DecodePlan::from_zarray(&zarray).unwrap_err();
            assert!(
                matches!(error, CodecError::Unsupported(ref m) if m.contains(named)),
                "{error}"
            );
        }
    }

    #[test]
    fn plans_differ_by_chain_and_agree_otherwise() {
        let a =
            json!({"dtype": "<f4", "chunks": [4], "compressor": {"id": "zlib"}, "filters": null});
        let b =
            json!({"dtype": "<f4", "chunks": [4], "compressor": {"id": "zstd"}, "filters": null});
        let pa = DecodePlan::from_zarray(&a).unwrap();
        assert_eq!(pa.id(), DecodePlan::from_zarray(&a.clone()).unwrap().id());
        assert_ne!(pa.id(), DecodePlan::from_zarray(&b).unwrap().id());
        assert_eq!(pa.id().len(), 16);
    }

    #[test]
    fn delta_then_zstd_decodes() {
        let values: Vec<i32> = vec![1000, 1003, 1001, 990];
        let deltas: Vec<u8> = [1000i32, 3, -2, -11]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let zarray = json!({"dtype": "<i4", "chunks": [4], "compressor": {"id": "zstd", "level": 1},
            "filters": [{"id": "delta", "dtype": "<i4"}]});
        let plan = DecodePlan::from_zarray(&zarray).unwrap();
        let out = plan
            .decode(&zstd::bulk::compress(&deltas, 1).unwrap())
            .unwrap();
        let got: Vec<i32> = out
            .chunks(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(got, values);
    }

    /// The items of a fixture's pattern (see `demo/make_codec_fixtures.py`).
    fn pattern(kind: &str, items: usize) -> Vec<u8> {
        (0..i64::try_from(items).unwrap())
            .flat_map(|i| match kind {
                "i32" => i32::try_from((i / 7) * 3 + (i * i) % 5 - 50_000)
                    .unwrap()
                    .to_le_bytes()
                    .to_vec(),
                #[allow(clippy::cast_precision_loss)]
                "f64" => (((i % 1000) as f64) * 0.25).to_le_bytes().to_vec(),
                _ => vec![u8::try_from((i * 31) % 251).unwrap()],
            })
            .collect()
    }

    /// Chunks encoded by numcodecs itself (Blosc with each inner codec, split and unsplit
    /// blocks, a copied buffer; zlib, gzip, zstd, shuffle, delta) decode to their items; bit
    /// shuffle is refused by name; every truncation of each is an error, never a panic.
    #[test]
    fn numcodecs_fixtures_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codecs");
        let manifest: Json =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let cases = manifest["cases"].as_object().unwrap();
        assert!(cases.len() >= 11);
        for (name, case) in cases {
            let encoded = std::fs::read(dir.join(format!("{name}.bin"))).unwrap();
            let plan = DecodePlan::from_zarray(&case["zarray"]).unwrap();
            let items = usize::try_from(case["zarray"]["chunks"][0].as_u64().unwrap()).unwrap();
            let expected = pattern(case["pattern"].as_str().unwrap(), items);
            if name == "blosc_bitshuffle" {
                let refused = plan.decode(&encoded).unwrap_err();
                assert!(
                    matches!(refused, CodecError::Unsupported(ref m) if m.contains("bit shuffle"))
                );
                continue;
            }
            assert_eq!(plan.decode(&encoded).unwrap(), expected, "{name}");
            for cut in [0, 1, 15, 16, 17, encoded.len() / 2, encoded.len() - 1] {
                let cut = cut.min(encoded.len().saturating_sub(1));
                assert!(plan.decode(&encoded[..cut]).is_err(), "{name} cut at {cut}");
            }
        }
    }

    /// Hostile Blosc headers: sizes past the buffer, more blocks than fit, zero block size,
    /// a claimed size beyond the chunk's: errors, never a panic or an allocation of the claim.
    #[test]
    fn hostile_blosc_headers_are_errors() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codecs");
        let good = std::fs::read(dir.join("blosc_lz4_shuffle.bin")).unwrap();
        let limit = 200_000;
        let mut cases = Vec::new();
        for (at, value) in [
            (4, u32::MAX),
            (4, 200_004),
            (8, 0),
            (8, 1),
            (12, u32::MAX),
            (12, 3),
        ] {
            let mut bad = good.clone();
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            cases.push(bad);
        }
        let mut offsets = good.clone();
        offsets[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        cases.push(offsets);
        let mut inner = good.clone();
        inner[2] |= 0xe0;
        cases.push(inner);
        for (n, bad) in cases.iter().enumerate() {
            assert!(blosc::decompress(bad, limit).is_err(), "case {n}");
        }
    }
}
