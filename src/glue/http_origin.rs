//! [`HttpOrigin`]: the origin over `worker::Fetch` (with `Range`, a timeout covering the body,
//! a size cap enforced while reading, and redirects returned rather than followed), and
//! [`WorkerRefsSource`]: reference files from an HTTP URL or from the R2 bucket.

use futures::StreamExt as _;
use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit};
use worker::{RequestRedirect, Response};

use super::store::WorkerStore;
use super::timeout::within;
use crate::error::Error;
use crate::origin::check::is_redirect;
use crate::origin::url_policy::{redact, redact_text};
use crate::origin::Origin;
use crate::origin::{ByteRange, OriginError, OriginResponse};
use crate::source::refs::RefsLocation;
use crate::source::refs::RefsSink;
use crate::source::refs::{ReferenceSource, RefsFetch};
use crate::store::ChunkStore;

/// Fetches from origins with the runtime's `fetch`, aborting after `timeout_ms`.
#[derive(Clone)]
pub struct HttpOrigin {
    timeout_ms: u32,
}

/// The most a chunk answer may hold: a server that ignores `Range` and sends a multi-gigabyte
/// file must not exhaust the isolate's 128 MB. Enforced while reading, so an answer without a
/// `Content-Length` is cut off too.
const MAX_ORIGIN_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// A worker error's text without URL queries (presigned signatures).
fn network(e: &worker::Error) -> OriginError {
    OriginError::Network(redact_text(&e.to_string()))
}

impl HttpOrigin {
    /// An origin client with a per-request timeout.
    pub fn new(timeout_ms: u32) -> Self {
        Self { timeout_ms }
    }

    /// Sends a GET (redirects not followed) and runs `read` on the response, all within
    /// `timeout_ms` (a body that trickles in counts against it too).
    async fn exchange<T, F>(
        url: &str,
        headers: Headers,
        timeout_ms: u32,
        read: impl FnOnce(Response) -> F,
    ) -> Result<T, OriginError>
    where
        F: std::future::Future<Output = Result<T, OriginError>>,
    {
        Self::exchange_with((Method::Get, url, None), headers, timeout_ms, read).await
    }

    /// [`exchange`](Self::exchange) with any method and an optional body.
    async fn exchange_with<T, F>(
        (method, url, body): (Method, &str, Option<Vec<u8>>),
        headers: Headers,
        timeout_ms: u32,
        read: impl FnOnce(Response) -> F,
    ) -> Result<T, OriginError>
    where
        F: std::future::Future<Output = Result<T, OriginError>>,
    {
        let mut init = RequestInit::new();
        init.with_method(method)
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if let Some(body) = body {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let request = Request::new_with_init(url, &init).map_err(|e| network(&e))?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(request);
        let exchange = async {
            let response = fetch
                .send_with_signal(&signal)
                .await
                .map_err(|e| network(&e))?;
            read(response).await
        };
        let outcome = within(timeout_ms, exchange).await;
        if outcome.is_none() {
            controller.abort();
        }
        outcome.unwrap_or(Err(OriginError::Timeout(timeout_ms)))
    }
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).ok().flatten()
}

/// Reads the body, failing as soon as more than `cap` bytes arrived (whatever `Content-Length`
/// said, or without one).
/// Hands a response body to `sink` piece by piece, at most `cap` bytes in all; a sink error
/// stops the read and is returned as `Ok(Err(..))`.
async fn stream_capped(
    response: &mut Response,
    cap: u64,
    sink: &mut RefsSink<'_>,
) -> Result<Result<(), Error>, OriginError> {
    let announced = header(response, "content-length").and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = announced.filter(|l| *l > cap) {
        return Err(OriginError::TooLarge(length));
    }
    let Ok(mut stream) = response.stream() else {
        let body = response.bytes().await.map_err(|e| network(&e))?;
        return Ok(sink(&body));
    };
    let mut read: u64 = 0;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| network(&e))?;
        read += piece.len() as u64;
        if read > cap {
            return Err(OriginError::TooLarge(read));
        }
        if let Err(e) = sink(&piece) {
            return Ok(Err(e));
        }
    }
    Ok(Ok(()))
}

