//! HTTP `Range` and `If-None-Match` for every Zarr key: what to send for a body of known size.
//!
//! Pure. One range per request (Zarr clients ask for one); a multi-range request is answered
//! with the whole body, which RFC 9110 allows.

/// What a `Range` header asks of a body of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// No usable range: send everything with 200.
    Full,
    /// Send bytes `start..=end` with 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// Interprets a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against `size`.
#[must_use]
pub fn range_answer(header: Option<&str>, size: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, true) => return RangeAnswer::Full,
        // Suffix: the last n bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeAnswer::Unsatisfiable,
            Ok(n) if size == 0 => {
                return if n > 0 {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Full
                }
            }
            Ok(n) => Some((size.saturating_sub(n), size - 1)),
            Err(_) => None,
        },
        (false, true) => first
            .parse::<u64>()
            .ok()
            .map(|a| (a, size.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if b >= a => Some((a, b.min(size.saturating_sub(1)))),
            _ => None,
        },
    };
    match parsed {
        None => RangeAnswer::Full,
        Some((start, _)) if start >= size => RangeAnswer::Unsatisfiable,
        Some((start, end)) => RangeAnswer::Partial { start, end },
    }
}

/// The strong `ETag` for a content checksum.
#[must_use]
pub fn etag(checksum: &str) -> String {
    format!("\"{checksum}\"")
}

/// Whether `If-None-Match` matches `etag` (weak comparison, lists and `*`, as RFC 9110 says
/// for `If-None-Match`).
#[must_use]
pub fn none_match(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let ours = bare(etag);
    header
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Range forms against a 10-byte body.
    #[test]
    fn range_table() {
        use RangeAnswer::{Full, Partial, Unsatisfiable};
        let p = |start, end| Partial { start, end };
        for (header, want) in [
            (None, Full),
            (Some("bytes=0-3"), p(0, 3)),
            (Some("bytes=2-"), p(2, 9)),
            (Some("bytes=-4"), p(6, 9)),
            (Some("bytes=-40"), p(0, 9)),
            (Some("bytes=5-100"), p(5, 9)),
            (Some("bytes=9-9"), p(9, 9)),
            (Some("bytes=10-"), Unsatisfiable),
            (Some("bytes=12-20"), Unsatisfiable),
            (Some("bytes=-0"), Unsatisfiable),
            (Some("bytes=4-2"), Full),
            (Some("bytes=0-1,4-5"), Full),
            (Some("items=0-1"), Full),
            (Some("bytes=x-y"), Full),
            (Some("bytes=-"), Full),
        ] {
            assert_eq!(range_answer(header, 10), want, "{header:?}");
        }
        assert_eq!(range_answer(Some("bytes=0-"), 0), Unsatisfiable);
    }

    /// If-None-Match matches exact, weak, listed and wildcard tags.
    #[test]
    fn none_match_table() {
        let tag = etag("abc");
        assert_eq!(tag, "\"abc\"");
        for (header, want) in [
            (None, false),
            (Some("\"abc\""), true),
            (Some("W/\"abc\""), true),
            (Some("\"x\", \"abc\""), true),
            (Some("*"), true),
            (Some("\"abd\""), false),
        ] {
            assert_eq!(none_match(header, &tag), want, "{header:?}");
        }
    }
}
