//! A tiny HTTP/1.1 server on a loopback port of its own, for integration tests that need an
//! origin that misbehaves on purpose (redirects, wrong lengths, stalls) or must prove it was
//! never contacted: every accepted connection and request line is recorded.
//!
//! One thread per connection, `Connection: close` on every answer, request heads bounded to
//! 64 KiB. Threads end with the test process.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the handler answers.
pub enum Reply {
    /// A whole answer: status, extra headers, body (`Content-Length` is added).
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// A status line and headers announcing `announced` bytes, then only `body`, then close:
    /// a short body.
    Short(u16, u64, Vec<u8>),
    /// Accept, then say nothing for this many milliseconds before closing.
    Stall(u64),
    /// A `200` without `Content-Length`: the body ends when the connection closes.
    Unsized(Vec<u8>),
}

impl Reply {
    /// `200` with `body`.
    pub fn ok(body: &[u8]) -> Self {
        Self::Full(200, Vec::new(), body.to_vec())
    }

    /// `302 Location: location`.
    pub fn redirect(location: &str) -> Self {
        Self::Full(302, vec![("Location".into(), location.into())], Vec::new())
    }

    /// `206` with the requested `bytes=a-b` range of `file`, or `200` with all of it.
    pub fn ranged(request: &Request, file: &[u8]) -> Self {
        let range = request
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)));
        match range {
            Some((first, last)) if first <= last && last < file.len() => Self::Full(
                206,
                vec![(
                    "Content-Range".into(),
                    format!("bytes {first}-{last}/{}", file.len()),
                )],
                file[first..=last].to_vec(),
            ),
            _ => Self::ok(file),
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A listening server; its counters are shared with the serving threads.
pub struct Listener {
    /// Its port on 127.0.0.1.
    pub port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    /// Listens on a free loopback port and answers every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let socket = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("bind a loopback port: {e}"));
        let port = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("local address: {e}"))
            .port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (counted, logged) = (Arc::clone(&connections), Arc::clone(&requests));
        std::thread::spawn(move || {
            for stream in socket.incoming().flatten() {
                counted.fetch_add(1, Ordering::SeqCst);
                let (handler, logged) = (Arc::clone(&handler), Arc::clone(&logged));
                std::thread::spawn(move || serve(stream, &*handler, &logged));
            }
        });
        Self {
            port,
            connections,
            requests,
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:{port}`, as `allowed_hosts` lists it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far (a client that connected and sent nothing counts too).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The request lines received so far (`GET /x HTTP/1.1`).
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn serve(mut stream: TcpStream, handler: &Handler, logged: &Mutex<Vec<String>>) {
    let Some(head) = read_head(&mut stream) else {
        return;
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    logged
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(request_line.clone());
    let mut parts = request_line.split(' ');
    let request = Request {
        method: parts.next().unwrap_or_default().to_owned(),
        path: parts.next().unwrap_or_default().to_owned(),
        headers: lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect(),
    };
    let status_line = |status: u16| format!("HTTP/1.1 {status} {}\r\n", reason(status));
    match handler(&request) {
        Reply::Full(status, headers, body) => {
            let mut out = status_line(status);
            for (name, value) in headers {
                let _ = write!(out, "{name}: {value}\r\n");
            }
            let _ = write!(
                out,
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(out.as_bytes());
            if request.method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
        Reply::Short(status, announced, body) => {
            let out = format!(
                "{}Content-Length: {announced}\r\nConnection: close\r\n\r\n",
                status_line(status)
            );
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&body);
        }
        Reply::Stall(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        Reply::Unsized(body) => {
            let out = format!("{}Connection: close\r\n\r\n", status_line(200));
            let _ = stream.write_all(out.as_bytes());
            let _ = stream.write_all(&body);
        }
    }
    let _ = stream.flush();
}

/// The request head (up to the blank line), at most 64 KiB.
fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
