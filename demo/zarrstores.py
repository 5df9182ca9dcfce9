"""Static Zarr stores of the demo archive: air.nc written by ``xarray.Dataset.to_zarr``.

``generate.py`` calls :func:`write_stores` after the netCDF files exist. It writes

* ``zarr/air-v2.zarr``  Zarr v2 (``.zmetadata`` consolidated, ``var/.zarray``, ``var/0.0.0``)
* ``zarr/air-v3.zarr``  Zarr v3 (``zarr.json`` with consolidated metadata, ``var/c/0/0/0``)

which the origin (nginx) serves as plain files: the "any Zarr over HTTP" origin the worker's
``kind: "zarr"`` datasets front. Both hold air.nc's variables with its CF encoding (packed int16
precipitation, time units) plus ``radar_precipitation``: precipitation seen by a radar network
that covers the northern hemisphere only, NaN (the fill value) elsewhere. Its chunks south of the
equator are all fill value and ``write_empty_chunks=False`` leaves them unwritten, so those keys
are real 404s of the origin (a Zarr reader's fill value), not files.

Deterministic: zarr-python writes no timestamps, so the same inputs give byte-identical stores.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

STORES = {2: "zarr/air-v2.zarr", 3: "zarr/air-v3.zarr"}
# Several chunks per variable, so each store has a real chunk grid (shapes: time 8, lat 46, lon 90).
CHUNKS = {
    "air_temperature": (4, 23, 45),
    "precipitation": (2, 23, 45),
    "radar_precipitation": (4, 23, 45),
    "surface_height": (23, 45),
}
# The CF encoding air.nc carries that means something in Zarr too; netCDF's storage settings
# (zlib, chunksizes, contiguous, source...) do not carry over.
KEPT_ENCODING = ("dtype", "scale_factor", "add_offset", "_FillValue", "units", "calendar")
# Absent from both stores (all NaN: south of the equator); see test_generate.py.
ABSENT_CHUNKS = {2: ["radar_precipitation/0.0.0", "radar_precipitation/1.0.1"],
                 3: ["radar_precipitation/c/0/0/0", "radar_precipitation/c/1/0/1"]}


def demo_dataset(root: Path) -> xr.Dataset:
    """air.nc, decoded, with its Zarr encoding, plus the hemisphere-only radar variable."""
    with xr.open_dataset(root / "air.nc", engine="netcdf4") as nc:
        ds = nc.load()
    radar = ds["precipitation"].where(ds["lat"] >= 0).astype(np.float32)
    radar.attrs = {"units": "mm", "long_name": "6-hourly precipitation seen by radar",
                   "comment": "northern hemisphere only; NaN (fill value) elsewhere, chunks unwritten"}
    ds["radar_precipitation"] = radar
    for variable in ds.variables.values():
        variable.encoding = {k: v for k, v in variable.encoding.items() if k in KEPT_ENCODING}
    ds["radar_precipitation"].encoding = {"dtype": "float32", "_FillValue": np.float32("nan")}
    for name, chunks in CHUNKS.items():
        ds[name].encoding["chunks"] = chunks
    return ds


def write_stores(root: Path, log: Callable[[str], None] = print) -> list[str]:
    """Write both stores under ``root`` from ``root/air.nc``; returns their paths relative to root."""
    ds = demo_dataset(root)
    for zarr_format, rel in STORES.items():
        path = root / rel
        if path.exists():
            shutil.rmtree(path)
        with warnings.catch_warnings():
            # v3 consolidated metadata is zarr-python's (not yet in the spec): wanted here.
            warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
            ds.to_zarr(path, mode="w", zarr_format=zarr_format, consolidated=True, write_empty_chunks=False)
        files = [p for p in path.rglob("*") if p.is_file()]
        log(f"  wrote {rel} (Zarr v{zarr_format}: {len(files)} files, {sum(p.stat().st_size for p in files):,} bytes)")
    return list(STORES.values())
