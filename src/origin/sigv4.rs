//! AWS Signature Version 4 for request headers (`Authorization: AWS4-HMAC-SHA256 …`), pure and
//! sans-IO: for signed requests to private S3-compatible origins and chunk stores.
//!
//! [`sign`] takes a request description ([`SignableRequest`]: method, URL, headers, payload),
//! [`Credentials`] and [`SigningParams`] (region, service, a [`SigningTime`] passed in: no clock
//! is read here) and returns the headers to set ([`Signed::headers`]) with the intermediate
//! canonical request and string to sign (checked against AWS's test suite in
//! `tests/sigv4_vectors.rs`). Query-string signing (presigned URLs) is not implemented.
//!
//! The steps, as AWS specifies them:
//! 1. the canonical request: method; the canonical URI (each path segment URI-encoded, see
//!    [`PathEncoding`]; dot segments and repeated slashes removed only when
//!    [`SigningSettings::normalize_path`]); the canonical query string (parameters decoded, then
//!    URI-encoded and sorted by name, then value; `k=` for an empty value); the canonical
//!    headers (names lower-cased, values trimmed with runs of spaces collapsed, sorted by name,
//!    repeated names joined by `,`, `host` and `x-amz-date` always included); the signed
//!    header names; the payload hash;
//! 2. the string to sign: algorithm, date-time, scope (`date/region/service/aws4_request`), the
//!    SHA-256 of the canonical request;
//! 3. the signing key, `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
//!    "aws4_request")`, and the signature, `hex(HMAC(key, string to sign))`.
//!
//! What is signed is what is sent: the URL is a [`Url`] (the WHATWG parser `fetch` follows), the
//! `host` header is its authority, and for S3 the path is decoded and encoded exactly once, so
//! a URL built with [`uri_encode`] is sent with the very path that was signed.

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use url::Url;

/// The signing algorithm named in the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The payload hash S3 accepts in place of a SHA-256 ([`Payload::Unsigned`]).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Header names the signer computes itself; one given in [`SignableRequest::headers`] is
/// ignored. (`x-amz-content-sha256` too, when [`SigningSettings::content_sha256_header`] is on.)
const SIGNER_OWNED: [&str; 4] = [
    "authorization",
    "host",
    "x-amz-date",
    "x-amz-security-token",
];

/// An access key pair, with the session token of temporary credentials.
///
/// `Debug` shows the access key id only: the secret and the token are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…`, `ASIA…`), named in the `Authorization` header.
    pub access_key_id: String,
    /// The secret access key: never sent, only used to derive the signing key.
    pub secret_access_key: String,
    /// The session token of temporary (STS) credentials, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials (no session token).
    #[must_use]
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// The same credentials with a session token (temporary credentials).
    #[must_use]
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A UTC date-time to the second, years 1970 to 9999: the `x-amz-date` of a signature.
///
/// Built from the clock's epoch milliseconds ([`SigningTime::from_epoch_millis`]) or parsed
/// from the `yyyymmddThhmmssZ` form ([`SigningTime::parse`]); shown in that form by `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SigningTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl SigningTime {
    /// The date-time `ms` milliseconds after the Unix epoch (the milliseconds dropped); `None`
    /// after the year 9999.
    #[must_use]
    pub fn from_epoch_millis(ms: u64) -> Option<Self> {
        let secs = ms / 1000;
        let (year, month, day) = civil_from_days(secs / 86_400);
        let in_day = secs % 86_400;
        if year > 9999 {
            return None;
        }
        Some(Self {
            year: u16::try_from(year).ok()?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
            hour: u8::try_from(in_day / 3600).ok()?,
            minute: u8::try_from(in_day % 3600 / 60).ok()?,
            second: u8::try_from(in_day % 60).ok()?,
        })
    }

    /// Parses the basic ISO 8601 form `x-amz-date` uses, `yyyymmddThhmmssZ`; `None` for any
    /// other form, an impossible date or time (no leap seconds), or a year before 1970.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let year = digits(&b[0..4])?;
        let month = u8::try_from(digits(&b[4..6])?).ok()?;
        let day = u8::try_from(digits(&b[6..8])?).ok()?;
        let hour = u8::try_from(digits(&b[9..11])?).ok()?;
        let minute = u8::try_from(digits(&b[11..13])?).ok()?;
        let second = u8::try_from(digits(&b[13..15])?).ok()?;
        let valid = year >= 1970
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        valid.then_some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Milliseconds since the Unix epoch (a whole number of seconds).
    #[must_use]
    pub fn epoch_millis(&self) -> u64 {
        let days = days_from_civil(
            u64::from(self.year),
            u64::from(self.month),
            u64::from(self.day),
        );
        let secs = days * 86_400
            + u64::from(self.hour) * 3600
            + u64::from(self.minute) * 60
            + u64::from(self.second);
        secs * 1000
    }

    /// `yyyymmddThhmmssZ`: the `x-amz-date` header and the string to sign's date-time.
    #[must_use]
    pub fn amz_date(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `yyyymmdd`: the date of the credential scope and the signing key.
    #[must_use]
    pub fn date_stamp(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for SigningTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.amz_date())
    }
}

