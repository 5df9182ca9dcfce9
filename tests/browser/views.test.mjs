// End-to-end test of the decoded and v3 views in headless Chromium: the Zarr clients people ship
// in browsers read every demo netCDF4 array and every GRIB2 field through the worker.
//
//   ZEC_BASE_URL=http://127.0.0.1:8787 ZEC_STATE_DIR=.local/test-run node --test tests/browser/views.test.mjs
//
// ZEC_BASE_URL   the worker (required)
// ZEC_STATE_DIR  the stack's state directory (required): the GRIB2 fields' values as eccodes
//                decoded them are in $ZEC_STATE_DIR/demo/grib/ (written by the demo generator)
// CHROMIUM_PATH  default /usr/bin/chromium
//
// In the page: legacy zarr.js (npm `zarr` 0.6, which ignores `.zarray` filters) and zarrita 0.7,
// each loaded from node_modules. The expected values come from this file's own reader of the
// encoded view (fetch + node:zlib + a hand-written unshuffle, nothing shared with the worker's
// decoder) and, for GRIB2, from eccodes.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { inflateSync } from "node:zlib";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const BASE = process.env.ZEC_BASE_URL?.replace(/\/+$/, "");
const STATE = process.env.ZEC_STATE_DIR;
if (!BASE || !STATE) {
  throw new Error("ZEC_BASE_URL and ZEC_STATE_DIR must be set: run scripts/test (or point them at a running stack)");
}
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const log = (...a) => console.log("[views]", ...a);

// ---------------------------------------------------------------------------------------------
// The test's own reader of the encoded view: whole arrays as Float64Array, absent chunks filled.

async function json(path) {
  const res = await fetch(`${BASE}${path}`);
  assert.equal(res.status, 200, `GET ${path}`);
  return res.json();
}

function unshuffle(bytes, size) {
  const n = Math.floor(bytes.length / size);
  const out = new Uint8Array(bytes.length);
  for (let b = 0; b < size; b++) for (let i = 0; i < n; i++) out[i * size + b] = bytes[b * n + i];
  out.set(bytes.subarray(n * size), n * size);
  return out;
}

function decodeChunk(name, za, bytes) {
  const steps = [...(za.compressor ? [za.compressor] : []), ...[...(za.filters ?? [])].reverse()];
  for (const codec of steps) {
    if (codec.id === "zlib") bytes = new Uint8Array(inflateSync(bytes));
    else if (codec.id === "shuffle") bytes = unshuffle(bytes, codec.elementsize);
    else assert.fail(`${name}: codec ${codec.id} is not handled by the test's reader`);
  }
  return bytes;
}

const GETTERS = { f4: "getFloat32", f8: "getFloat64", i1: "getInt8", i2: "getInt16", i4: "getInt32", u1: "getUint8", u2: "getUint16", u4: "getUint32" };

/** Every value of array `name` of dataset `ds`, in C order, as stored (not CF-decoded). */
async function readArray(ds, name, za) {
  const m = za.dtype.match(/^([<>|])([fiu])(\d)$/);
  assert.ok(m, `${name}: dtype ${za.dtype}`);
  const size = Number(m[3]);
  const getter = GETTERS[`${m[2]}${size}`];
  const shape = za.shape.length ? za.shape : [1];
  const chunks = za.chunks.length ? za.chunks : [1];
  const total = shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(total).fill(za.fill_value === "NaN" ? NaN : (za.fill_value ?? 0));
  const grid = shape.map((n, d) => Math.ceil(n / chunks[d]));
  const perChunk = chunks.reduce((a, b) => a * b, 1);
  const idx = grid.map(() => 0);
  for (;;) {
    const key = za.shape.length ? idx.join(za.dimension_separator ?? ".") : "0";
    const res = await fetch(`${BASE}/zarr/${ds}/${name}/${key}`);
    if (res.status === 200) {
      const bytes = decodeChunk(name, za, new Uint8Array(await res.arrayBuffer()));
      assert.equal(bytes.length, perChunk * size, `${ds}/${name}/${key}: decoded size`);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const local = chunks.map(() => 0);
      for (let k = 0; k < perChunk; k++) {
        let flat = 0;
        let inside = true;
        for (let d = 0; d < shape.length; d++) {
          const g = idx[d] * chunks[d] + local[d];
          if (g >= shape[d]) inside = false;
          flat = flat * shape[d] + g;
        }
        if (inside) out[flat] = view[getter](k * size, m[1] !== ">");
        for (let d = chunks.length - 1; d >= 0; d--) {
          if (++local[d] < chunks[d]) break;
          local[d] = 0;
        }
      }
    } else {
      assert.equal(res.status, 404, `${ds}/${name}/${key}`);
    }
    let d = grid.length - 1;
    for (; d >= 0; d--) {
      if (++idx[d] < grid[d]) break;
      idx[d] = 0;
    }
    if (d < 0) break;
  }
  return out;
}

