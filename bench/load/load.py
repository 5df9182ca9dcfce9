"""Helpers of bench/load/run: the load datasets and their manifests,
registering them through the admin API, the warm-up reads, the origin and index counters, and the
report (summary table, bench/results/load.{md,json}). Stdlib only.

  prepare   copies of the demo references whose ranged URLs carry ?load=<tag>-<run>-<id>, the
            run-time dataset definitions and the manifests (path, file, offset, length) for wrk
  register  PUT /api/admin/datasets/{id} for every load dataset (DELETE with --delete)
  warmup    reads every key of the warm datasets: first MISS, then (after the write-back) HIT,
            each body equal to the original bytes
  snapshot  the counters around a run: nginx access log size, upstash-local /__stats, worker log
            size, load average
  quiet     waits (bounded) until the machine is quiet, before a full run's wrk runs
  monitor   samples the descriptors and RSS of the worker's processes during a run
  report    the figures of the runs against the requirements; exit 1 when one is not met
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30.0) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


# ---------------------------------------------------------------------------------------- prepare

def prepare(args) -> None:
    demo = Path(args.demo).resolve()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    origin = args.origin_url.rstrip("/")
    host = origin.split("://", 1)[1].split("/", 1)[0]
    entries = json.load(open(demo / "datasets.json"))
    datasets: dict[str, dict] = {}
    manifests: dict[str, list[tuple[str, str, int, int]]] = {"warm": [], "mixed": []}
    runs = [("warm", 1), ("mixed", args.mixed_copies)]
    for run, copies in runs:
        for copy in range(copies):
            for entry in entries:
                # A parquet reference set (refs/{id}.parq/) holds the same chunks as its JSON
                # twin, which is loaded already: its record files are not a JSON document.
                if entry.get("refs_format") == "parquet":
                    continue
                suffix = f"{run}{copy}" if run == "mixed" else run
                ds_id = f"load-{args.tag}-{suffix}-{entry['id']}"
                refs = json.load(open(demo / entry["refs"]))
                templates = refs.pop("templates", {})
                for key, value in refs["refs"].items():
                    # Only [url, offset, length]: inline keys and whole-file refs are not chunks
                    # this load reads.
                    if not (isinstance(value, list) and len(value) == 3):
                        continue
                    url, offset, length = value
                    # Templates ({{u}}, as scan_grib writes) are expanded: each chunk's URL gets a
                    # query of its own below.
                    for name, target in templates.items():
                        url = url.replace("{{" + name + "}}", target)
                    if not url.startswith(origin + "/"):
                        sys.exit(f"load.py: {entry['refs']}: {key} points at {url}, not at {origin}")
                    file = demo / url[len(origin) + 1:].split("?", 1)[0]
                    if not file.is_file():
                        sys.exit(f"load.py: {file} (of {key}) does not exist")
                    # A query string of its own: new storage objects (content-addressed by URL and
                    # range); nginx serves the same file. The dataset's id in it too: two demo
                    # datasets (air, air-zlib) reference the same ranges.
                    value[0] = f"{url}?load={args.tag}-{suffix}-{entry['id']}"
                    manifests[run].append((f"/zarr/{ds_id}/{key}", str(file), offset, length))
                name = f"refs/{ds_id}.json"
                json.dump(refs, open(demo / name, "w"))
                datasets[ds_id] = {"refs": f"{origin}/{name}", "allowed_hosts": [host],
                                   "edge_ttl_seconds": 0,
                                   "description": f"bench/load/run {run} run {args.tag}"}
    manifests["warm"].sort()
    # Shuffled (seeded by the tag): the connections' start offsets fall on keys of different files
    # and datasets, so the first reads are cold, concurrent and spread; later laps are warm.
    random.Random(args.tag).shuffle(manifests["mixed"])
    for run, rows in manifests.items():
        with open(work / f"{run}.tsv", "w") as f:
            for path, file, offset, length in rows:
                f.write(f"{path}\t{file}\t{offset}\t{length}\n")
    json.dump(datasets, open(work / "datasets.json", "w"), indent=1)
    print(f"{len(manifests['warm'])} warm keys, {len(manifests['mixed'])} mixed keys, "
          f"{len(datasets)} datasets")


def read_manifest(path: Path) -> list[tuple[str, str, int, int]]:
    rows = []
    for line in open(path):
        p, f, o, n = line.rstrip("\n").split("\t")
        rows.append((p, f, int(o), int(n)))
    return rows


def expected_bytes(rows) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    out = {}
    for path, file, offset, length in rows:
        if file not in files:
            files[file] = Path(file).read_bytes()
        out[path] = files[file][offset:offset + length]
    return out


# --------------------------------------------------------------------------------------- register

def register(args) -> None:
    datasets = json.load(open(Path(args.work) / "datasets.json"))
    auth = {"Authorization": f"Bearer {args.admin_token}", "Content-Type": "application/json"}
    base = args.base_url.rstrip("/")
    failed = 0
    for ds_id, config in datasets.items():
        if args.delete:
            status, _, body = http("DELETE", f"{base}/api/admin/datasets/{ds_id}", headers=auth, timeout=60)
            ok = status in (200, 404)
        else:
            status, _, body = http("PUT", f"{base}/api/admin/datasets/{ds_id}",
                                   json.dumps(config).encode(), auth)
            ok = status in (200, 201)
        if not ok:
            failed += 1
            print(f"load.py: {'DELETE' if args.delete else 'PUT'} {ds_id}: {status} {body[:300]!r}",
                  file=sys.stderr)
    if failed and not args.delete:
        sys.exit(1)


# ----------------------------------------------------------------------------------------- warmup

def warmup(args) -> None:
    rows = read_manifest(Path(args.work) / "warm.tsv")
    expected = expected_bytes(rows)
    base = args.base_url.rstrip("/")
    problems = []
    first = Counter()

    def get(path):
        status, headers, body = http("GET", base + path)
        return status, headers.get("x-cache", "-"), body

    for path, *_ in rows:
        status, cache, body = get(path)
        first[cache] += 1
        if status != 200 or body != expected[path]:
            problems.append(f"{path}: first read {status} {cache}, {len(body)} bytes "
                            f"(expected 200 and {len(expected[path])} bytes)")
        elif cache != "MISS":
            problems.append(f"{path}: first read X-Cache {cache}, expected MISS (a fresh URL)")
    # A MISS answers at once and stores in waitUntil: poll until each key is a HIT.
    deadline = time.monotonic() + args.wait_s
    pending = [p for p, *_ in rows]
    while pending and time.monotonic() < deadline:
        still = []
        for path in pending:
            status, cache, body = get(path)
            if status != 200 or body != expected[path]:
                problems.append(f"{path}: warm read {status} {cache}, {len(body)} bytes")
            elif cache != "HIT":
                still.append(path)
        pending = still
        if pending:
            time.sleep(0.2)
    for path in pending:
        problems.append(f"{path}: not a HIT {args.wait_s}s after its first read")
    summary = {"keys": len(rows), "first_read": dict(first), "problems": problems}
    json.dump(summary, open(Path(args.work) / "warmup.json", "w"), indent=1)
    print(f"warm-up: {len(rows)} keys, first reads {dict(first)}, "
          f"{len(rows) - len(pending)} HIT afterwards, {len(problems)} problems")
    for p in problems[:20]:
        print("  " + p, file=sys.stderr)
    if problems:
        sys.exit(1)


# --------------------------------------------------------------------------------------- snapshot

def snapshot(args) -> None:
    snap: dict = {"time": time.time(), "loadavg": open("/proc/loadavg").read().split()[:3]}
    for name, path in (("access_log", args.access_log), ("worker_log", args.worker_log)):
        snap[name + "_bytes"] = os.path.getsize(path) if path and os.path.exists(path) else None
    if args.upstash_url and args.upstash_token:
        try:
            status, _, body = http("GET", args.upstash_url.rstrip("/") + "/__stats",
                                   headers={"Authorization": f"Bearer {args.upstash_token}"}, timeout=5)
            snap["upstash"] = json.loads(body) if status == 200 else None
        except (OSError, ValueError):
            snap["upstash"] = None
    if args.worker_pid_file and os.path.exists(args.worker_pid_file):
        snap["worker_rss_mb"] = session_rss(int(open(args.worker_pid_file).read().strip()))
    snap["cpu"] = cpu_jiffies(args.pid_dir)
    json.dump(snap, open(args.out, "w"))


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def session_jiffies(sids: set[int]) -> int:
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            if int(fields[3]) in sids:
                total += int(fields[11]) + int(fields[12])  # utime stime
        except (OSError, ValueError, IndexError):
            continue
    return total


def cpu_jiffies(pid_dir: str | None) -> dict:
    busy, total = machine_jiffies()
    sids = set()
    if pid_dir and os.path.isdir(pid_dir):
        for f in Path(pid_dir).glob("*.pid"):
            try:
                sids.add(int(f.read_text().strip()))
            except ValueError:
                pass
    return {"busy": busy, "total": total, "stack": session_jiffies(sids) if sids else None}


def quiet(args) -> None:
    """Waits until the machine's busy time over 3 s is under --threshold of its cores (at most
    --max-wait-s), so that a full run does not start in the middle of someone's build."""
    deadline = time.monotonic() + args.max_wait_s
    while True:
        b0, t0 = machine_jiffies()
        time.sleep(3)
        b1, t1 = machine_jiffies()
        frac = (b1 - b0) / max(t1 - t0, 1)
        if frac < args.threshold or time.monotonic() > deadline:
            break
    print(f"machine {frac:.0%} busy over 3 s"
          + ("" if frac < args.threshold else f" (still over {args.threshold:.0%} after {args.max_wait_s:.0f} s)"))


