//! Turning the URLs a reference set names into `http(s)://` URLs the worker can fetch.
//!
//! - `http://` and `https://` URLs are kept as written.
//! - `s3://bucket/key` (and `s3a://`) needs an [`S3Endpoint`]: path-style gives
//!   `{endpoint}/{bucket}/{key}`, virtual-hosted gives `{scheme}://{bucket}.{host}{path}/{key}`
//!   (`https://s3.us-west-2.amazonaws.com` → `https://bucket.s3.us-west-2.amazonaws.com/key`).
//!   The key is percent-encoded except for unreserved characters and `/`, since S3 keys are raw
//!   names (s3fs sends `%` and spaces as part of the name).
//! - A URL without a scheme is a relative reference, resolved against the base URL (the
//!   references file's own URL) as RFC 3986 §5.2 and browsers do: `x.nc`, `../x.nc`, `/abs/x.nc`,
//!   `//host/x.nc`, `?query`. The result then follows the rules above.
//! - Anything else (`file://`, `gs://`, `memory://`, `C:\…`), an empty URL, `s3://` without an
//!   endpoint, or a relative URL without a base, is an error.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::S3Endpoint;

/// Resolves reference URLs; built once per load from the options.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolver {
    base: Option<Base>,
    s3: Option<S3Map>,
}

/// An absolute base URL, split per RFC 3986.
#[derive(Debug, Clone)]
struct Base {
    scheme: String,
    authority: Option<String>,
    path: String,
    query: Option<String>,
}

#[derive(Debug, Clone)]
struct S3Map {
    /// `http` or `https`.
    scheme: String,
    /// `host[:port]`.
    host: String,
    /// The endpoint's path, without a trailing `/` (usually empty).
    path: String,
    path_style: bool,
}

impl Resolver {
    /// Validates the options. `Err` says which option is wrong.
    pub(crate) fn new(
        base_url: Option<&str>,
        s3: Option<&S3Endpoint>,
    ) -> Result<Self, (String, String)> {
        let base = match base_url {
            None => None,
            Some(url) => {
                let parts = split(url);
                let Some(scheme) = parts.scheme else {
                    return Err((url.into(), "the base URL is not absolute".into()));
                };
                Some(Base {
                    scheme: scheme.to_ascii_lowercase(),
                    authority: parts.authority.map(str::to_owned),
                    path: parts.path.to_owned(),
                    query: parts.query.map(str::to_owned),
                })
            }
        };
        let s3 = match s3 {
            None => None,
            Some(endpoint) => Some(S3Map::new(endpoint)?),
        };
        Ok(Self { base, s3 })
    }

    /// The fetchable URL for `url`, or why there is none.
    pub(crate) fn resolve<'a>(&self, url: &'a str) -> Result<Cow<'a, str>, String> {
        if url.is_empty() {
            return Err("empty URL".into());
        }
        let parts = split(url);
        if parts.scheme.is_some() {
            return self.absolute(url).map(|resolved| match resolved {
                Some(owned) => Cow::Owned(owned),
                None => Cow::Borrowed(url),
            });
        }
        let Some(base) = &self.base else {
            return Err("relative URL and no base URL to resolve it against".into());
        };
        let joined = base.join(&parts);
        Ok(Cow::Owned(self.absolute(&joined)?.unwrap_or(joined)))
    }

    /// An absolute URL: `None` to keep it as is, `Some` for its rewriting.
    fn absolute(&self, url: &str) -> Result<Option<String>, String> {
        let (scheme, rest) = url.split_once(':').unwrap_or(("", url));
        let scheme = scheme.to_ascii_lowercase();
        match scheme.as_str() {
            "http" | "https" if rest.starts_with("//") && rest.len() > 2 => Ok(None),
            "http" | "https" => Err("an http(s) URL needs //host".into()),
            "s3" | "s3a" => match &self.s3 {
                Some(map) => map.map(rest.strip_prefix("//").unwrap_or(rest)).map(Some),
                None => Err("s3:// URL but no S3 endpoint is configured".into()),
            },
            _ => Err(format!(
                "unsupported scheme {scheme:?} (only http, https, s3, or relative)"
            )),
        }
    }
}

