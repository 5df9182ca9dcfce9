//! The only place index keys and storage object keys are formatted.
//!
//! Everything is versioned (`v1`) so a schema change can live beside the old one, and prefixed
//! with the deployment's `KEY_PREFIX`.
//!
//! Storage is **content-addressed by source range**: a chunk's object key is a hash of the URL,
//! offset and length it was read from, not of the dataset and Zarr key. Two datasets whose
//! references point into the same archive file (a single-file dataset and a multi-file combine of
//! it, say) share the stored bytes, and renaming a dataset keeps its cache. The index entry is per
//! dataset and Zarr key (stats and TTLs are per dataset) and records which object it vouches for.

use xxhash_rust::xxh3::xxh3_128;

use crate::backend::ByteRange;

/// Formats the keys of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKeys {
    prefix: String,
}

impl CacheKeys {
    /// Keys under `prefix` (validated by `Config`: ASCII letters, digits, `-`, `_`, `.`).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The index hash describing one cached Zarr key of a dataset.
    #[must_use]
    pub fn entry(&self, dataset: &str, key: &str) -> String {
        format!("{}:v1:entry:{dataset}:{key}", self.prefix)
    }

    /// The index hash of a dataset's counters (hits, misses, bytes).
    #[must_use]
    pub fn stats(&self, dataset: &str) -> String {
        format!("{}:v1:stats:{dataset}", self.prefix)
    }

    /// The lease that makes one worker instance the only one fetching `object` from the origin.
    #[must_use]
    pub fn lease(&self, object: &str) -> String {
        format!("{}:v1:lease:{object}", self.prefix)
    }

    /// The storage key of a health probe object (unique per request).
    #[must_use]
    pub fn health_probe(&self, nonce: &str) -> String {
        format!("{}/_health/{nonce}", self.prefix)
    }

    /// The storage object key for the bytes at `url` (`range`, or the whole file).
    ///
    /// `{prefix}/v1/{aa}/{hash}`: the two-character fan-out keeps listings of a bucket browsable.
    #[must_use]
    pub fn object(&self, url: &str, range: Option<ByteRange>) -> String {
        let source = match range {
            Some(r) => format!("{url}\n{}\n{}", r.offset, r.length),
            None => format!("{url}\nwhole"),
        };
        let hash = format!("{:032x}", xxh3_128(source.as_bytes()));
        format!("{}/v1/{}/{hash}", self.prefix, &hash[..2])
    }
}

/// The strong content checksum used as `ETag` and recorded in the index (xxh3-128, hex).
#[must_use]
pub fn content_checksum(bytes: &[u8]) -> String {
    format!("{:032x}", xxh3_128(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys carry prefix and version; the object key depends on the source range only.
    #[test]
    fn keys_are_prefixed_versioned_and_content_addressed() {
        let keys = CacheKeys::new("zec");
        assert_eq!(keys.entry("air", "t/0.1"), "zec:v1:entry:air:t/0.1");
        assert_eq!(keys.stats("air"), "zec:v1:stats:air");
        let r = |offset, length| Some(ByteRange { offset, length });
        let a = keys.object("http://o/f.nc", r(10, 5));
        assert_eq!(a, keys.object("http://o/f.nc", r(10, 5)));
        assert!(a.starts_with("zec/v1/"));
        assert_eq!(a.len(), "zec/v1/".len() + 2 + 1 + 32);
        assert_eq!(
            &a[7..9],
            &a[10..12],
            "fan-out is the hash's first two characters"
        );
        for other in [
            keys.object("http://o/f.nc", r(10, 6)),
            keys.object("http://o/f.nc", r(11, 5)),
            keys.object("http://o/g.nc", r(10, 5)),
            keys.object("http://o/f.nc", None),
            CacheKeys::new("other").object("http://o/f.nc", r(10, 5)),
        ] {
            assert_ne!(a, other);
        }
        assert_eq!(keys.lease(&a), format!("zec:v1:lease:{a}"));
    }

    /// The checksum is stable and sensitive to every byte.
    #[test]
    fn checksum_is_stable_hex() {
        let sum = content_checksum(b"chunk");
        assert_eq!(sum.len(), 32);
        assert_eq!(sum, content_checksum(b"chunk"));
        assert_ne!(sum, content_checksum(b"chunK"));
    }
}
