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

use crate::origin::ByteRange;
use crate::policy::eviction::Order;

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

    /// What every entry key of a dataset starts with (the index scripts append the Zarr key).
    #[must_use]
    pub fn entry_prefix(&self, dataset: &str) -> String {
        format!("{}:v1:entry:{dataset}:", self.prefix)
    }

    /// One of a dataset's sorted sets of cached keys (see `eviction::Order`).
    #[must_use]
    pub fn order(&self, dataset: &str, order: Order) -> String {
        format!("{}:v1:order:{dataset}:{}", self.prefix, order.name())
    }

    /// The hash mapping each cached key of a dataset to its storage object (it outlives expired
    /// entries, so a sweep knows which object an expired entry held).
    #[must_use]
    pub fn objects(&self, dataset: &str) -> String {
        format!("{}:v1:objects:{dataset}", self.prefix)
    }

    /// What every holders key starts with (the index scripts append the object key).
    #[must_use]
    pub fn holders_prefix(&self) -> String {
        format!("{}:v1:holders:", self.prefix)
    }

    /// The set of entries (`{dataset}\n{key}`) that hold a storage object: an object may be
    /// deleted once it is empty (storage is shared by datasets reading the same source range).
    #[must_use]
    pub fn holders(&self, object: &str) -> String {
        format!("{}{object}", self.holders_prefix())
    }

    /// The mark of an object a removal is deleting (`index_scripts::CLAIM` sets it): the
    /// holders prefix, `deleting:`, the object key.
    #[must_use]
    pub fn deleting(&self, object: &str) -> String {
        format!("{}deleting:{object}", self.holders_prefix())
    }

    /// What the members of a holders set for `dataset`'s entries start with: a member is
    /// `{dataset}\n{key}` (the index scripts append the key).
    #[must_use]
    pub fn holder_prefix(dataset: &str) -> String {
        format!("{dataset}\n")
    }

    /// The hash of counters over all datasets (entries, bytes stored).
    #[must_use]
    pub fn totals(&self) -> String {
        format!("{}:v1:totals", self.prefix)
    }

    /// The set of dataset ids that have (or had) cached keys: the sweep expires keys of datasets
    /// that are no longer configured, so their objects do not stay forever.
    #[must_use]
    pub fn cached_datasets(&self) -> String {
        format!("{}:v1:cached-datasets", self.prefix)
    }

    /// Where the orphan sweep stopped listing storage (a listing cursor), so that the next run
    /// goes on from there.
    #[must_use]
    pub fn orphan_cursor(&self) -> String {
        format!("{}:v1:sweep:orphan-cursor", self.prefix)
    }

    /// The hash of datasets registered at run time (id → configuration JSON).
    #[must_use]
    pub fn runtime_datasets(&self) -> String {
        format!("{}:v1:datasets", self.prefix)
    }

    /// A counter raised by every change of the run-time datasets; lookups return it, so an
    /// isolate notices a change without a round trip of its own.
    #[must_use]
    pub fn runtime_datasets_version(&self) -> String {
        format!("{}:v1:datasets:version", self.prefix)
    }

    /// A dataset's source version record (`generation`, `digest`, `checked_ms`): which
    /// generation of its source the cache serves, for sources without validators of their own
    /// (a Zarr store over HTTP, xpublish). Versioned lookups read it.
    #[must_use]
    pub fn source_version(&self, dataset: &str) -> String {
        format!("{}:v1:source-version:{dataset}", self.prefix)
    }

    /// The validator (`ETag` or `Last-Modified`) last seen for the source file at `url`: an
    /// entry read from an older version of the file is not served.
    #[must_use]
    pub fn file_validator(&self, url: &str) -> String {
        format!("{}:v1:file:{:032x}", self.prefix, xxh3_128(url.as_bytes()))
    }

    /// The list of a dataset's stats snapshots, newest first (written by the scheduled sweep).
    #[must_use]
    pub fn history(&self, dataset: &str) -> String {
        format!("{}:v1:history:{dataset}", self.prefix)
    }

    /// The storage prefix of every chunk object (what the orphan sweep lists).
    #[must_use]
    pub fn object_prefix(&self) -> String {
        format!("{}/v1/", self.prefix)
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

    /// Where one run of the chunk store's contract suite (`store::contract`, a test stack's
    /// `POST /__test/store-contract`) writes its objects: outside the chunk objects' prefix, so
    /// that no sweep lists them.
    #[must_use]
    pub fn contract_prefix(&self, run: &str) -> String {
        format!("{}/_contract/{run}/", self.prefix)
    }

    /// The storage object key for the bytes at `url` (`range`, or the whole file).
    ///
    /// `{prefix}/v1/{aa}/{hash}`: the two-character fan-out keeps listings of a bucket browsable.
    #[must_use]
    pub fn object(&self, url: &str, range: Option<ByteRange>) -> String {
        self.object_of(&source_of(url, range))
    }

    /// The storage object key for bytes read from a private origin as `identity` (the access
    /// key id, never the secret): apart from the public key of the same range, so that bytes a
    /// dataset read with credentials are never served to a dataset without them.
    #[must_use]
    pub fn signed_object(&self, url: &str, range: Option<ByteRange>, identity: &str) -> String {
        self.object_of(&format!("{}\nsigned:{identity}", source_of(url, range)))
    }

    /// The storage object key for the bytes at `url` as `dataset` served them in `generation`
    /// of its source: a new generation never reads an older one's bytes, and generations are
    /// a dataset's own (another dataset's generation of the same number is other data).
    #[must_use]
    pub fn versioned_object(
        &self,
        url: &str,
        range: Option<ByteRange>,
        (dataset, generation): (&str, u64),
    ) -> String {
        self.object_of(&format!(
            "{}\ndataset:{dataset}\ngeneration:{generation}",
            source_of(url, range)
        ))
    }

    fn object_of(&self, source: &str) -> String {
        let hash = format!("{:032x}", xxh3_128(source.as_bytes()));
        format!("{}/v1/{}/{hash}", self.prefix, &hash[..2])
    }
}

/// What a storage key hashes: the URL and the range.
fn source_of(url: &str, range: Option<ByteRange>) -> String {
    match range {
        Some(r) => format!("{url}\n{}\n{}", r.offset, r.length),
        None => format!("{url}\nwhole"),
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
        let signed = keys.signed_object("http://o/f.nc", r(10, 5), "AKID1");
        assert_ne!(a, signed, "signed reads are kept apart from public ones");
        assert_ne!(
            signed,
            keys.signed_object("http://o/f.nc", r(10, 5), "AKID2")
        );
        assert!(signed.starts_with(&keys.object_prefix()));
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
        assert!(a.starts_with(&keys.object_prefix()));
        assert_eq!(keys.contract_prefix("r1"), "zec/_contract/r1/");
        assert!(!keys
            .contract_prefix("r1")
            .starts_with(&keys.object_prefix()));
        assert_eq!(keys.holders(&a), format!("zec:v1:holders:{a}"));
        assert_eq!(
            keys.order("air", Order::LastAccess),
            "zec:v1:order:air:last_access"
        );
        assert_eq!(
            format!("{}t/0.1", keys.entry_prefix("air")),
            keys.entry("air", "t/0.1")
        );
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
