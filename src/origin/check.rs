//! Checking what an origin answered to a (ranged) GET: status, `Content-Range` and exact length.
//!
//! Pure. Nothing short, failed or mismatched ever reaches a client as a chunk (or, later, storage).

use url::Url;

use crate::origin::auth::OriginAuth;
use crate::origin::url_policy::{host_port, redact, redirect_target, HostPolicy, MAX_REDIRECTS};
use crate::origin::{BadAnswer, OriginError};
use crate::origin::{ByteRange, Origin, OriginResponse};

/// Whether `status` is a redirect that carries a `Location` to follow.
#[must_use]
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// GETs `target` from `origin`, following at most [`MAX_REDIRECTS`] redirects, each only when
/// its target passes `hosts` (the dataset's allowed hosts). With `auth`, requests to the
/// target's host are signed at `now_ms` (a redirect elsewhere is not). Returns the URL that
/// answered and its answer, not yet checked ([`checked_body`]).
///
/// # Errors
/// [`BadAnswer`] (502) naming `what` (the dataset and key) when the origin gives no
/// answer, redirects without a `Location`, too often, or to a URL the dataset does not allow.
pub async fn fetch_following_redirects<O: Origin>(
    origin: &O,
    hosts: &HostPolicy,
    what: &str,
    target: Url,
    range: Option<ByteRange>,
    auth: Option<(&OriginAuth, u64)>,
) -> Result<(Url, OriginResponse), BadAnswer> {
    let signed_host = host_port(&target);
    let mut url = target;
    let mut hops = 0;
    loop {
        let shown = redact(url.as_str());
        let headers = match auth {
            Some((auth, now_ms)) => auth.headers(&url, &signed_host, now_ms)?,
            None => Vec::new(),
        };
        let response = origin
            .get(url.as_str(), range, &headers)
            .await
            .map_err(|e| match e {
                OriginError::Timeout(_) => BadAnswer::TimedOut(format!("{what}: {shown}: {e}")),
                _ => BadAnswer::Wrong(format!("{what}: {shown}: {e}")),
            })?;
        if !is_redirect(response.status) {
            return Ok((url, response));
        }
        let status = response.status;
        let Some(location) = response.location else {
            return Err(BadAnswer::Wrong(format!(
                "{what}: {shown} answered HTTP {status} without a Location"
            )));
        };
        if hops == MAX_REDIRECTS {
            return Err(BadAnswer::Wrong(format!(
                "{what}: more than {MAX_REDIRECTS} redirects (the last from {shown})"
            )));
        }
        hops += 1;
        let next = redirect_target(&url, &location)
            .map_err(|e| BadAnswer::Wrong(format!("{what}: {shown} redirected to {e}")))?;
        url = hosts.check_chunk_url(&next).map_err(|refusal| {
            BadAnswer::Wrong(format!(
                "{what}: {shown} redirected (HTTP {status}) to a URL the dataset does not allow: \
                 {refusal}"
            ))
        })?;
    }
}

/// The body of `response` if it is exactly what `range` asked for (or the whole file when `range`
/// is `None`).
///
/// Accepts a `206` whose `Content-Range` starts at the offset and whose body has the exact length,
/// and a `200` (a server that ignores `Range`) whose body covers the range, from which the range is
/// cut out.
///
/// # Errors
/// [`BadAnswer`] naming the URL and what was wrong (status, range, length).
pub fn checked_body(
    url: &str,
    range: Option<ByteRange>,
    response: OriginResponse,
) -> Result<Vec<u8>, BadAnswer> {
    let fail = |why: String| Err(BadAnswer::Wrong(format!("{url}: {why}")));
    let Some(range) = range else {
        return match response.status {
            200 => Ok(response.body),
            status => fail(format!("answered HTTP {status}")),
        };
    };
    match response.status {
        206 => {
            if let Some(content_range) = &response.content_range {
                match parse_content_range(content_range) {
                    Some((first, _)) if first == range.offset => {}
                    _ => {
                        return fail(format!(
                            "Content-Range {content_range:?} does not match {}",
                            range.header_value()
                        ))
                    }
                }
            }
            if response.body.len() as u64 == range.length {
                Ok(response.body)
            } else {
                fail(format!(
                    "expected {} bytes at offset {}, got {}",
                    range.length,
                    range.offset,
                    response.body.len()
                ))
            }
        }
        200 => {
            let end = range.offset.checked_add(range.length);
            match end.and_then(|end| usize::try_from(end).ok()) {
                Some(end) if end <= response.body.len() => {
                    let start = usize::try_from(range.offset).unwrap_or(usize::MAX);
                    let mut body = response.body;
                    body.truncate(end);
                    Ok(body.split_off(start))
                }
                _ => fail(format!(
                    "file of {} bytes does not cover {}",
                    response.body.len(),
                    range.header_value()
                )),
            }
        }
        416 => fail(format!("range {} not satisfiable", range.header_value())),
        status => fail(format!("answered HTTP {status}")),
    }
}

/// Parses `bytes first-last/total` (total may be `*`) into `(first, last)`.
fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes ")?;
    let (span, _total) = spec.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, content_range: Option<&str>, body: &[u8]) -> OriginResponse {
        OriginResponse {
            status,
            content_range: content_range.map(str::to_owned),
            etag: None,
            last_modified: None,
            location: None,
            content_type: None,
            body: body.to_vec(),
        }
    }

    const R: ByteRange = ByteRange {
        offset: 2,
        length: 3,
    };

    /// Exact ranges pass; short, misplaced and failed answers are origin errors.
    #[test]
    fn ranged_answers_table() {
        let cases: Vec<(OriginResponse, Result<&[u8], ()>)> = vec![
            (answer(206, Some("bytes 2-4/10"), b"cde"), Ok(b"cde")),
            (answer(206, None, b"cde"), Ok(b"cde")),
            (answer(200, None, b"abcdefghij"), Ok(b"cde")),
            (answer(206, Some("bytes 2-4/10"), b"cd"), Err(())),
            (answer(206, Some("bytes 3-5/10"), b"def"), Err(())),
            (answer(206, Some("garbage"), b"cde"), Err(())),
            (answer(200, None, b"abcd"), Err(())),
            (answer(416, None, b""), Err(())),
            (answer(404, None, b"not found"), Err(())),
            (answer(500, None, b""), Err(())),
        ];
        for (response, want) in cases {
            let got = checked_body("http://o/f.nc", Some(R), response.clone());
            match want {
                Ok(bytes) => assert_eq!(got.unwrap(), bytes, "{response:?}"),
                Err(()) => assert!(matches!(got, Err(BadAnswer::Wrong(_))), "{response:?}"),
            }
        }
    }

    /// Whole-file references need a 200.
    #[test]
    fn whole_file_answers() {
        assert_eq!(
            checked_body("u", None, answer(200, None, b"all")).unwrap(),
            b"all"
        );
        assert!(checked_body("u", None, answer(404, None, b"")).is_err());
    }

    /// The Range header is inclusive of the last byte.
    #[test]
    fn range_header_is_inclusive() {
        assert_eq!(R.header_value(), "bytes=2-4");
    }
}
