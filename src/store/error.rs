//! Why a chunk store failed, by what the caller must do, and how each store's failures map onto
//! that. Absence is not an error: a missing object is `Ok(None)`.

/// Why the chunk store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store refused a write to this key for now (R2 allows one write per second per key).
    /// The cache reads it as "someone else is writing the same bytes": the write is dropped,
    /// and a reader is not failed.
    #[error("write to {0} rate limited")]
    RateLimited(String),
    /// The store failed or is unreachable for now (timeout, network, a 5xx, throttling of the
    /// whole bucket such as S3's `503 SlowDown`): retry later.
    #[error("{0}")]
    Retryable(String),
    /// The store refuses this deployment (credentials, permissions, no such bucket): the
    /// operator must fix the configuration; retrying does not help.
    #[error("{0}")]
    Fatal(String),
}

/// S3 error codes that mean the store refuses this deployment (credentials, permissions, the
/// bucket): retrying cannot help.
const S3_FATAL_CODES: [&str; 7] = [
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
    "AuthorizationHeaderMalformed",
    "AccountProblem",
];

/// R2's error code for more than one write per second to a key.
pub const R2_RATE_LIMITED: u32 = 10_058;

/// R2 codes that mean this deployment may not use the bucket: `Unauthorized` (10002),
/// `AccessDenied` (10003), `SignatureDoesNotMatch` (10035), from
/// <https://developers.cloudflare.com/r2/api/error-codes/>.
const R2_FATAL: [u32; 3] = [10_002, 10_003, 10_035];

impl StoreError {
    /// Classifies an R2 binding error. Its message ends with R2's numeric code in parentheses
    /// (`put: Reduce your rate of simultaneous writes to the same object. (10058)`); only that
    /// code means "rate limited on this key". Digits elsewhere in the message (an object key
    /// containing `429`) say nothing.
    #[must_use]
    pub fn from_r2(key: &str, message: &str) -> Self {
        match r2_error_code(message) {
            Some(R2_RATE_LIMITED) => Self::RateLimited(key.to_owned()),
            Some(code) if R2_FATAL.contains(&code) => Self::Fatal(format!("R2: {message}")),
            _ => Self::Retryable(format!("R2: {message}")),
        }
    }

    /// Classifies an HTTP answer of an S3-compatible store (`status` and the `<Code>` of its
    /// XML error body, when there is one). Throttling (`503 SlowDown`, `429`) is retryable:
    /// it concerns the bucket, not one key, so it must not read as R2's per-key limit.
    /// Refused credentials, permissions and missing buckets are fatal.
    #[must_use]
    pub fn from_s3(what: &str, status: u16, code: Option<&str>) -> Self {
        let shown = code.map_or_else(
            || format!("HTTP {status}"),
            |c| format!("HTTP {status} {c}"),
        );
        let text = format!("S3 {what}: {shown}");
        let fatal_code = code.is_some_and(|c| S3_FATAL_CODES.contains(&c));
        if fatal_code || matches!(status, 400 | 401 | 403 | 405) {
            Self::Fatal(text)
        } else {
            Self::Retryable(text)
        }
    }

    /// The S3 error code a fatal error names (`SignatureDoesNotMatch`, …), for health reports.
    #[must_use]
    pub fn fatal_code(&self) -> Option<&'static str> {
        let Self::Fatal(text) = self else {
            return None;
        };
        S3_FATAL_CODES
            .iter()
            .copied()
            .find(|code| text.split_whitespace().any(|word| word == *code))
    }

    /// Whether retrying the same call later may succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Fatal(_))
    }
}

/// The code at the end of an R2 error message: `… (10058)` → 10058.
fn r2_error_code(message: &str) -> Option<u32> {
    let inner = message.trim_end().strip_suffix(')')?;
    let (_, code) = inner.rsplit_once('(')?;
    (code.len() == 5 && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| code.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only R2's trailing code 10058 is a rate limit; a key or message with "429" is not.
    #[test]
    fn r2_errors_are_classified_by_their_code() {
        let limited = "put: Reduce your rate of simultaneous writes to the same object. (10058)";
        assert_eq!(
            StoreError::from_r2("k", limited),
            StoreError::RateLimited("k".into())
        );
        for other in [
            "get: zec/v1/42/429abc not found (10007)",
            "put: object zec/v1/429/x failed: HTTP 429",
            "put: rate limit exceeded",
            "put: internal error (10001)",
            "put: (10058) in the middle, then (10001)",
            "",
        ] {
            assert!(
                matches!(
                    StoreError::from_r2("zec/v1/429", other),
                    StoreError::Retryable(_)
                ),
                "{other}"
            );
        }
    }

    /// R2's authorisation codes are fatal; everything else unknown is retryable.
    #[test]
    fn r2_bucket_problems_are_fatal() {
        assert!(matches!(
            StoreError::from_r2(
                "k",
                "get: Insufficient permissions for the requested operation. (10003)"
            ),
            StoreError::Fatal(_)
        ));
        assert!(
            StoreError::from_r2("k", "get: We encountered an internal error. (10001)")
                .is_retryable()
        );
    }

    /// A generic 503 (or S3's `SlowDown`, or a 429) is retryable, never "rate limited on this
    /// key"; refused credentials and missing buckets are fatal.
    #[test]
    fn s3_answers_are_classified() {
        for (status, code) in [
            (503, Some("SlowDown")),
            (503, None),
            (429, None),
            (500, Some("InternalError")),
        ] {
            assert!(
                matches!(
                    StoreError::from_s3("put k", status, code),
                    StoreError::Retryable(_)
                ),
                "{status} {code:?}"
            );
        }
        for (status, code) in [
            (403, Some("AccessDenied")),
            (403, Some("SignatureDoesNotMatch")),
            (404, Some("NoSuchBucket")),
            (400, Some("InvalidAccessKeyId")),
            (401, None),
        ] {
            let error = StoreError::from_s3("get k", status, code);
            assert!(matches!(error, StoreError::Fatal(_)), "{status} {code:?}");
            assert_eq!(error.fatal_code(), code, "health names the code");
        }
    }
}
