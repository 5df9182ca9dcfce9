//! One decoded record file of a parquet reference set (`{field}/refs.{n}.parq`): its rows in a
//! compact form.
//!
//! The file is hostile until checked: its row count must not exceed the set's `record_size`,
//! the four columns must have kerchunk's types, and the decoded size is bounded by the column
//! chunks' declared sizes before anything is decompressed. Errors are strings naming what is
//! wrong; the caller adds the dataset and file.

use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;
use parquet::basic::{Compression, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DataType, Int64Type};
use parquet::file::reader::{FileReader, RowGroupReader};
use parquet::file::serialized_reader::SerializedFileReader;

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
        let file_bytes = bytes.len() as u64;
        let reader = SerializedFileReader::new(Bytes::from(bytes))
            .map_err(|e| format!("not a readable parquet file: {e}"))?;
        let metadata = reader.metadata();
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
            for chunk in group.columns() {
                // The reader asserts (panics, which aborts a wasm isolate) on a negative start
                // or size: checked here first, with the range inside the file.
                let start = chunk
                    .dictionary_page_offset()
                    .unwrap_or(chunk.data_page_offset());
                let inside = u64::try_from(start)
                    .ok()
                    .zip(u64::try_from(chunk.compressed_size()).ok())
                    .and_then(|(start, length)| start.checked_add(length))
                    .is_some_and(|end| end <= file_bytes);
                if !inside || chunk.uncompressed_size() < 0 || chunk.num_values() < 0 {
                    return Err(format!(
                        "column {} declares a chunk outside the file",
                        chunk.column_descr().name()
                    ));
                }
                match chunk.compression() {
                    Compression::UNCOMPRESSED | Compression::SNAPPY | Compression::ZSTD(_) => {}
                    other => {
                        return Err(format!(
                            "column {} is compressed with {other}: only zstd and snappy \
                             (what kerchunk and fastparquet write) are supported",
                            chunk.column_descr().name()
                        ))
                    }
                }
                let size = u64::try_from(chunk.uncompressed_size()).unwrap_or(u64::MAX);
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
        for index in 0..reader.num_row_groups() {
            let group = reader
                .get_row_group(index)
                .map_err(|e| format!("row group {index}: {e}"))?;
            record.append(&*group, &columns, total_rows, &mut known)?;
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

    /// Appends one row group's rows.
    fn append(
        &mut self,
        group: &dyn RowGroupReader,
        columns: &Columns,
        total_rows: u64,
        known: &mut HashMap<Rc<str>, u32>,
    ) -> Result<(), String> {
        let rows = usize::try_from(group.metadata().num_rows())
            .map_err(|_| "a row group with a negative row count".to_owned())?;
        if (self.rows.len() + rows) as u64 > total_rows {
            return Err("row groups hold more rows than the footer says".into());
        }
        let paths = read_column::<ByteArrayType>(group, columns.path, rows, "path")?;
        let offsets = read_column::<Int64Type>(group, columns.offset, rows, "offset")?;
        let sizes = read_column::<Int64Type>(group, columns.size, rows, "size")?;
        let inline = read_column::<ByteArrayType>(group, columns.raw, rows, "raw")?;
        let mut last: Option<(ByteArray, u32)> = None;
        for row in 0..rows {
            if let Some(raw) = &inline[row] {
                let start = self.raw.len() as u64;
                self.raw.extend_from_slice(raw.data());
                self.rows.push(Packed {
                    path: NO_PATH,
                    offset: start,
                    size: raw.len() as u64,
                    inline: true,
                });
                continue;
            }
            let Some(path) = &paths[row] else {
                self.rows.push(Packed {
                    path: NO_PATH,
                    offset: 0,
                    size: 0,
                    inline: false,
                });
                continue;
            };
            let number = |value: Option<i64>, name: &str| -> Result<u64, String> {
                let value = value.ok_or_else(|| format!("row {row}: {name} is null"))?;
                u64::try_from(value).map_err(|_| format!("row {row}: {name} {value} is negative"))
            };
            let offset = number(offsets[row], "offset")?;
            let size = number(sizes[row], "size")?;
            if offset.checked_add(size).is_none() {
                return Err(format!("row {row}: the range ends past 2^64"));
            }
            let index = match &last {
                Some((bytes, index)) if bytes.data() == path.data() => *index,
                _ => self.path_index(path, known)?,
            };
            last = Some((path.clone(), index));
            self.rows.push(Packed {
                path: index,
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
        path: &ByteArray,
        known: &mut HashMap<Rc<str>, u32>,
    ) -> Result<u32, String> {
        let text = std::str::from_utf8(path.data()).map_err(|_| "a path that is not UTF-8")?;
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

/// Reads `rows` values of a column of physical type `T`, `None` where null.
fn read_column<T: DataType>(
    group: &dyn RowGroupReader,
    column: usize,
    rows: usize,
    name: &str,
) -> Result<Vec<Option<T::T>>, String> {
    let reader = group
        .get_column_reader(column)
        .map_err(|e| format!("column {name:?}: {e}"))?;
    let Some(mut reader) = T::get_column_reader(reader) else {
        return Err(format!("column {name:?} is not {}", T::get_physical_type()));
    };
    let nullable = group
        .metadata()
        .column(column)
        .column_descr()
        .max_def_level()
        > 0;
    let mut values = Vec::with_capacity(rows);
    let mut levels = Vec::with_capacity(rows);
    let mut read = 0;
    while read < rows {
        let (records, _, _) = reader
            .read_records(
                rows - read,
                nullable.then_some(&mut levels),
                None,
                &mut values,
            )
            .map_err(|e| format!("column {name:?}: {e}"))?;
        if records == 0 {
            break;
        }
        read += records;
    }
    spread(values, &levels, nullable, rows, name)
}

/// Places the non-null `values` at the rows whose definition level says they are set.
fn spread<T>(
    values: Vec<T>,
    levels: &[i16],
    nullable: bool,
    rows: usize,
    name: &str,
) -> Result<Vec<Option<T>>, String> {
    if !nullable {
        if values.len() != rows {
            return Err(format!(
                "column {name:?} holds {} values for {rows} rows",
                values.len()
            ));
        }
        return Ok(values.into_iter().map(Some).collect());
    }
    if levels.len() != rows || levels.iter().filter(|&&l| l > 0).count() != values.len() {
        return Err(format!(
            "column {name:?} holds {} levels and {} values for {rows} rows",
            levels.len(),
            values.len()
        ));
    }
    let mut values = values.into_iter();
    Ok(levels
        .iter()
        .map(|&level| if level > 0 { values.next() } else { None })
        .collect())
}
