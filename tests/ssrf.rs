//! Server-side request forgery on the real stack: a dataset that allows only listener A, whose
//! references and redirects try every way to reach listener B. B must receive no connection at
//! all; A's honest answers (and allowed redirects) are served.
//!
//! Both listeners are loopback servers in this process ([`common::listener`]); the datasets are
//! registered at run time through the admin API, so the worker's own configuration is untouched.
//!
//! # Running
//! `scripts/test` starts the stack and runs these with `--include-ignored`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::listener::{Listener, Reply};
use common::{admin_token, send, stack_var, Answer};
use serde_json::{json, Value as Json};

const FILE: &[u8] = b"ABCDEFGHIJKLMNOP";

fn admin(method: &str, path: &str, body: Option<&Json>) -> Answer {
    let auth = format!("Bearer {}", admin_token());
    let body = body.map(Json::to_string);
    send(
        &stack_var("ZEC_BASE_URL"),
        method,
        path,
        &[("Authorization", &auth)],
        body.as_deref(),
    )
}

fn read(dataset: &str, key: &str) -> Answer {
    send(
        &stack_var("ZEC_BASE_URL"),
        "GET",
        &format!("/zarr/{dataset}/{key}"),
        &[],
        None,
    )
}

/// Registers `id` afresh with `config` and asserts the status of the `PUT`.
fn register(id: &str, config: &Json, status: u16) -> Answer {
    let gone = admin("DELETE", &format!("/api/admin/datasets/{id}"), None);
    assert!(matches!(gone.status, 200 | 404), "{}", gone.text());
    let put = admin("PUT", &format!("/api/admin/datasets/{id}"), Some(config));
    assert_eq!(put.status, status, "PUT {id} {config}: {}", put.text());
    put
}

/// The probes of the security issue, and their variants: none reaches B, each is a clear JSON
/// 403 (host refused before any request) or 502 (a redirect refused), never B's bytes.
#[test]
#[ignore = "needs the local stack: run scripts/test"]
fn disallowed_hosts_receive_no_request() {
    let b = Listener::start(|_| Reply::ok(b"STOLEN!!STOLEN!!"));
    let (b_url, b_port) = (b.url(), b.port);
    let a = Listener::start(move |request| match request.path.as_str() {
        "/refs.json" => Reply::ok(refs_json(b_port, a_port_of(request)).as_bytes()),
        "/refs-redirect.json" => Reply::redirect(&format!("{b_url}/refs.json")),
        "/data.bin" | "/moved.bin" => Reply::ranged(request, FILE),
        "/redirect-allowed" => Reply::redirect("/moved.bin"),
        "/redirect-to-b" => Reply::redirect(&format!("{b_url}/stolen")),
        "/redirect-to-b-relative" => Reply::redirect(&format!("//127.0.0.1:{b_port}/stolen")),
        "/redirect-to-localhost" => Reply::redirect(&format!("http://localhost:{b_port}/x")),
        _ => Reply::Full(404, Vec::new(), b"no".to_vec()),
    });
    let id = "ssrf-probe";
    register(
        id,
        &json!({
            "refs": format!("{}/refs.json", a.url()),
            "allowed_hosts": [a.host()],
            "edge_ttl_seconds": 0,
            "description": "tests/ssrf.rs",
        }),
        201,
    );

    for (key, status) in [
        ("ok/0", 200),
        ("ok/1", 200),
        ("bad/backslash", 403),
        ("bad/userinfo", 403),
        ("bad/decimal", 403),
        ("bad/hex", 403),
        ("bad/octal", 403),
        ("bad/localhost", 403),
        ("bad/mapped", 403),
        ("bad/tab", 403),
        ("bad/encoded", 403),
        ("bad/redirect", 502),
        ("bad/redirect-relative", 502),
        ("bad/redirect-localhost", 502),
    ] {
        let answer = read(id, key);
        assert_eq!(answer.status, status, "{key}: {}", answer.text());
        if status == 200 {
            assert_eq!(answer.body, &FILE[2..6], "{key}");
        } else {
            let error = answer.json();
            assert!(error["error"].is_string(), "{key}: {error}");
            assert!(!answer.text().contains("STOLEN"), "{key}");
            let message = error["message"].as_str().unwrap();
            assert!(message.contains(&format!("{id}/{key}")), "{key}: {message}");
        }
    }
    assert_eq!(
        a.requests()
            .iter()
            .filter(|r| r.contains("/moved.bin"))
            .count(),
        1,
        "the allowed redirect was followed once: {:?}",
        a.requests()
    );

    // References that redirect to B are not fetched from B; a refs URL on B is refused at once.
    register(
        "ssrf-refs-redirect",
        &json!({
            "refs": format!("{}/refs-redirect.json", a.url()),
            "allowed_hosts": [a.host()],
            "edge_ttl_seconds": 0,
        }),
        201,
    );
    let answer = read("ssrf-refs-redirect", "ok/0");
    assert_eq!(answer.status, 502, "{}", answer.text());
    for config in [
        json!({"refs": format!("{}/refs.json", b.url())}),
        json!({"refs": format!("{}/refs.json", b.url()), "allowed_hosts": [a.host()]}),
        json!({"refs": format!("http://localhost:{}/refs.json", b.port), "allowed_hosts": [a.host()]}),
        json!({"refs": format!("http://2130706433:{}/refs.json", b.port), "allowed_hosts": [a.host()]}),
    ] {
        let answer = register("ssrf-refs-on-b", &config, 400);
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains("allowed_hosts"),
            "{}",
            answer.text()
        );
    }

    assert_eq!(
        b.connections(),
        0,
        "the disallowed listener was contacted: {:?}",
        b.requests()
    );
    for id in ["ssrf-probe", "ssrf-refs-redirect"] {
        admin("DELETE", &format!("/api/admin/datasets/{id}"), None);
    }
}

