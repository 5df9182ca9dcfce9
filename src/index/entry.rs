//! The index schema: the entry of one cached Zarr key (written as `HSET` fields, read back from
//! `HGETALL` pairs), a dataset's counters, and what the management calls of the index return
//! (claimed keys, key listings, stats with percentiles).
//!
//! Pure. Field names are part of the index schema `v1` (see `cache_keys`): renaming one is a
//! schema change.

use crate::upstash::{Command, Value};

/// What the index records about one cached chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The storage object holding the bytes (`cache_keys::CacheKeys::object`).
    pub object_key: String,
    /// Size in bytes.
    pub size: u64,
    /// Content checksum (xxh3-128 hex), also the `ETag`.
    pub checksum: String,
    /// When it was cached, ms since the epoch.
    pub created_ms: u64,
    /// Last access, ms since the epoch.
    pub last_access_ms: u64,
    /// Reads served from the cache.
    pub hits: u64,
    /// How long the origin fetch took, ms.
    pub fetch_ms: u64,
    /// The origin's validator (`ETag`, else `Last-Modified`), when it sent one.
    pub origin_validator: Option<String>,
}

const OBJECT_KEY: &str = "object_key";
const SIZE: &str = "size";
const CHECKSUM: &str = "checksum";
const CREATED_MS: &str = "created_ms";
const LAST_ACCESS_MS: &str = "last_access_ms";
const HITS: &str = "hits";
const FETCH_MS: &str = "fetch_ms";
const ORIGIN_VALIDATOR: &str = "origin_validator";

impl IndexEntry {
    /// Every field and its value, in `HSET` argument order.
    #[must_use]
    pub fn fields(&self) -> Vec<String> {
        let mut fields = vec![
            OBJECT_KEY.to_owned(),
            self.object_key.clone(),
            SIZE.to_owned(),
            self.size.to_string(),
            CHECKSUM.to_owned(),
            self.checksum.clone(),
            CREATED_MS.to_owned(),
            self.created_ms.to_string(),
            LAST_ACCESS_MS.to_owned(),
            self.last_access_ms.to_string(),
            HITS.to_owned(),
            self.hits.to_string(),
            FETCH_MS.to_owned(),
            self.fetch_ms.to_string(),
        ];
        if let Some(validator) = &self.origin_validator {
            fields.push(ORIGIN_VALIDATOR.to_owned());
            fields.push(validator.clone());
        }
        fields
    }

    /// `HSET key field value …` writing every field.
    #[must_use]
    pub fn hset(&self, key: &str) -> Command {
        self.fields()
            .into_iter()
            .fold(Command::new("HSET").arg(key), Command::arg)
    }

    /// Reads an entry from an `HGETALL` reply (`[field, value, …]`). `None` for an empty reply
    /// (no entry, or expired) and for an entry missing a required field (a partial write).
    #[must_use]
    pub fn from_hgetall(reply: &Value) -> Option<Self> {
        let Value::Array(items) = reply else {
            return None;
        };
        let mut entry = Self {
            object_key: String::new(),
            size: 0,
            checksum: String::new(),
            created_ms: 0,
            last_access_ms: 0,
            hits: 0,
            fetch_ms: 0,
            origin_validator: None,
        };
        let mut required = 0;
        for pair in items.chunks(2) {
            let [field, value] = pair else { return None };
            let (Some(field), Some(text)) = (field.as_str(), value.as_str()) else {
                continue;
            };
            let number = || text.parse::<u64>().ok();
            match field {
                OBJECT_KEY => {
                    text.clone_into(&mut entry.object_key);
                    required += 1;
                }
                SIZE => {
                    entry.size = number()?;
                    required += 1;
                }
                CHECKSUM => {
                    text.clone_into(&mut entry.checksum);
                    required += 1;
                }
                CREATED_MS => entry.created_ms = number()?,
                LAST_ACCESS_MS => entry.last_access_ms = number()?,
                HITS => entry.hits = number()?,
                FETCH_MS => entry.fetch_ms = number()?,
                ORIGIN_VALIDATOR => entry.origin_validator = Some(text.to_owned()),
                _ => {}
            }
        }
        (required == 3).then_some(entry)
    }
}

