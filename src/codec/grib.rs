//! kerchunk's `grib` filter (its `GRIBCodec`): a chunk is one whole GRIB2 message, decoded by
//! the `grib` crate (grib-rs) into the grid's values in scan order, missing points (bitmap)
//! NaN, as eccodes' `values` are. Simple (5.0), complex (5.2), complex with spatial
//! differencing (5.3), JPEG 2000 (5.40), PNG (5.41) and CCSDS (5.42) packing; values equal to
//! eccodes' missing value (9999) are NaN too, as kerchunk's codec makes them.
//!
//! The message is walked before the crate sees it: every section length inside the message,
//! the sections in GRIB2 order, the points no more than the chunk has, the embedded image
//! headers no larger than the grid. grib 0.20 allocates a section's declared length before
//! reading it and panics on some malformed templates (an order of spatial differencing of 255);
//! in wasm a panic is an abort, so nothing reaches it unchecked.

use crate::codec::CodecError;

/// eccodes' `missingValue` for GRIB2 (not stored in a message): kerchunk's `GRIBCodec` turns
/// every value equal to it into NaN (`data[data == missingValue] = nan`), and so does this.
pub const ECCODES_MISSING_VALUE: f64 = 9999.0;

fn corrupt(why: impl std::fmt::Display) -> CodecError {
    CodecError::Corrupt(format!("grib: {why}"))
}

/// Decodes one GRIB2 message into exactly `points` values (the chunk's items), in scan order.
///
/// # Errors
/// [`CodecError::Corrupt`] for a malformed message, one whose length field disagrees with the
/// bytes given (a reference of the wrong length), or one of another number of points;
/// [`CodecError::Unsupported`] for a packing or grid the crate does not decode.
pub fn decode(message: &[u8], points: usize) -> Result<Vec<f64>, CodecError> {
    precheck(message, points)?;
    let grib2 = grib::from_bytes(message).map_err(|e| corrupt(format!("not GRIB2: {e}")))?;
    let (_, submessage) = grib2
        .iter()
        .next()
        .ok_or_else(|| corrupt("the message has no field"))?;
    let (ni, nj) = submessage
        .grid_shape()
        .map_err(|e| CodecError::Unsupported(format!("grib: unsupported grid: {e}")))?;
    if ni.checked_mul(nj) != Some(points) {
        return Err(corrupt(format!(
            "a {ni} × {nj} grid, but the chunk has {points} items"
        )));
    }
    let decoder = grib::Grib2SubmessageDecoder::from(submessage)
        .map_err(|e| CodecError::Unsupported(format!("grib: {e}")))?;
    let values = decoder
        .dispatch()
        .map_err(|e| corrupt(format!("unpacking failed: {e}")))?;
    let mut out = Vec::with_capacity(points);
    // As kerchunk's codec: every value equal to eccodes' missingValue is NaN, bitmap or not.
    out.extend(values.take(points + 1).map(|v| {
        let v = f64::from(v);
        if v == ECCODES_MISSING_VALUE {
            f64::NAN
        } else {
            v
        }
    }));
    if out.len() != points {
        return Err(corrupt(format!(
            "{} values unpacked for {points} grid points",
            out.len()
        )));
    }
    Ok(out)
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be_len(bytes: &[u8], at: usize) -> Result<usize, CodecError> {
    be_u32(bytes, at)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| corrupt(format!("truncated at byte {at}")))
}

/// What the walk of the sections found.
#[derive(Default)]
struct Sections<'a> {
    points: Option<u64>,
    encoded_values: Option<u64>,
    template: Option<u16>,
    data: Option<&'a [u8]>,
    seen: [bool; 8],
}

