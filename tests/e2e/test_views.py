"""End to end: the decoded view (``/zarr/{id}@decoded``) and the Zarr v3 views (``@v3``,
``@decoded-v3``) of every demo reference dataset, read by xarray and zarr-python 3.

Needs the stack that ``scripts/test`` starts. For each dataset and view:
* xarray (``open_zarr``, consolidated, CF-decoded and raw) equals the originals as the encoded
  view's test does (GRIB2: kerchunk + eccodes reading the references locally);
* zarr-python 3 reads every array equal to the references read locally;
* the decoded view's metadata has no codecs; a decoded chunk is cached as an entry of its own;
* a chunk that does not decode is a 502 naming it and nothing is cached; a codec the view does
  not apply is a 422 naming it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import xarray as xr
import zarr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "demo"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import refcheck  # noqa: E402
from stack import base_url, stack_var  # noqa: E402
from test_zarr_store import datasets, demo_dir, expected, json_refs, quirks_of  # noqa: E402

# The JSON reference sets and one parquet set: every codec of the demo data (zlib, shuffle,
# big-endian netCDF3 items, Blosc-compressed coordinates, GRIB2 in six packings).
VIEW_IDS = ["air", "series", "classic", "holes", "air-zlib", "grib", "air-parq"]
VIEWS = ["decoded", "v3", "decoded-v3"]
# grib-rs unpacks GRIB2 in f32 where eccodes computes in f64: values agree to f32 precision.
GRIB_RTOL = 1e-6


def entries() -> list[dict]:
    found = [e for e in datasets() if e["id"] in VIEW_IDS]
    return found or [{"id": "<missing datasets.json: run scripts/test>"}]


def views_of(entry: dict) -> list[str]:
    # No Zarr v3 implementation has a GRIB codec: GRIB2 is read in v3 through @decoded-v3.
    return ["decoded", "decoded-v3"] if entry.get("file_format") == "grib2" else VIEWS


def open_view(entry: dict, view: str, decode: bool) -> xr.Dataset:
    url = f"{base_url()}/zarr/{entry['id']}@{view}"
    zarr_format = 3 if view.endswith("v3") else 2
    return xr.open_zarr(url, consolidated=True, decode_cf=decode, mask_and_scale=decode,
                        decode_times=decode, zarr_format=zarr_format).load()


@pytest.mark.parametrize("decode", [True, False], ids=["cf", "raw"])
@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("entry", entries(), ids=lambda e: e["id"])
def test_xarray_reads_each_view_equal_to_originals(entry: dict, view: str, decode: bool) -> None:
    if view not in views_of(entry):
        response = requests.get(f"{base_url()}/zarr/{entry['id']}@{view}/t2m/zarr.json", timeout=30)
        assert response.json()["codecs"][-1]["name"] == "numcodecs.grib"
        return
    through_worker = open_view(entry, view, decode)
    originals = expected(entry, decode)
    if entry.get("file_format") == "grib2":
        # grib-rs unpacks in f32, eccodes in f64: equal within f32 precision, metadata exactly.
        xr.testing.assert_allclose(through_worker, originals, rtol=GRIB_RTOL, atol=0)
        assert through_worker.attrs == originals.attrs
        for name, var in originals.variables.items():
            assert through_worker[name].attrs == var.attrs, name
            assert through_worker[name].dtype == var.dtype, name
        return
    refcheck.assert_same_dataset(quirks_of(entry), through_worker, originals, decode)


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("entry", entries(), ids=lambda e: e["id"])
def test_zarr_python_reads_every_array_of_each_view(entry: dict, view: str) -> None:
    if view not in views_of(entry):
        return
    v3 = view.endswith("v3")
    group = zarr.open_group(f"{base_url()}/zarr/{entry['id']}@{view}", mode="r",
                            zarr_format=3 if v3 else 2, use_consolidated=True)
    references = refcheck.open_references(json_refs(entry), stack_var("ZEC_ORIGIN_URL"), demo_dir(),
                                          decode=False)
    names = sorted(name for name, _ in group.arrays())
    assert names == sorted(references.variables), names
    for name in names:
        array = group[name]
        if view.startswith("decoded"):
            assert array.dtype.byteorder in ("<", "|", "="), f"{name}: {array.dtype}"
        if entry.get("file_format") == "grib2":
            np.testing.assert_allclose(array[...], references[name].values, rtol=GRIB_RTOL, atol=0,
                                       equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(array[...], references[name].values, err_msg=name)


def test_decoded_metadata_and_chunk_entries() -> None:
    base = base_url()
    meta = requests.get(f"{base}/zarr/classic@decoded/.zmetadata", timeout=30).json()["metadata"]
    for key, value in meta.items():
        if key.endswith(".zarray"):
            assert value["compressor"] is None and value["filters"] is None, key
            assert not value["dtype"].startswith(">"), key
    # A chunk no other test reads, through an alias: decoded once, then a hit of its own entry.
    key = "air_temperature/1.1.1"
    first = requests.get(f"{base}/zarr/t-views@decoded/{key}", timeout=30)
    assert first.status_code == 200, first.text
    assert len(first.content) == 4 * 23 * 45 * 4
    for _ in range(100):
        again = requests.get(f"{base}/zarr/t-views@decoded/{key}", timeout=30)
        if again.headers["X-Cache"] in ("HIT", "EDGE"):
            break
        time.sleep(0.05)
    assert again.headers["X-Cache"] in ("HIT", "EDGE") and again.content == first.content
    keys = requests.get(f"{base}/api/stats/keys", params={"dataset": "t-views"}, timeout=30).json()
    listed = {k["key"] for k in keys["keys"]}
    assert f"@decoded/{key}" in listed, listed


def test_v3_root_lists_every_node() -> None:
    root = requests.get(f"{base_url()}/zarr/air@v3/zarr.json", timeout=30).json()
    assert root["zarr_format"] == 3 and root["node_type"] == "group"
    nodes = root["consolidated_metadata"]["metadata"]
    refs = refcheck.body(json_refs(next(e for e in datasets() if e["id"] == "air")))
    arrays = {k.rsplit("/", 1)[0] for k in refs if k.endswith("/.zarray")}
    assert set(nodes) == arrays
    assert nodes["air_temperature"]["dimension_names"] == ["time", "lat", "lon"]


def test_bad_chunks_through_the_decoded_view(tmp_path) -> None:
    """A GRIB message whose length disagrees with its reference, a corrupt zlib stream, a chunk
    that inflates beyond its declared size: 502 naming the key, nothing cached, every time."""
    base = base_url()
    for key in ["t2m/0.0", "air_temperature/0.0.0", "lat/0"]:
        for _ in range(2):
            response = requests.get(f"{base}/zarr/t-bad-codecs@decoded/{key}", timeout=30)
            assert response.status_code == 502, (key, response.text)
            body = response.json()
            assert body["error"] == "undecodable_chunk" and key in body["message"], body
            assert response.headers.get("X-Cache") is None
    listed = requests.get(f"{base}/api/stats/keys", params={"dataset": "t-bad-codecs"}, timeout=30).json()
    assert [k["key"] for k in listed["keys"] if k["key"].startswith("@decoded/")] == []
    unsupported = requests.get(f"{base}/zarr/t-bad-codecs@decoded/odd/0", timeout=30)
    assert unsupported.status_code == 422, unsupported.text
    assert unsupported.json()["error"] == "unsupported_codec" and "lzma" in unsupported.json()["message"]
