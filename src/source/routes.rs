//! Other GET routes of a dataset's origin — xpublish's EDR, WMS and tile plugins, `OPeNDAP`,
//! `/info` — passed through under `/routes/{dataset}/…` and cached when a rule of the dataset
//! lists them. The cache key is the path with the query canonicalised: the same request written
//! two ways is one entry. Pure.

use percent_encoding::percent_decode_str;
use url::form_urlencoded;

/// The longest query accepted, in bytes, and the most parameters.
pub const MAX_QUERY_BYTES: usize = 4096;
const MAX_PARAMETERS: usize = 64;
/// The most rules a dataset may list.
const MAX_RULES: usize = 64;

/// A cached route: a path pattern and the TTL of its answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRule {
    /// Segments separated by `/`; `*` matches one segment, a final `**` any rest (also none).
    pub path: String,
    /// How long an answer is cached, in seconds.
    pub ttl_seconds: u64,
    /// Whether the query's parameters are sorted for the cache key (default; off where their
    /// order has a meaning).
    pub sort_query: bool,
}

/// A dataset's routes: where they live and which are cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesConfig {
    /// The base URL, without a trailing `/` (`http://host/datasets/air` for xpublish).
    pub base: String,
    /// The cached routes, first match wins; any other route passes through uncached.
    pub cache: Vec<RouteRule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    base: String,
    #[serde(default)]
    cache: Vec<RawRule>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: String,
    ttl_seconds: u64,
    #[serde(default)]
    sort_query: Option<bool>,
}

impl RoutesConfig {
    /// Parses a dataset's `routes` (`{"base": URL, "cache": [{"path", "ttl_seconds"}, …]}`).
    ///
    /// # Errors
    /// What is wrong: not that shape, a base that is not http(s), a pattern with an empty
    /// segment or a `**` before its end, a TTL of 0, too many rules.
    pub fn parse(value: serde_json::Value) -> Result<Self, String> {
        let raw: RawRoutes = serde_json::from_value(value).map_err(|e| format!("routes: {e}"))?;
        if !(raw.base.starts_with("http://") || raw.base.starts_with("https://")) {
            return Err(format!(
                "routes.base must be an http(s) URL, not {:?}",
                raw.base
            ));
        }
        if raw.cache.len() > MAX_RULES {
            return Err(format!("routes.cache lists more than {MAX_RULES} rules"));
        }
        let mut cache = Vec::with_capacity(raw.cache.len());
        for rule in raw.cache {
            let segments: Vec<&str> = rule.path.split('/').collect();
            let bad_segment = segments
                .iter()
                .any(|s| s.is_empty() || *s == "." || *s == "..");
            let early_rest = segments
                .iter()
                .take(segments.len().saturating_sub(1))
                .any(|s| *s == "**");
            if bad_segment || early_rest {
                return Err(format!(
                    "routes.cache: bad path pattern {:?} (segments separated by /, * for one, ** last)",
                    rule.path
                ));
            }
            if rule.ttl_seconds == 0 {
                return Err(format!(
                    "routes.cache {:?}: ttl_seconds must be at least 1",
                    rule.path
                ));
            }
            cache.push(RouteRule {
                path: rule.path,
                ttl_seconds: rule.ttl_seconds,
                sort_query: rule.sort_query.unwrap_or(true),
            });
        }
        Ok(Self {
            base: raw.base.trim_end_matches('/').to_owned(),
            cache,
        })
    }

    /// The rule that caches `path`, if any.
    #[must_use]
    pub fn rule_for(&self, path: &str) -> Option<&RouteRule> {
        self.cache
            .iter()
            .find(|rule| pattern_matches(&rule.path, path))
    }

    /// The origin URL of `path` with `query` (already canonical or as the client sent it).
    #[must_use]
    pub fn url_of(&self, path: &str, query: &str) -> String {
        if query.is_empty() {
            format!("{}/{path}", self.base)
        } else {
            format!("{}/{path}?{query}", self.base)
        }
    }
}

/// Whether `pattern` matches `path` (segment by segment; `*` one segment, a final `**` the rest).
#[must_use]
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    let mut segments = path.split('/');
    for part in pattern.split('/') {
        if part == "**" {
            return true;
        }
        match segments.next() {
            Some(segment) if part == "*" || part == segment => {}
            _ => return false,
        }
    }
    segments.next().is_none()
}

