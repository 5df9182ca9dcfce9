//! Request routing: method and path to a [`Route`], before any I/O, including the validation of
//! Zarr keys (the only place that decides which keys are well formed).
//!
//! Pure and table-tested, like mini-redis's `Command::from_frame`.

use crate::error::Error;

/// The longest Zarr key accepted, in bytes (real keys are short: `group/var/12.3.4`).
pub const MAX_KEY_BYTES: usize = 512;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET`/`HEAD /api/health`.
    Health,
    /// `GET`/`HEAD /api/datasets`: every dataset with its variables and load state.
    Datasets,
    /// `GET`/`HEAD /api/stats`: every dataset's cache counters.
    Stats,
    /// `GET`/`HEAD /zarr/{dataset}`: one dataset's description.
    DatasetRoot {
        /// The dataset id.
        dataset: String,
    },
    /// `GET`/`HEAD /zarr/{dataset}/{key}`: one Zarr key (metadata or chunk).
    ZarrKey {
        /// The dataset id.
        dataset: String,
        /// The Zarr key, percent-decoded and validated (`temp/0.1.2`, `.zmetadata`).
        key: String,
    },
    /// `OPTIONS` on any path: a CORS preflight.
    Preflight,
}

/// Maps a method and a raw (still percent-encoded) URL path to a [`Route`].
///
/// # Errors
/// [`Error::NotFound`] for an unknown path, [`Error::MethodNotAllowed`] for a known path with the
/// wrong method, [`Error::BadRequest`] for a malformed dataset id or Zarr key.
pub fn route(method: &str, path: &str) -> Result<Route, Error> {
    if method == "OPTIONS" {
        return Ok(Route::Preflight);
    }
    let route = if let Some(rest) = path.strip_prefix("/zarr/") {
        zarr_route(rest)?
    } else {
        match path.trim_end_matches('/') {
            "/api/health" => Route::Health,
            "/api/datasets" => Route::Datasets,
            "/api/stats" => Route::Stats,
            _ => return Err(Error::NotFound(format!("no route for {path}"))),
        }
    };
    match method {
        "GET" | "HEAD" => Ok(route),
        _ => Err(Error::MethodNotAllowed {
            method: method.to_owned(),
            allowed: "GET, HEAD, OPTIONS",
        }),
    }
}

fn zarr_route(rest: &str) -> Result<Route, Error> {
    let (dataset, raw_key) = match rest.split_once('/') {
        Some((dataset, key)) => (dataset, key),
        None => (rest, ""),
    };
    let dataset = validate_dataset_id(dataset)?;
    if raw_key.is_empty() {
        return Ok(Route::DatasetRoot { dataset });
    }
    Ok(Route::ZarrKey {
        dataset,
        key: parse_zarr_key(raw_key)?,
    })
}

/// Checks a dataset id: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, not starting with `.`.
///
/// # Errors
/// [`Error::BadRequest`] naming what is wrong.
pub fn validate_dataset_id(id: &str) -> Result<String, Error> {
    let ok = (1..=64).contains(&id.len())
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Error::BadRequest(format!(
            "invalid dataset id {id:?}: use 1 to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Percent-decodes and validates a Zarr key from a URL path.
///
/// Refused: percent-encoded `/` or `\` (a key's structure must be visible in the path), empty
/// segments, `.` and `..` segments, control characters, invalid UTF-8, keys over
/// [`MAX_KEY_BYTES`].
///
/// # Errors
/// [`Error::BadRequest`] naming what is wrong.
pub fn parse_zarr_key(raw: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Err(Error::BadRequest(format!(
            "invalid Zarr key {raw:?}: {why}"
        )))
    };
    if raw.len() > MAX_KEY_BYTES * 3 {
        return bad("too long");
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let hex = [input.next(), input.next()];
        let value = match hex {
            [Some(h), Some(l)] => hex_value(h).zip(hex_value(l)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match value {
            Some(b'/' | b'\\') => return bad("percent-encoded slashes are not allowed"),
            Some(v) => bytes.push(v),
            None => return bad("broken percent-encoding"),
        }
    }
    let Ok(key) = String::from_utf8(bytes) else {
        return bad("not UTF-8");
    };
    if key.len() > MAX_KEY_BYTES {
        return bad(&format!("longer than {MAX_KEY_BYTES} bytes"));
    }
    if key.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    if key.contains('\\') {
        return bad("backslashes are not allowed");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return bad("empty, '.' and '..' segments are not allowed");
    }
    Ok(key)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(result: Result<Route, Error>) -> Result<Route, u16> {
        result.map_err(|e| match e {
            Error::BadRequest(_) => 400,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed { .. } => 405,
            _ => 0,
        })
    }

    #[allow(clippy::unnecessary_wraps)] // compared with other table rows, which are Results
    fn key(dataset: &str, key: &str) -> Result<Route, u16> {
        Ok(Route::ZarrKey {
            dataset: dataset.into(),
            key: key.into(),
        })
    }

    /// Known paths with read methods route; others are 404 or 405.
    #[test]
    fn routes_table() {
        for (method, path, want) in [
            ("GET", "/api/health", Ok(Route::Health)),
            ("HEAD", "/api/health/", Ok(Route::Health)),
            ("GET", "/api/datasets", Ok(Route::Datasets)),
            ("GET", "/api/stats", Ok(Route::Stats)),
            ("OPTIONS", "/anything", Ok(Route::Preflight)),
            ("POST", "/api/health", Err(405)),
            ("PUT", "/zarr/air/.zgroup", Err(405)),
            ("GET", "/api/healthz", Err(404)),
            ("GET", "/", Err(404)),
            (
                "GET",
                "/zarr/air",
                Ok(Route::DatasetRoot {
                    dataset: "air".into(),
                }),
            ),
            (
                "GET",
                "/zarr/air/",
                Ok(Route::DatasetRoot {
                    dataset: "air".into(),
                }),
            ),
        ] {
            assert_eq!(status(route(method, path)), want, "{method} {path}");
        }
    }

    /// Well-formed Zarr keys are decoded; malformed ones are 400.
    #[test]
    fn zarr_keys_table() {
        let long = format!("/zarr/air/{}", "a".repeat(MAX_KEY_BYTES + 1));
        for (path, want) in [
            ("/zarr/air/.zmetadata", key("air", ".zmetadata")),
            (
                "/zarr/air/air_temperature/0.1.2",
                key("air", "air_temperature/0.1.2"),
            ),
            (
                "/zarr/my-data.v2/grp/x/.zarray",
                key("my-data.v2", "grp/x/.zarray"),
            ),
            (
                "/zarr/air/t%C3%A9mp/0",
                key("air", "tÃ©mp/0".replace("Ã©", "é").as_str()),
            ),
            ("/zarr/air/a%20b/0", key("air", "a b/0")),
            ("/zarr/air/../secret", Err(400)),
            ("/zarr/air/a/./b", Err(400)),
            ("/zarr/air/a//b", Err(400)),
            ("/zarr/air/a/b/", Err(400)),
            ("/zarr/air/a%2Fb", Err(400)),
            ("/zarr/air/a%2fb", Err(400)),
            ("/zarr/air/a%5Cb", Err(400)),
            ("/zarr/air/a%2", Err(400)),
            ("/zarr/air/a%zz", Err(400)),
            ("/zarr/air/a%00b", Err(400)),
            ("/zarr/air/%FF", Err(400)),
            ("/zarr/air/%2E%2E/x", Err(400)),
            (long.as_str(), Err(400)),
            ("/zarr/.hidden/x", Err(400)),
            ("/zarr/a%20b/x", Err(400)),
        ] {
            assert_eq!(status(route("GET", path)), want, "{path}");
        }
    }
}
