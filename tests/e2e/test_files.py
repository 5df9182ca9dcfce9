"""End to end: block mode. A dataset of kind "files" serves ``{url}{path}`` at
``/files/{dataset}/{path}`` from the cache, in aligned blocks of its ``block_size``; readers of
whole netCDF4/HDF5 files open it over HTTP as they would open the file on its origin.

Needs the stack that ``scripts/test`` starts (ZEC_BASE_URL, ZEC_ORIGIN_URL, ZEC_STATE_DIR); a
missing variable fails the test with instructions, it never skips. Its datasets (scripts/test):
``t-files`` (the nginx origin's docroot ``$ZEC_STATE_DIR/demo`` in 64 KiB blocks, so the demo's
``air.nc`` of ~130 KB is three blocks; its files checked every second) and ``t-files-mb`` (the
same in the default 1 MiB blocks: one block). Every test reads a copy of ``air.nc`` of its own,
written into the docroot under a unique name, so its first read through the worker is cold
whatever ran before (the worker's storage is addressed by URL and range).

* xarray (``engine="h5netcdf"``) over ``fsspec.open(...)`` through the worker is identical to the
  same read from nginx, values loaded; the cold read reached the origin with ranged requests only
  (the one-byte size probe among them), and a read again reaches it for nothing (counted in
  nginx's access log, ``$ZEC_STATE_DIR/nginx/access.log``); then the whole file is a ``HIT``;
* h5py over the same file objects sees the same groups, datasets, attributes and values;
* ``HEAD`` answers nginx's ``Content-Length``, ``ETag`` and ``Last-Modified``, cold and warm.

Ranges, merged block fetches, concurrency, rewrites and errors are tests/block_mode.rs's.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import fsspec
import h5py
import numpy as np
import pytest
import requests
import xarray as xr
from stack import base_url, stack_var  # noqa: E402  (tests/e2e/stack.py)

# scripts/test: t-files has block_size 65536 and file_check_seconds 1; t-files-mb the defaults.
CHECKED_EVERY_SECOND = "t-files"
DATASETS = [CHECKED_EVERY_SECOND, "t-files-mb"]
# How long a read again may keep reaching the origin (write-backs run after the answer).
SETTLE_S = 10.0
# nginx's log format `ranged` (scripts/nginx-origin.conf):
#   $remote_addr [$time_iso8601] "$request" $status $body_bytes_sent "$http_range"
LOG_LINE = re.compile(r'^\S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+) "([^"]*)"')


def docroot() -> Path:
    """What the nginx origin serves at ZEC_ORIGIN_URL (the test stack's demo data)."""
    return Path(stack_var("ZEC_STATE_DIR")) / "demo"


def through_worker(dataset: str, path: str) -> str:
    return f"{base_url()}/files/{dataset}/{path}"


def from_nginx(path: str) -> str:
    return f"{stack_var('ZEC_ORIGIN_URL')}/{path}"


@dataclass(frozen=True)
class OriginRequest:
    method: str
    status: int
    bytes_sent: int
    range: str | None  # the Range header, None when there was none


class OriginLog:
    """nginx's access log: the requests for one path since a mark."""

    def __init__(self) -> None:
        self.path = Path(stack_var("ZEC_STATE_DIR")) / "nginx" / "access.log"

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int, path: str) -> list[OriginRequest]:
        out = []
        with self.path.open("rb") as f:
            f.seek(mark)
            for raw in f:
                m = LOG_LINE.match(raw.decode("utf-8", "replace"))
                if m and m.group(2).split("?", 1)[0] == f"/{path}":
                    method, _, status, sent, ranged = m.groups()
                    out.append(OriginRequest(method, int(status), int(sent), None if ranged == "-" else ranged))
        return out


@pytest.fixture
def air_copy(request: pytest.FixtureRequest):
    """A copy of the demo's air.nc in the origin's docroot under a name of its own (its path
    relative to the docroot); removed afterwards."""
    tag = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-").lower()
    path = f"e2e-files/{tag}-{uuid.uuid4().hex[:8]}.nc"
    target = docroot() / path
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(docroot() / "air.nc", target)
    yield path
    target.unlink(missing_ok=True)


# --------------------------------------------------------------------------- readers


def read_xarray(url: str) -> xr.Dataset:
    """xarray + h5netcdf over fsspec's HTTP file, every value loaded."""
    with fsspec.open(url, "rb") as f, xr.open_dataset(f, engine="h5netcdf") as ds:
        return ds.load()


def _plain(h5: h5py.File, value):
    """An attribute value comparable across files: object references as the names they point to."""
    if isinstance(value, h5py.Reference):
        return h5[value].name if value else None
    if isinstance(value, np.ndarray) and value.dtype.names:
        return [tuple(_plain(h5, field) for field in record) for record in value.tolist()]
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_plain(h5, v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(h5, v) for v in value]
    return value