/// A dataset's counters, kept in one index hash (`cache_keys::CacheKeys::stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DatasetStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads served from the origin.
    pub misses: u64,
    /// Bytes served from the cache.
    pub bytes_from_cache: u64,
    /// Bytes fetched from the origin.
    pub bytes_from_origin: u64,
    /// Entries written (each write-back; entries expire without decrementing it).
    pub entries_written: u64,
    /// Bytes written to the chunk store.
    pub bytes_written: u64,
    /// Keys cached now (expired ones count until a sweep or an eviction removes them).
    pub entries: u64,
    /// Bytes stored for those keys.
    pub bytes_stored: u64,
}

/// Field names of the stats hash (schema `v1`).
pub mod stats_fields {
    /// Reads served from the cache.
    pub const HITS: &str = "hits";
    /// Reads served from the origin.
    pub const MISSES: &str = "misses";
    /// Bytes served from the cache.
    pub const BYTES_FROM_CACHE: &str = "bytes_from_cache";
    /// Bytes fetched from the origin.
    pub const BYTES_FROM_ORIGIN: &str = "bytes_from_origin";
    /// Entries written.
    pub const ENTRIES_WRITTEN: &str = "entries_written";
    /// Bytes written to storage.
    pub const BYTES_WRITTEN: &str = "bytes_written";
    /// Keys cached now.
    pub const ENTRIES: &str = "entries";
    /// Bytes stored for them.
    pub const BYTES_STORED: &str = "bytes_stored";
}

impl DatasetStats {
    /// Reads the counters from an `HGETALL` reply; unknown fields are ignored, absent ones 0.
    #[must_use]
    pub fn from_hgetall(reply: &Value) -> Self {
        let mut stats = Self::default();
        let Value::Array(items) = reply else {
            return stats;
        };
        for pair in items.chunks(2) {
            let [field, value] = pair else { continue };
            let (Some(field), Some(n)) = (field.as_str(), value.as_int()) else {
                continue;
            };
            let n = u64::try_from(n).unwrap_or(0);
            match field {
                stats_fields::HITS => stats.hits = n,
                stats_fields::MISSES => stats.misses = n,
                stats_fields::BYTES_FROM_CACHE => stats.bytes_from_cache = n,
                stats_fields::BYTES_FROM_ORIGIN => stats.bytes_from_origin = n,
                stats_fields::ENTRIES_WRITTEN => stats.entries_written = n,
                stats_fields::BYTES_WRITTEN => stats.bytes_written = n,
                stats_fields::ENTRIES => stats.entries = n,
                stats_fields::BYTES_STORED => stats.bytes_stored = n,
                _ => {}
            }
        }
        stats
    }
}

/// What [`Index::lookup`](crate::index::Index::lookup) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The live entry, if any.
    pub entry: Option<IndexEntry>,
    /// The version of the run-time datasets (see `cache_keys::CacheKeys::runtime_datasets_version`).
    pub datasets_version: u64,
    /// What the dataset's source version record said, when the lookup asked about it.
    pub source: SourceVersion,
    /// The validator last seen for the source file the lookup named (`None`: none recorded).
    pub file_validator: Option<String>,
    /// What became of the lease the lookup asked for.
    pub lease: LeaseAnswer,
}

/// A lookup's request for the object's lease ([`Index::try_lease`](crate::index::Index::try_lease)
/// in the same round trip), granted only when there is no live entry: a cold miss then waits
/// on one index round trip before it fetches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseAsk<'a> {
    /// The object (its storage key).
    pub object: &'a str,
    /// Who asks.
    pub holder: &'a str,
    /// The lease's length.
    pub ttl_ms: u64,
}

/// One read of [`Index::lookup_many`](crate::index::Index::lookup_many): a lookup with no
/// version probe and no lease ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LookupRead<'a> {
    /// Dataset id.
    pub dataset: &'a str,
    /// Zarr key.
    pub key: &'a str,
    /// When the read happened (the access time recorded).
    pub now_ms: u64,
    /// The source file whose validator comes back, where files are checked.
    pub file: Option<&'a str>,
}

