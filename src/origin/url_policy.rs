//! Which URLs the worker may fetch, decided on the URL exactly as `fetch` will send it.
//!
//! Every origin URL (a reference's chunk URL, a redirect's `Location`, a dataset's refs URL) is
//! parsed once with the `url` crate, which implements the WHATWG URL standard that the runtime's
//! `fetch` follows: backslashes end the authority, tabs and newlines are dropped, numeric IPv4
//! forms (`2130706433`, `0x7f.1`, `017700000001`) are normalised, hosts are lower-cased and
//! percent-decoded. The check compares that parsed host and port, and the request is sent to the
//! URL's serialisation, so what was checked is what is fetched.
//!
//! Rules:
//! - only `http` and `https`, with a host, without user info (credentials in a reference would
//!   be sent to the origin and shown in listings);
//! - a chunk URL's `host[:port]` must be one of the dataset's `allowed_hosts` (`host` alone means
//!   the scheme's default port);
//! - loopback, private, link-local, unique-local, shared and reserved addresses (and
//!   `localhost`, `*.localhost`), [`is_internal`], are fetched only when the dataset lists that
//!   host *explicitly*: a default derived from the refs URL never admits them.
//!
//! Pure: no I/O. Names what was refused without the URL's query (presigned URLs carry
//! signatures there), see [`redact`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// How many redirects an origin may answer in a row before the fetch is refused.
pub const MAX_REDIRECTS: usize = 3;

/// One `allowed_hosts` entry, normalised the way the URL parser normalises hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    /// The host as the URL parser serialises it, without a trailing dot.
    host: String,
    /// `None`: the scheme's default port only.
    port: Option<u16>,
}

/// A dataset's allowed hosts, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    hosts: Vec<AllowedHost>,
    /// Whether the entries were written in the configuration (not derived from the refs URL):
    /// only explicit entries admit internal addresses.
    explicit: bool,
    /// The chunk URLs this policy allowed, parsed.
    allowed: AllowedUrls,
}

/// How many allowed chunk URLs a policy remembers; past that it forgets them all and starts
/// again (a reference set's chunks live in few files, a GRIB archive's in many).
const ALLOWED_URLS: usize = 256;

/// The chunk URLs a policy allowed, as they were parsed. Every read of a chunk, a hit too,
/// checks its reference's URL; parsing it is most of a check and the answer depends only on
/// the URL and the policy, which does not change. Not part of the policy's value: a clone
/// starts empty and two policies compare by their hosts alone.
#[derive(Default)]
struct AllowedUrls(RefCell<HashMap<Box<str>, Url>>);

impl AllowedUrls {
    fn get(&self, url: &str) -> Option<Url> {
        self.0.borrow().get(url).cloned()
    }

    fn remember(&self, url: &str, parsed: &Url) {
        let mut urls = self.0.borrow_mut();
        if urls.len() >= ALLOWED_URLS {
            urls.clear();
        }
        urls.insert(url.into(), parsed.clone());
    }
}

impl Clone for AllowedUrls {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for AllowedUrls {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AllowedUrls {}

impl fmt::Debug for AllowedUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} remembered", self.0.borrow().len())
    }
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL `fetch` would accept as we mean it.
    #[error("{url} is not a valid http(s) URL: {why}")]
    Invalid {
        /// The URL, redacted.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// Its host is not in the dataset's `allowed_hosts`.
    #[error("{url}: host {host} is not in the dataset's allowed_hosts")]
    HostNotAllowed {
        /// The URL, redacted.
        url: String,
        /// The parsed `host[:port]`.
        host: String,
    },
    /// Its host is a loopback, private or otherwise internal address that the dataset does not
    /// list explicitly.
    #[error(
        "{url}: {host} is a loopback, private or link-local address; list it in the dataset's \
         allowed_hosts to allow it"
    )]
    Internal {
        /// The URL, redacted.
        url: String,
        /// The parsed `host[:port]`.
        host: String,
    },
}

