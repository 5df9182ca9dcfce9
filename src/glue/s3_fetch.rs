//! [`FetchS3`]: the S3 store's transport over `worker::Fetch`. Each exchange is bounded by the
//! storage timeout; answers keep their body unread so that a stored chunk streams to the client
//! without passing through wasm.

use worker::{AbortController, Fetch, Headers, Method, Request, RequestInit, RequestRedirect};
use worker::{Response, ResponseBody};

use super::convert::IntoResponseBody;
use super::timeout::within;
use crate::origin::url_policy::redact_text;
use crate::store::s3::{S3Answer, S3Request, S3Transport};

/// Sends S3 requests with the runtime's `fetch`.
#[derive(Clone)]
pub struct FetchS3 {
    timeout_ms: u32,
}

impl FetchS3 {
    /// A transport whose exchanges fail after `timeout_ms`.
    pub fn new(timeout_ms: u32) -> Self {
        Self { timeout_ms }
    }
}

/// An S3 answer's unread body.
pub struct S3Body(Response);

impl S3Body {
    /// The answer whose body this is (to stream it into wasm piece by piece).
    pub fn into_response(self) -> Response {
        self.0
    }
}

impl IntoResponseBody for S3Body {
    fn into_response_body(self) -> worker::Result<ResponseBody> {
        Ok(match self.0.body() {
            ResponseBody::Stream(stream) => ResponseBody::Stream(stream.clone()),
            ResponseBody::Body(bytes) => ResponseBody::Body(bytes.clone()),
            ResponseBody::Empty => ResponseBody::Empty,
        })
    }
}

fn method(name: &str) -> Method {
    match name {
        "PUT" => Method::Put,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        _ => Method::Get,
    }
}

impl S3Transport for FetchS3 {
    type Body = S3Body;

    async fn send(&self, request: &S3Request) -> Result<S3Answer<S3Body>, String> {
        let fail = |e: worker::Error| redact_text(&e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            // `content-length` is the runtime's to set from the body.
            if name != "content-length" {
                headers.set(name, value).map_err(fail)?;
            }
        }
        let mut init = RequestInit::new();
        init.with_method(method(request.method))
            .with_headers(headers)
            .with_redirect(RequestRedirect::Manual);
        if !request.body.is_empty() {
            let body = js_sys::Uint8Array::from(&*request.body);
            init.with_body(Some(body.into()));
        }
        let js_request = Request::new_with_init(&request.url, &init).map_err(fail)?;
        let controller = AbortController::default();
        let signal = controller.signal();
        let fetch = Fetch::Request(js_request);
        let send = fetch.send_with_signal(&signal);
        let Some(answer) = within(self.timeout_ms, send).await else {
            controller.abort();
            return Err(format!("no answer within {} ms", self.timeout_ms));
        };
        let response = answer.map_err(fail)?;
        let headers = response
            .headers()
            .entries()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        Ok(S3Answer {
            status: response.status_code(),
            headers,
            body: S3Body(response),
        })
    }

    async fn read(&self, body: S3Body) -> Result<Vec<u8>, String> {
        let mut response = body.0;
        within(self.timeout_ms, response.bytes())
            .await
            .ok_or_else(|| format!("body not read within {} ms", self.timeout_ms))?
            .map_err(|e| redact_text(&e.to_string()))
    }
}