def monitor(args) -> None:
    """Samples the open descriptors and RSS of the worker's processes once a second for --seconds:
    `wrangler dev` keeps a socket per inspector debug-log message in flight, and runs out of
    descriptors when its node process falls behind."""
    sid = int(open(args.pid_file).read().strip())
    peak: dict[str, dict] = {}
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = open(f"/proc/{entry}/stat").read()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[3]) != sid:
                    continue
                name = f"{stat.split('(', 1)[1].rsplit(')', 1)[0]}[{entry}]"
                fds = len(os.listdir(f"/proc/{entry}/fd"))
                rss = 0.0
                for line in open(f"/proc/{entry}/status"):
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) / 1024
                limit = None
                for line in open(f"/proc/{entry}/limits"):
                    if line.startswith("Max open files"):
                        limit = int(line.split()[3])
                p = peak.setdefault(name, {"fds": 0, "rss_mb": 0.0, "fd_limit": limit})
                p["fds"] = max(p["fds"], fds)
                p["rss_mb"] = round(max(p["rss_mb"], rss), 1)
            except (OSError, ValueError, IndexError):
                continue
        json.dump(peak, open(args.out, "w"))
        time.sleep(1)


def session_rss(sid: int) -> dict[str, float]:
    """RSS (MB) of the processes of a session (spawn's setsid: wrangler's node and its workerds)."""
    out: Counter = Counter()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) != sid:  # fields after the name: state ppid pgrp session ...
                continue
            comm = stat.split("(", 1)[1].rsplit(")", 1)[0]
            for line in open(f"/proc/{entry}/status"):
                if line.startswith("VmRSS:"):
                    out[f"{comm}[{entry}]"] += int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            continue
    return {k: round(v, 1) for k, v in sorted(out.items())}


