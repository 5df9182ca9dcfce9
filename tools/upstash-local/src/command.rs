//! Request → Redis argument vectors, and the policy on which commands may run.
//!
//! Pure: no I/O, no Redis. Three request shapes become an [`Argv`] (one byte
//! string per Redis argument, command name first):
//!
//! * a JSON array body, `["SET","k","v","EX",100]` ([`parse_command`]);
//! * a JSON array of such arrays for `/pipeline` and `/multi-exec`
//!   ([`parse_pipeline`]);
//! * the path form `/set/k/v?EX=100`, where a non-empty body is appended as
//!   one more (binary-safe) argument before the query pairs
//!   ([`parse_path_command`]).
//!
//! JSON arguments may be strings, numbers (passed on exactly as written, so
//! `1.5` becomes `"1.5"` and `1.0` stays `"1.0"`) or booleans (`"true"`,
//! `"false"`, which is what `@upstash/redis` relies on when it sends a bare
//! boolean). `null`, arrays and objects are refused: the official clients
//! stringify such values themselves before sending.
//!
//! [`check_allowed`] refuses what cannot work over stateless HTTP through a
//! shared connection pool (pub/sub, MONITOR, SELECT, MULTI/WATCH, …) and
//! blocking commands that could wait forever or longer than
//! [`MAX_BLOCKING_SECS`].

use percent_encoding::percent_decode;
use serde_json::value::RawValue;

/// One Redis command: its name followed by its arguments, each as raw bytes.
pub type Argv = Vec<Vec<u8>>;

/// The longest a blocking command (BLPOP, XREAD BLOCK, WAIT, …) may ask to wait.
pub const MAX_BLOCKING_SECS: f64 = 10.0;

/// Query parameter that carries the token when no `Authorization` header is sent.
pub const TOKEN_PARAM: &str = "_token";

/// Why a request could not be turned into commands, or a command may not run.
///
/// Every message reads like a Redis error (`ERR …`), since that is what the
/// clients show their users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The body is not the JSON shape the endpoint expects.
    #[error("ERR failed to parse {what}: {detail}")]
    Syntax {
        /// What was being parsed ("command", "pipeline").
        what: &'static str,
        /// The parser's explanation.
        detail: String,
    },
    /// A command with no name.
    #[error("ERR empty command")]
    Empty,
    /// A pipeline or transaction with no command in it.
    #[error("ERR empty {0}: send at least one command")]
    EmptyBatch(&'static str),
    /// A JSON argument that is neither string, number nor boolean.
    #[error("ERR argument {index} is {what}; only strings, numbers and booleans are accepted")]
    BadArgument {
        /// Zero-based position in the command array (0 is the command name).
        index: usize,
        /// The JSON type that was found.
        what: &'static str,
    },
    /// A command that needs connection state, or streams, which REST cannot give.
    #[error(
        "ERR command '{0}' is not supported by upstash-local over REST \
         (stateless HTTP through a shared connection pool)"
    )]
    Unsupported(String),
    /// A blocking command whose wait is unbounded or too long.
    #[error(
        "ERR blocking command '{name}' with timeout {timeout} is not supported by \
         upstash-local: 0 (wait forever) and waits over {limit} are refused"
    )]
    Blocking {
        /// The command name, upper-cased.
        name: String,
        /// The timeout as sent.
        timeout: String,
        /// The limit, with the command's unit ("10 s", "10000 ms").
        limit: String,
    },
}

/// Parses a `POST /` body: one JSON array holding a single command.
pub fn parse_command(body: &[u8]) -> Result<Argv, CommandError> {
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| CommandError::Syntax {
        what: "command",
        detail: format!("expected a JSON array like [\"SET\",\"key\",\"value\"] ({e})"),
    })?;
    argv_from_json(&items)
}

