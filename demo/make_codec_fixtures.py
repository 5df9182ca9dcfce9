"""Regenerate the codec fixtures for the Rust unit tests (tests/fixtures/codecs/).

Usage::

    python demo/make_codec_fixtures.py [--out DIR]      # default: tests/fixtures/codecs

Each case is one chunk encoded by numcodecs itself (``{name}.bin``) and, in ``manifest.json``,
the ``.zarray`` describing it and the pattern of its items: ``i32`` (``(i // 7) * 3 + (i * i) % 5
- 50000`` as little-endian int32), ``f64`` (``(i % 1000) * 0.25``) or ``u8`` (``(i * 31) % 251``),
so the test computes the expected bytes without committing them. Deterministic for the same
numcodecs version (recorded in the manifest).

And one GRIB2 message per packing (``grib_{packing}.grib2``, a 19 × 36 grid written by eccodes
with ``gribdata.encode``; the complex one with missing points) with the values eccodes decodes
(``grib_{packing}.f64``, missing points NaN).
"""

from __future__ import annotations

import argparse
import json
from importlib import metadata
from pathlib import Path

import numcodecs
import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "codecs"


def pattern(kind: str, n: int) -> np.ndarray:
    i = np.arange(n, dtype=np.int64)
    if kind == "i32":
        return ((i // 7) * 3 + (i * i) % 5 - 50000).astype("<i4")
    if kind == "f64":
        return ((i % 1000) * 0.25).astype("<f8")
    return ((i * 31) % 251).astype("|u1")


def blosc(cname: str, shuffle: int, blocksize: int = 0) -> numcodecs.Blosc:
    return numcodecs.Blosc(cname=cname, clevel=5, shuffle=shuffle, blocksize=blocksize)


# name -> (pattern, items, compressor, filters)
CASES = {
    "blosc_lz4_shuffle": ("i32", 50_000, blosc("lz4", numcodecs.Blosc.SHUFFLE, 16384), []),
    "blosc_blosclz_shuffle": ("i32", 50_000, blosc("blosclz", numcodecs.Blosc.SHUFFLE, 16384), []),
    "blosc_lz4hc_f64": ("f64", 20_000, blosc("lz4hc", numcodecs.Blosc.SHUFFLE), []),
    "blosc_zstd_noshuffle": ("f64", 20_000, blosc("zstd", numcodecs.Blosc.NOSHUFFLE), []),
    "blosc_zlib_shuffle": ("i32", 30_001, blosc("zlib", numcodecs.Blosc.SHUFFLE, 8192), []),
    "blosc_blosclz_bytes": ("u8", 70_000, blosc("blosclz", numcodecs.Blosc.NOSHUFFLE), []),
    "blosc_tiny_copied": ("i32", 20, blosc("lz4", numcodecs.Blosc.SHUFFLE), []),
    "blosc_bitshuffle": ("i32", 5_000, blosc("lz4", numcodecs.Blosc.BITSHUFFLE), []),
    "zlib_shuffle_filter": ("i32", 10_000, None, [numcodecs.Shuffle(elementsize=4), numcodecs.Zlib(level=4)]),
    "gzip": ("f64", 5_000, numcodecs.GZip(level=5), []),
    "zstd_delta": ("i32", 10_000, numcodecs.Zstd(level=3), [numcodecs.Delta(dtype="<i4")]),
}

DTYPES = {"i32": "<i4", "f64": "<f8", "u8": "|u1"}


def write_grib(out: Path, manifest: dict) -> None:
    import sys

    sys.path.insert(0, str(HERE))
    import gribdata  # noqa: E402  (sibling module: eccodes)

    lat, lon = np.linspace(90.0, -90.0, 19), np.arange(0.0, 360.0, 10.0)
    manifest["eccodes"] = metadata.version("eccodes")
    manifest["grib"] = {}
    for seed, (packing, short_name, level_type, level, bits, missing) in enumerate(gribdata.FIELDS):
        values = gribdata.field(short_name, lat, lon, seed)
        if missing:
            values[3:6, 5:12] = np.nan
        message = gribdata.encode(packing, values, lat, lon, short_name, level_type, level, bits)
        decoded, keys = gribdata.eccodes_values(message)
        name = f"grib_{gribdata.TEMPLATES[packing].replace('.', '_')}"
        (out / f"{name}.grib2").write_bytes(message)
        decoded.tofile(out / f"{name}.f64")
        manifest["grib"][name] = {"packing": packing, "points": int(decoded.size),
                                  "missing": int(keys["numberOfMissing"])}
        print(f"  wrote {name}.grib2 ({len(message):,} bytes, {packing})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"numcodecs": metadata.version("numcodecs"), "cases": {}}
    for name, (kind, items, compressor, filters) in CASES.items():
        data = pattern(kind, items)
        encoded = data
        for f in filters:
            encoded = f.encode(encoded)
        if compressor is not None:
            encoded = compressor.encode(encoded)
        (out / f"{name}.bin").write_bytes(bytes(encoded))
        manifest["cases"][name] = {
            "pattern": kind,
            "zarray": {
                "shape": [items], "chunks": [items], "dtype": DTYPES[kind], "fill_value": 0,
                "order": "C", "zarr_format": 2,
                "compressor": compressor.get_config() if compressor is not None else None,
                "filters": [f.get_config() for f in filters] or None,
            },
        }
        print(f"  wrote {name}.bin ({len(bytes(encoded)):,} bytes for {data.nbytes:,})")
    write_grib(out, manifest)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