/// A's port, from the `Host` header of a request it received.
fn a_port_of(request: &common::listener::Request) -> u16 {
    request
        .header("host")
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .expect("a Host header with a port")
}

/// The references: two honest keys on A, the rest aimed at B.
fn refs_json(b: u16, a: u16) -> String {
    let ranged = |url: String| json!([url, 2, 4]);
    let refs = json!({
        "version": 1,
        "refs": {
            ".zgroup": "{\"zarr_format\": 2}",
            "ok/0": ranged(format!("http://127.0.0.1:{a}/data.bin")),
            "ok/1": ranged(format!("http://127.0.0.1:{a}/redirect-allowed")),
            // WHATWG: the backslash ends the authority, the host is B.
            "bad/backslash": ranged(format!("http://127.0.0.1:{b}\\@127.0.0.1:{a}/x")),
            "bad/userinfo": ranged(format!("http://127.0.0.1:{a}@127.0.0.1:{b}/x")),
            "bad/decimal": ranged(format!("http://2130706433:{b}/x")),
            "bad/hex": ranged(format!("http://0x7f.0.0.1:{b}/x")),
            "bad/octal": ranged(format!("http://0177.0.0.1:{b}/x")),
            "bad/localhost": ranged(format!("http://localhost:{b}/x")),
            "bad/mapped": ranged(format!("http://[::ffff:127.0.0.1]:{b}/x")),
            "bad/tab": ranged(format!("http://127.0.0.1:{b}\t/x")),
            "bad/encoded": ranged(format!("http://%31%32%37.0.0.1:{b}/x")),
            "bad/redirect": ranged(format!("http://127.0.0.1:{a}/redirect-to-b")),
            "bad/redirect-relative": ranged(format!("http://127.0.0.1:{a}/redirect-to-b-relative")),
            "bad/redirect-localhost": ranged(format!("http://127.0.0.1:{a}/redirect-to-localhost")),
        }
    });
    refs.to_string()
}