/** The first difference of two value lists (NaN equal to NaN; within `rtol` when given), or null. */
function firstDifference(got, want, rtol = 0) {
  if (got.length !== want.length) return `length ${got.length} != ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const same = got[i] === want[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i])) || Math.abs(got[i] - want[i]) <= rtol * Math.abs(want[i]);
    if (!same) return `at ${i}: ${got[i]} != ${want[i]}`;
  }
  return null;
}

// grib-rs unpacks GRIB2 in f32 where eccodes computes in f64: equal within f32 precision.
const GRIB_RTOL = 1e-6;

// ---------------------------------------------------------------------------------------------

let browser;
let page;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage();
  page.on("pageerror", (e) => log("page error:", e.message));
  // A page of the worker's own origin (about:blank's fetches to a loopback origin are blocked as
  // private-network requests from a public context).
  await page.goto(`${BASE}/api/health`);
  // zarrita bundled for the page as it ships (its own codecs included); zarr.js as its UMD build.
  const bundle = await esbuild.build({
    stdin: { contents: "import * as zarrita from 'zarrita'; globalThis.zarrita = zarrita;", resolveDir: REPO },
    bundle: true, write: false, format: "iife", platform: "browser", target: "chrome109", logLevel: "silent",
  });
  await page.addScriptTag({ content: bundle.outputFiles[0].text });
  await page.addScriptTag({ content: await readFile(join(REPO, "node_modules/zarr/zarr.umd.js"), "utf8") });
  assert.ok(await page.evaluate(() => typeof globalThis.zarrita?.open === "function" && typeof globalThis.zarr?.openArray === "function"));
});

after(async () => {
  await browser?.close();
});

/** In the page: every value of `name` read by `client` ("zarr.js", "zarrita", "zarrita-v3"). */
function readInPage(client, url, name) {
  return page.evaluate(
    async ([client, url, name]) => {
      try {
        if (client === "zarr.js") {
          const z = await globalThis.zarr.openArray({ store: url, path: name, mode: "r" });
          const r = await z.get(null);
          return { values: Array.from(r.flatten(), Number) };
        }
        const zarrita = globalThis.zarrita;
        const store = new zarrita.FetchStore(url);
        const open = client === "zarrita-v3" ? zarrita.open.v3 : zarrita.open.v2;
        const arr = await open(zarrita.root(store).resolve(name), { kind: "array" });
        const chunk = await zarrita.get(arr, arr.shape.length ? null : undefined);
        const data = chunk.data ?? chunk;
        return { values: ArrayBuffer.isView(data) ? Array.from(data, Number) : [Number(data)] };
      } catch (e) {
        return { error: String(e?.stack ?? e) };
      }
    },
    [client, url, name],
  );
}

const NETCDF4 = ["air", "air-zlib", "series", "holes"];

test("zarr.js and zarrita read every netCDF4 array through the decoded view", { timeout: 300_000 }, async () => {
  const { datasets } = await json("/api/datasets");
  const failures = [];
  let checked = 0;
  for (const id of NETCDF4) {
    const ds = datasets.find((d) => d.id === id);
    assert.ok(ds, `dataset ${id} is served`);
    const meta = (await json(`/zarr/${id}/.zmetadata`)).metadata;
    for (const v of ds.variables) {
      const za = meta[`${v.name}/.zarray`];
      const want = await readArray(id, v.name, za);
      const clients = za.shape.length ? ["zarr.js", "zarrita", "zarrita-v3"] : ["zarrita", "zarrita-v3"];
      for (const client of clients) {
        const view = client === "zarrita-v3" ? "decoded-v3" : "decoded";
        const got = await readInPage(client, `${BASE}/zarr/${id}@${view}`, v.name);
        const diff = got.error ?? firstDifference(got.values, Array.from(want));
        log(`  ${id}/${v.name} ${za.dtype} [${[...(za.filters ?? []).map((f) => f.id), za.compressor?.id].filter(Boolean).join("+") || "none"}] ${client}@${view}: ${diff ?? `${want.length} values equal`}`);
        if (diff) failures.push(`${id}/${v.name} ${client}: ${diff}`);
        checked += 1;
      }
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(checked >= 30, `only ${checked} reads`);
});

test("legacy zarr.js misreads the encoded view where filters matter (the reason for the decoded view)", { timeout: 60_000 }, async () => {
  const got = await readInPage("zarr.js", `${BASE}/zarr/air-zlib`, "air_temperature");
  const meta = (await json("/zarr/air-zlib/.zmetadata")).metadata;
  const want = await readArray("air-zlib", "air_temperature", meta["air_temperature/.zarray"]);
  // zlib is the compressor and shuffle a filter it ignores: values come back, and are wrong.
  assert.ok(got.error || firstDifference(got.values, Array.from(want)), "zarr.js read the shuffled bytes right?");
});

test("zarrita reads the GRIB2 fields through the decoded view, equal to eccodes (f32 precision)", { timeout: 120_000 }, async () => {
  const manifest = JSON.parse(await readFile(join(STATE, "demo/grib/eccodes.json"), "utf8"));
  const failures = [];
  for (const field of manifest.fields) {
    const raw = await readFile(join(STATE, "demo/grib", field.values));
    const want = Array.from(new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8));
    for (const [client, view] of [["zarrita", "decoded"], ["zarrita-v3", "decoded-v3"]]) {
      const got = await readInPage(client, `${BASE}/zarr/${field.dataset}@${view}`, field.variable);
      const diff = got.error ?? firstDifference(got.values, want, GRIB_RTOL);
      const missing = got.values?.filter(Number.isNaN).length;
      if (!diff) assert.equal(missing, field.missing, `${field.variable}: missing points`);
      log(`  ${field.dataset}/${field.variable} (${field.packing}) ${client}@${view}: ${diff ?? `${want.length} values equal`}`);
      if (diff) failures.push(`${field.dataset}/${field.variable} ${client}: ${diff}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(manifest.fields.length >= 2);
});
