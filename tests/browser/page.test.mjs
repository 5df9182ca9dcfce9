// End-to-end test of the explorer page (www/) in headless Chromium, driven by playwright-core.
//
//   ZEC_BASE_URL=http://127.0.0.1:8787 node --test tests/browser/
//
// ZEC_BASE_URL     the worker (required): the test reads the Zarr store from it on its own to
//                  cross-check what the page shows.
// ZEC_PAGE_URL     the page (default `${ZEC_BASE_URL}/`, the worker's static assets). To test a
//                  build served elsewhere: ZEC_PAGE_URL='http://127.0.0.1:8731/?api=http://127.0.0.1:8787'
// ZEC_ARTIFACTS_DIR  where screenshots go (default .local/artifacts of the repository)
// ZEC_UPDATE_SCREENSHOT=1  also copy the desktop screenshot to www/screenshot.png (for the README)
// CHROMIUM_PATH    default /usr/bin/chromium (Debian's `chromium` package)

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFile, mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { inflateSync } from "node:zlib";
import { chromium } from "playwright-core";

const BASE = process.env.ZEC_BASE_URL?.replace(/\/+$/, "");
if (!BASE) {
  throw new Error("ZEC_BASE_URL is not set: point it at the running worker, e.g. ZEC_BASE_URL=http://127.0.0.1:8787 node --test tests/browser/");
}
const PAGE_URL = process.env.ZEC_PAGE_URL || `${BASE}/`;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = process.env.ZEC_ARTIFACTS_DIR || join(REPO, ".local/artifacts");
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const log = (...a) => console.log("[browser]", ...a);

/** The page URL with a location hash (keeps ?api=...). */
function pageWith(hash) {
  const u = new URL(PAGE_URL);
  u.hash = hash;
  return u.href;
}

// ---------------------------------------------------------------------------------------------
// An independent Zarr v2 reader for the arrays the test checks: plain fetch + node:zlib + a
// hand-written unshuffle, nothing shared with the page (which uses zarrita).

const metaCache = new Map();
async function zmetadata(ds) {
  if (!metaCache.has(ds)) {
    const res = await fetch(`${BASE}/zarr/${ds}/.zmetadata`);
    assert.equal(res.status, 200, `GET /zarr/${ds}/.zmetadata`);
    metaCache.set(ds, (await res.json()).metadata);
  }
  return metaCache.get(ds);
}

function unshuffle(bytes, size) {
  const n = bytes.length / size;
  const out = new Uint8Array(bytes.length);
  for (let b = 0; b < size; b++) for (let i = 0; i < n; i++) out[i * size + b] = bytes[b * n + i];
  return out;
}

const chunkCache = new Map();
/** Stored (raw, not CF-decoded) value of `name` at the integer index `idx`. */
async function rawValue(ds, name, idx) {
  const meta = await zmetadata(ds);
  const za = meta[`${name}/.zarray`];
  const chunkIdx = idx.map((i, d) => Math.floor(i / za.chunks[d]));
  const key = `${ds}/${name}/${chunkIdx.join(za.dimension_separator ?? ".")}`;
  if (!chunkCache.has(key)) {
    const res = await fetch(`${BASE}/zarr/${key}`);
    assert.equal(res.status, 200, `GET /zarr/${key}`);
    let bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(za.compressor, null, `${name}: the test's reader handles filters only`);
    for (const f of [...(za.filters ?? [])].reverse()) {
      if (f.id === "zlib") bytes = new Uint8Array(inflateSync(bytes));
      else if (f.id === "shuffle") bytes = unshuffle(bytes, f.elementsize);
      else assert.fail(`${name}: filter ${f.id} not handled by the test's reader`);
    }
    chunkCache.set(key, bytes);
  }
  const bytes = chunkCache.get(key);
  const m = za.dtype.match(/^([<>|])([fiu])(\d)$/);
  assert.ok(m, `dtype ${za.dtype}`);
  let off = 0;
  for (let d = 0; d < idx.length; d++) off = off * za.chunks[d] + (idx[d] % za.chunks[d]);
  const size = Number(m[3]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = m[1] !== ">";
  const getter = { f4: "getFloat32", f8: "getFloat64", i1: "getInt8", i2: "getInt16", i4: "getInt32", u1: "getUint8", u2: "getUint16", u4: "getUint32" }[`${m[2]}${size}`];
  return view[getter](off * size, le);
}

// ---------------------------------------------------------------------------------------------

let browser;
let page;
const pageErrors = [];

before(async () => {
  log(`page ${PAGE_URL}, worker ${BASE}, chromium ${CHROMIUM}`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // playwright adds a fresh --user-data-dir; the rest keeps Chromium off the (closed) network
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 }, deviceScaleFactor: 1 });
  page.on("pageerror", (e) => {
    pageErrors.push(e.message);
    log("page error:", e.message);
  });
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 404|ERR_CONNECTION_REFUSED/.test(m.text())) log("console error:", m.text());
  });
  await mkdir(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
});

