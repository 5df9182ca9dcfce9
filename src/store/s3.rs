//! An S3-compatible chunk store (AWS S3, `MinIO`, Ceph, Wasabi, R2's S3 API, …) over any HTTP
//! transport: requests signed with `SigV4`, answers mapped onto [`StoreError`]'s kinds, and
//! retryable failures retried a bounded number of times with backoff.
//!
//! Sans-IO apart from the [`S3Transport`] it is given: the glue sends over `fetch` (streaming
//! bodies to the client), the native tests over a blocking client against a real S3 server.
//! Operations: `GET` (with `Range`), `PUT` (payload hashed), `DELETE`, `DeleteObjects` (batches
//! of up to 1,000 with `Content-MD5`, which S3 requires), `ListObjectsV2` with continuation
//! tokens.

use std::fmt::Write as _;
use std::rc::Rc;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use quick_xml::events::Event;
use quick_xml::Reader;
use url::Url;

use crate::clock::Clock;
use crate::origin::sigv4::{
    self, Credentials, Payload, SignableRequest, SigningParams, SigningTime,
};
use crate::store::{ChunkStore, ListedObject, ObjectMeta, ObjectPage, StoreError, StoredObject};

/// Where the bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// The endpoint (`https://s3.us-west-2.amazonaws.com`, `http://127.0.0.1:9000`).
    pub endpoint: Url,
    /// The signing region (`us-west-2`; `auto` for R2).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`) or virtual-hosted (`bucket.endpoint/key`).
    pub path_style: bool,
}

/// One signed request to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Request {
    /// `GET`, `PUT`, `POST`, `DELETE`.
    pub method: &'static str,
    /// The whole URL.
    pub url: String,
    /// Every header to send, signature included.
    pub headers: Vec<(String, String)>,
    /// The body (empty for `GET` and `DELETE`), shared by the tries of one call: a chunk is
    /// not copied per retry.
    pub body: Rc<[u8]>,
}

/// The store's HTTP answer, its body not read yet.
#[derive(Debug)]
pub struct S3Answer<B> {
    /// HTTP status.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The unread body.
    pub body: B,
}

impl<B> S3Answer<B> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends requests to an S3-compatible server.
#[allow(async_fn_in_trait)]
pub trait S3Transport {
    /// An answer's unread body (a JS `Response` in the glue, so that it can stream).
    type Body: 'static;

    /// Sends `request` and returns whatever HTTP answer came back, any status.
    ///
    /// Contract: `Err` only when there is no HTTP answer (network failure, timeout), with a
    /// message that names no secret. Not retried here.
    async fn send(&self, request: &S3Request) -> Result<S3Answer<Self::Body>, String>;

    /// Reads a body into memory.
    ///
    /// # Errors
    /// The body could not be read (connection lost, timeout).
    async fn read(&self, body: Self::Body) -> Result<Vec<u8>, String>;
}

/// How often a retryable failure of a background call (put, delete, list) is retried, and the
/// first pause (quadrupled each time). Reads are not retried: a reader whose storage read
/// fails goes to the origin at once, which is faster than waiting out retries.
const RETRIES: u32 = 2;
const FIRST_BACKOFF_MS: u64 = 100;
/// The most keys a `ListObjectsV2` page may ask for.
const MAX_LIST_KEYS: u32 = 1_000;

/// The header prefix of S3 user metadata ([`ObjectMeta`]).
const USER_META: &str = "x-amz-meta-";

/// A chunk store in an S3-compatible bucket.
pub struct S3Store<T, C> {
    transport: T,
    clock: C,
    config: S3Config,
    credentials: Credentials,
}

impl<T, C> std::fmt::Debug for S3Store<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("config", &self.config)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl<T: Clone, C: Clone> Clone for S3Store<T, C> {
    fn clone(&self) -> Self {
        Self {
            transport: self.transport.clone(),
            clock: self.clock.clone(),
            config: self.config.clone(),
            credentials: self.credentials.clone(),
        }
    }
}

