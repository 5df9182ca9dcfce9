//! A reference document parsed as its bytes arrive ([`ReferenceStream`]): never held whole.
//!
//! A byte scanner splits the document into its top-level members and, inside `refs` (or at the
//! top level of a version-0 document), into single `"key": value` references; each reference is
//! handed to the serde visitors of `super::parse` on its own. A value that lies within one fed
//! piece is parsed where it lies; only one cut by a piece boundary (and `templates`/`gen`, which
//! are small) is buffered, so memory is the compact store plus one reference, whatever the
//! document's size.
//!
//! The version is decided by the first top-level member, as kerchunk writes it: `version`,
//! `refs`, `templates` or `gen` first is version 1 (other members then are ignored, as fsspec
//! ignores them); any other key first is a version-0 reference. A version-0 document that later
//! says `"version": 1` is refused rather than read twice.

use super::error::{LoadError, Place, Problem};
use super::json::Json;
use super::parse::{self, Builder, Parsed, Version};

/// Where the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the document's `{`.
    Start,
    /// Expecting a key (or the end of the object, when `first`).
    ExpectKey { first: bool },
    /// Inside a key string.
    Key,
    /// After a key, expecting `:`.
    Colon,
    /// After `:`, expecting a value.
    ValueStart,
    /// Inside a value: nested `depth` deep (0 for a scalar or a string at its own level).
    Value,
    /// After a value, expecting `,` or the end of the object.
    AfterValue,
    /// After the document's `}`: only whitespace may follow.
    End,
}

/// Which object the scanner is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Refs,
}

/// What the member being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    /// A reference: its key and value handed to the visitors.
    Reference,
    /// `version`, `templates` or `gen`: kept whole, then read.
    Kept,
    /// An unknown top-level member of a version-1 document.
    Ignored,
}

/// The most bytes one reference (or `templates`, or `gen`) may take in the document.
pub const MAX_MEMBER_BYTES: usize = 64 * 1024 * 1024;

/// A kerchunk reference document read incrementally: [`feed`](Self::feed) its bytes in any
/// pieces, then hand it to [`References::from_stream`](super::References::from_stream).
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // the scanner's states, each a flag of the byte loop
pub struct ReferenceStream {
    builder: Builder,
    state: State,
    level: Level,
    member: Member,
    version: Option<Version>,
    /// The current key (its JSON text, quotes included).
    key: Vec<u8>,
    /// The current value's bytes from earlier pieces (empty while it lies in the current one).
    unit: Vec<u8>,
    /// Whether the current value began in the piece being read (then, if it also ends there,
    /// it is parsed in place, not copied).
    started_here: bool,
    /// Nesting inside the current value; string state.
    depth: u32,
    in_string: bool,
    escaped: bool,
    seen_refs: bool,
    /// Bytes consumed, for error positions.
    offset: u64,
}

impl Default for ReferenceStream {
    fn default() -> Self {
        Self::new()
    }
}

impl ReferenceStream {
    /// A stream at the start of a document.
    #[must_use]
    pub fn new() -> Self {
        Self {
            builder: Builder::new(),
            state: State::Start,
            level: Level::Top,
            member: Member::Reference,
            version: None,
            key: Vec::new(),
            unit: Vec::new(),
            started_here: false,
            depth: 0,
            in_string: false,
            escaped: false,
            seen_refs: false,
            offset: 0,
        }
    }

