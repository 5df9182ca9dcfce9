//! The compact store of explicit references: one record per key in 1 MiB byte chunks, and an
//! index of record positions sorted by key.
//!
//! A record is `varint(key length) key varint(tag) payload`, where the tag is
//! `url << 2 | 0` for a byte range (payload `varint(offset) varint(length)`), `url << 2 | 1` for a
//! whole file (no payload) and `2` for inline bytes (payload `varint(length) bytes`). `url` indexes
//! the deduplicated URL table. A position is `chunk << 20 | offset in chunk`, so 4096 chunks
//! (4 GiB) at most. Records never straddle chunks, so chunks are never reallocated once full and a
//! load never holds two copies of the data; a record larger than a chunk gets a chunk of its own.
//! The index is sorted once after loading (skipped when the keys arrived sorted), and a key that
//! appears twice keeps its last value, as Python's `json` does.

const CHUNK_BITS: u32 = 20;
const CHUNK: usize = 1 << CHUNK_BITS;
const MAX_CHUNKS: usize = 1 << (32 - CHUNK_BITS);
const MASK: u32 = (1 << CHUNK_BITS) - 1;
/// URL indices must fit in a tag beside the two kind bits, in 32 bits.
pub(crate) const MAX_URLS: u32 = 1 << 30;

const KIND_RANGE: u64 = 0;
const KIND_WHOLE: u64 = 1;
const KIND_INLINE: u64 = 2;

/// A decoded record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    /// Inline bytes.
    Inline(&'a [u8]),
    /// A byte range of the URL with this index.
    Range { url: u32, offset: u64, length: u64 },
    /// The whole of the URL with this index.
    Whole { url: u32 },
}

/// The finished store: records and the sorted index.
#[derive(Debug, Default)]
pub(crate) struct Records {
    chunks: Vec<Vec<u8>>,
    index: Vec<u32>,
}

impl Records {
    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// The value of `key`, by binary search.
    pub(crate) fn get(&self, key: &str) -> Option<Value<'_>> {
        let found = self
            .index
            .binary_search_by(|&pos| key_at(&self.chunks, pos).cmp(key.as_bytes()))
            .ok()?;
        let pos = *self.index.get(found)?;
        self.value_at(pos)
    }

    /// The keys, sorted by their UTF-8 bytes (which is code point order, as Python sorts).
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.index
            .iter()
            .map(|&pos| std::str::from_utf8(key_at(&self.chunks, pos)).unwrap_or_default())
    }

    /// The key of the record at `pos`, as text.
    pub(crate) fn key_str(&self, pos: u32) -> String {
        String::from_utf8_lossy(key_at(&self.chunks, pos)).into_owned()
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<u8>>()
            + self.index.capacity() * std::mem::size_of::<u32>()
    }

    fn value_at(&self, pos: u32) -> Option<Value<'_>> {
        let record = record_at(&self.chunks, pos)?;
        let (key_len, rest) = read_varint(record)?;
        let rest = rest.get(usize::try_from(key_len).ok()?..)?;
        let (tag, rest) = read_varint(rest)?;
        let url = u32::try_from(tag >> 2).ok()?;
        match tag & 3 {
            KIND_RANGE => {
                let (offset, rest) = read_varint(rest)?;
                let (length, _) = read_varint(rest)?;
                Some(Value::Range {
                    url,
                    offset,
                    length,
                })
            }
            KIND_WHOLE => Some(Value::Whole { url }),
            KIND_INLINE => {
                let (len, rest) = read_varint(rest)?;
                Some(Value::Inline(rest.get(..usize::try_from(len).ok()?)?))
            }
            _ => None,
        }
    }
}

/// Builds [`Records`] one reference at a time, in document order.
#[derive(Debug, Default)]
pub(crate) struct RecordsBuilder {
    records: Records,
    scratch: Vec<u8>,
    /// Whether every key so far was greater than the one before (no sort needed).
    sorted: bool,
    /// The first key and how many leading bytes every key so far shares with it: the sort
    /// compares the bytes after them.
    first_key: Vec<u8>,
    common: usize,
}

