//! One decoded record file of a parquet reference set (`{field}/refs.{n}.parq`): its rows in a
//! compact form.
//!
//! The file is hostile until checked: its row count must equal the set's `record_size`, the
//! four columns must have kerchunk's types, and the decoded size is bounded by the column
//! chunks' declared sizes before anything is decompressed. The `parquet` crate reads the
//! footer; the column chunks are decoded by `super::column`. Errors are strings naming what
//! is wrong; the caller adds the dataset and file.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaDataReader, RowGroupMetaData};

use super::column::{self, ByteArray, Chunk, Codec, Int64, Plain};

/// The most decoded bytes one record file may declare (its column chunks' uncompressed sizes):
/// checked before decompressing, so a small file cannot claim the isolate's memory.
pub const MAX_DECODED_BYTES: u64 = 48 * 1024 * 1024;

/// What a row of a record file says about its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// `raw` is set: the key's bytes.
    Inline(&'a [u8]),
    /// `path` is null: the key is absent.
    Absent,
    /// `offset` and `size` are 0: the whole file at the path.
    Whole(&'a str),
    /// A byte range of the file at the path.
    Range {
        /// The path as written (resolved by the caller).
        path: &'a str,
        /// First byte.
        offset: u64,
        /// Length.
        size: u64,
    },
}

/// A row as stored: 24 bytes plus the inline bytes.
#[derive(Debug, Clone, Copy)]
struct Packed {
    /// Index into `paths`, or [`NO_PATH`].
    path: u32,
    /// `offset`, or the start of the inline bytes in `raw` when `inline` is set.
    offset: u64,
    /// `size`, or the inline length.
    size: u64,
    inline: bool,
}

const NO_PATH: u32 = u32::MAX;

/// A decoded record file.
#[derive(Debug)]
pub struct Record {
    /// The file does not exist: kerchunk's writer leaves out records with no references, and
    /// fsspec reads their keys as absent.
    missing: bool,
    /// Distinct paths (a categorical column repeats few).
    paths: Vec<Rc<str>>,
    rows: Vec<Packed>,
    raw: Vec<u8>,
}

impl Record {
    /// Decodes a record file of at most `record_size` rows.
    ///
    /// # Errors
    /// What is wrong with the file: not parquet, truncated, a missing column or one of the wrong
    /// type, more rows than `record_size`, an unsupported compression, a declared decoded size
    /// over [`MAX_DECODED_BYTES`].
    pub fn decode(bytes: Vec<u8>, record_size: u64) -> Result<Self, String> {
        super::thrift::check_footer(&bytes)?;
        let bytes = Bytes::from(bytes);
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .map_err(|e| format!("not a readable parquet file: {e}"))?;
        let total_rows = metadata.file_metadata().num_rows();
        let total_rows = u64::try_from(total_rows).map_err(|_| "a negative row count")?;
        let schema = metadata.file_metadata().schema_descr();
        let column = |name: &str, want: PhysicalType| -> Result<usize, String> {
            let index = (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == name)
                .ok_or_else(|| format!("no column {name:?}"))?;
            let found = schema.column(index).physical_type();
            if found == want {
                Ok(index)
            } else {
                Err(format!("column {name:?} is {found}, expected {want}"))
            }
        };
        let columns = Columns {
            path: column("path", PhysicalType::BYTE_ARRAY)?,
            offset: column("offset", PhysicalType::INT64)?,
            size: column("size", PhysicalType::INT64)?,
            raw: column("raw", PhysicalType::BYTE_ARRAY)?,
        };
        // kerchunk's writers pad every record file to exactly record_size rows: any other count
        // means the set's record_size does not match its files, and rows would map to the
        // wrong keys (another chunk's bytes).
        if total_rows != record_size {
            return Err(format!(
                "{total_rows} rows, not the set's record_size {record_size}: the record_size \
                 does not match the files"
            ));
        }
        let mut declared: u64 = 0;
        for group in metadata.row_groups() {
            for column in group.columns() {
                // Every chunk is checked before anything is decompressed: inside the file, a
                // supported codec, a flat column, sizes that are not negative.
                chunk(&bytes, column, 0)?;
                if column.uncompressed_size() < 0 || column.num_values() < 0 {
                    return Err(format!(
                        "column {} declares a negative size",
                        column.column_descr().name()
                    ));
                }
                let size = u64::try_from(column.uncompressed_size()).unwrap_or(u64::MAX);
                declared = declared.saturating_add(size);
            }
        }
        if declared > MAX_DECODED_BYTES {
            return Err(format!(
                "declares {declared} decoded bytes, over the {MAX_DECODED_BYTES} a record file \
                 may hold"
            ));
        }
        let mut record = Self {
            missing: false,
            paths: Vec::new(),
            rows: Vec::with_capacity(usize::try_from(total_rows).unwrap_or(0)),
            raw: Vec::new(),
        };
        let mut known = HashMap::new();
        let mut budget = MAX_DECODED_BYTES;
        for (index, group) in metadata.row_groups().iter().enumerate() {
            record
                .append(&bytes, group, &columns, total_rows, &mut known, &mut budget)
                .map_err(|e| format!("row group {index}: {e}"))?;
        }
        if record.rows.len() as u64 != total_rows {
            return Err(format!(
                "{} rows decoded, the footer says {total_rows}",
                record.rows.len()
            ));
        }
        record.paths.shrink_to_fit();
        record.raw.shrink_to_fit();
        Ok(record)
    }

    /// Appends one row group's rows (`file` is the whole file, `budget` the decoded bytes
    /// still allowed).
    fn append(
        &mut self,
        file: &[u8],
        group: &RowGroupMetaData,
        columns: &Columns,
        total_rows: u64,
        known: &mut HashMap<Rc<str>, u32>,
        budget: &mut u64,
    ) -> Result<(), String> {
        let rows = usize::try_from(group.num_rows())
            .map_err(|_| "a row group with a negative row count".to_owned())?;
        if (self.rows.len() + rows) as u64 > total_rows {
            return Err("row groups hold more rows than the footer says".into());
        }
        let chunk = |index: usize| chunk(file, group.column(index), rows);
        let mut paths = Vec::with_capacity(rows);
        let mut last: Option<(Vec<u8>, u32)> = None;
        read::<ByteArray>(&chunk(columns.path)?, budget, "path", |path| {
            let index = match (path, &last) {
                (None, _) => NO_PATH,
                (Some(path), Some((bytes, index))) if bytes == path => *index,
                (Some(path), _) => {
                    let index = self.path_index(path, known)?;
                    last = Some((path.to_vec(), index));
                    index
                }
            };
            paths.push(index);
            Ok(())
        })?;
        let offsets = integers(&chunk(columns.offset)?, budget, "offset", rows)?;
        let sizes = integers(&chunk(columns.size)?, budget, "size", rows)?;
        let mut inline = Vec::with_capacity(rows);
        read::<ByteArray>(&chunk(columns.raw)?, budget, "raw", |raw| {
            inline.push(raw.map(|raw| {
                let start = self.raw.len() as u64;
                self.raw.extend_from_slice(raw);
                (start, raw.len() as u64)
            }));
            Ok(())
        })?;
        for row in 0..rows {
            if let Some((start, length)) = inline[row] {
                self.rows.push(Packed {
                    path: NO_PATH,
                    offset: start,
                    size: length,
                    inline: true,
                });
                continue;
            }
            if paths[row] == NO_PATH {
                self.rows.push(Packed {
                    path: NO_PATH,
                    offset: 0,
                    size: 0,
                    inline: false,
                });
                continue;
            }
            let number = |value: Option<i64>, name: &str| -> Result<u64, String> {
                let value = value.ok_or_else(|| format!("row {row}: {name} is null"))?;
                u64::try_from(value).map_err(|_| format!("row {row}: {name} {value} is negative"))
            };
            let offset = number(offsets[row], "offset")?;
            let size = number(sizes[row], "size")?;
            if offset.checked_add(size).is_none() {
                return Err(format!("row {row}: the range ends past 2^64"));
            }
            self.rows.push(Packed {
                path: paths[row],
                offset,
                size,
                inline: false,
            });
        }
        Ok(())
    }

    /// The index of `path` in `paths`, added when new (`known` maps paths to indices).
    fn path_index(
        &mut self,
        path: &[u8],
        known: &mut HashMap<Rc<str>, u32>,
    ) -> Result<u32, String> {
        let text = std::str::from_utf8(path).map_err(|_| "a path that is not UTF-8")?;
        if let Some(&found) = known.get(text) {
            return Ok(found);
        }
        let index = u32::try_from(self.paths.len()).map_err(|_| "too many paths")?;
        let shared: Rc<str> = Rc::from(text);
        self.paths.push(Rc::clone(&shared));
        known.insert(shared, index);
        Ok(index)
    }

    /// The record of a file that does not exist: every row is absent.
    #[must_use]
    pub fn missing() -> Self {
        Self {
            missing: true,
            paths: Vec::new(),
            rows: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// Row `row`, or `None` past the file's rows.
    #[must_use]
    pub fn row(&self, row: usize) -> Option<Row<'_>> {
        if self.missing {
            return Some(Row::Absent);
        }
        let packed = self.rows.get(row)?;
        Some(if packed.inline {
            let start = usize::try_from(packed.offset).ok()?;
            let end = start.checked_add(usize::try_from(packed.size).ok()?)?;
            Row::Inline(self.raw.get(start..end)?)
        } else if packed.path == NO_PATH {
            Row::Absent
        } else {
            let path = self.paths.get(packed.path as usize)?;
            if packed.offset == 0 && packed.size == 0 {
                Row::Whole(path)
            } else {
                Row::Range {
                    path,
                    offset: packed.offset,
                    size: packed.size,
                }
            }
        })
    }

    /// How many rows the file holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the file holds no rows.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The distinct paths the rows name.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(|p| &**p)
    }

    /// Bytes held in memory (for the set's budget).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Packed>()
            + self.raw.capacity()
            + self
                .paths
                .iter()
                .map(|p| p.len() + 2 * std::mem::size_of::<usize>() + 16)
                .sum::<usize>()
    }
}