    /// Bytes read so far.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Reads the next bytes of the document.
    ///
    /// # Errors
    /// The [`LoadError`] of the first problem; the stream is then unusable.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        let mut i = 0;
        while i < bytes.len() {
            if self.state == State::Value {
                i += self.value_bytes(&bytes[i..])?;
                continue;
            }
            if self.state == State::Key && !self.escaped {
                // A key's bytes up to its next quote or backslash, at once.
                let rest = &bytes[i..];
                let plain = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                if plain > 0 {
                    if self.key.len() + plain > MAX_MEMBER_BYTES {
                        return Err(too_large());
                    }
                    self.key.extend_from_slice(&rest[..plain]);
                    i += plain;
                    self.offset += plain as u64;
                    continue;
                }
            }
            let byte = bytes[i];
            // A scalar value ends at its terminator, which is then read again as what follows.
            if self.step(byte)? {
                i += 1;
                self.offset += 1;
            }
        }
        Ok(())
    }

    /// The parsed document.
    ///
    /// # Errors
    /// A document that ended early, or whose version, `templates` or `gen` are wrong.
    pub(crate) fn finish(self) -> Result<Parsed, LoadError> {
        if self.state == State::Value && self.depth == 0 && !self.in_string {
            // A top-level scalar cannot end the document: it needs the closing brace.
            return Err(self.json_error("the document ends inside a value"));
        }
        match self.state {
            State::End => {}
            State::Start => {
                return Err(LoadError::new(
                    Place::Document,
                    Problem::Json("empty document".into()),
                ))
            }
            _ => return Err(self.json_error("the document ends early (truncated?)")),
        }
        parse::finish(self.builder, self.version.unwrap_or(Version::Zero))
    }

    /// Reads bytes of a value; returns how many it took. The value's end is found first and
    /// its bytes copied at once (strings are skipped to their next quote or backslash).
    fn value_bytes(&mut self, bytes: &[u8]) -> Result<usize, LoadError> {
        if self.started_here && self.member == Member::Reference && bytes.first() == Some(&b'[') {
            // Most references are `["url", offset, length]`: read at once, end and value both.
            if let Some(list) = parse::simple_list(bytes) {
                self.started_here = false;
                self.offset += list.len as u64;
                self.check_size(list.len)?;
                self.state = State::AfterValue;
                parse::simple_reference(&mut self.builder, &self.key, &list)?;
                return Ok(list.len);
            }
        }
        let mut n = 0;
        let end = loop {
            if n >= bytes.len() {
                break None;
            }
            if self.escaped {
                self.escaped = false;
                n += 1;
                continue;
            }
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &bytes[n..]) {
                    None => n = bytes.len(),
                    Some(at) if bytes[n + at] == b'\\' => {
                        self.escaped = true;
                        n += at + 1;
                    }
                    Some(at) => {
                        self.in_string = false;
                        n += at + 1;
                        if self.depth == 0 {
                            break Some(n);
                        }
                    }
                }
                continue;
            }
            match bytes[n] {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' if self.depth > 0 => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        break Some(n + 1);
                    }
                }
                // The end of a scalar: its terminator is read again by `step`.
                b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' if self.depth == 0 => {
                    break Some(n);
                }
                _ => {}
            }
            n += 1;
        };
        let taken = end.unwrap_or(bytes.len());
        self.offset += taken as u64;
        if end.is_some() && self.started_here {
            // The whole value is in this piece: read where it lies.
            self.started_here = false;
            self.check_size(taken)?;
            self.end_value(&bytes[..taken])?;
        } else {
            self.started_here = false;
            self.extend(&bytes[..taken])?;
            if end.is_some() {
                let unit = std::mem::take(&mut self.unit);
                let ended = self.end_value(&unit);
                self.unit = unit;
                ended?;
            }
        }
        Ok(taken)
    }

    /// Reads one byte outside a value; `false` when the byte must be read again.
    fn step(&mut self, byte: u8) -> Result<bool, LoadError> {
        // Whitespace between tokens (a key's own bytes are kept, a value's never come here).
        if byte.is_ascii_whitespace() && self.state != State::Key {
            return Ok(true);
        }
        match self.state {
            State::Start if byte == b'{' => self.state = State::ExpectKey { first: true },
            State::Start => return Err(not_an_object(byte)),
            State::End => return Err(self.json_error("trailing characters after the document")),
            State::ExpectKey { first: true } if byte == b'}' => self.close_object(),
            State::ExpectKey { .. } if byte == b'"' => {
                self.key.clear();
                self.key.push(b'"');
                self.escaped = false;
                self.state = State::Key;
            }
            State::ExpectKey { .. } => return Err(self.json_error("expected a key")),
            State::Key => {
                if self.key.len() >= MAX_MEMBER_BYTES {
                    return Err(too_large());
                }
                self.key.push(byte);
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.state = State::Colon;
                }
            }
            State::Colon if byte == b':' => self.state = State::ValueStart,
            State::Colon => return Err(self.json_error("expected ':' after a key")),
            // A value's first byte is read again, by `value_bytes`.
            State::ValueStart => return self.start_value(byte),
            State::AfterValue if byte == b',' => self.state = State::ExpectKey { first: false },
            State::AfterValue if byte == b'}' => self.close_object(),
            State::AfterValue => return Err(self.json_error("expected ',' or '}'")),
            // `feed` gives the bytes of a value to `value_bytes`.
            State::Value => return Err(self.json_error("a value read out of turn")),
        }
        Ok(true)
    }

    /// The end of the current object: `refs`, or the document.
    fn close_object(&mut self) {
        match self.level {
            Level::Refs => {
                self.level = Level::Top;
                self.state = State::AfterValue;
            }
            Level::Top => self.state = State::End,
        }
    }

    /// The first byte of a value: decides what the member is. Returns whether the byte was
    /// consumed (`refs` opening); else `value_bytes` reads it as the value's first.
    fn start_value(&mut self, byte: u8) -> Result<bool, LoadError> {
        self.unit.clear();
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
        self.member = Member::Reference;
        if self.level == Level::Top {
            let key = self.key_text()?;
            match (key.as_str(), self.version) {
                ("refs", None | Some(Version::One)) if byte == b'{' => {
                    if self.seen_refs {
                        return Err(LoadError::new(
                            Place::Document,
                            Problem::Json("\"refs\" appears twice".into()),
                        ));
                    }
                    self.seen_refs = true;
                    self.version = Some(Version::One);
                    self.level = Level::Refs;
                    self.state = State::ExpectKey { first: true };
                    return Ok(true);
                }
                ("refs", Some(Version::One)) => {
                    return Err(LoadError::new(
                        Place::Document,
                        Problem::WrongType {
                            expected: "an object",
                            found: format!("{} for \"refs\"", describe_start(byte)),
                        },
                    ))
                }
                ("version", _) => self.member = Member::Kept,
                ("templates" | "gen", None | Some(Version::One)) => {
                    self.version = Some(Version::One);
                    self.member = Member::Kept;
                }
                (_, Some(Version::One)) => self.member = Member::Ignored,
                (_, None | Some(Version::Zero)) => self.version = Some(Version::Zero),
            }
        }
        self.state = State::Value;
        self.started_here = true;
        Ok(false)
    }

    /// Appends bytes of the member (an ignored one is skipped, not kept).
    fn extend(&mut self, bytes: &[u8]) -> Result<(), LoadError> {
        if self.member == Member::Ignored {
            return Ok(());
        }
        self.check_size(self.unit.len() + bytes.len())?;
        self.unit.extend_from_slice(bytes);
        Ok(())
    }

    /// Refuses a member of more than [`MAX_MEMBER_BYTES`] (an ignored one is not kept).
    fn check_size(&self, bytes: usize) -> Result<(), LoadError> {
        if self.member != Member::Ignored && bytes > MAX_MEMBER_BYTES {
            return Err(too_large());
        }
        Ok(())
    }

    /// A whole member was read (`value`, its value's JSON text): hand it on.
    fn end_value(&mut self, value: &[u8]) -> Result<(), LoadError> {
        self.state = State::AfterValue;
        match self.member {
            Member::Ignored => Ok(()),
            Member::Reference => parse::reference(&mut self.builder, &self.key, value),
            Member::Kept => {
                let key = self.key_text()?;
                let value: Json = serde_json::from_slice(value).map_err(|e| {
                    LoadError::new(Place::Document, Problem::Json(format!("{key}: {e}")))
                })?;
                match key.as_str() {
                    "version" => self.set_version(&value),
                    "templates" => {
                        self.builder.set_templates(value);
                        Ok(())
                    }
                    _ => {
                        self.builder.set_gen(value);
                        Ok(())
                    }
                }
            }
        }
    }

    /// The `version` member.
    fn set_version(&mut self, value: &Json) -> Result<(), LoadError> {
        let said = match value {
            // fsspec compares with `== 1`, so 1.0 counts too; null means version 0.
            Json::Int(1) | Json::Float(1.0) => Version::One,
            Json::Null => Version::Zero,
            other => {
                return Err(LoadError::new(
                    Place::Document,
                    Problem::UnknownVersion(other.describe()),
                ))
            }
        };
        match (self.version, said) {
            (None, _) => self.version = Some(said),
            (Some(before), now) if before == now => {}
            (Some(_), _) => {
                return Err(LoadError::new(
                    Place::Document,
                    Problem::Json(
                        "the version member disagrees with the members before it (version 0 \
                         references and version 1 members mixed)"
                            .into(),
                    ),
                ))
            }
        }
        Ok(())
    }

    /// The current key, decoded.
    fn key_text(&self) -> Result<String, LoadError> {
        serde_json::from_slice(&self.key)
            .map_err(|e| LoadError::new(Place::Document, Problem::Json(format!("a key: {e}"))))
    }

    fn json_error(&self, what: &str) -> LoadError {
        LoadError::new(
            Place::Document,
            Problem::Json(format!("{what} at byte {}", self.offset)),
        )
    }
}

