//! Cache management policy, pure: eviction policies and their scores, capacity limits, the
//! admission filter, and the sort orders of the keys listing.
//!
//! The index keeps one sorted set per order for every dataset (`cache_keys::Order`), so any
//! policy can evict at once, even after an operator switches it. The scores are computed inside
//! the index's Lua scripts (`index_scripts`), where a hit updates them in the same round trip; the
//! functions here are their specification (same formulas, same constants) and serve the in-memory
//! fake.

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

/// Which entries a dataset gives up first when it is over capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EvictionPolicy {
    /// Least recently accessed first.
    #[default]
    Lru,
    /// Fewest accesses first; ties go to the least recently accessed.
    Lfu,
    /// Largest first.
    Size,
    /// GreedyDual-Size-Frequency: lowest `L + accesses × cost / size` first, where cost is the
    /// origin fetch time and `L` (per dataset) rises to the priority of each evicted entry. Keeps
    /// what is slow to fetch and often read per byte; old entries age out as `L` rises.
    Cost,
}

impl EvictionPolicy {
    /// The policy's name in configuration and answers.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lru => "lru",
            Self::Lfu => "lfu",
            Self::Size => "size",
            Self::Cost => "cost",
        }
    }

    /// Parses a policy name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "lru" => Some(Self::Lru),
            "lfu" => Some(Self::Lfu),
            "size" => Some(Self::Size),
            "cost" => Some(Self::Cost),
            _ => None,
        }
    }

    /// The sorted set whose lowest score is evicted first.
    #[must_use]
    pub fn order(self) -> Order {
        match self {
            Self::Lru => Order::LastAccess,
            Self::Lfu => Order::Frequency,
            Self::Size => Order::SizeDescending,
            Self::Cost => Order::Priority,
        }
    }
}

/// The per-dataset sorted sets of the index. Every cached key is a member of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Score: last access, ms since the epoch.
    LastAccess,
    /// Score: [`lfu_score`] (accesses, then last access).
    Frequency,
    /// Score: minus the size in bytes (so the largest comes first).
    SizeDescending,
    /// Score: origin fetch time, ms.
    FetchTime,
    /// Score: creation time, ms since the epoch.
    Created,
    /// Score: expiry time, ms since the epoch.
    Expires,
    /// Score: [`gdsf_priority`].
    Priority,
    /// Score 0: members in key order, for prefix ranges.
    Key,
}

impl Order {
    /// Every order, in the position the index scripts expect them (`index_scripts`).
    pub const ALL: [Self; 8] = [
        Self::LastAccess,
        Self::Frequency,
        Self::SizeDescending,
        Self::FetchTime,
        Self::Created,
        Self::Expires,
        Self::Priority,
        Self::Key,
    ];

    /// The name in the sorted set's key.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::LastAccess => "last_access",
            Self::Frequency => "frequency",
            Self::SizeDescending => "size",
            Self::FetchTime => "fetch_ms",
            Self::Created => "created",
            Self::Expires => "expires",
            Self::Priority => "priority",
            Self::Key => "key",
        }
    }

    /// 1-based position among [`Order::ALL`] (Lua's `ORDERS` table).
    #[must_use]
    pub fn position(self) -> usize {
        Self::ALL.iter().position(|o| *o == self).unwrap_or(0) + 1
    }
}

/// Seconds from the Unix epoch to 2023-11-14, the origin of [`lfu_score`]'s recency part.
pub const LFU_EPOCH_SECONDS: u64 = 1_700_000_000;
/// The recency part of [`lfu_score`] takes this many values (2^28 s ≈ 8.5 years).
pub const LFU_RECENCY_SPAN: u64 = 1 << 28;

/// The LFU score: accesses first, then recency (seconds), in one number that stays exact as a
/// double up to 2^25 accesses.
#[must_use]
#[allow(clippy::cast_precision_loss)] // exact below 2^53, see above
pub fn lfu_score(accesses: u64, last_access_ms: u64) -> f64 {
    let recency = (last_access_ms / 1000)
        .saturating_sub(LFU_EPOCH_SECONDS)
        .min(LFU_RECENCY_SPAN - 1);
    accesses as f64 * LFU_RECENCY_SPAN as f64 + recency as f64
}