/// Parses a `/pipeline` or `/multi-exec` body: a JSON array of command arrays.
///
/// `what` names the endpoint in error messages ("pipeline", "transaction").
pub fn parse_pipeline(body: &[u8], what: &'static str) -> Result<Vec<Argv>, CommandError> {
    let rows: Vec<Vec<&RawValue>> =
        serde_json::from_slice(body).map_err(|e| CommandError::Syntax {
            what,
            detail: format!("expected a JSON array of command arrays like [[\"GET\",\"k\"]] ({e})"),
        })?;
    if rows.is_empty() {
        return Err(CommandError::EmptyBatch(what));
    }
    rows.iter().map(|row| argv_from_json(row)).collect()
}

/// Parses the path form: `/{command}/{arg}/…`, percent-decoded, then the body
/// (when non-empty) as one more argument, then each query pair except
/// [`TOKEN_PARAM`] as `name` followed by `value` (when non-empty), as in
/// `POST /set/k?EX=100` with body `v` → `SET k v EX 100`.
pub fn parse_path_command(
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<Argv, CommandError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut argv: Argv = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed
            .split('/')
            .map(|segment| percent_decode(segment.as_bytes()).collect())
            .collect()
    };
    if argv.is_empty() {
        return Err(CommandError::Empty);
    }
    if !body.is_empty() {
        argv.push(body.to_vec());
    }
    for (name, value) in query_pairs(query.unwrap_or("")) {
        if name == TOKEN_PARAM.as_bytes() {
            continue;
        }
        argv.push(name);
        if !value.is_empty() {
            argv.push(value);
        }
    }
    Ok(argv)
}

/// The value of the query parameter `name` (form-decoded), if present.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query_pairs(query?)
        .into_iter()
        .find(|(key, _)| key == name.as_bytes())
        .map(|(_, value)| String::from_utf8_lossy(&value).into_owned())
}

/// Splits an `a=1&b=2` query into form-decoded (`+` is a space) byte pairs.
fn query_pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect()
}

/// Decodes one `application/x-www-form-urlencoded` component to bytes.
fn form_decode(component: &str) -> Vec<u8> {
    let spaced = component.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

/// Converts the JSON elements of one command array to its argument bytes.
fn argv_from_json(items: &[&RawValue]) -> Result<Argv, CommandError> {
    if items.is_empty() {
        return Err(CommandError::Empty);
    }
    items
        .iter()
        .enumerate()
        .map(|(index, raw)| arg_from_json(index, raw))
        .collect()
}

/// Converts one JSON element to an argument: strings as their UTF-8 bytes,
/// numbers as written, booleans as `true` / `false`.
fn arg_from_json(index: usize, raw: &RawValue) -> Result<Vec<u8>, CommandError> {
    let text = raw.get();
    let bad = |what| CommandError::BadArgument { index, what };
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(String::into_bytes)
            .map_err(|e| CommandError::Syntax {
                what: "command",
                detail: format!("argument {index}: {e}"),
            }),
        Some(b'-' | b'0'..=b'9') => Ok(text.as_bytes().to_vec()),
        Some(b't' | b'f') => Ok(text.as_bytes().to_vec()),
        Some(b'n') => Err(bad("null")),
        Some(b'[') => Err(bad("an array")),
        Some(b'{') => Err(bad("an object")),
        _ => Err(bad("not a JSON value")),
    }
}

/// The command name, upper-cased, for policy checks and messages.
pub fn command_name(argv: &[Vec<u8>]) -> String {
    argv.first()
        .map(|name| String::from_utf8_lossy(name).to_ascii_uppercase())
        .unwrap_or_default()
}

/// Commands refused outright: they subscribe or stream (SSE in Upstash, not
/// here), change or depend on per-connection state that a pooled connection
/// must not carry between requests, or end the connection.
const UNSUPPORTED: &[&str] = &[
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MONITOR",
    "SELECT",
    "QUIT",
    "RESET",
    "HELLO",
    "AUTH",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "SYNC",
    "PSYNC",
    "REPLCONF",
];

