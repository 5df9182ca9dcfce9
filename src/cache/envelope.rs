//! Origin answers stored with their content type: a route of an xpublish server answers JSON,
//! PNG or CSV, and a cached answer must go out as it came in. The chunk store keeps only bytes,
//! so the content type travels in front of them, in a small header of its own.
//!
//! Layout: `ZECE1\n{content type}\n{body}`. Pure.

/// The first bytes of every envelope.
const MAGIC: &[u8] = b"ZECE1\n";
/// The longest content type kept; longer ones (or ones with control characters) are dropped.
const MAX_CONTENT_TYPE: usize = 256;

/// The body with `content_type` in front (`application/octet-stream` when there is none or it
/// is unusable).
#[must_use]
pub fn wrap(content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let content_type = content_type
        .filter(|t| t.len() <= MAX_CONTENT_TYPE && !t.chars().any(char::is_control))
        .unwrap_or("application/octet-stream");
    let mut out = Vec::with_capacity(MAGIC.len() + content_type.len() + 1 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(content_type.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The content type and the body of an envelope; `None` when `bytes` is not one.
#[must_use]
pub fn unwrap(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let end = rest
        .iter()
        .take(MAX_CONTENT_TYPE + 1)
        .position(|b| *b == b'\n')?;
    let content_type = std::str::from_utf8(&rest[..end]).ok()?;
    Some((content_type, &rest[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is wrapped comes back; unusable content types become bytes; non-envelopes are refused.
    #[test]
    fn round_trip_and_refusals() {
        let wrapped = wrap(Some("application/json"), b"{\"a\":\n1}");
        assert_eq!(
            unwrap(&wrapped),
            Some(("application/json", &b"{\"a\":\n1}"[..]))
        );
        let empty = wrap(None, b"");
        assert_eq!(unwrap(&empty), Some(("application/octet-stream", &b""[..])));
        let injected = wrap(Some("text/plain\nx-evil: 1"), b"z");
        assert_eq!(
            unwrap(&injected),
            Some(("application/octet-stream", &b"z"[..]))
        );
        assert_eq!(unwrap(b"plain bytes"), None);
        assert_eq!(unwrap(b"ZECE1\nno newline after the type"), None);
        let long = "a".repeat(MAX_CONTENT_TYPE + 1);
        assert_eq!(
            unwrap(&wrap(Some(&long), b"x")).map(|(t, _)| t),
            Some("application/octet-stream")
        );
    }
}
