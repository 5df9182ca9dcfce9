//! Parquet page headers: the Thrift compact-protocol structs that precede every page of a
//! column chunk, read with every length and count checked.
//!
//! The `parquet` crate parses page headers privately and then trusts them (it reserves the
//! declared decoded size, and its value decoders index past short pages): a record file is
//! hostile, so its pages are read here and decoded by [`super::column`]. Only the fields a
//! flat kerchunk column needs are kept; every other field (statistics, CRC, index pages) is
//! skipped by type, nested at most [`MAX_DEPTH`] deep.

/// How deep nested structs, lists and maps may go before a header is refused.
const MAX_DEPTH: usize = 16;

/// What kind of page follows the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// Values (format v1: levels and values compressed together).
    Data {
        /// Values in the page, nulls included (the rows of a flat column).
        num_values: i32,
        /// How the values are encoded.
        encoding: i32,
        /// How the definition levels are encoded.
        definition_level_encoding: i32,
    },
    /// Values (format v2: levels uncompressed before the values).
    DataV2 {
        /// Values in the page, nulls included.
        num_values: i32,
        /// How many of them are null.
        num_nulls: i32,
        /// How the values are encoded.
        encoding: i32,
        /// Bytes of definition levels at the start of the page.
        definition_levels_byte_length: i32,
        /// Bytes of repetition levels before them.
        repetition_levels_byte_length: i32,
        /// Whether the values are compressed (the format's default is yes).
        is_compressed: bool,
    },
    /// The dictionary the data pages' indices refer to.
    Dictionary {
        /// Entries in the dictionary.
        num_values: i32,
        /// How the entries are encoded.
        encoding: i32,
    },
    /// A page this reader has no use for (an index page): skipped.
    Other,
}

/// One page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// What the page holds.
    pub kind: PageKind,
    /// Bytes of the page once decompressed.
    pub uncompressed_page_size: i32,
    /// Bytes of the page as stored, after the header.
    pub compressed_page_size: i32,
}

/// Thrift compact-protocol type codes.
mod code {
    pub const STOP: u8 = 0;
    pub const TRUE: u8 = 1;
    pub const FALSE: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const I16: u8 = 4;
    pub const I32: u8 = 5;
    pub const I64: u8 = 6;
    pub const DOUBLE: u8 = 7;
    pub const BINARY: u8 = 8;
    pub const LIST: u8 = 9;
    pub const SET: u8 = 10;
    pub const MAP: u8 = 11;
    pub const STRUCT: u8 = 12;
}

/// Parquet's page type codes.
const DATA_PAGE: i32 = 0;
const DICTIONARY_PAGE: i32 = 2;
const DATA_PAGE_V2: i32 = 3;

/// Reads the page header at the start of `data`; returns it and the bytes it took.
///
/// # Errors
/// A truncated or malformed header, a missing required field, a negative size.
pub fn page_header(data: &[u8]) -> Result<(PageHeader, usize), String> {
    let mut input = Input { data, pos: 0 };
    let mut page_type = None;
    let mut uncompressed = None;
    let mut compressed = None;
    let mut kind = None;
    let mut last = 0;
    while let Some((id, ty)) = input.field(&mut last)? {
        match (id, ty) {
            (1, code::I32) => page_type = Some(input.i32()?),
            (2, code::I32) => uncompressed = Some(input.i32()?),
            (3, code::I32) => compressed = Some(input.i32()?),
            (5, code::STRUCT) => kind = Some(data_page(&mut input)?),
            (7, code::STRUCT) => kind = Some(dictionary_page(&mut input)?),
            (8, code::STRUCT) => kind = Some(data_page_v2(&mut input)?),
            _ => input.skip(ty, 0)?,
        }
    }
    let (Some(page_type), Some(uncompressed), Some(compressed)) =
        (page_type, uncompressed, compressed)
    else {
        return Err("a page header without its type or sizes".into());
    };
    if uncompressed < 0 || compressed < 0 {
        return Err("a page header with a negative size".into());
    }
    let kind = match (page_type, kind) {
        (DATA_PAGE, Some(kind @ PageKind::Data { .. }))
        | (DATA_PAGE_V2, Some(kind @ PageKind::DataV2 { .. }))
        | (DICTIONARY_PAGE, Some(kind @ PageKind::Dictionary { .. })) => kind,
        (DATA_PAGE | DATA_PAGE_V2 | DICTIONARY_PAGE, _) => {
            return Err(format!("a page of type {page_type} without its header"))
        }
        _ => PageKind::Other,
    };
    Ok((
        PageHeader {
            kind,
            uncompressed_page_size: uncompressed,
            compressed_page_size: compressed,
        },
        input.pos,
    ))
}