/// The value of ASCII decimal digits (at most four); `None` if any byte is not a digit.
fn digits(bytes: &[u8]) -> Option<u16> {
    bytes.iter().try_fold(0u16, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u16::from(b - b'0'))
    })
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of the day `days` after 1970-01-01 (H. Hinnant's `civil_from_days`, on
/// unsigned numbers since no date precedes the epoch here).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to the date (H. Hinnant's `days_from_civil`); `year` ≥ 1970. Also
/// what the S3 store reads its answers' dates with.
pub(crate) fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How the canonical URI encodes the request's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEncoding {
    /// S3: the path is percent-decoded, then each segment URI-encoded once: `/a b` and
    /// `/a%20b` are both canonical as `/a%20b` (never `%2520`), `/a+b` as `/a%2Bb`.
    Single,
    /// Every other service: the (already encoded) path is URI-encoded again, `%` becoming `%25`.
    Double,
}

/// The per-service variations of the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningSettings {
    /// Remove `.` and `..` segments and repeated slashes before encoding (never for S3, whose
    /// keys may contain them). The URL parser already removes dot segments (WHATWG).
    pub normalize_path: bool,
    /// How the path is encoded (S3: [`PathEncoding::Single`]).
    pub path_encoding: PathEncoding,
    /// Send and sign `x-amz-content-sha256` with the payload hash (S3 requires it).
    pub content_sha256_header: bool,
    /// Sign `x-amz-security-token` (on for S3 and almost every service); when off, the token is
    /// still returned, to be added after signing.
    pub sign_session_token: bool,
}

impl SigningSettings {
    /// S3 and S3-compatible stores: path neither normalised nor double-encoded,
    /// `x-amz-content-sha256` sent.
    pub const S3: Self = Self {
        normalize_path: false,
        path_encoding: PathEncoding::Single,
        content_sha256_header: true,
        sign_session_token: true,
    };

    /// Every other AWS service: path normalised and double-encoded, no payload hash header.
    pub const OTHER_SERVICES: Self = Self {
        normalize_path: true,
        path_encoding: PathEncoding::Double,
        content_sha256_header: false,
        sign_session_token: true,
    };

    /// [`SigningSettings::S3`] for service `s3`, else [`SigningSettings::OTHER_SERVICES`].
    #[must_use]
    pub fn for_service(service: &str) -> Self {
        if service == "s3" {
            Self::S3
        } else {
            Self::OTHER_SERVICES
        }
    }
}

/// Where and when a request is signed: the credential scope's region and service, the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningParams<'a> {
    /// The region (`us-east-1`; `auto` for R2).
    pub region: &'a str,
    /// The service (`s3`).
    pub service: &'a str,
    /// The signing time (`x-amz-date`): a signature is accepted for about 15 minutes.
    pub time: SigningTime,
    /// The service's variations of the algorithm.
    pub settings: SigningSettings,
}

impl<'a> SigningParams<'a> {
    /// Parameters for `service` with its settings ([`SigningSettings::for_service`]).
    #[must_use]
    pub fn new(region: &'a str, service: &'a str, time: SigningTime) -> Self {
        Self {
            region,
            service,
            time,
            settings: SigningSettings::for_service(service),
        }
    }

    /// Parameters for S3 in `region`.
    #[must_use]
    pub fn s3(region: &'a str, time: SigningTime) -> Self {
        Self::new(region, "s3", time)
    }
}

