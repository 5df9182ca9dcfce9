"""Inputs of the codec CPU benchmark (bench/codec-cpu): one chunk per codec chain, encoded by
the libraries that write real archives (numcodecs for Zarr and kerchunk's netCDF4 form, eccodes
for GRIB2), with the ``.zarray`` that describes it.

    .local/venv/bin/python bench/codec_inputs.py OUT_DIR

Writes OUT_DIR/{name}.bin and OUT_DIR/cases.json ({name: {"zarray", "encoded_bytes",
"decoded_bytes"}}). Fields are smooth with noise, like model output: a 512 x 512 float32 field
(1 MiB decoded) for the Zarr codecs, a 0.25° global grid (1440 x 721, ~8 MB of float64) for GRIB2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numcodecs
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demo"))
import gribdata  # noqa: E402  (the demo's eccodes writer)


def field(n: int, seed: int = 0) -> np.ndarray:
    y, x = np.meshgrid(np.linspace(0, 6, n), np.linspace(0, 6, n), indexing="ij")
    rng = np.random.default_rng(seed)
    return (280 + 15 * np.sin(y) * np.cos(x) + 0.05 * rng.standard_normal((n, n))).astype("<f4")


def main() -> int:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    values = field(512)
    ints = (values * 100).astype("<i4")
    blosc = lambda cname: numcodecs.Blosc(cname=cname, clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)
    zarr_cases = {
        "netcdf4 shuffle+zlib (kerchunk)": (values, None, [numcodecs.Shuffle(4), numcodecs.Zlib(4)]),
        "zlib": (values, numcodecs.Zlib(4), []),
        "gzip": (values, numcodecs.GZip(4), []),
        "zstd": (values, numcodecs.Zstd(3), []),
        "blosc lz4 (Zarr v2 default)": (values, blosc("lz4"), []),
        "blosc zstd": (values, blosc("zstd"), []),
        "blosc blosclz": (values, blosc("blosclz"), []),
        "delta + zstd (int32)": (ints, numcodecs.Zstd(3), [numcodecs.Delta(dtype="<i4")]),
        "big-endian float64 (byte swap)": (values.astype(">f8"), None, []),
    }
    cases = {}
    for name, (data, compressor, filters) in zarr_cases.items():
        encoded = data
        for f in filters:
            encoded = f.encode(encoded)
        if compressor is not None:
            encoded = compressor.encode(encoded)
        encoded = bytes(encoded)
        cases[name] = {
            "zarray": {"shape": list(data.shape), "chunks": list(data.shape), "dtype": data.dtype.str,
                       "fill_value": 0, "order": "C", "zarr_format": 2,
                       "compressor": compressor.get_config() if compressor is not None else None,
                       "filters": [f.get_config() for f in filters] or None},
            "encoded": encoded, "decoded_bytes": data.nbytes,
        }
    lat, lon = np.linspace(90.0, -90.0, 721), np.arange(0.0, 360.0, 0.25)
    for seed, (packing, short_name, level_type, level, bits, _) in enumerate(gribdata.FIELDS):
        grib = gribdata.field(short_name, lat, lon, seed)
        message = gribdata.encode(packing, grib, lat, lon, short_name, level_type, level, bits)
        cases[f"grib2 {gribdata.TEMPLATES[packing]} {packing}"] = {
            "zarray": {"shape": [721, 1440], "chunks": [721, 1440], "dtype": "<f8", "fill_value": None,
                       "order": "C", "zarr_format": 2, "compressor": None,
                       "filters": [{"id": "grib", "var": short_name, "dtype": "float64"}]},
            "encoded": message, "decoded_bytes": 721 * 1440 * 8,
        }
    manifest = {}
    for i, (name, case) in enumerate(cases.items()):
        (out / f"{i:02}.bin").write_bytes(case["encoded"])
        manifest[name] = {"file": f"{i:02}.bin", "zarray": case["zarray"],
                          "encoded_bytes": len(case["encoded"]), "decoded_bytes": case["decoded_bytes"]}
        print(f"  {name}: {len(case['encoded']):,} bytes for {case['decoded_bytes']:,}", file=sys.stderr)
    (out / "cases.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