async fn read_capped(response: &mut Response, cap: u64) -> Result<Vec<u8>, OriginError> {
    let announced = header(response, "content-length").and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = announced.filter(|l| *l > cap) {
        return Err(OriginError::TooLarge(length));
    }
    let Ok(mut stream) = response.stream() else {
        // No stream: an empty body (or one already in memory).
        return response.bytes().await.map_err(|e| network(&e));
    };
    let mut body =
        Vec::with_capacity(usize::try_from(announced.unwrap_or(0).min(cap)).unwrap_or_default());
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| network(&e))?;
        if (body.len() + piece.len()) as u64 > cap {
            return Err(OriginError::TooLarge((body.len() + piece.len()) as u64));
        }
        body.extend_from_slice(&piece);
    }
    Ok(body)
}

impl Origin for HttpOrigin {
    async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
        extra: &[(String, String)],
    ) -> Result<OriginResponse, OriginError> {
        let headers = Headers::new();
        for (name, value) in extra {
            headers.set(name, value).map_err(|e| network(&e))?;
        }
        if let Some(range) = range {
            headers
                .set("range", &range.header_value())
                .map_err(|e| network(&e))?;
        }
        Self::exchange(url, headers, self.timeout_ms, whole_answer).await
    }

    async fn forward(
        &self,
        method: &str,
        url: &str,
        extra: &[(String, String)],
        body: &[u8],
    ) -> Result<OriginResponse, OriginError> {
        let headers = Headers::new();
        for (name, value) in extra {
            headers.set(name, value).map_err(|e| network(&e))?;
        }
        let method = Method::from(method.to_owned());
        let body = (!body.is_empty()).then(|| body.to_vec());
        Self::exchange_with((method, url, body), headers, self.timeout_ms, whole_answer).await
    }
}

/// The whole answer (a redirect's body is not wanted: the caller decides about its Location),
/// its body capped while it is read.
async fn whole_answer(mut response: Response) -> Result<OriginResponse, OriginError> {
    let status = response.status_code();
    let body = if is_redirect(status) {
        Vec::new()
    } else {
        read_capped(&mut response, MAX_ORIGIN_BODY_BYTES).await?
    };
    Ok(OriginResponse {
        status,
        content_range: header(&response, "content-range"),
        etag: header(&response, "etag"),
        last_modified: header(&response, "last-modified"),
        location: header(&response, "location"),
        content_type: header(&response, "content-type"),
        body,
    })
}

/// Reference files over HTTP(S) (conditional GET with `If-None-Match`, redirects returned to the
/// caller) or from the bucket, each bounded in size and in time.
pub struct WorkerRefsSource {
    /// The chunk store, for `r2://` locations.
    pub store: WorkerStore,
    /// The largest reference file accepted, in bytes.
    pub max_bytes: u64,
    /// How long one download may take, body included.
    pub timeout_ms: u32,
}

impl WorkerRefsSource {
    /// A reference file over HTTP(S), whole (the streamed read, collected).
    async fn download(&self, url: &str, if_none_match: Option<&str>) -> Result<RefsFetch, Error> {
        let mut body = Vec::new();
        let fetched = self
            .download_into(url, if_none_match, &mut |piece| {
                body.extend_from_slice(piece);
                Ok(())
            })
            .await?;
        Ok(collected(fetched, body))
    }

    /// A reference file in the chunk store (`r2://key`), whole (the streamed read, collected).
    async fn read_object(
        &self,
        key: &str,
        if_none_match: Option<&str>,
    ) -> Result<RefsFetch, Error> {
        let mut body = Vec::new();
        let fetched = self
            .read_object_into(key, if_none_match, &mut |piece| {
                body.extend_from_slice(piece);
                Ok(())
            })
            .await?;
        Ok(collected(fetched, body))
    }
}

/// A streamed answer as a whole one, with the `body` its sink collected.
fn collected(fetched: RefsFetch, body: Vec<u8>) -> RefsFetch {
    match fetched {
        RefsFetch::Streamed { etag } => RefsFetch::Body { bytes: body, etag },
        other => other,
    }
}