/// The store would pass 4 GiB of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl RecordsBuilder {
    pub(crate) fn new() -> Self {
        Self {
            sorted: true,
            ..Self::default()
        }
    }

    /// Appends a record; returns its position.
    pub(crate) fn push(&mut self, key: &str, value: Value<'_>) -> Result<u32, TooLarge> {
        let record = &mut self.scratch;
        record.clear();
        write_varint(record, key.len() as u64);
        record.extend_from_slice(key.as_bytes());
        match value {
            Value::Range {
                url,
                offset,
                length,
            } => {
                write_varint(record, u64::from(url) << 2 | KIND_RANGE);
                write_varint(record, offset);
                write_varint(record, length);
            }
            Value::Whole { url } => write_varint(record, u64::from(url) << 2 | KIND_WHOLE),
            Value::Inline(bytes) => {
                write_varint(record, KIND_INLINE);
                write_varint(record, bytes.len() as u64);
                record.extend_from_slice(bytes);
            }
        }
        let chunks = &mut self.records.chunks;
        let fits = chunks
            .last()
            .is_some_and(|chunk| chunk.len() + record.len() <= CHUNK);
        if !fits {
            if chunks.len() >= MAX_CHUNKS {
                return Err(TooLarge);
            }
            // The first chunk grows as needed (small sets stay small); later ones are full size.
            chunks.push(if chunks.is_empty() {
                Vec::new()
            } else {
                Vec::with_capacity(CHUNK.max(record.len()))
            });
        }
        let chunk_index = chunks.len() - 1;
        let Some(chunk) = chunks.last_mut() else {
            return Err(TooLarge);
        };
        let offset = chunk.len();
        chunk.extend_from_slice(record);
        let pos = u32::try_from(chunk_index << CHUNK_BITS | offset).map_err(|_| TooLarge)?;
        if let Some(&previous) = self.records.index.last() {
            if self.sorted {
                self.sorted = key_at(chunks, previous) < key.as_bytes();
            }
            let shared = self
                .first_key
                .get(..self.common)
                .unwrap_or_default()
                .iter()
                .zip(key.as_bytes())
                .take_while(|(a, b)| a == b)
                .count();
            self.common = shared;
        } else {
            self.first_key = key.as_bytes().to_vec();
            self.common = key.len();
        }
        self.records.index.push(pos);
        Ok(pos)
    }

    /// The key of the record at `pos` (for error messages while loading).
    pub(crate) fn key_str(&self, pos: u32) -> String {
        self.records.key_str(pos)
    }

    /// Sorts the index (when the keys did not arrive sorted), keeps the last of duplicate keys
    /// and returns the finished store.
    pub(crate) fn finish(self) -> Records {
        let Records {
            mut chunks,
            mut index,
        } = self.records;
        if !self.sorted {
            sort_index(&chunks, &mut index, self.common);
            let mut kept = 0;
            for i in 0..index.len() {
                let (Some(&pos), next) = (index.get(i), index.get(i + 1)) else {
                    break;
                };
                let duplicate = next.is_some_and(|&n| key_at(&chunks, n) == key_at(&chunks, pos));
                if !duplicate {
                    if let Some(slot) = index.get_mut(kept) {
                        *slot = pos;
                    }
                    kept += 1;
                }
            }
            index.truncate(kept);
        }
        index.shrink_to_fit();
        // The last chunk, and one cut short by an oversized record, have room to give back.
        for chunk in &mut chunks {
            if chunk.capacity() - chunk.len() > 4096 {
                chunk.shrink_to_fit();
            }
        }
        chunks.shrink_to_fit();
        Records { chunks, index }
    }
}

/// Sorts positions by key, ties (duplicate keys) by position, so the last written sorts last.
/// Each position is paired with the 8 bytes of its key after the `common` bytes every key
/// shares, and compared on those first: sorting then touches the records only where two keys
/// agree on them, not at every comparison (most keys differ within 8 bytes of their common
/// prefix). The pairs take 16 bytes a key while the sort runs.
fn sort_index(chunks: &[Vec<u8>], index: &mut [u32], common: usize) {
    let tail = |pos: u32| key_at(chunks, pos).get(common..).unwrap_or_default();
    let mut pairs: Vec<(u64, u32)> = index
        .iter()
        .map(|&pos| {
            let mut prefix = [0u8; 8];
            for (slot, &byte) in prefix.iter_mut().zip(tail(pos)) {
                *slot = byte;
            }
            (u64::from_be_bytes(prefix), pos)
        })
        .collect();
    // Keys shorter than 8 bytes are padded with zeros, so equal prefixes may still hide
    // different keys ("a" and "a\0"): the whole tails decide.
    pairs.sort_unstable_by(|&(pa, a), &(pb, b)| {
        pa.cmp(&pb)
            .then_with(|| tail(a).cmp(tail(b)))
            .then_with(|| a.cmp(&b))
    });
    for (slot, (_, pos)) in index.iter_mut().zip(pairs) {
        *slot = pos;
    }
}

#[inline]
fn record_at(chunks: &[Vec<u8>], pos: u32) -> Option<&[u8]> {
    let chunk = chunks.get((pos >> CHUNK_BITS) as usize)?;
    chunk.get((pos & MASK) as usize..)
}

/// The key of the record at `pos` (empty if `pos` is not a record, which cannot happen).
#[inline]
fn key_at(chunks: &[Vec<u8>], pos: u32) -> &[u8] {
    fn key(chunks: &[Vec<u8>], pos: u32) -> Option<&[u8]> {
        let (len, rest) = read_varint(record_at(chunks, pos)?)?;
        rest.get(..usize::try_from(len).ok()?)
    }
    key(chunks, pos).unwrap_or_default()
}

