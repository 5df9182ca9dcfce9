//! The compressors of numcodecs the decoded view undoes (`zlib`, `gzip`, `zstd`, `blosc`), each
//! bounded:
//! a stream is never inflated past the size the metadata declares.

use std::io::Read;

use crate::codec::CodecError;

/// The compressors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    /// numcodecs `zlib` (RFC 1950).
    Zlib,
    /// numcodecs `gzip` (RFC 1952).
    Gzip,
    /// numcodecs `zstd` (a zstd frame).
    Zstd,
    /// numcodecs `blosc` (a Blosc 1 buffer, [`crate::codec::blosc`]).
    Blosc,
}

impl Compressor {
    /// Its numcodecs id.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            Self::Zlib => "zlib",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Blosc => "blosc",
        }
    }

    /// Inflates `encoded` into at most `limit` bytes.
    ///
    /// # Errors
    /// [`CodecError::Corrupt`] when the stream is malformed or truncated, or would inflate past
    /// `limit`.
    pub fn decompress(self, encoded: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
        let corrupt = |why: String| CodecError::Corrupt(format!("{}: {why}", self.id()));
        let out = match self {
            Self::Blosc => return crate::codec::blosc::decompress(encoded, limit),
            Self::Zlib => bounded_read(flate2::read::ZlibDecoder::new(encoded), limit),
            Self::Gzip => bounded_read(flate2::read::GzDecoder::new(encoded), limit),
            Self::Zstd => {
                // The frame may claim any content size: the capacity, not the claim, bounds it.
                zstd::bulk::decompress(encoded, limit).map_err(|e| {
                    if e.to_string().contains("Destination buffer is too small") {
                        format!("inflates beyond the declared {limit} bytes")
                    } else {
                        format!("not a valid stream: {e}")
                    }
                })
            }
        };
        out.map_err(corrupt)
    }
}

/// Reads `reader` to its end, refusing more than `limit` bytes.
fn bounded_read(reader: impl Read, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not a valid stream: {e}"))?;
    if out.len() > limit {
        return Err(format!("inflates beyond the declared {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn each_compressor_round_trips_within_its_limit() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        for (c, enc) in [
            (Compressor::Zlib, zlib(&data)),
            (Compressor::Gzip, gzip(&data)),
            (Compressor::Zstd, zstd::bulk::compress(&data, 3).unwrap()),
        ] {
            assert_eq!(c.decompress(&enc, data.len()).unwrap(), data, "{}", c.id());
            let over = c.decompress(&enc, data.len() - 1).unwrap_err();
            assert!(
                over.to_string().contains("beyond the declared"),
                "{}: {over}",
                c.id()
            );
        }
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let data = vec![7u8; 5000];
        for (c, enc) in [
            (Compressor::Zlib, zlib(&data)),
            (Compressor::Gzip, gzip(&data)),
            (Compressor::Zstd, zstd::bulk::compress(&data, 3).unwrap()),
        ] {
            let mut flipped = enc.clone();
            flipped[enc.len() / 2] ^= 0x55;
            flipped[2] ^= 0xff;
            for bad in [
                &enc[..enc.len() / 2],
                &flipped[..],
                b"not compressed at all",
            ] {
                if let Ok(out) = c.decompress(bad, data.len()) {
                    // A flipped literal byte can still inflate; never to the right bytes.
                    assert_ne!(out, data, "{}", c.id());
                }
            }
        }
    }

    /// A 1 KB stream that inflates to 64 MiB stops at the limit.
    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = zlib(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 128 * 1024);
        assert!(Compressor::Zlib.decompress(&bomb, 1 << 20).is_err());
    }
}