/// The body, or what stands for it in the signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The body itself, hashed here (an empty slice for a GET).
    Bytes(&'a [u8]),
    /// S3's `UNSIGNED-PAYLOAD`: the body is not covered by the signature.
    Unsigned,
    /// The body's SHA-256 in lower-case hex, already computed ([`sha256_hex`]), or another
    /// value S3 accepts in `x-amz-content-sha256`.
    PrecomputedSha256(&'a str),
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Self::Unsigned => f.write_str("Unsigned"),
            Self::PrecomputedSha256(hash) => write!(f, "PrecomputedSha256({hash:?})"),
        }
    }
}

/// The request to sign.
#[derive(Debug, Clone, Copy)]
pub struct SignableRequest<'a> {
    /// The method (`GET`), as sent.
    pub method: &'a str,
    /// The URL, as it will be sent: its authority is the signed `host`, its path and query
    /// are canonicalised.
    pub url: &'a Url,
    /// The headers that will be sent, each signed (`Range`, `Content-Type`, …); repeated names
    /// allowed. `host`, `authorization`, `x-amz-date`, `x-amz-security-token` (and, when sent,
    /// `x-amz-content-sha256`) are ignored: the signer computes them.
    pub headers: &'a [(String, String)],
    /// The body, or its hash.
    pub payload: Payload<'a>,
}

/// A signature: the headers to set, and how they were computed.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed {
    /// The headers to set on the request (replacing any of the same name), lower-case names:
    /// `x-amz-date`, `x-amz-content-sha256` (when sent), `x-amz-security-token` (with a
    /// session token), `authorization`.
    pub headers: Vec<(String, String)>,
    /// The signature, lower-case hex.
    pub signature: String,
    /// The canonical request (step 1); contains the session token when it is signed.
    pub canonical_request: String,
    /// The string to sign (step 2).
    pub string_to_sign: String,
}

impl Signed {
    /// The value of the returned header `name` (lower-case).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name == "x-amz-security-token" {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("Signed")
            .field("headers", &headers)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// A request the signer refuses: signing it would produce a header that cannot be sent or a
/// canonical request that does not say what is sent. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The URL has no host to sign.
    #[error("the URL has no host")]
    NoHost,
    /// The method is not an HTTP token.
    #[error("invalid HTTP method {0:?}")]
    InvalidMethod(String),
    /// A header name is not an HTTP token, or its value contains control characters (a
    /// newline included).
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// The region or service is empty or contains `/`, spaces or control characters.
    #[error("invalid credential scope part {0:?}")]
    InvalidScope(String),
    /// The access key id is empty or contains `/`, `,`, spaces or control characters.
    #[error("invalid access key id")]
    InvalidAccessKeyId,
    /// The session token is empty or contains spaces or control characters.
    #[error("invalid session token")]
    InvalidSessionToken,
    /// A precomputed payload hash is empty or contains spaces or control characters.
    #[error("invalid payload hash")]
    InvalidPayloadHash,
}

