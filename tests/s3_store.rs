//! The S3 chunk store against a real S3 server that checks signatures (`s3s-fs`, started by
//! `scripts/test`): the store contract suite natively, over a blocking HTTP client, and the
//! failures mapped to what the caller must do (a wrong secret is fatal, naming the signature;
//! an unreachable server is retryable).
//!
//! The same suite runs inside the worker against this server (`tests/store_contract.rs`, the
//! S3-configured instance) and against the R2 binding.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::{agent, stack_var, unique_prefix};
use futures::executor::block_on;
use zarr_edge_cache::clock::Clock;
use zarr_edge_cache::origin::sigv4::Credentials;
use zarr_edge_cache::store::contract::{run, CASES};
use zarr_edge_cache::store::s3::{S3Answer, S3Config, S3Request, S3Store, S3Transport};
use zarr_edge_cache::store::{ChunkStore, ObjectMeta, StoreError};

/// S3 over ureq (bodies read at once).
struct UreqS3(ureq::Agent);

impl S3Transport for UreqS3 {
    type Body = Vec<u8>;

    async fn send(&self, request: &S3Request) -> Result<S3Answer<Vec<u8>>, String> {
        let uri: ureq::http::Uri = request.url.parse().map_err(|e| format!("{e}"))?;
        let mut builder = ureq::http::Request::builder()
            .method(request.method)
            .uri(uri);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let http = builder
            .body(request.body.to_vec())
            .map_err(|e| e.to_string())?;
        let mut response = self.0.run(http).map_err(|e| e.to_string())?;
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(S3Answer {
            status,
            headers,
            body,
        })
    }

    async fn read(&self, body: Vec<u8>) -> Result<Vec<u8>, String> {
        Ok(body)
    }
}

/// Wall-clock time; sleeping blocks (the tests run one future at a time).
#[derive(Clone, Copy)]
struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    }
    async fn sleep(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

fn config(endpoint: &str) -> S3Config {
    S3Config {
        endpoint: endpoint.parse().unwrap(),
        region: "us-east-1".into(),
        bucket: stack_var("ZEC_S3_BUCKET"),
        path_style: true,
    }
}

fn credentials(secret: &str) -> Credentials {
    Credentials {
        access_key_id: stack_var("ZEC_S3_ACCESS_KEY"),
        secret_access_key: secret.to_owned(),
        session_token: None,
    }
}

fn store(secret: &str) -> S3Store<UreqS3, SystemClock> {
    S3Store::new(
        UreqS3(agent()),
        SystemClock,
        config(&stack_var("ZEC_S3_URL")),
        credentials(secret),
    )
}

/// Every case of the store contract holds for the S3 store on a server that checks `SigV4`.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn the_s3_store_keeps_the_contract() {
    let store = store(&stack_var("ZEC_S3_SECRET_KEY"));
    let prefix = format!("{}/", unique_prefix("s3-contract"));
    let started = std::time::Instant::now();
    let report = block_on(run(&store, &SystemClock, &prefix));
    if let Err(failure) = report.verify(&CASES) {
        panic!("{failure}");
    }
    eprintln!(
        "store contract: {} cases passed against s3s-fs in {:?}",
        report.cases.len(),
        started.elapsed()
    );
}

/// A wrong secret is refused by the server and is fatal (the operator must fix it), naming
/// the signature error and never the secret; nothing is written.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn a_wrong_secret_is_fatal() {
    let wrong = "wrong-secret-0123456789abcdefghij";
    let store = store(wrong);
    let key = format!("{}/wrong", unique_prefix("s3-secret"));
    let error = block_on(store.put(&key, b"x".to_vec(), &ObjectMeta::default())).unwrap_err();
    let StoreError::Fatal(text) = &error else {
        panic!("not fatal: {error:?}");
    };
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert!(!text.contains(wrong));
    assert!(!format!("{store:?}").contains(wrong));
    let right = self::store(&stack_var("ZEC_S3_SECRET_KEY"));
    assert!(
        block_on(right.get(&key)).unwrap().is_none(),
        "nothing was written"
    );
}

/// Nobody listening: retryable (after the bounded retries), not fatal.
#[test]
#[ignore = "needs the local stack (scripts/test)"]
fn an_unreachable_server_is_retryable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let store = S3Store::new(
        UreqS3(agent()),
        SystemClock,
        config(&endpoint),
        credentials(&stack_var("ZEC_S3_SECRET_KEY")),
    );
    let error = block_on(store.get("k")).unwrap_err();
    assert!(matches!(error, StoreError::Retryable(_)), "{error:?}");
}
