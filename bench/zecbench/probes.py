"""What the benchmark reads besides the responses: upstash-local's command counters, nginx's access
log, per-process CPU time and memory from /proc, and the V8 profiler of the worker's isolate
through wrangler's inspector port or workerd's own inspector (the profiling instance of
bench/serve_workerd.mjs)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import aiohttp

CLK_TCK = os.sysconf("SC_CLK_TCK")


class UpstashStats:
    """upstash-local's `/__stats` (HTTP round trips and Redis commands it served)."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    async def reset(self, session: aiohttp.ClientSession) -> None:
        async with session.post(f"{self.url}/__stats/reset", headers=self.headers) as r:
            r.raise_for_status()

    async def read(self, session: aiohttp.ClientSession) -> dict:
        async with session.get(f"{self.url}/__stats", headers=self.headers) as r:
            r.raise_for_status()
            return await r.json()


LOG_LINE = re.compile(r'^\S+ \[[^\]]*\] "(\S+) (\S+)[^"]*" (\d{3}) (\d+) "([^"]*)"')


class NginxLog:
    """The origin's access log (format `ranged` of scripts/nginx-origin.conf). Origin traffic is
    every request for a data file (`/data/...`), whether it came straight or through the proxy."""

    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, offset: int) -> dict:
        counts = Counter()
        with self.path.open("rb") as f:
            f.seek(offset)
            for raw in f:
                m = LOG_LINE.match(raw.decode("utf-8", "replace"))
                if not m:
                    continue
                _method, path, _status, sent, _range = m.groups()
                kind = "data" if path.startswith("/data/") else "floor" if path.startswith("/floor/") else "other"
                counts[f"{kind}_requests"] += 1
                counts[f"{kind}_bytes"] += int(sent)
        return {"origin_requests": counts["data_requests"], "origin_bytes": counts["data_bytes"],
                "floor_requests": counts["floor_requests"], "other_requests": counts["other_requests"]}

    def count(self, offset: int, prefixes: dict[str, str]) -> dict[str, int]:
        """Requests since `offset` whose path starts with each prefix: {name: requests}."""
        counts = Counter({name: 0 for name in prefixes})
        with self.path.open("rb") as f:
            f.seek(offset)
            for raw in f:
                m = LOG_LINE.match(raw.decode("utf-8", "replace"))
                if m:
                    for name, prefix in prefixes.items():
                        if m.group(2).startswith(prefix):
                            counts[name] += 1
        return dict(counts)


def _stat(pid: int) -> tuple[int, int] | None:
    """(session id, utime+stime in ticks) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is state (field 3); session is field 6, utime 14, stime 15
    return int(fields[3]), int(fields[11]) + int(fields[12])


class ProcessGroups:
    """CPU seconds used by each service of the stack: every process in the session that
    scripts/lib.sh `spawn` started for it (setsid), read from /proc; plus this process."""

    def __init__(self, state: Path, names: list[str]):
        self.state = state
        self.names = names

    def sessions(self) -> dict[int, str]:
        out = {}
        for name in self.names:
            pid_file = self.state / "pids" / f"{name}.pid"
            if pid_file.exists():
                out[int(pid_file.read_text().strip())] = name
        return out

    def cpu(self) -> dict[str, float]:
        sessions = self.sessions()
        ticks = Counter()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            st = _stat(int(entry.name))
            if st and st[0] in sessions:
                ticks[sessions[st[0]]] += st[1]
        out = {name: ticks[name] / CLK_TCK for name in self.names}
        out["client"] = time.process_time()
        out["machine"] = machine_busy_s()
        return out

    def pids_of(self, name: str) -> list[int]:
        sid = next((s for s, n in self.sessions().items() if n == name), None)
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                st = _stat(int(entry.name))
                if st and st[0] == sid:
                    pids.append(int(entry.name))
        return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def workerd_roles(groups: ProcessGroups, port: int) -> dict[int, str]:
    """wrangler dev 4 runs two workerd processes: a proxy on the worker's port (wrangler's
    ProxyWorker, which forwards every request) and the runtime running the worker's isolate (the
    one with an inspector address). Returns {pid: "runtime" | "proxy"}; node processes: "node"."""
    roles = {}
    for pid in groups.pids_of("worker"):
        line = cmdline(pid)
        if "workerd" in line.split(" ", 1)[0]:
            roles[pid] = "workerd runtime" if "--inspector-addr" in line else \
                "workerd proxy" if f"entry=127.0.0.1:{port}" in line else "workerd other"
        elif "node" in line.split(" ", 1)[0]:
            roles[pid] = "node (wrangler)"
        else:
            roles[pid] = "other"
    return roles


def workerd_pid(groups: ProcessGroups, port: int) -> int | None:
    """The workerd process running the worker's isolate."""
    return next((pid for pid, role in workerd_roles(groups, port).items() if role == "workerd runtime"), None)