/// Walks the footer of the parquet file `file` (its `FileMetaData`) without keeping anything,
/// so that the `parquet` crate parses only a footer whose structure is sound: its reader loops
/// on every element a list claims, so a few bytes claiming billions of empty elements cost
/// seconds of CPU (fuzzing found it). Here a collection may not claim more elements than bytes
/// are left, nesting is bounded, and the walk is linear in the footer's size.
///
/// # Errors
/// No footer, a footer length past the file, or a malformed footer.
pub fn check_footer(file: &[u8]) -> Result<(), String> {
    let tail = file
        .len()
        .checked_sub(8)
        .map(|start| &file[start..])
        .ok_or("shorter than a parquet footer")?;
    if &tail[4..] != b"PAR1" {
        return Err("no parquet footer (the file does not end with PAR1)".into());
    }
    let length = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let start = (file.len() - 8)
        .checked_sub(length)
        .ok_or("a footer longer than the file")?;
    let mut input = Input {
        data: &file[start..file.len() - 8],
        pos: 0,
    };
    input.skip(code::STRUCT, 0).map_err(|e| {
        format!(
            "a malformed footer: {}",
            e.replacen("a page header", "it", 1)
        )
    })
}

/// `DataPageHeader`.
fn data_page(input: &mut Input<'_>) -> Result<PageKind, String> {
    let (mut num_values, mut encoding, mut levels) = (None, None, None);
    let mut last = 0;
    while let Some((id, ty)) = input.field(&mut last)? {
        match (id, ty) {
            (1, code::I32) => num_values = Some(input.i32()?),
            (2, code::I32) => encoding = Some(input.i32()?),
            (3, code::I32) => levels = Some(input.i32()?),
            _ => input.skip(ty, 1)?,
        }
    }
    match (num_values, encoding, levels) {
        (Some(num_values), Some(encoding), Some(definition_level_encoding)) => Ok(PageKind::Data {
            num_values,
            encoding,
            definition_level_encoding,
        }),
        _ => Err("a data page header without its count or encodings".into()),
    }
}

/// `DataPageHeaderV2`.
fn data_page_v2(input: &mut Input<'_>) -> Result<PageKind, String> {
    let mut fields = [None; 6];
    let mut is_compressed = true;
    let mut last = 0;
    while let Some((id, ty)) = input.field(&mut last)? {
        match (id, ty) {
            (1..=6, code::I32) => fields[usize::from(id.unsigned_abs()) - 1] = Some(input.i32()?),
            (7, code::TRUE) => is_compressed = true,
            (7, code::FALSE) => is_compressed = false,
            _ => input.skip(ty, 1)?,
        }
    }
    // Field 3 (num_rows) is required by the format but a flat column's rows are its values.
    match fields {
        [Some(num_values), Some(num_nulls), Some(_), Some(encoding), Some(def), Some(rep)] => {
            Ok(PageKind::DataV2 {
                num_values,
                num_nulls,
                encoding,
                definition_levels_byte_length: def,
                repetition_levels_byte_length: rep,
                is_compressed,
            })
        }
        _ => Err("a v2 data page header without its counts or encoding".into()),
    }
}

