//! Kerchunk reference sets (versions 0 and 1, templates, lazy `gen`), parsed without I/O into a
//! compact in-memory form.
//!
//! # What it reads
//! The JSON reference format of fsspec's `ReferenceFileSystem`, as kerchunk writes it and as
//! kerchunk's `docs/source/spec.rst` specifies it, with fsspec's expansion
//! (`simple_templates=False`) as the reference behaviour:
//! - version 0: an object of `key → value`; version 1: `{"version": 1, "templates": {…},
//!   "gen": […], "refs": {…}}` (other top-level members are ignored, as in fsspec);
//! - values: `"base64:…"` → the decoded bytes; any other string → its UTF-8 bytes; a JSON object
//!   → its JSON text (minified, as fsspec's `ujson.dumps`); `[url]` → the whole file;
//!   `[url, offset, length]` → a byte range (non-negative integers, `offset + length` < 2⁶⁴);
//! - `templates`: `{{name}}` in `refs` URLs, and callable templates (`{{f(c='text')}}`); see
//!   `jinja.rs` for the supported subset of jinja2;
//! - `gen`: never expanded; a lookup inverts the key template (see `gen.rs`);
//! - URLs: resolved once per distinct URL at load (`gen` URLs at lookup) to `http(s)://` — see
//!   `url.rs` for `s3://` and relative URLs.
//!
//! A key that both `refs` and `gen` define resolves to `gen`'s reference, and a later `gen` entry
//! beats an earlier one: fsspec builds its dict from `refs` and then updates it with `gen`.
//!
//! Not supported, on purpose: parquet reference directories (`LazyReferenceMapper`: a directory of
//! files, not one document), a `null` URL (fsspec uses its `target` option, which has no
//! counterpart here), `template_overrides`, and URL schemes other than http(s), s3 and relative.
//! Unlike fsspec, a `{{` in a `refs` URL is rendered even when the file has no `templates` (fsspec
//! then keeps the braces literally, which can only fail at fetch time), and an undefined template
//! name is an error rather than an empty string. Every problem is a [`LoadError`] at load; lookups
//! never fail.
//!
//! # The compact form
//! Explicit references live in `records.rs`: each is one record
//! `varint(key length) key varint(url << 2 | kind) varint(offset) varint(length)` (inline bytes:
//! `varint(length) bytes`) appended to 1 MiB chunks, plus a `u32` record position in an index
//! sorted by key (binary search, O(log n)). URLs are deduplicated into one string buffer indexed by
//! `u32`. `gen` entries keep their parsed templates only.
//!
//! # Cost (measured with `cargo run --release --example kerchunk_load`)
//! Synthetic kerchunk-shaped JSON (one 3-d variable, keys like `temp/12.34.56` in chunk order so
//! the index must be sorted, 8 URLs), native x86-64 on the 2-core dev machine, release profile
//! (`opt-level = "z"`, as deployed). `held` is [`References::heap_bytes`] (it agrees with what the
//! allocator retains); `peak` is the most the allocator held during the load beyond the input JSON.
//!
//! | set | JSON | load | lookup (random keys) | held | bytes/ref | peak |
//! | --- | ---: | ---: | ---: | ---: | ---: | ---: |
//! | 10 000 refs | 0.8 MB | 3 ms | 0.3 µs | 0.25 MB | 24.9 | 0.7 MB |
//! | 100 000 refs | 8.0 MB | 31–33 ms | 0.7 µs | 2.5 MB | 25.2 | 5.2 MB |
//! | 1 000 000 refs | 81 MB | 360 ms | 2.3–2.6 µs | 26.6 MB | 26.6 | 31.8 MB |
//! | 1 000 000 refs, version 0 | 81 MB | 440 ms | 2.1–2.4 µs | 26.6 MB | 26.6 | 31.8 MB |
//! | `gen`, 1 000 000 keys | 0.5 kB | 0.01 ms | 1.6 µs | 1.5 kB | ≈0 | 4.8 kB |
//!
//! An explicit byte-range reference costs its key's length plus about 13 bytes (key length,
//! URL tag, offset and length as varints, 4-byte index slot): 25–27 bytes for these keys, against
//! 81 bytes of JSON. Version 0 pays for a first pass that looks for a `version` member. The input
//! JSON itself is the larger cost: the caller should drop it as soon as the load returns.