/** Wait until the page has drawn `variable` (optionally at index {dim: i}); returns __zecView. */
async function waitForView(variable, index = null, timeout = 30_000) {
  await page.waitForFunction(
    ([variable, index]) => {
      const v = window.__zecView;
      const canvas = document.getElementById("map");
      if (canvas?.dataset.state === "error") return true;
      if (canvas?.dataset.state !== "ready" || !v || v.variable !== variable) return false;
      return !index || Object.entries(index).every(([d, i]) => v.index[d] === i);
    },
    [variable, index],
    { timeout },
  );
  const view = await page.evaluate(() => {
    const { cellCenter, valueAt, colorOf, ...data } = window.__zecView;
    return data;
  });
  assert.equal(view.state, "ready", `the page could not draw ${variable}: ${view.error}`);
  return view;
}

/** RGBA of canvas pixels (backing-store coordinates) read from the page. */
function pixels(points) {
  return page.evaluate((points) => {
    const ctx = document.getElementById("map").getContext("2d");
    return points.map(({ x, y }) => Array.from(ctx.getImageData(x, y, 1, 1).data));
  }, points);
}

/** Centre of cell (r, c) computed by the test from the published layout (not the page's helper). */
function cellCenter(view, r, c) {
  const { x, y, w, h } = view.layout;
  const dr = view.flipY ? view.rows - 1 - r : r;
  return { x: Math.floor((x + ((c + 0.5) * w) / view.cols) * view.dpr), y: Math.floor((y + ((dr + 0.5) * h) / view.rows) * view.dpr) };
}

/** Expected colour: the view's LUT indexed the way the colour bar is scaled. */
function expectedColor(view, value) {
  const t = (value - view.min) / (view.max - view.min);
  const i = Math.max(0, Math.min(view.lut.length - 1, Math.round(t * (view.lut.length - 1))));
  return [view.lut[i], view.lut[Math.max(0, i - 1)], view.lut[Math.min(view.lut.length - 1, i + 1)]];
}

const close = (px, rgb, tol = 2) => rgb.every((x, k) => Math.abs(px[k] - x) <= tol);

