//! Redis replies → Upstash JSON (`{"result": …}` / `{"error": …}`).
//!
//! Pure: no I/O. The mapping follows Upstash's REST API on RESP2 semantics:
//!
//! * nil → `null`; integer → JSON number; bulk and simple strings → JSON
//!   strings; arrays → JSON arrays (nested as deep as Redis nests them);
//! * scores and other doubles stay strings, as RESP2 sends them (the Python
//!   client refuses JSON floats). RESP3-only types, should the Redis URL ask for
//!   RESP3, are folded back to their RESP2 shape: double → string, boolean →
//!   1/0, map → flat `[k, v, …]` array, set → array, big number → string;
//! * a Redis error reply → `{"error": "<Redis's own text>"}`.
//!
//! Strings are bytes in Redis. Without `Upstash-Encoding: base64` they become
//! text lossily (invalid UTF-8 → U+FFFD), as Upstash documents. With it, every
//! string, at any depth, is standard base64 of the exact bytes, except the
//! status reply `OK`, which stays the literal `"OK"`; integers and nulls are
//! untouched.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use redis::{ServerError, Value};
use serde_json::{json, Value as Json};

/// How strings in a reply are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Text, with invalid UTF-8 replaced by U+FFFD.
    Text,
    /// Base64 of the raw bytes (`Upstash-Encoding: base64`).
    Base64,
}

impl Encoding {
    /// The encoding asked for by an `Upstash-Encoding` header value, if any.
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("base64") => Encoding::Base64,
            _ => Encoding::Text,
        }
    }
}

/// The outcome of one command, as Upstash reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The command succeeded; the JSON form of its reply.
    Result(Json),
    /// Redis answered with an error reply; its text.
    Error(String),
}

impl Outcome {
    /// Converts a top-level reply: an error reply becomes [`Outcome::Error`].
    pub fn from_value(value: Value, encoding: Encoding) -> Self {
        match value {
            Value::ServerError(error) => Outcome::Error(error_text(&error)),
            other => Outcome::Result(to_json(other, encoding)),
        }
    }

    /// True for [`Outcome::Error`].
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }

    /// The `{"result": …}` or `{"error": …}` object.
    pub fn into_json(self) -> Json {
        match self {
            Outcome::Result(result) => json!({ "result": result }),
            Outcome::Error(error) => json!({ "error": error }),
        }
    }
}

/// Redis's error text as it was on the wire, e.g. `ERR unknown command 'x'`.
pub fn error_text(error: &ServerError) -> String {
    match error.details() {
        Some(details) if !details.is_empty() => format!("{} {}", error.code(), details),
        _ => error.code().to_string(),
    }
}

/// Converts a reply (at any depth) to JSON under `encoding`.
pub fn to_json(value: Value, encoding: Encoding) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(n) => Json::from(n),
        Value::Okay => Json::from("OK"),
        Value::SimpleString(s) if s == "OK" => Json::from("OK"),
        Value::SimpleString(s) => string(s.as_bytes(), encoding),
        Value::BulkString(bytes) => string(&bytes, encoding),
        Value::Array(items) | Value::Set(items) => array(items, encoding),
        Value::Push { data, .. } => array(data, encoding),
        Value::Map(pairs) => Json::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [to_json(k, encoding), to_json(v, encoding)])
                .collect(),
        ),
        Value::Attribute { data, .. } => to_json(*data, encoding),
        Value::Double(d) => string(format_double(d).as_bytes(), encoding),
        Value::Boolean(b) => Json::from(i64::from(b)),
        Value::VerbatimString { text, .. } => string(text.as_bytes(), encoding),
        Value::BigNumber(n) => string(format!("{n:?}").as_bytes(), encoding),
        Value::ServerError(error) => string(error_text(&error).as_bytes(), encoding),
        // `Value` is non-exhaustive; anything newer is shown as its debug text.
        other => string(format!("{other:?}").as_bytes(), encoding),
    }
}

/// A JSON array of converted items.
fn array(items: Vec<Value>, encoding: Encoding) -> Json {
    Json::Array(items.into_iter().map(|v| to_json(v, encoding)).collect())
}

/// One Redis string as JSON.
fn string(bytes: &[u8], encoding: Encoding) -> Json {
    match encoding {
        Encoding::Text => Json::from(String::from_utf8_lossy(bytes).into_owned()),
        Encoding::Base64 => Json::from(BASE64.encode(bytes)),
    }
}

