"""One pass = every chunk of the benchmark variables read once, by one reader, with at most
`concurrency` reads in flight, bounded by a time cap. Latency is per chunk, from the start of its
read to its last byte, on this (client) side. The whole-file readers (`WholeFileReader`) use the
same driver with one item per read of the whole file: latency is then the time of a full read."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import aiohttp


@dataclass
class Item:
    """One chunk: what to ask for and what must come back (None: not checked)."""

    target: str  # URL or reference key
    length: int | None = None
    crc32: int | None = None


@dataclass
class Outcome:
    requests: int = 0
    ok: int = 0
    bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict = field(default_factory=dict)
    x_cache: dict = field(default_factory=dict)
    server_timing: dict = field(default_factory=dict)  # name -> [dur ms]
    server_timing_answers: int = 0  # answers that carried a Server-Timing header
    wall_s: float = 0.0
    complete: bool = True
    # HTTP requests the reader made, when it reports them (whole-file reads: several per item)
    http_requests: int | None = None


Fetch = Callable[[Item], Awaitable[tuple[bytes, dict]]]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def index_wait(o: Outcome) -> dict | None:
    """The index wait of the answers that carried `Server-Timing`: the `index;dur=…` entry, an
    answer without one counting as no wait (a hit served from storage first may report
    `index;dur=0` or leave the entry out). p50 and max (ms), and how many answers waited (dur > 0).
    None when no answer carried the header."""
    if not o.server_timing_answers:
        return None
    waits = o.server_timing.get("index", [])
    waits = waits + [0.0] * max(0, o.server_timing_answers - len(waits))
    return {"answers": len(waits), "waited": sum(1 for w in waits if w > 0),
            "p50_ms": _percentile(waits, 50), "max_ms": max(waits)}


def figures(o: Outcome) -> dict:
    wall = o.wall_s or float("nan")
    return {
        "chunks": o.ok,
        "requests": o.requests,
        "bytes": o.bytes,
        "wall_s": round(o.wall_s, 4),
        "chunks_per_s": round(o.ok / wall, 2) if o.ok else None,
        "mb_per_s": round(o.bytes / wall / 1e6, 3) if o.ok else None,
        "p50_ms": round(_percentile(o.latencies_ms, 50), 3) if o.latencies_ms else None,
        "p99_ms": round(_percentile(o.latencies_ms, 99), 3) if o.latencies_ms else None,
        "errors": dict(o.errors),
        "x_cache": dict(o.x_cache),
        "server_timing_p50_ms": {k: statistics.median(v) for k, v in o.server_timing.items() if v},
        **({"index_wait": index_wait(o)} if o.server_timing_answers else {}),
        "complete": o.complete,
        **({"client_http_requests": o.http_requests} if o.http_requests is not None else {}),
    }


async def run_pass(items: list[Item], fetch: Fetch, concurrency: int, max_seconds: float,
                   label: str, progress_every_s: float = 5.0) -> Outcome:
    """Reads every item once with `concurrency` workers; stops issuing after `max_seconds`."""
    out = Outcome(errors={}, x_cache={}, server_timing={})
    queue = list(reversed(items))
    started = time.perf_counter()
    deadline = started + max_seconds
    last_progress = started

    async def worker():
        nonlocal last_progress
        while queue:
            if time.perf_counter() > deadline:
                out.complete = False
                return
            item = queue.pop()
            t0 = time.perf_counter()
            out.requests += 1
            try:
                body, meta = await fetch(item)
            except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                name = type(exc).__name__
                out.errors[name] = out.errors.get(name, 0) + 1
                if sum(out.errors.values()) <= 3:
                    print(f"    {label}: {item.target}: {name}: {exc}"[:400], file=sys.stderr, flush=True)
                continue
            t1 = time.perf_counter()
            problem = None
            if item.length is not None and len(body) != item.length:
                problem = "wrong_length"
            elif item.crc32 is not None and zlib.crc32(body) != item.crc32:
                problem = "wrong_bytes"
            if problem:
                out.errors[problem] = out.errors.get(problem, 0) + 1
                continue
            out.ok += 1
            # a whole-file read returns a digest as its body, and the bytes it read in its meta
            out.bytes += meta.get("bytes", len(body))
            out.latencies_ms.append((t1 - t0) * 1000.0)
            if "http_requests" in meta:
                out.http_requests = (out.http_requests or 0) + meta["http_requests"]
            xc = meta.get("x-cache")
            if xc:
                out.x_cache[xc] = out.x_cache.get(xc, 0) + 1
            for xc, count in meta.get("x-cache-counts", {}).items():
                out.x_cache[xc] = out.x_cache.get(xc, 0) + count
            if meta.get("server-timing") is not None:
                out.server_timing_answers += 1
            for name, dur in (meta.get("server-timing") or {}).items():
                out.server_timing.setdefault(name, []).append(dur)
            if t1 - last_progress >= progress_every_s:
                last_progress = t1
                print(f"    {label}: {out.ok}/{len(items)} chunks after {t1 - started:.0f}s",
                      file=sys.stderr, flush=True)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
    out.wall_s = time.perf_counter() - started
    if queue:
        out.complete = False
    return out


def parse_server_timing(value: str | None) -> dict[str, float]:
    """`Server-Timing: index;dur=1, storage;dur=0, …` as {name: ms}; an entry without a `dur` is
    left out."""
    out = {}
    for part in (value or "").split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        for b in bits[1:]:
            if b.startswith("dur="):
                try:
                    out[bits[0]] = float(b[4:])
                except ValueError:
                    pass
    return out


class HttpReader:
    """GETs URLs with aiohttp over keep-alive connections (at most `concurrency`)."""

    def __init__(self, concurrency: int, timeout_s: float, expect_status: int = 200,
                 record: dict | None = None):
        # record: when given, {URL: (length, CRC-32)} of every body answered with expect_status
        # (what a later pass checks its bodies against)
        self.record = record
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, force_close=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=False,
        )
        self.expect_status = expect_status

    async def fetch(self, item: Item) -> tuple[bytes, dict]:
        async with self.session.get(item.target) as r:
            body = await r.read()
            if r.status != self.expect_status:
                raise HttpStatusError(f"HTTP {r.status}: {body[:200]!r}")
            if self.record is not None:
                self.record[item.target] = (len(body), zlib.crc32(body))
            # server-timing: None when the answer has no Server-Timing header
            timing = r.headers.get("Server-Timing")
            return body, {"x-cache": r.headers.get("X-Cache"),
                          "server-timing": parse_server_timing(timing) if timing is not None else None}

    async def close(self) -> None:
        await self.session.close()


class HttpStatusError(Exception):
    pass


class ReferenceReader:
    """fsspec's ReferenceFileSystem in asynchronous mode, one `_cat_file` per chunk, as zarr-python
    3 reads a store. `remote` is "http" (straight to the origin) or a caching filesystem
    ("simplecache", "blockcache") over http; those are synchronous, and fsspec wraps them so
    each read runs in a thread of the loop's default executor, sized here to the concurrency."""

    def __init__(self, refs: dict, remote: str, concurrency: int, cache_dir: str | None = None,
                 block_size: int = 1 << 20):
        import fsspec

        if remote == "http":
            self.fs = fsspec.filesystem("reference", fo=refs, remote_protocol="http", asynchronous=True,
                                        remote_options={"asynchronous": True, "skip_instance_cache": True},
                                        skip_instance_cache=True)
        else:
            from fsspec.implementations.asyn_wrapper import AsyncFileSystemWrapper

            opts = {"target_protocol": "http", "cache_storage": cache_dir, "skip_instance_cache": True}
            if remote == "blockcache":
                opts["block_size"] = block_size
            # The caching filesystems forward `async_impl` to their (async) http target, so
            # ReferenceFileSystem would not wrap them itself: wrap explicitly, as zarr-python does.
            cached = fsspec.filesystem(remote, **opts)
            self.fs = fsspec.filesystem("reference", fo=refs, asynchronous=True, skip_instance_cache=True,
                                        fs={"http": AsyncFileSystemWrapper(cached, asynchronous=True)})
        self.executor = ThreadPoolExecutor(max_workers=max(1, concurrency))
        asyncio.get_running_loop().set_default_executor(self.executor)

    async def fetch(self, item: Item) -> tuple[bytes, dict]:
        return await self.fs._cat_file(item.target), {}

    async def close(self) -> None:
        for fs in self.fs.fss.values():
            session = getattr(fs, "_session", None)
            if session is not None:
                await session.close()
        self.executor.shutdown(wait=False)