/// Appends `value` as LEB128.
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value.to_le_bytes()[0] | 0x80);
        value >>= 7;
    }
    out.push(value.to_le_bytes()[0]);
}

/// Reads a LEB128 value; `None` when truncated or longer than 64 bits.
#[inline]
fn read_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    // Keys shorter than 128 bytes (nearly all) take one byte.
    if let Some((&byte, rest)) = bytes.split_first() {
        if byte < 0x80 {
            return Some((u64::from(byte), rest));
        }
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, bytes.get(i + 1..)?));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Varints round-trip at the edges of each byte length.
    #[test]
    fn varint_round_trips() {
        for v in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            write_varint(&mut buf, v);
            assert_eq!(read_varint(&buf), Some((v, &[][..])), "{v}");
        }
        assert_eq!(read_varint(&[0x80]), None);
    }

    /// Unsorted input is sorted, duplicates keep their last value, lookups find every kind.
    #[test]
    fn sorts_and_keeps_last_duplicate() {
        let mut b = RecordsBuilder::new();
        b.push("b", Value::Whole { url: 3 }).unwrap();
        b.push(
            "a",
            Value::Range {
                url: 1,
                offset: 10,
                length: u64::MAX,
            },
        )
        .unwrap();
        b.push("c", Value::Inline(b"first")).unwrap();
        b.push("c", Value::Inline(b"second")).unwrap();
        b.push("", Value::Inline(b"")).unwrap();
        let r = b.finish();
        assert_eq!(r.keys().collect::<Vec<_>>(), ["", "a", "b", "c"]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.get("c"), Some(Value::Inline(b"second")));
        assert_eq!(r.get(""), Some(Value::Inline(b"")));
        assert_eq!(r.get("b"), Some(Value::Whole { url: 3 }));
        assert_eq!(
            r.get("a"),
            Some(Value::Range {
                url: 1,
                offset: 10,
                length: u64::MAX
            })
        );
        assert_eq!(r.get("d"), None);
    }

    /// Keys in any order, sharing long prefixes or none, shorter than 8 bytes past the common
    /// prefix or padded look-alikes (`a` and `a\0`), duplicates: the index is in byte order and
    /// keeps each key's last value, as a plain sort of the keys says.
    #[test]
    fn prefix_sort_matches_a_plain_sort() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for shared in ["", "temp/", "a/very/long/shared/prefix/of/keys/"] {
            let mut b = RecordsBuilder::new();
            let mut want = std::collections::BTreeMap::new();
            for i in 0..5_000u32 {
                let len = next(14);
                let tail: String = (0..len)
                    .map(|_| char::from(b"\0a.b9Z/~"[usize::try_from(next(8)).unwrap()]))
                    .collect();
                let key = format!("{shared}{tail}");
                b.push(&key, Value::Whole { url: i }).unwrap();
                want.insert(key, i);
            }
            let r = b.finish();
            let keys: Vec<_> = r.keys().map(str::to_owned).collect();
            assert_eq!(keys, want.keys().cloned().collect::<Vec<_>>(), "{shared:?}");
            for (key, &url) in &want {
                assert_eq!(r.get(key), Some(Value::Whole { url }), "{key:?}");
            }
        }
    }

    /// Records fill 1 MiB chunks without straddling; big records get their own chunk.
    #[test]
    fn records_span_chunks() {
        let mut b = RecordsBuilder::new();
        let big = vec![7u8; CHUNK + 10];
        let mut keys = Vec::new();
        for i in 0..40_000u32 {
            let key = format!("k/{i:06}");
            if i == 20_000 {
                b.push(&key, Value::Inline(&big)).unwrap();
            } else {
                b.push(
                    &key,
                    Value::Range {
                        url: i % 5,
                        offset: u64::from(i) * 1000,
                        length: 1000,
                    },
                )
                .unwrap();
            }
            keys.push(key);
        }
        let r = b.finish();
        assert!(r.chunks.len() >= 3, "{}", r.chunks.len());
        assert_eq!(r.get("k/020000"), Some(Value::Inline(&big)));
        assert_eq!(
            r.get("k/039999"),
            Some(Value::Range {
                url: 39_999 % 5,
                offset: 39_999_000,
                length: 1000
            })
        );
        assert_eq!(r.keys().count(), keys.len());
        let used: usize = r.chunks.iter().map(Vec::len).sum();
        assert!(
            r.heap_bytes() >= used && r.heap_bytes() < used + 4096 * 4 + 40_000 * 4 + 200,
            "{}",
            r.heap_bytes()
        );
    }
}