/// The checks made before the crate reads the message (see the module documentation).
fn precheck(m: &[u8], points: usize) -> Result<(), CodecError> {
    if m.len() < 20 || &m[0..4] != b"GRIB" {
        return Err(corrupt("not a GRIB message (no 'GRIB' at its start)"));
    }
    if m[7] != 2 {
        return Err(CodecError::Unsupported(format!(
            "grib: edition {} (the view decodes GRIB2)",
            m[7]
        )));
    }
    let total = u64::from_be_bytes([m[8], m[9], m[10], m[11], m[12], m[13], m[14], m[15]]);
    if total != m.len() as u64 {
        return Err(corrupt(format!(
            "the message says it has {total} bytes, its reference {}",
            m.len()
        )));
    }
    if &m[m.len() - 4..] != b"7777" {
        return Err(corrupt("the message does not end with '7777'"));
    }
    let found = walk(m)?;
    let missing = [1, 3, 4, 5, 6, 7].into_iter().find(|&s| !found.seen[s]);
    if let Some(section) = missing {
        return Err(corrupt(format!("no section {section}")));
    }
    let declared = found.points.unwrap_or(0);
    if declared != points as u64 {
        return Err(corrupt(format!(
            "{declared} grid points, but the chunk has {points} items"
        )));
    }
    if found.encoded_values.unwrap_or(u64::MAX) > declared {
        return Err(corrupt("more packed values than grid points"));
    }
    let data = found.data.unwrap_or(&[]);
    match found.template {
        Some(40) if !data.is_empty() => check_jpeg2000(data, declared),
        Some(41) if !data.is_empty() => check_png(data, declared),
        _ => Ok(()),
    }
}

/// Walks sections 1 to 7 (repeats restart at 2, 3 or 4), each inside the message.
fn walk(m: &[u8]) -> Result<Sections<'_>, CodecError> {
    let end = m.len() - 4;
    let (mut at, mut last) = (16usize, 0u8);
    let mut found = Sections::default();
    while at < end {
        let len = be_len(m, at)?;
        let number = *m
            .get(at + 4)
            .ok_or_else(|| corrupt("a truncated section"))?;
        // The least each section holds (what the crate reads of it).
        let minimum = match number {
            1 => 21,
            2 | 7 => 5,
            3 => 14,
            4 => 9,
            5 => 11,
            6 => 6,
            _ => return Err(corrupt(format!("section number {number} at byte {at}"))),
        };
        if len < minimum || len > end - at {
            return Err(corrupt(format!(
                "section {number} at byte {at} says it has {len} bytes"
            )));
        }
        let in_order = match number {
            1 => last == 0,
            2 => matches!(last, 1 | 7),
            3 => matches!(last, 1 | 2 | 7),
            n => last == n - 1 || (n == 4 && last == 7),
        };
        if !in_order {
            return Err(corrupt(format!("section {number} after section {last}")));
        }
        found.seen[usize::from(number)] = true;
        let section = &m[at..at + len];
        match number {
            3 if found.points.is_none() => found.points = be_u32(section, 6).map(u64::from),
            5 if found.template.is_none() => {
                found.encoded_values = be_u32(section, 5).map(u64::from);
                let template = u16::from_be_bytes([section[9], section[10]]);
                found.template = Some(template);
                check_spatial_differencing(section, template)?;
            }
            7 if found.data.is_none() => found.data = Some(&section[5..]),
            _ => {}
        }
        last = number;
        at += len;
    }
    if at != end || last != 7 {
        return Err(corrupt(
            "the sections do not end with section 7 before '7777'",
        ));
    }
    Ok(found)
}

/// Template 5.3: the order of spatial differencing (octet 48) is 1 or 2 and its extra
/// descriptors take 1 to 4 octets (octet 49); grib 0.20 panics on others.
fn check_spatial_differencing(section: &[u8], template: u16) -> Result<(), CodecError> {
    if template != 3 {
        return Ok(());
    }
    match (section.get(47), section.get(48)) {
        (Some(order @ 1..=2), Some(1..=4)) if section.len() >= 49 => {
            let _ = order;
            Ok(())
        }
        _ => Err(corrupt(
            "template 5.3 with an invalid order of spatial differencing",
        )),
    }
}

