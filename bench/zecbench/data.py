"""Benchmark data: one netCDF4/HDF5 file, its kerchunk references, the same chunk bytes as static
files (the nginx floor), synthetic reference sets of 10k/100k/1M references, and a parquet reference
set of 10M chunks (``bench/bigrefs.py``).

Everything goes under ``STATE/www``, which the benchmark's nginx origin serves:

* ``data/bench.nc``: the file (deterministic values, shuffle+zlib chunks, like the demo's
  ``air.nc``), written with netCDF4 and indexed with kerchunk's ``SingleHdf5ToZarr``;
* ``data/<alias>.nc``: a hard link of it per worker dataset alias, so every alias's references
  name a URL of their own: the worker's storage keys are content-addressed by (URL, offset,
  length), so a fresh alias over a fresh URL has nothing in the index *and* nothing in R2 (or in
  S3: the S3-storage worker's aliases ``b-<profile>-s3-c<N>`` are their own too);
* ``refs/<alias>.json``: the kerchunk references of each worker alias (chunk URLs through the
  loopback origin or through the slow proxy, depending on the alias's profile);
* ``refs/direct-<profile>.json``: the references the Python readers use (ReferenceFileSystem,
  fsspec's caches, xpublish): ``data/bench.nc`` at the origin or through the proxy;
* ``floor/<var>/<i.j.k>``: each chunk's bytes as a file, for nginx to serve as static files;
* ``refs/synth-<N>.json``: synthetic kerchunk JSON with N explicit range references;
* ``bigrefs/``: a symbolic link to ``bench/bigrefs.py``'s output, kept (with its stamp) in the
  cache directory: ``bigrefs/big/part-NNN.bin`` and the kerchunk **parquet** references
  ``bigrefs/refs/big.parq/`` of its chunks (10M in the full run), the worker's dataset
  ``big-parquet``; the manifest also holds a random sample of its keys with the sha256 that
  fsspec's ReferenceFileSystem reads for them (``bigrefs.py --sample``);
* ``data/bf-<profile>/bench.nc``: a hard link of the file per block-mode dataset (kind ``files``,
  ``bf-<profile>``, whose ``url`` is that directory, through the loopback origin or the proxy), so
  its URL is its own and its cold pass finds nothing cached.

Beside the kerchunk aliases, the worker's datasets include (when xpublish runs) one of kind
``zarr`` per profile and concurrency, ``xw-<profile>-c<N>``, fronting xpublish's dataset of the
same id (``bench/xpublish_server.py`` serves ``xp-…`` for the direct reads and ``xw-…`` for these).

``STATE/manifest.json`` lists all of it for the measuring step, with the digest of the file's
values as xarray + h5netcdf load them (``dataset_digest``: what every whole-file read must load).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from .config import Config, Variable

HERE = Path(__file__).resolve().parent
BIGREFS = HERE.parent / "bigrefs.py"
BIGREFS_DATASET = "big-parquet"


def _field(var: Variable, t: int, rng: np.random.Generator) -> np.ndarray:
    """One time step of ``var``: a smooth travelling pattern plus noise, or (``var.noise``) only
    uniform noise (deterministic)."""
    _, ny, nx = var.shape
    if var.noise:
        return rng.random((ny, nx), dtype=np.float32)
    y = np.linspace(-np.pi / 2, np.pi / 2, ny)[:, None]
    x = np.linspace(0.0, 2 * np.pi, nx, endpoint=False)[None, :]
    if var.dtype == "f4":
        base = 300.0 - 45.0 * np.sin(y) ** 2 + 6.0 * np.cos(y) * np.sin(3 * x - t / 8.0)
        return (base + rng.normal(0.0, 0.5, (ny, nx))).astype(np.float32)
    # sparse "precipitation" in 0.1 mm: mostly zero, gamma-distributed where it rains
    rain = np.clip(rng.gamma(0.5, 2.0, (ny, nx)) - 1.0, 0.0, None) * (1.0 + np.cos(2 * y + x - t / 5.0))
    return np.round(rain * 10.0).astype(np.int16)


def write_netcdf(path: Path, config: Config) -> None:
    import netCDF4

    rng = np.random.default_rng(20240611)
    times = {v.shape[0] for v in config.variables}
    lats = {v.shape[1] for v in config.variables}
    lons = {v.shape[2] for v in config.variables}
    assert len(times) == len(lats) == len(lons) == 1, "benchmark variables share one grid"
    nt, ny, nx = times.pop(), lats.pop(), lons.pop()
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncattr("title", f"zarr-edge-cache benchmark data ({config.name})")
        nc.createDimension("time", nt)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        for name, n, lo, hi, units in (("lat", ny, -90.0, 90.0, "degrees_north"),
                                       ("lon", nx, 0.0, 360.0 - 360.0 / nx, "degrees_east")):
            v = nc.createVariable(name, "f4", (name,))
            v.units = units
            v[:] = np.linspace(lo, hi, n, dtype=np.float32)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "hours since 2020-01-01 00:00:00"
        t.calendar = "standard"
        t[:] = np.arange(nt, dtype=np.float64) * 6.0
        for var in config.variables:
            fill = np.float32(-9999.0) if var.dtype == "f4" else np.int16(-32767)
            v = nc.createVariable(var.name, var.dtype, ("time", "lat", "lon"), zlib=True, complevel=4,
                                  shuffle=True, chunksizes=var.chunks, fill_value=fill)
            v.set_auto_maskandscale(False)
            for step in range(nt):
                v[step] = _field(var, step, rng)


def dataset_digest(ds) -> bytes:
    """Every variable of a loaded xarray Dataset (coordinates too): dtype, shape and the CRC-32 of
    its values, as canonical JSON. Two reads of the same file load the same values exactly when
    their digests are equal."""
    out = {}
    for name in sorted(ds.variables, key=str):
        values = np.ascontiguousarray(ds.variables[name].values)
        out[str(name)] = [values.dtype.str, list(values.shape), zlib.crc32(values.tobytes())]
    return json.dumps(out, sort_keys=True).encode()


def file_digest(path: Path) -> str:
    """`dataset_digest` of a local netCDF4 file opened as the whole-file readers open it."""
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return dataset_digest(ds.load()).decode()


def kerchunk_refs(path: Path) -> dict:
    import kerchunk.hdf

    h5 = kerchunk.hdf.SingleHdf5ToZarr(str(path), inline_threshold=0, error="raise")
    try:
        return h5.translate()
    finally:
        h5.close()


def with_url(refs: dict, url: str) -> dict:
    """A copy of single-file ``refs`` whose range references all point at ``url``."""
    out = {}
    for key, value in refs["refs"].items():
        out[key] = [url, *value[1:]] if isinstance(value, list) else value
    return {**refs, "refs": out}


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def synth_dims(n: int) -> tuple[int, int, int]:
    if n % 10_000 == 0:
        return (n // 10_000, 100, 100)
    return (1, 1, n)


def synth_length(i: int) -> int:
    """The length of the `i`-th reference (C order) of a synthetic set."""
    return 1000 + (i * 7919) % 60000


def write_synth_refs(path: Path, n: int, urls: list[str], file_size: int) -> int:
    """Kerchunk JSON (version 1) with ``n`` explicit range references, keys ``temp/i.j.k`` over
    ``len(urls)`` URLs, like the native ``kerchunk_load`` example's. Returns the JSON size."""
    a, b, c = synth_dims(n)
    zarray = {"chunks": [1, 16, 16], "compressor": {"id": "zlib", "level": 4}, "dtype": "<f4",
              "fill_value": None, "filters": None, "order": "C", "shape": [a, b * 16, c * 16],
              "zarr_format": 2}
    head = {".zgroup": json.dumps({"zarr_format": 2}),
            ".zattrs": json.dumps({"title": f"synthetic reference set, {n} references"}),
            "temp/.zarray": json.dumps(zarray),
            "temp/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["time", "y", "x"]})}
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as f:
        f.write('{"version":1,"refs":{')
        f.write(",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in head.items()))
        i = 0
        lines = []
        for x in range(a):
            for y in range(b):
                for z in range(c):
                    length = synth_length(i)
                    offset = (i * 104729) % max(1, file_size - length)
                    lines.append(f',"temp/{x}.{y}.{z}":["{urls[i % len(urls)]}",{offset},{length}]')
                    i += 1
                if len(lines) > 50_000:
                    f.write("".join(lines))
                    lines.clear()
        f.write("".join(lines))
        f.write("}}\n")
    tmp.rename(path)
    return path.stat().st_size


def prepare_bigrefs(www: Path, config: Config, origin_url: str, cache_dir: Path, log=print) -> tuple[dict, dict]:
    """The parquet reference set: ``bench/bigrefs.py`` writes it into the cache (it does nothing
    when its stamp is up to date: a 10M-chunk set takes about 70 s to write), ``www/bigrefs``
    links to it, and a random sample of its keys (a new seed every run) is read with fsspec's
    ReferenceFileSystem for the worker's answers to be checked against. Returns the manifest
    entry and the worker's dataset."""
    out = cache_dir / f"bigrefs-{config.name}-{config.bigrefs_chunks}"
    base_url = f"{origin_url}/bigrefs"
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(BIGREFS), "--out", str(out), "--base-url", base_url,
           "--chunks", str(config.bigrefs_chunks), "--record-size", str(config.bigrefs_record_size)]
    started = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True)
    for line in (run.stdout + run.stderr).strip().splitlines():
        log(f"  bigrefs: {line.strip()}")
    if run.returncode:
        raise RuntimeError(f"bench/bigrefs.py failed (exit {run.returncode})")
    generate_s = time.monotonic() - started
    (www / "bigrefs").symlink_to(out.resolve(), target_is_directory=True)
    seed = random.SystemRandom().randrange(1 << 31)
    started = time.monotonic()
    run = subprocess.run([sys.executable, str(BIGREFS), "--out", str(out), "--base-url", base_url,
                          "--sample", str(config.bigrefs_sample), "--seed", str(seed)],
                         capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"bench/bigrefs.py --sample failed (exit {run.returncode}): {run.stderr.strip()[-500:]}")
    sample = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    log(f"  bigrefs: {len(sample)} sample keys (seed {seed}) read by fsspec's ReferenceFileSystem "
        f"in {time.monotonic() - started:.1f}s")
    root = out / "refs" / "big.parq"
    meta = json.loads((root / ".zmetadata").read_text())
    rows, cols = meta["metadata"]["v/.zarray"]["shape"]
    record_files = sorted(p for p in root.rglob("*.parq") if p.is_file())
    parts = sorted((out / "big").glob("part-*.bin"))
    entry = {"id": BIGREFS_DATASET, "chunks": rows * cols, "rows": rows, "cols": cols, "var": "v",
             "record_size": meta["record_size"], "record_files": len(record_files),
             "refs_bytes": sum(p.stat().st_size for p in record_files) + (root / ".zmetadata").stat().st_size,
             "part_files": len(parts), "part_bytes": sum(p.stat().st_size for p in parts),
             "per_file": math.ceil(rows * cols / len(parts)) if parts else None,
             "refs_url": f"{base_url}/refs/big.parq/", "generate_s": round(generate_s, 1),
             "sample_seed": seed, "sample": sample}
    dataset = {"refs": entry["refs_url"], "edge_ttl_seconds": 0, "allowed_hosts": [host_of(origin_url)],
               "description": f"parquet reference set ({entry['chunks']:,} chunks, bench/bigrefs.py)"}
    return entry, dataset