class WholeFileReader:
    """xarray + h5netcdf over an fsspec file, as a user reads a netCDF4/HDF5 file over HTTP:
    ``xr.open_dataset(fs.open(url), engine="h5netcdf")``, every variable loaded. One fetch is one
    whole read of the item's URL, run in a thread of its own (fsspec's synchronous API does its
    HTTP on fsspec's IO thread), one at a time. `remote` is "http" (fsspec's HTTPFile as it comes:
    5 MiB read-ahead) or "blockcache" (the same through fsspec's blockcache, `block_size` blocks
    kept on local disk in `cache_dir`; the block size is given to `open`, where fsspec takes it).

    A fetch returns, as its body, the digest of the values it loaded (`data.dataset_digest`, which
    the item checks against the file's) and in its meta: the file's size as the bytes read, the
    HTTP requests the reader made, and the X-Cache of its GET answers (seen through an aiohttp
    trace on fsspec's session)."""

    def __init__(self, remote: str, timeout_s: float, file_bytes: int, cache_dir: str | None = None,
                 block_size: int = 1 << 20):
        import fsspec

        self.file_bytes = file_bytes
        self.open_options = {"block_size": block_size} if remote == "blockcache" else {}
        self.answers: list[tuple[str, int, str | None]] = []  # appended on fsspec's IO thread
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._answered)
        client = {"trace_configs": [trace], "timeout": aiohttp.ClientTimeout(total=timeout_s)}
        if remote == "http":
            self.fs = fsspec.filesystem("http", client_kwargs=client, skip_instance_cache=True)
        elif remote == "blockcache":
            self.fs = fsspec.filesystem("blockcache", target_protocol="http", cache_storage=cache_dir,
                                        skip_instance_cache=True,
                                        target_options={"client_kwargs": client, "skip_instance_cache": True})
        else:
            raise ValueError(f"unknown remote {remote!r}")
        self.executor = ThreadPoolExecutor(max_workers=1)

    async def _answered(self, _session, _ctx, params) -> None:
        self.answers.append((params.method, params.response.status, params.response.headers.get("X-Cache")))

    def _read(self, url: str) -> bytes:
        import xarray as xr

        from .data import dataset_digest

        with self.fs.open(url, "rb", **self.open_options) as f, xr.open_dataset(f, engine="h5netcdf") as ds:
            return dataset_digest(ds.load())

    async def fetch(self, item: Item) -> tuple[bytes, dict]:
        first = len(self.answers)
        body = await asyncio.get_running_loop().run_in_executor(self.executor, self._read, item.target)
        answers = self.answers[first:]
        x_cache: dict[str, int] = {}
        for method, _status, xc in answers:
            if method == "GET" and xc:
                x_cache[xc] = x_cache.get(xc, 0) + 1
        return body, {"bytes": self.file_bytes, "http_requests": len(answers), "x-cache-counts": x_cache}

    async def close(self) -> None:
        self.executor.shutdown(wait=True)
