//! One column chunk of a record file, decoded value by value: its pages read through the
//! checked headers of [`super::thrift`], decompressed within a byte budget, definition levels
//! and dictionary indices read from the RLE/bit-packed hybrid, values PLAIN or by dictionary.
//!
//! This is the part of a parquet reader that hostile bytes reach (the footer, parsed by the
//! `parquet` crate, only says where the chunks are): every count is checked against the rows
//! and the bytes left, so a corrupt page is an error naming what is wrong, never an index past
//! a buffer (a panic aborts the wasm isolate) or an allocation a header merely claims.
//! kerchunk's columns are flat: no repetition levels, definition levels of at most one.

use std::borrow::Cow;

use super::thrift::{page_header, PageKind};

/// How a column chunk's pages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Stored as they are.
    Uncompressed,
    /// Snappy (raw blocks, what parquet writes).
    Snappy,
    /// Zstandard frames.
    Zstd,
}

/// A column chunk to decode.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'a> {
    /// The chunk's bytes: its pages, each after its header.
    pub bytes: &'a [u8],
    /// How its pages are compressed.
    pub codec: Codec,
    /// Whether values may be null (a definition level of one), else there are no levels.
    pub nullable: bool,
    /// The rows of the row group: exactly this many values, nulls included.
    pub rows: usize,
}

/// A physical type read PLAIN: how one value is laid out.
pub trait Plain {
    /// A value, borrowing from its page.
    type Value<'a>: Copy;
    /// Reads one value from the front of `data`, advancing it.
    ///
    /// # Errors
    /// Too few bytes left for the value.
    fn read<'a>(data: &mut &'a [u8]) -> Result<Self::Value<'a>, String>;
}

/// `INT64`: eight bytes, little-endian.
pub struct Int64;

impl Plain for Int64 {
    type Value<'a> = i64;

    fn read(data: &mut &[u8]) -> Result<i64, String> {
        let (value, rest) = data
            .split_first_chunk::<8>()
            .ok_or("a page ends inside an INT64 value")?;
        *data = rest;
        Ok(i64::from_le_bytes(*value))
    }
}

/// `BYTE_ARRAY`: a four-byte little-endian length, then the bytes.
pub struct ByteArray;

impl Plain for ByteArray {
    type Value<'a> = &'a [u8];

    fn read<'a>(data: &mut &'a [u8]) -> Result<&'a [u8], String> {
        let (length, rest) = data
            .split_first_chunk::<4>()
            .ok_or("a page ends inside a BYTE_ARRAY length")?;
        let length = u32::from_le_bytes(*length) as usize;
        let (value, rest) = rest
            .split_at_checked(length)
            .ok_or("a page ends inside a BYTE_ARRAY value")?;
        *data = rest;
        Ok(value)
    }
}

/// Parquet's encoding codes used here.
const PLAIN: i32 = 0;
const PLAIN_DICTIONARY: i32 = 2;
const RLE: i32 = 3;
const RLE_DICTIONARY: i32 = 8;

/// Decodes `chunk`, calling `each` with every row's value in order (`None` where null).
/// `budget` is the decompressed bytes still allowed; every page's declared size is taken
/// from it before that page is decompressed.
///
/// # Errors
/// A malformed or truncated page, a page larger than the budget, a count that disagrees with
/// the rows or the bytes, an encoding kerchunk's writers do not use, or what `each` returns.
pub fn read<T: Plain>(
    chunk: &Chunk<'_>,
    budget: &mut u64,
    mut each: impl for<'v> FnMut(Option<T::Value<'v>>) -> Result<(), String>,
) -> Result<(), String> {
    let mut rest = chunk.bytes;
    let mut page = next_page(&mut rest, chunk.codec, budget)?;
    // A dictionary page, if any, comes first (the format says so; the writers do so).
    let dictionary_page;
    let mut dictionary = None;
    if let Some((
        PageKind::Dictionary {
            num_values,
            encoding,
        },
        bytes,
    )) = page
    {
        dictionary_page = bytes;
        dictionary = Some(entries::<T>(&dictionary_page, num_values, encoding)?);
        page = next_page(&mut rest, chunk.codec, budget)?;
    }
    let mut rows = 0usize;
    let mut levels = Vec::new();
    let mut indices = Vec::new();
    while let Some((kind, bytes)) = page {
        if let Some((encoding, values)) = levels_of(kind, &bytes, chunk, rows, &mut levels)? {
            match (encoding, &dictionary) {
                (PLAIN, _) => {
                    let mut data = values;
                    for &level in &levels {
                        each((level == 1).then(|| T::read(&mut data)).transpose()?)?;
                    }
                }
                (PLAIN_DICTIONARY | RLE_DICTIONARY, Some(entries)) => {
                    by_dictionary::<T>(values, entries, &levels, &mut indices, &mut each)?;
                }
                (PLAIN_DICTIONARY | RLE_DICTIONARY, None) => {
                    return Err("dictionary indices without a dictionary page".into())
                }
                (other, _) => {
                    return Err(format!(
                        "values of encoding {other} (kerchunk's writers use PLAIN and dictionary)"
                    ))
                }
            }
            rows += levels.len();
        }
        page = next_page(&mut rest, chunk.codec, budget)?;
    }
    if rows != chunk.rows {
        return Err(format!("{rows} values for {} rows", chunk.rows));
    }
    Ok(())
}

