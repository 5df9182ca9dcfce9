//! The index entry of one cached Zarr key: its schema, and how it is written (`HSET` fields) and
//! read back (`HGETALL` pairs).
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
    /// `HSET key field value …` writing every field.
    #[must_use]
    pub fn hset(&self, key: &str) -> Command {
        let mut command = Command::new("HSET")
            .arg(key)
            .arg(OBJECT_KEY)
            .arg(&self.object_key)
            .arg(SIZE)
            .arg(self.size)
            .arg(CHECKSUM)
            .arg(&self.checksum)
            .arg(CREATED_MS)
            .arg(self.created_ms)
            .arg(LAST_ACCESS_MS)
            .arg(self.last_access_ms)
            .arg(HITS)
            .arg(self.hits)
            .arg(FETCH_MS)
            .arg(self.fetch_ms);
        if let Some(validator) = &self.origin_validator {
            command = command.arg(ORIGIN_VALIDATOR).arg(validator);
        }
        command
    }

    /// The commands that replace whatever is under `key` with this entry, expiring in `ttl_ms`:
    /// `DEL`, `HSET`, `PEXPIRE`. Send them in one transaction so no reader sees a partial entry.
    #[must_use]
    pub fn replace_with_ttl(&self, key: &str, ttl_ms: u64) -> [Command; 3] {
        [
            Command::new("DEL").arg(key),
            self.hset(key),
            Command::new("PEXPIRE").arg(key).arg(ttl_ms.max(1)),
        ]
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
                _ => {}
            }
        }
        stats
    }
}

/// The Lua script behind `Index::lookup`: read the entry and, only if it exists, count the hit
/// on the entry and on the dataset. One command, one round trip, atomic.
/// `KEYS[1]` entry, `KEYS[2]` dataset stats; `ARGV[1]` now in ms.
pub const LOOKUP_SCRIPT: &str = r"local e = redis.call('HGETALL', KEYS[1])
if #e == 0 then return e end
local size = 0
for i = 1, #e, 2 do if e[i] == 'size' then size = tonumber(e[i + 1]) or 0 end end
redis.call('HINCRBY', KEYS[1], 'hits', 1)
redis.call('HSET', KEYS[1], 'last_access_ms', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'hits', 1)
redis.call('HINCRBY', KEYS[2], 'bytes_from_cache', size)
return e";

/// The Lua script behind `Index::forget`: delete the entry and undo the hit only if the entry is
/// still the stale one (a fresh write-back may have replaced it).
/// `KEYS[1]` entry, `KEYS[2]` dataset stats; `ARGV[1]` object key, `ARGV[2]` created ms,
/// `ARGV[3]` size.
pub const FORGET_SCRIPT: &str = r"local e = redis.call('HMGET', KEYS[1], 'object_key', 'created_ms')
if e[1] ~= ARGV[1] or e[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HINCRBY', KEYS[2], 'hits', -1)
redis.call('HINCRBY', KEYS[2], 'bytes_from_cache', -tonumber(ARGV[3]))
return 1";

/// The Lua script behind `Index::release_lease`: delete the lease only if it is still ours.
/// `KEYS[1]` lease; `ARGV[1]` holder.
pub const RELEASE_SCRIPT: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

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
