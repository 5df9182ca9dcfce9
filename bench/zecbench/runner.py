"""The measuring step of bench/run: the worker's CPU per warm hit (under wrangler dev, and in the
production-like runtime), every pass of every reader in both origin profiles, reference loading,
the wasm size and the native reference-loading example. The stack (redis-server, upstash-local,
nginx, the slow proxy, two wrangler dev workers: one storing chunks in local R2, one in S3
(s3s-fs), the same build in workerd through Miniflare's API twice: for the passes and, with
workerd's inspector, for the CPU profile; xpublish) is already running; bench/run started it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from . import data, probes
from .config import Config
from .passes import HttpReader, Item, ReferenceReader, WholeFileReader, figures, parse_server_timing, run_pass

ROOT = Path(__file__).resolve().parents[2]

S3_COLD = "worker cold (MISS), S3 storage"
S3_WARM = "worker warm (HIT), S3 storage"
# the warm passes in the production-like runtime (bench/serve_workerd.mjs)
PROD_WARM = "workerd warm (HIT), no dev proxy"
PROD_EDGE = "workerd warm, edge on (EDGE), no dev proxy"
FLOOR_WARM = "runtime floor: plain JS worker, one R2 get (HIT)"
FLOOR_EDGE = "runtime floor: plain JS worker, one Cache API match (EDGE)"
# the process groups that run a worker (wrangler dev's, workerd's through Miniflare's API)
RUNTIMES = ("worker", "worker_s3", "prod", "prod_prof", "floor")
# profiled passes per figure of the CPU section (the median is reported)
PROFILED_RUNS = 5
# a profiled pass whose samples, while the isolate ran, were spaced more than this many times the
# interval asked is marked irregular in the report: workerd's sampler keeps ~130-150 µs for 50
# asked, but some passes (mostly the floor's EDGE hits, the shortest bursts of work) got one
# sample every ~400 µs, and one a millisecond, whose figure came out 6x its neighbours'. They are
# kept: which spacing weighs a short burst right is not known, and dropping them would choose
# figures; the median of the passes keeps a lone one from deciding
IRREGULAR_SAMPLING = 4
XW_COLD = "worker fronting xpublish, cold (MISS)"
XW_WARM = "worker fronting xpublish, warm (HIT)"
# Row order of the tables, and what each reader must see.
READERS = [
    ("nginx floor", "nginx serving each chunk's bytes as a static file (loopback, no proxy)"),
    ("worker cold (MISS)", "the worker under wrangler dev, fresh alias: every chunk a MISS (origin fetch, then R2 put + index write)"),
    (S3_COLD, "a second worker whose chunk store is S3 (s3s-fs, SigV4), fresh alias of its own: every chunk a MISS (origin fetch, then S3 PUT + index write)"),
    ("worker warm (HIT)", "the same alias again: every chunk a HIT (index EVAL + R2 read), edge tier off"),
    (PROD_WARM, "the same alias, the same build in workerd through Miniflare's API (bench/serve_workerd.mjs: "
                "no wrangler dev proxy or inspector), as production runs it; same index and local R2"),
    (S3_WARM, "the S3-storage worker's alias again: every chunk a HIT (index EVAL + S3 GET), edge tier off"),
    ("worker warm, edge on (EDGE)", "an alias with edge_ttl_seconds=600, read after a populating pass: the Workers Cache API answers"),
    (PROD_EDGE, "the same alias in workerd through Miniflare's API (no dev proxy), after a populating pass of its own "
                "(HITs: its Cache API keys answers by their URL): Miniflare's Cache API answers"),
    (FLOOR_WARM, "bench/floor_worker.mjs in workerd through Miniflare's API: the runtime's calls of a hit and nothing "
                 "else (one R2 get of the CPU section's objects, its body streamed back), at the highest concurrency, "
                 "right after the workerd HIT pass"),
    (FLOOR_EDGE, "the same, one caches.default.match (its Cache API filled by the CPU section), right after the "
                 "workerd EDGE pass"),
    ("ReferenceFileSystem", "fsspec ReferenceFileSystem (async, one _cat_file per chunk) straight from the origin"),
    ("fsspec simplecache (warm)", "ReferenceFileSystem over simplecache: the whole file already on local disk"),
    ("fsspec blockcache (warm)", "ReferenceFileSystem over blockcache (fsspec's default 5 MiB blocks): the blocks already on local disk"),
    ("xpublish (cold)", "xpublish + xpublish-zarr under uvicorn, first read: origin read, decode, re-encode (zstd)"),
    ("xpublish (warm)", "the same xpublish dataset again: its in-memory response cache (cachey)"),
    (XW_COLD, "the worker (R2 storage) in front of xpublish: a kind zarr dataset over an xpublish dataset of its own, both cold: "
              "every chunk a MISS (worker -> xpublish -> origin, then R2 put + index write), bodies equal to xpublish's direct ones"),
    (XW_WARM, "the same worker dataset again: every chunk a HIT (index EVAL + R2 read), xpublish not asked"),
]
FILES_DIRECT = "h5netcdf, origin direct"
FILES_BLOCKCACHE = "h5netcdf, fsspec blockcache (warm)"
FILES_COLD = "h5netcdf through block mode, cold (MISS)"
FILES_WARM = "h5netcdf through block mode, warm (HIT)"
# Whole-file reads (their own table: one item is a read of the whole file, not a chunk): xarray +
# h5netcdf over fsspec HTTP loading every variable of the benchmark file, one read at a time.
FILE_READERS = [
    (FILES_DIRECT, "fsspec HTTPFile (5 MiB read-ahead) on the file at the origin (through the proxy in the remote profile)"),
    (FILES_BLOCKCACHE, "the same through fsspec's blockcache, 1 MiB blocks already on local disk (after a populating read)"),
    (FILES_COLD, "the same HTTPFile on /files/bf-<profile>/bench.nc, a kind files dataset (1 MiB blocks) of its own: "
                 "size probe, missing blocks fetched by merged ranges, then R2 puts + index writes"),
    (FILES_WARM, "the same dataset again: every block from the cache (index + R2), nothing from the origin"),
]
SAMPLING_US = 250  # V8 profiler sampling interval
PARQUET_SAMPLING_US = 50  # the same, for the parquet set's warm lookups (a few µs each)
WORKERD_SAMPLING_US = 50  # the same, for the production-like runtime's hits (a fraction of a ms each)
CPU_KEYS = 24  # distinct chunks the profiled warm hits cycle through
NOISE_SHARE = 0.15  # a pass is noisy when processes outside the benchmark use more of the cores
# the process groups bench/run spawned (scripts/lib.sh names): worker_s3 is the S3-storage worker, s3 s3s-fs
# prod the production-like runtime, prod_prof its profiling instance (workerd's inspector open)
STACK = ["worker", "worker_s3", "prod", "prod_prof", "floor", "upstash", "redis", "origin", "proxy", "xpublish", "s3"]


class SampleMismatch(Exception):
    """A body through the worker whose sha256 is not what fsspec's ReferenceFileSystem read."""


def float32(i: int) -> bytes:
    """The bytes of chunk i of bench/bigrefs.py's archive: float32(i), little-endian."""
    return struct.pack("<f", float(i))


def storage_of(reader: str) -> str | None:
    """Which worker served a row: "r2" (the first), "s3" (the S3-storage one), None (not a worker)."""
    if reader in (FILES_COLD, FILES_WARM):
        return "r2"
    if not reader.startswith("worker"):
        return None
    return "s3" if reader.endswith("S3 storage") else "r2"


def count_objects(root: Path) -> int:
    """Objects s3s-fs holds under `root` (a bucket's key prefix: one file per object; its metadata
    files live elsewhere, in the server's root)."""
    if not root.exists():
        return 0
    return sum(1 for _dir, _subdirs, files in os.walk(root) for f in files if not f.startswith("."))