# ----------------------------------------------------------------------------------------- report

ACCESS = re.compile(r'"GET (\S+) HTTP[^"]*" (\d{3}) (\d+) "([^"]*)"')
WORKER_PROBLEM = re.compile(r"error|panic|uncaught|exception|exceeded|warn", re.I)
# wrangler dev offline: it cannot fetch the Request.cf placeholder (a startup warning, not the worker's).
WORKER_NOISE = re.compile(r"Request\.cf|getaddrinfo ENOTFOUND workers\.cloudflare\.com|at GetAddrInfoReqWrap|"
                          r"node:internal/async_hooks")


def tail_from(path: str | None, offset: int | None) -> list[str]:
    if not path or offset is None or not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace").splitlines()


def run_figures(work: Path, run: str, access_log: str | None, worker_log: str | None, tag: str) -> dict:
    wrk = json.load(open(work / f"{run}.wrk.json"))
    before = json.load(open(work / f"{run}.before.json"))
    after = json.load(open(work / f"{run}.after.json"))
    rows = read_manifest(work / f"{run}.tsv")
    fig = dict(wrk)
    fig["loadavg_before"] = before["loadavg"]
    fig["loadavg_after"] = after["loadavg"]
    # Origin requests made during the run for this run's URLs (nginx access log).
    origin = [line for line in tail_from(access_log, before.get("access_log_bytes"))
              if f"load={tag}-{run}" in line]
    ranges = Counter()
    statuses = Counter()
    for line in origin:
        m = ACCESS.search(line)
        if m:
            ranges[(m.group(1), m.group(4))] += 1
            statuses[m.group(2)] += 1
    fig["origin"] = {"requests": len(origin), "distinct_ranges": len(ranges),
                     "ranges_fetched_more_than_once": sum(1 for n in ranges.values() if n > 1),
                     "max_fetches_of_one_range": max(ranges.values(), default=0),
                     "statuses": dict(statuses)} if access_log else None
    ub, ua = before.get("upstash"), after.get("upstash")
    if ub and ua:
        d = {k: ua[k] - ub[k] for k in ("http_requests", "commands") if k in ua and k in ub}
        n = max(wrk["requests"], 1)
        fig["index"] = {**d, "round_trips_per_request": round(d.get("http_requests", 0) / n, 3),
                        "commands_per_request": round(d.get("commands", 0) / n, 3)}
    lines = tail_from(worker_log, before.get("worker_log_bytes"))
    problems = [ln for ln in lines if WORKER_PROBLEM.search(ln) and "[wrangler:info]" not in ln
                and not WORKER_NOISE.search(ln)]
    statuses_log = Counter()
    for ln in lines:
        m = re.search(r"\[wrangler:info\] GET \S+ (\d{3})", ln)
        if m:
            statuses_log[m.group(1)] += 1
    fig["worker_log"] = {"lines": len(lines), "problem_lines": len(problems),
                         "first_problems": problems[:10], "request_statuses": dict(statuses_log)}
    fig["cold_keys"] = len(rows) if run == "mixed" else 0
    fig["emfile_lines"] = sum(1 for ln in lines if "Too many open files" in ln)
    cb, ca = before.get("cpu"), after.get("cpu")
    if cb and ca:
        total = max(ca["total"] - cb["total"], 1)
        cores = os.cpu_count() or 1
        busy = (ca["busy"] - cb["busy"]) / total * cores
        stack = ((ca["stack"] - cb["stack"]) / total * cores) if ca.get("stack") is not None and cb.get("stack") is not None else None
        fig["cpu_cores"] = {"machine_busy": round(busy, 2), "stack": None if stack is None else round(stack, 2),
                            "rest": None if stack is None else round(busy - stack, 2), "cores": cores}
    mon = work / f"{run}.monitor.json"
    if mon.exists():
        fig["worker_peak"] = json.load(open(mon))
    if before.get("worker_rss_mb") is not None:
        fig["worker_rss_mb"] = {"before": before["worker_rss_mb"], "after": after.get("worker_rss_mb")}
    return fig


