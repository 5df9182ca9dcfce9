//! The decoded view of a dataset's Zarr v2 keys (`/zarr/{dataset}@decoded/…`): metadata with
//! no codecs and little-endian dtypes, and, for a chunk, the [`DecodePlan`] of its array, so
//! that clients without a dataset's codecs (zarr.js ignores `filters`; nothing in a browser
//! decodes GRIB) read plain items.

use std::rc::Rc;

use serde_json::Value as Json;

use crate::codec::{decoded_zarray, DecodePlan};
use crate::error::Error;
use crate::source::zarr::{self, metadata_json};
use crate::source::{KeyAnswer, KeySource, SourceFiles};

/// What the decoded view answers for a key.
#[derive(Debug)]
pub enum Decoded {
    /// The key's whole content, decoded or rewritten (metadata, inline chunks).
    Inline(Vec<u8>),
    /// The dataset has no such key.
    Absent,
    /// Bytes at a URL, read through the cache and decoded by the plan.
    Chunk {
        /// Where the encoded bytes are.
        answer: KeyAnswer,
        /// How they are decoded.
        plan: Rc<DecodePlan>,
    },
}

/// The index key of a decoded chunk: apart from the encoded key's entry (its own hits, size
/// and fetch time).
#[must_use]
pub fn decoded_index_key(key: &str) -> String {
    format!("@decoded/{key}")
}

/// The decoded view's answer for `key` of `source`.
///
/// # Errors
/// What the source fails with; [`Error::Unprocessable`] when the key's array has a codec or
/// dtype the view cannot apply; [`Error::Undecodable`] when an inline chunk does not decode;
/// [`Error::BadReferences`] when its `.zarray` is missing or not JSON.
pub async fn answer<S: KeySource>(
    source: &S,
    key: &str,
    files: &impl SourceFiles,
) -> Result<Decoded, Error> {
    let file = key.rsplit('/').next().unwrap_or(key);
    let encoded = zarr::answer(source, key, files).await?;
    match (file, encoded) {
        (_, KeyAnswer::Absent) => Ok(Decoded::Absent),
        (".zarray", KeyAnswer::Inline(bytes)) => {
            let zarray = parse(key, &bytes)?;
            rendered(&decoded_zarray(&zarray))
        }
        (".zmetadata", KeyAnswer::Inline(bytes)) => {
            let mut document = parse(key, &bytes)?;
            if let Some(Json::Object(metadata)) = document.get_mut("metadata") {
                for (name, value) in metadata.iter_mut() {
                    if name == ".zarray" || name.ends_with("/.zarray") {
                        *value = decoded_zarray(value);
                    }
                }
            }
            rendered(&document)
        }
        (".zgroup" | ".zattrs", answer) => match answer {
            KeyAnswer::Inline(bytes) => Ok(Decoded::Inline(bytes)),
            _ => Err(Error::BadReferences(format!(
                "{key} points into a remote file; only inline metadata is supported"
            ))),
        },
        (_, answer) => {
            let plan = plan_for(source, key).await?;
            match answer {
                KeyAnswer::Inline(bytes) => plan
                    .decode(&bytes)
                    .map(Decoded::Inline)
                    .map_err(|e| Error::from_codec(key, e)),
                answer => Ok(Decoded::Chunk { answer, plan }),
            }
        }
    }
}

/// The plan of the array that chunk `key` belongs to (`var/0.1` → `var/.zarray`), kept in the
/// source's memo once made.
async fn plan_for<S: KeySource>(source: &S, key: &str) -> Result<Rc<DecodePlan>, Error> {
    let zarray_key = match key.rsplit_once('/') {
        Some((array, _)) => format!("{array}/.zarray"),
        None => ".zarray".to_owned(),
    };
    let memo = source.memo();
    if let Some(plan) = memo.and_then(|m| m.decode_plans.borrow().get(&zarray_key).cloned()) {
        return Ok(plan);
    }
    let Some(zarray) = metadata_json(source, &zarray_key).await? else {
        return Err(Error::BadReferences(format!(
            "{key} has no {zarray_key}: its chunks cannot be decoded"
        )));
    };
    let plan =
        Rc::new(DecodePlan::from_zarray(&zarray).map_err(|e| Error::from_codec(&zarray_key, e))?);
    if let Some(memo) = memo {
        memo.decode_plans
            .borrow_mut()
            .insert(zarray_key, Rc::clone(&plan));
    }
    Ok(plan)
}

fn parse(key: &str, bytes: &[u8]) -> Result<Json, Error> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::BadReferences(format!("{key} is not JSON: {e}")))
}

fn rendered(json: &Json) -> Result<Decoded, Error> {
    serde_json::to_vec(json)
        .map(Decoded::Inline)
        .map_err(|e| Error::Internal(e.to_string()))
}
