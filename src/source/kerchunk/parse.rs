//! Reading references into the compact store, without a `serde_json::Value` for `refs`.
//!
//! [`super::stream`] splits the document into single references; each is read here by serde
//! visitors straight into a [`RecordsBuilder`]: keys go through one reused `String`, URLs are
//! interned, base64 is decoded into one reused buffer, and JSON-object values are re-serialised
//! by [`Minify`]. Only `templates` and `gen`, which are small, are kept as [`Json`] values.

use std::collections::HashMap;
use std::fmt;

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{LoadError, Place, Problem};
use super::json::{Json, Minify};
use super::records::{RecordsBuilder, TooLarge, Value, MAX_URLS};

/// The spec version of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// No `version` member: the whole object is the references.
    Zero,
    /// `"version": 1`: `templates`, `gen`, `refs`.
    One,
}

/// What the main pass collects.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) version: Version,
    pub(crate) records: RecordsBuilder,
    /// The distinct raw URLs, by index.
    pub(crate) urls: Vec<Box<str>>,
    /// For each URL, the position of the first record that uses it (for error messages).
    pub(crate) url_first: Vec<u32>,
    /// `templates` as `(name, text)` pairs, in document order.
    pub(crate) templates: Vec<(String, String)>,
    /// The entries of `gen`.
    pub(crate) gen: Vec<Json>,
}

#[cfg(test)]
/// Reads a whole document (as [`ReferenceStream`](super::stream::ReferenceStream) reads one
/// fed in pieces).
pub(crate) fn parse(json: &[u8]) -> Result<Parsed, LoadError> {
    let mut stream = super::stream::ReferenceStream::new();
    stream.feed(json)?;
    stream.finish()
}

/// Reads one reference into `builder`: `key` is its key's JSON text (quotes included), `value`
/// the JSON text of its value, both as they lie in the document.
pub(crate) fn reference(builder: &mut Builder, key: &[u8], value: &[u8]) -> Result<(), LoadError> {
    if let Some(list) = simple_list(value).filter(|list| list.len == value.len()) {
        return simple_reference(builder, key, &list);
    }
    by_serde(builder, key, value)
}

/// Reads one reference with serde's parser and visitors: every spelling, every error.
fn by_serde(builder: &mut Builder, key: &[u8], value: &[u8]) -> Result<(), LoadError> {
    set_key(builder, key)?;
    let mut de = serde_json::Deserializer::from_slice(value);
    let result = ValueSeed { b: &mut *builder }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    result.map_err(|e| failed(builder, &e))
}

/// Reads one reference whose value [`simple_list`] has read.
pub(crate) fn simple_reference(
    builder: &mut Builder,
    key: &[u8],
    list: &SimpleList<'_>,
) -> Result<(), LoadError> {
    set_key(builder, key)?;
    builder
        .push_list::<serde_json::Error>(list)
        .map_err(|e| failed(builder, &e))
}

/// The error of a reference that failed: the visitors' precise one, else serde's.
fn failed(builder: &mut Builder, e: &serde_json::Error) -> LoadError {
    builder
        .error
        .take()
        .unwrap_or_else(|| json_error(e, builder))
}

/// Decodes a key's JSON text into `builder.key`. Most keys have no escapes: their text between
/// the quotes is the key.
fn set_key(builder: &mut Builder, key: &[u8]) -> Result<(), LoadError> {
    builder.key.clear();
    let plain = key
        .strip_prefix(b"\"")
        .and_then(|k| k.strip_suffix(b"\""))
        .filter(|k| !k.iter().any(|&b| b == b'\\' || b < 0x20))
        .and_then(|k| std::str::from_utf8(k).ok());
    if let Some(plain) = plain {
        builder.key.push_str(plain);
    } else {
        let decoded: String = serde_json::from_slice(key).map_err(|e| json_error(&e, builder))?;
        builder.key = decoded;
    }
    Ok(())
}

fn json_error(e: &serde_json::Error, builder: &Builder) -> LoadError {
    let near = if builder.key.is_empty() {
        String::new()
    } else {
        format!(" (near key {:?})", builder.key)
    };
    LoadError::new(Place::Document, Problem::Json(format!("{e}{near}")))
}

