//! The byte-level filters of numcodecs that the decoded view undoes: `shuffle` (HDF5's and
//! numcodecs' byte transposition) and `delta` (a cumulative sum of items).

use crate::codec::dtype::{ByteOrder, Dtype, Kind};
use crate::codec::CodecError;

/// Undoes numcodecs' `Shuffle(elementsize)`: the encoded bytes hold every item's first byte,
/// then every item's second byte, ...; a tail shorter than an item is stored as it is.
#[must_use]
pub fn unshuffle(encoded: &[u8], elementsize: usize) -> Vec<u8> {
    if elementsize <= 1 {
        return encoded.to_vec();
    }
    let count = encoded.len() / elementsize;
    let mut out = vec![0u8; encoded.len()];
    for byte in 0..elementsize {
        let plane = &encoded[byte * count..(byte + 1) * count];
        for (item, &b) in plane.iter().enumerate() {
            out[item * elementsize + byte] = b;
        }
    }
    let tail = count * elementsize;
    out[tail..].copy_from_slice(&encoded[tail..]);
    out
}

/// Undoes numcodecs' `Delta(dtype, astype)`: items of `astype` summed cumulatively into items
/// of `dtype` (integer sums wrap, as numpy's do; float sums round to the item's precision at
/// every step).
///
/// # Errors
/// [`CodecError::Unsupported`] when either type is not an integer or float;
/// [`CodecError::Corrupt`] when the bytes are not a whole number of items.
pub fn undelta(encoded: &[u8], dtype: &Dtype, astype: &Dtype) -> Result<Vec<u8>, CodecError> {
    for t in [dtype, astype] {
        if t.kind == Kind::Other {
            return Err(CodecError::Unsupported(format!(
                "delta over {} items",
                t.little_endian()
            )));
        }
    }
    if !encoded.len().is_multiple_of(astype.itemsize) {
        return Err(CodecError::Corrupt(format!(
            "delta: {} bytes are not whole {}-byte items",
            encoded.len(),
            astype.itemsize
        )));
    }
    if let Some(out) = undelta_same_integers(encoded, dtype, astype) {
        return Ok(out);
    }
    let items = encoded.len() / astype.itemsize;
    let mut out = Vec::with_capacity(items * dtype.itemsize);
    if dtype.kind == Kind::Float {
        let mut sum = 0f64;
        for item in encoded.chunks_exact(astype.itemsize) {
            sum = round_to(dtype, sum + read_f64(item, astype));
            write_f64(&mut out, sum, dtype);
        }
    } else {
        let bits = 8 * dtype.itemsize;
        let mask: u128 = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let mut sum: u128 = 0;
        for item in encoded.chunks_exact(astype.itemsize) {
            // Two's complement: adding the sign-extended value modulo 2^bits is the wrapping sum.
            #[allow(clippy::cast_sign_loss)]
            let value = read_i128(item, astype) as u128;
            sum = sum.wrapping_add(value) & mask;
            write_uint(&mut out, sum, dtype);
        }
    }
    Ok(out)
}

/// The common case, fast: integers summed into the same little-endian type (numcodecs'
/// `Delta(dtype=x)`), in place of a copy. `None` for any other pair.
fn undelta_same_integers(encoded: &[u8], dtype: &Dtype, astype: &Dtype) -> Option<Vec<u8>> {
    let integer = matches!(dtype.kind, Kind::Signed | Kind::Unsigned);
    let same = dtype.itemsize == astype.itemsize && dtype.kind == astype.kind;
    let little = |t: &Dtype| t.order != ByteOrder::Big || t.itemsize == 1;
    if !(integer && same && little(dtype) && little(astype)) {
        return None;
    }
    let mut out = encoded.to_vec();
    macro_rules! cumulative {
        ($t:ty, $n:literal) => {{
            let mut sum: $t = 0;
            for item in out.chunks_exact_mut($n) {
                let mut bytes = [0u8; $n];
                bytes.copy_from_slice(item);
                sum = sum.wrapping_add(<$t>::from_le_bytes(bytes));
                item.copy_from_slice(&sum.to_le_bytes());
            }
        }};
    }
    // Unsigned arithmetic: two's complement makes the wrapping sum of signed items the same.
    match dtype.itemsize {
        1 => cumulative!(u8, 1),
        2 => cumulative!(u16, 2),
        4 => cumulative!(u32, 4),
        8 => cumulative!(u64, 8),
        _ => return None,
    }
    Some(out)
}

