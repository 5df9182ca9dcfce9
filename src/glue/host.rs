//! The hot path's runtime calls, one crossing each: bindings of `host.js` (bundled with the
//! worker by wasm-bindgen and worker-build) and the joins and splits of what they pass as one
//! string. See `host.js` for why.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/src/glue/host.js")]
extern "C" {
    /// What `r2Get` resolves to: an object with a body.
    pub type R2Hit;
    #[wasm_bindgen(method, getter)]
    fn body(this: &R2Hit) -> web_sys::ReadableStream;
    #[wasm_bindgen(method, getter)]
    fn size(this: &R2Hit) -> f64;
    #[wasm_bindgen(method, getter)]
    fn uploaded(this: &R2Hit) -> f64;
    #[wasm_bindgen(method, getter)]
    fn checksum(this: &R2Hit) -> Option<String>;
    #[wasm_bindgen(method, getter)]
    fn validator(this: &R2Hit) -> Option<String>;

    /// What `postBytes` resolves to.
    type Posted;
    #[wasm_bindgen(method, getter)]
    fn status(this: &Posted) -> u16;
    #[wasm_bindgen(method, getter)]
    fn body(this: &Posted) -> Option<Uint8Array>;

    #[wasm_bindgen(js_name = r2Get)]
    fn r2_get(bucket: &JsValue, key: &str, offset: f64, length: f64, ms: u32) -> Promise;
    #[wasm_bindgen(js_name = readAll)]
    fn read_all(stream: &web_sys::ReadableStream, ms: u32) -> Promise;
    #[wasm_bindgen(js_name = respond, catch)]
    fn respond_js(status: u16, headers: &str, body: &JsValue)
        -> Result<web_sys::Response, JsValue>;
    #[wasm_bindgen(js_name = requestTarget)]
    fn request_target_js(request: &web_sys::Request) -> String;
    #[wasm_bindgen(js_name = requestHeaders)]
    fn request_headers_js(request: &web_sys::Request, names: &str) -> String;
    #[wasm_bindgen(js_name = postBytes)]
    fn post_bytes(url: &str, headers: &str, body: &str, ms: u32) -> Promise;
}

/// An R2 object as `r2Get` read it.
pub struct R2Read {
    /// Its body, unread.
    pub body: web_sys::ReadableStream,
    /// Its size in bytes.
    pub size: u64,
    /// When it was uploaded (ms since the epoch).
    pub uploaded_ms: u64,
    /// Its `zec-checksum` metadata.
    pub checksum: Option<String>,
    /// Its `zec-validator` metadata.
    pub validator: Option<String>,
}