/// Signs `request` with `credentials` for `params`' region, service and time.
///
/// Every header given is signed (except the ones the signer computes, see
/// [`SignableRequest::headers`]); set all of [`Signed::headers`] on the request before sending.
///
/// # Errors
/// [`SigningError`] when the URL has no host or a method, header, scope part, access key id,
/// token or payload hash could not be sent as given.
pub fn sign(
    request: &SignableRequest<'_>,
    credentials: &Credentials,
    params: &SigningParams<'_>,
) -> Result<Signed, SigningError> {
    let settings = params.settings;
    if !is_token(request.method) {
        return Err(SigningError::InvalidMethod(request.method.to_owned()));
    }
    for part in [params.region, params.service] {
        if !is_visible_ascii(part) || part.contains('/') {
            return Err(SigningError::InvalidScope(part.to_owned()));
        }
    }
    let access_key = credentials.access_key_id.as_str();
    if !is_visible_ascii(access_key) || access_key.contains(['/', ',']) {
        return Err(SigningError::InvalidAccessKeyId);
    }
    if let Some(token) = &credentials.session_token {
        if !is_visible_ascii(token) {
            return Err(SigningError::InvalidSessionToken);
        }
    }
    let host = match (request.url.host_str(), request.url.port()) {
        (None | Some(""), _) => return Err(SigningError::NoHost),
        (Some(host), None) => host.to_owned(),
        (Some(host), Some(port)) => format!("{host}:{port}"),
    };
    let payload_hash = match request.payload {
        Payload::Bytes(bytes) => sha256_hex(bytes),
        Payload::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
        Payload::PrecomputedSha256(hash) if is_visible_ascii(hash) => hash.to_owned(),
        Payload::PrecomputedSha256(_) => return Err(SigningError::InvalidPayloadHash),
    };
    let amz_date = params.time.amz_date();

    // Step 1: the canonical request.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 4);
    for (name, value) in request.headers {
        if !is_token(name) || !is_field_value(value) {
            return Err(SigningError::InvalidHeader(name.clone()));
        }
        let name = name.to_ascii_lowercase();
        let owned = SIGNER_OWNED.contains(&name.as_str())
            || (settings.content_sha256_header && name == "x-amz-content-sha256");
        if !owned {
            headers.push((name, trim_all(value)));
        }
    }
    let mut added = vec![("x-amz-date".to_owned(), amz_date.clone())];
    if settings.content_sha256_header {
        added.push(("x-amz-content-sha256".to_owned(), payload_hash.clone()));
    }
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token".to_owned(), token.clone()));
    }
    headers.push(("host".to_owned(), host));
    headers.extend(
        added
            .iter()
            .filter(|(name, _)| settings.sign_session_token || name != "x-amz-security-token")
            .cloned(),
    );
    // Stable: the values of a repeated name keep their order.
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let (canonical_headers, signed_headers) = canonical_headers(&headers);

    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        request.method,
        canonical_uri(request.url.path(), settings),
        canonical_query(request.url.query()),
    );

    // Step 2: the string to sign.
    let date = params.time.date_stamp();
    let scope = format!("{date}/{}/{}/aws4_request", params.region, params.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );

    // Step 3: the signing key and the signature.
    let secret = format!("AWS4{}", credentials.secret_access_key);
    let k_date = hmac_sha256(secret.as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, params.region.as_bytes());
    let k_service = hmac_sha256(&k_region, params.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, string_to_sign.as_bytes()));

    added.push((
        "authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, \
             Signature={signature}"
        ),
    ));
    Ok(Signed {
        headers: added,
        signature,
        canonical_request,
        string_to_sign,
    })
}

/// The canonical headers block (`name:value\n` per name, repeated names' values joined by `,`)
/// and the signed headers list (`a;b;c`) of `headers`, lower-case names sorted.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut block = String::new();
    let mut names = String::new();
    let mut previous: Option<&str> = None;
    for (name, value) in headers {
        if previous == Some(name.as_str()) {
            block.push(',');
        } else {
            if previous.is_some() {
                block.push('\n');
                names.push(';');
            }
            block.push_str(name);
            block.push(':');
            names.push_str(name);
        }
        block.push_str(value);
        previous = Some(name);
    }
    block.push('\n');
    (block, names)
}

/// The canonical URI of the URL path `path` (as the URL serialises it: percent-encoded).
fn canonical_uri(path: &str, settings: SigningSettings) -> String {
    let normalized;
    let path = if settings.normalize_path {
        normalized = normalize_path(path);
        normalized.as_str()
    } else if path.is_empty() {
        "/"
    } else {
        path
    };
    let mut out = String::with_capacity(path.len() + path.len() / 2);
    match settings.path_encoding {
        PathEncoding::Single => push_uri_encoded(&mut out, &percent_decode(path, false), true),
        PathEncoding::Double => push_uri_encoded(&mut out, path.as_bytes(), true),
    }
    out
}

/// RFC 3986 dot-segment removal, with repeated slashes merged: `//a/./b/../c//` → `/a/c/`.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let directory = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out = String::with_capacity(path.len());
    out.push('/');
    out.push_str(&segments.join("/"));
    if directory && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// The canonical query string of the URL query `query`: each parameter decoded (`+` is a
/// space, as servers read it) and URI-encoded, sorted by name then value, `k=` when empty.
fn canonical_query(query: Option<&str>) -> String {
    let Some(query) = query else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let mut encoded_name = String::with_capacity(name.len());
            push_uri_encoded(&mut encoded_name, &percent_decode(name, true), false);
            let mut encoded_value = String::with_capacity(value.len());
            push_uri_encoded(&mut encoded_value, &percent_decode(value, true), false);
            (encoded_name, encoded_value)
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(query.len() + 8);
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// AWS's `UriEncode`: every byte of `input` but the unreserved characters (`A-Z a-z 0-9 - . _
/// ~`) as `%XX` (upper-case hex), and `/` too unless `keep_slash`.
///
/// `uri_encode(key, true)` is an S3 object key as a URL path, exactly as it is signed: build
/// origin URLs with it (`a b+c/ü` → `a%20b%2Bc/%C3%BC`).
#[must_use]
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len() + input.len() / 2);
    push_uri_encoded(&mut out, input.as_bytes(), keep_slash);
    out
}

