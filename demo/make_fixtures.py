"""Regenerate the kerchunk fixtures for the Rust unit tests (tests/fixtures/kerchunk/).

Usage::

    python demo/make_fixtures.py [--out DIR]      # default: tests/fixtures/kerchunk

What it writes (everything except the hand-written ``spec_*.json`` / ``gen_*.json``
inputs and README.md, which are committed sources):

* ``data/``                 tiny real netCDF4/netCDF3 files (the TINY profile of demodata.py)
                            and the raw binaries the hand-written gen example points at;
* ``hdf5_single.json``      kerchunk.hdf.SingleHdf5ToZarr output for data/air.nc;
* ``combine_series.json``   kerchunk.combine.MultiZarrToZarr over data/series/*.nc;
* ``netcdf3_classic.json``  kerchunk.netCDF3.NetCDF3ToZarr output for data/classic.nc;
* ``v0_hdf5_single.json``   the same references as hdf5_single.json in version-0 form;
* ``*.expanded.json``       fsspec's expansion of each hand-written file to plain key -> value;
* ``manifest.json``         what each fixture is, which data it points at, library versions.

All URLs are ``http://origin.test/<path under data/>``. Output is deterministic for the
same library versions (recorded in manifest.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path

import fsspec
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import demodata  # noqa: E402  (sibling module, not an installed package)

FIXTURES = HERE.parent / "tests" / "fixtures" / "kerchunk"
ORIGIN = "http://origin.test"
LIBRARIES = ("kerchunk", "fsspec", "zarr", "numcodecs", "numpy", "netCDF4", "h5py", "scipy")

# Real kerchunk output: fixture file -> (dataset id in demodata.build_archive, kerchunk API)
REAL = {
    "hdf5_single.json": ("air", "kerchunk.hdf.SingleHdf5ToZarr"),
    "combine_series.json": ("series", "kerchunk.combine.MultiZarrToZarr"),
    "netcdf3_classic.json": ("classic", "kerchunk.netCDF3.NetCDF3ToZarr"),
}
V0 = {"v0_hdf5_single.json": "hdf5_single.json"}
HAND_WRITTEN = {
    "spec_v1_example.json": "version-1 example from the reference spec (templates incl. a callable "
                            "template, gen with a stop-only dimension)",
    "spec_v0_example.json": "version-0 example from the reference spec (JSON-object values)",
    "gen_zarr_example.json": "hand-written version-1 zarr group using templates and gen (list, "
                             "start/stop and step dimensions, whole-file gen refs, jinja arithmetic)",
}

# Raw binaries behind gen_zarr_example.json: temp (2 x 4 float64, 1 x 2 chunks) after a 64-byte
# header in temp.bin, and one float64 per decade file.
TEMP_VALUES = np.arange(8, dtype="<f8").reshape(2, 4) * 1.5 + 270.0
DECADAL_VALUES = {1990: 801.5, 2000: 812.25, 2010: 790.0}
TEMP_HEADER = b"zarr-edge-cache raw chunk file: 2x4 <f8 in 1x2 chunks follows".ljust(64, b".")


def write_raw_data(data: Path) -> None:
    raw = data / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    chunks = [TEMP_VALUES[j, 2 * k:2 * k + 2].tobytes() for j in range(2) for k in range(2)]
    (raw / "temp.bin").write_bytes(TEMP_HEADER + b"".join(chunks))
    for year, value in DECADAL_VALUES.items():
        (raw / f"decade_{year}.bin").write_bytes(np.array([value], dtype="<f8").tobytes())


def expand(refs: dict) -> dict:
    """fsspec's expansion of a reference set (templates and gen rendered with jinja2)."""
    fs = fsspec.filesystem("reference", fo=copy.deepcopy(refs), simple_templates=False,
                           fs={"memory": fsspec.filesystem("memory")})  # no target is opened
    return {k: v for k, v in sorted(fs.references.items())}


def build_real(out: Path) -> list[dict]:
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    datasets = {d.id: d for d in demodata.build_archive(data, ORIGIN, demodata.TINY, log=lambda _: None)}
    write_raw_data(data)
    entries = []
    for name, (dataset_id, kind) in REAL.items():
        dataset = datasets[dataset_id]
        shutil.move(data / dataset.refs, out / name)
        entries.append({"file": name, "kind": kind, "version": 1, "files": dataset.files,
                        "concat_dim": dataset.concat_dim})
    (data / "refs").rmdir()
    for name, source in V0.items():
        demodata.write_json(out / name, json.loads((out / source).read_text())["refs"])
        entries.append({"file": name, "kind": f"version 0 of {source}", "version": 0,
                        "files": next(e["files"] for e in entries if e["file"] == source), "concat_dim": None})
    return entries


def build_expansions(out: Path) -> list[dict]:
    entries = []
    for name, description in HAND_WRITTEN.items():
        refs = json.loads((FIXTURES / name).read_text())
        expanded = name.replace(".json", ".expanded.json")
        demodata.write_json(out / expanded, expand(refs))
        entries.append({"file": name, "kind": "hand-written", "version": refs.get("version", 0),
                        "description": description, "expanded": expanded})
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help=f"output directory (default {FIXTURES})")
    out = parser.parse_args(argv).out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "origin": ORIGIN,
        "data_dir": "data",
        "generated_by": "demo/make_fixtures.py",
        "library_versions": {name: metadata.version(name) for name in LIBRARIES},
        "fixtures": build_real(out) + build_expansions(out),
    }
    demodata.write_json(out / "manifest.json", manifest)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(out)} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