/// What became of a [`LeaseAsk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeaseAnswer {
    /// None was asked for, or there is a live entry (or the source version sent the reader
    /// elsewhere): nothing was taken.
    #[default]
    NotTaken,
    /// The asker holds the lease now (release it, or let it expire).
    Granted,
    /// The asker already held it (took it before, for another of its readers).
    HeldHere,
    /// Another holder has it.
    HeldElsewhere,
}

/// A versioned read's question to the lookup: the source generation the reader keys its
/// objects by, and how old the record may be before the source must be revalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionProbe {
    /// The generation the reader believes current (0: it knows none).
    pub generation: u64,
    /// A record checked longer ago than this is stale.
    pub stale_after_ms: u64,
}

/// The answer to a [`VersionProbe`]. Unless it is [`SourceVersion::Current`] the lookup recorded
/// nothing and returned no entry: the reader revalidates or retries with the generation given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceVersion {
    /// No probe was sent.
    #[default]
    Unprobed,
    /// The probe's generation is current and fresh: the entry (if any) is of it.
    Current(u64),
    /// Another generation is current (and fresh): retry with it.
    Changed(u64),
    /// No record, or one checked longer ago than allowed: revalidate the source first.
    Stale,
}

/// The digest that stands for a version document the origin does not have (404).
pub const ABSENT_DOCUMENT: &str = "absent";

/// The checksum an entry carries when it remembers that the origin has no such key (a 404):
/// such an entry has no stored object and is answered 404.
pub const ABSENT_CHECKSUM: &str = "absent";

impl IndexEntry {
    /// Whether the entry remembers an absent key rather than stored bytes.
    #[must_use]
    pub fn is_absent(&self) -> bool {
        self.checksum == ABSENT_CHECKSUM && self.size == 0
    }
}

/// The datasets registered at run time, as the index holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeDatasets {
    /// Their version (raised by every change).
    pub version: u64,
    /// `(id, definition JSON)`.
    pub definitions: Vec<(String, String)>,
}

/// Why [`Index::claim`](crate::index::Index::claim) took a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimReason {
    /// Its TTL had passed.
    Expired,
    /// The dataset (or the deployment) was over capacity.
    Evicted,
    /// An operator purged it.
    Purged,
}

/// A key taken out of a dataset's accounting, whose entry is marked for deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedKey {
    /// The Zarr key.
    pub key: String,
    /// The storage object its entry held (empty if unknown).
    pub object_key: String,
    /// Its size in bytes (0 if it was not accounted).
    pub size: u64,
    /// No entry of any dataset holds the object any more: it may be deleted.
    pub object_unheld: bool,
    /// Why it was taken.
    pub reason: ClaimReason,
}

impl ClaimedKey {
    /// Reads the `[key, object, bytes, unheld, reason]…` reply of the claim script.
    #[must_use]
    pub fn from_claim_reply(reply: &Value) -> Option<Vec<Self>> {
        let Value::Array(items) = reply else {
            return None;
        };
        items
            .chunks(5)
            .map(|fields| {
                let [key, object, size, unheld, reason] = fields else {
                    return None;
                };
                Some(Self {
                    key: key.as_str()?.to_owned(),
                    object_key: object.as_str()?.to_owned(),
                    size: size.as_str()?.parse::<f64>().ok().map(f64_to_u64)?,
                    object_unheld: unheld.as_str()? == "1",
                    reason: match reason.as_str()? {
                        "expired" => ClaimReason::Expired,
                        "evicted" => ClaimReason::Evicted,
                        _ => ClaimReason::Purged,
                    },
                })
            })
            .collect()
    }
}

/// A non-negative whole number read from a Redis score or Lua number.
#[must_use]
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)] // clamped first
pub fn f64_to_u64(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value.round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// Which keys [`Index::claim`](crate::index::Index::claim) takes (expired keys always first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSelector {
    /// Only expired keys.
    Expired,
    /// Lowest scores of the policy's order while the dataset stores more than the capacity.
    Capacity(crate::policy::capacity::Limit),
    /// The `count` lowest scores of the policy's order (the deployment-wide limit picks datasets
    /// one victim at a time).
    Head {
        /// How many.
        count: u64,
        /// Whose order.
        policy: crate::policy::eviction::EvictionPolicy,
    },
    /// One key.
    Key(String),
    /// Every key starting with this.
    Prefix(String),
    /// Every key of the dataset.
    All,
}

