"""End to end: real Zarr clients read every demo dataset through the worker's store surface.

Needs the stack that ``scripts/test`` starts (it exports ZEC_BASE_URL and ZEC_STATE_DIR); a
missing variable fails the test with instructions, it never skips.

For every dataset in the generated ``datasets.json``:
* ``xarray.open_zarr(BASE/zarr/ID, consolidated=True)`` equals ``xarray.open_dataset`` of the
  original netCDF file(s): every variable, coordinate, attribute and dtype (through the same
  comparison the demo tests use, with kerchunk's documented quirks);
* zarr-python 3 opens the same store and reads the same raw arrays;
* absent chunks are 404, malformed keys 400, a reference to a host that is not allowed 403.
"""

from __future__ import annotations

import json
import time
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import xarray as xr
import zarr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "demo"))
import refcheck  # noqa: E402  (the demo's own comparison helpers)
from stack import base_url, stack_var  # noqa: E402  (tests/e2e/stack.py)


def demo_dir() -> Path:
    return Path(stack_var("ZEC_STATE_DIR")) / "demo"


def datasets() -> list[dict]:
    path = Path(os.environ.get("ZEC_STATE_DIR", ".")) / "demo" / "datasets.json"
    if not path.exists():
        return [{"id": "<missing datasets.json: run scripts/test>"}]
    return json.loads(path.read_text())


def json_refs(entry: dict) -> dict:
    """The entry's JSON references; a parquet set's (``refs_format: "parquet"``, a directory of
    record files) are its JSON twin's: the same references, written again as parquet."""
    if entry.get("refs_format") == "parquet":
        entry = next(e for e in datasets() if e["id"] == entry["twin"])
    return refcheck.load_refs(demo_dir() / entry["refs"])


def expected(entry: dict, decode: bool) -> xr.Dataset:
    """The entry's originals (GRIB2: read by kerchunk and eccodes, see refcheck.open_expected)."""
    return refcheck.open_expected(demo_dir(), entry, stack_var("ZEC_ORIGIN_URL"), decode)


def quirks_of(entry: dict) -> str:
    """The id refcheck's KNOWN_QUIRKS are keyed by: a parquet set has its twin's quirks."""
    return entry.get("twin", entry["id"])


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "raw"])
@pytest.mark.parametrize("entry", datasets(), ids=lambda e: e["id"])
def test_xarray_reads_dataset_through_worker_equal_to_originals(entry: dict, decode: bool) -> None:
    url = f"{base_url()}/zarr/{entry['id']}"
    through_worker = xr.open_zarr(url, consolidated=True, decode_cf=decode, mask_and_scale=decode,
                                  decode_times=decode, zarr_format=2).load()
    refcheck.assert_same_dataset(quirks_of(entry), through_worker, expected(entry, decode), decode)


@pytest.mark.parametrize("entry", datasets(), ids=lambda e: e["id"])
def test_zarr_python_reads_same_arrays_as_references(entry: dict) -> None:
    group = zarr.open_group(f"{base_url()}/zarr/{entry['id']}", mode="r", zarr_format=2,
                            use_consolidated=True)
    refs = json_refs(entry)
    expected = refcheck.open_references(refs, stack_var("ZEC_ORIGIN_URL"), demo_dir(), decode=False)
    names = sorted(name for name, _ in group.arrays())
    assert names == sorted(expected.variables), names
    for name in names:
        np.testing.assert_array_equal(group[name][...], expected[name].values, err_msg=name)


def test_datasets_listing_describes_variables() -> None:
    listing = requests.get(f"{base_url()}/api/datasets", timeout=30).json()["datasets"]
    by_id = {d["id"]: d for d in listing}
    assert {e["id"] for e in datasets()} <= set(by_id)
    air = by_id["air"]
    assert air["state"] == "loaded", air
    variables = {v["name"]: v for v in air["variables"]}
    temperature = variables["air_temperature"]
    assert temperature["dimensions"] == ["time", "lat", "lon"]
    assert temperature["dtype"] == "<f4"
    assert [f for f in temperature["filters"]] == ["shuffle", "zlib"]


def test_http_answers_for_absent_and_malformed_keys() -> None:
    base = base_url()
    absent = requests.get(f"{base}/zarr/air/air_temperature/99.0.0", timeout=30)
    assert absent.status_code == 404
    assert absent.json()["error"] == "not_found"
    for bad in ["air/..%2F..%2Fetc", "air/a//b", "air/a%2Fb", "air/a/%00", "air/a%5Cb"]:
        response = requests.get(f"{base}/zarr/{bad}", timeout=30)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "bad_request"
    # Encoded dot segments are resolved by URL parsing before routing: never a traversal.
    dots = requests.get(f"{base}/zarr/air/%2E%2E/%2E%2E/etc/passwd", timeout=30)
    assert dots.status_code in (400, 404), dots.status_code
    unknown = requests.get(f"{base}/zarr/no-such-dataset/.zgroup", timeout=30)
    assert unknown.status_code == 404


