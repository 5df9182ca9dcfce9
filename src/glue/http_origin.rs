//! [`HttpOrigin`]: the origin over `worker::Fetch` (with `Range` and a timeout), and
//! [`WorkerRefsSource`]: reference files from an HTTP URL or from the R2 bucket.

use futures::future::{select, Either};
use futures::pin_mut;
use worker::{AbortController, Bucket, Delay, Fetch, Headers, Method, Request, RequestInit};

use crate::backend::Origin;
use crate::backend::{ByteRange, OriginError, OriginResponse, ReferenceSource, RefsFetch};
use crate::datasets::RefsLocation;
use crate::error::Error;

/// Fetches from origins with the runtime's `fetch`, aborting after `timeout_ms`.
#[derive(Clone)]
pub struct HttpOrigin {
    timeout_ms: u32,
}

impl HttpOrigin {
    /// An origin client with a per-request timeout.
    pub fn new(timeout_ms: u32) -> Self {
        Self { timeout_ms }
    }

    async fn send(&self, url: &str, headers: Headers) -> Result<worker::Response, OriginError> {
        self.exchange(url, headers, |response| async move { Ok(response) })
            .await
    }

    /// Sends a GET and runs `read` on the response, all within the timeout (a body that trickles
    /// in counts against it too).
    async fn exchange<T, F>(
        &self,
        url: &str,
        headers: Headers,
        read: impl FnOnce(worker::Response) -> F,
    ) -> Result<T, OriginError>
    where
        F: std::future::Future<Output = Result<T, OriginError>>,
    {
        let network = |e: worker::Error| OriginError::Network(e.to_string());
        let mut init = RequestInit::new();
        init.with_method(Method::Get).with_headers(headers);
        let request = Request::new_with_init(url, &init).map_err(network)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(request);
        let exchange = async {
            let response = fetch.send_with_signal(&signal).await.map_err(network)?;
            read(response).await
        };
        let timeout = Delay::from(std::time::Duration::from_millis(u64::from(self.timeout_ms)));
        pin_mut!(exchange);
        match select(exchange, timeout).await {
            Either::Left((outcome, _)) => outcome,
            Either::Right(((), _)) => {
                controller.abort();
                Err(OriginError::Timeout(self.timeout_ms))
            }
        }
    }
}

/// The most an origin answer may hold: a server that ignores `Range` and sends a multi-gigabyte
/// file must not exhaust the isolate's 128 MB.
const MAX_ORIGIN_BODY_BYTES: u64 = 64 * 1024 * 1024;

fn header(response: &worker::Response, name: &str) -> Option<String> {
    response.headers().get(name).ok().flatten()
}

impl Origin for HttpOrigin {
    async fn get(
        &self,
        url: &str,
        range: Option<ByteRange>,
    ) -> Result<OriginResponse, OriginError> {
        let headers = Headers::new();
        if let Some(range) = range {
            headers
                .set("range", &range.header_value())
                .map_err(|e| OriginError::Network(e.to_string()))?;
        }
        self.exchange(url, headers, |mut response| async move {
            let announced = header(&response, "content-length").and_then(|v| v.parse::<u64>().ok());
            if let Some(length) = announced.filter(|l| *l > MAX_ORIGIN_BODY_BYTES) {
                return Err(OriginError::TooLarge(length));
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| OriginError::Network(e.to_string()))?;
            Ok(OriginResponse {
                status: response.status_code(),
                content_range: header(&response, "content-range"),
                etag: header(&response, "etag"),
                last_modified: header(&response, "last-modified"),
                body,
            })
        })
        .await
    }
}

/// Reference files over HTTP(S) (conditional GET with `If-None-Match`) or from the bucket.
pub struct WorkerRefsSource<'a> {
    /// The HTTP client.
    pub origin: &'a HttpOrigin,
    /// The bucket for `r2://` locations.
    pub bucket: &'a Bucket,
}

impl ReferenceSource for WorkerRefsSource<'_> {
    async fn fetch_refs(
        &self,
        location: &RefsLocation,
        if_none_match: Option<&str>,
    ) -> Result<RefsFetch, Error> {
        match location {
            RefsLocation::Url(url) => {
                let headers = Headers::new();
                if let Some(etag) = if_none_match {
                    headers
                        .set("if-none-match", etag)
                        .map_err(|e| Error::Internal(e.to_string()))?;
                }
                let mut response = self
                    .origin
                    .send(url, headers)
                    .await
                    .map_err(|e| Error::Upstream(format!("references {url}: {e}")))?;
                match response.status_code() {
                    304 if if_none_match.is_some() => Ok(RefsFetch::NotModified),
                    200 => Ok(RefsFetch::Body {
                        etag: header(&response, "etag"),
                        bytes: response
                            .bytes()
                            .await
                            .map_err(|e| Error::Upstream(format!("references {url}: {e}")))?,
                    }),
                    status => Err(Error::Upstream(format!("references {url}: HTTP {status}"))),
                }
            }
            RefsLocation::Bucket(key) => {
                let object = self
                    .bucket
                    .get(key.as_str())
                    .execute()
                    .await
                    .map_err(|e| Error::Upstream(format!("references r2://{key}: {e}")))?
                    .ok_or_else(|| {
                        Error::NotFound(format!("references r2://{key} do not exist"))
                    })?;
                let etag = object.http_etag();
                if if_none_match == Some(etag.as_str()) {
                    return Ok(RefsFetch::NotModified);
                }
                let body = object
                    .body()
                    .ok_or_else(|| Error::Upstream(format!("references r2://{key}: no body")))?;
                Ok(RefsFetch::Body {
                    bytes: body
                        .bytes()
                        .await
                        .map_err(|e| Error::Upstream(format!("references r2://{key}: {e}")))?,
                    etag: Some(etag),
                })
            }
        }
    }
}
