//! Redis commands and how they become Upstash REST calls (`POST /`, `/pipeline`, `/multi-exec`).
//!
//! The only place that knows the request shape. Arguments are text: the index stores metadata
//! only, chunk bytes live in the chunk store, so no binary argument ever needs to be sent.

use serde_json::Value as Json;

/// One Redis command: its name followed by its arguments, all sent as JSON strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    args: Vec<String>,
}

impl Command {
    /// Starts a command with its name, e.g. `Command::new("SET")`.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            args: vec![name.to_owned()],
        }
    }

    /// Appends one argument (anything with a textual form: keys, values, numbers).
    #[must_use]
    pub fn arg(mut self, value: impl std::fmt::Display) -> Self {
        self.args.push(value.to_string());
        self
    }

    /// The command name and arguments as they go on the wire.
    #[must_use]
    pub fn args(&self) -> &[String] {
        &self.args
    }

    fn to_json(&self) -> Json {
        Json::Array(self.args.iter().cloned().map(Json::String).collect())
    }
}

/// How a group of commands is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// `POST /pipeline`: one round trip, not atomic; each command answers on its own.
    Pipeline,
    /// `POST /multi-exec`: one round trip, atomic (MULTI … EXEC).
    Transaction,
}

/// An HTTP request ready for a transport: always `POST` to `base_url + path` with a JSON body.
/// Its `Debug` shows `Authorization` as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Path below the database URL: `/`, `/pipeline` or `/multi-exec`.
    pub path: &'static str,
    /// Request headers (authorization, content type, encoding).
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: String,
}

impl std::fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name.eq_ignore_ascii_case("authorization") {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (*name, shown)
            })
            .collect();
        f.debug_struct("HttpCall")
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

impl HttpCall {
    /// A single command: `POST /` with the command as a JSON array.
    #[must_use]
    pub fn single(token: &str, command: &Command) -> Self {
        Self::post(token, "/", &command.to_json())
    }

    /// Several commands in one round trip, as a pipeline or a transaction.
    #[must_use]
    pub fn batch(token: &str, kind: Batch, commands: &[Command]) -> Self {
        let path = match kind {
            Batch::Pipeline => "/pipeline",
            Batch::Transaction => "/multi-exec",
        };
        let body = Json::Array(commands.iter().map(Command::to_json).collect());
        Self::post(token, path, &body)
    }

    /// The full URL for a database base URL such as `https://eu1-x.upstash.io`.
    #[must_use]
    pub fn url(&self, base_url: &str) -> String {
        let base = base_url.trim_end_matches('/');
        if self.path == "/" {
            format!("{base}/")
        } else {
            format!("{base}{}", self.path)
        }
    }

    fn post(token: &str, path: &'static str, body: &Json) -> Self {
        Self {
            path,
            headers: vec![
                ("authorization", format!("Bearer {token}")),
                ("content-type", "application/json".to_owned()),
                // Ask for base64 so any byte string survives JSON; reply::Value decodes it.
                ("upstash-encoding", "base64".to_owned()),
            ],
            body: body.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Debug` never shows the bearer token.
    #[test]
    fn debug_redacts_the_token() {
        let call = HttpCall::single("s3cr3t-token", &Command::new("PING"));
        let shown = format!("{call:?} {call:#?}");
        assert!(!shown.contains("s3cr3t-token"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("PING"),
            "{shown}"
        );
    }

    /// A single command is a flat JSON array of strings posted to `/`.
    #[test]
    fn single_command_encodes_as_json_array_of_strings() {
        let call = HttpCall::single(
            "tok",
            &Command::new("SET").arg("k").arg("v").arg("PX").arg(1500),
        );
        assert_eq!(call.path, "/");
        assert_eq!(call.body, r#"["SET","k","v","PX","1500"]"#);
        assert!(call
            .headers
            .contains(&("authorization", "Bearer tok".to_owned())));
        assert!(call
            .headers
            .contains(&("upstash-encoding", "base64".to_owned())));
    }

    /// Pipelines and transactions go to their own paths as arrays of arrays.
    #[test]
    fn batches_encode_as_array_of_arrays_on_their_paths() {
        let cmds = [Command::new("PING"), Command::new("GET").arg("a\"b")];
        let pipe = HttpCall::batch("t", Batch::Pipeline, &cmds);
        assert_eq!(pipe.path, "/pipeline");
        assert_eq!(pipe.body, r#"[["PING"],["GET","a\"b"]]"#);
        let multi = HttpCall::batch("t", Batch::Transaction, &cmds);
        assert_eq!(multi.path, "/multi-exec");
        assert_eq!(multi.body, pipe.body);
    }

    /// The URL joins base and path with exactly one slash.
    #[test]
    fn url_joins_base_and_path() {
        let single = HttpCall::single("t", &Command::new("PING"));
        let pipe = HttpCall::batch("t", Batch::Pipeline, &[]);
        for (base, call, want) in [
            ("http://h:1", &single, "http://h:1/"),
            ("http://h:1/", &single, "http://h:1/"),
            ("http://h:1/", &pipe, "http://h:1/pipeline"),
            ("http://h:1", &pipe, "http://h:1/pipeline"),
        ] {
            assert_eq!(call.url(base), want);
        }
    }
}
