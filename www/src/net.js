// Where the API lives, and a fetch wrapper that records what every store request cost.
//
// By default everything is same-origin and relative to the page (the worker serves this page as
// static assets). `?api=http://127.0.0.1:8787` points the page at another worker, which is how the
// page is developed from a plain static server (the worker answers with CORS `*`).

/** Base URL (with a trailing slash) that `api/...` and `zarr/...` are resolved against. */
export function apiBase() {
  const override = new URLSearchParams(location.search).get("api");
  const base = override ? new URL(override, location.href) : new URL("./", location.href);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  base.search = "";
  base.hash = "";
  return base;
}

/** `rel` ("api/datasets", "zarr/air") resolved against {@link apiBase}. */
export function apiUrl(rel) {
  return new URL(rel.replace(/^\//, ""), apiBase());
}

/** GET a JSON document; throws an Error that carries the HTTP status and the API's message. */
export async function getJson(rel, { signal } = {}) {
  const res = await fetch(apiUrl(rel), { cache: "no-store", signal });
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const detail = body?.message ?? body?.error ?? text.slice(0, 200);
    const err = new Error(`HTTP ${res.status}${detail ? `: ${detail}` : ""}`);
    err.status = res.status;
    throw err;
  }
  if (body === undefined) throw new Error("the response is not JSON");
  return body;
}

export const CACHE_KINDS = ["HIT", "MISS", "EDGE", "INLINE"];

/**
 * The requests made for one view (one drawing of one slice). `chunkPrefix` is the array's path in
 * the store ("air_temperature/"): requests under it are the variable's chunks, everything else
 * (consolidated metadata, coordinate arrays) is counted apart.
 */
export class Ledger {
  constructor(chunkPrefix) {
    this.chunkPrefix = chunkPrefix;
    this.requests = [];
    this.started = performance.now();
    this.finished = null;
    this.listeners = new Set();
  }

  add(record) {
    record.kind = classify(record.key, this.chunkPrefix);
    this.requests.push(record);
    for (const fn of this.listeners) fn(this);
  }

  finish() {
    this.finished = performance.now();
    for (const fn of this.listeners) fn(this);
  }

  get ms() {
    return (this.finished ?? performance.now()) - this.started;
  }

  summary() {
    const chunks = { HIT: 0, MISS: 0, EDGE: 0, INLINE: 0, other: 0, total: 0 };
    let bytes = 0;
    let chunkBytes = 0;
    for (const r of this.requests) {
      bytes += r.bytes;
      if (r.kind !== "chunk") continue;
      chunks.total += 1;
      chunkBytes += r.bytes;
      if (CACHE_KINDS.includes(r.xcache)) chunks[r.xcache] += 1;
      else chunks.other += 1;
    }
    return { chunks, bytes, chunkBytes, requests: this.requests.length, ms: this.ms };
  }
}

function classify(key, chunkPrefix) {
  const leaf = key.split("/").pop();
  if (leaf.startsWith(".z")) return "metadata";
  if (key.startsWith(chunkPrefix)) return "chunk";
  return "coordinate";
}

/**
 * A `fetch` for zarrita's FetchStore that records every response into the ledger that is current
 * when the request starts (`currentLedger()`), so late answers of a superseded view never leak into
 * the next one. The browser's HTTP cache is bypassed (`no-store`): every request reaches the worker,
 * so `X-Cache` tells where the worker found the bytes.
 */
export function recordingFetch(storeRoot, currentLedger) {
  const rootPath = new URL(storeRoot).pathname.replace(/\/?$/, "/");
  return async (request) => {
    const ledger = currentLedger();
    const t0 = performance.now();
    const res = await fetch(request, { cache: "no-store" });
    const buf = await res.arrayBuffer();
    const ms = performance.now() - t0;
    const path = new URL(request.url).pathname;
    const key = decodeURIComponent(path.startsWith(rootPath) ? path.slice(rootPath.length) : path);
    ledger?.add({
      key,
      status: res.status,
      xcache: res.headers.get("x-cache") ?? "—",
      bytes: buf.byteLength,
      ms,
      serverTiming: res.headers.get("server-timing") ?? "",
    });
    return new Response(res.status === 204 ? null : buf, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
}