test("explorer page: datasets, heatmap of air/air_temperature, cache report", { timeout: 180_000 }, async (t) => {
  let firstView;

  await t.test("lists the datasets and the variables of air", async () => {
    await page.goto(PAGE_URL, { waitUntil: "domcontentloaded" });
    await page.locator('[data-dataset="air"]').waitFor({ timeout: 20_000 });
    const ids = await page.locator("[data-dataset]").evaluateAll((els) => els.map((e) => e.dataset.dataset));
    log("datasets listed:", ids.join(", "));
    for (const id of ["air", "series", "classic"]) assert.ok(ids.includes(id), `dataset ${id} listed`);
    await page.locator('[data-dataset="air"]').click();
    const row = page.locator('[data-variable="air_temperature"]');
    await row.waitFor();
    const text = await row.innerText();
    log("variable row:", text.replace(/\s+/g, " "));
    assert.match(text, /8 × 46 × 90/, "shape shown");
    assert.match(text, /4 × 23 × 45/, "chunks shown");
    assert.match(text, /<f4/, "dtype shown");
  });

  await t.test("draws air_temperature: pixels follow the colour map of the values", async () => {
    await page.locator('[data-variable="air_temperature"]').click();
    const view = await waitForView("air_temperature");
    firstView = view;
    log(`drawn ${view.rows}x${view.cols} at ${JSON.stringify(view.index)}, range ${view.min.toFixed(2)}..${view.max.toFixed(2)} ${view.units}, ${view.masked} masked, flipY=${view.flipY}, ${view.ms.toFixed(0)} ms`);
    assert.deepEqual([view.rows, view.cols], [46, 90]);
    assert.deepEqual(view.index, { time: 0 });
    assert.equal(view.values.length, 46 * 90);
    const finite = view.values.filter((v) => v !== null);
    assert.equal(view.min, Math.min(...finite), "colour scale starts at the slice minimum");
    assert.equal(view.max, Math.max(...finite), "colour scale ends at the slice maximum");
    // The default colour map is viridis: check its ends independently of the page.
    assert.deepEqual(view.lut[0], [0x44, 0x01, 0x54]);
    assert.deepEqual(view.lut[255], [0xfd, 0xe7, 0x25]);

    // sample cells across all four chunks, plus the coldest and warmest cells
    const cells = [];
    for (const r of [0, 5, 17, 22, 23, 30, 45]) for (const c of [0, 13, 44, 45, 61, 89]) cells.push([r, c]);
    const imin = view.values.indexOf(view.min);
    const imax = view.values.indexOf(view.max);
    cells.push([Math.floor(imin / view.cols), imin % view.cols], [Math.floor(imax / view.cols), imax % view.cols]);
    const got = await pixels(cells.map(([r, c]) => cellCenter(view, r, c)));
    let matched = 0;
    cells.forEach(([r, c], k) => {
      const value = view.values[r * view.cols + c];
      assert.notEqual(value, null, `cell ${r},${c} is not masked`);
      const px = got[k];
      assert.equal(px[3], 255, `cell ${r},${c} is opaque`);
      const ok = expectedColor(view, value).some((rgb) => close(px, rgb));
      assert.ok(ok, `cell ${r},${c} value ${value}: pixel ${px} is not colormap(value) ${expectedColor(view, value)[0]}`);
      matched++;
    });
    log(`${matched} sampled pixels match colormap(value)`);
    // the coldest cell is drawn in the first colour, the warmest in the last
    const [pMin, pMax] = got.slice(-2);
    assert.ok(close(pMin, view.lut[0]) && close(pMax, view.lut[255]), "extremes use the ends of the colour map");

    // cross-check values with an independent decode (fetch + zlib + unshuffle)
    const checks = [[0, 0], [22, 44], [23, 45], [45, 89], [10, 70], [40, 5]];
    for (const [r, c] of checks) {
      const raw = await rawValue("air", "air_temperature", [view.index.time, r, c]);
      assert.equal(view.values[r * view.cols + c], raw, `air_temperature[0, ${r}, ${c}]`);
    }
    log(`${checks.length} values equal an independent decode of the chunks`);
    // north is up: latitude ascends in the store, so row 0 (southernmost) is drawn at the bottom
    const lat0 = await rawValue("air", "lat", [0]);
    const lat45 = await rawValue("air", "lat", [45]);
    assert.equal(view.flipY, lat45 > lat0, "rows are flipped exactly when latitude ascends");

    // cost report
    const c = view.chunks;
    log(`first view cost: ${c.total} chunks (HIT ${c.HIT}, MISS ${c.MISS}, EDGE ${c.EDGE}, INLINE ${c.INLINE}), ${view.chunkBytes} chunk bytes, ${view.requests.length} requests, ${view.ms.toFixed(0)} ms`);
    assert.equal(c.total, 4, "a time slice of air_temperature spans 2 x 2 chunks");
    assert.equal(c.HIT + c.MISS + c.EDGE + c.INLINE, c.total, "every chunk response carries X-Cache");
    assert.equal(view.expectedChunks, 4);
    assert.ok(view.chunkBytes > 0);
    assert.equal((await page.locator("#c-total").innerText()).trim(), "4", "panel shows the chunk count");
  });

  await t.test("after a reload every chunk is a cache hit", async () => {
    let view;
    for (let attempt = 1; attempt <= 4; attempt++) {
      await page.reload({ waitUntil: "domcontentloaded" });
      view = await waitForView("air_temperature", { time: 0 });
      const c = view.chunks;
      log(`reload ${attempt}: ${c.total} chunks (HIT ${c.HIT}, EDGE ${c.EDGE}, MISS ${c.MISS}, INLINE ${c.INLINE})`);
      if (c.HIT + c.EDGE === c.total) break;
      await new Promise((r) => setTimeout(r, 1000)); // write-backs run after the response (waitUntil)
    }
    assert.equal(view.chunks.total, 4);
    assert.equal(view.chunks.HIT + view.chunks.EDGE, view.chunks.total, `all chunks HIT or EDGE: ${JSON.stringify(view.requests.filter((r) => r.kind === "chunk"))}`);
    for (const k of ["HIT", "EDGE", "MISS"]) {
      assert.equal((await page.locator(`#c-${k}`).innerText()).trim(), String(view.chunks[k]), `panel shows ${k}`);
    }
    assert.deepEqual(view.values, firstView.values, "same values after the reload");

    // screenshot with the value under the cursor, at a size that suits the README
    await page.setViewportSize({ width: 1120, height: 920 });
    await page.waitForFunction(() => window.__zecView?.layout.W === document.getElementById("plot-wrap").clientWidth);
    const box = await page.locator("#map").boundingBox();
    await page.mouse.move(box.x + box.width * 0.55, box.y + box.height * 0.45);
    const readout = await page.locator("#readout").innerText();
    log("readout:", readout);
    assert.match(readout, /lat .*lon .*→ \d+(\.\d+)? K/);
    const shot = join(ARTIFACTS, "www.png");
    await page.screenshot({ path: shot, fullPage: false });
    log("screenshot", shot);
    if (process.env.ZEC_UPDATE_SCREENSHOT === "1") {
      const target = join(REPO, "www/screenshot.png");
      try {
        // a palette PNG is half the size and looks the same (Debian's pngquant, when installed)
        execFileSync("pngquant", ["--quality", "70-95", "--speed", "1", "--strip", "--force", "-o", target, shot]);
        log("quantized with pngquant to www/screenshot.png");
      } catch {
        await copyFile(shot, target);
        log("copied to www/screenshot.png");
      }
    }
    await page.setViewportSize({ width: 1280, height: 1000 });
  });

  await t.test("the stats panel shows /api/stats or says why not", async () => {
    await page.locator("#stats-refresh").click();
    await page.waitForFunction(() => !document.getElementById("stats-refresh").disabled && !/^Loading/.test(document.getElementById("stats-status").textContent));
    const status = (await page.locator("#stats-status").innerText()).trim();
    const tableShown = await page.locator("#stats-table").isVisible();
    log(`stats panel: ${tableShown ? "table" : "no table"}; "${status}"`);
    if (tableShown) {
      const rows = await page.locator("#stats-rows tr").count();
      assert.ok(rows >= 1, "a row per dataset");
    } else {
      assert.match(status, /unavailable|failed|No statistics/i, "a readable message instead of the table");
    }

    // the rendering itself, with canned answers: a body in the documented shape, then a failure
    const refresh = async () => {
      await page.locator("#stats-refresh").click();
      await page.waitForFunction(() => !document.getElementById("stats-refresh").disabled);
    };
    const canned = { datasets: [{ id: "air", hits: 30, misses: 10, hit_ratio: 0.75, bytes_from_cache: 300 * 1024, bytes_from_origin: 100 * 1024, entries_written: 10, bytes_written: 100 * 1024, entries: 8, bytes_stored: 80 * 1024, capacity_bytes: 1024 * 1024, eviction: "cost", fetch_ms_p50: 12, fetch_ms_p95: 80 }] };
    await page.route("**/api/stats", (route) => route.fulfill({ status: 200, contentType: "application/json", headers: { "access-control-allow-origin": "*" }, body: JSON.stringify(canned) }));
    await refresh();
    const row = (await page.locator("#stats-rows tr").first().innerText()).replace(/\s+/g, " ");
    log(`stats row (canned): ${row}`);
    assert.match(row, /air 30 10 75% 300 KiB 100 KiB 8 \/ 80 KiB of 1.0 MiB cost 12 \/ 80 ms/);
    await page.unroute("**/api/stats");
    await page.route("**/api/stats", (route) => route.abort("connectionrefused"));
    await refresh();
    const failed = (await page.locator("#stats-status").innerText()).trim();
    log(`stats after a failed refresh: "${failed}"`);
    assert.match(failed, /failed/i);
    assert.ok(await page.locator("#stats-table").isVisible(), "the last good table stays");
    await page.unroute("**/api/stats");
  });

  await t.test("CF decoding: packed precipitation, masked swath, keyboard time slider, no layout jump", async () => {
    await page.locator('[data-variable="precipitation"]').click();
    let view = await waitForView("precipitation", { time: 0 });
    assert.equal(view.scale_factor, 0.01);
    const slider = page.locator("#sliders input[type=range]");
    assert.equal(await slider.getAttribute("data-dim"), "time");
    const label = await page.locator(`label[for="${await slider.getAttribute("id")}"]`).innerText();
    log("slider label:", label.replace(/\s+/g, " "));
    // slow chunk answers down so that the loading state can be observed
    await page.route(/\/zarr\/air\/precipitation\/\d/, async (route) => {
      await new Promise((r) => setTimeout(r, 400));
      await route.continue();
    });
    const boxes = () =>
      page.evaluate(() =>
        ["map", "colorbar", "readout", "cost-tiles", "stats-h"].map((id) => {
          const r = document.getElementById(id).getBoundingClientRect();
          return [id, Math.round(r.x + scrollX), Math.round(r.y + scrollY), Math.round(r.width), Math.round(r.height)];
        }),
      );
    let found = null;
    for (let t = 1; t < 8 && !found; t++) {
      const before = await boxes();
      await slider.focus();
      await page.keyboard.press("ArrowRight");
      await page.waitForFunction(() => document.getElementById("map").dataset.state === "loading");
      const during = await boxes();
      view = await waitForView("precipitation", { time: t });
      const afterLoad = await boxes();
      assert.deepEqual(during, before, "nothing moves when loading starts");
      assert.deepEqual(afterLoad, before, "nothing moves when the chunks arrive");
      if (view.masked > 0) found = view;
    }
    await page.unroute(/\/zarr\/air\/precipitation\/\d/);
    assert.ok(found, "one time step of precipitation has a missing swath");
    view = found;
    log(`precipitation time=${view.index.time}: ${view.masked} masked cells, fill ${view.fillValues}, range ${view.min}..${view.max} ${view.units}`);
    const maskedIdx = view.values.indexOf(null);
    const validIdx = view.values.findIndex((v) => v !== null && v > 0);
    const cells = [maskedIdx, validIdx].map((i) => [Math.floor(i / view.cols), i % view.cols]);
    const [pMasked, pValid] = await pixels(cells.map(([r, c]) => cellCenter(view, r, c)));
    const grey = pMasked[3] === 255 && Math.max(...pMasked.slice(0, 3)) - Math.min(...pMasked.slice(0, 3)) <= 12 && pMasked[0] >= 130 && pMasked[0] <= 215;
    assert.ok(grey, `masked cell drawn grey (hatched), got ${pMasked}`);
    assert.ok(expectedColor(view, view.values[validIdx]).some((rgb) => close(pValid, rgb)), "valid cell in its colour");
    // independent decode: raw int16 * scale_factor, and the fill value where the page masks
    const [mr, mc] = cells[0];
    const [vr, vc] = cells[1];
    assert.equal(await rawValue("air", "precipitation", [view.index.time, mr, mc]), -32767);
    const raw = await rawValue("air", "precipitation", [view.index.time, vr, vc]);
    assert.ok(Math.abs(view.values[validIdx] - raw * 0.01) < 1e-9, `precipitation ${view.values[validIdx]} == ${raw} * 0.01`);
    log(`masked cell pixel ${pMasked.slice(0, 3)}, raw ${raw} -> ${view.values[validIdx]} mm`);
  });

  await t.test("series/sst and classic/tas render too (classic's coordinates are Blosc-compressed)", async () => {
    for (const [ds, variable] of [["series", "sst"], ["classic", "tas"]]) {
      await page.goto(pageWith(`ds=${ds}&var=${variable}`));
      const view = await waitForView(variable);
      const coords = await page.locator("#plot-msg").innerText();
      log(`${ds}/${variable}: ${view.rows}x${view.cols}, codecs [${view.codecs}], ${view.masked} masked, ${view.chunks.total} chunk(s), ${view.requests.length} requests`);
      assert.ok(view.values.some((v) => v !== null));
      assert.doesNotMatch(coords, /Axis labels unavailable/, `${ds}: coordinate arrays decoded`);
      if (ds === "series") assert.ok(view.masked > 0, "land is masked in sst (fill value -999)");
      if (ds === "classic") {
        // lat is a big-endian float32 array compressed with Blosc(lz4, shuffle): decoded by
        // numcodecs' WebAssembly Blosc, loaded on demand from the bundle
        const meta = await zmetadata("classic");
        assert.equal(meta["lat/.zarray"].compressor?.id, "blosc");
        assert.equal(view.yAxis?.name, "lat");
        assert.equal(view.yAxis.values.length, 19);
        assert.deepEqual([view.yAxis.values[0], view.yAxis.values[18]], [-90, 90], "Blosc-compressed latitudes decoded");
        log(`classic lat (blosc) decoded: ${view.yAxis.values.join(" ")}`);
      }
    }
  });

  await t.test("GRIB2 draws through the decoded view; the box reads any reference dataset decoded at the edge", async () => {
    const urls = [];
    const onRequest = (r) => urls.push(r.url());
    page.on("request", onRequest);
    try {
      await page.goto("about:blank");
      await page.goto(pageWith("ds=grib&var=t2m"));
      const grib = await waitForView("t2m");
      assert.equal(grib.values.filter((v) => v !== null).length, 73 * 144, "every point of the GRIB2 field");
      assert.ok(urls.some((u) => u.includes("/zarr/grib@decoded/t2m/0.0")), "t2m read through @decoded");
      assert.ok(await page.locator("#decoded").isChecked());
      assert.ok(await page.locator("#decoded").isDisabled(), "GRIB2 is always decoded at the edge");
      log(`grib/t2m: ${grib.rows}x${grib.cols}, ${grib.dataMin.toFixed(2)}..${grib.dataMax.toFixed(2)} ${grib.units}`);
      await page.goto("about:blank");
      await page.goto(pageWith("ds=air&var=air_temperature"));
      const encoded = await waitForView("air_temperature");
      assert.ok(!(await page.locator("#decoded").isChecked()));
      urls.length = 0;
      await page.goto("about:blank");
      await page.goto(pageWith("ds=air&var=air_temperature&view=decoded"));
      const decoded = await waitForView("air_temperature");
      assert.ok(await page.locator("#decoded").isChecked());
      assert.ok(urls.some((u) => u.includes("/zarr/air@decoded/air_temperature/")), "chunks read through @decoded");
      assert.deepEqual(decoded.values, encoded.values, "the same values decoded at the edge");
      await page.locator("#decoded").uncheck();
      await page.waitForFunction(() => !location.hash.includes("view=decoded"));
    } finally {
      page.off("request", onRequest);
    }
  });

  await t.test("every variable of every dataset draws (codec support)", async () => {
    const { datasets } = await (await fetch(`${BASE}/api/datasets`)).json();
    const failures = [];
    // the demo datasets (a test stack may add aliases, e.g. one whose origin host is not allowed)
    for (const ds of datasets.filter((d) => ["air", "series", "classic"].includes(d.id))) {
      assert.equal(ds.state, "loaded", `${ds.id}: ${ds.error}`);
      for (const v of ds.variables) {
        await page.goto(pageWith(`ds=${ds.id}&var=${v.name}`));
        await page.waitForFunction(
          ([variable]) => ["ready", "error"].includes(document.getElementById("map").dataset.state) && window.__zecView?.variable === variable,
          [v.name],
          { timeout: 30_000 },
        );
        const r = await page.evaluate(() => ({ state: window.__zecView.state, error: window.__zecView.error, masked: window.__zecView.masked, n: window.__zecView.values?.length }));
        const codecs = [...(v.filters ?? []), ...(v.compressor ? [v.compressor] : [])].join("+") || "none";
        log(`  ${ds.id}/${v.name} ${v.dtype} [${codecs}]: ${r.state}${r.error ? ` ${r.error}` : `, ${r.n} values, ${r.masked} masked`}`);
        if (r.state !== "ready") failures.push(`${ds.id}/${v.name}: ${r.error}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  await t.test("keyboard only: choose classic/tas, step time, probe a value", async () => {
    await page.goto("about:blank");
    await page.goto(PAGE_URL);
    await page.locator('[data-dataset="classic"]').waitFor();
    const tabTo = async (predicate, what) => {
      for (let i = 0; i < 60; i++) {
        await page.keyboard.press("Tab");
        if (await page.evaluate(predicate)) return;
      }
      assert.fail(`Tab never reached ${what}`);
    };
    await tabTo(() => document.activeElement?.dataset.dataset === "classic", "dataset classic");
    await page.keyboard.press("Enter");
    await tabTo(() => document.activeElement?.dataset.variable === "tas", "variable tas");
    await page.keyboard.press("Enter");
    await waitForView("tas", { time: 0 });
    await tabTo(() => document.activeElement?.matches("#sliders input[type=range]"), "the time slider");
    await page.keyboard.press("ArrowRight");
    const view = await waitForView("tas", { time: 1 });
    await tabTo(() => document.activeElement?.id === "map", "the map");
    await page.keyboard.press("ArrowRight");
    const readout = (await page.locator("#readout").innerText()).trim();
    const valuetext = await page.locator("#sliders input[type=range]").getAttribute("aria-valuetext");
    log(`keyboard: time slider "${valuetext}", readout "${readout}"`);
    assert.match(valuetext, /^1987-06-02 \(2 of 6\)$/);
    assert.match(readout, /lat .*lon .*→ \d+(\.\d+)? K/);
    assert.equal(view.dataset, "classic");
  });

  await t.test("readable at a phone's width", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(pageWith("ds=air&var=air_temperature&time=2"));
    const view = await waitForView("air_temperature", { time: 2 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow}px)`);
    assert.ok(view.layout.W <= 390, "the heatmap fits the screen");
    await page.locator("#viewer").scrollIntoViewIfNeeded();
    const shot = join(ARTIFACTS, "www-phone.png");
    await page.screenshot({ path: shot, fullPage: true });
    log("screenshot", shot);
  });

  assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
});