fn push_uri_encoded(out: &mut String, bytes: &[u8], keep_slash: bool) {
    const UPPER: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(UPPER[usize::from(b >> 4)]));
            out.push(char::from(UPPER[usize::from(b & 0xf)]));
        }
    }
}

/// The bytes `text` percent-encodes (`%XX` decoded; a `%` not followed by two hex digits kept
/// as is); `+` is a space when `plus_is_space` (a query), a plus otherwise (a path).
fn percent_decode(text: &str, plus_is_space: bool) -> Vec<u8> {
    fn hex_value(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let high = bytes.get(i + 1).copied().and_then(hex_value);
            let low = bytes.get(i + 2).copied().and_then(hex_value);
            if let (Some(high), Some(low)) = (high, low) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    out
}

/// The value with leading and trailing spaces (and tabs) removed and each inner run made one
/// space (AWS's `Trimall`).
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split([' ', '\t']).filter(|word| !word.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// An HTTP token (RFC 9110 `tchar`s): a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A header value that can be sent as one line: no control character but the tab.
fn is_field_value(text: &str) -> bool {
    text.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Non-empty printable ASCII without spaces.
fn is_visible_ascii(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic())
}

/// The SHA-256 of `data` in lower-case hex (an `x-amz-content-sha256` value).
#[must_use]
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// HMAC-SHA256 (RFC 2104). The `hmac` crate is given a whole block as the key (RFC 2104's own
/// first step: a key longer than the block is hashed, a shorter one zero-padded), so that its
/// infallible constructor applies.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    const LOWER: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(LOWER[usize::from(b >> 4)]));
        out.push(char::from(LOWER[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example key pair of the Amazon S3 API Reference's Signature Version 4 examples
    /// ("Examples: Signature Calculations", header-based authentication).
    fn s3_docs_credentials() -> Credentials {
        Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
    }

    fn s3_docs_params() -> SigningParams<'static> {
        SigningParams::s3("us-east-1", SigningTime::parse("20130524T000000Z").unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sign_s3(method: &str, url: &str, hs: &[(&str, &str)], payload: Payload<'_>) -> Signed {
        let url = Url::parse(url).unwrap();
        let hs = headers(hs);
        let request = SignableRequest {
            method,
            url: &url,
            headers: &hs,
            payload,
        };
        sign(&request, &s3_docs_credentials(), &s3_docs_params()).unwrap()
    }

    /// The second line of a canonical request.
    fn canonical_path(signed: &Signed) -> &str {
        signed.canonical_request.lines().nth(1).unwrap()
    }

    #[test]
    fn s3_get_object_with_range_matches_the_published_example() {
        let signed = sign_s3(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[("Range", "bytes=0-9")],
            Payload::Bytes(b""),
        );
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            signed.canonical_request,
            format!(
                "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
                 x-amz-content-sha256:{empty}\nx-amz-date:20130524T000000Z\n\n\
                 host;range;x-amz-content-sha256;x-amz-date\n{empty}"
            )
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            signed.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(
            signed.headers,
            headers(&[
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-content-sha256", empty),
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/\
                     aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
                     Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                ),
            ])
        );
    }

    #[test]
    fn s3_get_with_range_and_unsigned_payload() {
        let signed = sign_s3(
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[("Range", "bytes=0-9")],
            Payload::Unsigned,
        );
        assert_eq!(
            signed.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:UNSIGNED-PAYLOAD\nx-amz-date:20130524T000000Z\n\n\
             host;range;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"
        );
        assert_eq!(
            signed.header("x-amz-content-sha256"),
            Some(UNSIGNED_PAYLOAD)
        );
        let authorization = signed.header("authorization").unwrap();
        assert!(authorization
            .contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature="));
        assert!(authorization.ends_with(&signed.signature));
        // Not the signature of the hashed empty body (the published example).
        assert_ne!(
            signed.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn s3_put_with_a_payload_hash_matches_the_published_example() {
        let body = b"Welcome to Amazon S3.";
        let hash = sha256_hex(body);
        assert_eq!(
            hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        let hs = [
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ];
        let url = "https://examplebucket.s3.amazonaws.com/test$file.text";
        let signed = sign_s3("PUT", url, &hs, Payload::PrecomputedSha256(&hash));
        assert_eq!(canonical_path(&signed), "/test%24file.text");
        assert_eq!(
            signed.signature,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert!(signed.header("authorization").unwrap().contains(
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
        ));
        assert_eq!(signed.header("x-amz-content-sha256"), Some(hash.as_str()));
        // Hashing the bytes here signs the same.
        assert_eq!(sign_s3("PUT", url, &hs, Payload::Bytes(body)), signed);
    }

    #[test]
    fn s3_queries_match_the_published_examples() {
        // `?lifecycle`: a parameter without a value is canonical as `lifecycle=`.
        let lifecycle = sign_s3(
            "GET",
            "https://examplebucket.s3.amazonaws.com/?lifecycle",
            &[],
            Payload::Bytes(b""),
        );
        assert_eq!(
            lifecycle.canonical_request.lines().nth(2),
            Some("lifecycle=")
        );
        assert_eq!(
            lifecycle.signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        let list = sign_s3(
            "GET",
            "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J",
            &[],
            Payload::Bytes(b""),
        );
        assert_eq!(
            list.signature,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn an_s3_key_is_encoded_once_per_segment_and_never_normalised() {
        let key = "data/my dataset/a+b/ünï…/x//y/0.0";
        let encoded = "data/my%20dataset/a%2Bb/%C3%BCn%C3%AF%E2%80%A6/x//y/0.0";
        assert_eq!(uri_encode(key, true), encoded);
        assert_eq!(
            uri_encode(key, false),
            encoded.replace('/', "%2F"),
            "keep_slash off encodes the separators too"
        );
        let built = format!("https://bucket.s3.amazonaws.com/{}", uri_encode(key, true));
        let signed = sign_s3("GET", &built, &[], Payload::Unsigned);
        let path = format!("/{encoded}");
        assert_eq!(Url::parse(&built).unwrap().path(), path, "what is sent…");
        assert_eq!(canonical_path(&signed), path, "…is what is signed");
        // The same key written raw, or with its spaces already encoded, signs the same: `%20`
        // is not encoded again (no `%2520`), a raw `+` is a plus (`%2B`), `//` stays.
        for url in [
            "https://bucket.s3.amazonaws.com/data/my dataset/a+b/ünï…/x//y/0.0",
            "https://bucket.s3.amazonaws.com/data/my%20dataset/a%2Bb/ünï…/x//y/0.0",
        ] {
            let other = sign_s3("GET", url, &[], Payload::Unsigned);
            assert_eq!(canonical_path(&other), path, "{url}");
            assert_eq!(other.signature, signed.signature, "{url}");
        }
        // An encoded `%` is kept encoded once.
        let percent = sign_s3(
            "GET",
            "https://bucket.s3.amazonaws.com/100%25/x",
            &[],
            Payload::Unsigned,
        );
        assert_eq!(canonical_path(&percent), "/100%25/x");
    }

    #[test]
    fn other_services_double_encode_and_normalise() {
        let url = Url::parse("https://example.amazonaws.com//a%20b//c+d/").unwrap();
        let time = SigningTime::parse("20150830T123600Z").unwrap();
        let request = SignableRequest {
            method: "GET",
            url: &url,
            headers: &[],
            payload: Payload::Bytes(b""),
        };
        let creds = Credentials::new("AKIDEXAMPLE", "secret");
        let signed = sign(
            &request,
            &creds,
            &SigningParams::new("us-east-1", "iam", time),
        )
        .unwrap();
        assert_eq!(canonical_path(&signed), "/a%2520b/c%2Bd/");
        assert_eq!(signed.header("x-amz-content-sha256"), None);
    }

    #[test]
    fn the_query_is_decoded_sorted_and_encoded() {
        let signed = sign_s3(
            "GET",
            "https://b.s3.amazonaws.com/?prefix=a+b%2Fc&list-type=2&k&a=2&a=1&sp=%20~*",
            &[],
            Payload::Unsigned,
        );
        assert_eq!(
            signed.canonical_request.lines().nth(2),
            Some("a=1&a=2&k=&list-type=2&prefix=a%20b%2Fc&sp=%20~%2A")
        );
    }

    #[test]
    fn headers_are_trimmed_lowercased_sorted_and_joined() {
        let signed = sign_s3(
            "GET",
            "https://b.s3.amazonaws.com/k",
            &[
                ("X-Custom", "  two   words\there "),
                ("x-amz-meta-b", "2"),
                ("X-Amz-Meta-B", "1"),
                ("Accept", ""),
            ],
            Payload::Unsigned,
        );
        let lines: Vec<&str> = signed.canonical_request.lines().collect();
        assert_eq!(
            lines[3..9],
            [
                "accept:",
                "host:b.s3.amazonaws.com",
                "x-amz-content-sha256:UNSIGNED-PAYLOAD",
                "x-amz-date:20130524T000000Z",
                "x-amz-meta-b:2,1",
                "x-custom:two words here",
            ]
        );
        assert_eq!(
            lines[10],
            "accept;host;x-amz-content-sha256;x-amz-date;x-amz-meta-b;x-custom"
        );
    }

    #[test]
    fn headers_the_signer_computes_are_not_taken_from_the_request() {
        let plain = sign_s3(
            "GET",
            "https://b.s3.amazonaws.com:8443/k",
            &[],
            Payload::Unsigned,
        );
        assert!(plain
            .canonical_request
            .contains("\nhost:b.s3.amazonaws.com:8443\n"));
        let given = sign_s3(
            "GET",
            "https://b.s3.amazonaws.com:8443/k",
            &[
                ("Host", "elsewhere.example"),
                ("Authorization", "Bearer x"),
                ("X-Amz-Date", "20000101T000000Z"),
                ("x-amz-content-sha256", "abc"),
                ("x-amz-security-token", "t"),
            ],
            Payload::Unsigned,
        );
        assert_eq!(given, plain);
    }

    #[test]
    fn a_session_token_is_sent_and_signed_unless_told_otherwise() {
        let url = Url::parse("https://b.s3.amazonaws.com/k").unwrap();
        let request = SignableRequest {
            method: "GET",
            url: &url,
            headers: &[],
            payload: Payload::Unsigned,
        };
        let creds = s3_docs_credentials().with_session_token("TOKEN+/=");
        let mut params = s3_docs_params();
        let signed = sign(&request, &creds, &params).unwrap();
        assert_eq!(signed.header("x-amz-security-token"), Some("TOKEN+/="));
        assert!(signed
            .canonical_request
            .contains("\nx-amz-security-token:TOKEN+/=\n"));
        assert!(signed
            .header("authorization")
            .unwrap()
            .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,"));

        params.settings.sign_session_token = false;
        let unsigned = sign(&request, &creds, &params).unwrap();
        assert_eq!(unsigned.header("x-amz-security-token"), Some("TOKEN+/="));
        assert!(!unsigned.canonical_request.contains("TOKEN"));
    }

    #[test]
    fn debug_output_never_shows_the_secret_or_the_token() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let token = "FwoGZXIvYXdzEXAMPLETOKEN";
        let creds = s3_docs_credentials().with_session_token(token);
        let shown = format!("{creds:?} {creds:#?}");
        assert!(shown.contains("AKIAIOSFODNN7EXAMPLE"), "{shown}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains(token), "{shown}");
        assert!(!shown.contains("wJalr"), "{shown}");

        let url = Url::parse("https://b.s3.amazonaws.com/k").unwrap();
        let request = SignableRequest {
            method: "GET",
            url: &url,
            headers: &[],
            payload: Payload::Bytes(b"body"),
        };
        let signed = sign(&request, &creds, &s3_docs_params()).unwrap();
        let shown = format!("{signed:?} {request:?} {:?}", s3_docs_params());
        assert!(shown.contains(&signed.signature), "{shown}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains(token), "{shown}");
    }

    #[test]
    fn requests_that_cannot_be_sent_as_signed_are_refused() {
        let url = Url::parse("https://b.s3.amazonaws.com/k").unwrap();
        let creds = s3_docs_credentials();
        let params = s3_docs_params();
        let attempt = |method: &str, hs: &[(&str, &str)], payload: Payload<'_>| {
            let hs = headers(hs);
            let request = SignableRequest {
                method,
                url: &url,
                headers: &hs,
                payload,
            };
            sign(&request, &creds, &params)
        };
        assert_eq!(
            attempt("GET", &[("X-A", "one\r\nX-B: two")], Payload::Unsigned),
            Err(SigningError::InvalidHeader("X-A".to_owned()))
        );
        assert_eq!(
            attempt("GET", &[("bad name", "v")], Payload::Unsigned),
            Err(SigningError::InvalidHeader("bad name".to_owned()))
        );
        assert_eq!(
            attempt("GE T", &[], Payload::Unsigned),
            Err(SigningError::InvalidMethod("GE T".to_owned()))
        );
        assert_eq!(
            attempt("GET", &[], Payload::PrecomputedSha256("ab\ncd")),
            Err(SigningError::InvalidPayloadHash)
        );

        let no_host = Url::parse("data:text/plain,x").unwrap();
        let request = SignableRequest {
            method: "GET",
            url: &no_host,
            headers: &[],
            payload: Payload::Unsigned,
        };
        assert_eq!(sign(&request, &creds, &params), Err(SigningError::NoHost));

        let request = SignableRequest {
            method: "GET",
            url: &url,
            headers: &[],
            payload: Payload::Unsigned,
        };
        let bad_region = SigningParams::s3("us/east", params.time);
        assert_eq!(
            sign(&request, &creds, &bad_region),
            Err(SigningError::InvalidScope("us/east".to_owned()))
        );
        let bad_key = Credentials::new("AKID/X", "s");
        assert_eq!(
            sign(&request, &bad_key, &params),
            Err(SigningError::InvalidAccessKeyId)
        );
        let bad_token = Credentials::new("AKID", "s").with_session_token("a\nb");
        assert_eq!(
            sign(&request, &bad_token, &params),
            Err(SigningError::InvalidSessionToken)
        );
    }

    #[test]
    fn signing_time_from_epoch_millis_and_back() {
        let t = SigningTime::from_epoch_millis(1_440_938_160_999).unwrap();
        assert_eq!(t.amz_date(), "20150830T123600Z");
        assert_eq!(t.date_stamp(), "20150830");
        assert_eq!(t.to_string(), "20150830T123600Z");
        assert_eq!(t.epoch_millis(), 1_440_938_160_000);
        assert_eq!(SigningTime::parse("20150830T123600Z"), Some(t));

        let epoch = SigningTime::from_epoch_millis(0).unwrap();
        assert_eq!(epoch.amz_date(), "19700101T000000Z");
        let leap = SigningTime::from_epoch_millis(1_709_251_199_000).unwrap();
        assert_eq!(leap.amz_date(), "20240229T235959Z");
        let last = SigningTime::from_epoch_millis(253_402_300_799_000).unwrap();
        assert_eq!(last.amz_date(), "99991231T235959Z");
        assert_eq!(SigningTime::from_epoch_millis(253_402_300_800_000), None);
        assert_eq!(SigningTime::from_epoch_millis(u64::MAX), None);

        // Every day boundary of four centuries round-trips through text and milliseconds.
        for day in (0..146_097u64).step_by(7) {
            let ms = day * 86_400_000 + 3_723_000;
            let t = SigningTime::from_epoch_millis(ms).unwrap();
            assert_eq!(t.epoch_millis(), ms, "{t}");
            assert_eq!(SigningTime::parse(&t.amz_date()), Some(t));
        }

        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20150830t123600Z",
            "20151330T123600Z",
            "20150230T123600Z",
            "20230229T000000Z",
            "20150830T243600Z",
            "20150830T126000Z",
            "20150830T123660Z",
            "19691231T235959Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
        ] {
            assert_eq!(SigningTime::parse(bad), None, "{bad}");
        }
        assert!(SigningTime::parse("20000229T000000Z").is_some());
        assert!(SigningTime::parse("21000229T000000Z").is_none());
    }

    #[test]
    fn hmac_matches_rfc_4231_short_and_longer_than_a_block_keys() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 64], b"Hi There")),
            hex(&{
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[0x0b; 64]).unwrap();
                mac.update(b"Hi There");
                <[u8; 32]>::from(mac.finalize().into_bytes())
            })
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2fb%2Fc", false), b"a/b/c");
        assert_eq!(percent_decode("100%", false), b"100%");
        assert_eq!(percent_decode("%zz%4", false), b"%zz%4");
        assert_eq!(percent_decode("a+b", false), b"a+b");
        assert_eq!(percent_decode("a+b", true), b"a b");
        assert_eq!(normalize_path("//a/./b/../c//"), "/a/c/");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/.."), "/");
        assert_eq!(normalize_path(""), "/");
    }
}