/// A dictionary page's entries.
fn entries<T: Plain>(
    page: &[u8],
    num_values: i32,
    encoding: i32,
) -> Result<Vec<T::Value<'_>>, String> {
    if !matches!(encoding, PLAIN | PLAIN_DICTIONARY) {
        return Err(format!("a dictionary page of encoding {encoding}"));
    }
    let count = usize::try_from(num_values).map_err(|_| "a negative dictionary size")?;
    let mut data = page;
    let mut entries = Vec::with_capacity(count.min(data.len()));
    for _ in 0..count {
        entries.push(T::read(&mut data)?);
    }
    Ok(entries)
}

/// A data page's definition levels into `levels` (one per row: 1 set, 0 null; all 1 in a
/// required column), and its values' encoding and bytes; `None` for a page that holds no
/// values (an index page). `done` is the rows read before the page.
fn levels_of<'p>(
    kind: PageKind,
    bytes: &'p [u8],
    chunk: &Chunk<'_>,
    done: usize,
    levels: &mut Vec<u32>,
) -> Result<Option<(i32, &'p [u8])>, String> {
    let (count, encoding, values) = match kind {
        PageKind::Data {
            num_values,
            encoding,
            definition_level_encoding,
        } => {
            let count = page_rows(num_values, done, chunk.rows)?;
            if !chunk.nullable {
                (count, encoding, bytes)
            } else if definition_level_encoding == RLE {
                let (length, after) = bytes
                    .split_first_chunk::<4>()
                    .ok_or("a page ends inside its levels' length")?;
                let (encoded, values) = after
                    .split_at_checked(u32::from_le_bytes(*length) as usize)
                    .ok_or("a page ends inside its levels")?;
                definition_levels(encoded, count, levels)?;
                return Ok(Some((encoding, values)));
            } else {
                return Err(format!(
                    "definition levels of encoding {definition_level_encoding}"
                ));
            }
        }
        PageKind::DataV2 {
            num_values,
            num_nulls,
            encoding,
            definition_levels_byte_length: def,
            repetition_levels_byte_length: rep,
            ..
        } => {
            let count = page_rows(num_values, done, chunk.rows)?;
            if rep != 0 {
                return Err("repetition levels in a flat column".into());
            }
            let def = usize::try_from(def).map_err(|_| "a negative levels length")?;
            let (encoded, values) = bytes
                .split_at_checked(def)
                .ok_or("a page ends inside its levels")?;
            if chunk.nullable {
                definition_levels(encoded, count, levels)?;
                let nulls = levels.iter().filter(|&&l| l == 0).count();
                if usize::try_from(num_nulls).ok() != Some(nulls) {
                    return Err(format!("a page says {num_nulls} nulls, its levels {nulls}"));
                }
                return Ok(Some((encoding, values)));
            } else if def != 0 {
                return Err("definition levels in a required column".into());
            }
            (count, encoding, values)
        }
        PageKind::Dictionary { .. } => return Err("a second dictionary page".into()),
        PageKind::Other => return Ok(None),
    };
    // A required column: every row set.
    levels.clear();
    levels.resize(count, 1);
    Ok(Some((encoding, values)))
}

/// Emits a page's rows from dictionary indices (`data`: the indices' bit width, then the
/// hybrid encoding; `indices` is scratch space).
fn by_dictionary<'d, T: Plain>(
    data: &[u8],
    entries: &[T::Value<'d>],
    levels: &[u32],
    indices: &mut Vec<u32>,
    each: &mut impl for<'v> FnMut(Option<T::Value<'v>>) -> Result<(), String>,
) -> Result<(), String> {
    let (&width, encoded) = data
        .split_first()
        .ok_or("a page ends before its index width")?;
    if width > 32 {
        return Err(format!("dictionary indices {width} bits wide"));
    }
    let present = levels.iter().filter(|&&l| l == 1).count();
    hybrid(encoded, u32::from(width), present, indices)?;
    let mut next = indices.iter();
    for &level in levels {
        let value =
            if level == 1 {
                let index = next.next().copied().unwrap_or(u32::MAX) as usize;
                Some(*entries.get(index).ok_or_else(|| {
                    format!("dictionary index {index} of {} entries", entries.len())
                })?)
            } else {
                None
            };
        each(value)?;
    }
    Ok(())
}