def workerd_pids_of(groups: ProcessGroups, name: str) -> list[int]:
    """The workerd processes of the process group `name` (bench/serve_workerd.mjs runs one)."""
    return [pid for pid in groups.pids_of(name) if "workerd" in cmdline(pid).split(" ", 1)[0]]


def miniflare_roles(groups: ProcessGroups, name: str) -> dict[int, str]:
    """The processes of a bench/serve_workerd.mjs group `name`: {pid: "workerd" | "node (Miniflare)" | "other"}."""
    roles = {}
    for pid in groups.pids_of(name):
        program = cmdline(pid).split(" ", 1)[0]
        roles[pid] = "workerd" if "workerd" in program else "node (Miniflare)" if "node" in program else "other"
    return roles


def cpu_by_role(roles: dict[int, str]) -> dict[str, float]:
    out = Counter()
    for pid, role in roles.items():
        st = _stat(pid)
        if st:
            out[role] += st[1] / CLK_TCK
    return dict(out)


def memory_kb(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def cpu_delta(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per service over an interval, plus `other`: what the rest of the machine used
    (other people's builds, ...), which makes a pass's figures noisy."""
    out = {k: round(after[k] - before.get(k, 0.0), 4) for k in after}
    machine = out.pop("machine", 0.0)
    out["other"] = round(max(0.0, machine - sum(out.values())), 4)
    return out


async def settle(read, quiet_s: float = 0.25, max_s: float = 5.0, step_s: float = 0.05):
    """Polls the (async) `read` until its value stays the same for `quiet_s`; returns it."""
    deadline = time.monotonic() + max_s
    last = await read()
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(step_s)
        now = await read()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= quiet_s:
            break
    return last


def wrangler_inspector(port: int) -> str:
    """The websocket of the worker's isolate behind wrangler dev's inspector proxy (`--inspector-port`)."""
    return f"ws://127.0.0.1:{port}/ws"


async def workerd_inspector(port: int) -> str:
    """The websocket of the worker's isolate on workerd's own inspector (Miniflare's `inspectorPort`),
    from its target list (`/json`): Miniflare's user worker is the service `core:user:<name>`; the
    others are Miniflare's own (entry, R2, cache)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json", timeout=aiohttp.ClientTimeout(total=10)) as r:
            r.raise_for_status()
            targets = await r.json(content_type=None)
    for target in targets:
        if target.get("id", "").startswith("core:user:"):
            return target["webSocketDebuggerUrl"].replace("ws://localhost:", "ws://127.0.0.1:")
    raise RuntimeError(f"no user worker among workerd's inspector targets: {[t.get('id') for t in targets]}")


class Inspector:
    """A Chrome DevTools Protocol session with the worker's isolate at the websocket `url`: through
    wrangler's inspector proxy (`wrangler_inspector`: it wants an `Origin` on a loopback host, and one
    client at a time) or on workerd's own inspector (`workerd_inspector`)."""

    def __init__(self, url: str):
        self.url = url
        self.next_id = 0

    async def __aenter__(self):
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(self.url, origin="http://127.0.0.1",
                                                max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()
        await self.session.close()

    async def call(self, method: str, params: dict | None = None, timeout: float = 60.0,
                   want: str | None = None) -> dict:
        self.next_id += 1
        mid = self.next_id
        await self.ws.send_json({"id": mid, "method": method, "params": params or {}})
        deadline = time.monotonic() + timeout
        while True:
            msg = await self.ws.receive(timeout=max(0.1, deadline - time.monotonic()))
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"inspector closed during {method}: {msg.type}")
            data = json.loads(msg.data)
            # wrangler's proxy answers some calls with the request echoed (id, method, params) and no
            # "result": the matching id is the answer either way.
            if data.get("id") == mid:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                if want is None or want in data.get("result", {}):
                    return data.get("result", {})


# V8's pseudo-frames: no code of the worker's
NOT_CODE = ("(idle)", "(program)", "(garbage collector)", "(root)")


def category(frame: dict) -> str:
    """A profile frame's category: one of NOT_CODE, "wasm" (the worker's wasm, named by its name
    section) or "js" (its JS glue, the runtime's functions it calls, and any middleware in
    front of it)."""
    name, url = frame.get("functionName", ""), frame.get("url", "")
    if name in NOT_CODE:
        return name
    return "wasm" if url.startswith("wasm://") or (not url and "::" in name) else "js"


def summarise_profile(profile: dict, top: int = 12) -> dict:
    """Self time per category of a V8 CPU profile (microseconds)."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    cats = Counter()
    funcs = Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"]):
        frame = nodes[sample]["callFrame"]
        kind = category(frame)
        cats[kind] += delta
        if kind not in NOT_CODE:
            name, url = frame.get("functionName", ""), frame.get("url", "")
            funcs[f"{kind}: {name or '(anonymous)'} {url.rsplit('/', 1)[-1]}".strip()] += delta
    total = sum(profile["timeDeltas"])
    return {"sampled_us": total, "categories_us": dict(cats),
            "top_self_us": [[k, v] for k, v in funcs.most_common(top)]}


def sample_weight(profile: dict) -> float:
    """The µs a sample of a V8 CPU profile stands for: the spacing of the samples taken while the
    isolate runs (see inclusive_us), the median delta of the samples not `(idle)` among those at
    most twice their 10th percentile. The deltas left out carry a gap in sampling (an I/O wait)
    before their sample; when the isolate runs in short bursts (an EDGE hit), they are too many for
    the median of all to be the spacing."""
    kinds = {n["id"]: n["callFrame"].get("functionName") for n in profile["nodes"]}
    busy = sorted(delta for sample, delta in zip(profile["samples"], profile["timeDeltas"])
                  if kinds[sample] != "(idle)")
    if not busy:
        return 0.0
    spaced = [d for d in busy if d <= 2 * busy[len(busy) // 10]]
    return float(spaced[len(spaced) // 2])


def function_label(frame: dict) -> str:
    """A frame's function as the reports name it: its category, its name without Rust's hash
    suffix, and for JS the file."""
    kind = category(frame)
    name = re.sub(r"::h[0-9a-f]{16}\b", "", frame.get("functionName", "")) or "(anonymous)"
    url = frame.get("url", "")
    return f"{kind}: {name}" if kind == "wasm" or not url else f"{kind}: {name} {url.rsplit('/', 1)[-1]}"


def sample_split(profile: dict, top: int = 12, needle: str = "zarr_edge_cache::") -> dict:
    """The samples of a V8 CPU profile counted, not timed (a sample's timeDelta carries any gap in
    sampling before it: see inclusive_us), each standing for `weight_us` (sample_weight): per
    category (as `category` classifies the frame a sample was in), of the "js" ones those in a
    frame with no script (`js_without_script`: the runtime's API functions, such as `fetch`, an R2
    `get`, stream reads or `Headers`, V8's builtins and its wasm<->JS trampolines), and per function
    of the worker (wasm and JS, by `function_label`) the samples in it (self) and with it anywhere
    on the stack (inclusive, once per sample however deep it recurses), as [label, self samples,
    inclusive samples]: the `top` heaviest by self time (`by_self`), and the `top` heaviest by
    inclusive time among the functions whose name holds `needle` (`by_inclusive`: the crate's own,
    not the async machinery of wasm-bindgen and JS that every stack runs under)."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", ())}
    per_node = Counter(profile["samples"])
    cats = Counter()
    without_script = 0
    own = Counter()
    inclusive = Counter()
    for node_id, count in per_node.items():
        frame = nodes[node_id]["callFrame"]
        kind = category(frame)
        cats[kind] += count
        if kind in NOT_CODE:
            continue
        if kind == "js" and not frame.get("url"):
            without_script += count
        own[function_label(frame)] += count
        on_stack = set()
        up = node_id
        while up is not None:
            if category(nodes[up]["callFrame"]) not in NOT_CODE:
                on_stack.add(function_label(nodes[up]["callFrame"]))
            up = parent.get(up)
        for label in on_stack:
            inclusive[label] += count
    mine = Counter({k: v for k, v in inclusive.items() if needle in k})
    return {"weight_us": sample_weight(profile), "samples": len(profile["samples"]), "categories": dict(cats),
            "js_without_script": without_script,
            "by_self": [[k, v, inclusive[k]] for k, v in own.most_common(top)],
            "by_inclusive": [[k, own[k], v] for k, v in mine.most_common(top)]}


def inclusive_us(profile: dict, needle: str, top: int = 8) -> tuple[float, int, list, float]:
    """The time (µs) a V8 CPU profile spent with a function whose name contains `needle` on the
    stack (its own time and that of everything it called), the samples that estimate it was
    made of, the functions those samples were in (µs, the heaviest `top`), and the weight given
    to a sample (µs).

    workerd's sampler does not keep the interval asked for: while the isolate runs, samples come
    every ~2-3 intervals (this machine, 2 shared cores), while it waits on I/O they come
    milliseconds apart, and a sample after a gap carries the gap as its delta. So a matching
    sample is weighed by the spacing of the samples taken while the isolate was running
    (sample_weight): where the code of interest runs. The estimate is still the profiler's (which
    slows the isolate) and a count (±1/√samples)."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {child: n["id"] for n in profile["nodes"] for child in n.get("children", ())}
    memo: dict[int, bool] = {}
    weight = sample_weight(profile)

    def under(node_id: int) -> bool:
        path = []
        hit = False
        while node_id is not None:
            if node_id in memo:
                hit = memo[node_id]
                break
            path.append(node_id)
            if needle in nodes[node_id]["callFrame"].get("functionName", ""):
                hit = True
                break
            node_id = parent.get(node_id)
        for n in path:
            memo[n] = hit
        return hit

    samples = 0
    leaves = Counter()
    for sample in profile["samples"]:
        if under(sample):
            samples += 1
            leaves[re.sub(r"::h[0-9a-f]{16}$", "", nodes[sample]["callFrame"].get("functionName", ""))[:120]] += 1
    return (samples * weight, samples, [[k, round(v * weight)] for k, v in leaves.most_common(top)], weight)


async def drain_inspector(port: int, quiet_s: float = 0.5, max_s: float = 120.0) -> int:
    """Connects to wrangler's inspector proxy and reads until it goes quiet; returns the bytes read.

    wrangler's InspectorProxyWorker keeps every message of the runtime's inspector (the Network
    events of each subrequest, with its body in base64) in an unbounded buffer until a DevTools
    client connects, then sends them all to it. Left alone, that buffer grows with every origin
    byte fetched and the proxy workerd every request passes through gets slower over a run."""
    total = 0
    deadline = time.monotonic() + max_s
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{port}/ws", origin="http://127.0.0.1",
                                      max_msg_size=0) as ws:
            while time.monotonic() < deadline:
                try:
                    msg = await ws.receive(timeout=quiet_s)
                except asyncio.TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                total += len(msg.data)
    return total


def rss_by_role(roles: dict[int, str]) -> dict[str, float]:
    out = Counter()
    for pid, role in roles.items():
        out[role] += memory_kb(pid).get("VmRSS", 0) / 1024
    return {k: round(v, 1) for k, v in out.items()}