/// An item's bytes in little-endian order (a copy when the type is big-endian).
fn le_bytes(item: &[u8], t: &Dtype) -> [u8; 8] {
    let mut bytes = [0u8; 8];
    bytes[..item.len()].copy_from_slice(item);
    if t.order == ByteOrder::Big {
        bytes[..item.len()].reverse();
    }
    bytes
}

fn read_i128(item: &[u8], t: &Dtype) -> i128 {
    let bytes = le_bytes(item, t);
    let raw = u64::from_le_bytes(bytes);
    match t.kind {
        Kind::Signed => {
            let shift = 64 - 8 * u32::try_from(item.len()).unwrap_or(8);
            #[allow(clippy::cast_possible_wrap)]
            let signed = ((raw << shift) as i64) >> shift;
            i128::from(signed)
        }
        Kind::Float => {
            #[allow(clippy::cast_possible_truncation)]
            let v = read_f64(item, t) as i128;
            v
        }
        _ => i128::from(raw),
    }
}

fn read_f64(item: &[u8], t: &Dtype) -> f64 {
    let bytes = le_bytes(item, t);
    match (t.kind, item.len()) {
        (Kind::Float, 8) => f64::from_le_bytes(bytes),
        (Kind::Float, 4) => f64::from(f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
        (Kind::Float, _) => f16_to_f64(u16::from_le_bytes([bytes[0], bytes[1]])),
        _ => {
            #[allow(clippy::cast_precision_loss)]
            let v = read_i128(item, t) as f64;
            v
        }
    }
}

/// `value` rounded to the precision of `t`'s items.
fn round_to(t: &Dtype, value: f64) -> f64 {
    match t.itemsize {
        #[allow(clippy::cast_possible_truncation)]
        4 => f64::from(value as f32),
        2 => f16_to_f64(f64_to_f16(value)),
        _ => value,
    }
}

fn write_f64(out: &mut Vec<u8>, value: f64, t: &Dtype) {
    let start = out.len();
    match t.itemsize {
        #[allow(clippy::cast_possible_truncation)]
        4 => out.extend_from_slice(&(value as f32).to_le_bytes()),
        2 => out.extend_from_slice(&f64_to_f16(value).to_le_bytes()),
        _ => out.extend_from_slice(&value.to_le_bytes()),
    }
    if t.order == ByteOrder::Big {
        out[start..].reverse();
    }
}

fn write_uint(out: &mut Vec<u8>, value: u128, t: &Dtype) {
    let start = out.len();
    out.extend_from_slice(&value.to_le_bytes()[..t.itemsize]);
    if t.order == ByteOrder::Big {
        out[start..].reverse();
    }
}

/// IEEE half to double.
fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Double to IEEE half, rounding to nearest.
fn f64_to_f16(value: f64) -> u16 {
    if value.is_nan() {
        return 0x7e00;
    }
    let sign: u16 = if value.is_sign_negative() { 0x8000 } else { 0 };
    let magnitude = value.abs();
    if magnitude >= 65520.0 {
        return sign | 0x7c00;
    }
    if magnitude < 2f64.powi(-14) {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let frac = (magnitude / 2f64.powi(-24)).round_ties_even() as u16;
        return sign | frac;
    }
    #[allow(clippy::cast_possible_truncation)]
    let exp = magnitude.log2().floor() as i32;
    let mut exp = exp;
    let mut frac = (magnitude / 2f64.powi(exp) - 1.0) * 1024.0;
    frac = frac.round_ties_even();
    if frac >= 1024.0 {
        frac = 0.0;
        exp += 1;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bits = (((exp + 15) as u16) << 10) | frac as u16;
    sign | bits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shuffle(plain: &[u8], size: usize) -> Vec<u8> {
        let count = plain.len() / size;
        let mut out = Vec::new();
        for byte in 0..size {
            out.extend((0..count).map(|i| plain[i * size + byte]));
        }
        out.extend_from_slice(&plain[count * size..]);
        out
    }

    #[test]
    fn unshuffle_inverts_shuffle_with_a_tail() {
        let plain: Vec<u8> = (0..=22).collect();
        for size in [1, 2, 4, 8] {
            assert_eq!(unshuffle(&shuffle(&plain, size), size), plain, "{size}");
        }
        // numcodecs.Shuffle(elementsize=4).encode(np.arange(3, dtype="<u4")) (checked with numcodecs)
        let encoded = [0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(unshuffle(&encoded, 4), [0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn undelta_sums_and_wraps_like_numpy() {
        let i2 = Dtype::parse("<i2").unwrap();
        let i1 = Dtype::parse("|i1").unwrap();
        // Delta(dtype="<i2", astype="|i1") of [100, 101, 99, 227].
        let decoded = undelta(&[100, 1, 0xfe, 0x80], &i2, &i1).unwrap();
        let values: Vec<i16> = decoded
            .chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(values, [100, 101, 99, -29]);
        let u1 = Dtype::parse("|u1").unwrap();
        assert_eq!(undelta(&[250, 10], &u1, &u1).unwrap(), [250, 4]);
        let f4 = Dtype::parse(">f4").unwrap();
        let mut enc = Vec::new();
        for v in [1.5f32, 0.25, -2.0] {
            enc.extend_from_slice(&v.to_be_bytes());
        }
        let out = undelta(&enc, &f4, &f4).unwrap();
        let values: Vec<f32> = out
            .chunks(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values, [1.5, 1.75, -0.25]);
    }

    /// The fast path (same little-endian integer type) sums as the general one does.
    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        let encoded: Vec<u8> = (0..4000u32)
            .map(|i| u8::try_from(i * 7919 % 256).unwrap())
            .collect();
        for text in ["|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8"] {
            let t = Dtype::parse(text).unwrap();
            let fast = undelta_same_integers(&encoded, &t, &t).unwrap();
            // The same sums through the general loop (a big-endian twin, swapped back).
            let big = Dtype::parse(&text.replace('<', ">")).unwrap();
            let mut swapped = encoded.clone();
            crate::codec::dtype::swap_bytes(&mut swapped, t.itemsize);
            let mut general = undelta(&swapped, &big, &big).unwrap();
            crate::codec::dtype::swap_bytes(&mut general, t.itemsize);
            assert_eq!(fast, general, "{text}");
        }
    }

    #[test]
    fn undelta_refuses_partial_items_and_strings() {
        let i2 = Dtype::parse("<i2").unwrap();
        assert!(matches!(
            undelta(&[1, 2, 3], &i2, &i2),
            Err(CodecError::Corrupt(_))
        ));
        let s = Dtype::parse("|S2").unwrap();
        assert!(matches!(
            undelta(&[1, 2], &s, &s),
            Err(CodecError::Unsupported(_))
        ));
    }

    #[test]
    fn halves_round_trip() {
        for v in [
            0.0,
            1.0,
            -2.5,
            65504.0,
            2f64.powi(-14),
            2f64.powi(-24),
            3.0 * 2f64.powi(-20),
        ] {
            assert_eq!(f16_to_f64(f64_to_f16(v)).to_bits(), v.to_bits(), "{v}");
        }
    }
}