impl<T: S3Transport, C: Clock> S3Store<T, C> {
    /// A store in `config`'s bucket, signing with `credentials` at `clock`'s time.
    pub fn new(transport: T, clock: C, config: S3Config, credentials: Credentials) -> Self {
        Self {
            transport,
            clock,
            config,
            credentials,
        }
    }

    /// The URL of `key` (empty: the bucket itself), each path segment percent-encoded once.
    fn url(&self, key: &str, query: &[(&str, &str)]) -> Result<Url, StoreError> {
        let mut url = self.config.endpoint.clone();
        if !self.config.path_style {
            let host = url.host_str().unwrap_or_default().to_owned();
            url.set_host(Some(&format!("{}.{host}", self.config.bucket)))
                .map_err(|e| StoreError::Fatal(format!("S3 bucket host: {e}")))?;
        }
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| StoreError::Fatal("S3 endpoint cannot take a path".into()))?;
            segments.pop_if_empty();
            if self.config.path_style {
                segments.push(&self.config.bucket);
            }
            if !key.is_empty() {
                segments.extend(key.split('/'));
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Signs a request for `url`.
    fn signed(
        &self,
        method: &'static str,
        url: &Url,
        mut headers: Vec<(String, String)>,
        body: Rc<[u8]>,
    ) -> Result<S3Request, StoreError> {
        let time = SigningTime::from_epoch_millis(self.clock.now_ms())
            .ok_or_else(|| StoreError::Fatal("S3 signing: the clock is out of range".into()))?;
        let params = SigningParams::s3(&self.config.region, time);
        let signed = sigv4::sign(
            &SignableRequest {
                method,
                url,
                headers: &headers,
                payload: Payload::Bytes(&body),
            },
            &self.credentials,
            &params,
        )
        .map_err(|e| StoreError::Fatal(format!("S3 signing: {e}")))?;
        // The signer's headers (host, date, payload hash, authorization) replace any of theirs.
        headers.retain(|(name, _)| signed.header(name).is_none());
        headers.extend(signed.headers);
        Ok(S3Request {
            method,
            url: url.to_string(),
            headers,
            body,
        })
    }

    /// Sends the request `build` makes (signed anew for each try, so its date stays current),
    /// retrying retryable failures up to `retries` times with backoff. An answer with one of `ok` statuses is
    /// returned; any other status becomes its [`StoreError`].
    async fn exchange(
        &self,
        (what, retries): (&str, u32),
        ok: &[u16],
        build: impl Fn() -> Result<S3Request, StoreError>,
    ) -> Result<S3Answer<T::Body>, StoreError> {
        let mut backoff = FIRST_BACKOFF_MS;
        let mut tries = 0;
        loop {
            let request = build()?;
            let error = match self.transport.send(&request).await {
                Ok(answer) if ok.contains(&answer.status) => return Ok(answer),
                Ok(answer) => {
                    let status = answer.status;
                    let body = self.transport.read(answer.body).await.unwrap_or_default();
                    let code = error_code(&body);
                    StoreError::from_s3(what, status, code.as_deref())
                }
                Err(e) => StoreError::Retryable(format!("S3 {what}: {e}")),
            };
            if !error.is_retryable() || tries == retries {
                return Err(error);
            }
            tries += 1;
            self.clock.sleep(backoff).await;
            backoff *= 4;
        }
    }

    /// Opens `key`, or `range` of it.
    async fn open(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Option<StoredObject<T::Body>>, StoreError> {
        let url = self.url(key, &[])?;
        let headers = match range {
            Some((offset, length)) => vec![(
                "range".to_owned(),
                format!(
                    "bytes={offset}-{}",
                    offset.saturating_add(length.saturating_sub(1))
                ),
            )],
            None => Vec::new(),
        };
        let what = format!("get {key}");
        let answer = self
            .exchange((&what, 0), &[200, 206, 404, 416], || {
                self.signed("GET", &url, headers.clone(), Rc::from([]))
            })
            .await?;
        match answer.status {
            404 => return Ok(None),
            // A range past the end of an object that exists: there are no such bytes, and the
            // answer's body (an XML error) must never pass for them.
            416 => {
                return Err(StoreError::Retryable(format!(
                    "S3 {what}: the range is past the end of the object ({})",
                    answer.header("content-range").unwrap_or("size unknown")
                )))
            }
            _ => {}
        }
        let size = match (answer.status, answer.header("content-range")) {
            (206, Some(range)) => content_range_total(range),
            _ => answer.header("content-length").and_then(|v| v.parse().ok()),
        }
        .ok_or_else(|| StoreError::Retryable(format!("S3 {what}: no object size in the answer")))?;
        let uploaded_ms = last_modified(&answer);
        let meta = ObjectMeta::read(|name| {
            answer
                .header(&format!("{USER_META}{name}"))
                .map(str::to_owned)
        });
        Ok(Some(StoredObject {
            size,
            uploaded_ms,
            meta,
            body: answer.body,
        }))
    }
}

/// When the answer says the object was written (`Last-Modified`), ms since the epoch; 0 when it
/// does not say.
fn last_modified<B>(answer: &S3Answer<B>) -> u64 {
    answer
        .header("last-modified")
        .and_then(http_date_ms)
        .unwrap_or(0)
}

impl<T: S3Transport, C: Clock> ChunkStore for S3Store<T, C> {
    type Body = T::Body;

    async fn put(&self, key: &str, bytes: Vec<u8>, meta: &ObjectMeta) -> Result<(), StoreError> {
        let url = self.url(key, &[])?;
        let bytes: Rc<[u8]> = Rc::from(bytes);
        let mut headers = vec![
            (
                "content-type".to_owned(),
                "application/octet-stream".to_owned(),
            ),
            ("content-length".to_owned(), bytes.len().to_string()),
        ];
        // User metadata, signed with the rest (SigV4 signs every header given).
        headers.extend(
            meta.pairs()
                .into_iter()
                .map(|(name, value)| (format!("{USER_META}{name}"), value)),
        );
        self.exchange((&format!("put {key}"), RETRIES), &[200], || {
            self.signed("PUT", &url, headers.clone(), Rc::clone(&bytes))
        })
        .await
        .map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject<T::Body>>, StoreError> {
        self.open(key, None).await
    }

    async fn get_range(
        &self,
        key: &str,
        offset: u64,
        length: u64,
    ) -> Result<Option<StoredObject<T::Body>>, StoreError> {
        self.open(key, Some((offset, length))).await
    }

    async fn read_body(&self, body: T::Body) -> Result<Vec<u8>, StoreError> {
        self.transport
            .read(body)
            .await
            .map_err(|e| StoreError::Retryable(format!("S3 read: {e}")))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let url = self.url(key, &[])?;
        // S3 answers 204 whether or not there was an object.
        self.exchange(
            (&format!("delete {key}"), RETRIES),
            &[200, 204, 404],
            || self.signed("DELETE", &url, Vec::new(), Rc::from([])),
        )
        .await
        .map(|_| ())
    }

    async fn delete_many(&self, keys: &[String]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let url = self.url("", &[("delete", "")])?;
        let body: Rc<[u8]> = Rc::from(delete_objects_body(keys));
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        let headers = vec![
            ("content-type".to_owned(), "application/xml".to_owned()),
            ("content-md5".to_owned(), md5),
        ];
        let what = format!("delete {} objects", keys.len());
        let answer = self
            .exchange((&what, RETRIES), &[200], || {
                self.signed("POST", &url, headers.clone(), Rc::clone(&body))
            })
            .await?;
        let result = self
            .transport
            .read(answer.body)
            .await
            .map_err(|e| StoreError::Retryable(format!("S3 {what}: {e}")))?;
        match delete_errors(&result) {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => Err(StoreError::Retryable(format!(
                "S3 {what}: {} not deleted, the first {} ({})",
                errors.len(),
                errors[0].0,
                errors[0].1
            ))),
            Err(e) => Err(StoreError::Retryable(format!("S3 {what}: {e}"))),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ObjectPage, StoreError> {
        let max = limit.clamp(1, MAX_LIST_KEYS).to_string();
        let mut query = vec![("list-type", "2"), ("prefix", prefix), ("max-keys", &max)];
        if let Some(cursor) = cursor {
            query.push(("continuation-token", cursor));
        }
        let url = self.url("", &query)?;
        let what = format!("list {prefix}");
        let answer = self
            .exchange((&what, RETRIES), &[200], || {
                self.signed("GET", &url, Vec::new(), Rc::from([]))
            })
            .await?;
        let xml = self
            .transport
            .read(answer.body)
            .await
            .map_err(|e| StoreError::Retryable(format!("S3 {what}: {e}")))?;
        list_page(&xml).map_err(|e| StoreError::Retryable(format!("S3 {what}: {e}")))
    }
}

/// The `DeleteObjects` body: every key, quiet (only failures are answered).
fn delete_objects_body(keys: &[String]) -> Vec<u8> {
    let mut xml = String::from("<Delete><Quiet>true</Quiet>");
    for key in keys {
        let _ = write!(xml, "<Object><Key>{}</Key></Object>", xml_escape(key));
    }
    xml.push_str("</Delete>");
    xml.into_bytes()
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The text of every element named in `wanted`, in document order, as `(path, text)`, where
/// path is the element's ancestry joined by `/` (`ListBucketResult/Contents/Key`). Bounded by
/// the body, which the transport bounds.
fn elements(xml: &[u8], wanted: &[&str]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(xml).map_err(|e| format!("XML is not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut content = String::new();
    let mut out = Vec::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                path.push(start.local_name().as_ref().to_owned());
                content.clear();
            }
            Ok(Event::End(_)) => {
                let joined = path.join("/");
                if wanted.contains(&joined.as_str()) {
                    out.push((joined, std::mem::take(&mut content)));
                }
                content.clear();
                path.pop();
            }
            Ok(Event::Text(text)) => content.push_str(&text.xml10_content()),
            Ok(Event::CData(data)) => content.push_str(&data.into_inner()),
            Ok(Event::GeneralRef(reference)) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => match reference.into_inner().as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("unknown XML entity &{other};")),
                    },
                    Err(e) => return Err(format!("XML character reference: {e}")),
                };
                content.push(resolved);
            }
            Ok(Event::Eof) => return Ok(out),
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "malformed XML at {}: {e}",
                    reader.buffer_position()
                ))
            }
        }
    }
}

