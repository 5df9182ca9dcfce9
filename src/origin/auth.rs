//! Signed requests to private S3 origins: a dataset's credentials (resolved from secrets it
//! names) sign its ranged GETs with `SigV4`. Only the host the references point at is signed:
//! a redirect to another host is fetched without the signature, so credentials never travel to
//! a host they were not meant for.

use url::Url;

use crate::origin::sigv4::{
    self, Credentials, Payload, SignableRequest, SigningParams, SigningTime,
};
use crate::origin::url_policy::host_port;
use crate::origin::BadAnswer;

/// A dataset's signing identity for its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginAuth {
    /// The credentials (their `Debug` hides the secret).
    pub credentials: Credentials,
    /// The signing region.
    pub region: String,
}

impl OriginAuth {
    /// The headers that sign a GET of `url` at `now_ms`, when `url` is on `signed_host` (the
    /// host and port of the URL the references named); none for any other host.
    ///
    /// # Errors
    /// [`BadAnswer`] when the request cannot be signed (an invalid access key id, a clock out
    /// of range); the message names no secret.
    pub fn headers(
        &self,
        url: &Url,
        signed_host: &str,
        now_ms: u64,
    ) -> Result<Vec<(String, String)>, BadAnswer> {
        if host_port(url) != signed_host {
            return Ok(Vec::new());
        }
        let time = SigningTime::from_epoch_millis(now_ms)
            .ok_or_else(|| BadAnswer::Wrong("signing: the clock is out of range".into()))?;
        let signed = sigv4::sign(
            &SignableRequest {
                method: "GET",
                url,
                headers: &[],
                payload: Payload::Bytes(&[]),
            },
            &self.credentials,
            &SigningParams::s3(&self.region, time),
        )
        .map_err(|e| BadAnswer::Wrong(format!("signing: {e}")))?;
        Ok(signed.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> OriginAuth {
        OriginAuth {
            credentials: Credentials::new("AKIDEXAMPLE", "origin-secret-0123456789"),
            region: "us-east-1".into(),
        }
    }

    /// The named host is signed; another host (a redirect) gets nothing.
    #[test]
    fn only_the_named_host_is_signed() {
        let url: Url = "http://127.0.0.1:9000/private/air.nc".parse().unwrap();
        let headers = auth()
            .headers(&url, "127.0.0.1:9000", 1_796_144_400_000)
            .unwrap();
        let authorization = headers.iter().find(|(n, _)| n == "authorization").unwrap();
        assert!(authorization.1.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261201/us-east-1/s3/aws4_request"
        ));
        assert!(headers
            .iter()
            .any(|(n, v)| n == "x-amz-date" && v == "20261201T170000Z"));
        let elsewhere: Url = "http://elsewhere.test/air.nc".parse().unwrap();
        assert!(auth()
            .headers(&elsewhere, "127.0.0.1:9000", 1)
            .unwrap()
            .is_empty());
        assert!(!format!("{:?}", auth()).contains("origin-secret"));
    }
}
