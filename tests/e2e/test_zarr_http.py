"""End to end: datasets of kind "zarr" (a Zarr store over HTTP, every key passed through to it)
read through the worker equal the same stores read from their origins directly.

Needs the stack that ``scripts/test`` starts (ZEC_BASE_URL, ZEC_ORIGIN_URL, ZEC_XPUBLISH_URL,
ZEC_XPUBLISH_LOG, ZEC_XPUBLISH_LIVE_URL, ZEC_STACK_CTL, ZEC_ADMIN_TOKEN); a missing variable fails
the test with instructions, it never skips.

* t-xp (a real xpublish, scripts/xpublish_origin.py): xarray through the worker is identical to
  xarray on xpublish; chunks read again come from the cache, not from xpublish;
* t-zarr-v2, t-zarr-v3 (the demo's static stores on nginx, demo/zarrstores.py): zarr-python,
  xarray and zarrita (tests/e2e/zarrita_read.mjs) read the same through the worker as from nginx;
* absent chunks (all fill value, never written) are 404 through the worker as at the origin;
* routes: xpublish's EDR API through /routes/t-xp/... equals its own answer, cached under the
  canonical query; other methods and other paths pass through uncached; a 500 answers 502;
* t-xp-restart (its own xpublish, restarted by ``$ZEC_STACK_CTL xpublish-restart``): a new data
  version is served whole once the metadata TTL has passed, never a mix of chunks; values changed
  without a metadata change stay cached until an admin version bump, then are served whole.
"""

import json
import subprocess
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
import zarrstores  # noqa: E402  (the demo's stores: their paths and absent chunks)
from stack import base_url, stack_var  # noqa: E402  (tests/e2e/stack.py)

STATIC = {2: "t-zarr-v2", 3: "t-zarr-v3"}
# t-xp-restart's metadata_ttl_seconds (scripts/test), and a margin for the restart's own clock.
METADATA_TTL = 2.0
MARGIN = 1.5
# What scripts/xpublish_origin.py adds to air_temperature per --data-version step.
VERSION_STEP = 10.0


def static_urls(zarr_format: int) -> tuple[str, str]:
    """(through the worker, from nginx) for the demo's static store of that format."""
    return (f"{base_url()}/zarr/{STATIC[zarr_format]}",
            f"{stack_var('ZEC_ORIGIN_URL')}/{zarrstores.STORES[zarr_format]}")


def xpublish_zarr(env: str = "ZEC_XPUBLISH_URL") -> str:
    return f"{stack_var(env)}/datasets/air/zarr"


def open_xr(url: str, zarr_format: int) -> xr.Dataset:
    return xr.open_zarr(url, zarr_format=zarr_format, consolidated=True).load()


