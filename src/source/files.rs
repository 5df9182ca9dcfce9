//! Block mode's source: files under an origin prefix, read by byte ranges and cached as aligned
//! blocks (fsspec's `method="block"`), so that readers of arbitrary ranges (h5netcdf and h5py
//! through fsspec, GDAL's `/vsicurl/`, COG and parquet readers) share one cache.
//!
//! Pure: where a file lives, which blocks a range spans, and what the origin said about a file
//! (its size and validators, [`FileMeta`]), written as the one string the index compares.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use crate::origin::auth::OriginAuth;
use crate::origin::{ByteRange, OriginResponse};

/// The default block size: 1 MiB (fsspec's `blockcache` default is 5 MiB; 1 MiB keeps a small
/// read small and a whole-file read at a few requests per MiB-sized HDF5 chunk).
pub const DEFAULT_BLOCK_SIZE: u64 = 1 << 20;
/// The smallest block size a dataset may choose.
pub const MIN_BLOCK_SIZE: u64 = 64 << 10;
/// The largest block size a dataset may choose (a block is held in memory while it is fetched
/// and answered).
pub const MAX_BLOCK_SIZE: u64 = 16 << 20;
/// How many bytes of blocks one step of an answer reads at most: a request of any length is
/// answered window by window, so memory stays bounded by this and one block.
pub const WINDOW_BYTES: u64 = 4 << 20;
/// The most bytes one merged origin request asks for.
pub const MAX_MERGED_BYTES: u64 = 8 << 20;

/// Characters escaped in a path segment of the origin URL: all but RFC 3986's unreserved ones,
/// as S3 keys are encoded for signing (a decoded `?` or `#` stays part of the path, and a web
/// server decodes the rest back to the same name).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `base` (ending in `/`) followed by `path` (decoded, `/`-separated), each segment escaped
/// again: what a file under a prefix is fetched as (block mode's files, parquet record files).
#[must_use]
pub fn escaped_url(base: &str, path: &str) -> String {
    let mut url = base.to_owned();
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            url.push('/');
        }
        url.extend(utf8_percent_encode(segment, SEGMENT));
    }
    url
}

/// The identity of a block-mode file as read by one signing identity (`None`: unsigned): the
/// name its [`FileMeta`] is recorded under in the index and the isolate, and the root of its
/// blocks' storage keys. It starts with no `http(s)://` scheme, so no reference URL of a
/// kerchunk dataset (their file validators and objects are keyed by the URL) can be the same
/// string; and a signed reader's meta and blocks are never an unsigned reader's.
#[must_use]
pub fn file_id(url: &str, auth: Option<&OriginAuth>) -> String {
    match auth {
        Some(auth) => format!("zec-block:{url}\nsigned:{}", auth.credentials.access_key_id),
        None => format!("zec-block:{url}"),
    }
}

/// Where a `files` dataset's files live and how they are cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesOrigin {
    /// The prefix every path is appended to, ending in `/`.
    pub base: String,
    /// The block size in bytes ([`MIN_BLOCK_SIZE`]..=[`MAX_BLOCK_SIZE`]).
    pub block_size: u64,
}

impl FilesOrigin {
    /// The URL of `path` (decoded and validated like a Zarr key), each segment escaped again.
    #[must_use]
    pub fn url_of(&self, path: &str) -> String {
        escaped_url(&self.base, path)
    }

    /// The index key of block `n` of `path` (a `#` never appears in a decoded path's key, so
    /// no file's blocks collide with another's).
    #[must_use]
    pub fn block_key(path: &str, n: u64) -> String {
        format!("{path}#{n}")
    }

    /// The byte range of block `n` of a file of `size` bytes (`None` past the end).
    #[must_use]
    pub fn block_range(&self, n: u64, size: u64) -> Option<ByteRange> {
        let offset = n.checked_mul(self.block_size)?;
        (offset < size).then(|| ByteRange {
            offset,
            length: self.block_size.min(size - offset),
        })
    }

    /// The blocks `first..=last` that the bytes `start..=end` span.
    #[must_use]
    pub fn blocks_of(&self, start: u64, end: u64) -> (u64, u64) {
        (start / self.block_size, end / self.block_size)
    }

    /// How many blocks one window of an answer reads (at least one).
    #[must_use]
    pub fn window_blocks(&self) -> u64 {
        (WINDOW_BYTES / self.block_size).max(1)
    }
}

/// What the origin says about a file: its size and validators. Recorded in the index as the
/// file's validator ([`FileMeta::validator`]) and carried by every block entry, so that a block
/// read from another version of the file (other size, `ETag` or `Last-Modified`) is never
/// served with this one's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Size in bytes.
    pub size: u64,
    /// The origin's `ETag`, if it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The origin's `Last-Modified`, if it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
}

/// The longest validator string accepted from the index (a record is hostile until checked).
const MAX_VALIDATOR_BYTES: usize = 2048;

