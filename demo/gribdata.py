"""GRIB2 and numcodecs-order demo data: what the worker's decoded view exists for.

* ``grib/fields.grib2``: one GRIB2 file of six messages written with eccodes, each field in
  another packing of the templates real NWP files use -- simple (5.0), complex (5.2),
  complex with spatial differencing (5.3), JPEG 2000 (5.40), PNG (5.41), CCSDS (5.42); the
  complex field has missing points (a bitmap). ``refs/grib.json`` indexes it with kerchunk's
  ``scan_grib`` (one reference set per message, merged with ``kerchunk.combine.merge_vars``):
  every data variable is ``<f8`` with the ``grib`` filter, its chunk the whole message.
  ``grib/eccodes.json`` and ``grib/{variable}.f64`` hold each field's values as eccodes decodes
  them (missing points NaN), for the tests to compare with.
* ``refs/air-zlib.json``: ``air.nc``'s references with each ``[shuffle, zlib]`` filter pair
  written as numcodecs does (``compressor: zlib``, ``filters: [shuffle]``): the same bytes, the
  form legacy zarr.js misreads silently.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Callable

import eccodes
import kerchunk.combine
import kerchunk.grib2
import numpy as np

# (packing type, shortName, typeOfLevel, level, bits per value, with missing points)
FIELDS = [
    ("grid_simple", "2t", "heightAboveGround", 2, 16, False),
    ("grid_complex", "tcc", "entireAtmosphere", 0, 12, True),
    ("grid_complex_spatial_differencing", "msl", "meanSea", 0, 16, False),
    ("grid_jpeg", "t", "isobaricInhPa", 850, 16, False),
    ("grid_png", "sp", "surface", 0, 16, False),
    ("grid_ccsds", "tcwv", "entireAtmosphere", 0, 14, False),
]
TEMPLATES = {"grid_simple": "5.0", "grid_complex": "5.2", "grid_complex_spatial_differencing": "5.3",
             "grid_jpeg": "5.40", "grid_png": "5.41", "grid_ccsds": "5.42"}
MISSING = 9999.0


def grid() -> tuple[np.ndarray, np.ndarray]:
    """A 2.5° global grid, north to south (the usual NWP scan order)."""
    return np.linspace(90.0, -90.0, 73), np.arange(0.0, 360.0, 2.5)


def field(short_name: str, lat: np.ndarray, lon: np.ndarray, seed: int) -> np.ndarray:
    """A smooth, plausible field for ``short_name`` with fixed noise."""
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    rng = np.random.default_rng(seed)
    shape = np.cos(la) - 0.3 * np.sin(2 * lo) * np.cos(la) ** 2 + 0.1 * np.sin(5 * la) * np.cos(3 * lo)
    noise = 0.02 * rng.standard_normal(la.shape)
    base, amp = {"2t": (250.0, 45.0), "tcc": (0.2, 0.6), "msl": (100000.0, 2500.0), "t": (255.0, 30.0),
                 "sp": (90000.0, 10000.0), "tcwv": (5.0, 40.0)}[short_name]
    values = base + amp * (shape + noise)
    if short_name == "tcc":
        values = np.clip(values, 0.0, 1.0)
    return values


def encode(packing: str, values: np.ndarray, lat: np.ndarray, lon: np.ndarray, short_name: str,
           type_of_level: str, level: int, bits: int) -> bytes:
    """One GRIB2 message (regular lat/lon grid, analysis at 2024-01-01 00 UTC); NaN values
    become missing points (a bitmap)."""
    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib2")
    try:
        for key, value in [
            ("Ni", lon.size), ("Nj", lat.size), ("iScansNegatively", 0), ("jScansPositively", 0),
            ("latitudeOfFirstGridPointInDegrees", float(lat[0])),
            ("longitudeOfFirstGridPointInDegrees", float(lon[0])),
            ("latitudeOfLastGridPointInDegrees", float(lat[-1])),
            ("longitudeOfLastGridPointInDegrees", float(lon[-1])),
            ("iDirectionIncrementInDegrees", float(lon[1] - lon[0])),
            ("jDirectionIncrementInDegrees", float(lat[0] - lat[1])),
            ("dataDate", 20240101), ("dataTime", 0), ("stepUnits", "h"), ("step", 0),
            ("typeOfLevel", type_of_level), ("level", level), ("shortName", short_name),
            # The packing before the values, so they are packed once, as asked.
            ("packingType", packing), ("bitsPerValue", bits),
        ]:
            eccodes.codes_set(h, key, value)
        flat = values.ravel()
        if np.isnan(flat).any():
            eccodes.codes_set(h, "bitmapPresent", 1)
            eccodes.codes_set(h, "missingValue", MISSING)
            flat = np.where(np.isnan(flat), MISSING, flat)
        eccodes.codes_set_values(h, flat)
        return eccodes.codes_get_message(h)
    finally:
        eccodes.codes_release(h)


def eccodes_values(message: bytes) -> tuple[np.ndarray, dict]:
    """What eccodes decodes from ``message``: the values (missing points NaN) and its keys."""
    h = eccodes.codes_new_from_message(message)
    try:
        values = np.asarray(eccodes.codes_get_values(h), dtype="<f8")
        keys = {k: eccodes.codes_get(h, k) for k in (
            "packingType", "dataRepresentationTemplateNumber", "bitsPerValue", "numberOfMissing", "cfVarName")}
        if eccodes.codes_get(h, "bitmapPresent"):
            values = np.where(values == eccodes.codes_get(h, "missingValue"), np.nan, values)
        return values, keys
    finally:
        eccodes.codes_release(h)


def write_fields(root: Path, log: Callable[[str], None]) -> list[dict]:
    """grib/fields.grib2 and the eccodes values of each message."""
    lat, lon = grid()
    out = root / "grib"
    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    with open(out / "fields.grib2", "wb") as f:
        for seed, (packing, short_name, level_type, level, bits, missing) in enumerate(FIELDS):
            values = field(short_name, lat, lon, seed)
            if missing:  # a swath of missing points and one missing row
                values[10:20, 30:60] = np.nan
                values[60, :] = np.nan
            message = encode(packing, values, lat, lon, short_name, level_type, level, bits)
            decoded, keys = eccodes_values(message)
            if keys["dataRepresentationTemplateNumber"] != int(TEMPLATES[packing].split(".")[1]):
                raise ValueError(f"{short_name}: eccodes wrote template {keys}, not {TEMPLATES[packing]}")
            name = keys["cfVarName"]
            decoded.tofile(out / f"{name}.f64")
            manifest.append({"dataset": "grib", "variable": name, "packing": packing,
                             "template": TEMPLATES[packing], "offset": f.tell(), "length": len(message),
                             "shape": [lat.size, lon.size], "missing": int(keys["numberOfMissing"]),
                             "values": f"{name}.f64"})
            f.write(message)
    (out / "eccodes.json").write_text(json.dumps({"fields": manifest}, indent=1) + "\n")
    log(f"  wrote grib/fields.grib2 ({(out / 'fields.grib2').stat().st_size:,} bytes, "
        f"{len(manifest)} messages: {', '.join(m['template'] for m in manifest)})")
    return manifest


def grib_refs(root: Path) -> dict:
    """kerchunk's references for grib/fields.grib2: scan_grib per message, merged."""
    per_message = kerchunk.grib2.scan_grib(str(root / "grib/fields.grib2"), inline_threshold=100)
    merged = kerchunk.combine.merge_vars(per_message)
    return merged


