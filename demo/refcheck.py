"""Test helpers: read a kerchunk reference set without a server and compare it with the originals.

A reference set written for an HTTP origin (``BASE/path/file.nc``) is read by mapping
its URLs back onto the local directory the origin would serve, then opening it with
fsspec's ReferenceFileSystem + xarray's zarr engine. The result is compared with the
original netCDF file(s) opened by xarray (concatenated along ``concat_dim`` for a
multi-file dataset, mirroring ``MultiZarrToZarr(identical_dims=...)``).
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

# Differences that are kerchunk's behaviour, not a wrong byte range. Keyed by
# (dataset id, variable); the value explains the quirk.
KNOWN_QUIRKS = {
    **{(dataset_id, "crs"): (
        "kerchunk.hdf only recognises netCDF variables by their _Netcdf4* attributes, which "
        "scalar variables lack, so it gives the scalar `crs` the HDF5 dataset fill value "
        "(NC_FILL_INT = -2147483647) as zarr fill_value although the file has no _FillValue"
    ) for dataset_id in ("air", "air-zlib")},
}
CRS_FILL = -2147483647


def load_refs(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def body(refs: dict) -> dict:
    """The key -> reference mapping of a version-1 (``refs``) or version-0 (top level) set."""
    return refs["refs"] if "version" in refs else refs


def ranged_urls(refs: dict) -> set[str]:
    """Every URL the references read, templates expanded (``{{u}}`` → its URL)."""
    urls = {v[0] for v in body(refs).values() if isinstance(v, list)}
    for name, url in refs.get("templates", {}).items():
        if "{{" + name + "}}" in urls:
            urls = (urls - {"{{" + name + "}}"}) | {url}
    return urls


def localize(refs: dict, base_url: str, root: Path) -> dict:
    """Copy of ``refs`` whose ``base_url/...`` URLs are local paths under ``root``."""
    prefix = base_url.rstrip("/") + "/"

    def local(key: str, url: str) -> str:
        if not url.startswith(prefix):
            raise AssertionError(f"{key}: URL {url!r} does not start with {prefix!r}")
        return str(Path(root) / url[len(prefix):])

    # Templates (``{{u}}``, as scan_grib writes) are localised where they are defined.
    templates = {name: local(f"templates/{name}", url) for name, url in refs.get("templates", {}).items()}
    out = {}
    for key, value in body(refs).items():
        if isinstance(value, list) and not (templates and "{{" in value[0]):
            value = [local(key, value[0])] + value[1:]
        out[key] = value
    if "version" not in refs:
        return out
    return {**refs, "refs": out, **({"templates": templates} if templates else {})}


def open_references(refs: dict, base_url: str, root: Path, decode: bool) -> xr.Dataset:
    """Open a reference set through ReferenceFileSystem, reading chunks from ``root``."""
    storage_options = {"fo": localize(refs, base_url, root), "remote_protocol": "file"}
    ds = xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": storage_options},
        decode_cf=decode,
    )
    return ds.load()


def open_originals(root: Path, files: list[str], concat_dim: str | None, decode: bool) -> xr.Dataset:
    """The original file(s) opened by xarray's netCDF backend."""
    parts = [xr.open_dataset(Path(root) / f, decode_cf=decode).load() for f in files]
    if concat_dim is None:
        assert len(parts) == 1, files
        return parts[0]
    return xr.concat(parts, dim=concat_dim, data_vars="minimal", coords="minimal",
                     compat="override", join="exact", combine_attrs="override")


def open_expected(root: Path, entry: dict, base_url: str, decode: bool) -> xr.Dataset:
    """What a datasets.json entry must read as: its netCDF originals, or for GRIB2 files
    (``file_format: "grib2"``) its references read locally by kerchunk's grib codec (eccodes)."""
    if entry.get("file_format") == "grib2":
        return open_references(load_refs(Path(root) / entry["refs"]), base_url, root, decode)
    return open_originals(root, entry["files"], entry["concat_dim"], decode)


def without_quirks(dataset_id: str, zarr_ds: xr.Dataset, orig: xr.Dataset, decode: bool):
    """Check and remove the KNOWN_QUIRKS so the rest can be compared strictly."""
    for (qid, var) in KNOWN_QUIRKS:
        if qid != dataset_id:
            continue
        zv, ov = zarr_ds[var], orig[var]
        if decode:  # zarr side is masked with the bogus fill value -> float
            assert float(zv.values) == float(ov.values)
        else:
            assert zv.attrs.get("_FillValue") == CRS_FILL and "_FillValue" not in ov.attrs
            assert zv.dtype == ov.dtype and zv.values == ov.values
        zarr_ds, orig = zarr_ds.drop_vars(var), orig.drop_vars(var)
    return zarr_ds, orig


def assert_same_dataset(dataset_id: str, zarr_ds: xr.Dataset, orig: xr.Dataset, decode: bool) -> None:
    """Values, dims, coords, attrs and dtypes equal (after the documented quirks)."""
    zarr_ds, orig = without_quirks(dataset_id, zarr_ds, orig, decode)
    xr.testing.assert_identical(zarr_ds, orig)
    for name, var in orig.variables.items():
        assert zarr_ds[name].dtype == var.dtype, f"{dataset_id}/{name}: {zarr_ds[name].dtype} != {var.dtype}"