impl WorkerRefsSource {
    /// A reference file over HTTP(S) (conditional GET with `If-None-Match`, a redirect returned
    /// to the caller), its body streamed into `sink`, bounded in size and in time.
    async fn download_into(
        &self,
        url: &str,
        if_none_match: Option<&str>,
        sink: &mut RefsSink<'_>,
    ) -> Result<RefsFetch, Error> {
        let shown = redact(url);
        let fail = |why: String| Error::Upstream(format!("references {shown}: {why}"));
        let headers = Headers::new();
        if let Some(etag) = if_none_match {
            headers
                .set("if-none-match", etag)
                .map_err(|e| Error::Internal(e.to_string()))?;
        }
        let max_bytes = self.max_bytes;
        let outcome = HttpOrigin::exchange(url, headers, self.timeout_ms, |mut response| {
            let sink = &mut *sink;
            async move {
                let status = response.status_code();
                let location = header(&response, "location");
                let etag = header(&response, "etag");
                let streamed = if status == 200 {
                    stream_capped(&mut response, max_bytes, sink).await?
                } else {
                    Ok(())
                };
                Ok((status, location, etag, streamed))
            }
        })
        .await;
        match outcome {
            Err(OriginError::TooLarge(size)) => Err(fail(format!(
                "{size} bytes is more than REFS_MAX_BYTES ({max_bytes})"
            ))),
            Err(e) => Err(fail(e.to_string())),
            Ok((_, _, _, Err(stopped))) => Err(stopped),
            Ok((304, _, _, _)) if if_none_match.is_some() => Ok(RefsFetch::NotModified),
            Ok((200, _, etag, Ok(()))) => Ok(RefsFetch::Streamed { etag }),
            Ok((status, Some(location), _, _)) if is_redirect(status) => {
                Ok(RefsFetch::Redirect { location })
            }
            Ok((status, ..)) => Err(fail(format!("HTTP {status}"))),
        }
    }

    /// A reference file in the chunk store (`r2://key`), through the store so that any store
    /// kind serves it, its body streamed into `sink`. Its validator is its size and upload time.
    async fn read_object_into(
        &self,
        key: &str,
        if_none_match: Option<&str>,
        sink: &mut RefsSink<'_>,
    ) -> Result<RefsFetch, Error> {
        let fail = |why: String| Error::Upstream(format!("references r2://{key}: {why}"));
        let max_bytes = self.max_bytes;
        let read = async {
            let object = self
                .store
                .get(key)
                .await
                .map_err(|e| fail(e.to_string()))?
                .ok_or_else(|| Error::NotFound(format!("references r2://{key} do not exist")))?;
            let etag = format!("\"{}-{}\"", object.size, object.uploaded_ms);
            if if_none_match == Some(etag.as_str()) {
                return Ok(RefsFetch::NotModified);
            }
            if object.size > max_bytes {
                return Err(fail(format!(
                    "{} bytes is more than REFS_MAX_BYTES ({max_bytes})",
                    object.size
                )));
            }
            self.store
                .stream_body(object.body, sink)
                .await
                .map_err(|e| fail(e.to_string()))??;
            Ok(RefsFetch::Streamed { etag: Some(etag) })
        };
        within(self.timeout_ms, read).await.unwrap_or_else(|| {
            Err(fail(format!(
                "not read within REFS_TIMEOUT_MS ({} ms)",
                self.timeout_ms
            )))
        })
    }
}

impl ReferenceSource for WorkerRefsSource {
    async fn fetch_refs(
        &self,
        location: &RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<RefsFetch, Error> {
        match location {
            RefsLocation::Url(url) => self.download(url, if_none_match).await,
            RefsLocation::Bucket(key) => self.read_object(key, if_none_match).await,
        }
    }

    async fn stream_refs(
        &self,
        location: &RefsLocation,
        if_none_match: Option<&str>,
        sink: &mut RefsSink<'_>,
    ) -> Result<RefsFetch, Error> {
        match location {
            RefsLocation::Url(url) => self.download_into(url, if_none_match, sink).await,
            RefsLocation::Bucket(key) => self.read_object_into(key, if_none_match, sink).await,
        }
    }
}