/// The query in one canonical form: parameters decoded and encoded again the one way
/// `application/x-www-form-urlencoded` writes them (a name without `=` stays bare), empty parts
/// dropped, and, when `sort` is set, sorted by name (repeated names keep their order, which may
/// matter). A rule whose origin gives the order meaning (an `OPeNDAP` constraint expression) keeps
/// it with `"sort_query": false`.
///
/// # Errors
/// A query over [`MAX_QUERY_BYTES`], with more than 64 parameters, or whose escapes are not UTF-8.
pub fn canonical_query(raw: &str, sort: bool) -> Result<String, String> {
    if raw.len() > MAX_QUERY_BYTES {
        return Err(format!("the query is longer than {MAX_QUERY_BYTES} bytes"));
    }
    let decode = |part: &str| {
        let spaced = part.replace('+', " ");
        percent_decode_str(&spaced)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| format!("the query part {part:?} is not UTF-8 once decoded"))
    };
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.split_once('=') {
            Some((name, value)) => (decode(name)?, Some(decode(value)?)),
            None => (decode(part)?, None),
        };
        if !name.is_empty() {
            pairs.push((name, value));
        }
    }
    if pairs.len() > MAX_PARAMETERS {
        return Err(format!(
            "the query has more than {MAX_PARAMETERS} parameters"
        ));
    }
    if sort {
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
    }
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let parts: Vec<String> = pairs
        .iter()
        .map(|(name, value)| match value {
            Some(value) => format!("{}={}", encode(name), encode(value)),
            None => encode(name),
        })
        .collect();
    Ok(parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One request written several ways is one canonical query; repeated names keep their order.
    #[test]
    fn queries_are_canonical() {
        let a = canonical_query("coords=POINT(10%2020)&parameter-name=air&f=json", true).unwrap();
        let b = canonical_query("f=json&&parameter-name=air&coords=POINT(10+20)", true).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, "coords=POINT%2810+20%29&f=json&parameter-name=air");
        assert_eq!(canonical_query("b=2&a=1&b=1", true).unwrap(), "a=1&b=2&b=1");
        assert_eq!(canonical_query("", true).unwrap(), "");
        assert_eq!(canonical_query("a=b=c", true).unwrap(), "a=b%3Dc");
        // A bare name stays bare; without sorting, the order stands (OPeNDAP constraints).
        assert_eq!(
            canonical_query("temp&lat%3E10", false).unwrap(),
            "temp&lat%3E10"
        );
        assert_eq!(
            canonical_query("temp&lat>10", true).unwrap(),
            "lat%3E10&temp"
        );
        assert!(canonical_query("a=%FF", true).is_err(), "not UTF-8");
        assert!(canonical_query(&"a=1&".repeat(65), true).is_err());
        assert!(canonical_query(&"x".repeat(MAX_QUERY_BYTES + 1), true).is_err());
    }

    /// Patterns match by segment.
    #[test]
    fn patterns() {
        for (pattern, path, expected) in [
            ("edr/position", "edr/position", true),
            ("edr/*", "edr/position", true),
            ("edr/*", "edr/position/x", false),
            ("edr/**", "edr/a/b/c", true),
            ("edr/**", "edr", true),
            ("info", "info/x", false),
            ("tiles/*/*/*/*", "tiles/WebMercatorQuad/1/0/0", true),
            ("wms", "wmsx", false),
        ] {
            assert_eq!(pattern_matches(pattern, path), expected, "{pattern} {path}");
        }
    }

    /// Rules parse with their checks; the first matching rule wins.
    #[test]
    fn rules_parse() {
        let routes = RoutesConfig::parse(serde_json::json!({
            "base": "http://x.test/datasets/air/",
            "cache": [{"path": "edr/**", "ttl_seconds": 60}, {"path": "*", "ttl_seconds": 5}]
        }))
        .unwrap();
        assert_eq!(routes.base, "http://x.test/datasets/air");
        assert_eq!(routes.rule_for("edr/cube").map(|r| r.ttl_seconds), Some(60));
        assert_eq!(routes.rule_for("info").map(|r| r.ttl_seconds), Some(5));
        assert_eq!(routes.rule_for("a/b"), None);
        assert_eq!(
            routes.url_of("info", "a=1"),
            "http://x.test/datasets/air/info?a=1"
        );
        for bad in [
            serde_json::json!({"base": "ftp://x"}),
            serde_json::json!({"base": "http://x", "cache": [{"path": "a//b", "ttl_seconds": 1}]}),
            serde_json::json!({"base": "http://x", "cache": [{"path": "**/a", "ttl_seconds": 1}]}),
            serde_json::json!({"base": "http://x", "cache": [{"path": "a", "ttl_seconds": 0}]}),
            serde_json::json!({"base": "http://x", "extra": 1}),
        ] {
            assert!(RoutesConfig::parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
