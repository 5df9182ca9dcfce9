"""The Python half of bench/run (which starts and stops the stack around it).

    bench.py prepare --state DIR --config full|smoke --origin-url URL --proxy-url URL [--xpublish-url URL]
    bench.py measure --state DIR --config full|smoke --out DIR [ports and token, see --help]
    bench.py render [--out DIR]     rewrite latest.md/png from latest.json (no measuring)

`prepare` writes the benchmark data and the worker's dataset aliases (STATE/manifest.json,
STATE/datasets-extra.json); `measure` runs every pass against the running stack, prints the
markdown report, writes OUT/latest.{md,json,png} and exits 1 if anything failed or any figure is
missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zecbench import config as configs  # noqa: E402


def cmd_prepare(args: argparse.Namespace) -> int:
    from zecbench import data

    cfg = configs.with_env(configs.CONFIGS[args.config])
    started = time.monotonic()
    data.prepare(Path(args.state), cfg, args.origin_url.rstrip("/"), args.proxy_url.rstrip("/"),
                 Path(args.cache), log=lambda m: print(m, file=sys.stderr, flush=True),
                 xpublish_url=args.xpublish_url.rstrip("/") or None)
    print(f"  benchmark data ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from zecbench import report, runner

    cfg = configs.with_env(configs.CONFIGS[args.config])
    state = Path(args.state)
    manifest = json.loads((state / "manifest.json").read_text())
    stack = runner.Stack(state=state, worker=args.worker_url.rstrip("/"), origin=args.origin_url.rstrip("/"),
                         proxy=args.proxy_url.rstrip("/"), upstash=args.upstash_url.rstrip("/"), token=args.token,
                         xpublish=args.xpublish_url.rstrip("/") if args.xpublish_url else None,
                         inspector_port=args.inspector_port, worker_port=args.worker_port,
                         worker_s3=args.worker_s3_url.rstrip("/"), worker_s3_port=args.worker_s3_port,
                         inspector_s3_port=args.inspector_s3_port, s3_dir=Path(args.s3_dir),
                         worker_prod=args.worker_prod_url.rstrip("/") or None,
                         worker_prod_prof=args.worker_prod_prof_url.rstrip("/") or None,
                         inspector_prod_port=args.inspector_prod_port,
                         floor=args.floor_url.rstrip("/") or None, inspector_floor_port=args.inspector_floor_port)
    bench = runner.Bench(cfg, stack, manifest, args.latency_ms, args.bandwidth_mb_s)
    if args.wasm:
        runner.WASM_PATH = Path(args.wasm)
    failed = None
    try:
        results = asyncio.run(bench.run())
    except Exception as exc:  # noqa: BLE001 - report what was measured, then fail
        import traceback

        traceback.print_exc()
        failed = f"{type(exc).__name__}: {exc}"
        results = {"rows": bench.rows, "populate_passes": bench.populate, **bench.results,
                   "wasm": runner.wasm_size(), "native_kerchunk_load": {"skipped": "run failed"}}
    results["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    results["config"] = {"name": cfg.name, "profiles": list(cfg.profiles), "concurrency": list(cfg.concurrency),
                         "latency_ms": args.latency_ms, "bandwidth_mb_s": args.bandwidth_mb_s,
                         "pass_max_seconds": cfg.pass_max_seconds, "xpublish": bool(stack.xpublish)}
    results["data"] = {"variables": manifest["variables"], "file_bytes": manifest["file_bytes"],
                       "chunks": sum(len(v["keys"]) for v in manifest["variables"].values()),
                       "bytes": sum(v["bytes"] for v in manifest["variables"].values())}
    results["machine"] = runner.machine(state)
    problems = list(bench.problems)
    if failed:
        problems.append(f"the run stopped early: {failed}")
    if not stack.xpublish and cfg.xpublish:
        problems.append("xpublish was not started")
    results["problems"] = problems
    results["targets"] = report.targets(results)
    text = report.markdown(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.md").write_text(text + "\n")
    (out / "latest.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    if cfg.chart and results["rows"]:
        report.chart(results, out / "latest.png")
    print(text)
    print(f"\nwrote {out}/latest.md, latest.json" + (", latest.png" if cfg.chart else ""), file=sys.stderr)
    if problems:
        print(f"\nbench: {len(problems)} problem(s):\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    """Rewrites latest.md (and latest.png) from latest.json, e.g. after a change to report.py."""
    from zecbench import report

    out = Path(args.out)
    results = json.loads((out / "latest.json").read_text())
    results["targets"] = report.targets(results)
    (out / "latest.md").write_text(report.markdown(results) + "\n")
    (out / "latest.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    if results["config"]["name"] != "smoke" and results["rows"]:
        report.chart(results, out / "latest.png")
    print(f"rendered {out}/latest.md from latest.json", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--state", required=True)
    p.add_argument("--config", choices=sorted(configs.CONFIGS), default="full")
    p.add_argument("--origin-url", required=True)
    p.add_argument("--proxy-url", required=True)
    p.add_argument("--cache", required=True, help="where synthetic reference sets are kept between runs")
    p.add_argument("--xpublish-url", default="",
                   help="the benchmark's xpublish: the worker's datasets xw-<profile>-c<N> front it (none if empty)")
    m = sub.add_parser("measure")
    m.add_argument("--state", required=True)
    m.add_argument("--config", choices=sorted(configs.CONFIGS), default="full")
    m.add_argument("--out", required=True)
    m.add_argument("--worker-url", required=True)
    m.add_argument("--worker-port", type=int, required=True)
    m.add_argument("--inspector-port", type=int, required=True)
    m.add_argument("--worker-s3-url", required=True, help="the second worker, whose chunk store is S3 (s3s-fs)")
    m.add_argument("--worker-s3-port", type=int, required=True)
    m.add_argument("--inspector-s3-port", type=int, required=True)
    m.add_argument("--worker-prod-url", default="",
                   help="the same build in workerd through Miniflare's API (no wrangler dev proxy or inspector)")
    m.add_argument("--worker-prod-prof-url", default="",
                   help="a second instance of it with workerd's inspector open, for the CPU profile only")
    m.add_argument("--inspector-prod-port", type=int, default=None, help="that instance's inspector port")
    m.add_argument("--floor-url", default="",
                   help="bench/floor_worker.mjs in workerd (one R2 get or Cache API match in plain JS)")
    m.add_argument("--inspector-floor-port", type=int, default=None, help="its inspector port")
    m.add_argument("--s3-dir", required=True, help="the S3-storage worker's bucket directory in s3s-fs's root")
    m.add_argument("--origin-url", required=True)
    m.add_argument("--proxy-url", required=True)
    m.add_argument("--upstash-url", required=True)
    m.add_argument("--token", required=True)
    m.add_argument("--xpublish-url", default="")
    m.add_argument("--latency-ms", type=float, required=True)
    m.add_argument("--bandwidth-mb-s", type=float, required=True)
    m.add_argument("--wasm", default="", help="the wasm the benchmarked worker runs (default build/index_bg.wasm)")
    r = sub.add_parser("render")
    r.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    return {"prepare": cmd_prepare, "measure": cmd_measure, "render": cmd_render}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
