//! Eviction policies and their scores: what a dataset gives up first when it is over capacity.
//!
//! The index keeps one sorted set per order for every dataset (`keys::CacheKeys::order`), so any
//! policy can evict at once, even after an operator switches it. The scores are computed inside
//! the index's Lua scripts (`index::scripts`), where a hit updates them in the same round trip; the
//! functions here are their specification (same formulas, same constants) and serve the in-memory
//! fake.

use serde::{Deserialize, Serialize};

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
    /// Every order, in the position the index scripts expect them (`index::scripts`).
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

    /// Names round-trip; orders have their positions.
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
        assert_eq!(Order::LastAccess.position(), 1);
        assert_eq!(Order::Key.position(), 8);
    }
}