/// The `<Code>` of an S3 error body, when it is one.
fn error_code(xml: &[u8]) -> Option<String> {
    elements(xml, &["Error/Code"])
        .ok()?
        .into_iter()
        .next()
        .map(|(_, code)| code)
}

/// The keys a `DeleteObjects` answer reports as not deleted, with their codes.
fn delete_errors(xml: &[u8]) -> Result<Vec<(String, String)>, String> {
    let found = elements(xml, &["DeleteResult/Error/Key", "DeleteResult/Error/Code"])?;
    let mut errors: Vec<(String, String)> = Vec::new();
    for (path, text) in found {
        if path.ends_with("/Key") {
            errors.push((text, String::new()));
        } else if let Some(last) = errors.last_mut() {
            last.1 = text;
        }
    }
    Ok(errors)
}

/// One `ListObjectsV2` page.
fn list_page(xml: &[u8]) -> Result<ObjectPage, String> {
    let found = elements(
        xml,
        &[
            "ListBucketResult/Contents/Key",
            "ListBucketResult/Contents/LastModified",
            "ListBucketResult/IsTruncated",
            "ListBucketResult/NextContinuationToken",
        ],
    )?;
    let mut page = ObjectPage::default();
    let mut truncated = false;
    for (path, text) in found {
        match path.rsplit('/').next() {
            Some("Key") => page.objects.push(ListedObject {
                key: text,
                uploaded_ms: 0,
            }),
            Some("LastModified") => {
                // Whole seconds, as reads see it (`Last-Modified` has no milliseconds): one
                // object has one upload time whichever way it is looked at.
                let ms = iso8601_ms(&text).ok_or_else(|| format!("LastModified {text:?}"))?;
                let ms = ms - ms % 1000;
                if let Some(last) = page.objects.last_mut() {
                    last.uploaded_ms = ms;
                }
            }
            Some("IsTruncated") => truncated = text == "true",
            Some("NextContinuationToken") => page.next_cursor = Some(text),
            _ => {}
        }
    }
    if !truncated {
        page.next_cursor = None;
    } else if page.next_cursor.is_none() {
        return Err("a truncated listing without a continuation token".into());
    }
    Ok(page)
}

