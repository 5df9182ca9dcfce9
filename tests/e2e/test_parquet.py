"""End to end: kerchunk **parquet** reference sets read through the worker.

Needs the stack that ``scripts/test`` starts (ZEC_BASE_URL, ZEC_BASE_URL_2, ZEC_ORIGIN_URL,
ZEC_STATE_DIR); a missing variable fails the test with instructions, it never skips.

For every parquet set of the generated ``datasets.json`` (``refs_format: "parquet"``: air-parq,
series-parq, classic-parq, holes-parq, each the same references as its JSON ``twin``):
* xarray (``open_zarr``, consolidated, v2) equals the original netCDF file(s) and the twin read
  through the worker; zarr-python 3 reads every array equal to the originals and to the twin;
* every key of the twin's references answers its bytes (inline keys ``INLINE``, ranged and
  whole-file keys the file's bytes: holes-parq's ``orog/0.0`` is ``holes/orog.bin``); ``.zmetadata``
  is served byte for byte as the origin has it; holes-parq's absent chunks are 404, those of the
  record file kerchunk left out (``rain_rate/refs.2.parq``) too;
* per-key metadata (``.zarray``, ...) is the ``.zmetadata``'s document, numbers exactly;
* on a cold copy of the set (``t-parq-cold-{twin}``), a first reader fetches each record file once,
  ``/api/stats/keys`` then lists them (``{field}/refs.{n}.parq``) as entries, and a second reader
  (the second worker process, same index and storage) gets every key from the cache (``HIT``):
  no origin request, no new miss; a record file first read for an absent key is cached too
  (``t-parq-absent-first``), and one the origin lacks is remembered absent.

Bad record files on the real stack (``t-parq-*``: copies of refs/air.parq/ that scripts/test
writes, see there): a truncated file, one with a page overwritten, random bytes, an ``offset``
column of strings, a ``.zmetadata`` whose record_size does not match the files. The affected key
answers 502 ``bad_references`` naming the dataset and the record file; the worker still serves
other datasets; a retry answers the same (the file is fetched again: nothing of it was stored,
and no index entry lists it), at once (no lease left behind); the set's other variables still
read equal to the original. A record_size larger than the files' never answers another chunk's
bytes.

Tests marked ``xfail(strict=True)`` are worker bugs (the reason says which): they fail loudly
(XPASS) once fixed, and the mark goes.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
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
import demodata  # noqa: E402  (the demo generator's own description of holes.nc)
import refcheck  # noqa: E402  (the demo's own comparison helpers)
from stack import base_url, stack_var  # noqa: E402  (tests/e2e/stack.py)

TIMEOUT = 30
# X-Cache of an answer from the cache: stored bytes (HIT) or the edge tier in front of them (the
# demo datasets of datasets.json have the edge tier on).
CACHED = {"HIT", "EDGE"}


def demo_dir() -> Path:
    return Path(stack_var("ZEC_STATE_DIR")) / "demo"


def datasets() -> list[dict]:
    path = Path(os.environ.get("ZEC_STATE_DIR", ".")) / "demo" / "datasets.json"
    if not path.exists():
        return [{"id": "<missing datasets.json: run scripts/test>", "refs_format": "parquet"}]
    return json.loads(path.read_text())


def parquet_sets() -> list[dict]:
    return [e for e in datasets() if e.get("refs_format") == "parquet"]


def entry_of(dataset_id: str) -> dict:
    return next(e for e in datasets() if e["id"] == dataset_id)


def zmetadata(entry: dict) -> dict:
    return json.loads((demo_dir() / entry["refs"] / ".zmetadata").read_text())


def twin_refs(entry: dict) -> dict:
    """Key -> reference of the parquet set's JSON twin (the references it was written from)."""
    return refcheck.body(refcheck.load_refs(demo_dir() / entry_of(entry["twin"])["refs"]))


