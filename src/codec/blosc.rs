//! numcodecs' `blosc` (the Blosc 1 format, what Zarr v2 writes by default): the header, the
//! blocks and their splits, each inner codec (`blosclz`, `lz4`/`lz4hc`, `snappy`, `zlib`,
//! `zstd`) and the byte shuffle, read as c-blosc's `blosc_d` reads them, with every offset and
//! size checked against the buffer. Bit shuffle is not applied (a 422 naming it).

use std::io::Read;

use crate::codec::filters::unshuffle;
use crate::codec::CodecError;

/// The header's length.
const HEADER: usize = 16;
/// c-blosc splits a block into one stream per byte of an item only for items up to this size
/// (`MAX_SPLITS`) and blocks of at least this many items (`MIN_BUFFERSIZE`).
const MAX_SPLITS: usize = 16;
const MIN_BUFFERSIZE: usize = 128;

const DOSHUFFLE: u8 = 0x1;
const MEMCPYED: u8 = 0x2;
const DOBITSHUFFLE: u8 = 0x4;
const DONT_SPLIT: u8 = 0x10;

fn corrupt(why: impl std::fmt::Display) -> CodecError {
    CodecError::Corrupt(format!("blosc: {why}"))
}

fn u32_at(src: &[u8], at: usize) -> Result<usize, CodecError> {
    let bytes = src
        .get(at..at + 4)
        .ok_or_else(|| corrupt(format!("truncated at byte {at}")))?;
    let value = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    usize::try_from(value).map_err(|_| corrupt("size out of range"))
}

/// Decompresses one Blosc 1 buffer into at most `limit` bytes.
///
/// # Errors
/// [`CodecError::Corrupt`] for a malformed buffer or one that would exceed `limit`;
/// [`CodecError::Unsupported`] for bit shuffle.
pub fn decompress(src: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    if src.len() < HEADER {
        return Err(corrupt(format!(
            "{} bytes, shorter than its header",
            src.len()
        )));
    }
    let (flags, typesize) = (src[2], usize::from(src[3]).max(1));
    let nbytes = u32_at(src, 4)?;
    let blocksize = u32_at(src, 8)?;
    let cbytes = u32_at(src, 12)?;
    if nbytes > limit {
        return Err(corrupt(format!(
            "inflates to {nbytes} bytes, beyond the declared {limit}"
        )));
    }
    if cbytes > src.len() || cbytes < HEADER {
        return Err(corrupt(format!(
            "says {cbytes} compressed bytes of a {}-byte buffer",
            src.len()
        )));
    }
    let src = &src[..cbytes];
    if flags & MEMCPYED != 0 {
        return src
            .get(HEADER..HEADER + nbytes)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| corrupt("a copied buffer shorter than its size"));
    }
    if nbytes == 0 {
        return Ok(Vec::new());
    }
    if flags & DOBITSHUFFLE != 0 && blocksize >= typesize {
        return Err(CodecError::Unsupported(
            "blosc with bit shuffle is not applied by the decoded view; read the encoded view"
                .into(),
        ));
    }
    if blocksize == 0 {
        return Err(corrupt("a block size of 0"));
    }
    let inner = Inner::from_flags(flags)?;
    let nblocks = nbytes.div_ceil(blocksize);
    if HEADER + 4 * nblocks > cbytes {
        return Err(corrupt(format!(
            "{nblocks} blocks do not fit in {cbytes} bytes"
        )));
    }
    let mut out = Vec::with_capacity(nbytes);
    for block in 0..nblocks {
        let leftover = block == nblocks - 1 && nbytes % blocksize != 0;
        let bsize = if leftover {
            nbytes % blocksize
        } else {
            blocksize
        };
        let start = u32_at(src, HEADER + 4 * block)?;
        let split = flags & DONT_SPLIT == 0
            && typesize <= MAX_SPLITS
            && blocksize / typesize >= MIN_BUFFERSIZE
            && !leftover;
        let nsplits = if split { typesize } else { 1 };
        let neblock = bsize / nsplits;
        let mut decoded = Vec::with_capacity(bsize);
        let mut at = start;
        for _ in 0..nsplits {
            let csize = u32_at(src, at)?;
            at += 4;
            let stream = src
                .get(at..at.saturating_add(csize))
                .ok_or_else(|| corrupt(format!("block {block}: a stream past the buffer")))?;
            if csize == neblock {
                decoded.extend_from_slice(stream);
            } else {
                let part = inner.decompress(stream, neblock)?;
                if part.len() != neblock {
                    return Err(corrupt(format!(
                        "block {block}: a stream of {} bytes, not {neblock}",
                        part.len()
                    )));
                }
                decoded.extend_from_slice(&part);
            }
            at += csize;
        }
        if decoded.len() != bsize {
            // A block whose size is not a multiple of its splits (only a hostile header).
            return Err(corrupt(format!(
                "block {block}: {} of {bsize} bytes",
                decoded.len()
            )));
        }
        if flags & DOSHUFFLE != 0 && typesize > 1 {
            decoded = unshuffle(&decoded, typesize);
        }
        out.extend_from_slice(&decoded);
    }
    Ok(out)
}

