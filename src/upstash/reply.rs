//! Decoding Upstash REST replies (asked for with `Upstash-Encoding: base64`) into typed values.
//!
//! Pure: takes the HTTP status and body a transport received. Distinguishes a command that Redis
//! refused ([`ReplyError::Command`], the caller's mistake or the data's state) from a reply that is
//! not Upstash's protocol at all ([`ReplyError::Protocol`]) and from HTTP-level refusals such as a
//! bad token or an outage ([`ReplyError::Http`]).

use base64::Engine as _;
use serde_json::Value as Json;

/// A decoded Redis reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Redis nil (absent key, failed `SET NX`).
    Nil,
    /// An integer reply.
    Int(i64),
    /// A string reply, as bytes (base64-decoded). `"OK"` arrives as the bytes `OK`.
    Bytes(Vec<u8>),
    /// An array reply.
    Array(Vec<Value>),
}

impl Value {
    /// The reply as UTF-8 text, if it is a string reply that is valid UTF-8.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Bytes(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    /// The reply as an integer: an integer reply, or a string reply holding one (as `GET` gives).
    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Bytes(_) => self.as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Decodes one `result` member: strings are base64 except the literal `"OK"`.
    fn from_base64_json(json: &Json) -> Result<Self, ReplyError> {
        match json {
            Json::Null => Ok(Self::Nil),
            Json::Number(n) => n
                .as_i64()
                .map(Self::Int)
                .ok_or_else(|| ReplyError::Protocol(format!("non-integer number {n} in result"))),
            Json::String(s) if s == "OK" => Ok(Self::Bytes(b"OK".to_vec())),
            Json::String(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Self::Bytes)
                .map_err(|e| ReplyError::Protocol(format!("result string is not base64 ({e})"))),
            Json::Array(items) => items
                .iter()
                .map(Self::from_base64_json)
                .collect::<Result<_, _>>()
                .map(Self::Array),
            Json::Bool(_) | Json::Object(_) => Err(ReplyError::Protocol(format!(
                "unexpected JSON in result: {json}"
            ))),
        }
    }
}

/// Why a reply could not be turned into a [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Redis refused the command (`{"error": "ERR …"}`): a bug in the command or a type clash.
    #[error("redis refused the command: {0}")]
    Command(String),
    /// The server answered with a non-success HTTP status (bad token, outage, size limit).
    #[error("index server answered HTTP {status}: {message}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The `error` member of the body, or the body itself.
        message: String,
    },
    /// The body is not an Upstash reply (not JSON, wrong shape, wrong count).
    #[error("index reply is not the Upstash protocol: {0}")]
    Protocol(String),
}

/// Decodes the answer to [`HttpCall::single`](super::HttpCall::single).
///
/// # Errors
/// [`ReplyError::Command`] for a Redis error, [`ReplyError::Http`] for other non-2xx statuses, and
/// [`ReplyError::Protocol`] for a body that is not an Upstash reply.
pub fn decode_single(status: u16, body: &[u8]) -> Result<Value, ReplyError> {
    let json = open_envelope(status, body)?;
    match json.get("result") {
        Some(result) => Value::from_base64_json(result),
        None => Err(ReplyError::Protocol(format!("no result member in {json}"))),
    }
}

/// Decodes the answer to [`HttpCall::batch`](super::HttpCall::batch) for `expected` commands.
///
/// The outer `Result` fails when the whole batch failed (HTTP error, a transaction discarded as a
/// whole, malformed body); each inner `Result` is one command's own answer, in order.
///
/// # Errors
/// As [`decode_single`], for the batch as a whole; also [`ReplyError::Protocol`] when the number of
/// answers differs from `expected`.
pub fn decode_batch(
    status: u16,
    body: &[u8],
    expected: usize,
) -> Result<Vec<Result<Value, ReplyError>>, ReplyError> {
    let json = open_envelope(status, body)?;
    let Json::Array(items) = json else {
        return Err(ReplyError::Protocol(format!(
            "batch reply is not an array: {json}"
        )));
    };
    if items.len() != expected {
        return Err(ReplyError::Protocol(format!(
            "batch of {expected} commands got {} answers",
            items.len()
        )));
    }
    Ok(items
        .iter()
        .map(|item| match (error_member(item), item.get("result")) {
            (Some(error), _) => Err(ReplyError::Command(error)),
            (None, Some(result)) => Value::from_base64_json(result),
            (None, None) => Err(ReplyError::Protocol(format!(
                "batch item without result: {item}"
            ))),
        })
        .collect())
}

