//! Capacity limits: how many bytes a dataset, and the deployment, may keep stored.

use crate::policy::eviction::EvictionPolicy;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