mod error;
mod gen;
mod jinja;
mod json;
mod parse;
mod records;
pub mod stream;
mod url;
pub(crate) use url::Resolver;

use std::borrow::Cow;

pub use error::{LoadError, Place, Problem};
pub use stream::ReferenceStream;

use jinja::{Scope, Template, Templates};
use parse::Version;
use records::{Records, Value};

/// The fetchable `http(s)://` URL of an absolute `url` (`http(s)://` as it is, `s3://bucket/key`
/// through `s3`), as references' URLs resolve (block mode's `s3://` prefixes use it too).
///
/// # Errors
/// Why there is none (an unsupported scheme, `s3://` without an endpoint, a bad bucket name).
pub fn fetchable_url(url: &str, s3: Option<&S3Endpoint>) -> Result<String, String> {
    let resolver = Resolver::new(None, s3).map_err(|(value, why)| format!("{value}: {why}"))?;
    resolver.resolve(url).map(Cow::into_owned)
}

/// How to resolve the URLs a reference set names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The references file's own URL, for relative URLs (`x.nc`, `../x.nc`, `/x.nc`).
    pub base_url: Option<String>,
    /// How to turn `s3://bucket/key` into an HTTP(S) URL; without it, `s3://` is an error.
    pub s3_endpoint: Option<S3Endpoint>,
}

/// An S3-compatible endpoint for `s3://` URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Endpoint {
    /// An `http(s)://host[:port][/path]` URL, e.g. `https://s3.us-west-2.amazonaws.com`.
    pub endpoint: String,
    /// `true`: `{endpoint}/{bucket}/{key}`; `false` (virtual-hosted):
    /// `{scheme}://{bucket}.{host}{/path}/{key}`.
    pub path_style: bool,
}

/// Where a key's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference<'a> {
    /// The bytes themselves (metadata, small chunks).
    Inline(&'a [u8]),
    /// `length` bytes from `offset` in the object at `url` (an absolute http(s) URL).
    Range {
        /// The object to read.
        url: Cow<'a, str>,
        /// The first byte.
        offset: u64,
        /// How many bytes.
        length: u64,
    },
    /// The whole object at `url` (an absolute http(s) URL).
    Whole {
        /// The object to read.
        url: Cow<'a, str>,
    },
}

/// A loaded reference set.
#[derive(Debug)]
pub struct References {
    records: Records,
    /// Resolved URLs, concatenated.
    url_text: String,
    /// End of each URL in `url_text`.
    url_ends: Vec<u32>,
    gen: Vec<gen::Pattern>,
    resolver: Resolver,
    memo: crate::source::Memo,
}

impl References {
    /// Parses a reference set (version 0 or 1) and resolves its URLs.
    ///
    /// # Errors
    /// A [`LoadError`] naming the key (or template, or `gen` field) and what is wrong: invalid
    /// JSON, wrong types, an unknown version, bad base64, an unsupported or malformed template, a
    /// bad byte range, or a URL that cannot be made into an `http(s)://` URL.
    pub fn from_json(json: &[u8], options: &LoadOptions) -> Result<Self, LoadError> {
        let mut stream = ReferenceStream::new();
        stream.feed(json)?;
        Self::from_stream(stream, options)
    }