/// `CLIENT` subcommands refused for the same reason as [`UNSUPPORTED`].
const UNSUPPORTED_CLIENT: &[&str] = &["REPLY", "TRACKING", "CACHING", "SETINFO", "NO-EVICT"];

/// Refuses commands that cannot work over stateless REST, and blocking
/// commands that could wait forever or longer than [`MAX_BLOCKING_SECS`].
pub fn check_allowed(argv: &[Vec<u8>]) -> Result<(), CommandError> {
    let name = command_name(argv);
    if name.is_empty() {
        return Err(CommandError::Empty);
    }
    if UNSUPPORTED.contains(&name.as_str()) {
        return Err(CommandError::Unsupported(name));
    }
    if name == "CLIENT" {
        let sub = argv
            .get(1)
            .map(|s| String::from_utf8_lossy(s).to_ascii_uppercase())
            .unwrap_or_default();
        if UNSUPPORTED_CLIENT.contains(&sub.as_str()) {
            return Err(CommandError::Unsupported(format!("CLIENT {sub}")));
        }
    }
    match blocking_timeout(&name, argv) {
        Some((timeout, unit)) => check_timeout(&name, timeout, unit),
        None => Ok(()),
    }
}

/// The unit of a blocking command's timeout argument.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// Seconds (list and sorted-set pops).
    Secs,
    /// Milliseconds (XREAD BLOCK, WAIT, WAITAOF).
    Millis,
}

/// For a blocking command, its timeout argument and that argument's unit.
fn blocking_timeout<'a>(name: &str, argv: &'a [Vec<u8>]) -> Option<(&'a [u8], Unit)> {
    let secs = Unit::Secs;
    let millis = Unit::Millis;
    match name {
        "BLPOP" | "BRPOP" | "BZPOPMIN" | "BZPOPMAX" | "BRPOPLPUSH" | "BLMOVE" if argv.len() > 2 => {
            argv.last().map(|t| (t.as_slice(), secs))
        }
        "BLMPOP" | "BZMPOP" => argv.get(1).map(|t| (t.as_slice(), secs)),
        "WAIT" => argv.get(2).map(|t| (t.as_slice(), millis)),
        "WAITAOF" => argv.get(3).map(|t| (t.as_slice(), millis)),
        "XREAD" | "XREADGROUP" => {
            let start = if name == "XREADGROUP" { 4 } else { 1 };
            let options = argv.get(start..).unwrap_or_default();
            let mut iter = options.iter();
            while let Some(option) = iter.next() {
                if option.eq_ignore_ascii_case(b"STREAMS") {
                    break;
                }
                if option.eq_ignore_ascii_case(b"BLOCK") {
                    return iter.next().map(|t| (t.as_slice(), millis));
                }
            }
            None
        }
        _ => None,
    }
}