def log(msg: str) -> None:
    print(f"\033[1m[{time.strftime('%H:%M:%S')}]\033[0m {msg}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    state: Path
    worker: str
    origin: str
    proxy: str
    upstash: str
    token: str
    xpublish: str | None
    inspector_port: int
    worker_port: int
    # the second worker, whose chunk store is S3 (s3s-fs), and its bucket's directory
    worker_s3: str
    worker_s3_port: int
    inspector_s3_port: int
    s3_dir: Path
    # the same build in workerd through Miniflare's API: production-like, no dev proxy (optional)
    worker_prod: str | None = None
    # a second instance of it with workerd's inspector open (on inspector_prod_port), profiled only
    # by the CPU-per-hit passes (optional)
    worker_prod_prof: str | None = None
    inspector_prod_port: int | None = None
    # bench/floor_worker.mjs in workerd over the same local R2, with its own inspector (optional)
    floor: str | None = None
    inspector_floor_port: int | None = None


class Bench:
    def __init__(self, config: Config, stack: Stack, manifest: dict, latency_ms: float, bandwidth_mb_s: float):
        self.config = config
        self.stack = stack
        self.manifest = manifest
        self.latency_ms = latency_ms
        self.bandwidth_mb_s = bandwidth_mb_s
        self.upstash = probes.UpstashStats(stack.upstash, stack.token)
        self.nginx = probes.NginxLog(stack.state / "nginx" / "access.log")
        # the runtime floor's objects, by kind ("hit", "edge"), as the CPU section found them
        self.floor_items: dict[str, list[Item]] = {}
        self.groups = probes.ProcessGroups(stack.state, STACK)
        self.rows: list[dict] = []
        self.problems: list[str] = []
        self.noisy: list[str] = []
        self.populate: list[dict] = []
        self.results: dict = {}

    # ------------------------------------------------------------------ items

    def chunks(self):
        for var, info in self.manifest["variables"].items():
            for k in info["keys"]:
                yield var, k

    def items_http(self, base: str) -> list[Item]:
        return [Item(f"{base}/{var}/{k['key']}", k["length"], k["crc32"]) for var, k in self.chunks()]

    def items_cpu(self, base: str) -> list[Item]:
        """The chunks the CPU-per-hit passes cycle through: the first CPU_KEYS of the first variable
        (chunks of one size), under `base`."""
        var, info = next(iter(self.manifest["variables"].items()))
        return [Item(f"{base}/{var}/{k['key']}", k["length"], k["crc32"]) for k in info["keys"][:CPU_KEYS]]

    def items_refs(self) -> list[Item]:
        return [Item(f"{var}/{k['key']}", k["length"], k["crc32"]) for var, k in self.chunks()]

    def items_xpublish(self, dataset: str, expected: list | None = None) -> list[Item]:
        """Chunk URLs of an xpublish dataset; with `expected` ((length, CRC-32) or None per chunk,
        in chunk order) the bodies are checked against it."""
        return self.items_v3(f"{self.stack.xpublish}/datasets/{dataset}/zarr", expected)

    def items_v3(self, base: str, expected: list | None = None) -> list[Item]:
        """Zarr v3 chunk keys (`var/c/i/j/k`) under `base`: xpublish, or the worker fronting it."""
        out = []
        for i, (var, k) in enumerate(self.chunks()):
            length, crc = (expected[i] if expected and expected[i] else (None, None))
            out.append(Item(f"{base}/{var}/c/{k['key'].replace('.', '/')}", length, crc))
        return out

    # ------------------------------------------------------------------ one pass

    async def quiet_counters(self):
        stats = await self.upstash.read(self.control)
        return stats["http_requests"], stats["commands"], self.nginx.mark()

    async def measure(self, profile: str, reader: str, c: int, items: list[Item], make, expect: dict,
                      record: bool = True, repeatable: bool = True) -> dict:
        """One pass, with its checks. On a shared machine other work (a build) can take the cores
        during a pass: a pass that can be repeated (it does not change any cache state) is run
        again, after waiting for quiet, when others used over NOISE_SHARE of the cores, up to
        `noise_retries` times, keeping the quietest attempt; one that cannot waits for quiet first.
        A repeatable pass at the top concurrency (a throughput figure, from a pass of well under a
        second) is measured `throughput_repeats` times: the pass with the median chunks/s is the
        row, every pass's chunks/s listed in it."""
        # A pass before may have left work running in a runtime (a populating pass's Cache API
        # puts and lookups in waitUntil): none of it may run into this one.
        await self.worker_idle(max_s=15.0, groups=RUNTIMES)
        if not repeatable:
            await self.wait_quiet(self.config.quiet_wait_before_pass_s, window_s=1.0)
        top = c == max(self.config.concurrency)
        repeats = self.config.throughput_repeats if repeatable and top else 1
        passes = []
        for _ in range(repeats):
            if passes:
                await self.worker_idle(max_s=15.0, groups=RUNTIMES)
            passes.append(await self.quietest(profile, reader, c, items, make, repeatable))
        ranked = sorted(passes, key=lambda r: r["chunks_per_s"] or 0)
        row = ranked[len(ranked) // 2]
        if repeats > 1:
            row["repeats_chunks_per_s"] = [r["chunks_per_s"] for r in passes]
            log(f"{profile:8} {reader} c={c}: median of {repeats} passes "
                f"{row['chunks_per_s'] or 0:.0f} chunks/s (passes: "
                + ", ".join(f"{r['chunks_per_s'] or 0:.0f}" for r in passes) + ")")
        # Every pass is checked (its errors, X-Cache, origin requests), not only the median one.
        for measured in passes:
            self.check(measured, len(items), expect)
        (self.rows if record else self.populate).append(row)
        return row

    async def quietest(self, profile: str, reader: str, c: int, items: list[Item], make,
                       repeatable: bool) -> dict:
        """One measured pass: if it can be repeated, again (up to `noise_retries` times, in quiet)
        while other processes took over NOISE_SHARE of the cores; the quietest attempt."""
        attempts = []
        for attempt in range(1 + (self.config.noise_retries if repeatable else 0)):
            if attempt:
                log(f"  others used {attempts[-1]['other_cpu_share']:.0%} of the cores: again, in quiet")
                await self.wait_quiet(self.config.quiet_wait_before_pass_s, window_s=1.0)
            attempts.append(await self.measure_once(profile, reader, c, items, make))
            if attempts[-1]["other_cpu_share"] <= NOISE_SHARE:
                break
        row = min(attempts, key=lambda r: r["other_cpu_share"])
        row["attempts"] = len(attempts)
        return row

    async def xpublish_stats(self) -> dict:
        """Requests xpublish served so far, all datasets together: {"chunk": n, "metadata": m}
        (bench/xpublish_server.py's /__stats)."""
        async with self.control.get(f"{self.stack.xpublish}/__stats", timeout=aiohttp.ClientTimeout(total=10)) as r:
            r.raise_for_status()
            counts = await r.json(content_type=None)
        return {kind: sum(v.get(kind, 0) for v in counts.values()) for kind in ("chunk", "metadata")}

    async def measure_once(self, profile: str, reader: str, c: int, items: list[Item], make) -> dict:
        label = f"{profile:8} {reader} c={c}"
        source = await make()
        storage = storage_of(reader)
        xp = "xpublish" in reader and self.stack.xpublish
        try:
            xp0 = await self.xpublish_stats() if xp else None
            await self.upstash.reset(self.control)
            mark = self.nginx.mark()
            objects0 = self.s3_objects()
            cpu0 = self.groups.cpu()
            t_start = time.perf_counter()
            outcome = await run_pass(items, source.fetch, c, self.config.pass_max_seconds, label)
            # A MISS writes R2 and the index in ctx.waitUntil, after its answer: wait for quiet.
            await probes.settle(self.quiet_counters)
            cpu1 = self.groups.cpu()
            t_end = time.perf_counter()
            stats = await self.upstash.read(self.control)
            origin = self.nginx.since(mark)
            objects1 = self.s3_objects()
            xp1 = await self.xpublish_stats() if xp else None
        finally:
            await source.close()
        row = {"profile": profile, "reader": reader, "concurrency": c, **figures(outcome), **origin,
               "index_http_requests": stats["http_requests"], "index_commands": stats["commands"]}
        if storage:
            # objects the S3-storage worker's writes added to its bucket during the pass (a cold
            # pass on S3 storage: one per chunk; on R2 storage: none)
            row["storage"] = storage
            row["s3_objects_added"] = objects1 - objects0
        if xp:
            # what reached xpublish during the pass: chunk requests and metadata (zarr.json) ones
            row["xpublish_chunk_requests"] = xp1["chunk"] - xp0["chunk"]
            row["xpublish_metadata_requests"] = xp1["metadata"] - xp0["metadata"]
        n = max(1, outcome.requests)
        row["index_rt_per_req"] = round(stats["http_requests"] / n, 3)
        row["index_cmds_per_req"] = round(stats["commands"] / n, 3)
        delta = probes.cpu_delta(cpu0, cpu1)
        row["cpu_ms_per_req"] = {k: round(v * 1000 / n, 3) for k, v in delta.items()}
        # share of the machine's cores that processes outside the benchmark used during the pass
        row["other_cpu_share"] = round(delta["other"] / (max(1e-6, t_end - t_start) * (os.cpu_count() or 1)), 3)
        if storage:
            row["inspector_drained_mb"] = round(await self.drain(storage) / 1e6, 2)
        log(f"{label}: {row['chunks']}/{len(items)} chunks in {row['wall_s']:.2f}s, "
            f"{row['chunks_per_s'] or 0:.0f} chunks/s, p50 {row['p50_ms'] or 0:.1f} ms, "
            f"origin {row['origin_requests']} req, index {row['index_rt_per_req']} rt/req "
            f"{row['index_cmds_per_req']} cmd/req" + (f", X-Cache {row['x_cache']}" if row['x_cache'] else "")
            + (f", {row['s3_objects_added']} objects added in S3" if row.get("s3_objects_added") else "")
            + (f", xpublish {row['xpublish_chunk_requests']} chunk + {row['xpublish_metadata_requests']} metadata req"
               if "xpublish_chunk_requests" in row else "")
            + (f", errors {row['errors']}" if row["errors"] else "")
            + (f", others {row['other_cpu_share']:.0%} of the cores" if row["other_cpu_share"] > NOISE_SHARE else ""))
        return row

    def check(self, row: dict, n: int, expect: dict) -> None:
        what = f"{row['profile']} / {row['reader']} / c={row['concurrency']}"
        if row["errors"]:
            self.problems.append(f"{what}: errors {row['errors']}")
        if row.get("other_cpu_share", 0) > NOISE_SHARE:
            self.noisy.append(f"{what}: other processes used {row['other_cpu_share']:.0%} of the cores")
        if not row["complete"]:
            self.problems.append(f"{what}: incomplete ({row['chunks']}/{n} chunks within "
                                 f"{self.config.pass_max_seconds:g}s)")
        for key in ("chunks_per_s", "mb_per_s", "p50_ms", "p99_ms", "origin_requests", "origin_bytes",
                    "index_rt_per_req", "index_cmds_per_req"):
            if row.get(key) is None:
                self.problems.append(f"{what}: figure {key} missing")
        if "x_cache" in expect and row["x_cache"] != {expect["x_cache"]: n}:
            self.problems.append(f"{what}: X-Cache {row['x_cache']}, expected {expect['x_cache']} for all {n}")
        # whole-file reads: the X-Cache of every GET answer the reader got (several per read)
        if "x_cache_all" in expect and set(row["x_cache"]) != {expect["x_cache_all"]}:
            self.problems.append(f"{what}: X-Cache {row['x_cache']}, expected {expect['x_cache_all']} for every answer")
        if "x_cache_some" in expect and not row["x_cache"].get(expect["x_cache_some"]):
            self.problems.append(f"{what}: X-Cache {row['x_cache']}, expected at least one {expect['x_cache_some']}")
        if "origin_requests" in expect:
            lo, hi = expect["origin_requests"]
            if not lo <= row["origin_requests"] <= hi:
                self.problems.append(f"{what}: {row['origin_requests']} origin requests, expected {lo}..{hi}")
        if "xpublish_chunks" in expect:
            lo, hi = expect["xpublish_chunks"]
            if not lo <= row.get("xpublish_chunk_requests", -1) <= hi:
                self.problems.append(f"{what}: {row.get('xpublish_chunk_requests')} chunk requests reached xpublish, "
                                     f"expected {lo}..{hi}")
        if expect.get("checked_bodies") is not None and expect["checked_bodies"] < n:
            self.problems.append(f"{what}: only {expect['checked_bodies']} of {n} bodies could be checked "
                                 "(xpublish's direct pass did not answer every chunk)")
        if "s3_objects" in expect:
            lo, hi = expect["s3_objects"]
            if not lo <= row.get("s3_objects_added", 0) <= hi:
                self.problems.append(f"{what}: {row.get('s3_objects_added')} objects added to the S3 bucket, "
                                     f"expected {lo}..{hi}")

    def s3_objects(self) -> int:
        """Chunk objects in the S3-storage worker's bucket (under its KEY_PREFIX, zecs3)."""
        return count_objects(self.stack.s3_dir / "zecs3" / "v1")

    async def drain(self, storage: str = "r2") -> int:
        """Empties the inspector message buffer of a worker's wrangler dev (the R2 one or the S3
        one) between passes (see probes.drain_inspector), then waits for both to be idle again:
        sending the buffer costs wrangler a debug-log request to node per message, which must not
        spill into the next pass."""
        port = self.stack.inspector_s3_port if storage == "s3" else self.stack.inspector_port
        try:
            drained = await probes.drain_inspector(port)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.problems.append(f"could not drain wrangler's inspector buffer ({storage} worker): {exc}")
            drained = 0
        await self.worker_idle()
        return drained

    async def worker_idle(self, window_s: float = 0.3, max_s: float = 120.0,
                          groups: tuple[str, ...] = ("worker", "worker_s3")) -> None:
        """Waits until the processes of `groups` (by default the wrangler dev processes of both
        workers) use under 10% of a core together over `window_s`."""
        deadline = time.monotonic() + max_s

        def busy() -> float:
            cpu = self.groups.cpu()
            return sum(cpu.get(name, 0.0) for name in groups)

        while time.monotonic() < deadline:
            c0 = busy()
            await asyncio.sleep(window_s)
            if busy() - c0 < 0.1 * window_s:
                return

    # ------------------------------------------------------------------ readers

    def http(self, c: int, status: int = 200, record: dict | None = None):
        async def make():
            return HttpReader(c, self.config.request_timeout_s, status, record)
        return make

    def whole_file(self, profile: str, remote: str):
        """xarray + h5netcdf reading the whole benchmark file, over fsspec HTTP ("http") or over
        fsspec's blockcache ("blockcache": 1 MiB blocks in a cache directory of the profile's)."""
        files = self.manifest["files"]
        cache_dir = str(self.stack.state / "fsspec-cache" / profile / "whole-file-blockcache")

        async def make():
            return WholeFileReader(remote, self.config.request_timeout_s, files["file_bytes"], cache_dir,
                                   files["block_size"])
        return make

    def items_whole_file(self, url: str, reads: int) -> list[Item]:
        """`reads` whole reads of the file at `url`, each checked against the digest of its values."""
        digest = self.manifest["files"]["digest"].encode()
        return [Item(url, len(digest), zlib.crc32(digest)) for _ in range(reads)]

    async def run_whole_file(self, profile: str) -> None:
        """The whole-file rows: xarray + h5netcdf opening the benchmark file over fsspec HTTP and
        loading every variable, one read at a time (c=1), straight from the origin, through
        fsspec's blockcache (warm) and through the worker's block mode (cold, then warm). A pass is
        one read when it fills a cache (cold, populate), else `file_reads` reads."""
        files = self.manifest["files"]
        reads = self.config.file_reads
        many = float("inf")
        # xarray's and h5netcdf's first open (imports, backend entry points) outside any pass: a
        # read of the local file, which must load what the readers must
        if data.file_digest(Path(files["local"])) != files["digest"]:
            self.problems.append(f"{files['local']}: its values are not those of the manifest's digest")
        direct = files["direct"][profile]
        # at least a HEAD and a ranged GET per read, all of them at the origin
        await self.measure(profile, FILES_DIRECT, 1, self.items_whole_file(direct, reads),
                           self.whole_file(profile, "http"), {"origin_requests": (2 * reads, many)})
        await self.measure(profile, FILES_BLOCKCACHE.replace("(warm)", "(populate)"), 1,
                           self.items_whole_file(direct, 1), self.whole_file(profile, "blockcache"),
                           {"origin_requests": (1, many)}, record=False, repeatable=False)
        await self.measure(profile, FILES_BLOCKCACHE, 1, self.items_whole_file(direct, reads),
                           self.whole_file(profile, "blockcache"), {"origin_requests": (0, 0)})
        # Block mode on a dataset of its own (bf-<profile>, a URL of its own): the cold read makes
        # the size probe and at least one block fetch; the warm reads fetch nothing and every
        # answer is a HIT.
        url = f"{self.stack.worker}/files/{files['datasets'][profile]}/{files['path']}"
        await self.measure(profile, FILES_COLD, 1, self.items_whole_file(url, 1), self.whole_file(profile, "http"),
                           {"x_cache_some": "MISS", "origin_requests": (2, many), "s3_objects": (0, 0)},
                           repeatable=False)
        await self.measure(profile, FILES_WARM, 1, self.items_whole_file(url, reads), self.whole_file(profile, "http"),
                           {"x_cache_all": "HIT", "origin_requests": (0, 0), "s3_objects": (0, 0)})

    def refs_reader(self, profile: str, remote: str, c: int):
        refs = json.loads(Path(self.manifest["direct_refs"][profile]).read_text())
        cache_dir = str(self.stack.state / "fsspec-cache" / profile / remote)

        async def make():
            return ReferenceReader(refs, remote, c, cache_dir)
        return make

    async def warm_up(self, url: str, what: str, timeout: float = 120.0) -> None:
        async with self.control.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"{what}: {url} answered {r.status}: {body[:300]!r}")

    async def run_profile(self, profile: str) -> None:
        cfg = self.config
        n = sum(1 for _ in self.chunks())
        conc = cfg.concurrency
        log(f"profile {profile}: " + ("nginx on loopback" if profile == "loopback" else
                                      f"through slow_proxy (+{self.latency_ms:g} ms, {self.bandwidth_mb_s:g} MB/s per connection)"))
        floor_items = self.items_http(f"{self.stack.origin}/floor")
        for c in conc:
            await self.measure(profile, "nginx floor", c, floor_items, self.http(c), {"origin_requests": (0, 0)})

        for c in conc:
            alias = f"b-{profile}-c{c}"
            await self.warm_up(f"{self.stack.worker}/zarr/{alias}/.zmetadata", "worker references")
            items = self.items_http(f"{self.stack.worker}/zarr/{alias}")
            await self.measure(profile, "worker cold (MISS)", c, items, self.http(c),
                               {"x_cache": "MISS", "origin_requests": (n, n), "s3_objects": (0, 0)},
                               repeatable=False)
            await self.measure(profile, "worker warm (HIT)", c, items, self.http(c),
                               {"x_cache": "HIT", "origin_requests": (0, 0)})
            if self.stack.worker_prod:
                # The same warm pass in the production-like runtime (same index and local R2).
                await self.warm_up(f"{self.stack.worker_prod}/zarr/{alias}/.zmetadata", "workerd references")
                await self.measure(profile, PROD_WARM, c, self.items_http(f"{self.stack.worker_prod}/zarr/{alias}"),
                                   self.http(c), {"x_cache": "HIT", "origin_requests": (0, 0)})
                if c == max(conc):
                    await self.floor_pass(profile, "hit", c, n)

        # The same passes through the second worker, whose chunk store is S3 (s3s-fs), on aliases
        # of its own: a cold pass writes one object per chunk to the bucket, a warm one none.
        for c in conc:
            alias = f"b-{profile}-s3-c{c}"
            await self.warm_up(f"{self.stack.worker_s3}/zarr/{alias}/.zmetadata", "S3-storage worker references")
            items = self.items_http(f"{self.stack.worker_s3}/zarr/{alias}")
            await self.measure(profile, S3_COLD, c, items, self.http(c),
                               {"x_cache": "MISS", "origin_requests": (n, n), "s3_objects": (n, n)},
                               repeatable=False)
            await self.measure(profile, S3_WARM, c, items, self.http(c),
                               {"x_cache": "HIT", "origin_requests": (0, 0), "s3_objects": (0, 0)})

        alias = f"b-{profile}-edge"
        await self.warm_up(f"{self.stack.worker}/zarr/{alias}/.zmetadata", "worker references")
        items = self.items_http(f"{self.stack.worker}/zarr/{alias}")
        await self.measure(profile, "worker edge populate (MISS)", max(conc), items, self.http(max(conc)),
                           {"x_cache": "MISS"}, record=False, repeatable=False)
        for c in conc:
            await self.measure(profile, "worker warm, edge on (EDGE)", c, items, self.http(c),
                               {"x_cache": "EDGE", "origin_requests": (0, 0)})
        if self.stack.worker_prod:
            # The same in the production-like runtime. Its Cache API keys an answer by its URL (this
            # runtime's port), so a pass of its own fills it: HITs, from the index and R2 the
            # populating pass above filled.
            await self.warm_up(f"{self.stack.worker_prod}/zarr/{alias}/.zmetadata", "workerd references")
            items = self.items_http(f"{self.stack.worker_prod}/zarr/{alias}")
            await self.measure(profile, "workerd edge populate (HIT)", max(conc), items, self.http(max(conc)),
                               {"x_cache": "HIT", "origin_requests": (0, 0)}, record=False, repeatable=False)
            for c in conc:
                await self.measure(profile, PROD_EDGE, c, items, self.http(c),
                                   {"x_cache": "EDGE", "origin_requests": (0, 0)})
            await self.floor_pass(profile, "edge", max(conc), n)

        for c in conc:
            await self.measure(profile, "ReferenceFileSystem", c, self.items_refs(),
                               self.refs_reader(profile, "http", c), {"origin_requests": (n, n)})

        for remote, reader in (("simplecache", "fsspec simplecache (warm)"), ("blockcache", "fsspec blockcache (warm)")):
            # Populated one read at a time: simplecache's first, downloading reads race when concurrent
            # (a reader can see the partly written cache file).
            await self.measure(profile, f"{reader.replace('(warm)', '(populate)')}", 1, self.items_refs(),
                               self.refs_reader(profile, remote, 1), {}, record=False, repeatable=False)
            for c in conc:
                await self.measure(profile, reader, c, self.items_refs(), self.refs_reader(profile, remote, c),
                                   {"origin_requests": (0, 0)})

        await self.run_whole_file(profile)

        if self.stack.xpublish:
            keys = ("zarr.json", *(f"{v}/zarr.json" for v in self.manifest["variables"]))
            direct = {}  # concurrency -> (length, CRC-32) per chunk, as xpublish answered it directly
            for c in conc:
                dataset = f"xp-{profile}-c{c}"
                for key in keys:
                    await self.warm_up(f"{self.stack.xpublish}/datasets/{dataset}/zarr/{key}", "xpublish metadata")
                record: dict = {}
                items = self.items_xpublish(dataset)
                await self.measure(profile, "xpublish (cold)", c, items, self.http(c, record=record),
                                   {"origin_requests": (n, 4 * n), "xpublish_chunks": (n, n)}, repeatable=False)
                direct[c] = [record.get(item.target) for item in items]
                # the warm pass must answer the cold pass's bytes
                items = self.items_xpublish(dataset, direct[c])
                await self.measure(profile, "xpublish (warm)", c, items, self.http(c),
                                   {"origin_requests": (0, 0), "xpublish_chunks": (n, n),
                                    "checked_bodies": sum(1 for d in direct[c] if d)})

            # The worker in front of xpublish: a kind "zarr" dataset (xw-<profile>-c<N>) over an
            # xpublish dataset of its own (the same id), so the cold pass is cold in both: nothing in
            # the worker's index or R2, nothing in xpublish's response cache. Every body must be the
            # bytes xpublish answered directly for the same chunk (its dataset xp-<profile>-c<N>).
            for c in conc:
                dataset = f"xw-{profile}-c{c}"
                for key in keys:
                    await self.warm_up(f"{self.stack.worker}/zarr/{dataset}/{key}", "worker fronting xpublish: metadata")
                items = self.items_v3(f"{self.stack.worker}/zarr/{dataset}", direct[c])
                checked = sum(1 for d in direct[c] if d)
                await self.measure(profile, XW_COLD, c, items, self.http(c),
                                   {"x_cache": "MISS", "origin_requests": (n, 4 * n), "xpublish_chunks": (n, n),
                                    "s3_objects": (0, 0), "checked_bodies": checked}, repeatable=False)
                await self.measure(profile, XW_WARM, c, items, self.http(c),
                                   {"x_cache": "HIT", "origin_requests": (0, 0), "xpublish_chunks": (0, 0),
                                    "checked_bodies": checked})

    async def xpublish_ready(self, timeout: float = 240.0) -> bool:
        deadline = time.monotonic() + timeout
        said = False
        while time.monotonic() < deadline:
            try:
                async with self.control.get(f"{self.stack.xpublish}/datasets",
                                            timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status == 200:
                        return True
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            pid_file = self.stack.state / "pids" / "xpublish.pid"
            if not pid_file.exists() or not Path(f"/proc/{pid_file.read_text().strip()}").exists():
                log("xpublish exited: " + " | ".join(
                    (self.stack.state / "logs" / "xpublish.log").read_text().strip().splitlines()[-3:]))
                return False
            if not said:
                log("waiting for xpublish to open its datasets")
                said = True
            await asyncio.sleep(0.5)
        return False

    async def wait_quiet(self, max_s: float, window_s: float = 3.0, share: float = NOISE_SHARE) -> None:
        """Waits (at most `max_s`) until processes outside the benchmark use under `share` of the cores."""
        if max_s <= 0:
            return
        deadline = time.monotonic() + max_s
        said = False
        while True:
            c0 = self.groups.cpu()
            await asyncio.sleep(window_s)
            other = probes.cpu_delta(c0, self.groups.cpu())["other"] / (window_s * (os.cpu_count() or 1))
            if other < share:
                return
            if time.monotonic() > deadline:
                log(f"the machine is still busy (other processes use {other:.0%} of the cores); measuring anyway")
                return
            if not said:
                log(f"waiting up to {max_s:.0f}s for the machine to be quiet (other processes use {other:.0%} of the cores)")
                said = True

    # ------------------------------------------------------------------ CPU per warm hit

    async def cpu_per_hit(self) -> dict:
        """Warm hits read twice at concurrency 1: without the profiler (wall time, process CPU from
        /proc) and with V8's sampling profiler attached through wrangler's inspector."""
        alias = "b-cpu"
        await self.warm_up(f"{self.stack.worker}/zarr/{alias}/.zmetadata", "worker references")
        base = self.items_cpu(f"{self.stack.worker}/zarr/{alias}")
        await self.measure("loopback", "worker cpu populate (MISS)", 8, base, self.http(8),
                           {"x_cache": "MISS", "origin_requests": (len(base), len(base))}, record=False,
                           repeatable=False)
        items = [base[i % len(base)] for i in range(self.config.profiled_hits)]
        roles = probes.workerd_roles(self.groups, self.stack.worker_port)
        out: dict = {"alias": alias, "hits": len(items), "processes": sorted(set(roles.values()))}
        reader = HttpReader(1, self.config.request_timeout_s)
        try:
            r0 = probes.cpu_by_role(roles)
            plain = await run_pass(items, reader.fetch, 1, self.config.pass_max_seconds, "cpu (no profiler)")
            r1 = probes.cpu_by_role(roles)
            n = max(1, plain.ok)
            by_role = {k: round((r1.get(k, 0) - r0.get(k, 0)) * 1000 / n, 3) for k in r1}
            out["plain"] = {"x_cache": plain.x_cache, "wall_ms_per_hit": round(plain.wall_s * 1000 / n, 3),
                            "p50_ms": figures(plain)["p50_ms"],
                            "cpu_ms_per_hit_by_process": by_role,
                            "wrangler_group_cpu_ms_per_hit": round(sum(by_role.values()), 3),
                            "server_timing_p50_ms": figures(plain)["server_timing_p50_ms"]}
            try:
                async with probes.Inspector(probes.wrangler_inspector(self.stack.inspector_port)) as insp:
                    await insp.call("Profiler.enable")
                    await insp.call("Profiler.setSamplingInterval", {"interval": SAMPLING_US})
                    await insp.call("Profiler.start")
                    p0 = probes.cpu_by_role(roles)
                    profiled = await run_pass(items, reader.fetch, 1, self.config.pass_max_seconds, "cpu (profiler)")
                    p1 = probes.cpu_by_role(roles)
                    prof = (await insp.call("Profiler.stop", want="profile"))["profile"]
                    await insp.call("Profiler.disable")
                summary = probes.summarise_profile(prof)
                json_lookup = probes.inclusive_us(prof, "source::kerchunk")
                n = max(1, profiled.ok)
                cats = summary["categories_us"]
                busy = cats.get("js", 0) + cats.get("wasm", 0) + cats.get("(garbage collector)", 0)
                out["profiled"] = {
                    "x_cache": profiled.x_cache,
                    "wall_ms_per_hit": round(profiled.wall_s * 1000 / n, 3),
                    "sampling_interval_us": SAMPLING_US,
                    "js_wasm_gc_ms_per_hit": round(busy / 1000 / n, 3),
                    "js_ms_per_hit": round(cats.get("js", 0) / 1000 / n, 3),
                    "wasm_ms_per_hit": round(cats.get("wasm", 0) / 1000 / n, 3),
                    "gc_ms_per_hit": round(cats.get("(garbage collector)", 0) / 1000 / n, 3),
                    "program_ms_per_hit": round(cats.get("(program)", 0) / 1000 / n, 3),
                    "idle_ms_per_hit": round(cats.get("(idle)", 0) / 1000 / n, 3),
                    "cpu_ms_per_hit_by_process": {k: round((p1.get(k, 0) - p0.get(k, 0)) * 1000 / n, 3) for k in p1},
                    "top_self_us": summary["top_self_us"],
                    # samples under the kerchunk (JSON) reference code: this alias's lookup, to set
                    # beside the parquet set's (ref_loading)
                    "json_lookup_us_per_hit": round(json_lookup[0] / n, 1),
                    "json_lookup_samples": json_lookup[1],
                    "json_lookup_sample_weight_us": json_lookup[3],
                    "json_lookup_top_self_us": json_lookup[2],
                }
            except Exception as exc:  # noqa: BLE001
                out["profiled"] = {"error": f"{type(exc).__name__}: {exc}"}
                self.problems.append(f"CPU profile through the inspector failed: {exc}")
        finally:
            await reader.close()
        if plain.x_cache != {"HIT": len(items)}:
            self.problems.append(f"CPU per hit: X-Cache {plain.x_cache}, expected HIT for all")
        return out

    async def cpu_per_hit_workerd(self) -> dict:
        """CPU per warm HIT (alias b-cpu, which cpu_per_hit filled) and per EDGE hit (b-cpu-edge,
        filled here: MISSes through the instance of the passes, then HITs through the profiling
        one; each instance's Cache API keys answers by its own URL) in the production-like
        runtime, `workerd_profiled_hits` of each at concurrency 1, twice: on the instance of the
        passes, which has no inspector (wall time, /proc CPU per process), and on the profiling
        instance with V8's sampling profiler attached (the worker's own CPU, by function)."""
        prod, prof = self.stack.worker_prod, self.stack.worker_prod_prof
        out: dict = {"hits": self.config.workerd_profiled_hits, "sampling_interval_us": WORKERD_SAMPLING_US}
        for what, alias, x_cache in (("hit", "b-cpu", "HIT"), ("edge", "b-cpu-edge", "EDGE")):
            for base, name in ((prod, "workerd"), (prof, "profiling workerd")):
                await self.warm_up(f"{base}/zarr/{alias}/.zmetadata", f"{name} references")
            keys = {base: self.items_cpu(f"{base}/zarr/{alias}") for base in (prod, prof)}
            if what == "edge":
                n = len(keys[prod])
                await self.measure("loopback", "workerd cpu edge populate (MISS)", 8, keys[prod], self.http(8),
                                   {"x_cache": "MISS", "origin_requests": (n, n)}, record=False, repeatable=False)
            # the profiling instance's first reads of the alias (its own Cache API is empty: HITs),
            # and, for the HIT, the other's: each isolate's code and references are warm before it
            # is measured
            for base in ((prod, prof) if what == "hit" else (prof,)):
                await self.measure("loopback", f"workerd cpu {what} warm-up (HIT)", 1, keys[base], self.http(1),
                                   {"x_cache": "HIT", "origin_requests": (0, 0)}, record=False, repeatable=False)
            items = {base: [keys[base][i % len(keys[base])] for i in range(self.config.workerd_profiled_hits)]
                     for base in (prod, prof)}
            # as many hits again, unmeasured, on each: V8 compiles hot code twice (wasm: Liftoff,
            # then TurboFan; JS: Ignition, then its optimising tiers), and an isolate serving
            # traffic runs the second; the first ~1,000 hits of a fresh one run much of the first
            for base in (prod, prof):
                await self.measure("loopback", f"workerd cpu {what} JIT warm-up ({x_cache})", 1, items[base],
                                   self.http(1), {"x_cache": x_cache}, record=False, repeatable=False)
            out[what] = {"alias": alias,
                         "plain": await self.workerd_plain(items[prod], what, x_cache),
                         "profiled": await self.workerd_profiled(items[prof], what, x_cache)}
        if self.stack.floor and self.stack.inspector_floor_port:
            out["floor"] = await self.floor_cpu(self.items_cpu(prof))
        return out

    async def floor_cpu(self, chunks: list[Item]) -> dict:
        """The floor (bench/floor_worker.mjs: one R2 get, or one Cache API match, in plain JS),
        profiled as the worker is, on the R2 objects holding the CPU passes' chunks (found by size
        in the bucket's listing, each checked by its CRC-32 on the way)."""
        floor = self.stack.floor
        by_size: dict[int, list[str]] = {}
        async with aiohttp.ClientSession() as session:
            cursor = None
            for _ in range(100):
                query = f"?cursor={cursor}" if cursor else ""
                async with session.get(f"{floor}/list{query}") as answer:
                    listing = await answer.json()
                for o in listing["objects"]:
                    by_size.setdefault(o["size"], []).append(o["key"])
                cursor = listing.get("cursor")
                if not cursor:
                    break
        keys = []
        for chunk in chunks:
            for key in by_size.get(chunk.length, []):
                candidate = Item(f"{floor}/hit?k={urllib.parse.quote(key, safe='')}", chunk.length, chunk.crc32)
                if await self.body_matches(candidate):
                    keys.append(key)
                    break
        if len(keys) < len(chunks):
            self.problems.append(f"the floor: {len(keys)} of the {len(chunks)} chunks found in the bucket")
            if not keys:
                return {"error": "no chunk object found in the bucket"}
        by_key = {k: c for k, c in zip(keys, chunks)}
        out: dict = {"objects": len(keys)}
        for what, path, x_cache in (("hit", "hit", "HIT"), ("edge", "edge", "EDGE")):
            items = [Item(f"{floor}/{path}?k={urllib.parse.quote(k, safe='')}", by_key[k].length, by_key[k].crc32)
                     for k in keys]
            if what == "edge":  # the Cache API filled first
                await self.fill_floor_cache(items)
            cycle = [items[i % len(items)] for i in range(self.config.workerd_profiled_hits)]
            # warmed up as the worker is (see cpu_per_hit_workerd)
            # (unchecked X-Cache: Miniflare's cache once answered a MISS here for an entry the
            # populating pass had put; a miss puts it again, and the measured passes below check
            # every answer)
            await self.measure("loopback", f"floor {what} warm-up", 1, cycle, self.http(1),
                               {}, record=False, repeatable=False)
            plain = await self.measure("loopback", f"floor {what} (no profiler)", 1, cycle, self.http(1),
                                       {"x_cache": x_cache}, record=False)
            out[what] = await self.workerd_profiled(cycle, f"floor {what}", x_cache, "floor",
                                                    self.stack.inspector_floor_port)
            out[what]["plain_p50_ms"] = plain.get("p50_ms")
            # for its throughput passes, each right after the worker's at the highest concurrency
            self.floor_items[what] = items
        return out

    async def floor_pass(self, profile: str, what: str, c: int, n: int) -> None:
        """The runtime floor's throughput (`what`: "hit" or "edge") at concurrency `c`, `n` reads
        cycling over its objects, right after the worker's pass of the same kind: what the runtime
        (local R2 or its Cache API, workerd's one thread, these cores at that moment) allows any
        worker. Skipped when the CPU section found no floor objects."""
        items = self.floor_items.get(what)
        if not items:
            return
        await self.measure(profile, FLOOR_WARM if what == "hit" else FLOOR_EDGE, c,
                           [items[i % len(items)] for i in range(n)], self.http(c),
                           {"x_cache": "HIT" if what == "hit" else "EDGE"})

    async def fill_floor_cache(self, items: list[Item], tries: int = 3) -> None:
        """Reads each of the floor's EDGE items until it answers 200 (its MISS puts it in the
        Cache API): local R2 and the Cache API are SQLite files several workerd processes open,
        and one of them can find a file locked (SQLITE_BUSY, a 500) now and then. Unmeasured; the
        measured passes that follow check every answer."""
        async with aiohttp.ClientSession() as session:
            for item in items:
                for attempt in range(tries):
                    async with session.get(item.target) as answer:
                        await answer.read()
                    if answer.status == 200:
                        break
                    if attempt == tries - 1:
                        self.problems.append(f"the floor: {item.target} answered {answer.status} {tries} times")
        await self.worker_idle(max_s=15.0, groups=RUNTIMES)

    async def body_matches(self, item: Item) -> bool:
        """Whether `item`'s URL answers 200 with its length and CRC-32."""
        async with aiohttp.ClientSession() as session:
            async with session.get(item.target) as answer:
                body = await answer.read()
        return answer.status == 200 and len(body) == item.length and zlib.crc32(body) == item.crc32

    async def workerd_plain(self, items: list[Item], what: str, x_cache: str) -> dict:
        """`items` one at a time on the production-like runtime (no inspector): wall time per hit and
        the /proc CPU per hit of its workerd and node, upstash-local, redis-server and the client."""
        roles = probes.miniflare_roles(self.groups, "prod")
        reader = HttpReader(1, self.config.request_timeout_s)
        try:
            g0, r0 = self.groups.cpu(), probes.cpu_by_role(roles)
            t0 = time.perf_counter()
            plain = await run_pass(items, reader.fetch, 1, self.config.pass_max_seconds, f"workerd cpu {what}")
            t1 = time.perf_counter()
            g1, r1 = self.groups.cpu(), probes.cpu_by_role(roles)
        finally:
            await reader.close()
        n = max(1, plain.ok)
        by_process = {role: round((r1.get(role, 0) - r0.get(role, 0)) * 1000 / n, 3) for role in r1}
        delta = probes.cpu_delta(g0, g1)
        for name, label in (("upstash", "upstash-local"), ("redis", "redis-server"), ("client", "client (bench)")):
            by_process[label] = round(delta[name] * 1000 / n, 3)
        f = figures(plain)
        other = round(delta["other"] / (max(1e-6, t1 - t0) * (os.cpu_count() or 1)), 3)
        out = {"x_cache": f["x_cache"], "errors": f["errors"], "wall_ms_per_hit": round(plain.wall_s * 1000 / n, 3),
               "p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"], "cpu_ms_per_hit_by_process": by_process,
               "server_timing_p50_ms": f["server_timing_p50_ms"], "index_wait": f.get("index_wait"),
               "other_cpu_share": other}
        log(f"  {what}, no profiler: {n} at c=1, X-Cache {f['x_cache']}, {out['wall_ms_per_hit']} ms per hit, "
            f"p50 {f['p50_ms']} ms, CPU ms per hit {by_process}")
        if f["x_cache"] != {x_cache: len(items)} or f["errors"]:
            self.problems.append(f"workerd CPU per {what}: X-Cache {f['x_cache']}, errors {f['errors']}, "
                                 f"expected {x_cache} for all {len(items)}")
        if other > NOISE_SHARE:
            self.noisy.append(f"workerd CPU per {what}: other processes used {other:.0%} of the cores")
        return out

    async def workerd_profiled(self, items: list[Item], what: str, x_cache: str, group: str = "prod_prof",
                               inspector_port: int | None = None) -> dict:
        """`workerd_profiled_once` PROFILED_RUNS times: the run of the median figure, with every
        run's (`runs_us_per_hit`; those whose sampler did not keep its interval, IRREGULAR_SAMPLING,
        also in `irregular_runs_us_per_hit`). On this shared machine one run's figure moved by up
        to ±25% from the next (bench/README.md)."""
        runs = [await self.workerd_profiled_once(items, what, x_cache, group, inspector_port, k)
                for k in range(PROFILED_RUNS)]
        measured = [r for r in runs if "worker_us_per_hit" in r]
        if not measured:
            return runs[-1]
        irregular = [r["worker_us_per_hit"] for r in measured
                     if r["sample_weight_us"] > IRREGULAR_SAMPLING * WORKERD_SAMPLING_US]
        ranked = sorted(measured, key=lambda r: r["worker_us_per_hit"])
        median = ranked[len(ranked) // 2]
        return {**median, "runs_us_per_hit": [r["worker_us_per_hit"] for r in measured],
                "irregular_runs_us_per_hit": irregular}

    async def workerd_profiled_once(self, items: list[Item], what: str, x_cache: str, group: str,
                                    inspector_port: int | None, run: int) -> dict:
        """`items` one at a time on the profiling instance (`group`, its inspector on
        `inspector_port`; the worker's by default) with V8's sampling profiler attached (workerd's
        own inspector): the worker's own CPU per hit, its samples counted (probes.sample_split),
        wasm and JS (its glue) apart from GC and `(program)`, and by function."""
        roles = probes.miniflare_roles(self.groups, group)
        reader = HttpReader(1, self.config.request_timeout_s)
        try:
            port = inspector_port or self.stack.inspector_prod_port
            async with probes.Inspector(await probes.workerd_inspector(port)) as insp:
                await insp.call("Profiler.enable")
                await insp.call("Profiler.setSamplingInterval", {"interval": WORKERD_SAMPLING_US})
                await insp.call("Profiler.start")
                g0, r0 = self.groups.cpu(), probes.cpu_by_role(roles)
                t0 = time.perf_counter()
                profiled = await run_pass(items, reader.fetch, 1, self.config.pass_max_seconds,
                                          f"workerd cpu {what} (profiler)")
                t1 = time.perf_counter()
                g1, r1 = self.groups.cpu(), probes.cpu_by_role(roles)
                prof = (await insp.call("Profiler.stop", want="profile"))["profile"]
                await insp.call("Profiler.disable")
        except Exception as exc:  # noqa: BLE001
            self.problems.append(f"workerd CPU per {what}: the profile through workerd's inspector failed: {exc}")
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            await reader.close()
        # the raw profile, for Chrome DevTools or speedscope (STATE/profiles)
        saved = self.stack.state / "profiles" / f"{group}-{what.replace(' ', '-')}-{run}.cpuprofile"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(prof))
        n = max(1, profiled.ok)
        split = probes.sample_split(prof)
        weight, cats = split["weight_us"], split["categories"]
        own = cats.get("wasm", 0) + cats.get("js", 0)

        def per_hit(samples: int) -> float:
            return round(samples * weight / n, 1)

        timed = probes.summarise_profile(prof)["categories_us"]
        # wall-clock samples: while other processes hold the cores, the isolate's thread waits in
        # the middle of its code, and the samples count that too
        other = round(probes.cpu_delta(g0, g1)["other"] / (max(1e-6, t1 - t0) * (os.cpu_count() or 1)), 3)
        out = {"x_cache": dict(profiled.x_cache), "wall_ms_per_hit": round(profiled.wall_s * 1000 / n, 3),
               "samples": split["samples"], "sample_weight_us": weight,
               # the worker's own code (wasm + JS), ± its counting error (1/√samples)
               "worker_us_per_hit": per_hit(own), "worker_samples": own,
               "worker_error_us_per_hit": round(per_hit(own) / math.sqrt(own), 1) if own else None,
               "wasm_us_per_hit": per_hit(cats.get("wasm", 0)), "js_us_per_hit": per_hit(cats.get("js", 0)),
               # of the JS: frames with no script (the runtime's API functions the glue calls, V8's
               # builtins and its wasm<->JS trampolines); the rest is the glue (index.js)
               "js_runtime_us_per_hit": per_hit(split["js_without_script"]),
               "gc_us_per_hit": per_hit(cats.get("(garbage collector)", 0)),
               "program_us_per_hit": per_hit(cats.get("(program)", 0)),
               # wasm + JS as the wrangler dev section sums it: the samples' timeDeltas, which carry
               # the gaps in sampling (I/O waits) before a sample
               "worker_timed_us_per_hit": round((timed.get("wasm", 0) + timed.get("js", 0)) / n, 1),
               "cpu_ms_per_hit_by_process": {role: round((r1.get(role, 0) - r0.get(role, 0)) * 1000 / n, 3)
                                             for role in r1},
               # [function, self µs per hit, inclusive µs per hit]: the heaviest by self time, and the
               # crate's own functions by inclusive time
               **{f"functions_by_{by}_us_per_hit": [[name, per_hit(own_s), per_hit(incl)]
                                                    for name, own_s, incl in split[f"by_{by}"]]
                  for by in ("self", "inclusive")},
               "other_cpu_share": other}
        log(f"  {what}, profiler: the worker's own CPU ≈{out['worker_us_per_hit']} ± {out['worker_error_us_per_hit']} µs "
            f"per hit (wasm {out['wasm_us_per_hit']}, JS {out['js_us_per_hit']}; {own} samples of ≈{weight:g} µs)")
        if profiled.x_cache != {x_cache: len(items)}:
            self.problems.append(f"workerd CPU per {what}, profiled: X-Cache {dict(profiled.x_cache)}, "
                                 f"expected {x_cache} for all {len(items)}")
        if other > NOISE_SHARE:
            self.noisy.append(f"workerd CPU per {what}, profiled: other processes used {other:.0%} of the cores")
        return out

    # ------------------------------------------------------------------ reference loading

    async def first_read(self, url: str, pid: int | None) -> tuple[dict, bytes]:
        """The first GET of `url`, a dataset's first request (its references load inside it), timed
        to its answer; the RSS of the workerd process running the isolate is sampled every 5 ms
        from just before it until the write-backs it left (in waitUntil) have gone quiet. Peak and
        after are growth over before."""
        before = probes.memory_kb(pid).get("VmRSS", 0) if pid else 0
        peak = before
        done = False

        async def sample():
            nonlocal peak
            while not done:
                peak = max(peak, probes.memory_kb(pid).get("VmRSS", 0))
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample()) if pid else None
        row: dict = {}
        body = b""
        t0 = time.perf_counter()
        try:
            async with self.control.get(url, timeout=aiohttp.ClientTimeout(total=300)) as r:
                body = await r.read()
                row["status"] = r.status
                row["x_cache"] = r.headers.get("X-Cache")
                row["server_timing"] = parse_server_timing(r.headers.get("Server-Timing"))
                if r.status != 200:
                    row["error"] = body[:300].decode("utf-8", "replace")
        except Exception as exc:  # noqa: BLE001
            row["status"] = None
            row["error"] = f"{type(exc).__name__}: {exc}"
        row["first_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        await probes.settle(self.quiet_counters)
        done = True
        if sampler:
            await sampler
        if pid:
            after = probes.memory_kb(pid).get("VmRSS", 0)
            peak = max(peak, after)
            row["workerd_rss_before_mb"] = round(before / 1024, 1)
            row["workerd_rss_peak_delta_mb"] = round((peak - before) / 1024, 1)
            row["workerd_rss_after_delta_mb"] = round((after - before) / 1024, 1)
        return row, body

    async def ref_loading(self) -> list[dict]:
        """Reference loading in the worker, in this order: the parquet set's first chunk read and
        its warm lookups (first, while the isolate's wasm memory has not been grown by the big JSON
        loads: memory never shrinks and is reused, so a load after them would show no growth),
        the JSON sets (R2 rows first), the parquet set's random sample against fsspec (it reads
        most of its record files), then the listing (which loads every dataset)."""
        parquet = self.results["parquet_refs"] = {}
        if self.manifest.get("bigrefs"):
            try:
                parquet.update(await self.parquet_load())
            except Exception as exc:  # noqa: BLE001
                parquet["error"] = f"{type(exc).__name__}: {exc}"
                self.problems.append(f"parquet references: {parquet['error']}")
        rows = await self.json_ref_loading()
        if parquet.get("status") == 200:
            try:
                parquet["sample_check"] = await self.parquet_sample()
            except Exception as exc:  # noqa: BLE001
                parquet["sample_check"] = {"error": f"{type(exc).__name__}: {exc}"}
                self.problems.append(f"parquet references, sample check: {exc}")
        # Only now: listing the datasets loads every dataset's references.
        async with self.control.get(f"{self.stack.worker}/api/datasets",
                                    timeout=aiohttp.ClientTimeout(total=300)) as r:
            listing = await r.json(content_type=None)
        entries = {d.get("id"): d for d in listing.get("datasets", [])}
        for row in rows:
            entry = entries.get(row["dataset"], {})
            row["state"] = entry.get("state")
            row["references_reported"] = entry.get("references")
            if entry.get("error"):
                row["error"] = entry.get("error")
            if row["status"] != 200 or row["warm_ms"] is None or row.get("error"):
                self.problems.append(f"reference loading {row['refs']} from {row['source']}: "
                                     f"{row.get('error') or row['status']}")
        if parquet and "dataset" in parquet:
            entry = entries.get(parquet["dataset"], {})
            parquet["state"] = entry.get("state")
            if entry.get("error"):
                parquet["listing_error"] = entry["error"]
                self.problems.append(f"parquet references: /api/datasets says {entry['error']}")
        return rows

    async def json_ref_loading(self) -> list[dict]:
        """The JSON sets: the first request for a chunk key (read and parse the references, then
        the chunk's origin fetch: a MISS), timed, with workerd's RSS; then warm `.zgroup` reads."""
        runtimes = [("wrangler dev", self.stack.worker, probes.workerd_pid(self.groups, self.stack.worker_port))]
        if self.stack.worker_prod:
            # Its own isolate, process and keys: its loads and memory are its own.
            runtimes.append(("workerd", self.stack.worker_prod,
                             next(iter(probes.workerd_pids_of(self.groups, "prod")), None)))
        rows = []
        cases = [(runtime, s, source) for runtime in runtimes for source in ("r2", "origin")
                 for s in self.manifest["synth"]]
        for k, ((runtime, base, pid), s, source) in enumerate(cases):
            dataset = s["r2_id"] if source == "r2" else s["id"]
            # a chunk of its own per row (the k-th reference: a range no other row reads), so every
            # first read is a MISS; the sets' references are the same, whatever their size
            key = f"temp/0.0.{k}"
            row = {"refs": s["n"], "source": source, "dataset": dataset, "json_mb": round(s["json_bytes"] / 1e6, 1),
                   "first_key": key, "runtime": runtime}
            log(f"reference loading ({runtime}): {s['n']:,} references ({row['json_mb']} MB JSON) from "
                + ("R2" if source == "r2" else "the origin") + f", first request {key}")
            first, body = await self.first_read(f"{base}/zarr/{dataset}/{key}", pid)
            row.update(first)
            if row["status"] == 200 and len(body) != data.synth_length(k):
                row["error"] = f"{key}: {len(body)} bytes, expected {data.synth_length(k)}"
            url = f"{base}/zarr/{dataset}/.zgroup"
            warm = []
            if row["status"] == 200:
                for _ in range(7):
                    t0 = time.perf_counter()
                    async with self.control.get(url) as r:
                        await r.read()
                    warm.append((time.perf_counter() - t0) * 1000)
                row["warm_ms"] = round(statistics.median(warm), 2)
            else:
                row["warm_ms"] = None
            log(f"  status {row['status']} ({row.get('x_cache')}), first chunk {row['first_ms']} ms, "
                f"warm .zgroup {row['warm_ms']} ms, workerd RSS +{row.get('workerd_rss_peak_delta_mb')} MB peak")
            rows.append(row)
            if runtime == "wrangler dev":
                row["inspector_drained_mb"] = round(await self.drain() / 1e6, 2)
        return rows

    # ------------------------------------------------------------------ parquet references

    def bigrefs_key(self, i: int) -> str:
        big = self.manifest["bigrefs"]
        return f"{big['var']}/{i // big['cols']}.{i % big['cols']}"

    async def parquet_load(self) -> dict:
        """The parquet set (bench/bigrefs.py, dataset big-parquet): the first request for a chunk
        key of a fresh dataset (the .zmetadata, the key's record file through the cache, then the
        chunk: a MISS), timed, with workerd's RSS; then distinct keys of the same record read once
        (MISS: the record stays decoded, no record file is read again) and read again one at a
        time (HIT), plain and with V8's sampling profiler, whose samples under the parquet code
        estimate the in-worker lookup."""
        big = self.manifest["bigrefs"]
        cfg = self.config
        base = f"{self.stack.worker}/zarr/{big['id']}"
        pid = probes.workerd_pid(self.groups, self.stack.worker_port)
        chunks, size = big["chunks"], big["record_size"]
        record = math.ceil(chunks / size) // 2
        lo, hi = record * size, min(chunks, (record + 1) * size)
        picked = random.Random(big["sample_seed"]).sample(range(lo, hi), min(hi - lo, 1 + cfg.bigrefs_warm_keys))
        out = {"dataset": big["id"], "chunks": chunks, "record_size": size, "record_files": big["record_files"],
               "refs_mb": round(big["refs_bytes"] / 1e6, 2), "record": record,
               "first_key": self.bigrefs_key(picked[0])}
        prefixes = {"refs": "/bigrefs/refs/", "parts": "/bigrefs/big/"}
        log(f"parquet references: {chunks:,} chunks in {big['record_files']} record files of {size:,} rows "
            f"({out['refs_mb']} MB), first request {out['first_key']}")
        mark = self.nginx.mark()
        first, body = await self.first_read(f"{base}/{out['first_key']}", pid)
        out.update(first)
        out["first_origin_requests"] = self.nginx.count(mark, prefixes)
        log(f"  status {out['status']} ({out.get('x_cache')}), first chunk {out['first_ms']} ms, workerd RSS "
            f"+{out.get('workerd_rss_peak_delta_mb')} MB peak, +{out.get('workerd_rss_after_delta_mb')} MB after; "
            f"origin: {out['first_origin_requests']}")
        out["inspector_drained_mb"] = round(await self.drain() / 1e6, 2)
        if out["status"] != 200:
            self.problems.append(f"parquet references, first chunk {out['first_key']}: {out.get('error') or out['status']}")
            return out
        if body != float32(picked[0]):
            self.problems.append(f"parquet references, first chunk {out['first_key']}: {body!r}, "
                                 f"expected {float32(picked[0])!r}")
        if out["x_cache"] != "MISS":
            self.problems.append(f"parquet references, first chunk: X-Cache {out['x_cache']}, expected MISS")
        if out["first_origin_requests"]["refs"] > 2:
            self.problems.append(f"parquet references, first chunk: {out['first_origin_requests']['refs']} requests "
                                 "for reference files at the origin, expected 2 (.zmetadata and one record file)")

        def items_of(indices):
            return [Item(f"{base}/{self.bigrefs_key(i)}", 4, zlib.crc32(float32(i))) for i in indices]

        items = items_of(picked[1:])
        reader = HttpReader(8, cfg.request_timeout_s)
        mark = self.nginx.mark()
        try:
            populate = await run_pass(items, reader.fetch, 8, cfg.pass_max_seconds, "parquet populate (MISS)")
        finally:
            await reader.close()
        await probes.settle(self.quiet_counters)
        counts = self.nginx.count(mark, prefixes)
        f = figures(populate)
        out["populate"] = {"keys": len(items), "chunks": f["chunks"], "x_cache": f["x_cache"], "errors": f["errors"],
                           "p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"], "wall_s": f["wall_s"], "origin_requests": counts}
        log(f"  populate: {len(items)} keys of record {record} at c=8, X-Cache {f['x_cache']}, p50 {f['p50_ms']} ms, "
            f"origin {counts}")
        self.check_parquet_pass("populate", populate, len(items), "MISS", counts, parts=len(items))
        await self.drain()
        out["workerd_rss_after_populate_delta_mb"] = (round(probes.memory_kb(pid).get("VmRSS", 0) / 1024
                                                            - out["workerd_rss_before_mb"], 1) if pid else None)

        warm = [items[j % len(items)] for j in range(cfg.bigrefs_warm_requests)]
        roles = probes.workerd_roles(self.groups, self.stack.worker_port)
        reader = HttpReader(1, cfg.request_timeout_s)
        try:
            mark = self.nginx.mark()
            r0 = probes.cpu_by_role(roles)
            plain = await run_pass(warm, reader.fetch, 1, cfg.pass_max_seconds, "parquet warm (HIT)")
            r1 = probes.cpu_by_role(roles)
            counts = self.nginx.count(mark, prefixes)
            f = figures(plain)
            n = max(1, plain.ok)
            out["warm"] = {"requests": len(warm), "keys": len(items), "chunks": f["chunks"], "x_cache": f["x_cache"],
                           "errors": f["errors"], "p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"],
                           "mean_ms": round(plain.wall_s * 1000 / n, 3),
                           "server_timing_p50_ms": f["server_timing_p50_ms"],
                           "cpu_ms_per_req_by_process": {k: round((r1.get(k, 0) - r0.get(k, 0)) * 1000 / n, 3) for k in r1},
                           "origin_requests": counts}
            log(f"  warm: {len(warm)} requests over {len(items)} keys at c=1, X-Cache {f['x_cache']}, "
                f"p50 {f['p50_ms']} ms, Server-Timing {f['server_timing_p50_ms']}")
            self.check_parquet_pass("warm", plain, len(warm), "HIT", counts, parts=0)
            await self.drain()
            # RSS growth over before the first read, after the warm HITs (the profiler's own data
            # comes after: see workerd_rss_end_delta_mb)
            out["workerd_rss_after_warm_delta_mb"] = (round(probes.memory_kb(pid).get("VmRSS", 0) / 1024
                                                            - out["workerd_rss_before_mb"], 1) if pid else None)
            profiled = warm[:cfg.bigrefs_profiled_requests]
            try:
                async with probes.Inspector(probes.wrangler_inspector(self.stack.inspector_port)) as insp:
                    await insp.call("Profiler.enable")
                    await insp.call("Profiler.setSamplingInterval", {"interval": PARQUET_SAMPLING_US})
                    await insp.call("Profiler.start")
                    again = await run_pass(profiled, reader.fetch, 1, cfg.pass_max_seconds, "parquet warm (profiler)")
                    prof = (await insp.call("Profiler.stop", want="profile"))["profile"]
                    await insp.call("Profiler.disable")
                n = max(1, again.ok)
                us, samples, leaves, weight = probes.inclusive_us(prof, "source::parquet::")
                cats = probes.summarise_profile(prof)["categories_us"]
                out["profiled"] = {"requests": len(profiled), "x_cache": dict(again.x_cache),
                                   "sampling_interval_us": PARQUET_SAMPLING_US,
                                   "parquet_us_per_req": round(us / n, 1), "parquet_samples": samples,
                                   # the µs a sample stands for: the median spacing of samples while the
                                   # isolate runs (see probes.inclusive_us)
                                   "sample_weight_us": weight,
                                   "profile_samples": len(prof["samples"]),
                                   # where those samples were (self time, µs over all requests)
                                   "parquet_top_self_us": leaves,
                                   "wasm_ms_per_req": round(cats.get("wasm", 0) / 1000 / n, 3),
                                   "js_ms_per_req": round(cats.get("js", 0) / 1000 / n, 3),
                                   "wall_ms_per_req": round(again.wall_s * 1000 / n, 3)}
                log(f"  profiled: {out['profiled']['parquet_us_per_req']} µs per request in parquet code "
                    f"({samples} samples of {PARQUET_SAMPLING_US} µs), wasm {out['profiled']['wasm_ms_per_req']} ms")
                if again.x_cache != {"HIT": len(profiled)}:
                    self.problems.append(f"parquet references, profiled warm pass: X-Cache {dict(again.x_cache)}")
            except Exception as exc:  # noqa: BLE001
                out["profiled"] = {"error": f"{type(exc).__name__}: {exc}"}
                self.problems.append(f"parquet references: CPU profile through the inspector failed: {exc}")
        finally:
            await reader.close()
        # Another record's first key, now that the set is loaded and its code has run: what a
        # record file's read and decode costs alone (time, memory).
        other = record + 1 if record + 1 < math.ceil(chunks / size) else record - 1
        if other >= 0 and other != record:
            i = other * size + (picked[0] - lo) % max(1, min(chunks, (other + 1) * size) - other * size)
            mark = self.nginx.mark()
            nxt, body = await self.first_read(f"{base}/{self.bigrefs_key(i)}", pid)
            nxt.update(key=self.bigrefs_key(i), record=other, origin_requests=self.nginx.count(mark, prefixes))
            out["next_record"] = nxt
            log(f"  another record's first key {nxt['key']}: status {nxt['status']} ({nxt.get('x_cache')}), "
                f"{nxt['first_ms']} ms, workerd RSS +{nxt.get('workerd_rss_peak_delta_mb')} MB peak, "
                f"origin {nxt['origin_requests']}")
            if nxt["status"] != 200 or body != float32(i) or nxt["x_cache"] != "MISS":
                self.problems.append(f"parquet references, {nxt['key']} (record {other}): status {nxt['status']}, "
                                     f"X-Cache {nxt.get('x_cache')}, body {body[:16]!r}, expected {float32(i)!r}")
            if nxt["origin_requests"]["refs"] != 1:
                self.problems.append(f"parquet references, {nxt['key']}: {nxt['origin_requests']['refs']} reference "
                                     "files read at the origin, expected 1 (its record file)")
        out["workerd_rss_end_delta_mb"] = (round((probes.memory_kb(pid).get("VmRSS", 0) / 1024
                                                  - out["workerd_rss_before_mb"]), 1) if pid else None)
        await self.drain()
        return out

    def check_parquet_pass(self, what: str, outcome, n: int, x_cache: str, counts: dict, parts: int) -> None:
        what = f"parquet references, {what} pass"
        if outcome.errors:
            self.problems.append(f"{what}: errors {dict(outcome.errors)}")
        if not outcome.complete:
            self.problems.append(f"{what}: incomplete ({outcome.ok}/{n})")
        if dict(outcome.x_cache) != {x_cache: n}:
            self.problems.append(f"{what}: X-Cache {dict(outcome.x_cache)}, expected {x_cache} for all {n}")
        if counts["refs"]:
            self.problems.append(f"{what}: {counts['refs']} reference files read at the origin, expected none "
                                 "(the keys' record is decoded in memory)")
        if counts["parts"] != parts:
            self.problems.append(f"{what}: {counts['parts']} chunk requests at the origin, expected {parts}")

    async def parquet_sample(self) -> dict:
        """bench/bigrefs.py --sample's random keys (their sha256 as fsspec's ReferenceFileSystem
        reads them) through the worker, 8 at a time: every body must have that sha256. They fall
        in most record files, more than the set's record cache holds."""
        big = self.manifest["bigrefs"]
        base = f"{self.stack.worker}/zarr/{big['id']}"
        expected = {f"{base}/{s['key']}": s["sha256"] for s in big["sample"]}
        records = {(int(r) * big["cols"] + int(c)) // big["record_size"]
                   for r, c in (s["key"].split("/", 1)[1].split(".") for s in big["sample"])}
        log(f"parquet references: {len(expected)} random keys (seed {big['sample_seed']}, {len(records)} record "
            "files) through the worker against fsspec's ReferenceFileSystem")
        reader = HttpReader(8, self.config.request_timeout_s)

        async def fetch(item: Item):
            body, meta = await reader.fetch(item)
            got = hashlib.sha256(body).hexdigest()
            if got != expected[item.target]:
                raise SampleMismatch(f"sha256 {got[:16]}…, ReferenceFileSystem read {expected[item.target][:16]}…")
            return body, meta

        pid = probes.workerd_pid(self.groups, self.stack.worker_port)
        mark = self.nginx.mark()
        try:
            # most keys need a record file read and decoded (the record cache holds a few): more time
            outcome = await run_pass([Item(u) for u in expected], fetch, 8, max(300.0, self.config.pass_max_seconds),
                                     "parquet sample")
        finally:
            await reader.close()
        await probes.settle(self.quiet_counters)
        counts = self.nginx.count(mark, {"refs": "/bigrefs/refs/", "parts": "/bigrefs/big/"})
        f = figures(outcome)
        out = {"keys": len(expected), "seed": big["sample_seed"], "records": len(records), "equal": outcome.ok,
               "errors": f["errors"], "complete": f["complete"], "x_cache": f["x_cache"], "p50_ms": f["p50_ms"],
               "wall_s": f["wall_s"], "origin_requests": counts,
               "workerd_rss_mb": round(probes.memory_kb(pid).get("VmRSS", 0) / 1024, 1) if pid else None}
        log(f"  {outcome.ok}/{len(expected)} equal in {f['wall_s']:.1f}s, X-Cache {f['x_cache']}, origin {counts}"
            + (f", errors {f['errors']}" if f["errors"] else ""))
        if outcome.ok != len(expected) or f["errors"] or not f["complete"]:
            self.problems.append(f"parquet references: {len(expected) - outcome.ok} of {len(expected)} sample keys "
                                 f"differ from fsspec's ReferenceFileSystem or failed: {f['errors']}"
                                 + ("" if f["complete"] else " (cut short)"))
        if len(expected) < 200 and len(expected) < big["chunks"]:
            self.problems.append(f"parquet references: only {len(expected)} sample keys (at least 200 wanted)")
        await self.drain()
        return out

    # ------------------------------------------------------------------ run

    async def run(self) -> dict:
        self.control = aiohttp.ClientSession()
        started = time.time()
        try:
            await self.warm_up(f"{self.stack.worker}/api/health", "worker health", timeout=30)
            await self.warm_up(f"{self.stack.worker_s3}/api/health", "S3-storage worker health", timeout=30)
            # xpublish opens its datasets (reading coordinates from the origin) in the background:
            # let it finish before anything is measured, so it disturbs no pass.
            if self.stack.xpublish and not await self.xpublish_ready():
                self.problems.append(f"xpublish did not start (see {self.stack.state}/logs/xpublish.log)")
                self.stack.xpublish = None
            # First, while wrangler's inspector proxy holds few messages: it keeps every runtime
            # inspector message (Network events of each subrequest, with its body) until a DevTools
            # client connects, then sends them all to it; late in a run that takes minutes.
            await self.wait_quiet(self.config.wait_quiet_s)
            await self.drain("s3")
            await self.drain()
            log("CPU time per warm hit (wrangler's inspector, V8 sampling profiler)")
            self.results["cpu_per_hit"] = await self.cpu_per_hit()
            if self.stack.worker_prod and self.stack.worker_prod_prof:
                log("CPU time per warm hit and EDGE hit, workerd (production-like; workerd's inspector on its "
                    "profiling instance)")
                self.results["cpu_per_hit_workerd"] = await self.cpu_per_hit_workerd()
            for profile in self.config.profiles:
                await self.run_profile(profile)
            self.results["ref_loading"] = await self.ref_loading()
            self.results["wrangler_rss_mb_end"] = probes.rss_by_role(
                probes.workerd_roles(self.groups, self.stack.worker_port))
        finally:
            await self.control.close()
        self.results["rows"] = self.rows
        self.results["noisy_passes"] = self.noisy
        self.results["populate_passes"] = self.populate
        self.results["wasm"] = wasm_size()
        if self.results["wasm"].get("gzip_bytes") is None:
            self.problems.append("gzipped wasm size missing (build/index_bg.wasm)")
        self.results["native_kerchunk_load"] = native_example() if self.config.native_example else {"skipped": "smoke run"}
        self.results["duration_s"] = round(time.time() - started, 1)
        return self.results