impl HostPolicy {
    /// Parses `allowed_hosts` entries (`host` or `host:port`; IPv6 in brackets). `explicit` says
    /// whether they were written in the configuration or derived from the refs URL.
    ///
    /// # Errors
    /// The entry that is not a host, and why.
    pub fn new(entries: &[String], explicit: bool) -> Result<Self, String> {
        let hosts = entries
            .iter()
            .map(|entry| parse_entry(entry))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            hosts,
            explicit,
            allowed: AllowedUrls::default(),
        })
    }

    /// The policy that allows the host of `url` (a refs URL) as the default, not explicitly.
    ///
    /// # Errors
    /// [`Refusal::Invalid`] when `url` is not a fetchable URL.
    pub fn derived_from(url: &str) -> Result<Self, Refusal> {
        let parsed = parse(url)?;
        let host = host_string(&parsed);
        Ok(Self {
            hosts: vec![AllowedHost {
                host,
                port: parsed.port(),
            }],
            explicit: false,
            allowed: AllowedUrls::default(),
        })
    }

    /// The entries, as written back in listings (`host` or `host:port`).
    #[must_use]
    pub fn entries(&self) -> Vec<String> {
        self.hosts
            .iter()
            .map(|h| match h.port {
                Some(port) => format!("{}:{port}", h.host),
                None => h.host.clone(),
            })
            .collect()
    }

    /// Whether `url`'s host and port are in the list.
    fn lists(&self, url: &Url) -> bool {
        let host = host_string(url);
        let port = url.port_or_known_default();
        self.hosts.iter().any(|allowed| {
            allowed.host == host
                && match allowed.port {
                    Some(p) => Some(p) == port,
                    None => url.port().is_none(),
                }
        })
    }

    /// `Ok` with the URL to send when chunks may be fetched from `url`: its host and port are
    /// listed, and an internal address only when listed explicitly.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check_chunk_url(&self, url: &str) -> Result<Url, Refusal> {
        if let Some(parsed) = self.allowed.get(url) {
            return Ok(parsed);
        }
        let parsed = parse(url)?;
        if !self.lists(&parsed) {
            return Err(Refusal::HostNotAllowed {
                url: redact(url),
                host: host_port(&parsed),
            });
        }
        if !self.explicit && is_internal(&parsed) {
            return Err(Refusal::Internal {
                url: redact(url),
                host: host_port(&parsed),
            });
        }
        self.allowed.remember(url, &parsed);
        Ok(parsed)
    }

    /// `Ok` with the URL to send when a reference file may be fetched from `url`: any public
    /// host, an internal one only when listed explicitly.
    ///
    /// # Errors
    /// The [`Refusal`].
    pub fn check_refs_url(&self, url: &str) -> Result<Url, Refusal> {
        let parsed = parse(url)?;
        if is_internal(&parsed) && !(self.explicit && self.lists(&parsed)) {
            return Err(Refusal::Internal {
                url: redact(url),
                host: host_port(&parsed),
            });
        }
        Ok(parsed)
    }
}

impl HostPolicy {
    /// The policy for reading files that live beside a reference file (a parquet set's record
    /// files) at `url`: that URL's host only, allowed as [`check_refs_url`](Self::check_refs_url)
    /// allows reference files (any public host; an internal one only when listed explicitly).
    ///
    /// # Errors
    /// The [`Refusal`] of `url` as a reference file.
    pub fn for_refs_file(&self, url: &str) -> Result<Self, Refusal> {
        let parsed = self.check_refs_url(url)?;
        Ok(Self {
            hosts: vec![AllowedHost {
                host: host_string(&parsed),
                port: parsed.port(),
            }],
            explicit: self.explicit && self.lists(&parsed),
            allowed: AllowedUrls::default(),
        })
    }
}

/// The target of a redirect from `from`: its `Location` resolved against it.
///
/// # Errors
/// [`Refusal::Invalid`] when the location does not resolve to a URL.
pub fn redirect_target(from: &Url, location: &str) -> Result<String, Refusal> {
    from.join(location)
        .map(String::from)
        .map_err(|e| Refusal::Invalid {
            url: redact(location),
            why: e.to_string(),
        })
}