/// The GreedyDual-Size-Frequency priority: `clock + accesses × max(fetch_ms, 1) / max(size, 1)`.
#[must_use]
#[allow(clippy::cast_precision_loss)] // counts and sizes far below 2^52
pub fn gdsf_priority(clock: f64, accesses: u64, fetch_ms: u64, size: u64) -> f64 {
    clock + accesses as f64 * fetch_ms.max(1) as f64 / size.max(1) as f64
}

/// A capacity and the policy that enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bytes that may be stored.
    pub capacity_bytes: u64,
    /// What goes first when they are exceeded.
    pub policy: EvictionPolicy,
}

/// The limits a write-back checks: its dataset's and the deployment's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityLimits {
    /// The dataset's own capacity, if it has one.
    pub dataset: Option<Limit>,
    /// The capacity of all datasets together (`CACHE_CAPACITY_BYTES`), if set.
    pub total: Option<Limit>,
}

impl CapacityLimits {
    /// Whether stored bytes (`dataset_bytes` of the dataset, `total_bytes` of all) exceed a limit.
    #[must_use]
    pub fn exceeded(&self, dataset_bytes: u64, total_bytes: u64) -> bool {
        self.dataset
            .is_some_and(|l| dataset_bytes > l.capacity_bytes)
            || self.total.is_some_and(|l| total_bytes > l.capacity_bytes)
    }
}

/// Which misses a dataset stores (`admission` in its configuration). Empty admits everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admission {
    /// Store only keys matching one of these globs (`*`, `?`; `*` crosses `/`). Empty: any key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Never store keys matching one of these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Store only chunks of at least this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_bytes: Option<u64>,
    /// Store only chunks of at most this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Store only chunks whose origin fetch took at least this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fetch_ms: Option<u64>,
}

/// Whether `key` matches a glob (`*` any run, `?` one character) as a whole.
#[must_use]
pub fn glob_matches(pattern: &str, key: &str) -> bool {
    WildMatch::new(pattern).matches(key)
}

impl Admission {
    /// Whether a miss of `key`, `size` bytes fetched in `fetch_ms`, is stored.
    #[must_use]
    pub fn admits(&self, key: &str, size: u64, fetch_ms: u64) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| glob_matches(p, key)))
            && !self.exclude.iter().any(|p| glob_matches(p, key))
            && self.min_bytes.is_none_or(|min| size >= min)
            && self.max_bytes.is_none_or(|max| size <= max)
            && self.min_fetch_ms.is_none_or(|min| fetch_ms >= min)
    }

    /// Whether this filter admits everything.
    #[must_use]
    pub fn is_open(&self) -> bool {
        *self == Self::default()
    }
}

/// The orders of `GET /api/stats/keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySort {
    /// By hits (ties by last access).
    Hits,
    /// By last access.
    LastAccess,
    /// By size.
    Size,
    /// By origin fetch time.
    FetchMs,
    /// By creation.
    Created,
}

impl KeySort {
    /// Parses the `sort` query parameter.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "hits" => Some(Self::Hits),
            "last_access" => Some(Self::LastAccess),
            "size" => Some(Self::Size),
            "fetch_ms" => Some(Self::FetchMs),
            "created" => Some(Self::Created),
            _ => None,
        }
    }

    /// The parameter's value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hits => "hits",
            Self::LastAccess => "last_access",
            Self::Size => "size",
            Self::FetchMs => "fetch_ms",
            Self::Created => "created",
        }
    }

    /// The sorted set to read, and whether its score runs opposite to the sort (sizes are stored
    /// negated).
    #[must_use]
    pub fn order(self) -> (Order, bool) {
        match self {
            Self::Hits => (Order::Frequency, false),
            Self::LastAccess => (Order::LastAccess, false),
            Self::Size => (Order::SizeDescending, true),
            Self::FetchMs => (Order::FetchTime, false),
            Self::Created => (Order::Created, false),
        }
    }
}

