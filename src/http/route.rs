//! Request routing: method and path to a [`Route`], before any I/O, including the validation of
//! Zarr keys (the only place that decides which keys are well formed).
//!
//! Pure and table-tested, like mini-redis's `Command::from_frame`.

use crate::error::Error;
use crate::source::datasets::validate_dataset_id;

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
    /// `GET`/`HEAD /api/stats/keys?dataset=…`: one dataset's cached keys, sorted and paged.
    StatsKeys,
    /// `GET`/`HEAD /api/stats/history?dataset=…`: one dataset's stats snapshots.
    StatsHistory,
    /// `/api/admin/…`: the admin API (bearer token required).
    Admin(AdminRoute),
    /// `GET`/`HEAD /zarr/{dataset}`: one dataset's description.
    DatasetRoot {
        /// The dataset id.
        dataset: String,
    },
    /// `GET`/`HEAD /zarr/{dataset}/{key}`: one Zarr key (metadata or chunk), or
    /// `/zarr/{dataset}@{view}/{key}`: the key in another view of the dataset.
    ZarrKey {
        /// The dataset id.
        dataset: String,
        /// The Zarr key, percent-decoded and validated (`temp/0.1.2`, `.zmetadata`).
        key: String,
        /// Which view of the dataset.
        view: View,
    },
    /// `/routes/{dataset}/{path}` (any method): another route of the dataset's origin, cached
    /// for `GET`/`HEAD` when a rule lists it, else passed through.
    OriginRoute {
        /// The dataset id.
        dataset: String,
        /// The route's path under the dataset's routes base, decoded and validated like a key.
        path: String,
    },
    /// `GET`/`HEAD /files/{dataset}/{path}`: a file of a `files` dataset (block mode), whole or
    /// by one byte range.
    File {
        /// The dataset id.
        dataset: String,
        /// The file's path under the dataset's prefix, decoded and validated like a key.
        path: String,
    },
    /// `OPTIONS` on any path: a CORS preflight.
    Preflight,
}

/// The views of a dataset's Zarr keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// `/zarr/{dataset}/…`: the keys as the source has them.
    #[default]
    Encoded,
    /// `/zarr/{dataset}@decoded/…`: chunks with their codecs applied (plain little-endian
    /// items), metadata without codecs.
    Decoded,
    /// `/zarr/{dataset}@v3/…`: the dataset as a Zarr v3 store (`zarr.json`, `c/…` keys).
    V3,
    /// `/zarr/{dataset}@decoded-v3/…`: the decoded view as a Zarr v3 store.
    DecodedV3,
}

impl View {
    /// The views by their names in a path (the encoded view has none).
    pub const NAMED: [(&'static str, View); 3] = [
        ("decoded", View::Decoded),
        ("v3", View::V3),
        ("decoded-v3", View::DecodedV3),
    ];

    /// Whether chunks are decoded.
    #[must_use]
    pub fn decoded(self) -> bool {
        matches!(self, Self::Decoded | Self::DecodedV3)
    }

    /// Whether keys are Zarr v3's.
    #[must_use]
    pub fn v3(self) -> bool {
        matches!(self, Self::V3 | Self::DecodedV3)
    }
}

/// The admin API's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRoute {
    /// `POST /api/admin/purge`: remove a key, a key prefix or a dataset from the cache.
    Purge,
    /// `POST /api/admin/warm`: prefetch a dataset's keys.
    Warm,
    /// `POST /api/admin/sweep`: run the scheduled sweep now.
    Sweep,
    /// `GET /api/admin/datasets`: every dataset with its source and definition.
    ListDatasets,
    /// `PUT /api/admin/datasets/{id}`: register or replace a run-time dataset.
    PutDataset {
        /// The dataset id.
        dataset: String,
    },
    /// `DELETE /api/admin/datasets/{id}`: remove a run-time dataset and purge its cache.
    DeleteDataset {
        /// The dataset id.
        dataset: String,
    },
    /// `POST /api/admin/datasets/{id}/version`: raise a versioned dataset's source generation
    /// (no chunk cached before is served again).
    BumpVersion {
        /// The dataset id.
        dataset: String,
    },
}

/// The path prefix of the admin API (every path under it needs the admin token).
pub const ADMIN_PREFIX: &str = "/api/admin";

/// Whether `path` belongs to the admin API.
#[must_use]
pub fn is_admin_path(path: &str) -> bool {
    path == ADMIN_PREFIX || path.starts_with("/api/admin/")
}

