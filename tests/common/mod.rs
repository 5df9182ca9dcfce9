//! Shared helpers for the integration tests: the stack's addresses from the environment that
//! `scripts/test` sets, a blocking native Upstash transport, and unique key prefixes per test.
//!
//! A missing variable is a failure with instructions, never a skip.
#![allow(dead_code)]

pub mod listener;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use zarr_edge_cache::index::transport::{RawReply, TransportError, UpstashTransport};
use zarr_edge_cache::upstash::HttpCall;

/// The value of a stack variable set by `scripts/test`.
pub fn stack_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: integration tests need the local stack; run scripts/test")
    })
}

/// The worker's base URL (`wrangler dev`).
pub fn worker_url(path: &str) -> String {
    format!("{}{path}", stack_var("ZEC_BASE_URL"))
}

/// An HTTP agent that returns 4xx/5xx answers as responses instead of errors. A request may
/// take 60 s: refusing a 64 MiB origin answer under `wrangler dev` (whose inspector copies every
/// body) took 24–32 s on this machine under load.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_mins(1)))
        .build()
        .into()
}

/// GETs a worker path and returns the status and the body as JSON.
pub fn get_json(path: &str) -> (u16, serde_json::Value) {
    let mut response = agent()
        .get(&worker_url(path))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path} answered {status} with non-JSON {body:?}: {e}"));
    (status, json)
}

/// A key prefix no other test or run uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "it:{test}:{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Upstash transport over a blocking HTTP client, for the native tests.
pub struct UreqTransport {
    pub base_url: String,
    agent: ureq::Agent,
}

impl UreqTransport {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            agent: agent(),
        }
    }
}

impl UpstashTransport for UreqTransport {
    async fn send(&self, call: &HttpCall) -> Result<RawReply, TransportError> {
        let mut request = self.agent.post(&call.url(&self.base_url));
        for (name, value) in &call.headers {
            request = request.header(*name, value);
        }
        let mut response = request
            .send(call.body.as_bytes())
            .map_err(|e| TransportError::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| TransportError::Network(e.to_string()))?;
        Ok(RawReply { status, body })
    }
}

/// Requests the origin (nginx, whose access log `scripts/test` keeps) answered so far for
/// exactly `GET /{path}` (with its query, if any) and the range `offset`, `length`.
pub fn origin_requests(path: &str, offset: u64, length: u64) -> usize {
    let log = std::path::PathBuf::from(stack_var("ZEC_STATE_DIR")).join("nginx/access.log");
    let request = format!("\"GET /{path} HTTP/");
    let range = format!("\"bytes={}-{}\"", offset, offset + length - 1);
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&request) && line.ends_with(&range))
        .count()
}

/// Runs a shell command line from `ZEC_STACK_CTL` plus `action` and asserts it succeeded.
pub fn stack_ctl(action: &str) {
    let line = format!("{} {action}", stack_var("ZEC_STACK_CTL"));
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(&line)
        .status()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!(status.success(), "{line} failed: {status}");
}

/// The admin API's bearer token (`ZEC_ADMIN_TOKEN`, written into the worker's `ADMIN_TOKEN`).
pub fn admin_token() -> String {
    stack_var("ZEC_ADMIN_TOKEN")
}

/// Calls `probe` every 50 ms until it returns `Ok`, for asynchronous effects (write-backs and
/// evictions run after the answer). Panics with `what` and the last `Err` after `deadline`.
pub fn poll<T>(
    what: &str,
    deadline: std::time::Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = std::time::Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if start.elapsed() >= deadline => {
                panic!("{what}: not within {deadline:?}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// A worker answer: status, headers and the whole body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `X-Cache`, or `(none)`.
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("(none)")
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (a panic naming the answer if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} answer is not JSON ({e}): {}", self.status, self.text()))
    }
}

/// Sends `method` to `base` + `path` with `headers`, and a JSON `body` when given.
pub fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let url = format!("{base}{path}");
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Accept-Encoding", "identity");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let sent = match body {
        Some(body) => agent().run(
            builder
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .unwrap(),
        ),
        None => agent().run(builder.body(()).unwrap()),
    };
    let mut response = sent.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let answer = Answer {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: response.body_mut().read_to_vec().unwrap(),
    };
    record(method, &url, &answer);
    answer
}

/// Appends the answer to `$ZEC_STATE_DIR/answers/{test binary}.log`, which `scripts/test` scans
/// for the stack's secrets once every test ran.
fn record(method: &str, url: &str, answer: &Answer) {
    use std::io::Write as _;
    let Ok(state) = std::env::var("ZEC_STATE_DIR") else {
        return;
    };
    let dir = std::path::Path::new(&state).join("answers");
    let name = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".into());
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
    {
        let _ = writeln!(
            file,
            "{method} {url} -> {} {:?}\n{}",
            answer.status,
            answer.headers,
            answer.text()
        );
    }
}