impl S3Map {
    fn new(endpoint: &S3Endpoint) -> Result<Self, (String, String)> {
        let bad = |reason: &str| (endpoint.endpoint.clone(), reason.to_owned());
        let parts = split(&endpoint.endpoint);
        let scheme = parts
            .scheme
            .map(str::to_ascii_lowercase)
            .filter(|s| s == "http" || s == "https")
            .ok_or_else(|| bad("the S3 endpoint must be an http(s):// URL"))?;
        let host = parts
            .authority
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("the S3 endpoint has no host"))?;
        if parts.query.is_some() || parts.fragment.is_some() {
            return Err(bad("the S3 endpoint must not have a query or fragment"));
        }
        Ok(Self {
            scheme,
            host: host.to_owned(),
            path: parts.path.trim_end_matches('/').to_owned(),
            path_style: endpoint.path_style,
        })
    }

    /// `bucket/key` → the endpoint's URL for it.
    fn map(&self, bucket_and_key: &str) -> Result<String, String> {
        let (bucket, key) = bucket_and_key
            .split_once('/')
            .unwrap_or((bucket_and_key, ""));
        if bucket.is_empty() {
            return Err("s3:// URL without a bucket".into());
        }
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(format!("{bucket:?} is not an S3 bucket name"));
        }
        if key.is_empty() {
            return Err("s3:// URL without an object key".into());
        }
        let key = encode_key(key);
        let Self {
            scheme, host, path, ..
        } = self;
        Ok(if self.path_style {
            format!("{scheme}://{host}{path}/{bucket}/{key}")
        } else {
            format!("{scheme}://{bucket}.{host}{path}/{key}")
        })
    }
}