def numcodecs_order(refs: dict) -> dict:
    """``refs`` with each ``[..., zlib]`` filter list written with zlib as the compressor."""
    out = copy.deepcopy(refs)
    body = out["refs"]
    for key, value in refs["refs"].items():
        if not key.endswith(".zarray"):
            continue
        meta = json.loads(value)
        filters = meta.get("filters") or []
        if meta.get("compressor") is None and filters and filters[-1]["id"] == "zlib":
            meta["compressor"], meta["filters"] = filters[-1], filters[:-1] or None
            body[key] = json.dumps(meta)
    return out


def build_codec_sets(root: Path, base_url: str, log: Callable[[str], None] = print) -> list:
    """refs/air-zlib.json (after ``build_archive``) and the GRIB2 set: their datasets."""
    import demodata  # sibling module

    air = json.loads((root / "refs/air.json").read_text())
    demodata.write_json(root / "refs/air-zlib.json", numcodecs_order(air))
    log("  wrote refs/air-zlib.json")
    manifest = write_fields(root, log)
    refs = grib_refs(root)
    # scan_grib names the file by a template ({{u}}): point it at the origin.
    refs["templates"] = {"u": f"{base_url.rstrip('/')}/grib/fields.grib2"}
    demodata.write_json(root / "refs/grib.json", refs)
    log("  wrote refs/grib.json")
    packings = ", ".join(f"{m['variable']} {m['template']}" for m in manifest)
    return [
        demodata.Dataset("air-zlib", "refs/air-zlib.json", ["air.nc"], None,
                         "air.nc through references in numcodecs' order (zlib the compressor, "
                         "shuffle a filter): the same bytes, which legacy zarr.js misreads"),
        demodata.Dataset("grib", "refs/grib.json", ["grib/fields.grib2"], None,
                         "six GRIB2 fields on a 2.5° global grid written with eccodes, one per "
                         f"packing ({packings}), indexed by kerchunk's scan_grib",
                         file_format="grib2"),
    ]