/// Refuses a timeout of 0 (forever) or above [`MAX_BLOCKING_SECS`]; leaves
/// unparsable or negative ones for Redis to reject with its own message.
fn check_timeout(name: &str, timeout: &[u8], unit: Unit) -> Result<(), CommandError> {
    let text = String::from_utf8_lossy(timeout);
    let Ok(value) = text.trim().parse::<f64>() else {
        return Ok(());
    };
    let (max, limit) = match unit {
        Unit::Secs => (MAX_BLOCKING_SECS, format!("{MAX_BLOCKING_SECS} s")),
        Unit::Millis => (
            MAX_BLOCKING_SECS * 1000.0,
            format!("{} ms", MAX_BLOCKING_SECS * 1000.0),
        ),
    };
    if value == 0.0 || value > max {
        return Err(CommandError::Blocking {
            name: name.to_string(),
            timeout: text.into_owned(),
            limit,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(items: &[&str]) -> Argv {
        items.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn json_commands() {
        let cases: &[(&str, Result<Argv, CommandError>)] = &[
            (r#"["SET","k","v"]"#, Ok(argv(&["SET", "k", "v"]))),
            (
                r#"["SET","k","v","EX",100]"#,
                Ok(argv(&["SET", "k", "v", "EX", "100"])),
            ),
            (
                r#"["zadd","z",1.5,"a",-2,"b",1.0,"c",1e3,"d"]"#,
                Ok(argv(&[
                    "zadd", "z", "1.5", "a", "-2", "b", "1.0", "c", "1e3", "d",
                ])),
            ),
            (r#"[ "set" , "k" , true ]"#, Ok(argv(&["set", "k", "true"]))),
            (r#"["set","k",false]"#, Ok(argv(&["set", "k", "false"]))),
            (
                r#"["set","k","h\u00e9\n\"q\"\u0000"]"#,
                Ok(argv(&["set", "k", "hé\n\"q\"\0"])),
            ),
            (r#"["set","k","😀"]"#, Ok(argv(&["set", "k", "😀"]))),
            ("[]", Err(CommandError::Empty)),
            (
                r#"["set","k",null]"#,
                Err(CommandError::BadArgument {
                    index: 2,
                    what: "null",
                }),
            ),
            (
                r#"["set",["k"]]"#,
                Err(CommandError::BadArgument {
                    index: 1,
                    what: "an array",
                }),
            ),
            (
                r#"["set","k",{"a":1}]"#,
                Err(CommandError::BadArgument {
                    index: 2,
                    what: "an object",
                }),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(&parse_command(body.as_bytes()), want, "body {body}");
        }
    }

    #[test]
    fn json_syntax_errors() {
        for body in ["", "{}", "\"GET\"", "[\"GET\"", "not json", "42"] {
            let got = parse_command(body.as_bytes());
            assert!(
                matches!(got, Err(CommandError::Syntax { .. })),
                "body {body:?} gave {got:?}"
            );
        }
    }

    #[test]
    fn pipelines() {
        let ok = parse_pipeline(br#"[["SET","a",1],["GET","a"]]"#, "pipeline");
        assert_eq!(ok, Ok(vec![argv(&["SET", "a", "1"]), argv(&["GET", "a"])]));
        assert_eq!(
            parse_pipeline(b"[]", "pipeline"),
            Err(CommandError::EmptyBatch("pipeline"))
        );
        assert_eq!(
            parse_pipeline(b"[[]]", "transaction"),
            Err(CommandError::Empty)
        );
        for body in [r#"["GET","a"]"#, r#"{"a":1}"#, "[[1],2]"] {
            assert!(
                matches!(
                    parse_pipeline(body.as_bytes(), "pipeline"),
                    Err(CommandError::Syntax { .. })
                ),
                "body {body}"
            );
        }
    }

    #[test]
    fn path_commands() {
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            &'a [u8],
            Result<Argv, CommandError>,
        );
        let cases: &[Case] = &[
            ("/set/foo/bar", None, b"", Ok(argv(&["set", "foo", "bar"]))),
            ("/get/foo/", None, b"", Ok(argv(&["get", "foo"]))),
            (
                "/set/a%2Fb/h%C3%A9%20x",
                None,
                b"",
                Ok(argv(&["set", "a/b", "hé x"])),
            ),
            (
                "/set/foo",
                Some("EX=100&_token=secret"),
                b"value",
                Ok(argv(&["set", "foo", "value", "EX", "100"])),
            ),
            (
                "/set/foo/bar",
                Some("NX&PX=5"),
                b"",
                Ok(argv(&["set", "foo", "bar", "NX", "PX", "5"])),
            ),
            (
                "/echo",
                Some("a+b=c%2Bd"),
                b"",
                Ok(argv(&["echo", "a b", "c+d"])),
            ),
            ("/set/k/", None, b"", Ok(argv(&["set", "k"]))),
            ("/", None, b"", Err(CommandError::Empty)),
            ("", Some("_token=x"), b"", Err(CommandError::Empty)),
        ];
        for (path, query, body, want) in cases {
            assert_eq!(
                &parse_path_command(path, *query, body),
                want,
                "path {path} query {query:?}"
            );
        }
    }

    #[test]
    fn path_binary_segments_and_body() {
        let got = parse_path_command("/set/%00%FF", None, &[0x80, 0xfe, 0x00]);
        assert_eq!(
            got,
            Ok(vec![
                b"set".to_vec(),
                vec![0x00, 0xff],
                vec![0x80, 0xfe, 0x00]
            ])
        );
    }

    #[test]
    fn token_param() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, None),
            (Some(""), None),
            (Some("_token=abc"), Some("abc")),
            (Some("EX=1&_token=a%3Db"), Some("a=b")),
            (Some("token=abc"), None),
        ];
        for (query, want) in cases {
            assert_eq!(
                query_param(*query, TOKEN_PARAM).as_deref(),
                *want,
                "query {query:?}"
            );
        }
    }

    #[test]
    fn allowed_and_refused() {
        let allowed: &[&[&str]] = &[
            &["get", "k"],
            &["SET", "k", "v"],
            &["client", "id"],
            &["blpop", "l", "1"],
            &["BLPOP", "a", "b", "9.5"],
            &["brpoplpush", "a", "b", "10"],
            &["blmpop", "2", "1", "l", "LEFT"],
            &["xread", "COUNT", "1", "STREAMS", "s", "0"],
            &["xread", "block", "500", "STREAMS", "s", "$"],
            &[
                "xreadgroup",
                "GROUP",
                "g",
                "c",
                "BLOCK",
                "100",
                "STREAMS",
                "s",
                ">",
            ],
            &["wait", "0", "100"],
            &["blpop", "l", "nonsense"],
            &["publish", "chan", "msg"],
        ];
        for cmd in allowed {
            assert_eq!(check_allowed(&argv(cmd)), Ok(()), "{cmd:?}");
        }
        let refused: &[(&[&str], &str)] = &[
            (&["subscribe", "c"], "SUBSCRIBE"),
            (&["PSUBSCRIBE", "c*"], "PSUBSCRIBE"),
            (&["monitor"], "MONITOR"),
            (&["select", "1"], "SELECT"),
            (&["quit"], "QUIT"),
            (&["multi"], "MULTI"),
            (&["watch", "k"], "WATCH"),
            (&["hello", "3"], "HELLO"),
            (&["client", "reply", "off"], "CLIENT REPLY"),
        ];
        for (cmd, name) in refused {
            assert_eq!(
                check_allowed(&argv(cmd)),
                Err(CommandError::Unsupported(name.to_string())),
                "{cmd:?}"
            );
        }
        let blocking: &[&[&str]] = &[
            &["blpop", "l", "0"],
            &["BRPOP", "l", "11"],
            &["bzpopmin", "z", "0.0"],
            &["blmove", "a", "b", "LEFT", "RIGHT", "0"],
            &["bzmpop", "0", "1", "z", "MIN"],
            &["xread", "BLOCK", "0", "STREAMS", "s", "$"],
            &[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "block",
                "60000",
                "STREAMS",
                "s",
                ">",
            ],
            &["wait", "1", "0"],
            &["waitaof", "1", "0", "0"],
        ];
        for cmd in blocking {
            assert!(
                matches!(
                    check_allowed(&argv(cmd)),
                    Err(CommandError::Blocking { .. })
                ),
                "{cmd:?}"
            );
        }
        assert_eq!(check_allowed(&[]), Err(CommandError::Empty));
    }

    #[test]
    fn error_texts_read_like_redis_errors() {
        let errors = [
            CommandError::Empty,
            CommandError::EmptyBatch("pipeline"),
            CommandError::Unsupported("SUBSCRIBE".into()),
            CommandError::BadArgument {
                index: 1,
                what: "null",
            },
            CommandError::Syntax {
                what: "command",
                detail: "x".into(),
            },
            CommandError::Blocking {
                name: "BLPOP".into(),
                timeout: "0".into(),
                limit: "10 s".into(),
            },
        ];
        for error in errors {
            assert!(error.to_string().starts_with("ERR "), "{error}");
        }
    }
}
