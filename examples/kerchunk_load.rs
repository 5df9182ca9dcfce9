//! Measures loading kerchunk references: JSON size, load time, lookup time, memory held and peak
//! memory during the load, for 10k, 100k and 1M byte-range references, plus a `gen` pattern of
//! 1M keys. Prints a markdown table.
//!
//! ```sh
//! cargo run --release --example kerchunk_load
//! ```
//!
//! The input is synthetic but shaped like kerchunk's output: a version-1 file with a few metadata
//! keys and one 3-d variable `temp` chunked into `temp/a.b.c` keys, written in chunk order (so not
//! sorted as strings), pointing into 8 `NetCDF` files with increasing offsets.

#![allow(clippy::cast_precision_loss)] // byte counts and durations shown as floats

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use peak_alloc::PeakAlloc;
use zarr_edge_cache::source::kerchunk::{LoadOptions, Reference, References};

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

const FILES: usize = 8;
const LOOKUPS: usize = 200_000;

/// Chunk-grid shape for `n` chunks: `n / 10_000` × 100 × 100 (at least 1 × 100 × 100).
fn grid(n: usize) -> (usize, usize, usize) {
    ((n / 10_000).max(1), 100, 100)
}

fn synthesize(n: usize) -> String {
    let (na, nb, nc) = grid(n);
    let mut out = String::with_capacity(n * 70 + 1024);
    out.push_str(r#"{"version": 1, "refs": {".zgroup": "{\"zarr_format\":2}", "#);
    let _ = write!(
        out,
        r#""temp/.zarray": "{{\"shape\":[{},{},{}],\"chunks\":[1,10,10],\"dtype\":\"<f4\",\"compressor\":{{\"id\":\"zlib\",\"level\":4}},\"fill_value\":null,\"filters\":null,\"order\":\"C\",\"zarr_format\":2}}", "temp/.zattrs": "{{\"_ARRAY_DIMENSIONS\":[\"time\",\"lat\",\"lon\"],\"units\":\"K\"}}""#,
        na,
        nb * 10,
        nc * 10
    );
    let per_file = n.div_ceil(FILES);
    let mut offset = 4096u64;
    let mut i = 0;
    'outer: for a in 0..na {
        for b in 0..nb {
            for c in 0..nc {
                if i == n {
                    break 'outer;
                }
                let file = i / per_file;
                if i % per_file == 0 {
                    offset = 4096;
                }
                let length = 20_000 + (i * 7919) % 30_000;
                let _ = write!(
                    out,
                    r#", "temp/{a}.{b}.{c}": ["https://data.example.org/era5/temp_{file:02}.nc", {offset}, {length}]"#
                );
                offset += length as u64;
                i += 1;
            }
        }
    }
    out.push_str("}}");
    out
}

fn gen_json(n: usize) -> String {
    let (na, nb, nc) = grid(n);
    format!(
        r#"{{"version": 1, "templates": {{"u": "https://data.example.org/era5"}},
            "gen": [{{"key": "temp/{{{{a}}}}.{{{{b}}}}.{{{{c}}}}",
                      "url": "{{{{u}}}}/temp_{{{{ a // {per} }}}}.nc",
                      "offset": "{{{{ 4096 + ((a * {nb} + b) * {nc} + c) * 50000 }}}}",
                      "length": "50000",
                      "dimensions": {{"a": {{"stop": {na}}}, "b": {{"stop": {nb}}}, "c": {{"stop": {nc}}}}}}}],
            "refs": {{".zgroup": "{{\"zarr_format\":2}}"}}}}"#,
        per = na.div_ceil(FILES).max(1)
    )
}

/// A small deterministic generator for lookup keys.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).unwrap_or(0)
    }
}

struct Row {
    label: String,
    json_bytes: usize,
    load: Duration,
    lookup: Duration,
    held: usize,
    retained: usize,
    peak: usize,
    refs: usize,
}

fn measure(label: &str, json: &str, n: usize) -> Row {
    // Best of three loads for time; memory from the first.
    let mut best = Duration::MAX;
    let mut first: Option<(References, usize, usize)> = None;
    for _ in 0..3 {
        let before = ALLOCATOR.current_usage();
        ALLOCATOR.reset_peak_usage();
        let start = Instant::now();
        let refs = References::from_json(json.as_bytes(), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        best = best.min(start.elapsed());
        let peak = ALLOCATOR.peak_usage() - before;
        let retained = ALLOCATOR.current_usage() - before;
        if first.is_none() {
            first = Some((refs, peak, retained));
        }
    }
    let Some((refs, peak, retained)) = first else {
        unreachable!()
    };
    let (na, nb, nc) = grid(n);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let keys: Vec<String> = (0..LOOKUPS)
        .map(|_| {
            let i = rng.below(n);
            let (time, lat, lon) = (i / (nb * nc), (i / nc) % nb, i % nc);
            assert!(time < na);
            format!("temp/{time}.{lat}.{lon}")
        })
        .collect();
    let start = Instant::now();
    let mut found = 0u64;
    for key in &keys {
        if let Some(Reference::Range { length, .. }) = refs.get(key) {
            found += length.min(1);
        }
    }
    let lookup = start.elapsed() / u32::try_from(LOOKUPS).unwrap_or(1);
    assert_eq!(found, LOOKUPS as u64, "{label}: every key resolves");
    Row {
        label: label.to_owned(),
        json_bytes: json.len(),
        load: best,
        lookup,
        held: refs.heap_bytes(),
        retained,
        peak,
        refs: n,
    }
}

fn mb(bytes: usize) -> String {
    if bytes < 100_000 {
        format!("{:.1} kB", bytes as f64 / 1e3)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

fn main() {
    let mut rows = Vec::new();
    for n in [10_000, 100_000, 1_000_000] {
        let json = synthesize(n);
        rows.push(measure(&format!("{n} refs"), &json, n));
    }
    let n = 1_000_000;
    // Version 0 (no `version` member): the version scan reads the whole document first.
    let v1 = synthesize(n);
    let v0 = format!(
        "{{{}",
        &v1[r#"{"version": 1, "refs": {"#.len()..v1.len() - 1]
    );
    drop(v1);
    rows.push(measure(&format!("{n} refs, version 0"), &v0, n));
    drop(v0);
    rows.push(measure(&format!("gen, {n} keys"), &gen_json(n), n));

    println!("| set | JSON | load | lookup | held (heap_bytes) | retained (allocator) | bytes/ref | peak during load |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {:.2} ms | {:.2} µs | {} | {} | {:.1} | {} |",
            r.label,
            mb(r.json_bytes),
            r.load.as_secs_f64() * 1e3,
            r.lookup.as_secs_f64() * 1e6,
            mb(r.held),
            mb(r.retained),
            r.held as f64 / r.refs as f64,
            mb(r.peak),
        );
    }
}
