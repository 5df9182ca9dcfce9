//! Small JSON helpers: an order-preserving value for the small parts of a reference set
//! (`templates`, `gen`), the writer that turns a JSON-object reference value into text the way
//! fsspec does, and Python's float formatting.
//!
//! fsspec serialises a JSON-object value with `ujson.dumps` when ujson is installed (it is in
//! every fixture's environment): minified, members in document order, `/` escaped as `\/`, and
//! non-ASCII escaped as `\uXXXX`. [`Minify`] writes the same bytes for strings, integers, booleans
//! and null; floats use Python's shortest `repr` digits with ujson's unpadded exponent (`1e-5`).

use std::fmt;
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A JSON value that keeps object members in document order (`serde_json`'s `Value` sorts them
/// unless its `preserve_order` feature is on, and the order of `gen` dimensions matters).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// A short description for error messages: the type, and the value when it is short.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Null => "null".into(),
            Self::Bool(b) => format!("boolean {b}"),
            Self::Int(n) => format!("number {n}"),
            Self::Float(x) => format!("number {}", python_float(*x)),
            Self::Str(s) if s.chars().count() <= 40 => format!("string {s:?}"),
            Self::Str(_) => "a string".into(),
            Self::Arr(_) => "a list".into(),
            Self::Obj(_) => "an object".into(),
        }
    }

    /// The member `name` of an object (the last one, as Python's `json` keeps duplicates).
    pub(crate) fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Self::Obj(members) => members
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(Json::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some((k, v)) = map.next_entry()? {
            members.push((k, v));
        }
        Ok(Json::Obj(members))
    }
}

/// Streams any JSON value into `.0` as minified text, the way `ujson.dumps` writes it.
pub(crate) struct Minify<'a>(pub &'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Minify<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Minify<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.extend_from_slice(v.to_string().as_bytes());
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.extend_from_slice(ujson_float(v).as_bytes());
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_string(self.0, v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.push(b'[');
        let mut first = true;
        loop {
            let start = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if seq.next_element_seed(Minify(self.0))?.is_none() {
                self.0.truncate(start);
                break;
            }
            first = false;
        }
        self.0.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(b'{');
        let mut first = true;
        loop {
            let start = self.0.len();
            if !first {
                self.0.push(b',');
            }
            if map.next_key_seed(MinifyKey(self.0))?.is_none() {
                self.0.truncate(start);
                break;
            }
            self.0.push(b':');
            map.next_value_seed(Minify(self.0))?;
            first = false;
        }
        self.0.push(b'}');
        Ok(())
    }
}

/// An object key, written as a JSON string.
struct MinifyKey<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for MinifyKey<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(Minify(self.0))
    }
}

/// Writes `s` as a JSON string with ujson's escaping.
fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '/' => out.extend_from_slice(b"\\/"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c.is_ascii() && !c.is_ascii_control() || c == '\u{7f}' => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            c => {
                let mut units = [0; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.extend_from_slice(format!("\\u{unit:04x}").as_bytes());
                }
            }
        }
    }
    out.push(b'"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional notation when the
/// decimal exponent is in `-4..16`, else as `d.ddde±XX`.
pub(crate) fn python_float(x: f64) -> String {
    format_float(x, 2)
}

/// ujson's float formatting: Python's digits and layout, with an unpadded exponent (`1e-5`).
fn ujson_float(x: f64) -> String {
    format_float(x, 1)
}

fn format_float(x: f64, exponent_digits: usize) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x.is_infinite() {
        return format!("{sign}inf");
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.2345e-7", "5e0".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::from(sign);
    if (-4..16).contains(&exponent) {
        // Positional: the decimal point goes after `exponent + 1` digits.
        let point = exponent + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point.unsigned_abs() as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                let (whole, fraction) = digits.split_at(point);
                out.push_str(whole);
                out.push('.');
                out.push_str(fraction);
            }
        }
    } else {
        let mut chars = digits.chars();
        out.extend(chars.next());
        let fraction = chars.as_str();
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(
            out,
            "e{exp_sign}{:0width$}",
            exponent.unsigned_abs(),
            width = exponent_digits
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minify(json: &str) -> String {
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_str(json);
        Minify(&mut out).deserialize(&mut de).unwrap();
        de.end().unwrap();
        String::from_utf8(out).unwrap()
    }

    /// Objects are minified in document order with ujson's escaping, as fsspec writes them.
    #[test]
    fn minify_matches_ujson() {
        // Expected strings produced by `ujson.dumps` (ujson 6.1) on the same input.
        let cases = [
            (r#"{"zarr_format": 2}"#, r#"{"zarr_format":2}"#),
            (
                r#"{"b": [1, -2, true, null, {}], "a": {"c": []}}"#,
                r#"{"b":[1,-2,true,null,{}],"a":{"c":[]}}"#,
            ),
            (
                r#"{"title": "gen/templates é \u0001\n\t\"\\ 😀"}"#,
                r#"{"title":"gen\/templates \u00e9 \u0001\n\t\"\\ \ud83d\ude00"}"#,
            ),
            (
                "[1.0, 0.1, 1e20, 1e-7, 1e15, 1e16, -0.0, 123456789.123]",
                "[1.0,0.1,1e+20,1e-7,1000000000000000.0,1e+16,-0.0,123456789.123]",
            ),
            (r#"["\u007f"]"#, "[\"\u{7f}\"]"),
        ];
        for (input, want) in cases {
            assert_eq!(minify(input), want, "{input}");
        }
    }

    /// Python's float repr: positional for exponents -4..16, padded exponent otherwise.
    #[test]
    fn python_float_repr() {
        let cases = [
            (0.5, "0.5"),
            (2.0, "2.0"),
            (3.5, "3.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (9.999e-5, "9.999e-05"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
            (-1234.5, "-1234.5"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float(x), want, "{x}");
        }
    }

    /// The order-preserving value keeps members as written and reads the last duplicate.
    #[test]
    fn json_keeps_member_order() {
        let v: Json = serde_json::from_str(r#"{"k": 1, "j": [2, "x"], "k": 3}"#).unwrap();
        let Json::Obj(members) = &v else { panic!() };
        let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["k", "j", "k"]);
        assert_eq!(v.get("k"), Some(&Json::Int(3)));
        assert_eq!(v.get("nope"), None);
    }
}