/// Nearest-rank percentile position: the 0-based rank holding percentile `p` (0–100) of `n`
/// sorted values, `None` when there are none.
#[must_use]
pub fn percentile_rank(n: u64, p: u64) -> Option<u64> {
    (n > 0).then(|| (n * p).div_ceil(100).clamp(1, n) - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LFU orders by accesses first, recency second, and stays exact for large counts.
    #[test]
    fn lfu_score_orders_accesses_then_recency() {
        let t = 1_800_000_000_000;
        assert!(lfu_score(2, t) > lfu_score(1, t + 10_000_000));
        assert!(lfu_score(1, t + 1000) > lfu_score(1, t));
        assert!(lfu_score(1 << 24, t + 1000) > lfu_score(1 << 24, t));
        assert!(lfu_score(0, 0) >= 0.0);
    }

    /// GDSF keeps slow, small, often-read entries; the clock lifts new entries above old ones.
    #[test]
    fn gdsf_priority_rewards_cost_per_byte_and_frequency() {
        let slow = gdsf_priority(0.0, 1, 400, 9_600);
        let fast = gdsf_priority(0.0, 1, 2, 9_600);
        let small = gdsf_priority(0.0, 1, 2, 1_900);
        assert!(slow > small && small > fast);
        assert!(gdsf_priority(0.0, 3, 2, 9_600) > fast);
        assert!(gdsf_priority(slow, 1, 0, 9_600) > slow);
        assert!(gdsf_priority(0.0, 1, 0, 0).is_finite());
    }

    /// Admission combines patterns, sizes and fetch time; the empty filter admits all.
    #[test]
    fn admission_table() {
        let open = Admission::default();
        assert!(open.is_open() && open.admits("a/0.0", 0, 0));
        let filter = Admission {
            include: vec!["air/*".into(), "sst/0.?".into()],
            exclude: vec!["*/.z*".into()],
            min_bytes: Some(10),
            max_bytes: Some(100),
            min_fetch_ms: Some(5),
        };
        for (key, size, ms, want) in [
            ("air/0.0", 50, 5, true),
            ("air/deep/0.0", 50, 5, true),
            ("sst/0.1", 10, 9, true),
            ("sst/0.11", 50, 9, false),
            ("other/0", 50, 9, false),
            ("air/.zarray", 50, 9, false),
            ("air/0.0", 9, 9, false),
            ("air/0.0", 101, 9, false),
            ("air/0.0", 50, 4, false),
        ] {
            assert_eq!(filter.admits(key, size, ms), want, "{key} {size} {ms}");
        }
    }

    /// Limits trip on either the dataset's or the total capacity.
    #[test]
    fn limits_exceeded() {
        let limit = |capacity_bytes| {
            Some(Limit {
                capacity_bytes,
                policy: EvictionPolicy::Lru,
            })
        };
        assert!(!CapacityLimits::default().exceeded(u64::MAX, u64::MAX));
        let both = CapacityLimits {
            dataset: limit(10),
            total: limit(100),
        };
        assert!(!both.exceeded(10, 100));
        assert!(both.exceeded(11, 20));
        assert!(both.exceeded(5, 101));
    }

    /// Names round-trip; nearest-rank percentiles.
    #[test]
    fn names_and_percentiles() {
        for policy in [
            EvictionPolicy::Lru,
            EvictionPolicy::Lfu,
            EvictionPolicy::Size,
            EvictionPolicy::Cost,
        ] {
            assert_eq!(EvictionPolicy::parse(policy.as_str()), Some(policy));
        }
        assert_eq!(EvictionPolicy::parse("fifo"), None);
        for sort in ["hits", "last_access", "size", "fetch_ms", "created"] {
            assert_eq!(KeySort::parse(sort).map(KeySort::as_str), Some(sort));
        }
        assert_eq!(Order::LastAccess.position(), 1);
        assert_eq!(Order::Key.position(), 8);
        assert_eq!(percentile_rank(0, 50), None);
        assert_eq!(percentile_rank(1, 95), Some(0));
        assert_eq!(percentile_rank(4, 50), Some(1));
        assert_eq!(percentile_rank(20, 95), Some(18));
        assert_eq!(percentile_rank(100, 100), Some(99));
    }
}