/// The column indices of kerchunk's four columns.
struct Columns {
    path: usize,
    offset: usize,
    size: usize,
    raw: usize,
}

/// Column `meta`'s chunk of a row group of `rows` rows in `file`.
///
/// # Errors
/// A chunk outside the file, an unsupported codec, a nested column.
fn chunk<'a>(file: &'a [u8], meta: &ColumnChunkMetaData, rows: usize) -> Result<Chunk<'a>, String> {
    let name = meta.column_descr().name();
    let start = meta
        .dictionary_page_offset()
        .unwrap_or(meta.data_page_offset());
    let bytes = usize::try_from(start)
        .ok()
        .zip(usize::try_from(meta.compressed_size()).ok())
        .and_then(|(start, length)| file.get(start..start.checked_add(length)?))
        .ok_or_else(|| format!("column {name:?} declares a chunk outside the file"))?;
    let codec = match meta.compression() {
        Compression::UNCOMPRESSED => Codec::Uncompressed,
        Compression::SNAPPY => Codec::Snappy,
        Compression::ZSTD(_) => Codec::Zstd,
        other => {
            return Err(format!(
                "column {name:?} is compressed with {other}: only zstd and snappy (what kerchunk \
                 and fastparquet write) are supported"
            ))
        }
    };
    let descr = meta.column_descr();
    if descr.max_rep_level() != 0 || descr.max_def_level() > 1 {
        return Err(format!("column {name:?} is nested, not a flat column"));
    }
    Ok(Chunk {
        bytes,
        codec,
        nullable: descr.max_def_level() == 1,
        rows,
    })
}

/// Decodes column `name`'s chunk, calling `each` per row; errors name the column.
fn read<T: Plain>(
    chunk: &Chunk<'_>,
    budget: &mut u64,
    name: &str,
    each: impl for<'v> FnMut(Option<T::Value<'v>>) -> Result<(), String>,
) -> Result<(), String> {
    column::read::<T>(chunk, budget, each).map_err(|e| format!("column {name:?}: {e}"))
}

/// Column `name`'s integers, `None` where null.
fn integers(
    chunk: &Chunk<'_>,
    budget: &mut u64,
    name: &str,
    rows: usize,
) -> Result<Vec<Option<i64>>, String> {
    let mut values = Vec::with_capacity(rows);
    read::<Int64>(chunk, budget, name, |value| {
        values.push(value);
        Ok(())
    })?;
    Ok(values)
}