/// `DictionaryPageHeader`.
fn dictionary_page(input: &mut Input<'_>) -> Result<PageKind, String> {
    let (mut num_values, mut encoding) = (None, None);
    let mut last = 0;
    while let Some((id, ty)) = input.field(&mut last)? {
        match (id, ty) {
            (1, code::I32) => num_values = Some(input.i32()?),
            (2, code::I32) => encoding = Some(input.i32()?),
            _ => input.skip(ty, 1)?,
        }
    }
    match (num_values, encoding) {
        (Some(num_values), Some(encoding)) => Ok(PageKind::Dictionary {
            num_values,
            encoding,
        }),
        _ => Err("a dictionary page header without its count or encoding".into()),
    }
}

/// The header bytes, read from `pos`.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.data.get(self.pos).ok_or("a page header cut short")?;
        self.pos += 1;
        Ok(byte)
    }

    fn advance(&mut self, n: u64) -> Result<(), String> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.pos.checked_add(n))
            .filter(|&end| end <= self.data.len())
            .ok_or("a page header cut short")?;
        self.pos = end;
        Ok(())
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    fn varint(&mut self) -> Result<u64, String> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a page header with an overlong varint".into())
    }

    fn i64(&mut self) -> Result<i64, String> {
        let raw = self.varint()?;
        // Zigzag: 0, -1, 1, -2, … (`raw >> 1` always fits).
        let half = i64::try_from(raw >> 1).map_err(|_| "a page header integer out of range")?;
        Ok(if raw & 1 == 0 { half } else { -half - 1 })
    }

    fn i32(&mut self) -> Result<i32, String> {
        i32::try_from(self.i64()?).map_err(|_| "a page header i32 out of range".to_owned())
    }

    /// The next field's id and type, or `None` at the struct's end (`last` is the previous id,
    /// for delta-encoded ids).
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let byte = self.byte()?;
        let ty = byte & 0x0f;
        if ty == code::STOP {
            return Ok(None);
        }
        let delta = byte >> 4;
        let id = if delta == 0 {
            i16::try_from(self.i64()?).map_err(|_| "a page header field id out of range")?
        } else {
            last.checked_add(i16::from(delta))
                .ok_or("a page header field id out of range")?
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// Skips a value of compact type `ty`, nested `depth` deep.
    fn skip(&mut self, ty: u8, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("a page header nested too deep".into());
        }
        match ty {
            code::TRUE | code::FALSE => Ok(()),
            code::BYTE => self.advance(1),
            code::I16 | code::I32 | code::I64 => self.varint().map(drop),
            code::DOUBLE => self.advance(8),
            code::BINARY => {
                let length = self.varint()?;
                self.advance(length)
            }
            code::LIST | code::SET => {
                let header = self.byte()?;
                let element = header & 0x0f;
                let count = match header >> 4 {
                    15 => self.varint()?,
                    short => u64::from(short),
                };
                self.skip_elements(count, &[element], depth)
            }
            code::MAP => {
                let count = self.varint()?;
                if count == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                self.skip_elements(count, &[types >> 4, types & 0x0f], depth)
            }
            code::STRUCT => {
                let mut last = 0;
                while let Some((_, field)) = self.field(&mut last)? {
                    self.skip(field, depth + 1)?;
                }
                Ok(())
            }
            other => Err(format!("a page header with thrift type {other}")),
        }
    }

    /// Skips `count` elements of the given types (one for a list, key and value for a map).
    fn skip_elements(&mut self, count: u64, types: &[u8], depth: usize) -> Result<(), String> {
        // Every element takes at least one byte, except booleans in a list (one byte each too):
        // a count past the bytes left is refused before looping on it.
        if count > (self.data.len() - self.pos) as u64 {
            return Err("a page header list longer than the header".into());
        }
        for _ in 0..count {
            for &ty in types {
                if matches!(ty, code::TRUE | code::FALSE) {
                    // Booleans inside collections are a byte each.
                    self.advance(1)?;
                } else {
                    self.skip(ty, depth + 1)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact-protocol writer for the fields the tests need.
    fn field(out: &mut Vec<u8>, delta: u8, ty: u8) {
        out.push((delta << 4) | ty);
    }

    fn int(out: &mut Vec<u8>, value: i64) {
        let mut raw = ((value << 1) ^ (value >> 63)).cast_unsigned();
        loop {
            let byte = (raw & 0x7f) as u8;
            raw >>= 7;
            if raw == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn data_page_header(num_values: i64, statistics: bool) -> Vec<u8> {
        let mut out = Vec::new();
        field(&mut out, 1, code::I32);
        int(&mut out, 0);
        field(&mut out, 1, code::I32);
        int(&mut out, 100);
        field(&mut out, 1, code::I32);
        int(&mut out, 60);
        field(&mut out, 2, code::STRUCT); // field 5
        field(&mut out, 1, code::I32);
        int(&mut out, num_values);
        field(&mut out, 1, code::I32);
        int(&mut out, 8);
        field(&mut out, 1, code::I32);
        int(&mut out, 3);
        field(&mut out, 1, code::I32);
        int(&mut out, 3);
        if statistics {
            field(&mut out, 1, code::STRUCT); // field 5: statistics
            field(&mut out, 1, code::BINARY);
            out.push(3); // an unsigned length, not zigzag
            out.extend_from_slice(b"max");
            field(&mut out, 2, code::LIST);
            out.push(0x25); // 2 × i32
            int(&mut out, 7);
            int(&mut out, -7);
            out.push(code::STOP);
        }
        out.push(code::STOP);
        out.push(code::STOP);
        out
    }

    #[test]
    fn reads_a_data_page_header_and_skips_statistics() {
        for statistics in [false, true] {
            let bytes = data_page_header(12, statistics);
            let (header, used) = page_header(&bytes).unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(header.uncompressed_page_size, 100);
            assert_eq!(header.compressed_page_size, 60);
            assert_eq!(
                header.kind,
                PageKind::Data {
                    num_values: 12,
                    encoding: 8,
                    definition_level_encoding: 3
                }
            );
        }
    }

    /// Real footers pass; one whose list claims more elements than it has bytes (which the
    /// crate's parser would loop on) and files without a footer are refused.
    #[test]
    fn footers_are_walked_before_parsing() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/parquet/hdf5_single.parq/air_temperature/refs.0.parq"
        );
        let good = std::fs::read(fixture).unwrap();
        check_footer(&good).unwrap();
        let mut bad = Vec::new();
        field(&mut bad, 2, code::LIST);
        bad.push(0xf1); // a list of booleans, its size as a varint
        bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x07]);
        bad.push(code::STOP);
        let footer = u32::try_from(bad.len()).unwrap();
        let mut file = b"PAR1".to_vec();
        file.extend_from_slice(&bad);
        file.extend_from_slice(&footer.to_le_bytes());
        file.extend_from_slice(b"PAR1");
        assert!(check_footer(&file)
            .unwrap_err()
            .contains("malformed footer"));
        for short in [&b"PAR1"[..], b"", &good[..good.len() - 1]] {
            assert!(check_footer(short).is_err());
        }
        let mut long = good.clone();
        let at = long.len() - 8;
        long[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(check_footer(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn refuses_truncated_or_malformed_headers() {
        let bytes = data_page_header(12, true);
        for cut in 0..bytes.len() {
            assert!(page_header(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A list claiming more elements than bytes.
        let mut out = Vec::new();
        field(&mut out, 9, code::LIST);
        out.push(0xf5);
        int(&mut out, 1 << 40);
        assert!(page_header(&out).is_err());
        // Structs nested past the limit.
        let mut deep = Vec::new();
        for _ in 0..40 {
            field(&mut deep, 9, code::STRUCT);
        }
        assert!(page_header(&deep).unwrap_err().contains("deep"));
        // A negative size.
        let mut negative = Vec::new();
        field(&mut negative, 1, code::I32);
        int(&mut negative, 0);
        field(&mut negative, 1, code::I32);
        int(&mut negative, -1);
        field(&mut negative, 1, code::I32);
        int(&mut negative, 1);
        negative.push(code::STOP);
        assert!(page_header(&negative).unwrap_err().contains("negative"));
    }
}