/// The runtime's error as text.
pub fn described(error: &JsValue) -> String {
    error
        .as_string()
        .or_else(|| {
            error
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{error:?}"))
}

/// Reads `key` of `bucket` (`range`: offset and length), within `ms`: `None` when there is no
/// such object.
///
/// # Errors
/// The runtime's error, or the deadline's, as text.
pub async fn r2_read(
    bucket: &JsValue,
    key: &str,
    range: Option<(u64, u64)>,
    ms: u32,
) -> Result<Option<R2Read>, String> {
    // f64 holds every offset and length below 2^53 bytes exactly (R2 objects are at most 5 TB).
    #[allow(clippy::cast_precision_loss)]
    let (offset, length) = range.map_or((0.0, -1.0), |(o, l)| (o as f64, l as f64));
    let found = JsFuture::from(r2_get(bucket, key, offset, length, ms))
        .await
        .map_err(|e| described(&e))?;
    if found.is_null() || found.is_undefined() {
        return Ok(None);
    }
    let hit: R2Hit = found.unchecked_into();
    Ok(Some(R2Read {
        body: hit.body(),
        size: whole(hit.size()),
        uploaded_ms: whole(hit.uploaded()),
        checksum: hit.checksum(),
        validator: hit.validator(),
    }))
}

/// A non-negative whole number from JS (sizes, times), 0 for anything else.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(value: f64) -> u64 {
    if value.is_finite() && value >= 0.0 {
        value as u64
    } else {
        0
    }
}

/// Reads `stream` whole within `ms`.
///
/// # Errors
/// The runtime's error, or the deadline's, as text.
pub async fn read_stream(stream: &web_sys::ReadableStream, ms: u32) -> Result<Vec<u8>, String> {
    let bytes = JsFuture::from(read_all(stream, ms))
        .await
        .map_err(|e| described(&e))?;
    Ok(Uint8Array::new(&bytes).to_vec())
}

/// Joins header pairs for `host.js` ("name\nvalue\n…").
///
/// # Errors
/// A name or value holding a line break or NUL (no valid header does; `Headers` would refuse it).
pub fn join_headers<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<String, String> {
    let mut flat = String::new();
    for (name, value) in pairs {
        if [name, value].iter().any(|s| s.contains(['\n', '\r', '\0'])) {
            return Err(format!(
                "header {name:?}: a line break or NUL is not allowed"
            ));
        }
        if !flat.is_empty() {
            flat.push('\n');
        }
        flat.push_str(name);
        flat.push('\n');
        flat.push_str(value);
    }
    Ok(flat)
}

/// A response of `status` with `headers` and `body` (null, bytes or a stream).
///
/// # Errors
/// A header the runtime refuses, or a body not allowed with the status.
pub fn respond(
    status: u16,
    headers: &[(String, String)],
    body: &JsValue,
) -> Result<web_sys::Response, String> {
    let flat = join_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
    respond_js(status, &flat, body).map_err(|e| described(&e))
}

/// The method and URL of `request` (the URL as the runtime serialised it), in one crossing.
pub fn request_target(request: &web_sys::Request) -> (String, String) {
    let joined = request_target_js(request);
    let (method, url) = joined.split_once('\n').unwrap_or((joined.as_str(), ""));
    (method.to_owned(), url.to_owned())
}

/// The values of the headers `names` of `request`, in the order asked, in one crossing.
pub fn request_headers(request: &web_sys::Request, names: &[&str]) -> Vec<Option<String>> {
    split_header_values(&request_headers_js(request, &names.join("\n")), names.len())
}

/// Splits what `requestHeaders` joined into `fields` values (NUL: absent).
fn split_header_values(joined: &str, fields: usize) -> Vec<Option<String>> {
    let mut lines = joined.split('\n');
    (0..fields)
        .map(|_| match lines.next() {
            None | Some("\0") => None,
            Some(value) => Some(value.to_owned()),
        })
        .collect()
}

/// A `POST` answered: its status and body.
pub struct PostAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// `POST`s `body` with `headers` to `url`, the answer read whole; `None` when `ms` ran out.
///
/// # Errors
/// The runtime's error (network failure, a refused header), as text.
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: &str,
    ms: u32,
) -> Result<Option<PostAnswer>, String> {
    let flat = join_headers(headers.iter().map(|(n, v)| (*n, v.as_str())))?;
    let answer: Posted = JsFuture::from(post_bytes(url, &flat, body, ms))
        .await
        .map_err(|e| described(&e))?
        .unchecked_into();
    Ok(answer.body().map(|bytes| PostAnswer {
        status: answer.status(),
        body: bytes.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test]
    fn header_values_split_back() {
        assert_eq!(
            split_header_values("\0\nbytes=0-9\n", 3),
            vec![None, Some("bytes=0-9".to_owned()), Some(String::new())]
        );
        // Fewer fields than asked: the rest are absent.
        assert_eq!(split_header_values("\0", 2), vec![None, None]);
    }

    #[wasm_bindgen_test]
    fn headers_with_line_breaks_are_refused() {
        assert_eq!(
            join_headers([("a", "1"), ("b", "x:y")]).as_deref(),
            Ok("a\n1\nb\nx:y")
        );
        assert!(join_headers([("a", "1\n2")]).is_err());
        assert!(join_headers([("a\r", "1")]).is_err());
    }

    /// One crossing builds the same response the generic bindings did.
    #[wasm_bindgen_test]
    async fn respond_builds_status_headers_and_body() {
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("vary".to_owned(), "origin".to_owned()),
            ("vary".to_owned(), "range".to_owned()),
        ];
        let body: JsValue = Uint8Array::from(&b"{}"[..]).into();
        let response = respond(201, &headers, &body).unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(
            response.headers().get("vary").unwrap().as_deref(),
            Some("origin, range")
        );
        let text = JsFuture::from(response.text().unwrap()).await.unwrap();
        assert_eq!(text.as_string().as_deref(), Some("{}"));
    }
}