fn parse(url: &str) -> Result<Url, Refusal> {
    let invalid = |why: String| Refusal::Invalid {
        url: redact(url),
        why,
    };
    let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme {:?} is not http(s)",
            parsed.scheme()
        )));
    }
    if parsed.host().is_none() {
        return Err(invalid("no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("user info (credentials) in the URL".into()));
    }
    Ok(parsed)
}

fn parse_entry(entry: &str) -> Result<AllowedHost, String> {
    let bad = |why: &str| format!("allowed_hosts entry {entry:?} {why}");
    if entry.is_empty() || entry.contains(['/', '\\', '@', '?', '#']) || entry.trim() != entry {
        return Err(bad("must be a host or host:port"));
    }
    let url = Url::parse(&format!("http://{entry}/")).map_err(|e| bad(&format!("({e})")))?;
    if url.host().is_none() || url.path() != "/" {
        return Err(bad("must be a host or host:port"));
    }
    // `host:80` is written with a port: keep it, `port()` drops the scheme's default.
    let port = match entry.rsplit_once(':') {
        Some((_, port)) if !entry.ends_with(']') => Some(
            port.parse::<u16>()
                .map_err(|_| bad("has an invalid port"))?,
        ),
        _ => None,
    };
    Ok(AllowedHost {
        host: host_string(&url),
        port,
    })
}

/// The parsed host as serialised (`[::1]` for IPv6), lower-case, without a trailing dot.
fn host_string(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    host.strip_suffix('.').unwrap_or(host).to_owned()
}

/// `host` or `host:port` of a URL as the allowed-hosts check compares them (also what a
/// private origin's signature is bound to).
#[must_use]
pub fn host_port(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", host_string(url)),
        None => host_string(url),
    }
}

/// Whether the URL's host is a loopback, private, link-local, unique-local, shared, multicast or
/// reserved address, an IPv6 form embedding one (IPv4-mapped, IPv4-compatible, NAT64, 6to4), or
/// `localhost` / `*.localhost`.
#[must_use]
pub fn is_internal(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => internal_v4(ip),
        Some(Host::Ipv6(ip)) => internal_v6(ip),
        Some(Host::Domain(name)) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            name == "localhost" || name.ends_with(".localhost") || name.is_empty()
        }
        None => true,
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        internal_v4(Ipv4Addr::new(a, b, c, d))
    };
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link local, fec0::/10 site local (deprecated).
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the IPv4 address decides.
        || (segments[..5] == [0; 5] && matches!(segments[5], 0 | 0xffff)
            && embedded(segments[6], segments[7]))
        // 64:ff9b::/96 NAT64.
        || (segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] && embedded(segments[6], segments[7]))
        // 2002::/16 6to4 carries an IPv4 address in bits 16..48.
        || (segments[0] == 0x2002 && embedded(segments[1], segments[2]))
}

/// `url` without its query, fragment and user info: safe to put in answers and logs (presigned
/// URLs carry their signature in the query). Text that does not parse is cut at `?`/`#`.
#[must_use]
pub fn redact(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.into()
        }
        _ => {
            let end = url.find(['?', '#']).unwrap_or(url.len());
            url[..end].to_owned()
        }
    }
}