def test_cors_headers_for_browsers() -> None:
    response = requests.get(f"{base_url()}/zarr/air/.zgroup", headers={"Origin": "http://page.test"},
                            timeout=30)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    preflight = requests.options(f"{base_url()}/zarr/air/.zgroup", headers={
        "Origin": "http://page.test", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"}, timeout=30)
    assert preflight.status_code == 204
    assert "Range" in preflight.headers["Access-Control-Allow-Headers"]


def test_reference_to_a_host_not_allowed_is_refused() -> None:
    base = base_url()
    refused = requests.get(f"{base}/zarr/foreign/air_temperature/0.0.0", timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "forbidden"
    assert "allowed_hosts" in refused.json()["message"]
    assert requests.get(f"{base}/zarr/foreign/.zgroup", timeout=30).status_code == 200


def test_private_s3_origin_is_read_with_the_datasets_credentials() -> None:
    """t-private's chunks live in a private bucket of s3s-fs (which checks signatures): signed
    with the secrets its s3_credentials name, xarray reads it equal to the original; the same
    references without credentials are refused with 403 naming the dataset, never a secret."""
    air = next(e for e in datasets() if e["id"] == "air")
    url = f"{base_url()}/zarr/t-private"
    through_worker = xr.open_zarr(url, consolidated=True, zarr_format=2).load()
    originals = refcheck.open_originals(demo_dir(), air["files"], air["concat_dim"], True)
    # The air references, so the air quirks apply (compared under its id).
    refcheck.assert_same_dataset(air["id"], through_worker, originals, True)
    refused = requests.get(f"{base_url()}/zarr/t-private-open/air_temperature/0.0.0", timeout=30)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "forbidden"
    assert "t-private-open/air_temperature/0.0.0" in refused.json()["message"]
    assert stack_var("ZEC_ORIGIN_S3_SECRET") not in refused.text


@pytest.mark.parametrize("entry", datasets(), ids=lambda e: e["id"])
def test_xarray_reads_cold_then_warm_equal_both_times(entry: dict) -> None:
    """Two passes over the whole dataset; after the first, chunks come from the cache."""
    url = f"{base_url()}/zarr/{entry['id']}"
    originals = expected(entry, True)
    for _ in range(2):
        through_worker = xr.open_zarr(url, consolidated=True, zarr_format=2).load()
        refcheck.assert_same_dataset(quirks_of(entry), through_worker, originals, True)
    refs = json_refs(entry)
    ranged = sorted(k for k, v in refcheck.body(refs).items() if isinstance(v, list))
    sources = {requests.get(f"{url}/{key}", timeout=30).headers["X-Cache"] for key in ranged}
    assert sources <= {"HIT", "EDGE"}, sources


def test_stats_count_what_the_readers_did() -> None:
    """Reads of one key through a dataset alias no other test uses move its counters exactly."""
    base = base_url()
    key = "surface_height/0.0"
    first = requests.get(f"{base}/zarr/t-stats/{key}", timeout=30)
    assert first.headers["X-Cache"] == "MISS"
    size = len(first.content)
    def stats_of(dataset: str) -> dict:
        listing = requests.get(f"{base}/api/stats", timeout=30).json()["datasets"]
        return next(d for d in listing if d["id"] == dataset)

    for _ in range(100):  # the write-back runs after the response
        if stats_of("t-stats")["entries_written"] == 1:
            break
        time.sleep(0.05)
    for _ in range(4):
        assert requests.get(f"{base}/zarr/t-stats/{key}", timeout=30).headers["X-Cache"] == "HIT"
    # Same source ranges under another id: the stored bytes are shared ("adopted"), no origin read.
    twin = requests.get(f"{base}/zarr/t-stats-twin/{key}", timeout=30)
    assert twin.headers["X-Cache"] == "HIT"
    assert twin.content == first.content
    assert stats_of("t-stats-twin")["misses"] == 0
    mine = stats_of("t-stats")
    assert mine["misses"] == 1
    assert mine["bytes_from_origin"] == size
    assert mine["hits"] == 4 and mine["bytes_from_cache"] == 4 * size
    assert mine["entries_written"] == 1 and mine["bytes_written"] == size
    assert abs(mine["hit_ratio"] - 0.8) < 1e-9