/// Parses the body and turns a top-level `{"error"}` or a non-2xx status into a [`ReplyError`].
fn open_envelope(status: u16, body: &[u8]) -> Result<Json, ReplyError> {
    let success = (200..300).contains(&status);
    let json = parse_body(status, body)?;
    if let Some(error) = error_member(&json) {
        // Upstash answers 400 for a refused command; other statuses are transport-level refusals.
        return Err(if status == 400 || success {
            ReplyError::Command(error)
        } else {
            ReplyError::Http {
                status,
                message: error,
            }
        });
    }
    if success {
        Ok(json)
    } else {
        Err(ReplyError::Http {
            status,
            message: json.to_string(),
        })
    }
}

fn parse_body(status: u16, body: &[u8]) -> Result<Json, ReplyError> {
    serde_json::from_slice(body).map_err(|e| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        if (200..300).contains(&status) {
            ReplyError::Protocol(format!("body is not JSON ({e}): {text}"))
        } else {
            ReplyError::Http {
                status,
                message: text,
            }
        }
    })
}

fn error_member(json: &Json) -> Option<String> {
    match json.get("error")? {
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// Strings are base64-decoded, nested ones too, while "OK", ints and null pass untouched.
    #[test]
    fn single_reply_decodes_base64_strings_but_not_ok() {
        let cases: Vec<(String, Value)> = vec![
            (r#"{"result":"OK"}"#.into(), Value::Bytes(b"OK".to_vec())),
            (r#"{"result":null}"#.into(), Value::Nil),
            (r#"{"result":42}"#.into(), Value::Int(42)),
            (
                format!(r#"{{"result":"{}"}}"#, b64(b"PONG")),
                Value::Bytes(b"PONG".to_vec()),
            ),
            (
                format!(r#"{{"result":"{}"}}"#, b64(&[0, 255, 10])),
                Value::Bytes(vec![0, 255, 10]),
            ),
            (
                format!(r#"{{"result":["{}",[1,null,"OK"]]}}"#, b64("é".as_bytes())),
                Value::Array(vec![
                    Value::Bytes("é".as_bytes().to_vec()),
                    Value::Array(vec![
                        Value::Int(1),
                        Value::Nil,
                        Value::Bytes(b"OK".to_vec()),
                    ]),
                ]),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(decode_single(200, body.as_bytes()), Ok(want), "{body}");
        }
    }

    /// A 400 with an error member is a refused command; 401 is an HTTP-level refusal.
    #[test]
    fn single_reply_errors_are_classified_by_status() {
        assert_eq!(
            decode_single(400, br#"{"error":"ERR unknown command 'FOO'"}"#),
            Err(ReplyError::Command("ERR unknown command 'FOO'".into()))
        );
        assert_eq!(
            decode_single(401, br#"{"error":"Unauthorized"}"#),
            Err(ReplyError::Http {
                status: 401,
                message: "Unauthorized".into()
            })
        );
        assert!(matches!(
            decode_single(502, b"<html>bad gateway</html>"),
            Err(ReplyError::Http { status: 502, .. })
        ));
        assert!(matches!(
            decode_single(200, b"not json"),
            Err(ReplyError::Protocol(_))
        ));
        assert!(matches!(
            decode_single(200, br#"{"result":"%%%"}"#),
            Err(ReplyError::Protocol(_))
        ));
        assert!(matches!(
            decode_single(200, br#"{"result":1.5}"#),
            Err(ReplyError::Protocol(_))
        ));
    }

    /// A pipeline answers per command; one failure does not hide the others.
    #[test]
    fn batch_reply_keeps_per_command_errors() {
        let body = format!(
            r#"[{{"result":"OK"}},{{"error":"WRONGTYPE x"}},{{"result":"{}"}}]"#,
            b64(b"v")
        );
        let got = decode_batch(200, body.as_bytes(), 3).unwrap();
        assert_eq!(got[0], Ok(Value::Bytes(b"OK".to_vec())));
        assert_eq!(got[1], Err(ReplyError::Command("WRONGTYPE x".into())));
        assert_eq!(got[2], Ok(Value::Bytes(b"v".to_vec())));
    }

    /// A batch discarded whole, or answered with the wrong count, fails as a whole.
    #[test]
    fn batch_reply_whole_failures() {
        assert_eq!(
            decode_batch(400, br#"{"error":"ERR EXECABORT"}"#, 2),
            Err(ReplyError::Command("ERR EXECABORT".into()))
        );
        assert!(matches!(
            decode_batch(200, br#"[{"result":1}]"#, 2),
            Err(ReplyError::Protocol(_))
        ));
        assert!(matches!(
            decode_batch(200, br#"{"result":1}"#, 1),
            Err(ReplyError::Protocol(_))
        ));
    }

    /// Integer helpers read both integer replies and numeric strings.
    #[test]
    fn value_accessors() {
        assert_eq!(Value::Int(7).as_int(), Some(7));
        assert_eq!(Value::Bytes(b"12".to_vec()).as_int(), Some(12));
        assert_eq!(Value::Bytes(b"PONG".to_vec()).as_str(), Some("PONG"));
        assert_eq!(Value::Nil.as_str(), None);
    }
}