/// `text` (an error message) with every `http(s)://` URL in it [`redact`]ed.
#[must_use]
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let next_url = |s: &str| {
        [s.find("http://"), s.find("https://")]
            .into_iter()
            .flatten()
            .min()
    };
    while let Some(start) = next_url(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')'))
            .unwrap_or(tail.len());
        out.push_str(&redact(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str]) -> HostPolicy {
        HostPolicy::new(
            &hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
            true,
        )
        .unwrap()
    }

    /// Hostile URLs against a dataset that allows only `127.0.0.1:8001` and `data.test`: each is
    /// refused, or allowed and fetched as the URL the check saw.
    #[test]
    fn hostile_urls_table() {
        let p = policy(&["127.0.0.1:8001", "data.test"]);
        // (url, Some(fetched URL) when allowed)
        let cases: &[(&str, Option<&str>)] = &[
            ("http://127.0.0.1:8001/x", Some("http://127.0.0.1:8001/x")),
            // A backslash ends the authority (WHATWG): the host is 127.0.0.1:8002.
            ("http://127.0.0.1:8002\\@127.0.0.1:8001/x", None),
            (
                "http://127.0.0.1:8001\\@127.0.0.1:8002/x",
                Some("http://127.0.0.1:8001/@127.0.0.1:8002/x"),
            ),
            // User info is refused even when the host is allowed.
            ("http://127.0.0.1:8002@127.0.0.1:8001/x", None),
            ("http://user:pw@data.test/x", None),
            ("http://data.test@127.0.0.1:8002/x", None),
            // Numeric IPv4 forms normalise to 127.0.0.1.
            ("http://2130706433:8001/x", Some("http://127.0.0.1:8001/x")),
            ("http://2130706433:8002/x", None),
            ("http://0x7f.1:8001/x", Some("http://127.0.0.1:8001/x")),
            (
                "http://017700000001:8001/x",
                Some("http://127.0.0.1:8001/x"),
            ),
            ("http://0x7f000001:8002/x", None),
            // Percent-encoded host characters.
            (
                "http://%31%32%37.0.0.1:8001/x",
                Some("http://127.0.0.1:8001/x"),
            ),
            ("http://127.0.0.1%3A8002/x", None),
            ("http://data%2Etest/x", Some("http://data.test/x")),
            // Mixed case and trailing dots.
            ("HTTP://DATA.Test/x", Some("http://data.test/x")),
            ("http://data.test./x", Some("http://data.test./x")),
            // Ports: `data.test` alone is the default port only.
            ("http://data.test:80/x", Some("http://data.test/x")),
            ("http://data.test:8080/x", None),
            ("https://data.test/x", Some("https://data.test/x")),
            // Tabs and newlines inside the URL are dropped, as fetch drops them.
            ("http://127.0.0.1:80\t01/x", Some("http://127.0.0.1:8001/x")),
            ("http://data.\ntest/x", Some("http://data.test/x")),
            ("http://127.0.0.1:80\n02/x", None),
            // IPv6 literals and zone ids.
            ("http://[::1]:8001/x", None),
            ("http://[::ffff:127.0.0.1]:8001/x", None),
            ("http://[fe80::1%25eth0]/x", None),
            // Other schemes, no host, garbage.
            ("file:///etc/passwd", None),
            ("ftp://data.test/x", None),
            ("http:///x", None),
            ("http://", None),
            ("//data.test/x", None),
            ("not a url", None),
        ];
        // The second round is answered from the URLs the first one allowed.
        for round in 0..2 {
            for (url, want) in cases {
                let got = p.check_chunk_url(url);
                match want {
                    Some(fetched) => {
                        assert_eq!(got.unwrap().as_str(), *fetched, "round {round}: {url:?}");
                    }
                    None => assert!(got.is_err(), "round {round}: {url:?} allowed as {got:?}"),
                }
            }
        }
    }

    /// A policy remembers at most [`ALLOWED_URLS`] allowed URLs, answers as a fresh check does
    /// past that bound, and its clones compare equal whatever each remembers.
    #[test]
    fn remembered_urls_are_bounded() {
        let p = policy(&["data.test"]);
        for round in 0..2 {
            for i in 0..ALLOWED_URLS + 40 {
                let url = format!("https://data.test/f{i}.nc");
                assert_eq!(p.check_chunk_url(&url).unwrap().as_str(), url, "{round}");
                assert!(p.allowed.0.borrow().len() <= ALLOWED_URLS);
            }
        }
        assert!(p.check_chunk_url("https://evil.test/f1.nc").is_err());
        assert!(p.check_chunk_url("https://evil.test/f1.nc").is_err());
        let fresh = p.clone();
        assert!(fresh.allowed.0.borrow().is_empty());
        assert_eq!(fresh, p);
        assert_eq!(fresh, policy(&["data.test"]));
        assert_ne!(fresh, policy(&["other.test"]));
    }

    /// Internal addresses, in every spelling, are internal; public ones are not.
    #[test]
    fn internal_addresses() {
        let internal = [
            "http://127.0.0.1/",
            "http://127.255.0.9/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/",
            "http://100.64.0.1/",
            "http://100.127.255.255/",
            "http://0.0.0.0/",
            "http://0/",
            "http://0x0a.1/",
            "http://012.1.2.3/",
            "http://167772161/",
            "http://255.255.255.255/",
            "http://224.0.0.1/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://%6c%6fcalhost/",
        ];
        for url in internal {
            assert!(is_internal(&Url::parse(url).unwrap()), "{url}");
        }
        let public = [
            "http://8.8.8.8/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
            "http://192.169.0.1/",
            "http://[2606:4700::1111]/",
            "http://[::ffff:8.8.8.8]/",
            "http://data.example.org/",
            "http://localhost.example.org/",
            "http://s3.us-west-2.amazonaws.com/",
        ];
        for url in public {
            assert!(!is_internal(&Url::parse(url).unwrap()), "{url}");
        }
    }

    /// A default derived from the refs URL never admits an internal host; an explicit entry
    /// does, for exactly that host and port.
    #[test]
    fn internal_hosts_need_an_explicit_entry() {
        let derived = HostPolicy::derived_from("http://127.0.0.1:8001/refs/a.json").unwrap();
        assert!(matches!(
            derived.check_chunk_url("http://127.0.0.1:8001/x"),
            Err(Refusal::Internal { .. })
        ));
        assert!(derived
            .check_refs_url("http://127.0.0.1:8001/refs/a.json")
            .is_err());
        let explicit = policy(&["127.0.0.1:8001"]);
        assert!(explicit.check_chunk_url("http://127.0.0.1:8001/x").is_ok());
        assert!(explicit
            .check_refs_url("http://127.0.0.1:8001/r.json")
            .is_ok());
        assert!(explicit
            .check_refs_url("http://127.0.0.1:8002/r.json")
            .is_err());
        assert!(explicit
            .check_refs_url("http://169.254.169.254/latest/meta-data")
            .is_err());
        // Public refs hosts need no entry; public chunk hosts do.
        assert!(explicit
            .check_refs_url("https://refs.example.org/a.json")
            .is_ok());
        assert!(explicit
            .check_chunk_url("https://refs.example.org/x")
            .is_err());
        let public = HostPolicy::derived_from("https://data.example.org/refs/a.json").unwrap();
        assert!(public
            .check_chunk_url("https://data.example.org/x.nc")
            .is_ok());
        assert_eq!(public.entries(), ["data.example.org"]);
    }

    /// Entries are hosts or host:port; anything else is a configuration error.
    #[test]
    fn allowed_host_entries() {
        let p = policy(&["Data.Test:8443", "[::1]:9000", "h.test:80", "2130706433:1"]);
        assert_eq!(
            p.entries(),
            ["data.test:8443", "[::1]:9000", "h.test:80", "127.0.0.1:1"]
        );
        assert!(p.check_chunk_url("https://data.test:8443/x").is_ok());
        assert!(p.check_chunk_url("http://[::1]:9000/x").is_ok());
        assert!(
            p.check_chunk_url("http://h.test/x").is_ok(),
            "80 is http's default"
        );
        for bad in [
            "",
            "h.test/path",
            "user@h.test",
            "h.test:99999",
            "h.test:x",
            " h.test",
            "h .test",
            "[::1",
        ] {
            assert!(HostPolicy::new(&[bad.to_owned()], true).is_err(), "{bad:?}");
        }
    }

    /// Redirect targets resolve relative locations against the URL that answered.
    #[test]
    fn redirect_targets() {
        let from = Url::parse("http://127.0.0.1:8001/dir/a.nc").unwrap();
        assert_eq!(
            redirect_target(&from, "b.nc").unwrap(),
            "http://127.0.0.1:8001/dir/b.nc"
        );
        assert_eq!(
            redirect_target(&from, "http://127.0.0.1:8002/stolen").unwrap(),
            "http://127.0.0.1:8002/stolen"
        );
        assert_eq!(
            redirect_target(&from, "//evil.test/x").unwrap(),
            "http://evil.test/x"
        );
    }

    /// Queries (signatures), fragments and user info never reach answers or logs.
    #[test]
    fn redaction() {
        assert_eq!(
            redact("https://u:p@b.s3.test/k.nc?X-Amz-Signature=abc#f"),
            "https://b.s3.test/k.nc"
        );
        assert_eq!(redact("not a url?secret=1"), "not a url");
        assert_eq!(redact("http://h/x"), "http://h/x");
        assert_eq!(
            redact_text("TypeError: fetch https://b.test/k?sig=1 failed (http://c.test/?t=2)"),
            "TypeError: fetch https://b.test/k failed (http://c.test/)"
        );
    }
}
