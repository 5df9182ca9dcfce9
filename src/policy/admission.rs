//! The admission filter: which misses a dataset stores (key globs, sizes, fetch time).

use serde::{Deserialize, Serialize};
use wildmatch::WildMatch;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