    /// The references a [`ReferenceStream`] was fed (a document read as it arrived).
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json).
    pub fn from_stream(stream: ReferenceStream, options: &LoadOptions) -> Result<Self, LoadError> {
        let resolver = Resolver::new(options.base_url.as_deref(), options.s3_endpoint.as_ref())
            .map_err(|(url, reason)| {
                LoadError::new(Place::Options, Problem::Url { url, reason })
            })?;
        let parsed = stream.finish()?;
        let templates = Templates::new(parsed.templates);

        let mut url_text = String::new();
        let mut url_ends = Vec::with_capacity(parsed.urls.len());
        for (raw, first) in parsed.urls.into_iter().zip(parsed.url_first) {
            let place = || Place::Ref(parsed.records.key_str(first));
            let rendered: Cow<'_, str> = if parsed.version == Version::One && raw.contains("{{") {
                let template = Template::parse(&raw)
                    .and_then(|t| {
                        t.resolve(Scope {
                            vars: &[],
                            templates: Some(&templates),
                        })
                    })
                    .map_err(|e| LoadError::new(place(), Problem::Template(e)))?;
                Cow::Owned(template.as_literal().unwrap_or_default().to_owned())
            } else {
                Cow::Borrowed(&raw)
            };
            let fetchable = resolver.resolve(&rendered).map_err(|reason| {
                LoadError::new(
                    place(),
                    Problem::Url {
                        url: rendered.to_string(),
                        reason,
                    },
                )
            })?;
            url_text.push_str(&fetchable);
            url_ends.push(u32::try_from(url_text.len()).map_err(|_| {
                LoadError::new(Place::Document, Problem::TooLarge("4 GiB of URLs".into()))
            })?);
        }
        url_text.shrink_to_fit();

        let gen = parsed
            .gen
            .iter()
            .enumerate()
            .map(|(i, entry)| gen::Pattern::new(i, entry, &templates, &resolver))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            records: parsed.records.finish(),
            url_text,
            url_ends,
            gen,
            resolver,
            memo: crate::source::Memo::default(),
        })
    }

    /// What the Zarr surface computed once for this set.
    #[must_use]
    pub fn memo(&self) -> &crate::source::Memo {
        &self.memo
    }

    /// The reference for `key`: a `gen` match (last entry first) or else an explicit reference.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Reference<'_>> {
        for pattern in self.gen.iter().rev() {
            if let Some(generated) = pattern.get(key) {
                let rewritten = match self.resolver.resolve(&generated.url) {
                    Ok(Cow::Owned(url)) => Some(url),
                    Ok(Cow::Borrowed(_)) => None,
                    // Checked at load for the first and last combination; a template whose
                    // scheme varies in between yields nothing rather than a bad URL.
                    Err(_) => return None,
                };
                let url = Cow::Owned(rewritten.unwrap_or(generated.url));
                return Some(match generated.range {
                    Some((offset, length)) => Reference::Range {
                        url,
                        offset,
                        length,
                    },
                    None => Reference::Whole { url },
                });
            }
        }
        Some(match self.records.get(key)? {
            Value::Inline(bytes) => Reference::Inline(bytes),
            Value::Range {
                url,
                offset,
                length,
            } => Reference::Range {
                url: Cow::Borrowed(self.url(url)?),
                offset,
                length,
            },
            Value::Whole { url } => Reference::Whole {
                url: Cow::Borrowed(self.url(url)?),
            },
        })
    }

    /// The explicit keys (`refs`, or the whole object in version 0), sorted by code point; not
    /// the keys `gen` generates (see [`References::gen_patterns`]). A key that a `gen` entry also
    /// generates is listed, but [`References::get`] answers with the `gen` reference.
    pub fn explicit_keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.records.keys()
    }

    /// The number of explicit keys.
    #[must_use]
    pub fn len_explicit(&self) -> usize {
        self.records.len()
    }

    /// The `gen` entries, in document order, for listings.
    #[must_use]
    pub fn gen_patterns(&self) -> impl ExactSizeIterator<Item = GenPattern<'_>> + '_ {
        self.gen.iter().map(|pattern| GenPattern { pattern })
    }

    /// Approximately how many bytes of heap the set holds (for a memory budget).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.records.heap_bytes()
            + self.url_text.capacity()
            + self.url_ends.capacity() * std::mem::size_of::<u32>()
            + self.gen.iter().map(gen::Pattern::heap_bytes).sum::<usize>()
            + 256
    }

    fn url(&self, index: u32) -> Option<&str> {
        let index = index as usize;
        let end = *self.url_ends.get(index)? as usize;
        let start = match index.checked_sub(1) {
            Some(previous) => *self.url_ends.get(previous)? as usize,
            None => 0,
        };
        self.url_text.get(start..end)
    }
}

