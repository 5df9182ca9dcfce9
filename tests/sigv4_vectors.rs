//! AWS's Signature Version 4 test suite against `origin::sigv4`: every case directory of
//! `tests/fixtures/sigv4/` (provenance in its README) is parsed, signed, and its canonical
//! request, string to sign, signature and `Authorization` header compared with the expected
//! files; the headers the signer returns must be those of the expected signed request.
//!
//! Two formats: the current suite (`request.txt`, `context.json`, `header-*.txt`) and two cases
//! of the original AWS suite that the current one lacks (`<case>.req`, `.creq`, `.sts`,
//! `.authz`, `.sreq`; one fixed context). A case that cannot be expressed is listed in
//! [`NOT_EXPRESSIBLE`] with the reason, and checked as far as it can be.
//!
//! Not `#[ignore]`d: no service is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::fs;
use std::path::Path;

use url::Url;
use zarr_edge_cache::origin::sigv4::{
    sign, Credentials, PathEncoding, Payload, SignableRequest, Signed, SigningParams,
    SigningSettings, SigningTime,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sigv4");

/// Why the `…-unnormalized` cases with dot segments cannot be expressed.
const DOT_SEGMENTS: &str = "its path keeps `.`/`..` segments unnormalised, but a request URL \
    is a WHATWG URL (the `url` crate, as `fetch` sends it), which always removes them, so that \
    path can never be sent; checked instead: the URL's path has none, and the case signs exactly \
    as its `-normalized` twin's expected files say";

/// Cases of the suite that cannot be expressed as a request this signer signs, with why.
const NOT_EXPRESSIBLE: &[(&str, &str)] = &[
    ("get-relative-unnormalized", DOT_SEGMENTS),
    ("get-relative-relative-unnormalized", DOT_SEGMENTS),
    ("get-slash-dot-slash-unnormalized", DOT_SEGMENTS),
    ("get-slash-pointless-dot-unnormalized", DOT_SEGMENTS),
];

/// The suite's example credentials (its `context.json` files, the original suite's README).
const SUITE_KEY: (&str, &str) = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");

/// Everything one signing needs besides the request.
struct Context {
    credentials: Credentials,
    region: String,
    service: String,
    time: SigningTime,
    settings: SigningSettings,
}

/// One signing of a case and which expected files it is compared with.
struct Run {
    context: Context,
    /// Compare the canonical request file.
    canonical: bool,
    /// Compare the string to sign, the signature, the `Authorization` header and the added
    /// headers (each where the case has the file).
    signature: bool,
}

/// A case's files, by role (`None` where the case has no such file).
struct Files {
    request: String,
    canonical_request: Option<String>,
    string_to_sign: Option<String>,
    signature: Option<String>,
    authorization: Option<String>,
    signed_request: Option<String>,
}

/// A request file parsed: the request line, the headers (folded lines unfolded with one
/// space, RFC 9112 §5.2), the body.
struct Parsed {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read(dir: &Path, name: &str) -> Option<String> {
    fs::read_to_string(dir.join(name)).ok()
}

fn parse_request(text: &str) -> Parsed {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("a request line");
    let (method, rest) = request_line.split_once(' ').expect("method and target");
    // The signed requests of double-url-encode and double-encode-path omit the version.
    let target = rest.strip_suffix(" HTTP/1.1").unwrap_or(rest);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("a folded line follows a header");
            last.1.push(' ');
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("name:value");
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Parsed {
        method: method.to_owned(),
        target: target.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

fn time(text: &str) -> SigningTime {
    SigningTime::parse(text).unwrap_or_else(|| panic!("time {text}"))
}

/// A case's `context.json`. Paths are encoded once ([`PathEncoding::Single`]): that is what
/// the suite expects (get-space-normalized's `/example%20space/` stays `%20`; smithy-rs
/// ignores that case for want of a double-encoding key in `context.json`); double encoding is
/// checked by double-url-encode and double-encode-path, which test it.
fn context_from_json(text: &str) -> Context {
    let json: serde_json::Value = serde_json::from_str(text).expect("context.json");
    let string = |v: &serde_json::Value| v.as_str().expect("a string").to_owned();
    let flag = |key: &str| json.get(key).and_then(serde_json::Value::as_bool);
    let credentials = &json["credentials"];
    let mut creds = Credentials::new(
        string(&credentials["access_key_id"]),
        string(&credentials["secret_access_key"]),
    );
    if let Some(token) = credentials.get("token") {
        creds = creds.with_session_token(string(token));
    }
    let timestamp = string(&json["timestamp"]).replace(['-', ':'], "");
    Context {
        credentials: creds,
        region: string(&json["region"]),
        service: string(&json["service"]),
        time: time(&timestamp),
        settings: SigningSettings {
            normalize_path: flag("normalize").expect("normalize"),
            path_encoding: PathEncoding::Single,
            content_sha256_header: flag("sign_body").expect("sign_body"),
            sign_session_token: !flag("omit_session_token").unwrap_or(false),
        },
    }
}

fn context(key: (&str, &str), region: &str, service: &str, at: &str, enc: PathEncoding) -> Context {
    Context {
        credentials: Credentials::new(key.0, key.1),
        region: region.to_owned(),
        service: service.to_owned(),
        time: time(at),
        settings: SigningSettings {
            path_encoding: enc,
            ..SigningSettings::OTHER_SERVICES
        },
    }
}

/// The runs of a case without `context.json`: smithy-rs keeps these two contexts in its test
/// code (`canonical_request.rs` `test_double_url_encode*`, `sign.rs` `test_sign_url_escape`).
fn runs_in_code(name: &str) -> Option<Vec<Run>> {
    let double = PathEncoding::Double;
    match name {
        // Canonical request, string to sign and Authorization of one signing.
        "double-url-encode" => Some(vec![Run {
            context: context(SUITE_KEY, "us-east-2", "lambda", "20210511T154045Z", double),
            canonical: true,
            signature: true,
        }]),
        // The canonical request file was made at 2021-05-11T15:40:45Z, the signed request at
        // the suite's time with smithy-rs's test key pair: two signings.
        "double-encode-path" => Some(vec![
            Run {
                context: context(
                    SUITE_KEY,
                    "us-east-1",
                    "service",
                    "20210511T154045Z",
                    double,
                ),
                canonical: true,
                signature: false,
            },
            Run {
                context: context(
                    ("ANOTREAL", "notrealrnrELgWzOk3IfjzDKtFBhDby"),
                    "us-east-1",
                    "service",
                    "20150830T123600Z",
                    double,
                ),
                canonical: false,
                signature: true,
            },
        ]),
        _ => None,
    }
}

/// The case's files and runs, in either format.
fn load(dir: &Path, name: &str) -> (Files, Vec<Run>) {
    if let Some(request) = read(dir, &format!("{name}.req")) {
        // The original suite: one context for all, in its README.
        let single = PathEncoding::Single;
        let old = |ext: &str| read(dir, &format!("{name}.{ext}"));
        let files = Files {
            request,
            canonical_request: old("creq"),
            string_to_sign: old("sts"),
            signature: None,
            authorization: old("authz"),
            signed_request: old("sreq"),
        };
        let run = Run {
            context: context(
                SUITE_KEY,
                "us-east-1",
                "service",
                "20150830T123600Z",
                single,
            ),
            canonical: true,
            signature: true,
        };
        return (files, vec![run]);
    }
    let request = read(dir, "request.txt").unwrap_or_else(|| panic!("{name}: no request file"));
    let signed_request = read(dir, "header-signed-request.txt");
    let authorization = signed_request
        .as_deref()
        .map(parse_request)
        .and_then(|parsed| header(&parsed.headers, "authorization").map(str::to_owned));
    let files = Files {
        request,
        canonical_request: read(dir, "header-canonical-request.txt"),
        string_to_sign: read(dir, "header-string-to-sign.txt"),
        signature: read(dir, "header-signature.txt"),
        authorization,
        signed_request,
    };
    let runs = match read(dir, "context.json") {
        Some(json) => vec![Run {
            context: context_from_json(&json),
            canonical: true,
            signature: true,
        }],
        None => runs_in_code(name).unwrap_or_else(|| panic!("{name}: no context")),
    };
    (files, runs)
}

/// Signs the case's request in `context`; returns the signature and the URL path sent.
fn sign_case(request: &str, context: &Context) -> (Signed, String) {
    let parsed = parse_request(request);
    let host = header(&parsed.headers, "host").expect("a Host header");
    let url = Url::parse(&format!("https://{host}{}", parsed.target)).expect("a URL");
    let signable = SignableRequest {
        method: &parsed.method,
        url: &url,
        headers: &parsed.headers,
        payload: Payload::Bytes(&parsed.body),
    };
    let params = SigningParams {
        region: &context.region,
        service: &context.service,
        time: context.time,
        settings: context.settings,
    };
    let signed = sign(&signable, &context.credentials, &params).expect("signs");
    (signed, url.path().to_owned())
}

/// Compares `actual` with `expected` (trailing whitespace aside), noting a mismatch.
fn check(failures: &mut Vec<String>, case: &str, what: &str, actual: &str, expected: &str) {
    if actual.trim_end() != expected.trim_end() {
        failures.push(format!(
            "{case}: {what}\n--- expected\n{expected}\n--- actual\n{actual}\n"
        ));
    }
}

/// Runs `runs` on `files`, noting mismatches; returns whether the canonical request and the
/// `Authorization` header were each compared at least once.
fn run_case(failures: &mut Vec<String>, name: &str, files: &Files, runs: &[Run]) -> bool {
    let (mut canonical_checked, mut authorization_checked) = (false, false);
    for run in runs {
        let (signed, _) = sign_case(&files.request, &run.context);
        if run.canonical {
            if let Some(expected) = &files.canonical_request {
                check(
                    failures,
                    name,
                    "canonical request",
                    &signed.canonical_request,
                    expected,
                );
                canonical_checked = true;
            }
        }
        if !run.signature {
            continue;
        }
        if let Some(expected) = &files.string_to_sign {
            check(
                failures,
                name,
                "string to sign",
                &signed.string_to_sign,
                expected,
            );
        }
        if let Some(expected) = &files.signature {
            check(failures, name, "signature", &signed.signature, expected);
        }
        if let Some(expected) = &files.authorization {
            let actual = signed.header("authorization").unwrap_or_default();
            check(failures, name, "Authorization", actual, expected.trim());
            authorization_checked = true;
        }
        if let Some(signed_request) = &files.signed_request {
            let expected = parse_request(signed_request).headers;
            for (added, value) in &signed.headers {
                if header(&expected, added) != Some(value.as_str()) {
                    failures.push(format!(
                        "{name}: returned header {added}: {value} is not in the signed request"
                    ));
                }
            }
        }
    }
    canonical_checked && authorization_checked
}

#[test]
fn every_case_of_the_aws_sigv4_test_suite() {
    let mut names: Vec<String> = fs::read_dir(FIXTURES)
        .expect("tests/fixtures/sigv4")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.is_dir())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();

    let mut failures = Vec::new();
    let mut passed = Vec::new();
    for name in &names {
        if NOT_EXPRESSIBLE.iter().any(|(n, _)| n == name) {
            continue;
        }
        let dir = Path::new(FIXTURES).join(name);
        let (files, runs) = load(&dir, name);
        let before = failures.len();
        if !run_case(&mut failures, name, &files, &runs) {
            failures.push(format!(
                "{name}: no canonical request or Authorization compared"
            ));
        }
        if failures.len() == before {
            passed.push(name.as_str());
        }
    }

    for (name, reason) in NOT_EXPRESSIBLE {
        assert!(names.iter().any(|n| n == name), "{name} listed but absent");
        let dir = Path::new(FIXTURES).join(name);
        let (files, runs) = load(&dir, name);
        let raw = parse_request(&files.request).target;
        let (_, sent) = sign_case(&files.request, &runs[0].context);
        assert_ne!(
            sent, raw,
            "{name}: the URL kept {raw}; the reason no longer holds"
        );
        assert!(
            !sent.split('/').any(|s| s == "." || s == ".."),
            "{name}: {sent}"
        );
        let twin = name.replace("-unnormalized", "-normalized");
        let (twin_files, _) = load(&Path::new(FIXTURES).join(&twin), &twin);
        let as_twin = Files {
            request: files.request,
            ..twin_files
        };
        if !run_case(&mut failures, name, &as_twin, &runs) {
            failures.push(format!("{name}: its twin {twin} has no expected files"));
        }
        println!("not expressible: {name}: {reason}");
    }

    println!("passed ({}): {}", passed.len(), passed.join(", "));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(passed.len() + NOT_EXPRESSIBLE.len(), names.len());
    assert!(passed.len() >= 38, "only {} cases ran", passed.len());
}

#[test]
fn the_request_parser_unfolds_folded_header_lines() {
    let parsed =
        parse_request("GET / HTTP/1.1\nHost:h\nMy-Header1:value1\n  value2\n     value3\n");
    assert_eq!(
        parsed.headers[1],
        (
            "My-Header1".to_owned(),
            "value1   value2      value3".to_owned()
        )
    );
    let parsed = parse_request("POST / HTTP/1.1\nHost:h\n\na=b\nc");
    assert_eq!(parsed.body, b"a=b\nc");
}