def machine() -> dict:
    model = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = ""
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            commit += " (src/ modified in the work tree)"
    except (OSError, subprocess.CalledProcessError):
        commit = "?"
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem, "kernel": platform.release(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit,
            "wrk": wrk_version.strip()}


def ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def check(fig: dict, run: str) -> list[str]:
    failures = []
    e = fig["errors"]
    errs = e["connect"] + e["read"] + e["write"] + e["timeout"]
    if errs:
        failures.append(f"{run}: {errs} socket errors {e}")
    if fig["non2xx"]:
        failures.append(f"{run}: {fig['non2xx']} answers not 2xx {fig['statuses']}")
    if fig["mismatches"]:
        failures.append(f"{run}: {fig['mismatches']} bodies differ from the original bytes")
    if fig["checked"] != fig["requests"]:
        failures.append(f"{run}: {fig['checked']} answers checked of {fig['requests']} requests")
    if fig["requests"] == 0:
        failures.append(f"{run}: no request completed")
    return failures


def report(args) -> None:
    work = Path(args.work)
    runs = {}
    for run in ("warm", "mixed"):
        if (work / f"{run}.wrk.json").exists():
            runs[run] = run_figures(work, run, args.access_log, args.worker_log, args.tag)
            runs[run]["connections"] = args.connections[run]
            runs[run]["duration_s"] = args.duration[run]
    warm_up = json.load(open(work / "warmup.json")) if (work / "warmup.json").exists() else None
    failures = [f for run, fig in runs.items() for f in check(fig, run)]
    for run in ("warm", "mixed"):
        if run not in runs:
            failures.append(f"{run}: no wrk result")
    notes = []
    for run, fig in runs.items():
        if fig.get("emfile_lines"):
            notes.append(f"{run}: the worker log has {fig['emfile_lines']:,} 'Too many open files' lines "
                         "(wrangler dev's ProxyWorker out of descriptors, see bench/load/README.md)")
        elif fig["worker_log"]["problem_lines"]:
            notes.append(f"{run}: {fig['worker_log']['problem_lines']} error/warning lines in the worker "
                         f"log, first: {fig['worker_log']['first_problems'][0][:200]}")
    w = runs.get("warm")
    if w and w["x_cache"]["HIT"] != w["checked"]:
        notes.append(f"warm: {w['checked'] - w['x_cache']['HIT']} answers not HIT ({w['x_cache']})")
    if w and w.get("origin") and w["origin"]["requests"]:
        notes.append(f"warm: {w['origin']['requests']} origin requests during the warm run")
    result = {"mode": args.mode, "machine": machine(), "stack": args.stack, "warmup": warm_up,
              "runs": runs, "failures": failures, "notes": notes}

    lines = table(result)
    print("\n".join(lines))
    for f in failures:
        print(f"FAIL {f}")
    for n in notes:
        print(f"note {n}")
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        json.dump(result, open(out / "load.json", "w"), indent=1)
        open(out / "load.md", "w").write(markdown(result, lines))
        print(f"wrote {out / 'load.md'} and {out / 'load.json'}")
    sys.exit(1 if failures else 0)