def read_h5py(url: str) -> dict:
    """Every group and dataset of the file read by h5py over fsspec's HTTP file: its attributes,
    and for a dataset its type, shape, chunking, filters and values."""
    out = {}
    with fsspec.open(url, "rb") as f, h5py.File(f, "r") as h5:
        def visit(name: str, obj) -> None:
            attrs = {key: _plain(h5, obj.attrs[key]) for key in sorted(obj.attrs)}
            if isinstance(obj, h5py.Dataset):
                out[name] = {"dtype": obj.dtype.str, "shape": obj.shape, "chunks": obj.chunks,
                             "filters": (obj.compression, obj.shuffle), "attrs": attrs, "values": obj[()]}
            else:
                out[name] = {"attrs": attrs}
        visit("/", h5)
        h5.visititems(visit)
    return out


def assert_same_h5(mine: dict, theirs: dict) -> None:
    assert sorted(mine) == sorted(theirs)
    for name, expected in theirs.items():
        np.testing.assert_equal(mine[name], expected, err_msg=name)


# --------------------------------------------------------------------------- cold, then warm


def read_cold_then_warm(dataset: str, path: str, read: Callable[[str], object]) -> tuple[object, object]:
    """Reads the (fresh) file through the worker: once cold, checking what reached the origin,
    then again until a read reaches the origin for nothing (at most SETTLE_S). Returns both reads."""
    log = OriginLog()
    mark = log.mark()
    cold = read(through_worker(dataset, path))
    fetched = log.since(mark, path)
    assert fetched, f"the first read of {path} through {dataset} did not reach the origin: not cold"
    assert all(r.method == "GET" and r.range for r in fetched), \
        f"the worker asked the origin for more than byte ranges: {fetched}"
    assert any(r.range == "bytes=0-0" and r.status == 206 for r in fetched), \
        f"no one-byte size probe (Range: bytes=0-0) among {fetched}"
    # t-files checks its files every second (a one-byte GET, after the answer to a hit): such a
    # check reads nothing of the file.
    checks_allowed = dataset == CHECKED_EVERY_SECOND
    deadline = time.monotonic() + SETTLE_S
    while True:
        mark = log.mark()
        warm = read(through_worker(dataset, path))
        fetched = [r for r in log.since(mark, path) if not (checks_allowed and r.range == "bytes=0-0")]
        if not fetched:
            return cold, warm
        assert time.monotonic() < deadline, \
            f"{path} read again through {dataset} still reached the origin after {SETTLE_S:g} s: {fetched}"
        time.sleep(0.2)


@pytest.mark.parametrize("dataset", DATASETS)
def test_xarray_h5netcdf_reads_a_file_through_worker_identical_to_nginx(dataset: str, air_copy: str) -> None:
    cold, warm = read_cold_then_warm(dataset, air_copy, read_xarray)
    direct = read_xarray(from_nginx(air_copy))
    assert {"air_temperature", "precipitation", "surface_height"} <= set(direct.data_vars)
    xr.testing.assert_identical(cold, direct)
    xr.testing.assert_identical(warm, direct)
    # Now every block is cached: the whole file is a HIT, byte for byte the file.
    whole = requests.get(through_worker(dataset, air_copy), timeout=30)
    assert whole.status_code == 200, whole.text[:300]
    assert whole.headers.get("X-Cache") == "HIT"
    assert whole.headers.get("Accept-Ranges") == "bytes"
    assert whole.content == (docroot() / air_copy).read_bytes()


@pytest.mark.parametrize("dataset", DATASETS)
def test_h5py_reads_a_file_through_worker_as_from_nginx(dataset: str, air_copy: str) -> None:
    cold, warm = read_cold_then_warm(dataset, air_copy, read_h5py)
    direct = read_h5py(from_nginx(air_copy))
    assert {"air_temperature", "lat", "lon", "time"} <= set(direct)
    assert_same_h5(cold, direct)
    assert_same_h5(warm, direct)


# --------------------------------------------------------------------------- HTTP


@pytest.mark.parametrize("dataset", DATASETS)
def test_head_reports_the_origins_length_etag_and_last_modified(dataset: str, air_copy: str) -> None:
    size = (docroot() / air_copy).stat().st_size
    plain = {"Accept-Encoding": "identity"}
    direct = requests.head(from_nginx(air_copy), headers=plain, timeout=30)
    assert direct.status_code == 200 and int(direct.headers["Content-Length"]) == size
    url = through_worker(dataset, air_copy)
    cold = requests.head(url, headers=plain, timeout=30)
    whole = requests.get(url, headers=plain, timeout=30)
    warm = requests.head(url, headers=plain, timeout=30)
    assert whole.status_code == 200 and whole.content == (docroot() / air_copy).read_bytes()
    for what, answer in (("cold HEAD", cold), ("GET", whole), ("warm HEAD", warm)):
        assert answer.status_code == 200, (what, answer.status_code, answer.text[:300])
        assert int(answer.headers["Content-Length"]) == size, what
        assert answer.headers.get("ETag") == direct.headers["ETag"], what
        assert answer.headers.get("Last-Modified") == direct.headers["Last-Modified"], what
        assert answer.headers.get("Accept-Ranges") == "bytes", what
    assert cold.content == b"" and warm.content == b""