def is_metadata(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith(".z")


def chunk_grid(zarray: dict) -> list[int]:
    return [math.ceil(s / c) for s, c in zip(zarray["shape"], zarray["chunks"])] or [1]


def grid_keys(meta: dict) -> list[str]:
    """Every chunk key of every array's grid (present or not)."""
    keys = []
    for name, zarray in meta["metadata"].items():
        if name.endswith("/.zarray"):
            var = name[: -len("/.zarray")]
            idx = [[]]
            for n in chunk_grid(zarray):
                idx = [i + [c] for i in idx for c in range(n)]
            keys += [f"{var}/{'.'.join(map(str, i))}" for i in idx]
    return keys


def record_file_of(meta: dict, key: str) -> str:
    """The record file (relative to the set's directory) that holds chunk ``key``: its C-order
    index over the chunk grid divided by the set's record_size."""
    var, chunk = key.rsplit("/", 1)
    grid = chunk_grid(meta["metadata"][f"{var}/.zarray"])
    index = 0
    for i, n in zip((int(c) for c in chunk.split(".")), grid):
        index = index * n + i
    return f"{var}/refs.{index // meta['record_size']}.parq"


def record_files(entry: dict) -> set[str]:
    """The record files the set has on the origin's disk."""
    root = demo_dir() / entry["refs"]
    return {p.relative_to(root).as_posix() for p in root.glob("*/refs.*.parq")}


def local_file(url: str) -> Path:
    prefix = stack_var("ZEC_ORIGIN_URL").rstrip("/") + "/"
    assert url.startswith(prefix), url
    return demo_dir() / url[len(prefix):].split("?", 1)[0]


def expected_bytes(value) -> bytes:
    """What a reference says a key holds: inline text or base64, a range of a file, a whole file."""
    if isinstance(value, str):
        return base64.b64decode(value[len("base64:"):]) if value.startswith("base64:") else value.encode()
    data = local_file(value[0]).read_bytes()
    if len(value) == 1:
        return data
    _, offset, length = value
    return data[offset:offset + length]


def get(dataset: str, key: str, base: str | None = None, method: str = "GET") -> requests.Response:
    return requests.request(method, f"{base or base_url()}/zarr/{dataset}/{key}", timeout=TIMEOUT)


def stats_keys(dataset: str) -> dict[str, dict]:
    """Every index entry of ``dataset`` (/api/stats/keys, one page)."""
    answer = requests.get(f"{base_url()}/api/stats/keys", params={"dataset": dataset, "limit": 1000},
                          timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["next_cursor"] is None, page
    return {row["key"]: row for row in page["keys"]}


def stats_of(dataset: str) -> dict:
    listing = requests.get(f"{base_url()}/api/stats", timeout=TIMEOUT).json()["datasets"]
    return next(d for d in listing if d["id"] == dataset)


def wait_for_entries(dataset: str, wanted: set[str], seconds: float = 15) -> dict[str, dict]:
    """The dataset's entries once all of ``wanted`` are listed (write-backs run after answers)."""
    deadline = time.monotonic() + seconds
    while True:
        entries = stats_keys(dataset)
        if wanted <= set(entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


LOG_LINE = re.compile(r'^\S+ \[[^\]]+\] "(\S+) (\S+) [^"]*" (\d+) (\d+) "([^"]*)"')


class OriginLog:
    """nginx's access log (``$ZEC_STATE_DIR/nginx/access.log``): the paths requested since a mark."""

    def __init__(self) -> None:
        self.path = Path(stack_var("ZEC_STATE_DIR")) / "nginx" / "access.log"

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> list[str]:
        out = []
        with self.path.open("rb") as f:
            f.seek(mark)
            for raw in f:
                m = LOG_LINE.match(raw.decode("utf-8", "replace"))
                if m:
                    out.append(m.group(2).split("?", 1)[0])
        return out


def url_of(entry: dict) -> str:
    return f"{base_url()}/zarr/{entry['id']}"


# --------------------------------------------------------------------------- readers


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "raw"])
@pytest.mark.parametrize("entry", parquet_sets(), ids=lambda e: e["id"])
def test_xarray_reads_parquet_set_equal_to_originals_and_twin(entry: dict, decode: bool) -> None:
    def read(dataset_url: str) -> xr.Dataset:
        return xr.open_zarr(dataset_url, consolidated=True, decode_cf=decode, mask_and_scale=decode,
                            decode_times=decode, zarr_format=2).load()

    through_worker = read(url_of(entry))
    originals = refcheck.open_originals(demo_dir(), entry["files"], entry["concat_dim"], decode)
    # The twin's references, so the twin's kerchunk quirks (air's crs fill value) apply.
    refcheck.assert_same_dataset(entry["twin"], through_worker, originals, decode)
    xr.testing.assert_identical(through_worker, read(f"{base_url()}/zarr/{entry['twin']}"))


@pytest.mark.parametrize("entry", parquet_sets(), ids=lambda e: e["id"])
def test_zarr_python_reads_every_array_equal_to_originals_and_twin(entry: dict) -> None:
    def group_of(dataset: str):
        return zarr.open_group(f"{base_url()}/zarr/{dataset}", mode="r", zarr_format=2, use_consolidated=True)

    group, twin = group_of(entry["id"]), group_of(entry["twin"])
    originals = refcheck.open_originals(demo_dir(), entry["files"], entry["concat_dim"], decode=False)
    names = sorted(name for name, _ in group.arrays())
    assert names == sorted(originals.variables), names
    assert names == sorted(name for name, _ in twin.arrays())
    for name in names:
        values = group[name][...]
        # The same type; netCDF3 (classic) is big-endian, which netCDF4-python reads as native.
        assert values.dtype.newbyteorder("=") == originals[name].dtype.newbyteorder("="), name
        assert values.dtype == twin[name].dtype, name
        np.testing.assert_array_equal(values, originals[name].values, err_msg=name)
        np.testing.assert_array_equal(values, twin[name][...], err_msg=name)
        assert group[name].attrs.asdict() == twin[name].attrs.asdict(), name


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("entry", parquet_sets(), ids=lambda e: e["id"])
def test_zmetadata_is_served_as_written(entry: dict) -> None:
    written = (demo_dir() / entry["refs"] / ".zmetadata").read_bytes()
    origin = requests.get(f"{stack_var('ZEC_ORIGIN_URL')}/{entry['refs']}/.zmetadata", timeout=TIMEOUT)
    assert origin.status_code == 200 and origin.content == written
    served = get(entry["id"], ".zmetadata")
    assert served.status_code == 200, served.text
    assert served.content == written
    head = get(entry["id"], ".zmetadata", method="HEAD")
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(written)


@pytest.mark.parametrize("entry", parquet_sets(), ids=lambda e: e["id"])
def test_metadata_keys_are_the_zmetadata_documents(entry: dict) -> None:
    """Every .zgroup/.zattrs/.zarray is the .zmetadata's document, numbers exactly."""
    meta = zmetadata(entry)["metadata"]
    for key, document in meta.items():
        answer = get(entry["id"], key)
        assert answer.status_code == 200, f"{key}: {answer.status_code} {answer.text}"
        assert answer.json() == document, key
    assert set(meta) == {k for k in twin_refs(entry) if is_metadata(k)}


@pytest.mark.parametrize("entry", parquet_sets(), ids=lambda e: e["id"])
def test_every_key_answers_what_its_reference_says(entry: dict) -> None:
    """Inline keys INLINE with their bytes, ranged and whole-file keys the file's bytes: for
    every chunk key of the JSON twin."""
    kinds = {"inline": 0, "ranged": 0, "whole": 0}
    for key, value in twin_refs(entry).items():
        if is_metadata(key):
            continue
        answer = get(entry["id"], key)
        assert answer.status_code == 200, f"{key}: {answer.status_code} {answer.text}"
        assert answer.content == expected_bytes(value), key
        if isinstance(value, str):
            assert answer.headers["X-Cache"] in {"INLINE", "EDGE"}, (key, answer.headers["X-Cache"])
            kinds["inline"] += 1
        else:
            assert answer.headers["X-Cache"] in CACHED | {"MISS"}, (key, answer.headers["X-Cache"])
            kinds["whole" if len(value) == 1 else "ranged"] += 1
    assert kinds["inline"] and kinds["ranged"], kinds
    if entry["id"] == "holes-parq":
        assert kinds["whole"] == 1, kinds


def test_whole_file_key_is_the_raw_file() -> None:
    entry = entry_of("holes-parq")
    whole = (demo_dir() / demodata.HOLES_WHOLE_FILE).read_bytes()
    assert twin_refs(entry)["orog/0.0"] == [f"{stack_var('ZEC_ORIGIN_URL')}/{demodata.HOLES_WHOLE_FILE}"]
    first = get(entry["id"], "orog/0.0")
    assert first.status_code == 200, first.text
    assert first.content == whole and first.headers["X-Cache"] in CACHED | {"MISS"}
    assert "orog/0.0" in wait_for_entries(entry["id"], {"orog/0.0"})
    again = get(entry["id"], "orog/0.0")
    assert again.content == whole and again.headers["X-Cache"] in CACHED, again.headers["X-Cache"]
    orog = zarr.open_group(url_of(entry), mode="r", zarr_format=2)["orog"]
    np.testing.assert_array_equal(orog[...].ravel(), np.frombuffer(whole, orog.dtype))


def test_absent_chunks_are_404() -> None:
    """holes-parq's unwritten rain_rate chunks: null rows (404), and the keys of time step 2,
    whose record file kerchunk left out (the origin has no rain_rate/refs.2.parq): 404 too,
    every time; the written chunks beside them answer."""
    entry = entry_of("holes-parq")
    meta = zmetadata(entry)
    absent = demodata.holes_absent_keys()
    omitted = [k for k in absent if record_file_of(meta, k) == "rain_rate/refs.2.parq"]
    assert omitted and len(omitted) < len(absent), (omitted, absent)
    assert "rain_rate/refs.2.parq" not in record_files(entry)
    missing = requests.get(f"{stack_var('ZEC_ORIGIN_URL')}/{entry['refs']}/rain_rate/refs.2.parq", timeout=TIMEOUT)
    assert missing.status_code == 404
    for dataset in (entry["id"], entry["twin"]):
        for _ in range(2):
            for key in absent:
                for method in ("GET", "HEAD"):
                    answer = get(dataset, key, method=method)
                    assert answer.status_code == 404, f"{dataset} {method} {key}: {answer.status_code}"
                    if method == "GET":
                        assert answer.json()["error"] == "not_found", answer.text
    present = [k for k in grid_keys(meta) if k.startswith("rain_rate/") and k not in set(absent)]
    assert present
    for key in present:
        assert get(entry["id"], key).status_code == 200, key
    # Outside the grid: absent as well.
    assert get(entry["id"], "rain_rate/99.0.0").status_code == 404


# --------------------------------------------------------------------------- caching


def cold_copy(entry: dict) -> dict:
    """t-parq-cold-{twin}: a copy of the set (refs/{twin}-cold.parq/, edge tier off) that only
    this test reads, so its record files start uncached (scripts/test writes it)."""
    return {**entry, "id": f"t-parq-cold-{entry['twin']}", "refs": f"refs/{entry['twin']}-cold.parq"}


@pytest.mark.parametrize("entry", parquet_sets(), ids=lambda e: e["id"])
def test_record_files_are_cached_and_a_second_reader_hits(entry: dict) -> None:
    """A first reader (worker 1, every chunk key of the grid in order) fetches each record file
    from the origin once, and /api/stats/keys then lists each as an entry of its size; a second
    reader (worker 2: another isolate, no record file in its memory; same index and storage)
    gets every key from the cache (HIT, INLINE for inline keys, 404 for absent ones) without one
    origin request or one new miss."""
    copy = cold_copy(entry)
    dataset, meta, refs = copy["id"], zmetadata(copy), twin_refs(entry)
    keys = grid_keys(meta)
    present = {k for k in keys if k in refs}
    ranged = {k for k in present if isinstance(refs[k], list)}
    files = record_files(copy)
    assert files == record_files(entry) and files, dataset
    log = OriginLog()
    mark = log.mark()
    for key in keys:
        answer = get(dataset, key)
        assert answer.status_code == (200 if key in present else 404), f"{key}: {answer.text}"
        if key in present:
            assert answer.content == expected_bytes(refs[key]), key
    # The set's .zmetadata (its load) and each record file once.
    fetched = [p for p in log.since(mark) if p.startswith(f"/{copy['refs']}/") and not p.endswith("/.zmetadata")]
    # A record file the writer left out (no references in it) is asked for once too: a 404.
    existing = [p for p in fetched if (demo_dir() / p.lstrip("/")).is_file()]
    assert sorted(existing) == sorted(f"/{copy['refs']}/{name}" for name in files), fetched
    assert len(set(fetched)) == len(fetched), fetched
    entries = wait_for_entries(dataset, files | ranged)
    assert files <= set(entries), sorted(files - set(entries))
    for name in files:
        assert entries[name]["size"] == (demo_dir() / copy["refs"] / name).stat().st_size, (name, entries[name])
    assert ranged <= set(entries), sorted(ranged - set(entries))

    mark = log.mark()
    misses = stats_of(dataset)["misses"]
    for key in keys:
        answer = get(dataset, key, base=stack_var("ZEC_BASE_URL_2"))
        if key not in present:
            assert answer.status_code == 404, f"{key}: {answer.status_code} {answer.text}"
            continue
        assert answer.status_code == 200, f"{key}: {answer.text}"
        assert answer.content == expected_bytes(refs[key]), key
        want = "INLINE" if isinstance(refs[key], str) else "HIT"
        assert answer.headers["X-Cache"] == want, (key, answer.headers["X-Cache"])
    # Only the set's .zmetadata, if that isolate had not loaded the set yet. (holes' omitted
    # rain_rate/refs.2.parq is asked for again: test_an_omitted_record_file_is_remembered_absent.)
    omitted = {f"/{copy['refs']}/{record_file_of(meta, k)}" for k in keys} - {f"/{copy['refs']}/{n}" for n in files}
    since = log.since(mark)
    requested = [p for p in since if p != f"/{copy['refs']}/.zmetadata" and p not in omitted]
    assert requested == [], f"the second reader reached the origin: {requested}"
    # No new miss (but the omitted file's 404s, which count as one each while that bug lasts).
    assert stats_of(dataset)["misses"] == misses + sum(p in omitted for p in since)


def test_a_record_file_first_read_for_an_absent_key_is_cached() -> None:
    """t-parq-absent-first (a copy of holes.parq/ nothing else reads): its first request is for
    rain_rate/0.0.1, absent (a null row of rain_rate/refs.0.parq). The record file was read
    whole from the origin; it should be stored and listed like any other, so that another
    isolate reads it from the cache."""
    dataset, name = "t-parq-absent-first", "rain_rate/refs.0.parq"
    log = OriginLog()
    mark = log.mark()
    assert get(dataset, "rain_rate/0.0.1").status_code == 404
    assert log.since(mark).count(f"/refs/holes-absent-first.parq/{name}") == 1
    entries = wait_for_entries(dataset, {name}, seconds=5)
    mark = log.mark()
    second = get(dataset, "rain_rate/0.0.0", base=stack_var("ZEC_BASE_URL_2"))
    assert second.status_code == 200, second.text
    refetched = log.since(mark).count(f"/refs/holes-absent-first.parq/{name}")
    assert name in entries, sorted(entries)
    assert refetched == 0, "worker 2 fetched the record file from the origin again"


# --------------------------------------------------------------------------- bad record files

# Dataset -> (its bad record file, a chunk key in it, text the 502's message must hold besides
# the dataset and file). See scripts/test for how each file was made.
BAD = {
    "t-parq-truncated": ("air_temperature/refs.1.parq", "air_temperature/1.0.0", "parquet"),
    "t-parq-corrupt": ("air_temperature/refs.1.parq", "air_temperature/1.0.0", ""),
    "t-parq-garbage": ("air_temperature/refs.1.parq", "air_temperature/1.0.0", "parquet"),
    "t-parq-string-offset": ("air_temperature/refs.1.parq", "air_temperature/1.0.0", 'column "offset"'),
    # record_size 2 in the .zmetadata, 3 rows in each air_temperature file: key 0.0.0 is row 0 of
    # refs.0.parq (3 rows, more than 2).
    "t-parq-record-size": ("air_temperature/refs.0.parq", "air_temperature/0.0.0", "record_size 2"),
}


def bad_dir(dataset: str) -> Path:
    return demo_dir() / "refs" / f"air-bad-{dataset.removeprefix('t-parq-')}.parq"


@pytest.mark.parametrize("dataset", sorted(BAD))
def test_bad_record_file_answers_502_naming_dataset_and_file(dataset: str) -> None:
    name, key, why = BAD[dataset]
    assert (bad_dir(dataset) / name).is_file(), "scripts/test writes the bad sets"
    meta = json.loads((bad_dir(dataset) / ".zmetadata").read_text())
    assert record_file_of(meta, key) == name
    origin_path = f"/refs/{bad_dir(dataset).name}/{name}"
    log = OriginLog()
    messages = []
    for attempt in range(2):
        mark = log.mark()
        answer = get(dataset, key)
        assert answer.status_code == 502, f"attempt {attempt}: {answer.status_code} {answer.text}"
        body = answer.json()
        assert body["error"] == "bad_references", body
        assert f"dataset {dataset}" in body["message"] and f"record file {name}" in body["message"], body
        assert why in body["message"], body
        messages.append(body["message"])
        # Nothing of the file was stored: each read fetches it from the origin again.
        assert log.since(mark).count(origin_path) == 1, log.since(mark)
        # The worker is fine: another dataset answers at once.
        other = get("air-parq", "air_temperature/0.0.0")
        assert other.status_code == 200, other.text
        time.sleep(0.5)  # a write-back, had there been one, runs after the answer
        entries = stats_keys(dataset)
        assert name not in entries, entries[name]
        assert key not in entries, entries[key]
    assert messages[0] == messages[1]
    listing = requests.get(f"{base_url()}/api/datasets", timeout=TIMEOUT).json()["datasets"]
    row = next(d for d in listing if d["id"] == dataset)
    assert row["state"] == "loaded", row  # a bad record file is not a bad set


def test_an_omitted_record_file_is_remembered_absent() -> None:
    """t-parq-absent-first's rain_rate/refs.2.parq does not exist (kerchunk left it out): once
    an instance has seen the origin's 404 for it, the index remembers it absent (for the
    absent TTL), so the other worker answers its keys 404 without asking the origin."""
    dataset, path = "t-parq-absent-first", "/refs/holes-absent-first.parq/rain_rate/refs.2.parq"
    log = OriginLog()
    mark = log.mark()
    assert get(dataset, "rain_rate/2.0.0").status_code == 404
    assert log.since(mark).count(path) == 1
    time.sleep(1)  # the write-back runs after the answer
    mark = log.mark()
    start = time.monotonic()
    assert get(dataset, "rain_rate/2.1.1", base=stack_var("ZEC_BASE_URL_2")).status_code == 404
    took = time.monotonic() - start
    assert log.since(mark).count(path) == 0, f"worker 2 asked the origin again ({took:.2f} s)"
    assert took < 2, took


def test_a_record_size_larger_than_the_files_never_answers_another_chunk() -> None:
    """t-parq-record-size-larger: refs/air.parq/ with record_size 4 in its .zmetadata, its files
    of 3 rows (kerchunk pads every record file to record_size rows). Key n of a grid is row
    n % 4 of file n // 4, so air_temperature/1.0.0 (n = 4) would be row 0 of refs.1.parq:
    0.1.1's reference. The answer must be the 502 naming the file, or the right bytes; never
    the bytes of another chunk."""
    dataset, key = "t-parq-record-size-larger", "air_temperature/1.0.0"
    refs = twin_refs(entry_of("air-parq"))
    answer = get(dataset, key)
    if answer.status_code == 502:
        body = answer.json()
        assert body["error"] == "bad_references" and f"dataset {dataset}" in body["message"], body
        assert "air_temperature/refs.1.parq" in body["message"], body
        return
    assert answer.status_code == 200, answer.text
    others = [k for k, v in refs.items() if isinstance(v, list) and k != key and expected_bytes(v) == answer.content]
    assert answer.content == expected_bytes(refs[key]), f"{key} answered the bytes of {others}"


def test_a_bad_record_files_retry_answers_at_once() -> None:
    """t-parq-garbage-retry (the garbage file again, in a set nothing else reads): the first read
    answers 502 at once; so should a retry on the same worker and a read on the other worker."""
    dataset, key = "t-parq-garbage-retry", "air_temperature/1.0.0"
    took = []
    for base in (base_url(), base_url(), stack_var("ZEC_BASE_URL_2")):
        start = time.monotonic()
        answer = get(dataset, key, base=base)
        took.append(round(time.monotonic() - start, 2))
        assert answer.status_code == 502 and answer.json()["error"] == "bad_references", answer.text
    assert took[0] < 2, took
    assert max(took) < 2, f"seconds per read (first, retry, worker 2): {took}"


@pytest.mark.parametrize("dataset", sorted(BAD))
def test_bad_set_still_reads_its_other_variables(dataset: str) -> None:
    name, _, _ = BAD[dataset]
    air = entry_of("air")
    url = f"{base_url()}/zarr/{dataset}"
    ds = xr.open_zarr(url, consolidated=True, zarr_format=2)
    assert "air_temperature" in ds
    others = ds.drop_vars("air_temperature").load()
    originals = refcheck.open_originals(demo_dir(), air["files"], air["concat_dim"], True)
    refcheck.assert_same_dataset("air", others, originals.drop_vars("air_temperature"), True)
    # The chunks of air_temperature's other record files answer too.
    meta = json.loads((bad_dir(dataset) / ".zmetadata").read_text())
    refs = refcheck.body(refcheck.load_refs(demo_dir() / air["refs"]))
    good = [k for k in grid_keys(meta) if k.startswith("air_temperature/") and record_file_of(meta, k) != name]
    if dataset == "t-parq-record-size":
        good = []  # every air_temperature file has more rows than its record_size
    for key in good:
        answer = get(dataset, key)
        assert answer.status_code == 200, f"{key}: {answer.text}"
        assert answer.content == expected_bytes(refs[key]), key
    assert good or dataset == "t-parq-record-size"
