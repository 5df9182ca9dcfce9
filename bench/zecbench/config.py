"""The two benchmark configurations: the full run and the smoke run (same harness, tiny data)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Variable:
    """One variable of the benchmark file: shape, chunks, dtype and how its values are made."""

    name: str
    dtype: str  # "f4" (a smooth temperature-like field) or "i2" (sparse, precipitation-like)
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]
    # f4 only: uniform noise in [0, 1) instead of the smooth field; shuffle+zlib keep ~80% of it,
    # so its chunks stay about as large as they are raw
    noise: bool = False


@dataclass(frozen=True)
class Config:
    name: str
    variables: tuple[Variable, ...]
    concurrency: tuple[int, ...]
    # origin profiles: "loopback" (nginx as it is) and "remote" (through bench/slow_proxy.py)
    profiles: tuple[str, ...] = ("loopback", "remote")
    latency_ms: float = 50.0
    bandwidth_mb_s: float = 20.0
    # a pass stops issuing requests after this long (it then reports what it read, as incomplete)
    pass_max_seconds: float = 120.0
    request_timeout_s: float = 60.0
    # reference sets synthesised for the reference-loading measurement
    synth_refs: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    # the parquet reference set (bench/bigrefs.py): chunks, rows per record file, and what the
    # worker is asked: distinct keys of one loaded record (read once, then warm), warm requests
    # over them one at a time (plain, and again with the V8 profiler), and random keys checked
    # against fsspec's ReferenceFileSystem (bigrefs.py --sample)
    bigrefs_chunks: int = 10_000_000
    bigrefs_record_size: int = 100_000
    bigrefs_warm_keys: int = 500
    bigrefs_warm_requests: int = 2000
    bigrefs_profiled_requests: int = 1000
    bigrefs_sample: int = 200
    xpublish: bool = True
    # warm hits sampled by the V8 profiler (through wrangler's inspector) for CPU time per hit
    profiled_hits: int = 300
    # the same in the production-like runtime (bench/serve_workerd.mjs), per pass: warm HITs and
    # EDGE hits, each without the profiler and with it (its profiling instance)
    workerd_profiled_hits: int = 1000
    chart: bool = True
    native_example: bool = True
    # before measuring, wait at most this long for other processes (builds) to leave the cores alone
    wait_quiet_s: float = 0.0
    # a pass that changes no cache state is repeated (up to this many times) when other processes
    # used over 15% of the cores during it; one that changes state waits (at most this long) for quiet
    noise_retries: int = 0
    # a pass at the top concurrency that changes no cache state (the throughput figures: 304
    # requests, 0.2-0.7 s on the workerd rows) is run this many times and its median kept
    throughput_repeats: int = 1
    quiet_wait_before_pass_s: float = 0.0
    # whole-file reads (xarray + h5netcdf over fsspec HTTP, every variable loaded) per pass of the
    # rows that can be repeated (direct, blockcache warm, block mode warm); a cold pass is one read
    file_reads: int = 3
    # block mode: the block size of the benchmark's kind "files" datasets, and fsspec's blockcache's
    files_block_size: int = 1 << 20
    extra: dict = field(default_factory=dict)


FULL = Config(
    name="full",
    variables=(
        # ~108 KB per chunk after shuffle+zlib: a bandwidth-leaning read
        Variable("t2m", "f4", (96, 192, 256), (1, 192, 256)),
        # ~16 KB per chunk: a latency-leaning read
        Variable("precip", "i2", (96, 192, 256), (2, 96, 128)),
        # ~0.96 MB per chunk (noise: shuffle+zlib barely compress it): large chunks
        Variable("noise", "f4", (96, 192, 256), (6, 192, 256), noise=True),
    ),
    concurrency=(1, 8, 32),
    wait_quiet_s=300.0,
    noise_retries=2,
    throughput_repeats=3,
    quiet_wait_before_pass_s=60.0,
)

SMOKE = Config(
    name="smoke",
    variables=(
        # ~30 KB per chunk
        Variable("t2m", "f4", (16, 96, 128), (1, 96, 128)),
        # one chunk of ~0.64 MB: the large-chunk case, in one chunk to keep the run short
        Variable("noise", "f4", (16, 96, 128), (16, 96, 128), noise=True),
    ),
    concurrency=(1, 8),
    pass_max_seconds=20.0,
    request_timeout_s=20.0,
    synth_refs=(10_000,),
    bigrefs_chunks=100_000,
    bigrefs_record_size=10_000,
    bigrefs_warm_keys=50,
    bigrefs_warm_requests=200,
    bigrefs_profiled_requests=200,
    profiled_hits=60,
    file_reads=1,
    chart=False,
    native_example=False,
)

CONFIGS = {c.name: c for c in (FULL, SMOKE)}


def with_env(config: Config) -> Config:
    """`config` with the parquet set's size taken from ZEC_BENCH_BIGREFS_CHUNKS and
    ZEC_BENCH_BIGREFS_RECORD_SIZE, and the synthetic JSON sets' sizes from ZEC_BENCH_SYNTH_REFS
    (comma-separated), when set (e.g. the smoke run over the full run's 10M chunks, or over the
    1M JSON set)."""
    changes: dict = {}
    for name, var in (("bigrefs_chunks", "ZEC_BENCH_BIGREFS_CHUNKS"), ("bigrefs_record_size", "ZEC_BENCH_BIGREFS_RECORD_SIZE")):
        if os.environ.get(var):
            changes[name] = int(os.environ[var])
    if os.environ.get("ZEC_BENCH_SYNTH_REFS"):
        changes["synth_refs"] = tuple(int(n) for n in os.environ["ZEC_BENCH_SYNTH_REFS"].split(","))
    return replace(config, **changes) if changes else config