def table(result: dict) -> list[str]:
    head = ("| run | conn | s | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | socket errors "
            "(c/r/w/t) | non-2xx | mismatches | X-Cache HIT / MISS / other | origin req |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: |"]
    for run, fig in result["runs"].items():
        e, lat, xc = fig["errors"], fig["latency_us"], fig["x_cache"]
        origin = fig["origin"]["requests"] if fig.get("origin") else "?"
        lines.append(
            f"| {run} | {fig['connections']} | {fig['duration_s']} | {fig['requests']:,} | "
            f"{fig['requests_per_s']:,.0f} | {ms(lat['p50'])} | {ms(lat['p90'])} | {ms(lat['p99'])} | "
            f"{ms(lat['max'])} | {e['connect']}/{e['read']}/{e['write']}/{e['timeout']} | "
            f"{fig['non2xx']} | {fig['mismatches']} | {xc['HIT']:,} / {xc['MISS']:,} / "
            f"{xc['EDGE'] + xc['INLINE'] + xc['other']} | {origin} |")
    return lines


def markdown(result: dict, lines: list[str]) -> str:
    m = result["machine"]
    out = ["# Load: wrk against the worker on loopback", "",
           f"`bench/load/run` ({result['mode']} run), {m['date']}, commit {m['commit']}; "
           f"{m['wrk']}.", "",
           f"Machine: {m['nproc']} × {m['cpu']}, {m['memory']}, Linux {m['kernel']}. Everything on "
           "it: wrk, `wrangler dev` (node + two workerd), upstash-local, redis-server, nginx. "
           "See bench/load/README.md for what each run does.", "",
           f"Stack: {result['stack']}", ""]
    out += lines
    out.append("")
    for run, fig in result["runs"].items():
        lat, o = fig["latency_us"], fig.get("origin")
        out.append(f"**{run}**: {fig['keys']} keys, {fig['threads']} threads × 1 connection; "
                   f"{fig['checked']:,} answers checked against the original bytes; latency mean "
                   f"{ms(lat['mean'])} ms, p99.9 {ms(lat['p999'])} ms; "
                   f"{fig['bytes'] / 1e6:,.1f} MB read; load average (1/5/15 min) "
                   f"{' '.join(fig['loadavg_before'])} before, {' '.join(fig['loadavg_after'])} after.")
        if o:
            out.append(f"Origin: {o['requests']} requests for this run's URLs, {o['distinct_ranges']} "
                       f"distinct ranges, {o['ranges_fetched_more_than_once']} fetched more than once "
                       f"(at most {o['max_fetches_of_one_range']}×).")
        if fig.get("index"):
            i = fig["index"]
            out.append(f"Index (upstash-local): {i['round_trips_per_request']} round trips and "
                       f"{i['commands_per_request']} commands per request.")
        wl = fig["worker_log"]
        out.append(f"Worker log: {wl['problem_lines']} error/warning lines during the run.")
        if fig.get("cpu_cores"):
            c = fig["cpu_cores"]
            out.append(f"CPU during the run (cores of {c['cores']}): machine {c['machine_busy']}, the "
                       f"stack's processes {c['stack']}, the rest (wrk and everything else on the "
                       f"machine) {c['rest']}.")
        if fig.get("worker_peak"):
            out.append("`wrangler dev` peaks (descriptors / RSS MB): " + ", ".join(
                f"{k} {v['fds']:,} of {v['fd_limit']:,} / {v['rss_mb']:,.0f}"
                for k, v in fig["worker_peak"].items() if v["fds"] > 50 or v["rss_mb"] > 100) + ".")
        if fig.get("worker_rss_mb"):
            r = fig["worker_rss_mb"]
            out.append(f"`wrangler dev` RSS (MB): {sum(r['before'].values()):,.0f} before, "
                       f"{sum((r['after'] or {}).values()):,.0f} after "
                       f"({', '.join(f'{k} {v:,.0f}' for k, v in (r['after'] or {}).items())}).")
        out.append("")
    if result["warmup"]:
        wu = result["warmup"]
        out.append(f"Warm-up: {wu['keys']} keys read once (X-Cache {wu['first_read']}), then each "
                   "read again until HIT, every body checked.")
        out.append("")
    out.append("Requirements: " + ("**met** (zero socket errors, zero non-2xx, zero mismatches, every "
                                   "answer checked)" if not result["failures"] else
                                   "**not met**: " + "; ".join(result["failures"])))
    for n in result["notes"]:
        out.append(f"\nNote: {n}")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("--demo", required=True)
    s.add_argument("--origin-url", required=True)
    s.add_argument("--tag", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--mixed-copies", type=int, default=4)
    s = sub.add_parser("register")
    s.add_argument("--base-url", required=True)
    s.add_argument("--admin-token", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--delete", action="store_true")
    s = sub.add_parser("warmup")
    s.add_argument("--base-url", required=True)
    s.add_argument("--work", required=True)
    s.add_argument("--wait-s", type=float, default=15)
    s = sub.add_parser("snapshot")
    s.add_argument("--out", required=True)
    s.add_argument("--access-log")
    s.add_argument("--worker-log")
    s.add_argument("--upstash-url")
    s.add_argument("--upstash-token")
    s.add_argument("--worker-pid-file")
    s.add_argument("--pid-dir")
    s = sub.add_parser("quiet")
    s.add_argument("--threshold", type=float, default=0.3)
    s.add_argument("--max-wait-s", type=float, default=120)
    s = sub.add_parser("monitor")
    s.add_argument("--pid-file", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seconds", type=float, required=True)
    s = sub.add_parser("report")
    s.add_argument("--work", required=True)
    s.add_argument("--tag", required=True)
    s.add_argument("--mode", required=True)
    s.add_argument("--stack", required=True)
    s.add_argument("--access-log")
    s.add_argument("--worker-log")
    s.add_argument("--out-dir")
    s.add_argument("--warm-connections", type=int, required=True)
    s.add_argument("--mixed-connections", type=int, required=True)
    s.add_argument("--warm-duration", type=int, required=True)
    s.add_argument("--mixed-duration", type=int, required=True)
    args = p.parse_args()
    if args.cmd == "report":
        args.connections = {"warm": args.warm_connections, "mixed": args.mixed_connections}
        args.duration = {"warm": args.warm_duration, "mixed": args.mixed_duration}
    {"prepare": prepare, "register": register, "warmup": warmup, "snapshot": snapshot,
     "quiet": quiet, "monitor": monitor, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