/// A page's kind and its decompressed bytes.
type Page<'a> = (PageKind, Cow<'a, [u8]>);

/// A page's row count, checked against the rows still expected.
fn page_rows(num_values: i32, done: usize, rows: usize) -> Result<usize, String> {
    usize::try_from(num_values)
        .ok()
        .filter(|&count| count <= rows - done)
        .ok_or_else(|| format!("a page of {num_values} values past the {rows} rows"))
}

/// The next page's kind and decompressed bytes (levels of a v2 page included, uncompressed),
/// or `None` when the chunk's bytes are used up.
fn next_page<'a>(
    rest: &mut &'a [u8],
    codec: Codec,
    budget: &mut u64,
) -> Result<Option<Page<'a>>, String> {
    if rest.is_empty() {
        return Ok(None);
    }
    let (header, used) = page_header(rest)?;
    let stored = usize::try_from(header.compressed_page_size).unwrap_or(usize::MAX);
    let (stored, after) = rest[used..]
        .split_at_checked(stored)
        .ok_or("a page runs past its column chunk")?;
    *rest = after;
    let size = usize::try_from(header.uncompressed_page_size).unwrap_or(usize::MAX);
    *budget = budget
        .checked_sub(size as u64)
        .ok_or_else(|| format!("a page of {size} decoded bytes, over the record's budget"))?;
    // A v2 page's levels are never compressed; its values may not be.
    let (plain, compressed) = match header.kind {
        PageKind::DataV2 {
            definition_levels_byte_length: def,
            repetition_levels_byte_length: rep,
            is_compressed,
            ..
        } => {
            let levels = usize::try_from(def)
                .ok()
                .zip(usize::try_from(rep).ok())
                .and_then(|(d, r)| d.checked_add(r))
                .filter(|&n| n <= stored.len() && n <= size)
                .ok_or("a v2 page's levels run past the page")?;
            let (plain, values) = stored.split_at(levels);
            (plain, is_compressed.then_some(values))
        }
        _ => (&[][..], Some(stored)),
    };
    let bytes = match (codec, compressed) {
        (Codec::Uncompressed, _) | (_, None) => Cow::Borrowed(stored),
        (Codec::Snappy, Some(values)) => {
            let mut out = plain.to_vec();
            out.extend(inflate_snappy(values, size - plain.len())?);
            Cow::Owned(out)
        }
        (Codec::Zstd, Some(values)) => {
            let mut out = plain.to_vec();
            out.extend(inflate_zstd(values, size - plain.len())?);
            Cow::Owned(out)
        }
    };
    if bytes.len() != size {
        return Err(format!(
            "a page of {} bytes, its header says {size}",
            bytes.len()
        ));
    }
    Ok(Some((header.kind, bytes)))
}