/// A list reference in its common spelling, read without serde: `["url"]` or
/// `["url", offset, length]` with a URL free of escapes and plain decimal integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SimpleList<'a> {
    url: &'a str,
    range: Option<(u64, u64)>,
    /// The bytes the list takes, from its `[` to its `]`.
    pub(crate) len: usize,
}

/// Reads a list reference at the start of `bytes` when it is spelled simply (see
/// [`SimpleList`]); `None` for anything else (another value, an escape, a float, an integer with
/// a leading zero or beyond 64 bits, an overflowing range, a list cut short), which serde then
/// reads, with its precise error where there is one.
pub(crate) fn simple_list(bytes: &[u8]) -> Option<SimpleList<'_>> {
    let mut at = skip_space(bytes, 1);
    if bytes.first() != Some(&b'[') || bytes.get(at) != Some(&b'"') {
        return None;
    }
    let rest = bytes.get(at + 1..)?;
    let close = memchr::memchr2(b'"', b'\\', rest)?;
    let raw = rest.get(..close)?;
    if rest.get(close) != Some(&b'"') || raw.iter().any(|&b| b < 0x20) {
        return None;
    }
    let url = std::str::from_utf8(raw).ok()?;
    at = skip_space(bytes, at + 1 + close + 1);
    let range = match bytes.get(at)? {
        b']' => None,
        b',' => {
            let (offset, next) = integer(bytes, skip_space(bytes, at + 1))?;
            at = skip_space(bytes, next);
            if bytes.get(at) != Some(&b',') {
                return None;
            }
            let (length, next) = integer(bytes, skip_space(bytes, at + 1))?;
            at = skip_space(bytes, next);
            if bytes.get(at) != Some(&b']') {
                return None;
            }
            offset.checked_add(length)?;
            Some((offset, length))
        }
        _ => return None,
    };
    Some(SimpleList {
        url,
        range,
        len: at + 1,
    })
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// A JSON integer of plain digits (no sign, no leading zero, no fraction or exponent) that fits
/// 64 bits, and the position after it.
fn integer(bytes: &[u8], start: usize) -> Option<(u64, usize)> {
    let digits = bytes
        .get(start..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let end = start + digits;
    if digits == 0
        || (digits > 1 && bytes.get(start) == Some(&b'0'))
        || matches!(bytes.get(end), Some(b'.' | b'e' | b'E'))
    {
        return None;
    }
    let mut value = 0u64;
    for &digit in bytes.get(start..end)? {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    Some((value, end))
}

/// What `builder` read, as a document of `version`.
pub(crate) fn finish(mut builder: Builder, version: Version) -> Result<Parsed, LoadError> {
    let templates = match builder.templates.take() {
        None => Vec::new(),
        Some(Json::Obj(members)) => members
            .into_iter()
            .map(|(name, value)| match value {
                Json::Str(text) => Ok((name, text)),
                other => Err(LoadError::new(
                    Place::Template(name),
                    Problem::WrongType {
                        expected: "a template string",
                        found: other.describe(),
                    },
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong_top("templates", "an object", &other)),
    };
    let gen = match builder.gen.take() {
        None => Vec::new(),
        Some(Json::Arr(items)) => items,
        Some(other) => return Err(wrong_top("gen", "a list", &other)),
    };
    let mut urls: Vec<Box<str>> = Vec::new();
    urls.resize_with(builder.urls.len(), Default::default);
    for (url, index) in builder.urls {
        if let Some(slot) = urls.get_mut(index as usize) {
            *slot = url;
        }
    }
    Ok(Parsed {
        version,
        records: builder.records,
        urls,
        url_first: builder.url_first,
        templates,
        gen,
    })
}

fn wrong_top(member: &str, expected: &'static str, found: &Json) -> LoadError {
    LoadError::new(
        Place::Document,
        Problem::WrongType {
            expected,
            found: format!("{} for {member:?}", found.describe()),
        },
    )
}

/// The state shared by the visitors of the main pass.
#[derive(Debug)]
pub(crate) struct Builder {
    records: RecordsBuilder,
    /// The key being read.
    key: String,
    /// Scratch for decoded base64 and minified JSON.
    bytes: Vec<u8>,
    urls: HashMap<Box<str>, u32>,
    url_first: Vec<u32>,
    /// The most recent URL: consecutive references usually share it.
    last_url: Option<(String, u32)>,
    templates: Option<Json>,
    gen: Option<Json>,
    /// The precise error, when a visitor failed on purpose.
    error: Option<LoadError>,
}

/// The base64 flavour Python's `b64decode` accepts: standard alphabet, lenient padding and
/// trailing bits.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

const VALUE_EXPECTED: &str = "a string, [url], [url, offset, length] or an object";

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            records: RecordsBuilder::new(),
            key: String::new(),
            bytes: Vec::new(),
            urls: HashMap::new(),
            url_first: Vec::new(),
            last_url: None,
            templates: None,
            gen: None,
            error: None,
        }
    }

    /// Keeps the `templates` member (checked by [`finish`]).
    pub(crate) fn set_templates(&mut self, value: Json) {
        self.templates = Some(value);
    }

    /// Keeps the `gen` member (checked by [`finish`]).
    pub(crate) fn set_gen(&mut self, value: Json) {
        self.gen = Some(value);
    }

    /// Records `problem` for the current key and returns the error that unwinds serde.
    fn fail<E: de::Error>(&mut self, problem: Problem) -> E {
        self.fail_at(Place::Ref(self.key.clone()), problem)
    }

    fn fail_at<E: de::Error>(&mut self, place: Place, problem: Problem) -> E {
        let message = problem.to_string();
        self.error = Some(LoadError::new(place, problem));
        E::custom(message)
    }

    fn push<E: de::Error>(&mut self, value: Value<'_>) -> Result<(), E> {
        match self.records.push(&self.key, value) {
            Ok(pos) => {
                if let Value::Range { url, .. } | Value::Whole { url } = value {
                    if let Some(first) = self.url_first.get_mut(url as usize) {
                        if *first == u32::MAX {
                            *first = pos;
                        }
                    }
                }
                Ok(())
            }
            Err(TooLarge) => Err(self.fail_at(
                Place::Document,
                Problem::TooLarge("more than 4 GiB of references".into()),
            )),
        }
    }

    /// Stores a reference read by [`simple_list`] under the current key.
    pub(crate) fn push_list<E: de::Error>(&mut self, list: &SimpleList<'_>) -> Result<(), E> {
        let url = self.intern(list.url)?;
        self.push(match list.range {
            Some((offset, length)) => Value::Range {
                url,
                offset,
                length,
            },
            None => Value::Whole { url },
        })
    }

    fn push_str<E: de::Error>(&mut self, s: &str) -> Result<(), E> {
        let Some(encoded) = s.strip_prefix("base64:") else {
            return self.push(Value::Inline(s.as_bytes()));
        };
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.clear();
        let mut decoded = BASE64.decode_vec(encoded, &mut bytes);
        if decoded.is_err() && encoded.bytes().any(|b| b.is_ascii_whitespace()) {
            // Python's decoder skips characters outside the alphabet, such as line breaks.
            let compact: Vec<u8> = encoded
                .bytes()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            bytes.clear();
            decoded = BASE64.decode_vec(compact, &mut bytes);
        }
        let result = match decoded {
            Ok(()) => self.push(Value::Inline(&bytes)),
            Err(e) => Err(self.fail(Problem::Base64(e.to_string()))),
        };
        self.bytes = bytes;
        result
    }

    fn intern<E: de::Error>(&mut self, url: &str) -> Result<u32, E> {
        if let Some((last, index)) = &self.last_url {
            if last == url {
                return Ok(*index);
            }
        }
        let index = if let Some(&index) = self.urls.get(url) {
            index
        } else {
            let index = u32::try_from(self.urls.len())
                .ok()
                .filter(|&i| i < MAX_URLS)
                .ok_or_else(|| {
                    self.fail_at::<E>(
                        Place::Document,
                        Problem::TooLarge("more than 2^30 distinct URLs".into()),
                    )
                })?;
            self.urls.insert(url.into(), index);
            self.url_first.push(u32::MAX);
            index
        };
        match &mut self.last_url {
            Some((last, last_index)) => {
                last.clear();
                last.push_str(url);
                *last_index = index;
            }
            None => self.last_url = Some((url.to_owned(), index)),
        }
        Ok(index)
    }
}

/// One reference value, stored as a record.
struct ValueSeed<'b> {
    b: &'b mut Builder,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn wrong<E: de::Error>(self, found: String) -> Result<(), E> {
        Err(self.b.fail(Problem::WrongType {
            expected: VALUE_EXPECTED,
            found,
        }))
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(VALUE_EXPECTED)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.b.push_str(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let b = self.b;
        let Some(url) = seq.next_element_seed(UrlSeed { b: &mut *b })? else {
            return Err(b.fail(Problem::Range("an empty list is not a reference".into())));
        };
        let Some(offset) = seq.next_element_seed(IntSeed {
            b: &mut *b,
            what: "offset",
        })?
        else {
            return b.push(Value::Whole { url });
        };
        let Some(length) = seq.next_element_seed(IntSeed {
            b: &mut *b,
            what: "length",
        })?
        else {
            return Err(b.fail(Problem::Range(
                "a list reference has 1 element ([url]) or 3 ([url, offset, length]), not 2".into(),
            )));
        };
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(b.fail(Problem::Range(
                "a list reference has 1 element ([url]) or 3 ([url, offset, length]), not more"
                    .into(),
            )));
        }
        if offset.checked_add(length).is_none() {
            return Err(b.fail(Problem::Range(format!(
                "offset {offset} + length {length} overflows 64 bits"
            ))));
        }
        b.push(Value::Range {
            url,
            offset,
            length,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let b = self.b;
        let mut bytes = std::mem::take(&mut b.bytes);
        bytes.clear();
        let written = Minify(&mut bytes).visit_map(map);
        let result = written.and_then(|()| b.push(Value::Inline(&bytes)));
        b.bytes = bytes;
        result
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.wrong("null".into())
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.wrong(format!("boolean {v}"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.wrong(format!("number {v}"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.wrong(format!("number {v}"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.wrong(format!("number {v}"))
    }
}

/// The URL of a list reference, interned.
struct UrlSeed<'b> {
    b: &'b mut Builder,
}

impl<'de> DeserializeSeed<'de> for UrlSeed<'_> {
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<u32, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl UrlSeed<'_> {
    fn wrong<E: de::Error>(self, found: &str) -> Result<u32, E> {
        Err(self.b.fail(Problem::WrongType {
            expected: "a URL string",
            found: found.into(),
        }))
    }
}

impl<'de> Visitor<'de> for UrlSeed<'_> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a URL string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        self.b.intern(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
        // fsspec substitutes its `target` option for a null URL; there is no such option here.
        self.wrong("null (a default target URL is not supported)")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u32, E> {
        self.wrong("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u32, E> {
        self.wrong("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u32, E> {
        self.wrong("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u32, E> {
        self.wrong("a number")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<u32, A::Error> {
        self.wrong("a list")
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<u32, A::Error> {
        self.wrong("an object")
    }
}

/// An offset or a length: a non-negative integer.
struct IntSeed<'b> {
    b: &'b mut Builder,
    what: &'static str,
}

impl<'de> DeserializeSeed<'de> for IntSeed<'_> {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl IntSeed<'_> {
    fn bad<E: de::Error>(self, why: &str) -> Result<u64, E> {
        Err(self.b.fail(Problem::Range(format!("{} {why}", self.what))))
    }
}

impl<'de> Visitor<'de> for IntSeed<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => Ok(v),
            Err(_) => self.bad(&format!("is negative ({v})")),
        }
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        self.bad(&format!("is not an integer ({v})"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        self.bad(&format!("is a string ({v:?}), not an integer"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        self.bad("is null, not an integer")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u64, E> {
        self.bad(&format!("is a boolean ({v}), not an integer"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        self.bad("is a list, not an integer")
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        self.bad("is an object, not an integer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list references read without serde read as serde reads them; every spelling it
    /// does not take (escapes, floats, signs, leading zeros, 64-bit overflow, extra elements,
    /// cut short) goes to serde, whose answer, value or error, is then the answer.
    #[test]
    fn simple_lists_read_as_serde_reads_them() {
        let big = u64::MAX;
        let cases = [
            r#"["s3://b/f.nc", 1, 2]"#.to_owned(),
            r#"[ "u" ,0,0 ]"#.to_owned(),
            "[\"u\"\n,\t10\r,\n20]".to_owned(),
            r#"["u"]"#.to_owned(),
            r#"[ "u" ]"#.to_owned(),
            r#"["h\u00e9/f", 1, 2]"#.to_owned(),
            r#"["h\/f", 1, 2]"#.to_owned(),
            r#"["hé/f", 1, 2]"#.to_owned(),
            format!(r#"["u", {big}, 0]"#),
            format!(r#"["u", {big}, 1]"#),
            r#"["u", 18446744073709551616, 1]"#.to_owned(),
            r#"["u", 01, 2]"#.to_owned(),
            r#"["u", 1.0, 2]"#.to_owned(),
            r#"["u", 1e3, 2]"#.to_owned(),
            r#"["u", -1, 2]"#.to_owned(),
            r#"["u", 1, 2, 3]"#.to_owned(),
            r#"["u", 1]"#.to_owned(),
            r#"["u", 1, "2"]"#.to_owned(),
            r#"["u", 1, 2"#.to_owned(),
            r#"["u"#.to_owned(),
            "[1, 2, 3]".to_owned(),
            "[\"a\u{1}b\", 1, 2]".to_owned(),
            "[]".to_owned(),
        ];
        for case in cases {
            let read = |serde_only: bool| {
                let mut b = Builder::new();
                let result = if serde_only {
                    by_serde(&mut b, br#""k/0""#, case.as_bytes())
                } else {
                    reference(&mut b, br#""k/0""#, case.as_bytes())
                };
                result.map_err(|e| e.to_string()).map(|()| {
                    let parsed = finish(b, Version::One).unwrap();
                    let records = parsed.records.finish();
                    (format!("{:?}", records.get("k/0")), parsed.urls)
                })
            };
            assert_eq!(read(false), read(true), "{case}");
        }
        assert!(simple_list(br#"["u", 1, 2] tail"#).is_some_and(|l| l.len == 11));
        assert!(simple_list(br#"["u", 1, 2, 3]"#).is_none());
        assert!(simple_list(br#"["u", 01, 2]"#).is_none());
    }

    /// The version comes from the `version` member wherever it is; absent or null is 0.
    #[test]
    fn version_is_found_anywhere() {
        let cases: [(&str, Result<Version, &str>); 8] = [
            (r#"{"version": 1, "refs": {}}"#, Ok(Version::One)),
            (
                r#"{"refs": {"a": "b"}, "gen": [], "version": 1.0}"#,
                Ok(Version::One),
            ),
            (r#"{"a": ["u", 1, 2]}"#, Ok(Version::Zero)),
            (r#"{"version": null, "a": "x"}"#, Ok(Version::Zero)),
            (
                r#"{"version": 2}"#,
                Err("unknown reference spec version number 2"),
            ),
            (
                r#"{"version": "1"}"#,
                Err("unknown reference spec version string \"1\""),
            ),
            ("[1]", Err("expected a JSON object, found a list")),
            (r#"{"a": "#, Err("ends early")),
        ];
        for (json, want) in cases {
            let got = parse(json.as_bytes())
                .map(|p| p.version)
                .map_err(|e| e.to_string());
            match (got, want) {
                (Ok(v), Ok(w)) => assert_eq!(v, w, "{json}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{json}: {e}"),
                (got, _) => panic!("{json}: {got:?}"),
            }
        }
    }
}