fn admin_route(method: &str, rest: &str) -> Result<Route, Error> {
    let not_allowed = |allowed: &'static str| {
        Err(Error::MethodNotAllowed {
            method: method.to_owned(),
            allowed,
        })
    };
    let route = match rest.trim_end_matches('/') {
        "/purge" | "/warm" | "/sweep" if method != "POST" => return not_allowed("POST, OPTIONS"),
        "/purge" => AdminRoute::Purge,
        "/warm" => AdminRoute::Warm,
        "/sweep" => AdminRoute::Sweep,
        "/datasets" if method == "GET" || method == "HEAD" => AdminRoute::ListDatasets,
        "/datasets" => return not_allowed("GET, HEAD, OPTIONS"),
        other => {
            let Some(id) = other.strip_prefix("/datasets/") else {
                return Err(Error::NotFound(format!(
                    "no admin route {ADMIN_PREFIX}{rest}"
                )));
            };
            if let Some(id) = id.strip_suffix("/version") {
                let dataset = validate_dataset_id(id)?;
                return match method {
                    "POST" => Ok(Route::Admin(AdminRoute::BumpVersion { dataset })),
                    _ => not_allowed("POST, OPTIONS"),
                };
            }
            let dataset = validate_dataset_id(id)?;
            match method {
                "PUT" => AdminRoute::PutDataset { dataset },
                "DELETE" => AdminRoute::DeleteDataset { dataset },
                _ => return not_allowed("PUT, DELETE, OPTIONS"),
            }
        }
    };
    Ok(Route::Admin(route))
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
    if let Some(rest) = path.strip_prefix(ADMIN_PREFIX) {
        return admin_route(method, rest);
    }
    if let Some(rest) = path.strip_prefix("/routes/") {
        let (dataset, raw_path) = rest.split_once('/').unwrap_or((rest, ""));
        let dataset = validate_dataset_id(dataset)?;
        if raw_path.is_empty() {
            return Err(Error::NotFound(format!(
                "/routes/{dataset}/ names no route"
            )));
        }
        return Ok(Route::OriginRoute {
            dataset,
            path: parse_zarr_key(raw_path)?,
        });
    }
    let route = if let Some(rest) = path.strip_prefix("/zarr/") {
        zarr_route(rest)?
    } else if let Some(rest) = path.strip_prefix("/files/") {
        let (dataset, raw_path) = rest.split_once('/').unwrap_or((rest, ""));
        let dataset = validate_dataset_id(dataset)?;
        if raw_path.is_empty() {
            return Err(Error::NotFound(format!("/files/{dataset}/ names no file")));
        }
        Route::File {
            dataset,
            path: parse_zarr_key(raw_path)?,
        }
    } else {
        match path.trim_end_matches('/') {
            "/api/health" => Route::Health,
            "/api/datasets" => Route::Datasets,
            "/api/stats" => Route::Stats,
            "/api/stats/keys" => Route::StatsKeys,
            "/api/stats/history" => Route::StatsHistory,
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
    let (dataset, view) = match dataset.split_once('@') {
        None => (dataset, View::Encoded),
        Some((dataset, name)) => match View::NAMED.iter().find(|(n, _)| *n == name) {
            Some((_, view)) => (dataset, *view),
            None => {
                return Err(Error::NotFound(format!(
                    "no view {name:?} of a dataset (views: decoded, v3, decoded-v3)"
                )))
            }
        },
    };
    let dataset = validate_dataset_id(dataset)?;
    if raw_key.is_empty() {
        return Ok(Route::DatasetRoot { dataset });
    }
    Ok(Route::ZarrKey {
        dataset,
        key: parse_zarr_key(raw_key)?,
        view,
    })
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

/// Splits and percent-decodes a URL query (`a=1&b=x%20y`, `+` is a space).
///
/// # Errors
/// [`Error::BadRequest`] for broken percent-encoding or invalid UTF-8.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Error> {
    let decode = |raw: &str| -> Result<String, Error> {
        let bad = || Error::BadRequest(format!("malformed query parameter {raw:?}"));
        let mut bytes = Vec::with_capacity(raw.len());
        let mut input = raw.bytes();
        while let Some(b) = input.next() {
            match b {
                b'+' => bytes.push(b' '),
                b'%' => {
                    let (h, l) = (input.next().ok_or_else(bad)?, input.next().ok_or_else(bad)?);
                    let value = hex_value(h).zip(hex_value(l)).ok_or_else(bad)?;
                    bytes.push(value.0 * 16 + value.1);
                }
                b => bytes.push(b),
            }
        }
        String::from_utf8(bytes).map_err(|_| bad())
    };
    query
        .trim_start_matches('?')
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The path and query of a request URL as the runtime serialised it (WHATWG:
/// `scheme://authority`, then the path, then `?query`; a request's URL has no fragment, one is
/// dropped all the same). A URL without a path is `/`.
#[must_use]
pub fn path_and_query(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let target = rest.find('/').map_or("/", |i| &rest[i..]);
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    target.split_once('?').unwrap_or((target, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_url_splits_into_path_and_query() {
        let split = path_and_query;
        assert_eq!(
            split("https://edge.example/zarr/a/t2m/0.0.0?x=1&y=2"),
            ("/zarr/a/t2m/0.0.0", "x=1&y=2")
        );
        assert_eq!(
            split("http://127.0.0.1:8787/api/datasets"),
            ("/api/datasets", "")
        );
        // Without a path, with an empty query, with a fragment, with `?` in the query.
        assert_eq!(split("https://h"), ("/", ""));
        assert_eq!(split("https://h/?"), ("/", ""));
        assert_eq!(split("https://h/a#f?x"), ("/a", ""));
        assert_eq!(split("https://h/a?b?c"), ("/a", "b?c"));
        // Percent-encoding stays as the runtime wrote it.
        assert_eq!(
            split("https://h/zarr/a%2Fb/.zarray"),
            ("/zarr/a%2Fb/.zarray", "")
        );
    }

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
            view: View::Encoded,
        })
    }

    fn decoded(dataset: &str, key: &str) -> Result<Route, u16> {
        view(dataset, key, View::Decoded)
    }

    #[allow(clippy::unnecessary_wraps)]
    fn view(dataset: &str, key: &str, view: View) -> Result<Route, u16> {
        Ok(Route::ZarrKey {
            dataset: dataset.into(),
            key: key.into(),
            view,
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
            ("GET", "/api/stats/keys", Ok(Route::StatsKeys)),
            ("HEAD", "/api/stats/history", Ok(Route::StatsHistory)),
            (
                "POST",
                "/api/admin/purge",
                Ok(Route::Admin(AdminRoute::Purge)),
            ),
            (
                "POST",
                "/api/admin/warm/",
                Ok(Route::Admin(AdminRoute::Warm)),
            ),
            (
                "POST",
                "/api/admin/sweep",
                Ok(Route::Admin(AdminRoute::Sweep)),
            ),
            ("GET", "/api/admin/purge", Err(405)),
            (
                "GET",
                "/api/admin/datasets",
                Ok(Route::Admin(AdminRoute::ListDatasets)),
            ),
            ("POST", "/api/admin/datasets", Err(405)),
            (
                "PUT",
                "/api/admin/datasets/air",
                Ok(Route::Admin(AdminRoute::PutDataset {
                    dataset: "air".into(),
                })),
            ),
            (
                "DELETE",
                "/api/admin/datasets/air",
                Ok(Route::Admin(AdminRoute::DeleteDataset {
                    dataset: "air".into(),
                })),
            ),
            ("GET", "/api/admin/datasets/air", Err(405)),
            ("PUT", "/api/admin/datasets/a%20b", Err(400)),
            ("POST", "/api/admin/nothing", Err(404)),
            ("POST", "/api/stats", Err(405)),
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

    /// Query strings split and decode; broken encodings are 400.
    #[test]
    fn query_pairs_decode() {
        assert_eq!(
            query_pairs("?dataset=air&sort=hits&x=a%2Fb+c&flag").unwrap(),
            [
                ("dataset".to_owned(), "air".to_owned()),
                ("sort".to_owned(), "hits".to_owned()),
                ("x".to_owned(), "a/b c".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert!(query_pairs("").unwrap().is_empty());
        assert!(query_pairs("a=%zz").is_err());
        assert!(query_pairs("a=%FF").is_err());
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
            (
                "/zarr/air@decoded/air_temperature/0.1.2",
                decoded("air", "air_temperature/0.1.2"),
            ),
            ("/zarr/air@decoded/.zmetadata", decoded("air", ".zmetadata")),
            ("/zarr/air@encoded/.zmetadata", Err(404)),
            ("/zarr/air@/.zmetadata", Err(404)),
            ("/zarr/@decoded/.zmetadata", Err(400)),
            ("/zarr/air@decoded@decoded/x", Err(404)),
            ("/zarr/air@v3/t/c/0/1", view("air", "t/c/0/1", View::V3)),
            (
                "/zarr/air@decoded-v3/zarr.json",
                view("air", "zarr.json", View::DecodedV3),
            ),
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
