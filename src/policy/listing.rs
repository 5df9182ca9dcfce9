//! The keys listing's sort orders (`GET /api/stats/keys`) and the percentile rule of the stats.

use crate::policy::eviction::Order;

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

    /// Sort names round-trip; nearest-rank percentiles.
    #[test]
    fn names_and_percentiles() {
        for sort in ["hits", "last_access", "size", "fetch_ms", "created"] {
            assert_eq!(KeySort::parse(sort).map(KeySort::as_str), Some(sort));
        }
        assert_eq!(percentile_rank(0, 50), None);
        assert_eq!(percentile_rank(1, 95), Some(0));
        assert_eq!(percentile_rank(4, 50), Some(1));
        assert_eq!(percentile_rank(20, 95), Some(18));
        assert_eq!(percentile_rank(100, 100), Some(99));
    }
}