/// The total of `bytes a-b/total`.
fn content_range_total(value: &str) -> Option<u64> {
    value.rsplit('/').next()?.trim().parse().ok()
}

/// Milliseconds since the epoch of a UTC date and time, when valid and not before 1970.
fn epoch_ms(year: u64, month: u32, day: u32, hms: (u32, u32, u32), ms: u32) -> Option<u64> {
    let (hour, minute, second) = hms;
    if year < 1970
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = sigv4::days_from_civil(year, u64::from(month), u64::from(day));
    let seconds =
        days * 86_400 + u64::from(hour) * 3_600 + u64::from(minute) * 60 + u64::from(second);
    seconds.checked_mul(1000)?.checked_add(u64::from(ms))
}

/// `2026-12-01T17:00:00.000Z` (the listing's `LastModified`).
fn iso8601_ms(text: &str) -> Option<u64> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-');
    let (year, month, day) = (
        date.next()?.parse().ok()?,
        date.next()?.parse().ok()?,
        date.next()?.parse().ok()?,
    );
    let (time, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time = time.split(':');
    let hms = (
        time.next()?.parse().ok()?,
        time.next()?.parse().ok()?,
        time.next()?.parse().ok()?,
    );
    let digits: String = fraction.chars().take(3).collect();
    let ms = format!("{digits:0<3}").parse().ok()?;
    epoch_ms(year, month, day, hms, ms)
}

