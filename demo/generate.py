"""Generate the zarr-edge-cache demo archive: real netCDF files plus kerchunk references.

Usage::

    python demo/generate.py --out DIR --base-url URL [--force]

DIR is what an HTTP origin (nginx in the demo) serves at URL. The generator writes

* ``air.nc``                     netCDF4/HDF5 6-hourly analysis (compressed, chunked, packed)
* ``series/ocean_YYYY-MM.nc``    monthly netCDF4 files of a weekly SST time series
* ``classic.nc``                 a netCDF3 classic file with record variables
* ``holes.nc``, ``holes/orog.bin``  netCDF4 file with never-written (absent) chunks, and one
                                 variable's bytes as a raw file referenced whole (``[url]``)
* ``refs/{air,series,classic,holes}.json``  kerchunk references whose URLs are URL + path in DIR
* ``refs/{air,series,classic,holes}.parq/``  the same references as kerchunk parquet reference
                                 sets (``.zmetadata`` + ``{var}/refs.{n}.parq``), small record
                                 sizes; see ``demodata.PARQUET`` for writer/compression per set
* ``refs/air-zlib.json``         air.nc's references in numcodecs' order (zlib the compressor,
                                 shuffle a filter), see ``gribdata.py``
* ``grib/fields.grib2``          six GRIB2 messages written with eccodes, one per packing, with
                                 ``refs/grib.json`` (kerchunk's scan_grib) and eccodes' values
                                 (``grib/eccodes.json``, ``grib/{var}.f64``), see ``gribdata.py``
* ``zarr/air-v{2,3}.zarr``       air.nc as static Zarr v2 and v3 stores (xarray ``to_zarr``,
                                 consolidated; a variable's all-fill chunks are absent), see
                                 ``zarrstores.py``: not in datasets.json (they have no references)
* ``datasets.json``              the list of datasets (id, refs, files, concat_dim, description;
                                 parquet sets ``{id}-parq`` add refs_format, twin, record_size,
                                 compression, writer; holes adds raw_files; grib
                                 adds file_format)
* ``.stamp``                     hash of the generator sources, arguments and library versions

This file is the light CLI: it decides from ``.stamp`` whether anything needs doing
before importing numpy/netCDF4/kerchunk. The builders live in ``demodata.py``, ``gribdata.py`` and
``zarrstores.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "generate.py", HERE / "demodata.py", HERE / "zarrstores.py", HERE / "gribdata.py")
LIBRARIES = ("numpy", "netCDF4", "h5py", "scipy", "kerchunk", "fsspec", "zarr", "numcodecs", "ujson", "xarray",
             "pandas", "fastparquet", "cramjam", "eccodes", "eccodeslib", "cfgrib")
OUTPUTS = ("air.nc", "series", "classic.nc", "holes.nc", "holes", "grib", "refs", "zarr", "datasets.json")
STAMP = ".stamp"


class GenerateError(Exception):
    """A problem the user can fix (bad arguments, missing libraries, unwritable DIR)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to write (served at --base-url)")
    parser.add_argument("--base-url", required=True, help="URL at which --out is served, e.g. http://127.0.0.1:8090")
    parser.add_argument("--force", action="store_true", help="regenerate even if .stamp says up to date")
    args = parser.parse_args(argv)
    if not args.base_url.startswith(("http://", "https://")):
        parser.error(f"--base-url must be an http(s) URL, got {args.base_url!r}")
    args.base_url = args.base_url.rstrip("/")
    return args


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError as exc:
            raise GenerateError(f"required Python package {name!r} is not installed "
                                f"(install python/requirements.txt)") from exc
    return versions


def stamp_for(base_url: str) -> str:
    """Hash of everything that determines the output."""
    h = hashlib.sha256()
    for source in SOURCES:
        h.update(source.read_bytes())
    h.update(json.dumps({"base_url": base_url, "versions": library_versions()}, sort_keys=True).encode())
    return h.hexdigest()


def is_up_to_date(out: Path, stamp: str) -> bool:
    stamp_file = out / STAMP
    if not stamp_file.is_file() or stamp_file.read_text().strip() != stamp:
        return False
    return all((out / name).exists() for name in OUTPUTS)


def clear_outputs(out: Path) -> None:
    """Remove what a previous run wrote (and nothing else in DIR)."""
    (out / STAMP).unlink(missing_ok=True)
    for name in OUTPUTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def generate(out: Path, base_url: str) -> None:
    sys.path.insert(0, str(HERE))
    import demodata  # heavy: numpy, netCDF4, h5py, kerchunk (+ pandas, fastparquet)
    import gribdata  # heavy: eccodes, cfgrib
    import zarrstores  # heavy: xarray, zarr

    datasets = demodata.build_archive(out, base_url, demodata.DEMO)
    datasets.append(demodata.build_holes(out, base_url))
    datasets += demodata.build_parquet_sets(out, datasets)
    datasets += gribdata.build_codec_sets(out, base_url)
    zarrstores.write_stores(out)
    demodata.write_json(out / "datasets.json", [d.as_json() for d in datasets])
    print("  wrote datasets.json")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    try:
        stamp = stamp_for(args.base_url)
        if not args.force and is_up_to_date(out, stamp):
            print(f"demo data up to date in {out}")
            return 0
        started = time.monotonic()
        print(f"generating demo data in {out} for {args.base_url}")
        out.mkdir(parents=True, exist_ok=True)
        clear_outputs(out)
        generate(out, args.base_url)
        (out / STAMP).write_text(stamp + "\n")
    except (GenerateError, OSError, ImportError, ValueError) as exc:
        print(f"error: demo data generation failed: {exc}", file=sys.stderr)
        return 1
    print(f"demo data generated in {out} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