/// The codec of a buffer's streams (the header flags' top three bits).
#[derive(Debug, Clone, Copy)]
enum Inner {
    BloscLz,
    Lz4,
    Snappy,
    Zlib,
    Zstd,
}

impl Inner {
    fn from_flags(flags: u8) -> Result<Self, CodecError> {
        Ok(match flags >> 5 {
            0 => Self::BloscLz,
            1 => Self::Lz4,
            2 => Self::Snappy,
            3 => Self::Zlib,
            4 => Self::Zstd,
            other => return Err(corrupt(format!("unknown inner codec {other}"))),
        })
    }

    /// One stream, into exactly `size` bytes (fewer is an error the caller reports).
    fn decompress(self, stream: &[u8], size: usize) -> Result<Vec<u8>, CodecError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| corrupt(format!("{what}: {e}"));
        match self {
            Self::BloscLz => blosclz(stream, size),
            Self::Lz4 => {
                let mut out = vec![0u8; size];
                let n = lz4_flex::block::decompress_into(stream, &mut out)
                    .map_err(|e| fail("lz4", &e))?;
                out.truncate(n);
                Ok(out)
            }
            Self::Snappy => {
                let claimed = snap::raw::decompress_len(stream).map_err(|e| fail("snappy", &e))?;
                if claimed != size {
                    return Err(corrupt(format!("snappy: {claimed} bytes, not {size}")));
                }
                snap::raw::Decoder::new()
                    .decompress_vec(stream)
                    .map_err(|e| fail("snappy", &e))
            }
            Self::Zlib => {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(stream)
                    .take(size as u64)
                    .read_to_end(&mut out)
                    .map_err(|e| fail("zlib", &e))?;
                Ok(out)
            }
            Self::Zstd => zstd::bulk::decompress(stream, size).map_err(|e| fail("zstd", &e)),
        }
    }
}

/// `BloscLZ` (c-blosc's `blosclz_decompress`): literal runs and matches of 13- or 16-bit
/// distance, into at most `size` bytes.
fn blosclz(input: &[u8], size: usize) -> Result<Vec<u8>, CodecError> {
    const MAX_DISTANCE: usize = 8191;
    let bad = || corrupt("blosclz: a malformed stream");
    let mut out: Vec<u8> = Vec::with_capacity(size);
    if input.is_empty() {
        return Ok(out);
    }
    let mut ip = 0usize;
    let next = |ip: &mut usize| -> Result<usize, CodecError> {
        let b = *input.get(*ip).ok_or_else(bad)?;
        *ip += 1;
        Ok(usize::from(b))
    };
    let mut ctrl = next(&mut ip)? & 31;
    loop {
        if ctrl >= 32 {
            let mut len = (ctrl >> 5) - 1;
            let mut ofs = (ctrl & 31) << 8;
            if len == 6 {
                loop {
                    if ip + 1 >= input.len() {
                        return Err(bad());
                    }
                    let code = next(&mut ip)?;
                    len += code;
                    if code != 255 {
                        break;
                    }
                }
            } else if ip + 1 >= input.len() {
                return Err(bad());
            }
            let code = next(&mut ip)?;
            len += 3;
            // The match starts `distance` bytes back (c-blosc: ref = op - ofs - code - 1).
            let mut distance = ofs + code + 1;
            if code == 255 && ofs == 31 << 8 {
                if ip + 1 >= input.len() {
                    return Err(bad());
                }
                ofs = next(&mut ip)? << 8;
                ofs += next(&mut ip)?;
                distance = ofs + MAX_DISTANCE + 1;
            }
            if out.len() + len > size || distance > out.len() {
                return Err(bad());
            }
            // As c-blosc: a stream ends with literals; a match at its end is not copied.
            if ip >= input.len() {
                break;
            }
            ctrl = next(&mut ip)?;
            let from = out.len() - distance;
            for i in 0..len {
                let b = out[from + i];
                out.push(b);
            }
        } else {
            let run = ctrl + 1;
            if out.len() + run > size || ip + run > input.len() {
                return Err(bad());
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
            if ip >= input.len() {
                break;
            }
            ctrl = next(&mut ip)?;
        }
    }
    Ok(out)
}