/// A double the way Redis writes it in RESP2 (`1`, `1.5`, `inf`, `-inf`).
fn format_double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        d.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(resp: &[u8]) -> Value {
        match redis::parse_redis_value(resp) {
            Ok(v) => v,
            Err(e) => panic!("bad RESP in test {resp:?}: {e}"),
        }
    }

    #[test]
    fn text_encoding() {
        let cases: &[(&[u8], Json)] = &[
            (b"$-1\r\n", Json::Null),
            (b":137\r\n", json!(137)),
            (b":-5\r\n", json!(-5)),
            (b"+OK\r\n", json!("OK")),
            (b"+PONG\r\n", json!("PONG")),
            (b"$5\r\nvalue\r\n", json!("value")),
            (b"$0\r\n\r\n", json!("")),
            (b"$3\r\n\xff\x00a\r\n", json!("\u{fffd}\u{0}a")),
            (b"$2\r\nOK\r\n", json!("OK")),
            (
                b"*3\r\n$6\r\nvalue1\r\n$-1\r\n$6\r\nvalue2\r\n",
                json!(["value1", null, "value2"]),
            ),
            (b"*2\r\n$1\r\na\r\n$3\r\n1.5\r\n", json!(["a", "1.5"])),
            (
                b"*2\r\n*2\r\n:1\r\n$1\r\nx\r\n*0\r\n",
                json!([[1, "x"], []]),
            ),
            (b"*-1\r\n", Json::Null),
        ];
        for (resp, want) in cases {
            assert_eq!(&to_json(parse(resp), Encoding::Text), want, "{resp:?}");
        }
    }

    #[test]
    fn base64_encoding_everything_but_ok() {
        let cases: &[(&[u8], Json)] = &[
            (b"$-1\r\n", Json::Null),
            (b":137\r\n", json!(137)),
            (b"+OK\r\n", json!("OK")),
            (b"+PONG\r\n", json!("UE9ORw==")),
            (b"+QUEUED\r\n", json!("UVVFVUVE")),
            (b"$3\r\nbar\r\n", json!("YmFy")),
            (b"$2\r\nOK\r\n", json!("T0s=")),
            (b"$3\r\n\xff\x00a\r\n", json!("/wBh")),
            (b"$0\r\n\r\n", json!("")),
            (
                b"*3\r\n$1\r\na\r\n*2\r\n$1\r\nb\r\n:2\r\n$-1\r\n",
                json!(["YQ==", ["Yg==", 2], null]),
            ),
        ];
        for (resp, want) in cases {
            assert_eq!(&to_json(parse(resp), Encoding::Base64), want, "{resp:?}");
        }
    }

    #[test]
    fn resp3_values_fold_to_resp2() {
        let cases: Vec<(Value, Json)> = vec![
            (Value::Double(1.5), json!("1.5")),
            (Value::Double(2.0), json!("2")),
            (Value::Double(f64::INFINITY), json!("inf")),
            (Value::Double(f64::NEG_INFINITY), json!("-inf")),
            (Value::Boolean(true), json!(1)),
            (Value::Boolean(false), json!(0)),
            (
                Value::Map(vec![(Value::BulkString(b"f".to_vec()), Value::Int(1))]),
                json!(["f", 1]),
            ),
            (
                Value::Set(vec![Value::SimpleString("m".into())]),
                json!(["m"]),
            ),
        ];
        for (value, want) in cases {
            assert_eq!(to_json(value.clone(), Encoding::Text), want, "{value:?}");
        }
    }

    #[test]
    fn outcomes() {
        let err = Outcome::from_value(
            parse(b"-ERR unknown command 'foo', with args beginning with: \r\n"),
            Encoding::Base64,
        );
        assert_eq!(
            err,
            // Redis's text exactly, trailing space included.
            Outcome::Error("ERR unknown command 'foo', with args beginning with: ".into())
        );
        assert!(err.is_error());
        let wrongtype = Outcome::from_value(
            parse(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
            Encoding::Text,
        );
        assert_eq!(
            wrongtype.into_json(),
            json!({"error": "WRONGTYPE Operation against a key holding the wrong kind of value"})
        );
        let ok = Outcome::from_value(parse(b"+OK\r\n"), Encoding::Base64);
        assert!(!ok.is_error());
        assert_eq!(ok.into_json(), json!({"result": "OK"}));
        let nil = Outcome::from_value(Value::Nil, Encoding::Base64);
        assert_eq!(nil.into_json(), json!({"result": null}));
    }

    #[test]
    fn header_values() {
        let cases = [
            (None, Encoding::Text),
            (Some("base64"), Encoding::Base64),
            (Some("BASE64"), Encoding::Base64),
            (Some(" base64 "), Encoding::Base64),
            (Some("utf-8"), Encoding::Text),
            (Some(""), Encoding::Text),
        ];
        for (header, want) in cases {
            assert_eq!(Encoding::from_header(header), want, "{header:?}");
        }
    }
}
