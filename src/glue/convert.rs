//! Conversions between the core's plain HTTP values and the Workers runtime's JS objects.
//!
//! Tested under Node by `wasm-bindgen-test` (Node has the same fetch `Request`/`Response`/
//! `Headers` classes as workerd).

use js_sys::Uint8Array;
use wasm_bindgen::JsValue;
use worker::ResponseBody;

use futures::channel::mpsc::Sender;
use futures::{SinkExt as _, StreamExt as _};

use super::host;
use crate::cache::WriteBack;
use crate::http::response::{HttpResponse, Piece, Pieces};

/// Builds the JS response (status, headers and body in one call into the runtime:
/// [`host::respond`]). A stored object streams straight from storage (its `ReadableStream`
/// handed to the response, no bytes through wasm). Bodiless statuses (204, 304) and empty
/// bodies get no body at all, since the fetch spec forbids a body on them.
///
/// # Errors
/// A header the runtime refuses.
pub fn to_worker_response<S: IntoResponseBody>(
    response: HttpResponse<S>,
) -> worker::Result<web_sys::Response> {
    to_worker_response_with(response, None)
}

/// As [`to_worker_response`]; a body made piece by piece streams as it is read, and the
/// write-backs of each piece go to `later` (run after the response; without it they are
/// dropped, nothing is stored). A piece that fails ends the stream with an error: the client
/// sees a body shorter than its `Content-Length`.
///
/// # Errors
/// A header the runtime refuses.
pub fn to_worker_response_with<S: IntoResponseBody>(
    mut response: HttpResponse<S>,
    later: Option<Sender<Vec<WriteBack>>>,
) -> worker::Result<web_sys::Response> {
    let body = if matches!(response.status, 204 | 304) {
        JsValue::NULL
    } else if let Some(stream) = response.stream.take() {
        match stream.into_response_body()? {
            ResponseBody::Empty => JsValue::NULL,
            ResponseBody::Body(bytes) => Uint8Array::from(&bytes[..]).into(),
            ResponseBody::Stream(stream) => stream.into(),
        }
    } else if let Some(Pieces(pieces)) = response.pieces.take() {
        piece_stream(&response, pieces, later).into()
    } else if response.body.is_empty() {
        JsValue::NULL
    } else {
        Uint8Array::from(&response.body[..]).into()
    };
    host::respond(response.status, &response.headers, &body).map_err(worker::Error::RustError)
}

/// The stream of a body made piece by piece.
fn piece_stream<S>(
    response: &HttpResponse<S>,
    pieces: futures::stream::LocalBoxStream<'static, Result<Piece, crate::error::Error>>,
    later: Option<Sender<Vec<WriteBack>>>,
) -> web_sys::ReadableStream {
    // workerd sends a plain stream chunked, without the Content-Length the core set; through a
    // FixedLengthStream it keeps it (and a body cut short is an error, not a shorter body taken
    // for the whole).
    let length = response
        .header("content-length")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    // A bounded queue: a body read faster than its write-backs run waits for them, so a cold
    // read of a large file never holds more than a few windows of blocks.
    let body = pieces.then(move |piece| {
        let mut later = later.clone();
        async move {
            match piece {
                Ok(Piece { bytes, write_backs }) => {
                    if let Some(later) = later.as_mut() {
                        if !write_backs.is_empty() {
                            let _ = later.send(write_backs).await;
                        }
                    }
                    Ok(bytes)
                }
                Err(error) => {
                    worker::console_error!("body cut short: {error}");
                    Err(worker::Error::RustError(error.to_string()))
                }
            }
        }
    });
    let fixed: worker::worker_sys::FixedLengthStream =
        worker::FixedLengthStream::wrap(body, length).into();
    fixed.readable()
}

/// A stored body the glue can hand to a response.
pub trait IntoResponseBody {
    /// The response body, streamed where possible.
    fn into_response_body(self) -> worker::Result<ResponseBody>;
}

impl IntoResponseBody for () {
    fn into_response_body(self) -> worker::Result<ResponseBody> {
        Ok(ResponseBody::Empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_futures::JsFuture;
    use wasm_bindgen_test::wasm_bindgen_test;

    async fn text(response: &web_sys::Response) -> String {
        let text = JsFuture::from(response.text().unwrap()).await.unwrap();
        text.as_string().unwrap()
    }

    /// Status, repeated headers and body survive the trip into a JS `Response`.
    #[wasm_bindgen_test]
    async fn response_keeps_status_headers_and_body() {
        let core = HttpResponse::json(503, &serde_json::json!({"status": "unavailable"}))
            .with_header("x-cache", "MISS");
        let js = to_worker_response(core).unwrap();
        assert_eq!(js.status(), 503);
        assert_eq!(
            js.headers().get("content-type").unwrap().as_deref(),
            Some("application/json")
        );
        assert_eq!(
            js.headers().get("x-cache").unwrap().as_deref(),
            Some("MISS")
        );
        assert_eq!(text(&js).await, r#"{"status":"unavailable"}"#);
    }

    /// A 204 gets no body (a JS `Response` with a body and status 204 would throw).
    #[wasm_bindgen_test]
    async fn no_content_has_no_body() {
        let core: HttpResponse = HttpResponse {
            status: 204,
            headers: vec![("access-control-max-age".into(), "60".into())],
            body: b"ignored".to_vec(),
            stream: None,
            pieces: None,
        };
        let js = to_worker_response(core).unwrap();
        assert_eq!(js.status(), 204);
        assert_eq!(text(&js).await, "");
    }

    /// A header value with a line break is refused, not split into two headers.
    #[wasm_bindgen_test]
    fn a_value_with_a_line_break_is_refused() {
        let core: HttpResponse =
            HttpResponse::json(200, &serde_json::json!({})).with_header("x-a", "1\nx-b\n2");
        assert!(to_worker_response(core).is_err());
    }
}