impl FileMeta {
    /// The validator string the index records and block entries carry: the same meta always
    /// writes the same string.
    #[must_use]
    pub fn validator(&self) -> String {
        // A struct of a number and strings always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The meta a validator string describes; `None` for one this module did not write (a
    /// kerchunk dataset's plain `ETag` for the same URL, or garbage).
    #[must_use]
    pub fn from_validator(validator: &str) -> Option<Self> {
        if validator.len() > MAX_VALIDATOR_BYTES || !validator.starts_with('{') {
            return None;
        }
        serde_json::from_str(validator).ok()
    }

    /// The meta of an origin answer to a ranged `GET` of the file's first byte: `206` with
    /// `Content-Range: bytes 0-0/size`, a `200` (the whole file: a server that ignores ranges)
    /// or a `416` with `Content-Range: bytes */size` (an empty file). `None` when the answer does
    /// not say the size.
    #[must_use]
    pub fn from_probe(
        status: u16,
        content_range: Option<&str>,
        body_len: u64,
        etag: Option<String>,
        last_modified: Option<String>,
    ) -> Option<Self> {
        let size = match status {
            200 => body_len,
            206 | 416 => total_of(content_range?)?,
            _ => return None,
        };
        Some(Self {
            size,
            etag: etag.filter(|v| v.len() <= MAX_VALIDATOR_BYTES / 4),
            last_modified: last_modified.filter(|v| v.len() <= MAX_VALIDATOR_BYTES / 4),
        })
    }
}

impl FileMeta {
    /// The meta an origin answer to a ranged `GET` says ([`from_probe`](Self::from_probe)).
    #[must_use]
    pub fn of_answer(response: &OriginResponse) -> Option<Self> {
        Self::from_probe(
            response.status,
            response.content_range.as_deref(),
            response.body.len() as u64,
            response.etag.clone(),
            response.last_modified.clone(),
        )
    }
}

/// The total of a `Content-Range` (`bytes a-b/total` or `bytes */total`); `None` for `*`.
#[must_use]
pub fn total_of(content_range: &str) -> Option<u64> {
    let spec = content_range.trim().strip_prefix("bytes ")?;
    let (_, total) = spec.split_once('/')?;
    total.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(block_size: u64) -> FilesOrigin {
        FilesOrigin {
            base: "http://o.test/data/".into(),
            block_size,
        }
    }

    /// Segments are escaped again: a decoded `?`, `#` or space stays in the path.
    #[test]
    fn urls_keep_the_path() {
        let o = origin(MIN_BLOCK_SIZE);
        assert_eq!(o.url_of("a/b.nc"), "http://o.test/data/a/b.nc");
        assert_eq!(
            o.url_of("x y/q?#%.nc"),
            "http://o.test/data/x%20y/q%3F%23%25.nc"
        );
        assert_eq!(
            o.url_of("a+b=c/~d_e-f.nc"),
            "http://o.test/data/a%2Bb%3Dc/~d_e-f.nc"
        );
    }

    /// Blocks are aligned; the last one is partial; none past the end.
    #[test]
    fn block_geometry() {
        let o = origin(10);
        assert_eq!(
            o.block_range(0, 25),
            Some(ByteRange {
                offset: 0,
                length: 10
            })
        );
        assert_eq!(
            o.block_range(2, 25),
            Some(ByteRange {
                offset: 20,
                length: 5
            })
        );
        assert_eq!(o.block_range(3, 25), None);
        assert_eq!(o.block_range(0, 0), None);
        assert_eq!(o.block_range(u64::MAX, 25), None);
        assert_eq!(o.blocks_of(9, 10), (0, 1));
        assert_eq!(o.blocks_of(10, 19), (1, 1));
        assert_eq!(origin(MIN_BLOCK_SIZE).window_blocks(), 64);
        assert_eq!(origin(MAX_BLOCK_SIZE).window_blocks(), 1);
    }

    /// Meta round-trips through its validator; other validators are not meta.
    #[test]
    fn meta_validators() {
        let meta = FileMeta {
            size: 7,
            etag: Some("\"e\"".into()),
            last_modified: None,
        };
        assert_eq!(FileMeta::from_validator(&meta.validator()), Some(meta));
        assert_eq!(FileMeta::from_validator("\"e\""), None);
        assert_eq!(FileMeta::from_validator("{garbage"), None);
        assert_eq!(FileMeta::from_validator(&"{".repeat(5000)), None);
    }

    /// The size comes from the probe's Content-Range, or the whole body of a 200.
    #[test]
    fn probes() {
        let size = |status, range: Option<&str>, len| {
            FileMeta::from_probe(status, range, len, None, None).map(|m| m.size)
        };
        assert_eq!(size(206, Some("bytes 0-0/1234"), 1), Some(1234));
        assert_eq!(size(206, Some("bytes 0-0/*"), 1), None);
        assert_eq!(size(206, None, 1), None);
        assert_eq!(size(200, None, 55), Some(55));
        assert_eq!(size(416, Some("bytes */0"), 0), Some(0));
        assert_eq!(size(404, None, 0), None);
        assert_eq!(size(206, Some("bytes 0-0/-3"), 1), None);
    }
}