fn too_large() -> LoadError {
    LoadError::new(
        Place::Document,
        Problem::TooLarge(format!("a member of more than {MAX_MEMBER_BYTES} bytes")),
    )
}

fn not_an_object(first: u8) -> LoadError {
    LoadError::new(
        Place::Document,
        Problem::WrongType {
            expected: "a JSON object",
            found: describe_start(first).into(),
        },
    )
}

/// What a JSON value starting with `first` is.
fn describe_start(first: u8) -> &'static str {
    match first {
        b'{' => "an object",
        b'[' => "a list",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        b'-' | b'0'..=b'9' => "a number",
        _ => "something that is not JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kerchunk::{LoadOptions, References};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/kerchunk");

    fn every_key(refs: &References) -> Vec<(String, String)> {
        refs.explicit_keys()
            .map(|k| (k.to_owned(), format!("{:?}", refs.get(k))))
            .collect()
    }

    /// A document fed in pieces of any size (one byte, a few, split inside strings, escapes
    /// and numbers) reads as the same references as when fed whole.
    #[test]
    fn pieces_of_any_size_read_the_same() {
        for name in [
            "hdf5_single.json",
            "combine_series.json",
            "spec_v0_example.json",
            "spec_v1_example.json",
            "gen_zarr_example.json",
        ] {
            let json = std::fs::read(format!("{FIXTURES}/{name}")).unwrap();
            let options = LoadOptions {
                base_url: None,
                s3_endpoint: Some(crate::source::kerchunk::S3Endpoint {
                    endpoint: "https://s3.test".into(),
                    path_style: true,
                }),
            };
            let whole = References::from_json(&json, &options).unwrap();
            for size in [1, 2, 3, 7, 64, 4096] {
                let mut stream = ReferenceStream::new();
                for piece in json.chunks(size) {
                    stream.feed(piece).unwrap();
                }
                assert_eq!(stream.bytes_read(), json.len() as u64);
                let pieces = References::from_stream(stream, &options).unwrap();
                assert_eq!(
                    every_key(&pieces),
                    every_key(&whole),
                    "{name} in pieces of {size}"
                );
                assert_eq!(pieces.gen_patterns().len(), whole.gen_patterns().len());
            }
        }
    }

    /// Escapes, nesting, scalars at the end of objects, and unknown version-1 members.
    #[test]
    fn tricky_documents() {
        let json = br#" { "version" : 1 , "zz": {"refs": [1, {"}": "]"}]}, "refs" : {
            "a\"b/0" : "x\"}y" , "c/.zattrs": {"k": [1, 2, {"n": null}]},
            "d/0": ["http://o.test/f", 1, 2],"e/0":["http://o.test/f"]} , "other": true } "#;
        let refs = References::from_json(json, &LoadOptions::default()).unwrap();
        let keys: Vec<_> = refs.explicit_keys().collect();
        assert_eq!(keys, ["a\"b/0", "c/.zattrs", "d/0", "e/0"]);
        assert!(matches!(
            refs.get("a\"b/0"),
            Some(crate::source::kerchunk::Reference::Inline(b"x\"}y"))
        ));
    }

    /// Truncated, trailing or mixed documents are refused with what is wrong.
    #[test]
    fn bad_documents_are_refused() {
        for (json, why) in [
            (&br#"{"version": 1, "refs": {"a": "b""#[..], "ends early"),
            (br#"{"version": 1, "refs": {"a": "b"}} x"#, "trailing"),
            (br#"{"a/0": "x", "version": 1}"#, "mixed"),
            (br#"{"version": 1, "refs": {}, "refs": {}}"#, "twice"),
            (br#"{"version": 1, "refs": {"a" "b"}}"#, "':'"),
            (br#"{"version": 1, "refs": {"a": "b" "c": 1}}"#, "','"),
            (br#"{"version": 1, "refs": {"a": 12}}"#, "key \"a\""),
            (b"", "empty"),
            (b"[]", "a list"),
            (br#"{"version": 1, "refs": {"a": tru"#, "ends"),
        ] {
            let error = References::from_json(json, &LoadOptions::default())
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(why),
                "{}: {error}",
                String::from_utf8_lossy(json)
            );
        }
    }
}