/// Snappy-decompresses exactly `size` bytes (the length the block itself declares is checked
/// first, so nothing larger is allocated).
fn inflate_snappy(data: &[u8], size: usize) -> Result<Vec<u8>, String> {
    let declared = snap::raw::decompress_len(data).map_err(|e| format!("snappy: {e}"))?;
    if declared != size {
        return Err(format!(
            "a snappy page of {declared} bytes, its header says {size}"
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(data)
        .map_err(|e| format!("snappy: {e}"))
}

/// Zstd-decompresses at most `size` bytes.
fn inflate_zstd(data: &[u8], size: usize) -> Result<Vec<u8>, String> {
    if size == 0 {
        return Ok(Vec::new());
    }
    zstd::bulk::decompress(data, size).map_err(|e| format!("zstd: {e}"))
}

/// Decodes `count` definition levels (one bit each) into `levels`.
fn definition_levels(encoded: &[u8], count: usize, levels: &mut Vec<u32>) -> Result<(), String> {
    hybrid(encoded, 1, count, levels)?;
    if levels.iter().any(|&l| l > 1) {
        return Err("a definition level over one in a flat column".into());
    }
    Ok(())
}

/// Decodes `count` values of the RLE/bit-packed hybrid, each `width` bits (≤ 32), into `out`
/// (cleared first). A final bit-packed run may stop early if it holds the values still wanted.
fn hybrid(mut data: &[u8], width: u32, count: usize, out: &mut Vec<u32>) -> Result<(), String> {
    out.clear();
    out.reserve(count);
    let value_bytes = width.div_ceil(8) as usize;
    while out.len() < count {
        let header = varint(&mut data)?;
        let wanted = count - out.len();
        if header & 1 == 0 {
            // A run: one value repeated.
            let run = usize::try_from(header >> 1)
                .unwrap_or(usize::MAX)
                .min(wanted);
            let (bytes, rest) = data
                .split_at_checked(value_bytes)
                .ok_or("levels or indices cut short")?;
            data = rest;
            let mut value = [0u8; 4];
            value[..value_bytes].copy_from_slice(bytes);
            let value = u32::from_le_bytes(value);
            if width < 32 && value >> width != 0 {
                return Err(format!("a run value wider than {width} bits"));
            }
            out.resize(out.len() + run, value);
        } else {
            // Bit-packed groups of eight values, least significant bit first.
            let groups = usize::try_from(header >> 1).unwrap_or(usize::MAX);
            let values = groups.saturating_mul(8).min(wanted);
            let needed = (values * width as usize).div_ceil(8);
            let taken = groups.saturating_mul(width as usize).min(data.len());
            if needed > taken {
                return Err("levels or indices cut short".into());
            }
            let (bytes, rest) = data.split_at(taken);
            data = rest;
            let mask = if width == 32 {
                u64::from(u32::MAX)
            } else {
                (1u64 << width) - 1
            };
            for i in 0..values {
                let bit = i * width as usize;
                let mut window = [0u8; 8];
                let start = bit / 8;
                let end = (start + 8).min(bytes.len());
                window[..end - start].copy_from_slice(&bytes[start..end]);
                let value = (u64::from_le_bytes(window) >> (bit % 8)) & mask;
                // The mask keeps at most 32 bits.
                out.push(u32::try_from(value).unwrap_or(u32::MAX));
            }
        }
    }
    Ok(())
}

/// An unsigned LEB128 varint of at most 64 bits from the front of `data`.
fn varint(data: &mut &[u8]) -> Result<u64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or("levels or indices cut short")?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("an overlong varint in levels or indices".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hybrid_reads_runs_and_bit_packed_groups() {
        let mut out = Vec::new();
        // A run of 5 × 3 (width 2), then one bit-packed group of 0..8 (width 3).
        let mut data = vec![5 << 1, 3, (1 << 1) | 1];
        // 0..8 in 3 bits each, LSB first: 24 bits.
        let mut bits: u32 = 0;
        for v in 0..8u32 {
            bits |= v << (3 * v);
        }
        data.extend_from_slice(&bits.to_le_bytes()[..3]);
        // Width 2 cannot hold 7: decode the run at width 3 too.
        hybrid(&data, 3, 13, &mut out).unwrap();
        assert_eq!(out, [3, 3, 3, 3, 3, 0, 1, 2, 3, 4, 5, 6, 7]);
        // Fewer wanted than held: stops early.
        hybrid(&data, 3, 7, &mut out).unwrap();
        assert_eq!(out, [3, 3, 3, 3, 3, 0, 1]);
        // More wanted than held: an error, not a read past the bytes.
        assert!(hybrid(&data, 3, 14, &mut out).is_err());
        for cut in 0..data.len() {
            assert!(hybrid(&data[..cut], 3, 13, &mut out).is_err(), "cut {cut}");
        }
        // A run value wider than the width.
        assert!(hybrid(&[2, 9], 3, 1, &mut out).is_err());
        // 32-bit indices.
        let mut wide = vec![1 << 1];
        wide.extend_from_slice(&u32::MAX.to_le_bytes());
        hybrid(&wide, 32, 1, &mut out).unwrap();
        assert_eq!(out, [u32::MAX]);
        // A huge run count is clamped to what is wanted, not allocated.
        let mut huge = vec![0xfe, 0xff, 0xff, 0xff, 0x0f];
        huge.push(1);
        hybrid(&huge, 1, 4, &mut out).unwrap();
        assert_eq!(out, [1, 1, 1, 1]);
    }

    #[test]
    fn plain_values_refuse_short_pages() {
        let mut data: &[u8] = &[1, 0, 0, 0, 0, 0, 0];
        assert!(Int64::read(&mut data).is_err());
        let mut data: &[u8] = &[5, 0, 0, 0, b'a'];
        assert!(ByteArray::read(&mut data).is_err());
        let mut data: &[u8] = &[1, 0, 0, 0, b'a', 7];
        assert_eq!(ByteArray::read(&mut data).unwrap(), b"a");
        assert_eq!(data, [7]);
    }
}