/// Bytes stored after a write-back, for the capacity check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBytes {
    /// By the dataset.
    pub dataset: u64,
    /// By all datasets.
    pub total: u64,
}

/// What `GET /api/stats` shows for a dataset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// The counters.
    pub counters: DatasetStats,
    /// Median origin fetch time over the cached keys, ms (nearest rank).
    pub fetch_ms_p50: Option<u64>,
    /// 95th percentile of it.
    pub fetch_ms_p95: Option<u64>,
}

impl CacheStats {
    /// Reads the stats script's `[stats pairs, count, p50, p95]` reply.
    #[must_use]
    pub fn from_stats_reply(reply: &Value) -> Option<Self> {
        let Value::Array(items) = reply else {
            return None;
        };
        let [pairs, _count, p50, p95] = items.as_slice() else {
            return None;
        };
        let percentile = |v: &Value| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .and_then(|s| s.parse::<f64>().ok())
                .map(f64_to_u64)
        };
        Some(Self {
            counters: DatasetStats::from_hgetall(pairs),
            fetch_ms_p50: percentile(p50),
            fetch_ms_p95: percentile(p95),
        })
    }
}

/// One cached key in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The Zarr key.
    pub key: String,
    /// Its entry.
    pub entry: IndexEntry,
    /// When it expires, ms since the epoch.
    pub expires_ms: u64,
}

/// A page of a dataset's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// How many keys the dataset accounts in all (for paging).
    pub accounted: u64,
    /// This page (live entries only).
    pub keys: Vec<KeyInfo>,
}

impl KeyPage {
    /// Reads the listing script's `[count, [key, expires, entry pairs]…]` reply.
    #[must_use]
    pub fn from_list_reply(reply: &Value) -> Option<Self> {
        let Value::Array(items) = reply else {
            return None;
        };
        let (count, rows) = items.split_first()?;
        let keys = rows
            .iter()
            .filter_map(|row| {
                let Value::Array(row) = row else { return None };
                let [key, expires, pairs] = row.as_slice() else {
                    return None;
                };
                Some(KeyInfo {
                    key: key.as_str()?.to_owned(),
                    expires_ms: expires.as_str()?.parse::<f64>().ok().map(f64_to_u64)?,
                    entry: IndexEntry::from_hgetall(pairs)?,
                })
            })
            .collect();
        Some(Self {
            accounted: u64::try_from(count.as_int()?).ok()?,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> IndexEntry {
        IndexEntry {
            object_key: "zec/v1/ab/abcd".into(),
            size: 1234,
            checksum: "00ff".into(),
            created_ms: 10,
            last_access_ms: 20,
            hits: 3,
            fetch_ms: 45,
            origin_validator: Some("\"etag-1\"".into()),
        }
    }

    fn as_reply(command: &Command) -> Value {
        Value::Array(
            command.args()[2..]
                .iter()
                .map(|a| Value::Bytes(a.as_bytes().to_vec()))
                .collect(),
        )
    }

    /// What HSET writes, HGETALL reads back identically.
    #[test]
    fn hset_then_hgetall_round_trips() {
        let written = entry().hset("k");
        assert_eq!(written.args()[..2], ["HSET".to_owned(), "k".to_owned()]);
        assert_eq!(IndexEntry::from_hgetall(&as_reply(&written)), Some(entry()));
        let mut without = entry();
        without.origin_validator = None;
        assert_eq!(
            IndexEntry::from_hgetall(&as_reply(&without.hset("k"))),
            Some(without)
        );
    }

    /// Empty, partial and garbled replies are not entries.
    #[test]
    fn incomplete_replies_are_none() {
        assert_eq!(IndexEntry::from_hgetall(&Value::Array(vec![])), None);
        assert_eq!(IndexEntry::from_hgetall(&Value::Nil), None);
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        let partial = Value::Array(vec![b("size"), b("3"), b("checksum"), b("x")]);
        assert_eq!(IndexEntry::from_hgetall(&partial), None);
        let garbled = Value::Array(vec![
            b("object_key"),
            b("o"),
            b("size"),
            b("many"),
            b("checksum"),
            b("x"),
        ]);
        assert_eq!(IndexEntry::from_hgetall(&garbled), None);
    }
}