/// A JPEG 2000 codestream (SOC, then SIZ): one component, an image no larger than the grid,
/// a tile count that fits in it (the decoder allocates per tile from SIZ).
fn check_jpeg2000(p: &[u8], points: u64) -> Result<(), CodecError> {
    if p.len() < 42 || p[0..4] != [0xFF, 0x4F, 0xFF, 0x51] {
        return Err(corrupt("JPEG 2000 data that is not a codestream"));
    }
    let at = |o: usize| be_u32(p, o).map_or(0, u64::from);
    let (width, height, left, top) = (at(8), at(12), at(16), at(20));
    let (tile_width, tile_height, tiles_left, tiles_top) = (at(24), at(28), at(32), at(36));
    let components = u16::from_be_bytes([p[40], p[41]]);
    let plausible = components == 1
        && width > left
        && height > top
        && tile_width > 0
        && tile_height > 0
        && tiles_left <= left
        && tiles_top <= top;
    if !plausible {
        return Err(corrupt("an implausible JPEG 2000 image header"));
    }
    if (width - left).saturating_mul(height - top) > points {
        return Err(corrupt("a JPEG 2000 image larger than the grid"));
    }
    let tiles = (width - tiles_left)
        .div_ceil(tile_width)
        .saturating_mul((height - tiles_top).div_ceil(tile_height));
    if tiles > 65_535 || tiles > points {
        return Err(corrupt(format!("{tiles} JPEG 2000 tiles")));
    }
    Ok(())
}

/// A PNG image (signature, IHDR) no larger than the grid.
fn check_png(p: &[u8], points: u64) -> Result<(), CodecError> {
    if p.len() < 29 || p[0..8] != *b"\x89PNG\r\n\x1a\n" || p[12..16] != *b"IHDR" {
        return Err(corrupt("PNG data without a PNG header"));
    }
    let (width, height) = (
        be_u32(p, 16).map_or(0, u64::from),
        be_u32(p, 20).map_or(0, u64::from),
    );
    if width == 0 || height == 0 || width.saturating_mul(height) > points {
        return Err(corrupt("a PNG image that does not fit the grid"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codecs")
    }

    fn eccodes_values(name: &str) -> Vec<f64> {
        std::fs::read(fixtures().join(format!("{name}.f64")))
            .unwrap()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Every packing eccodes writes decodes to eccodes' values: missing points NaN where
    /// eccodes has them, every other value within f32 precision (grib-rs unpacks in f32).
    #[test]
    fn every_packing_decodes_as_eccodes_does() {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap())
                .unwrap();
        let cases = manifest["grib"].as_object().unwrap();
        assert_eq!(cases.len(), 6);
        for (name, case) in cases {
            let message = std::fs::read(fixtures().join(format!("{name}.grib2"))).unwrap();
            let want = eccodes_values(name);
            let points = usize::try_from(case["points"].as_u64().unwrap()).unwrap();
            let got = decode(&message, points).unwrap();
            assert_eq!(got.len(), want.len(), "{name}");
            let missing = got.iter().filter(|v| v.is_nan()).count();
            assert_eq!(missing as u64, case["missing"].as_u64().unwrap(), "{name}");
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let close = (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-6 * w.abs().max(1.0);
                assert!(close, "{name}[{i}]: {g} vs eccodes {w}");
            }
        }
    }

    /// A reference of the wrong length, a truncated message, a chunk of another size, hostile
    /// section lengths: errors naming what is wrong, never a panic.
    #[test]
    fn hostile_messages_are_errors() {
        let message = std::fs::read(fixtures().join("grib_5_3.grib2")).unwrap();
        let points = 19 * 36;
        let wrong_length = decode(&message[..message.len() - 10], points).unwrap_err();
        assert!(
            wrong_length.to_string().contains("says it has"),
            "{wrong_length}"
        );
        let longer = [message.as_slice(), b"GRIB"].concat();
        assert!(decode(&longer, points).is_err());
        let other_size = decode(&message, points + 1).unwrap_err();
        assert!(
            other_size.to_string().contains("grid points"),
            "{other_size}"
        );
        assert!(decode(b"GRIB", points).is_err());
        assert!(decode(&[0u8; 64], points).is_err());
        // In every packing, every byte of the sections set to 0x00 and 0xff in turn:
        // errors or values, never a panic.
        for template in ["5_0", "5_2", "5_3", "5_40", "5_41", "5_42"] {
            let message = std::fs::read(fixtures().join(format!("grib_{template}.grib2"))).unwrap();
            for at in 16..message.len() - 4 {
                for byte in [0x00, 0xff] {
                    let mut bad = message.clone();
                    bad[at] = byte;
                    let _ = decode(&bad, points);
                }
            }
        }
        for cut in 0..message.len() {
            assert!(decode(&message[..cut], points).is_err(), "cut at {cut}");
        }
    }
}
