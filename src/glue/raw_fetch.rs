//! The runtime's `fetch` with plain `web_sys` objects, for the call every hit makes (the index
//! lookup): the request is built directly and the body read with one `arrayBuffer()`.
//! `worker::Response` reads a body through a `ReadableStream` reader driven from Rust (a read
//! and a promise per chunk, a lock released at the end) and reads `cf` and `webSocket` from
//! every response it wraps; measured in workerd that was about a third of the worker's own CPU
//! per warm hit (bench/README.md, "CPU per warm hit").

use js_sys::{JsString, Uint8Array};
use wasm_bindgen::{JsCast as _, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, RequestInit, Response, WorkerGlobalScope};

/// A response read whole: its status and body.
pub struct Fetched {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// `POST`s `body` with `headers` to `url` and reads the answer whole; `signal` aborts it.
///
/// # Errors
/// The runtime's error (network failure, abort), as text.
pub async fn post(
    url: &str,
    headers: &[(&str, String)],
    body: &str,
    signal: &AbortSignal,
) -> Result<Fetched, String> {
    let described = |e: JsValue| {
        e.as_string()
            .or_else(|| {
                e.dyn_ref::<js_sys::Error>()
                    .map(|e| String::from(e.message()))
            })
            .unwrap_or_else(|| format!("{e:?}"))
    };
    let js_headers = Headers::new().map_err(described)?;
    for (name, value) in headers {
        js_headers.set(name, value).map_err(described)?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&js_headers);
    init.set_body(&JsString::from(body));
    init.set_signal(Some(signal));
    let global: WorkerGlobalScope = js_sys::global().unchecked_into();
    let answer = JsFuture::from(global.fetch_with_str_and_init(url, &init))
        .await
        .map_err(described)?;
    let response: Response = answer.dyn_into().map_err(described)?;
    let buffer = JsFuture::from(response.array_buffer().map_err(described)?)
        .await
        .map_err(described)?;
    Ok(Fetched {
        status: response.status(),
        body: Uint8Array::new(&buffer).to_vec(),
    })
}