/// Percent-encodes all but RFC 3986 unreserved characters and `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The five components of a URI reference (RFC 3986 appendix B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn split(url: &str) -> Parts<'_> {
    let (rest, fragment) = match url.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (url, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (scheme, rest) = match rest.split_once(':') {
        Some((scheme, after)) if is_scheme(scheme) => (Some(scheme), after),
        _ => (None, rest),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    Parts {
        scheme,
        authority,
        path,
        query,
        fragment,
    }
}

/// `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

impl Base {
    /// RFC 3986 §5.2.2 for a reference without a scheme.
    fn join(&self, r: &Parts<'_>) -> String {
        let (authority, path, query) = if let Some(authority) = r.authority {
            (Some(authority), remove_dot_segments(r.path), r.query)
        } else if r.path.is_empty() {
            (
                self.authority.as_deref(),
                self.path.clone(),
                r.query.or(self.query.as_deref()),
            )
        } else if r.path.starts_with('/') {
            (
                self.authority.as_deref(),
                remove_dot_segments(r.path),
                r.query,
            )
        } else {
            let merged = if self.authority.is_some() && self.path.is_empty() {
                format!("/{}", r.path)
            } else {
                let dir = self.path.rfind('/').map_or("", |i| &self.path[..=i]);
                format!("{dir}{}", r.path)
            };
            (
                self.authority.as_deref(),
                remove_dot_segments(&merged),
                r.query,
            )
        };
        let mut out = format!("{}:", self.scheme);
        if let Some(authority) = authority {
            out.push_str("//");
            out.push_str(authority);
        }
        out.push_str(&path);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        if let Some(fragment) = r.fragment {
            out.push('#');
            out.push_str(fragment);
        }
        out
    }
}

/// RFC 3986 §5.2.4: removes `.` and `..` segments.
fn remove_dot_segments(path: &str) -> String {
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.split('/').skip(usize::from(absolute)).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if i == last && matches!(*segment, "." | "..") {
            out.push("");
        }
    }
    let joined = out.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver(base: Option<&str>, s3: Option<(&str, bool)>) -> Resolver {
        let s3 = s3.map(|(endpoint, path_style)| S3Endpoint {
            endpoint: endpoint.into(),
            path_style,
        });
        Resolver::new(base, s3.as_ref()).unwrap()
    }

    /// Relative references resolve as RFC 3986 §5.4's normal and abnormal examples.
    #[test]
    fn relative_urls_resolve_as_rfc_3986() {
        let r = resolver(Some("http://a/b/c/d;p?q"), None);
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            ("g?y#s", "http://a/b/c/g?y#s"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y#s"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
        ];
        for (reference, want) in cases {
            assert_eq!(r.resolve(reference).unwrap(), want, "{reference}");
        }
        let host_only = resolver(Some("https://origin.test"), None);
        assert_eq!(
            host_only.resolve("x.nc").unwrap(),
            "https://origin.test/x.nc"
        );
    }

    /// http(s) URLs pass unchanged (borrowed); s3 maps to either addressing style.
    #[test]
    fn absolute_urls_and_s3_mapping() {
        let path = resolver(None, Some(("http://localhost:9000/", true)));
        assert!(matches!(
            path.resolve("https://h/x.nc").unwrap(),
            Cow::Borrowed("https://h/x.nc")
        ));
        assert_eq!(
            path.resolve("HTTP://h/x.nc").unwrap(),
            "HTTP://h/x.nc",
            "scheme case is kept"
        );
        assert_eq!(
            path.resolve("s3://bucket/path/file.nc").unwrap(),
            "http://localhost:9000/bucket/path/file.nc"
        );
        assert_eq!(
            path.resolve("s3a://b/a b%c+d.nc").unwrap(),
            "http://localhost:9000/b/a%20b%25c%2Bd.nc"
        );
        let virtual_hosted = resolver(None, Some(("https://s3.us-west-2.amazonaws.com", false)));
        assert_eq!(
            virtual_hosted.resolve("s3://bucket/path/file.nc").unwrap(),
            "https://bucket.s3.us-west-2.amazonaws.com/path/file.nc"
        );
        let relative_to_s3 = resolver(
            Some("s3://bkt/refs/ds.json"),
            Some(("https://e.test", true)),
        );
        assert_eq!(
            relative_to_s3.resolve("../data/x.nc").unwrap(),
            "https://e.test/bkt/data/x.nc"
        );
    }

    /// Unusable URLs are errors that say why.
    #[test]
    fn unusable_urls_are_errors() {
        let none = resolver(None, None);
        let with_base = resolver(
            Some("https://o.test/refs/a.json"),
            Some(("https://e", true)),
        );
        let cases: [(&Resolver, &str, &str); 9] = [
            (&none, "", "empty"),
            (&none, "x.nc", "no base URL"),
            (&none, "s3://b/k", "no S3 endpoint"),
            (&none, "file:///tmp/x.nc", "unsupported scheme \"file\""),
            (&none, "gs://b/k", "unsupported scheme \"gs\""),
            (&none, "C:\\data\\x.nc", "unsupported scheme \"c\""),
            (&none, "http:x.nc", "needs //host"),
            (&with_base, "s3://b", "without an object key"),
            (&with_base, "s3://b!/k", "bucket name"),
        ];
        for (r, url, want) in cases {
            let error = r.resolve(url).unwrap_err();
            assert!(error.contains(want), "{url}: {error}");
        }
    }

    /// Bad options are reported with the offending value.
    #[test]
    fn bad_options_are_rejected() {
        assert!(Resolver::new(Some("refs/a.json"), None).is_err());
        let endpoint = |e: &str| S3Endpoint {
            endpoint: e.into(),
            path_style: true,
        };
        for bad in ["s3.amazonaws.com", "ftp://h", "https://", "https://h?x=1"] {
            let error = Resolver::new(None, Some(&endpoint(bad))).unwrap_err();
            assert_eq!(error.0, bad);
        }
    }
}
