"""Tests for the committed kerchunk fixtures in tests/fixtures/kerchunk/ (see its README.md).

* the real kerchunk outputs read back (via ReferenceFileSystem, http://origin.test mapped
  onto data/) as exactly the original netCDF files;
* the hand-written spec examples expand as the spec says, and as the committed
  ``*.expanded.json`` files say;
* demo/make_fixtures.py reproduces the committed files byte for byte (when the library
  versions are those recorded in manifest.json).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import fsspec
import numpy as np
import pytest
import xarray as xr

import refcheck

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "kerchunk"
DATA = FIXTURES / "data"
ORIGIN = "http://origin.test"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
ENTRIES = {e["file"]: e for e in MANIFEST["fixtures"]}
REAL = {"hdf5_single.json": "air", "v0_hdf5_single.json": "air",
        "combine_series.json": "series", "netcdf3_classic.json": "classic"}

# The version-0 expansion printed in the reference spec for its version-1 example.
SPEC_V1_EXPANSION = {
    "key0": "data",
    "key1": ["http://target_url", 10000, 100],
    "key2": ["http://server.domain/path", 10000, 100],
    "key3": ["http://text", 10000, 100],
    "gen_key0": ["http://server.domain/path_0", 1000, 1000],
    "gen_key1": ["http://server.domain/path_1", 2000, 1000],
    "gen_key2": ["http://server.domain/path_2", 3000, 1000],
    "gen_key3": ["http://server.domain/path_3", 4000, 1000],
    "gen_key4": ["http://server.domain/path_4", 5000, 1000],
}


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def reference_fs(refs: dict, **kwargs) -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("reference", fo=copy.deepcopy(refs), simple_templates=False, **kwargs)


def expansion(refs: dict) -> dict:
    fs = reference_fs(refs, fs={"memory": fsspec.filesystem("memory")})  # opens no target
    return dict(fs.references)


def as_json_values(expanded: dict) -> dict:
    """Expanded refs with embedded-JSON strings parsed, so formatting doesn't matter."""
    out = {}
    for key, value in expanded.items():
        if isinstance(value, str) and key.rsplit("/", 1)[-1].startswith(".z"):
            value = json.loads(value)
        out[key] = value
    return out


def test_manifest_lists_every_fixture():
    listed = set(ENTRIES) | {e["expanded"] for e in ENTRIES.values() if "expanded" in e}
    on_disk = {p.name for p in FIXTURES.glob("*.json")} - {"manifest.json"}
    assert listed == on_disk
    for entry in ENTRIES.values():
        for f in entry.get("files", []):
            assert (DATA / f).is_file(), f


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_fixture_json_is_small(name):
    assert (FIXTURES / name).stat().st_size < 50_000


@pytest.mark.parametrize("decode", [True, False], ids=["cf-decoded", "raw"])
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_fixture_reads_back_as_the_original(name, decode):
    entry, refs = ENTRIES[name], load(name)
    assert refcheck.ranged_urls(refs) <= {f"{ORIGIN}/{f}" for f in entry["files"]}
    zarr_ds = refcheck.open_references(refs, ORIGIN, DATA, decode)
    orig = refcheck.open_originals(DATA, entry["files"], entry["concat_dim"], decode)
    refcheck.assert_same_dataset(REAL[name], zarr_ds, orig, decode)


def test_hdf5_fixture_has_inline_base64_plain_and_ranged_chunks():
    chunks = {k: v for k, v in load("hdf5_single.json")["refs"].items() if not k.rsplit("/", 1)[-1].startswith(".z")}
    values = list(chunks.values())
    assert any(isinstance(v, str) and v.startswith("base64:") for v in values)
    assert any(isinstance(v, str) and not v.startswith("base64:") for v in values)  # raw UTF-8 text
    assert any(isinstance(v, list) and len(v) == 3 for v in values)


def test_v0_fixture_is_the_v1_refs():
    assert load("v0_hdf5_single.json") == load("hdf5_single.json")["refs"]


def test_spec_v1_example_expands_as_in_the_spec():
    assert expansion(load("spec_v1_example.json")) == SPEC_V1_EXPANSION
    assert load("spec_v1_example.expanded.json") == SPEC_V1_EXPANSION


@pytest.mark.parametrize("name", [n for n, e in ENTRIES.items() if "expanded" in e])
def test_expanded_files_match_fsspec(name):
    expected = load(ENTRIES[name]["expanded"])
    assert as_json_values(expansion(load(name))) == as_json_values(expected)


def test_gen_example_expansion_by_hand():
    expanded = load("gen_zarr_example.expanded.json")
    raw = f"{ORIGIN}/raw"
    assert {k: v for k, v in expanded.items() if k.startswith(("temp/", "decadal/")) and "/." not in k} == {
        "temp/0.0": [f"{raw}/temp.bin", 64, 16],
        "temp/0.1": [f"{raw}/temp.bin", 80, 16],
        "temp/1.0": [f"{raw}/temp.bin", 96, 16],
        "temp/1.1": [f"{raw}/temp.bin", 112, 16],
        "decadal/0": [f"{raw}/decade_1990.bin"],
        "decadal/1": [f"{raw}/decade_2000.bin"],
        "decadal/2": [f"{raw}/decade_2010.bin"],
    }
    assert expanded["header"] == [f"{raw}/temp.bin", 0, 64]
    assert expanded["notes/whole"] == [f"{raw}/decade_2000.bin"]


@pytest.mark.filterwarnings("ignore:Object at .* is not recognized as a component of a Zarr hierarchy")
def test_gen_example_reads_real_bytes_with_a_template_override():  # header, notes/* are not zarr keys
    refs = load("gen_zarr_example.json")
    overrides = {"u": str(DATA / "raw")}
    fs = reference_fs(refs, template_overrides=dict(overrides), remote_protocol="file")
    assert fs.cat("notes/plain") == b"hello, zarr"
    assert fs.cat("notes/binary") == bytes([0, 1, 2, 3, 255])
    assert fs.cat("header").startswith(b"zarr-edge-cache raw chunk file")
    storage_options = {"fo": copy.deepcopy(refs), "simple_templates": False,
                       "template_overrides": overrides, "remote_protocol": "file"}
    ds = xr.open_dataset("reference://", engine="zarr",
                         backend_kwargs={"consolidated": False, "storage_options": storage_options})
    np.testing.assert_array_equal(ds["temp"].values, np.arange(8.0).reshape(2, 4) * 1.5 + 270.0)
    np.testing.assert_array_equal(ds["decadal"].values, [801.5, 812.25, 790.0])
    assert ds.attrs["title"] == "gen/templates example (hand-written)"


def test_make_fixtures_reproduces_committed_files(tmp_path):
    recorded = MANIFEST["library_versions"]
    current = {name: metadata.version(name) for name in recorded}
    if current != recorded:
        pytest.skip(f"fixtures were made with {recorded}, this environment has {current}")
    run = subprocess.run([sys.executable, str(HERE / "make_fixtures.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert made, "make_fixtures wrote nothing"
    stale = [str(rel) for rel in made if (tmp_path / rel).read_bytes() != (FIXTURES / rel).read_bytes()]
    assert not stale, f"committed fixtures differ from demo/make_fixtures.py output: {stale}"
    committed_data = sorted(p.relative_to(FIXTURES) for p in DATA.rglob("*") if p.is_file())
    assert committed_data == [rel for rel in made if rel.parts[0] == "data"]