/// One `gen` entry of a [`References`].
#[derive(Debug, Clone, Copy)]
pub struct GenPattern<'a> {
    pattern: &'a gen::Pattern,
}

impl<'a> GenPattern<'a> {
    /// The key template as written, e.g. `{{var}}/{{j}}.{{k}}`.
    #[must_use]
    pub fn key_template(&self) -> &'a str {
        self.pattern.key_source()
    }

    /// How many combinations the entry generates (saturating at `u64::MAX`); keys repeated
    /// within the entry, or shadowed by a later entry, count too.
    #[must_use]
    pub fn key_count(&self) -> u64 {
        self.pattern.count()
    }

    /// Every generated key, in product order, rendered lazily (there may be millions).
    pub fn keys(&self) -> impl Iterator<Item = String> + 'a {
        self.pattern.keys()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use base64::Engine as _;
    use serde_json::Value as Json;

    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kerchunk");
    const ORIGIN: &str = "http://origin.test";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
    }

    fn load(json: &[u8]) -> Result<References, LoadError> {
        References::from_json(json, &LoadOptions::default())
    }

    fn s3_options() -> LoadOptions {
        LoadOptions {
            base_url: None,
            s3_endpoint: Some(S3Endpoint {
                endpoint: "https://s3.test".into(),
                path_style: true,
            }),
        }
    }

    /// fsspec's version-0 value for a reference, as the `*.expanded.json` fixtures write it.
    fn as_fsspec(reference: &Reference<'_>) -> Json {
        match reference {
            Reference::Inline(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Json::String(text.to_owned()),
                Err(_) => Json::String(format!(
                    "base64:{}",
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                )),
            },
            Reference::Range {
                url,
                offset,
                length,
            } => serde_json::json!([url, offset, length]),
            Reference::Whole { url } => serde_json::json!([url]),
        }
    }

    /// Inline bytes compared with an expected string value: decoded base64 or text; JSON text
    /// compared as parsed JSON.
    fn inline_matches(got: &[u8], want: &str) -> bool {
        if let Some(encoded) = want.strip_prefix("base64:") {
            return base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap()
                == got;
        }
        if got == want.as_bytes() {
            return true;
        }
        match (
            serde_json::from_slice::<Json>(got),
            serde_json::from_str::<Json>(want),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }

    /// Every key of fsspec's expansion, and no other, resolves to the same reference.
    fn assert_matches_expansion(
        refs: &References,
        expanded: &str,
        map_url: impl Fn(&str) -> String,
    ) {
        let want: BTreeMap<String, Json> = serde_json::from_slice(&fixture(expanded)).unwrap();
        let mut ours: BTreeSet<String> = refs.explicit_keys().map(str::to_owned).collect();
        for pattern in refs.gen_patterns() {
            ours.extend(pattern.keys());
        }
        assert_eq!(ours, want.keys().cloned().collect(), "{expanded}: key sets");
        for (key, value) in &want {
            let got = refs
                .get(key)
                .unwrap_or_else(|| panic!("{expanded}: {key} missing"));
            match (&got, value) {
                (Reference::Inline(bytes), Json::String(s)) => {
                    assert!(
                        inline_matches(bytes, s),
                        "{expanded}: {key}: {got:?} vs {s}"
                    );
                }
                (_, Json::Array(items)) => {
                    let mut items = items.clone();
                    let url = items[0].as_str().unwrap();
                    items[0] = Json::String(map_url(url));
                    assert_eq!(as_fsspec(&got), Json::Array(items), "{expanded}: {key}");
                }
                _ => panic!("{expanded}: {key}: {got:?} vs {value}"),
            }
        }
    }

    /// The spec's version-1 example expands exactly as fsspec expands it (callable template too).
    #[test]
    fn spec_v1_example_matches_fsspec() {
        let refs = load(&fixture("spec_v1_example.json")).unwrap();
        assert_matches_expansion(&refs, "spec_v1_example.expanded.json", str::to_owned);
        assert_eq!(refs.get("key0"), Some(Reference::Inline(b"data")));
        assert_eq!(refs.len_explicit(), 4);
        let patterns: Vec<_> = refs.gen_patterns().collect();
        assert_eq!(patterns.len(), 1);
        assert_eq!(patterns[0].key_template(), "gen_key{{i}}");
        assert_eq!(patterns[0].key_count(), 5);
    }

    /// The spec's version-0 example: object values become JSON text, s3 maps to the endpoint.
    #[test]
    fn spec_v0_example_matches_fsspec() {
        let refs = References::from_json(&fixture("spec_v0_example.json"), &s3_options()).unwrap();
        assert_matches_expansion(&refs, "spec_v0_example.expanded.json", |url| {
            url.replace("s3://", "https://s3.test/")
        });
        // Byte-for-byte what fsspec (with ujson) produces for these objects.
        let want: BTreeMap<String, Json> =
            serde_json::from_slice(&fixture("spec_v0_example.expanded.json")).unwrap();
        for key in [".zattrs", ".zgroup", "x/.zarray", "x/.zattrs"] {
            let Some(Reference::Inline(bytes)) = refs.get(key) else {
                panic!("{key}")
            };
            assert_eq!(
                Some(std::str::from_utf8(bytes).unwrap()),
                want[key].as_str()
            );
        }
        assert!(load(&fixture("spec_v0_example.json"))
            .unwrap_err()
            .to_string()
            .contains("no S3 endpoint"));
    }

    /// The hand-written gen example: lists, steps, whole-file gen refs, templates in refs URLs.
    #[test]
    fn gen_zarr_example_matches_fsspec() {
        let refs = load(&fixture("gen_zarr_example.json")).unwrap();
        assert_matches_expansion(&refs, "gen_zarr_example.expanded.json", str::to_owned);
        assert_eq!(
            refs.get("notes/binary"),
            Some(Reference::Inline(&[0, 1, 2, 3, 255]))
        );
        assert_eq!(
            refs.get("temp/1.1"),
            Some(Reference::Range {
                url: "http://origin.test/raw/temp.bin".into(),
                offset: 112,
                length: 16
            })
        );
        assert_eq!(
            refs.get("decadal/2"),
            Some(Reference::Whole {
                url: "http://origin.test/raw/decade_2010.bin".into()
            })
        );
        for absent in [
            "temp/2.0",
            "temp/0.2",
            "decadal/3",
            "decadal/-1",
            "temp/0",
            "nope",
        ] {
            assert_eq!(refs.get(absent), None, "{absent}");
        }
    }

    /// Real kerchunk output: every reference resolves, and the bytes it names are the file's.
    #[test]
    fn real_kerchunk_outputs_resolve_to_data_files() {
        for name in [
            "hdf5_single.json",
            "v0_hdf5_single.json",
            "combine_series.json",
            "netcdf3_classic.json",
        ] {
            let json = fixture(name);
            let refs = load(&json).unwrap();
            let raw: Json = serde_json::from_slice(&json).unwrap();
            let raw = raw.get("refs").unwrap_or(&raw).as_object().unwrap();
            assert_eq!(refs.len_explicit(), raw.len(), "{name}");
            let keys: Vec<&str> = refs.explicit_keys().collect();
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            assert_eq!(keys, sorted);
            for (key, value) in raw {
                let got = refs.get(key).unwrap();
                match (&got, value) {
                    (Reference::Inline(bytes), Json::String(s)) => {
                        assert!(inline_matches(bytes, s), "{name}: {key}");
                    }
                    (
                        Reference::Range {
                            url,
                            offset,
                            length,
                        },
                        Json::Array(_),
                    ) => {
                        assert_eq!(as_fsspec(&got), *value, "{name}: {key}");
                        let path = url.strip_prefix(ORIGIN).unwrap();
                        let file = std::fs::read(format!("{FIXTURES}/data{path}")).unwrap();
                        let end = usize::try_from(offset + length).unwrap();
                        assert!(end <= file.len(), "{name}: {key} past the end of {path}");
                    }
                    _ => panic!("{name}: {key}: {got:?}"),
                }
            }
        }
        let hdf5 = load(&fixture("hdf5_single.json")).unwrap();
        assert_eq!(hdf5.get("crs/0"), Some(Reference::Inline(&[0, 0, 0, 0])));
        let zarray = hdf5.get("air_temperature/.zarray").unwrap();
        let Reference::Inline(bytes) = zarray else {
            panic!()
        };
        let meta: Json = serde_json::from_slice(bytes).unwrap();
        assert_eq!(meta["compressor"], Json::Null);
    }

    /// The gen example reads the documented values from its data files when fetched.
    #[test]
    fn gen_example_reads_documented_values() {
        let options = LoadOptions {
            base_url: Some("http://origin.test/gen.json".into()),
            s3_endpoint: None,
        };
        let refs = References::from_json(&fixture("gen_zarr_example.json"), &options).unwrap();
        let read = |key: &str| -> Vec<u8> {
            let (url, range) = match refs.get(key).unwrap() {
                Reference::Range {
                    url,
                    offset,
                    length,
                } => (url, Some((offset, length))),
                Reference::Whole { url } => (url, None),
                Reference::Inline(_) => panic!("{key}"),
            };
            let path = url.strip_prefix(ORIGIN).unwrap();
            let file = std::fs::read(format!("{FIXTURES}/data{path}")).unwrap();
            match range {
                Some((offset, length)) => {
                    let start = usize::try_from(offset).unwrap();
                    file[start..start + usize::try_from(length).unwrap()].to_vec()
                }
                None => file,
            }
        };
        let f64s = |bytes: Vec<u8>| -> Vec<f64> {
            bytes
                .chunks(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let mut temp = Vec::new();
        for key in ["temp/0.0", "temp/0.1", "temp/1.0", "temp/1.1"] {
            temp.extend(f64s(read(key)));
        }
        assert_eq!(
            temp,
            [270.0, 271.5, 273.0, 274.5, 276.0, 277.5, 279.0, 280.5]
        );
        let decadal: Vec<f64> = ["decadal/0", "decadal/1", "decadal/2"]
            .iter()
            .flat_map(|k| f64s(read(k)))
            .collect();
        assert_eq!(decadal, [801.5, 812.25, 790.0]);
    }

    /// Relative URLs resolve against the base URL, once per distinct URL.
    #[test]
    fn relative_urls_resolve_against_the_base() {
        let json = br#"{"version": 1, "refs": {
            "a": ["data/x.nc", 0, 10], "b": ["../y.nc"], "c": ["/abs/z.nc", 5, 5],
            "d": ["https://other.test/w.nc", 1, 1]}}"#;
        let options = LoadOptions {
            base_url: Some("https://h.test/refs/ds.json".into()),
            s3_endpoint: None,
        };
        let refs = References::from_json(json, &options).unwrap();
        let url = |key| match refs.get(key).unwrap() {
            Reference::Range { url, .. } | Reference::Whole { url } => url.into_owned(),
            Reference::Inline(_) => panic!(),
        };
        assert_eq!(url("a"), "https://h.test/refs/data/x.nc");
        assert_eq!(url("b"), "https://h.test/y.nc");
        assert_eq!(url("c"), "https://h.test/abs/z.nc");
        assert_eq!(url("d"), "https://other.test/w.nc");
        let error = load(json).unwrap_err();
        assert_eq!(error.place, Place::Ref("a".into()));
    }

    /// A key in both refs and gen resolves to gen's reference, and a later gen entry wins.
    #[test]
    fn gen_overrides_refs_like_fsspec() {
        let json = br#"{"version": 1,
            "gen": [{"key": "k{{i}}", "url": "http://h/a{{i}}", "dimensions": {"i": [0, 1]}},
                    {"key": "k{{i}}", "url": "http://h/b{{i}}", "dimensions": {"i": [1]}}],
            "refs": {"k0": "inline", "k1": "inline", "k2": "inline"}}"#;
        let refs = load(json).unwrap();
        assert_eq!(
            refs.get("k0"),
            Some(Reference::Whole {
                url: "http://h/a0".into()
            })
        );
        assert_eq!(
            refs.get("k1"),
            Some(Reference::Whole {
                url: "http://h/b1".into()
            })
        );
        assert_eq!(refs.get("k2"), Some(Reference::Inline(b"inline")));
    }

    /// Duplicate keys keep their last value, unsorted input is sorted, odd keys are fine.
    #[test]
    fn duplicates_and_ordering() {
        let json = br#"{"z": "1", "a": "2", "z": "3", "": "empty", "\u00e9": "e", "a/b\"c": ["http://h/x"]}"#;
        let refs = load(json).unwrap();
        assert_eq!(
            refs.explicit_keys().collect::<Vec<_>>(),
            ["", "a", "a/b\"c", "z", "é"]
        );
        assert_eq!(refs.get("z"), Some(Reference::Inline(b"3")));
        assert_eq!(refs.get(""), Some(Reference::Inline(b"empty")));
        assert_eq!(refs.len_explicit(), 5);
    }

    /// Malformed documents are load errors naming the place and the problem, never panics.
    #[test]
    fn malformed_input_is_a_load_error() {
        let cases: &[(&str, &str)] = &[
            ("", "references: not valid JSON: empty document"),
            ("[]", "expected a JSON object, found a list"),
            ("{", "not valid JSON"),
            (r#"{"a": "b",}"#, "not valid JSON"),
            (r#"{"a": "b"} x"#, "not valid JSON"),
            (r#"{"version": 3, "refs": {}}"#, "unknown reference spec version number 3"),
            (r#"{"version": 1, "refs": []}"#, "expected an object, found a list for \"refs\""),
            (r#"{"version": 1, "refs": {}, "refs": {}}"#, "\"refs\" appears twice"),
            (r#"{"version": 1, "templates": [], "refs": {}}"#, "expected an object, found a list for \"templates\""),
            (r#"{"version": 1, "templates": {"u": 1}}"#, "template \"u\": expected a template string, found number 1"),
            (r#"{"version": 1, "gen": {}}"#, "expected a list, found an object for \"gen\""),
            (r#"{"k": 5}"#, "key \"k\": expected a string, [url], [url, offset, length] or an object, found number 5"),
            (r#"{"k": null}"#, "key \"k\": expected a string"),
            (r#"{"k": true}"#, "found boolean true"),
            (r#"{"k": []}"#, "key \"k\": bad byte range: an empty list"),
            (r#"{"k": ["http://h/x", 1]}"#, "not 2"),
            (r#"{"k": ["http://h/x", 1, 2, 3]}"#, "not more"),
            (r#"{"k": ["http://h/x", -1, 2]}"#, "key \"k\": bad byte range: offset is negative (-1)"),
            (r#"{"k": ["http://h/x", 1, -2]}"#, "length is negative (-2)"),
            (r#"{"k": ["http://h/x", 1.5, 2]}"#, "offset is not an integer (1.5)"),
            (r#"{"k": ["http://h/x", 1, 2e3]}"#, "length is not an integer (2000)"),
            (r#"{"k": ["http://h/x", "1", 2]}"#, "offset is a string"),
            (r#"{"k": ["http://h/x", 18446744073709551615, 1]}"#, "overflows 64 bits"),
            (r#"{"k": ["http://h/x", 18446744073709551616, 1]}"#, "offset is not an integer"),
            (r#"{"k": [null, 0, 1]}"#, "key \"k\": expected a URL string, found null"),
            (r#"{"k": [5, 0, 1]}"#, "expected a URL string, found a number"),
            (r#"{"k": "base64:%%%"}"#, "key \"k\": bad base64 data"),
            (r#"{"k": "base64:AAECA/8"}"#, ""),
            (r#"{"k": ["ftp://h/x"]}"#, "key \"k\": unusable URL \"ftp://h/x\": unsupported scheme"),
            (r#"{"k": [""]}"#, "empty URL"),
            (r#"{"k": ["rel/x.nc"]}"#, "no base URL"),
            (r#"{"version": 1, "templates": {"u": "h"}, "refs": {"k": ["http://{{ v }}/x"]}}"#, "key \"k\": bad template: \"v\" is not defined"),
            (r#"{"version": 1, "refs": {"k": ["http://{{ 1 / 0 }}/x"]}}"#, "division by zero"),
            (r#"{"version": 1, "refs": {"k": ["http://{% if %}{{u}}"]}}"#, "statements"),
            (r#"{"version": 1, "gen": [{"key": "k", "url": "http://h", "dimensions": {"i": {"stop": "5"}}}]}"#, "gen[0].dimensions.i: bad gen entry: stop must be an integer"),
            (r#"{"k": {"a": [1, }}"#, "not valid JSON"),
            (r#"{"k": "\ud800"}"#, "not valid JSON"),
        ];
        for (json, want) in cases {
            match load(json.as_bytes()) {
                Err(e) if want.is_empty() => panic!("{json}: {e}"),
                Err(e) => assert!(e.to_string().contains(want), "{json}: {e}"),
                Ok(_) if want.is_empty() => {}
                Ok(_) => panic!("{json}: loaded"),
            }
        }
        let bad_options = LoadOptions {
            base_url: Some("not absolute".into()),
            s3_endpoint: None,
        };
        let error = References::from_json(b"{}", &bad_options).unwrap_err();
        assert_eq!(error.place, Place::Options);
    }

    /// Truncating or corrupting a real file at every position never panics.
    #[test]
    fn truncated_and_corrupted_inputs_never_panic() {
        let json = fixture("gen_zarr_example.json");
        for end in 0..json.len() {
            let _ = load(&json[..end]);
        }
        let mut corrupt = json.clone();
        for i in (0..json.len()).step_by(7) {
            let saved = corrupt[i];
            for replacement in [b'"', b'{', b']', b'1', b'-', b'\\'] {
                corrupt[i] = replacement;
                let _ = load(&corrupt);
            }
            corrupt[i] = saved;
        }
    }

    /// `base64:` tolerates Python's leniencies (missing padding, line breaks); plain strings are
    /// their UTF-8 bytes, including NUL.
    #[test]
    fn inline_values() {
        let refs = load(br#"{"a": "base64:AAECA/8", "b": "base64:AAEC\nA/8=", "c": "\u0000\u00ff", "d": "base64:"}"#).unwrap();
        assert_eq!(refs.get("a"), Some(Reference::Inline(&[0, 1, 2, 3, 255])));
        assert_eq!(refs.get("b"), Some(Reference::Inline(&[0, 1, 2, 3, 255])));
        assert_eq!(refs.get("c"), Some(Reference::Inline(&[0, 0xc3, 0xbf])));
        assert_eq!(refs.get("d"), Some(Reference::Inline(b"")));
    }

    /// Memory accounting grows with the set and counts every structure.
    #[test]
    fn heap_bytes_tracks_size() {
        let make = |n: usize| {
            let refs: Vec<String> = (0..n)
                .map(|i| format!(r#""v/{i}": ["http://o.test/f.nc", {}, 10]"#, i * 10))
                .collect();
            format!(r#"{{"version": 1, "refs": {{{}}}}}"#, refs.join(","))
        };
        let small = load(make(10).as_bytes()).unwrap().heap_bytes();
        let big = load(make(10_000).as_bytes()).unwrap();
        assert!(big.heap_bytes() > small + 10_000 * 10);
        assert!(big.heap_bytes() < 10_000 * 40, "{}", big.heap_bytes());
        assert_eq!(
            big.get("v/9999"),
            Some(Reference::Range {
                url: "http://o.test/f.nc".into(),
                offset: 99_990,
                length: 10
            })
        );
    }
}