WASM_PATH = ROOT / "build" / "index_bg.wasm"


def wasm_size() -> dict:
    path = WASM_PATH
    if not path.exists():
        return {"path": str(path), "bytes": None, "gzip_bytes": None}
    data = path.read_bytes()
    return {"path": "build/index_bg.wasm (the copy the run served)" if path != ROOT / "build" / "index_bg.wasm"
            else "build/index_bg.wasm", "bytes": len(data), "gzip_bytes": len(gzip.compress(data, 9)),
            "built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))}


def native_example() -> dict:
    if not (ROOT / "examples" / "kerchunk_load.rs").exists():
        return {"skipped": "examples/kerchunk_load.rs does not exist (yet)"}
    log("native reference loading: cargo run --release --example kerchunk_load (compiles first)")
    try:
        run = subprocess.run(["cargo", "run", "--release", "--quiet", "--example", "kerchunk_load"], cwd=ROOT,
                             capture_output=True, text=True, timeout=1500)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 1500 s"}
    table = [line for line in run.stdout.splitlines() if line.lstrip().startswith("|")]
    return {"exit": run.returncode, "table": table, "stdout_tail": run.stdout[-3000:],
            "stderr_tail": run.stderr[-2000:] if run.returncode else ""}


def machine(stack_state: Path) -> dict:
    def cmd(*args: str) -> str:
        try:
            r = subprocess.run(list(args), capture_output=True, text=True, timeout=30, cwd=ROOT)
            return (r.stdout or r.stderr).strip().splitlines()[0] if (r.stdout or r.stderr).strip() else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""

    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    model = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    from importlib import metadata

    def pyver(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    workerd = ROOT / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
    dirty = cmd("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "cores": os.cpu_count(),
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"{cmd('cat', '/etc/debian_version') and 'Debian ' + cmd('cat', '/etc/debian_version')} / Linux {platform.release()}",
        "git": cmd("git", "rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else ""),
        "versions": {
            "rustc": cmd("rustc", "--version"),
            "wrangler": cmd(str(ROOT / "node_modules" / ".bin" / "wrangler"), "--version"),
            "workerd": cmd(str(workerd), "--version") if workerd.exists() else "",
            "node": cmd("node", "--version"),
            "python": platform.python_version(),
            "nginx": cmd("nginx", "-v") or cmd("/usr/sbin/nginx", "-v"),
            "redis-server": cmd("redis-server", "--version"),
            **{p: pyver(p) for p in ("fsspec", "kerchunk", "aiohttp", "xarray", "zarr", "h5netcdf", "h5py",
                                     "xpublish", "xpublish-zarr", "uvicorn", "dask", "numpy", "matplotlib")},
        },
    }