def prepare(state: Path, config: Config, origin_url: str, proxy_url: str, cache_dir: Path,
            log=print, xpublish_url: str | None = None) -> dict:
    """Write the benchmark data under ``state/www`` and return the manifest (also written)."""
    www = state / "www"
    if www.exists():
        shutil.rmtree(www)
    (www / "data").mkdir(parents=True)
    (www / "refs").mkdir()
    (www / "datasets.json").write_text("[]\n")  # scripts/lib.sh write_worker_vars reads it
    nc_path = www / "data" / "bench.nc"
    write_netcdf(nc_path, config)
    refs = kerchunk_refs(nc_path)
    size = nc_path.stat().st_size
    log(f"  data/bench.nc: {size / 1e6:.1f} MB, {len(refs['refs'])} references")
    blob = nc_path.read_bytes()

    variables = {}
    for var in config.variables:
        keys = []
        for key, value in sorted(refs["refs"].items()):
            if key.startswith(var.name + "/") and not key.split("/")[-1].startswith(".") \
                    and isinstance(value, list):
                _, offset, length = value
                chunk = blob[offset:offset + length]
                floor = www / "floor" / key
                floor.parent.mkdir(parents=True, exist_ok=True)
                floor.write_bytes(chunk)
                keys.append({"key": key.split("/", 1)[1], "offset": offset, "length": length,
                             "crc32": zlib.crc32(chunk)})
        if not keys:
            raise RuntimeError(f"no chunk references for {var.name}")
        variables[var.name] = {"shape": list(var.shape), "chunks": list(var.chunks), "dtype": var.dtype,
                               "keys": keys, "bytes": sum(k["length"] for k in keys)}
        log(f"  {var.name}: {len(keys)} chunks, {variables[var.name]['bytes'] / 1e6:.1f} MB "
            f"({variables[var.name]['bytes'] / len(keys) / 1e3:.0f} KB per chunk)")

    base = {"loopback": origin_url.rstrip("/"), "remote": proxy_url.rstrip("/")}
    datasets: dict[str, dict] = {}
    aliases: dict[str, dict] = {}
    direct: dict[str, str] = {}
    for profile in config.profiles:
        direct_refs = www / "refs" / f"direct-{profile}.json"
        direct_refs.write_text(json.dumps(with_url(refs, f"{base[profile]}/data/bench.nc")))
        direct[profile] = str(direct_refs)
        names = [(f"b-{profile}-c{c}", 0, c, "r2") for c in config.concurrency] + \
            [(f"b-{profile}-edge", 600, None, "r2")]
        if profile == "loopback":
            # warm hits and EDGE hits for the CPU profiles
            names += [("b-cpu", 0, None, "r2"), ("b-cpu-edge", 600, None, "r2")]
        # read through the second worker, whose chunk store is S3 (s3s-fs): aliases of their own,
        # so nothing the R2 passes cached is in the index for them
        names += [(f"b-{profile}-s3-c{c}", 0, c, "s3") for c in config.concurrency]
        for alias, edge_ttl, conc, storage in names:
            link(nc_path, www / "data" / f"{alias}.nc")
            url = f"{base[profile]}/data/{alias}.nc"
            (www / "refs" / f"{alias}.json").write_text(json.dumps(with_url(refs, url)))
            datasets[alias] = {"refs": f"{origin_url}/refs/{alias}.json", "ttl_seconds": 3600,
                               "edge_ttl_seconds": edge_ttl,
                               # the refs' host too: loopback hosts are allowed only when listed
                               "allowed_hosts": sorted({host_of(url), host_of(origin_url)}),
                               "description": f"benchmark alias ({profile} origin)"}
            aliases[alias] = {"profile": profile, "edge": bool(edge_ttl), "concurrency": conc, "storage": storage}

    # xpublish's datasets (bench/xpublish_server.py): per profile and concurrency one read directly
    # (xp-…) and one read through the worker (xw-…), each cold for its own cold pass; the worker's
    # dataset of kind "zarr" fronting xw-… has the same id, so it starts empty too.
    xpublish_datasets: dict[str, str] = {}
    for profile in config.profiles:
        for c in config.concurrency:
            xpublish_datasets[f"xp-{profile}-c{c}"] = profile
            xpublish_datasets[f"xw-{profile}-c{c}"] = profile
            if xpublish_url:
                dataset_id = f"xw-{profile}-c{c}"
                datasets[dataset_id] = {
                    "kind": "zarr", "url": f"{xpublish_url.rstrip('/')}/datasets/{dataset_id}/zarr",
                    "zarr_format": 3, "metadata_ttl_seconds": 60, "ttl_seconds": 3600,
                    "edge_ttl_seconds": 0, "allowed_hosts": [host_of(xpublish_url)],
                    "description": f"benchmark: fronting xpublish ({profile} origin behind it)"}

    # Block mode: per profile a dataset of kind "files" over a directory of its own holding a hard
    # link of the file (data/bf-<profile>/), so its URL is its own: nothing in the index or R2 for
    # it before its cold pass. Edge tier: always off for this kind.
    files = {"path": "bench.nc", "local": str(nc_path), "file_bytes": size, "block_size": config.files_block_size,
             "digest": file_digest(nc_path), "datasets": {}, "direct": {}}
    for profile in config.profiles:
        dataset_id = f"bf-{profile}"
        link(nc_path, www / "data" / dataset_id / "bench.nc")
        url = f"{base[profile]}/data/{dataset_id}/"
        datasets[dataset_id] = {"kind": "files", "url": url, "block_size": config.files_block_size,
                                "ttl_seconds": 3600, "allowed_hosts": [host_of(url)],
                                "description": f"benchmark: block mode over the {profile} origin"}
        files["datasets"][profile] = dataset_id
        files["direct"][profile] = f"{base[profile]}/data/bench.nc"

    synth = []
    urls = [f"{origin_url}/data/synth-{i}.nc" for i in range(8)]
    for i in range(8):
        link(nc_path, www / "data" / f"synth-{i}.nc")
    generator_hash = hashlib.sha256(Path(__file__).read_bytes() + origin_url.encode() + str(size).encode())
    for n in config.synth_refs:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached = cache_dir / f"synth-{n}-{generator_hash.hexdigest()[:12]}.json"
        if not cached.exists():
            log(f"  synthesising {n:,} references (cached in {cached.parent})")
            for old in cache_dir.glob(f"synth-{n}-*.json"):
                old.unlink()
            write_synth_refs(cached, n, urls, size)
        link(cached, www / "refs" / f"synth-{n}.json")
        dataset_id = f"refs-{n}"
        datasets[dataset_id] = {"refs": f"{origin_url}/refs/synth-{n}.json", "edge_ttl_seconds": 0,
                                "allowed_hosts": [host_of(origin_url)],
                                "description": f"synthetic reference set ({n} references)"}
        # The same set from the R2 bucket (bench/run puts it there with `wrangler r2 object put
        # --local`): loading it makes no fetch, so wrangler's inspector copies no response body.
        datasets[f"refs-r2-{n}"] = {"refs": f"r2://refs/synth-{n}.json", "edge_ttl_seconds": 0,
                                    "allowed_hosts": [host_of(origin_url)],
                                    "description": f"synthetic reference set ({n} references) in R2"}
        synth.append({"n": n, "id": dataset_id, "r2_id": f"refs-r2-{n}", "r2_key": f"refs/synth-{n}.json",
                      "file": str(www / "refs" / f"synth-{n}.json"), "json_bytes": cached.stat().st_size})

    bigrefs, datasets[BIGREFS_DATASET] = prepare_bigrefs(www, config, origin_url, cache_dir, log)

    manifest = {
        "config": config.name,
        "origin_url": origin_url,
        "proxy_url": proxy_url,
        "file_bytes": size,
        "variables": variables,
        "aliases": aliases,
        "direct_refs": direct,
        "xpublish_datasets": xpublish_datasets,
        "xpublish_url": xpublish_url,
        "files": files,
        "synth": synth,
        "bigrefs": bigrefs,
        "datasets": datasets,
    }
    (state / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (state / "datasets-extra.json").write_text(json.dumps(datasets))
    return manifest
