//! A kerchunk reference set as a Zarr store: the [`KeySource`] of `kind: "kerchunk"` datasets.
//!
//! Pure: answers from the references alone (they are in memory); reading ranged keys is the
//! cache path's job, and a missing `.zmetadata` is synthesised by [`super::zarr`].

use crate::error::Error;
use crate::origin::ByteRange;
use crate::source::kerchunk::{Reference, References};
use crate::source::zarr::is_metadata_key;
use crate::source::{KeyAnswer, KeySource, Memo, SourceFiles};

impl KeySource for References {
    async fn answer(&self, key: &str, _: &impl SourceFiles) -> Result<KeyAnswer, Error> {
        answer_key(self, key)
    }

    async fn metadata_keys(&self) -> Result<Vec<String>, Error> {
        Ok(self
            .explicit_keys()
            .filter(|key| is_metadata_key(key) || *key == ".zmetadata")
            .map(str::to_owned)
            .collect())
    }

    async fn chunk_keys(
        &self,
        wanted: &dyn Fn(&str) -> bool,
        limit: usize,
        _: &impl SourceFiles,
    ) -> Result<(Vec<String>, bool), Error> {
        let explicit = self.explicit_keys().map(str::to_owned);
        let generated = self.gen_patterns().flat_map(|p| p.keys());
        let mut matched = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for key in explicit.chain(generated) {
            if !wanted(&key) || seen.contains(&key) {
                continue;
            }
            if let Ok(KeyAnswer::Range { .. } | KeyAnswer::Whole { .. }) = answer_key(self, &key) {
                if matched.len() == limit {
                    return Ok((matched, true));
                }
                seen.insert(key.clone());
                matched.push(key);
            }
        }
        Ok((matched, false))
    }

    fn key_count(&self) -> Option<u64> {
        u64::try_from(self.len_explicit()).ok()
    }

    fn memo(&self) -> Option<&Memo> {
        Some(References::memo(self))
    }
}

/// The answer for `key` as the references have it.
///
/// # Errors
/// [`Error::BadReferences`] when a range ends past 2⁶⁴.
fn answer_key(refs: &References, key: &str) -> Result<KeyAnswer, Error> {
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
            Ok(KeyAnswer::Range {
                url: url.into_owned(),
                range: ByteRange { offset, length },
            })
        }
        Some(Reference::Whole { url }) => Ok(KeyAnswer::Whole {
            url: url.into_owned(),
        }),
        None => Ok(KeyAnswer::Absent),
    }
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
            KeyAnswer::Range {
                url: "http://o.test/f".into(),
                range: ByteRange {
                    offset: 1,
                    length: 2
                }
            }
        );
        assert_eq!(answer_key(&r, "v/3").unwrap(), KeyAnswer::Absent);
    }
}
