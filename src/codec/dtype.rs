//! Zarr v2 data types (`"<f4"`, `">i2"`, `"|u1"`, `"<M8[ns]"`, `"<U12"`): the item size, the
//! byte order and the unit a byte swap works on; what the decoded view needs to know to emit
//! plain little-endian items.

use crate::codec::CodecError;

/// The byte order of a dtype's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// `<`
    Little,
    /// `>`
    Big,
    /// `|`: single bytes (or byte strings), no order.
    NotApplicable,
}

/// What kind of number an item is, for the codecs that compute on items (delta).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `i`: signed integer.
    Signed,
    /// `u`: unsigned integer; `b`: boolean.
    Unsigned,
    /// `f`: IEEE float.
    Float,
    /// Anything else (`c`, `M`, `m`, `S`, `U`, `V`): bytes only.
    Other,
}

/// A parsed Zarr v2 simple dtype.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtype {
    /// Its byte order.
    pub order: ByteOrder,
    /// The number kind.
    pub kind: Kind,
    /// Bytes per item.
    pub itemsize: usize,
    /// Bytes per swapped unit (the item, or a part of it: a complex half, a UCS-4 character).
    pub swap_unit: usize,
    /// The dtype text after the byte order character (`f4`, `M8[ns]`).
    body: String,
}

/// The largest item accepted (a `<U` string of 1,024 characters).
const MAX_ITEMSIZE: usize = 4096;

impl Dtype {
    /// Parses a dtype string.
    ///
    /// # Errors
    /// [`CodecError::Unsupported`] for structured, object or malformed dtypes.
    pub fn parse(text: &str) -> Result<Self, CodecError> {
        let unsupported =
            |why: &str| Err(CodecError::Unsupported(format!("dtype {text:?}: {why}")));
        let mut chars = text.chars();
        let order = match chars.next() {
            Some('<') => ByteOrder::Little,
            Some('>') => ByteOrder::Big,
            Some('|') => ByteOrder::NotApplicable,
            _ => return unsupported("no byte order character (<, > or |)"),
        };
        let body = chars.as_str();
        let kind_char = body.chars().next().unwrap_or(' ');
        let digits: String = body[kind_char.len_utf8().min(body.len())..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let rest = &body[kind_char.len_utf8().min(body.len()) + digits.len()..];
        if kind_char == 'O' {
            return unsupported("object items have no fixed size");
        }
        let Ok(count) = digits.parse::<usize>() else {
            return unsupported("no item size");
        };
        let unit_ok = rest.is_empty()
            || (matches!(kind_char, 'M' | 'm')
                && rest.starts_with('[')
                && rest.ends_with(']')
                && rest[1..rest.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric()));
        if !unit_ok {
            return unsupported("unexpected text after the item size");
        }
        let (kind, itemsize, swap_unit) = match kind_char {
            'i' => (Kind::Signed, count, count),
            'u' | 'b' => (Kind::Unsigned, count, count),
            'f' => (Kind::Float, count, count),
            'c' => (Kind::Other, count, count / 2),
            'M' | 'm' => (Kind::Other, count, count),
            'S' | 'V' => (Kind::Other, count, 1),
            'U' => (Kind::Other, count.saturating_mul(4), 4),
            _ => return unsupported("unknown kind"),
        };
        let sizes_ok = match kind {
            Kind::Signed | Kind::Unsigned => matches!(itemsize, 1 | 2 | 4 | 8),
            Kind::Float => matches!(itemsize, 2 | 4 | 8),
            Kind::Other => (1..=MAX_ITEMSIZE).contains(&itemsize) && swap_unit >= 1,
        };
        if !sizes_ok {
            return unsupported("unsupported item size");
        }
        Ok(Self {
            order,
            kind,
            itemsize,
            swap_unit,
            body: body.to_owned(),
        })
    }

    /// The same dtype with little-endian items (single-byte types keep `|`).
    #[must_use]
    pub fn little_endian(&self) -> String {
        match self.order {
            ByteOrder::NotApplicable => format!("|{}", self.body),
            _ if self.swap_unit == 1 => format!("|{}", self.body),
            _ => format!("<{}", self.body),
        }
    }

    /// Whether items must be byte-swapped to become little-endian.
    #[must_use]
    pub fn needs_swap(&self) -> bool {
        self.order == ByteOrder::Big && self.swap_unit > 1
    }
}

/// Reverses the bytes of every `unit`-byte group of `bytes` (a trailing partial group is kept).
pub fn swap_bytes(bytes: &mut [u8], unit: usize) {
    if unit > 1 {
        for group in bytes.chunks_exact_mut(unit) {
            group.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_parse_with_size_order_and_unit() {
        for (text, itemsize, unit, le) in [
            ("<f4", 4, 4, "<f4"),
            (">f8", 8, 8, "<f8"),
            (">i2", 2, 2, "<i2"),
            ("|u1", 1, 1, "|u1"),
            ("<i1", 1, 1, "|i1"),
            ("|b1", 1, 1, "|b1"),
            (">c8", 8, 4, "<c8"),
            ("<M8[ns]", 8, 8, "<M8[ns]"),
            (">U3", 12, 4, "<U3"),
            ("|S5", 5, 1, "|S5"),
        ] {
            let dtype = Dtype::parse(text).unwrap();
            assert_eq!(
                (dtype.itemsize, dtype.swap_unit),
                (itemsize, unit),
                "{text}"
            );
            assert_eq!(dtype.little_endian(), le, "{text}");
        }
        assert!(Dtype::parse(">f4").unwrap().needs_swap());
        assert!(!Dtype::parse(">u1").unwrap().needs_swap());
    }

    #[test]
    fn hostile_dtypes_are_refused() {
        for text in [
            "",
            "f4",
            "<",
            "<f",
            "<f3",
            "<i16",
            "|O",
            "<f4x",
            "<M8[n s]",
            "<U99999999999999999999",
            "<Ué",
        ] {
            assert!(
                matches!(Dtype::parse(text), Err(CodecError::Unsupported(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn swapping_reverses_each_unit() {
        let mut bytes = vec![1, 2, 3, 4, 5, 6, 7];
        swap_bytes(&mut bytes, 2);
        assert_eq!(bytes, [2, 1, 4, 3, 6, 5, 7]);
    }
}
