//! Conversions between the core's plain HTTP values and the Workers runtime's JS objects.
//!
//! Tested under Node by `wasm-bindgen-test` (Node has the same fetch `Request`/`Response`/
//! `Headers` classes as workerd).

use wasm_bindgen::JsValue;
use worker::{Headers, Method, Request, RequestInit, Response, ResponseBuilder};

use crate::response::HttpResponse;
use crate::upstash::HttpCall;

/// Builds the JS response. Bodiless statuses (204, 304) and empty bodies get no body at all,
/// since the fetch spec forbids a body on them.
pub fn to_worker_response(response: &HttpResponse) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in &response.headers {
        headers.append(name, value)?;
    }
    let builder = ResponseBuilder::new()
        .with_status(response.status)
        .with_headers(headers);
    if response.body.is_empty() || matches!(response.status, 204 | 304) {
        Ok(builder.empty())
    } else {
        Ok(builder.fixed(response.body.clone()))
    }
}

/// Builds the `POST` request for an Upstash call against `base_url`.
pub fn to_worker_request(call: &HttpCall, base_url: &str) -> worker::Result<Request> {
    let headers = Headers::new();
    for (name, value) in &call.headers {
        headers.set(name, value)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&call.body)));
    Request::new_with_init(&call.url(base_url), &init)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstash::{Batch, Command};
    use wasm_bindgen_test::wasm_bindgen_test;

    /// Status, repeated headers and body survive the trip into a JS `Response`.
    #[wasm_bindgen_test]
    async fn response_keeps_status_headers_and_body() {
        let core = HttpResponse::json(503, &serde_json::json!({"status": "unavailable"}))
            .with_header("x-cache", "MISS");
        let mut js = to_worker_response(&core).unwrap();
        assert_eq!(js.status_code(), 503);
        assert_eq!(
            js.headers().get("content-type").unwrap().as_deref(),
            Some("application/json")
        );
        assert_eq!(
            js.headers().get("x-cache").unwrap().as_deref(),
            Some("MISS")
        );
        assert_eq!(js.text().await.unwrap(), r#"{"status":"unavailable"}"#);
    }

    /// A 204 gets no body (a JS `Response` with a body and status 204 would throw).
    #[wasm_bindgen_test]
    async fn no_content_has_no_body() {
        let core = HttpResponse {
            status: 204,
            headers: vec![("access-control-max-age".into(), "60".into())],
            body: b"ignored".to_vec(),
        };
        let mut js = to_worker_response(&core).unwrap();
        assert_eq!(js.status_code(), 204);
        assert_eq!(js.text().await.unwrap(), "");
    }

    /// The Upstash call becomes a JSON `POST` with the bearer token, to the right path.
    #[wasm_bindgen_test]
    async fn upstash_call_becomes_post_request() {
        let call = HttpCall::batch(
            "tok",
            Batch::Pipeline,
            &[Command::new("PING"), Command::new("GET").arg("k")],
        );
        let mut req = to_worker_request(&call, "http://127.0.0.1:8079/").unwrap();
        assert_eq!(req.method(), Method::Post);
        assert_eq!(
            req.url().unwrap().as_str(),
            "http://127.0.0.1:8079/pipeline"
        );
        assert_eq!(
            req.headers().get("authorization").unwrap().as_deref(),
            Some("Bearer tok")
        );
        assert_eq!(
            req.headers().get("upstash-encoding").unwrap().as_deref(),
            Some("base64")
        );
        assert_eq!(req.text().await.unwrap(), r#"[["PING"],["GET","k"]]"#);
    }
}