/// `Tue, 01 Dec 2026 17:00:00 GMT` (`Last-Modified`, the IMF-fixdate of RFC 9110).
fn http_date_ms(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace().skip(1);
    let day = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = parts.next()?.parse().ok()?;
    let mut time = parts.next()?.split(':');
    let hms = (
        time.next()?.parse().ok()?,
        time.next()?.parse().ok()?,
        time.next()?.parse().ok()?,
    );
    (parts.next()? == "GMT").then_some(())?;
    epoch_ms(year, month, day, hms, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dates of both formats S3 uses.
    #[test]
    fn dates() {
        assert_eq!(iso8601_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            iso8601_ms("2026-12-01T17:00:00.123Z"),
            Some(1_796_144_400_123)
        );
        assert_eq!(iso8601_ms("2026-12-01T17:00:00Z"), Some(1_796_144_400_000));
        assert_eq!(
            http_date_ms("Tue, 01 Dec 2026 17:00:00 GMT"),
            Some(1_796_144_400_000)
        );
        assert_eq!(
            http_date_ms("Thu, 29 Feb 2024 23:59:59 GMT"),
            Some(1_709_251_199_000)
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-12-01 17:00:00",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(iso8601_ms(bad), None, "{bad}");
        }
        for bad in [
            "",
            "Tue, 01 Foo 2026 17:00:00 GMT",
            "Tue, 01 Dec 2026 17:00:00 PST",
        ] {
            assert_eq!(http_date_ms(bad), None, "{bad}");
        }
    }

    /// A listing page, its continuation token, and the last page.
    #[test]
    fn listing_pages() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>zec/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>zec/a&amp;b</Key><LastModified>2026-12-01T17:00:00.000Z</LastModified><Size>3</Size></Contents>
  <Contents><Key>zec/c</Key><LastModified>2026-12-01T17:00:01.000Z</LastModified><Size>4</Size></Contents>
  <Contents><Key>zec/d</Key><LastModified>2026-12-01T17:00:02.999Z</LastModified></Contents>
  <NextContinuationToken>tok/1=</NextContinuationToken>
</ListBucketResult>"#;
        let page = list_page(xml).unwrap();
        assert_eq!(
            page.objects,
            vec![
                ListedObject {
                    key: "zec/a&b".into(),
                    uploaded_ms: 1_796_144_400_000
                },
                ListedObject {
                    key: "zec/c".into(),
                    uploaded_ms: 1_796_144_401_000
                },
                ListedObject {
                    key: "zec/d".into(),
                    uploaded_ms: 1_796_144_402_000
                },
            ]
        );
        assert_eq!(page.next_cursor.as_deref(), Some("tok/1="));
        let last = br"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
        assert_eq!(list_page(last).unwrap(), ObjectPage::default());
        let broken = br"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(list_page(broken).is_err());
        assert!(list_page(b"<ListBucketResult><Contents>").is_ok_and(|p| p.objects.is_empty()));
        assert!(list_page(b"<a></b>").is_err());
    }

    /// Error codes and the keys a batch delete could not delete.
    #[test]
    fn errors_and_delete_results() {
        let error = br"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>";
        assert_eq!(error_code(error).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(error_code(b"not xml <"), None);
        assert_eq!(error_code(b""), None);
        let result = br"<DeleteResult><Deleted><Key>a</Key></Deleted>
            <Error><Key>b</Key><Code>AccessDenied</Code></Error></DeleteResult>";
        assert_eq!(
            delete_errors(result).unwrap(),
            vec![("b".to_owned(), "AccessDenied".to_owned())]
        );
        assert_eq!(
            delete_objects_body(&["a<&>".into(), "b".into()]),
            b"<Delete><Quiet>true</Quiet><Object><Key>a&lt;&amp;&gt;</Key></Object><Object><Key>b</Key></Object></Delete>"
        );
    }

    /// A transport answering from a script, recording the requests.
    struct Scripted {
        answers: std::cell::RefCell<Vec<(u16, &'static str)>>,
        sent: std::cell::RefCell<Vec<S3Request>>,
    }

    impl S3Transport for &Scripted {
        type Body = Vec<u8>;
        async fn send(&self, request: &S3Request) -> Result<S3Answer<Vec<u8>>, String> {
            self.sent.borrow_mut().push(request.clone());
            let (status, body) = self.answers.borrow_mut().remove(0);
            Ok(S3Answer {
                status,
                headers: vec![("content-length".into(), body.len().to_string())],
                body: body.as_bytes().to_vec(),
            })
        }
        async fn read(&self, body: Vec<u8>) -> Result<Vec<u8>, String> {
            Ok(body)
        }
    }

    fn scripted(answers: &[(u16, &'static str)]) -> Scripted {
        Scripted {
            answers: std::cell::RefCell::new(answers.to_vec()),
            sent: std::cell::RefCell::default(),
        }
    }

    fn store(
        transport: &Scripted,
        path_style: bool,
    ) -> S3Store<&Scripted, crate::fakes::ManualClock> {
        S3Store::new(
            transport,
            crate::fakes::ManualClock::default(),
            S3Config {
                endpoint: "http://s3.test:9000".parse().unwrap(),
                region: "us-east-1".into(),
                bucket: "chunks".into(),
                path_style,
            },
            Credentials::new("AKIDEXAMPLE", "secret-0123456789"),
        )
    }

    const SLOW_DOWN: &str = "<Error><Code>SlowDown</Code></Error>";

    /// Throttling is retried with backoff and then succeeds; each try is signed anew.
    #[test]
    fn retryable_answers_are_retried() {
        let transport = scripted(&[(503, SLOW_DOWN), (500, ""), (200, "")]);
        let store = store(&transport, true);
        futures::executor::block_on(store.put(
            "zec/v1/ab/k",
            b"abc".to_vec(),
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap();
        let sent = transport.sent.borrow();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].url, "http://s3.test:9000/chunks/zec/v1/ab/k");
        assert_eq!(sent[0].method, "PUT");
        assert_eq!(&*sent[0].body, b"abc");
        assert!(sent
            .iter()
            .all(|r| r.headers.iter().any(|(n, v)| n == "authorization"
                && v.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"))));
        assert!(store.clock.sleeps.get() == 2, "two backoffs");
    }

    /// Throttling: retryable, never "rate limited on this key" (a read is not retried: its
    /// reader goes to the origin at once; a write is, twice); a refused signature is fatal at
    /// once; 404 is absent; a batch delete carries Content-MD5.
    #[test]
    fn errors_say_what_to_do() {
        let transport = scripted(&[(503, SLOW_DOWN)]);
        let error = futures::executor::block_on(store(&transport, true).get("k")).unwrap_err();
        assert_eq!(transport.sent.borrow().len(), 1, "reads are not retried");
        assert!(matches!(error, StoreError::Retryable(_)), "{error:?}");
        let transport = scripted(&[(503, SLOW_DOWN), (503, SLOW_DOWN), (503, SLOW_DOWN)]);
        let error = futures::executor::block_on(store(&transport, true).put(
            "k",
            vec![1],
            &crate::store::ObjectMeta::default(),
        ))
        .unwrap_err();
        assert_eq!(
            transport.sent.borrow().len(),
            3,
            "a write is tried three times"
        );
        assert!(
            matches!(error, StoreError::Retryable(ref t) if t.contains("SlowDown")),
            "{error:?}"
        );
        let transport = scripted(&[(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>")]);
        let error = futures::executor::block_on(store(&transport, true).get("k")).unwrap_err();
        assert!(matches!(error, StoreError::Fatal(_)), "{error:?}");
        assert_eq!(
            transport.sent.borrow().len(),
            1,
            "a fatal answer is not retried"
        );
        let transport = scripted(&[(404, "<Error><Code>NoSuchKey</Code></Error>")]);
        assert!(
            futures::executor::block_on(store(&transport, false).get("a b/c"))
                .unwrap()
                .is_none()
        );
        assert_eq!(
            transport.sent.borrow()[0].url,
            "http://chunks.s3.test:9000/a%20b/c"
        );
        let transport = scripted(&[(416, "<Error><Code>InvalidRange</Code></Error>")]);
        let past_end = futures::executor::block_on(store(&transport, true).get_range("k", 10, 5));
        assert!(
            matches!(past_end, Err(StoreError::Retryable(_))),
            "{past_end:?}"
        );
        let transport = scripted(&[(200, "<DeleteResult></DeleteResult>")]);
        futures::executor::block_on(store(&transport, true).delete_many(&["a".into(), "b".into()]))
            .unwrap();
        let sent = transport.sent.borrow();
        assert_eq!(sent[0].url, "http://s3.test:9000/chunks?delete=");
        let md5 = sent[0]
            .headers
            .iter()
            .find(|(n, _)| n == "content-md5")
            .unwrap();
        assert_eq!(
            md5.1,
            base64::engine::general_purpose::STANDARD.encode(Md5::digest(&sent[0].body))
        );
    }
}
