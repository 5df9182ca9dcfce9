"""Tests for demo/generate.py: the kerchunk references it writes reproduce the original files.

No server is involved: the references' ``BASE_URL/...`` URLs are mapped back onto the
generated directory and read through fsspec's ReferenceFileSystem (see refcheck.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import refcheck

HERE = Path(__file__).resolve().parent
GENERATE = HERE / "generate.py"
BASE_URL = "http://origin.invalid:8090/demo"  # never contacted
IDS = ["air", "series", "classic"]


def run_generator(out: Path, *extra: str, base_url: str = BASE_URL) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(GENERATE), "--out", str(out), "--base-url", base_url, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run = run_generator(out)
    assert run.returncode == 0, run.stderr
    assert "wrote refs/air.json" in run.stdout
    return out


@pytest.fixture(scope="module")
def datasets(archive) -> dict[str, dict]:
    return {d["id"]: d for d in json.loads((archive / "datasets.json").read_text())}


def refs_of(archive: Path, entry: dict) -> dict:
    return refcheck.load_refs(archive / entry["refs"])


def chunk_refs(refs: dict) -> dict:
    """References that are chunks (not .zarray/.zattrs/.zgroup metadata)."""
    return {k: v for k, v in refs["refs"].items() if not k.rsplit("/", 1)[-1].startswith(".z")}


def test_datasets_json_lists_all_datasets(archive, datasets):
    assert list(datasets) == IDS
    for entry in datasets.values():
        assert set(entry) == {"id", "refs", "files", "concat_dim", "description"}
        assert (archive / entry["refs"]).is_file()
        assert all((archive / f).is_file() for f in entry["files"])
    assert datasets["series"]["concat_dim"] == "time"
    assert len(datasets["series"]["files"]) == 4
    assert datasets["air"]["concat_dim"] is None and datasets["classic"]["concat_dim"] is None


@pytest.mark.parametrize("dataset_id", IDS)
def test_references_are_kerchunk_v1_pointing_at_base_url(archive, datasets, dataset_id):
    entry = datasets[dataset_id]
    refs = refs_of(archive, entry)
    assert refs["version"] == 1
    assert ".zgroup" in refs["refs"] and ".zmetadata" not in refs["refs"]
    for key, value in refs["refs"].items():
        if key.rsplit("/", 1)[-1].startswith(".z"):
            json.loads(value)  # metadata is embedded JSON text
        else:
            assert isinstance(value, str) or len(value) in (1, 3), key
    expected = {f"{BASE_URL}/{f}" for f in entry["files"]}
    assert refcheck.ranged_urls(refs) == expected  # every file, and nothing else, is referenced


@pytest.mark.parametrize("decode", [True, False], ids=["cf-decoded", "raw"])
@pytest.mark.parametrize("dataset_id", IDS)
def test_reference_read_equals_original(archive, datasets, dataset_id, decode):
    entry = datasets[dataset_id]
    zarr_ds = refcheck.open_references(refs_of(archive, entry), BASE_URL, archive, decode)
    orig = refcheck.open_originals(archive, entry["files"], entry["concat_dim"], decode)
    refcheck.assert_same_dataset(dataset_id, zarr_ds, orig, decode)


def test_chunking_matches_hdf5_layout(archive, datasets):
    entry = datasets["air"]
    zarr_ds = refcheck.open_references(refs_of(archive, entry), BASE_URL, archive, decode=False)
    orig = refcheck.open_originals(archive, entry["files"], None, decode=False)
    for name in ("air_temperature", "precipitation"):
        assert zarr_ds[name].encoding["chunks"] == orig[name].encoding["chunksizes"]
    keys = chunk_refs(refs_of(archive, entry))
    assert sum(k.startswith("air_temperature/") for k in keys) > 4  # several chunks per variable
    assert sum(k.startswith("precipitation/") for k in keys) > 4


def test_air_mixes_inline_and_ranged_chunks(archive, datasets):
    chunks = chunk_refs(refs_of(archive, datasets["air"]))
    inline = {k: v for k, v in chunks.items() if isinstance(v, str)}
    ranged = {k: v for k, v in chunks.items() if isinstance(v, list)}
    assert {"lat/0", "lon/0", "time/0"} <= set(inline)
    assert any(v.startswith("base64:") for v in inline.values())
    assert all(k in ranged for k in chunks if k.startswith(("air_temperature/", "precipitation/")))
    assert all(len(v) == 3 and v[2] > 0 for v in ranged.values())


def test_series_is_a_real_multi_file_combine(archive, datasets):
    refs = refs_of(archive, datasets["series"])
    sst = [v for k, v in chunk_refs(refs).items() if k.startswith("sst/")]
    per_file = {url: sum(v[0] == url for v in sst) for url in refcheck.ranged_urls(refs) if "ocean_" in url}
    assert len(per_file) == 4 and all(n >= 4 for n in per_file.values())
    assert json.loads(refs["refs"]["time/.zarray"])["shape"] == [len(sst)]


def test_second_run_is_up_to_date_and_fast(archive):
    before = tree_digest(archive)
    started = time.monotonic()
    run = run_generator(archive)
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"demo data up to date in {archive}"
    assert elapsed < 2.0, f"up-to-date check took {elapsed:.2f}s"
    assert tree_digest(archive) == before


def test_force_regenerates_byte_identical_files(archive):
    before = tree_digest(archive)
    run = run_generator(archive, "--force")
    assert run.returncode == 0, run.stderr
    assert "generating demo data" in run.stdout
    assert tree_digest(archive) == before  # deterministic: same bytes, same stamp


def test_other_base_url_invalidates_stamp(archive):
    sys.path.insert(0, str(HERE))
    import generate

    assert generate.is_up_to_date(archive, generate.stamp_for(BASE_URL))
    assert not generate.is_up_to_date(archive, generate.stamp_for("http://elsewhere.invalid"))


def test_bad_arguments_fail_with_a_message(tmp_path):
    run = run_generator(tmp_path / "x", base_url="ftp://nope")
    assert run.returncode != 0
    assert "--base-url must be an http(s) URL" in run.stderr
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    run = run_generator(blocker)
    assert run.returncode == 1
    assert run.stderr.startswith("error: demo data generation failed:")


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_stores_hold_air_with_absent_fill_chunks(archive, zarr_format):
    """zarr/air-v{2,3}.zarr read back equal to air.nc; the radar variable's all-NaN chunks are
    not files (an origin's 404), its others are; metadata is consolidated."""
    sys.path.insert(0, str(HERE))
    import numpy as np
    import xarray as xr
    import zarrstores

    path = archive / zarrstores.STORES[zarr_format]
    stored = xr.open_zarr(path, zarr_format=zarr_format, consolidated=True).load()
    with xr.open_dataset(archive / "air.nc", engine="netcdf4") as nc:
        original = nc.load()
    for name in original.variables:
        xr.testing.assert_identical(stored[name], original[name])
    radar = stored["radar_precipitation"]
    north = (stored["lat"] >= 0).values
    assert radar.isel(lat=~north).isnull().all()
    # The north is precipitation (NaN where air.nc has its missing swath too).
    np.testing.assert_allclose(radar.isel(lat=north), original["precipitation"].isel(lat=north), rtol=1e-6)
    for key in zarrstores.ABSENT_CHUNKS[zarr_format]:
        assert not (path / key).exists(), key
    present = "radar_precipitation/1.1.0" if zarr_format == 2 else "radar_precipitation/c/1/1/0"
    assert (path / present).is_file()
    root = ".zmetadata" if zarr_format == 2 else "zarr.json"
    consolidated = json.loads((path / root).read_text())
    assert "radar_precipitation/.zarray" in consolidated["metadata"] if zarr_format == 2 \
        else "radar_precipitation" in consolidated["consolidated_metadata"]["metadata"]