def chunk_keys(url: str, zarr_format: int) -> dict[str, list[str]]:
    """Every chunk key of every array, from the store's consolidated metadata at ``url``."""
    if zarr_format == 3:
        metadata = requests.get(f"{url}/zarr.json", timeout=30).json()["consolidated_metadata"]["metadata"]
        arrays = {name: (m["shape"], m["chunk_grid"]["configuration"]["chunk_shape"], "/")
                  for name, m in metadata.items() if m["node_type"] == "array"}
    else:
        metadata = requests.get(f"{url}/.zmetadata", timeout=30).json()["metadata"]
        arrays = {key[: -len("/.zarray")]: (m["shape"], m["chunks"], m.get("dimension_separator") or ".")
                  for key, m in metadata.items() if key.endswith("/.zarray")}
    keys = {}
    for name, (shape, chunks, separator) in arrays.items():
        if not shape:  # a 0-d array has one chunk
            keys[name] = [f"{name}/c" if zarr_format == 3 else f"{name}/0"]
            continue
        grid = [-(-size // chunk) for size, chunk in zip(shape, chunks)]
        prefix = f"{name}/c/" if zarr_format == 3 else f"{name}/"
        keys[name] = [prefix + separator.join(map(str, index)) for index in np.ndindex(*grid)]
    return keys


def wait_until_cached(url: str, keys: list[str]) -> None:
    """Polls until every key answers X-Cache: HIT (write-backs run after the answer)."""
    deadline = time.monotonic() + 15
    for key in keys:
        while True:
            answer = requests.get(f"{url}/{key}", timeout=30)
            assert answer.status_code == 200, (key, answer.status_code, answer.text[:200])
            if answer.headers.get("X-Cache") == "HIT":
                break
            assert time.monotonic() < deadline, f"{url}/{key} is not cached: X-Cache {answer.headers.get('X-Cache')}"
            time.sleep(0.1)


def origin_requests(log_path: str, path: str) -> int:
    """GETs of ``path`` in a uvicorn access log (``"GET /path HTTP/1.1" 200``)."""
    needle = f'"GET {path} HTTP/1.1"'
    return sum(needle in line for line in Path(log_path).read_text().splitlines())


def zarrita(url: str, zarr_format: int) -> dict:
    run = subprocess.run(["node", str(ROOT / "tests/e2e/zarrita_read.mjs"), url, f"v{zarr_format}"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"zarrita could not read {url}:\n{run.stderr[-2000:]}"
    return json.loads(run.stdout)


def restart_live_xpublish(*args: str) -> None:
    """Restarts t-xp-restart's xpublish with ARGS, then waits out the dataset's metadata TTL."""
    line = f"{stack_var('ZEC_STACK_CTL')} xpublish-restart {' '.join(args)}"
    run = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{line} failed:\n{run.stderr[-2000:]}"
    time.sleep(METADATA_TTL + MARGIN)


def blocks_off_by(new: xr.DataArray, old: xr.DataArray, delta: float) -> list[tuple[int, ...]]:
    """The chunks (4x23x45 blocks of air_temperature) where ``new`` is not ``old + delta``."""
    chunks = (4, 23, 45)
    wrong = []
    for index in np.ndindex(*[-(-n // c) for n, c in zip(new.shape, chunks)]):
        block = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, chunks))
        if not np.allclose(new.values[block] - old.values[block], delta, atol=1e-3):
            wrong.append(index)
    return wrong


# --------------------------------------------------------------------------- xpublish (t-xp)


def test_xarray_reads_xpublish_through_worker_identical_to_xpublish() -> None:
    direct = open_xr(xpublish_zarr(), 3)
    through_worker = open_xr(f"{base_url()}/zarr/t-xp", 3)
    xr.testing.assert_identical(through_worker, direct)
    assert direct.attrs["_xpublish_id"] == "air" and direct["air_temperature"].dtype == np.float32


def test_xpublish_chunks_read_again_come_from_the_cache() -> None:
    url = f"{base_url()}/zarr/t-xp"
    keys = chunk_keys(url, 3)["air_temperature"]
    assert len(keys) == 8, keys
    open_xr(url, 3)
    wait_until_cached(url, keys)
    log = stack_var("ZEC_XPUBLISH_LOG")
    before = {k: origin_requests(log, f"/datasets/air/zarr/{k}") for k in keys}
    assert all(n >= 1 for n in before.values()), before  # they did reach xpublish once
    for _ in range(3):
        open_xr(url, 3)
    after = {k: origin_requests(log, f"/datasets/air/zarr/{k}") for k in keys}
    assert after == before, "chunks read again were fetched from xpublish again"


def test_absent_xpublish_keys_are_404() -> None:
    for key in ["air_temperature/c/9/0/0", "no_such_variable/zarr.json", "no_such_variable/c/0/0"]:
        assert requests.get(f"{xpublish_zarr()}/{key}", timeout=30).status_code == 404, key
        for _ in range(2):  # the second answer may be the remembered 404: still a 404
            assert requests.get(f"{base_url()}/zarr/t-xp/{key}", timeout=30).status_code == 404, key


# --------------------------------------------------------------------------- static stores (nginx)


@pytest.mark.parametrize("zarr_format", [2, 3], ids=["v2", "v3"])
def test_zarr_python_reads_static_store_through_worker_equal_to_nginx(zarr_format: int) -> None:
    worker_url, nginx_url = static_urls(zarr_format)
    through_worker = zarr.open_group(worker_url, mode="r", zarr_format=zarr_format, use_consolidated=True)
    direct = zarr.open_group(nginx_url, mode="r", zarr_format=zarr_format, use_consolidated=True)
    names = sorted(name for name, _ in direct.arrays())
    assert sorted(name for name, _ in through_worker.arrays()) == names
    assert "radar_precipitation" in names
    assert dict(through_worker.attrs) == dict(direct.attrs)
    for name in names:
        mine, theirs = through_worker[name], direct[name]
        assert (mine.shape, mine.chunks, mine.dtype) == (theirs.shape, theirs.chunks, theirs.dtype), name
        assert dict(mine.attrs) == dict(theirs.attrs), name
        np.testing.assert_array_equal(mine[...], theirs[...], err_msg=name)


@pytest.mark.parametrize("zarr_format", [2, 3], ids=["v2", "v3"])
def test_xarray_reads_static_store_through_worker_identical_to_nginx(zarr_format: int) -> None:
    worker_url, nginx_url = static_urls(zarr_format)
    direct = open_xr(nginx_url, zarr_format)
    xr.testing.assert_identical(open_xr(worker_url, zarr_format), direct)
    # The absent chunks read as the fill value: the radar saw nothing south of the equator.
    assert direct["radar_precipitation"].where(direct["lat"] < 0, drop=True).isnull().all()


@pytest.mark.parametrize("store", ["t-zarr-v2", "t-zarr-v3", "t-xp"])
def test_zarrita_reads_the_same_through_worker_as_from_origin(store: str) -> None:
    zarr_format = 2 if store == "t-zarr-v2" else 3
    if store == "t-xp":
        worker_url, origin_url = f"{base_url()}/zarr/t-xp", xpublish_zarr()
    else:
        worker_url, origin_url = static_urls(zarr_format)
    through_worker, direct = zarrita(worker_url, zarr_format), zarrita(origin_url, zarr_format)
    assert through_worker["attributes"] == direct["attributes"]
    assert sorted(through_worker["arrays"]) == sorted(direct["arrays"])
    for path, theirs in direct["arrays"].items():
        assert through_worker["arrays"][path] == theirs, path
    # The same keys with the same statuses: absent chunks were a 404 through the worker too.
    assert dict(map(tuple, through_worker["requests"])) == dict(map(tuple, direct["requests"]))
    # And zarrita decodes what zarr-python decodes (raw values: no CF decoding on either side).
    group = zarr.open_group(origin_url, mode="r", zarr_format=zarr_format, use_consolidated=True)
    for path, theirs in direct["arrays"].items():
        expected = np.asarray(group[path.lstrip("/")][...], dtype=np.float64).ravel()
        got = np.array([np.nan if v is None else v for v in theirs["values"]], dtype=np.float64)
        np.testing.assert_array_equal(got, expected, err_msg=path)


@pytest.mark.parametrize("zarr_format", [2, 3], ids=["v2", "v3"])
def test_absent_chunks_are_404_through_worker_as_at_nginx(zarr_format: int) -> None:
    worker_url, nginx_url = static_urls(zarr_format)
    for key in zarrstores.ABSENT_CHUNKS[zarr_format]:
        assert requests.get(f"{nginx_url}/{key}", timeout=30).status_code == 404, key
        for _ in range(2):
            assert requests.get(f"{worker_url}/{key}", timeout=30).status_code == 404, key
    present = "radar_precipitation/1.1.0" if zarr_format == 2 else "radar_precipitation/c/1/1/0"
    answer = requests.get(f"{worker_url}/{present}", timeout=30)
    assert answer.status_code == 200
    assert answer.content == requests.get(f"{nginx_url}/{present}", timeout=30).content


# --------------------------------------------------------------------------- routes (t-xp)


def test_edr_through_routes_equals_xpublish_and_is_cached_by_canonical_query() -> None:
    query = "coords=POINT(10%2020)&parameter-name=air_temperature&datetime=2020-01-01T06:00:00"
    reordered = "datetime=2020-01-01T06:00:00&parameter-name=air_temperature&coords=POINT(10%2020)"
    direct = requests.get(f"{stack_var('ZEC_XPUBLISH_URL')}/datasets/air/edr/position?{query}", timeout=30)
    assert direct.status_code == 200, direct.text
    route = f"{base_url()}/routes/t-xp/edr/position"
    first = requests.get(f"{route}?{query}", timeout=30)
    assert first.status_code == 200, first.text
    assert first.json() == direct.json()
    deadline = time.monotonic() + 15
    while (again := requests.get(f"{route}?{reordered}", timeout=30)).headers.get("X-Cache") != "HIT":
        assert time.monotonic() < deadline, f"the EDR answer is not cached: X-Cache {again.headers.get('X-Cache')}"
        time.sleep(0.1)
    assert again.status_code == 200 and again.json() == direct.json()
    info = requests.get(f"{base_url()}/routes/t-xp/info", timeout=30)
    assert info.status_code == 200
    assert info.json() == requests.get(f"{stack_var('ZEC_XPUBLISH_URL')}/datasets/air/info", timeout=30).json()


def test_routes_not_listed_and_other_methods_pass_through_uncached() -> None:
    echo = f"{base_url()}/routes/t-xp/echo/a/b"
    gets = [requests.get(f"{echo}?x=1", timeout=30).json() for _ in range(2)]
    assert gets[0]["method"] == "GET" and gets[0]["path"] == "/datasets/air/echo/a/b"
    assert gets[0]["query"] == "x=1"
    assert gets[1]["count"] > gets[0]["count"], "a route no rule lists was answered from a cache"
    posted = requests.post(f"{echo}?y=2", data=b"some body", timeout=30)
    assert posted.status_code == 200
    assert posted.json()["method"] == "POST" and posted.json()["body"] == "some body"
    # xpublish-edr's POST position query reaches xpublish (a cached pattern, but not a GET).
    body = "x,y\n10,20\n"
    direct = requests.post(f"{stack_var('ZEC_XPUBLISH_URL')}/datasets/air/edr/position?parameter-name=air_temperature",
                           data=body, headers={"Content-Type": "text/csv"}, timeout=30)
    through = requests.post(f"{base_url()}/routes/t-xp/edr/position?parameter-name=air_temperature",
                            data=body, headers={"Content-Type": "text/csv"}, timeout=30)
    assert direct.status_code == 200, direct.text
    assert through.status_code == 200 and through.json() == direct.json()


def test_an_origin_500_on_a_route_answers_502() -> None:
    assert requests.get(f"{stack_var('ZEC_XPUBLISH_URL')}/datasets/air/fail", timeout=30).status_code == 500
    assert requests.get(f"{base_url()}/routes/t-xp/fail", timeout=30).status_code == 502
    assert requests.get(f"{base_url()}/routes/t-xp/fail/deeper?q=1", timeout=30).status_code == 502


# --------------------------------------------------------------------------- restarts (t-xp-restart)


def test_new_data_version_is_served_whole_once_the_metadata_ttl_passed() -> None:
    live, through = xpublish_zarr("ZEC_XPUBLISH_LIVE_URL"), f"{base_url()}/zarr/t-xp-restart"
    restart_live_xpublish("--data-version", "1")  # a known start, whatever ran before
    old = open_xr(through, 3)
    xr.testing.assert_identical(old, open_xr(live, 3))
    assert old.attrs["data_version"] == 1
    wait_until_cached(through, chunk_keys(through, 3)["air_temperature"])

    restart_live_xpublish("--data-version", "2")
    new = open_xr(through, 3)
    direct = open_xr(live, 3)
    assert direct.attrs["data_version"] == 2
    stale = blocks_off_by(new["air_temperature"], old["air_temperature"], VERSION_STEP)
    assert not stale, f"chunks of air_temperature not from data version 2: {stale}"
    xr.testing.assert_identical(new, direct)


def test_values_changed_without_metadata_are_served_after_an_admin_version_bump() -> None:
    live, through = xpublish_zarr("ZEC_XPUBLISH_LIVE_URL"), f"{base_url()}/zarr/t-xp-restart"
    restart_live_xpublish("--data-version", "2")
    before = open_xr(through, 3)
    xr.testing.assert_identical(before, open_xr(live, 3))
    wait_until_cached(through, chunk_keys(through, 3)["air_temperature"])
    document = requests.get(f"{live}/zarr.json", timeout=30).content

    restart_live_xpublish("--data-version", "2", "--values-offset", "5")
    assert requests.get(f"{live}/zarr.json", timeout=30).content == document  # nothing to notice
    # The cache cannot know: the cached chunks are still what it serves.
    xr.testing.assert_identical(open_xr(through, 3), before)

    admin = f"{base_url()}/api/admin/datasets/t-xp-restart/version"
    assert requests.post(admin, timeout=30).status_code == 401
    bumped = requests.post(admin, headers={"Authorization": f"Bearer {stack_var('ZEC_ADMIN_TOKEN')}"}, timeout=30)
    assert bumped.ok, (bumped.status_code, bumped.text)
    after = open_xr(through, 3)
    stale = blocks_off_by(after["air_temperature"], before["air_temperature"], 5.0)
    assert not stale, f"chunks of air_temperature from before the version bump: {stale}"
    xr.testing.assert_identical(after, open_xr(live, 3))
