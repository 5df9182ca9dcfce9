// zarr-edge-cache explorer: lists the datasets, draws a 2-D slice of a variable read with zarrita
// from the worker's Zarr v2 store, and shows what each view cost in cache hits and bytes.

import * as zarr from "zarrita";
import { cfDecoder, cfTimeParser, coordFormatter, fmtNumber } from "./cf.js";
import { COLORMAPS, lut, lutIndex, MASK_COLORS } from "./colormap.js";
import { CACHE_KINDS, Ledger, apiBase, apiUrl, getJson, recordingFetch } from "./net.js";
import { cellAt, cellRect, drawColorbar, drawHeatmap, plotLayout } from "./plot.js";

const $ = (id) => document.getElementById(id);
const els = {
  apiBase: $("api-base"),
  dsStatus: $("datasets-status"),
  dsList: $("dataset-list"),
  varsDs: $("variables-ds"),
  varsStatus: $("variables-status"),
  varList: $("variable-list"),
  viewer: $("viewer"),
  viewerH: $("viewer-h"),
  viewerSub: $("viewer-sub"),
  sliders: $("sliders"),
  cmap: $("cmap"),
  lock: $("lock"),
  decoded: $("decoded"),
  wrap: $("plot-wrap"),
  canvas: $("map"),
  probe: $("probe"),
  plotMsg: $("plot-msg"),
  colorbar: $("colorbar"),
  readout: $("readout"),
  refetch: $("refetch"),
  reqDetails: $("req-details"),
  reqRows: $("req-rows"),
  costExtra: $("cost-extra"),
  statsStatus: $("stats-status"),
  statsTable: $("stats-table"),
  statsRows: $("stats-rows"),
  statsRefresh: $("stats-refresh"),
};

const state = {
  datasets: [],
  ds: null, // dataset from /api/datasets
  variable: null, // variable metadata from /api/datasets
  indices: {}, // leading dimension -> index
  cmap: "viridis",
  lockedRange: null,
  decoded: false, // read through the decoded view (/zarr/{id}@decoded): codecs applied at the edge
  gen: 0,
  abort: null,
  ledger: null,
  stores: new Map(),
  arrays: new Map(),
  coords: new Map(), // "ds/dim" -> Promise of a decoded coordinate
  resolvedCoords: new Map(), // "ds/dim" -> decoded coordinate, once loaded
  grid: null, // what is drawn
  layout: null,
  probe: null,
};

const DEFAULT_README = "Hover over the map, or focus it and use the arrow keys, to read values.";

// ---------------------------------------------------------------------------------------------
// small helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function fmtBytes(n) {
  if (!Number.isFinite(n)) return "—";
  if (n < 1024) return `${n} B`;
  const [v, unit] = n < 1024 * 1024 ? [n / 1024, "KiB"] : n < 1024 ** 3 ? [n / 1024 ** 2, "MiB"] : [n / 1024 ** 3, "GiB"];
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${unit}`;
}

function fmtMs(ms) {
  return ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

const shapeText = (s) => (s.length ? s.join(" × ") : "scalar");

function dimsOf(v) {
  return v.dimensions && v.dimensions.length === v.shape.length ? v.dimensions : v.shape.map((_, i) => `dim_${i}`);
}

function codecsOf(v) {
  const names = [...(v.filters ?? [])];
  if (v.compressor) names.push(v.compressor);
  return names;
}

/** Cells of the slice the page draws: the last two dimensions (one row for 1-D arrays). */
function sliceShape(v) {
  const n = v.shape.length;
  if (n === 0) return { rows: 1, cols: 1 };
  if (n === 1) return { rows: 1, cols: v.shape[0] };
  return { rows: v.shape[n - 2], cols: v.shape[n - 1] };
}

/** How many chunks a view of `v` at the current indices touches. */
function expectedChunks(v) {
  const n = v.shape.length;
  let count = 1;
  for (let i = 0; i < n; i++) {
    const c = v.chunks[i] || v.shape[i] || 1;
    if (i < n - 2) continue; // one index along a leading dimension: one chunk row
    count *= Math.ceil(v.shape[i] / c);
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// location hash: #ds=air&var=air_temperature&time=3

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  const indices = {};
  for (const [k, v] of p) if (k !== "ds" && k !== "var" && /^\d+$/.test(v)) indices[k] = Number(v);
  return { ds: p.get("ds"), variable: p.get("var"), indices, decoded: p.get("view") === "decoded" };
}

function writeHash() {
  const p = new URLSearchParams();
  if (state.ds) p.set("ds", state.ds.id);
  if (state.decoded) p.set("view", "decoded");
  if (state.variable) {
    p.set("var", state.variable.name);
    for (const [k, v] of Object.entries(state.indices)) p.set(k, String(v));
  }
  const hash = p.toString();
  if (location.hash.slice(1) !== hash) history.replaceState(null, "", `${location.pathname}${location.search}${hash ? `#${hash}` : ""}`);
}

// ---------------------------------------------------------------------------------------------
// zarr access (one store per dataset; arrays and coordinates cached for the page's lifetime)

/** Whether the page must read `ds` decoded at the edge: nothing in a browser decodes GRIB2. */
function needsDecoded(ds) {
  return ds.kind !== "zarr" && (ds.variables ?? []).some((v) => (v.filters ?? []).includes("grib"));
}

/** The view `ds` is read through: "@decoded" (reference datasets only) or the store as it is. */
function viewOf(ds) {
  return ds.kind !== "zarr" && (state.decoded || needsDecoded(ds)) ? "@decoded" : "";
}

function storeFor(ds) {
  const id = `${ds.id}${viewOf(ds)}`;
  if (!state.stores.has(id)) {
    const url = apiUrl(`${ds.zarr || `zarr/${encodeURIComponent(ds.id)}`}${viewOf(ds)}`).href;
    const raw = new zarr.FetchStore(url, { fetch: recordingFetch(url, () => state.ledger) });
    // A Zarr store over HTTP may speak v3 (xpublish does); kerchunk datasets are v2.
    const p = zarr.withConsolidatedMetadata(raw, { format: ds.zarr_format === 3 ? "v3" : "v2" });
    p.catch(() => state.stores.delete(id));
    state.stores.set(id, p);
  }
  return state.stores.get(id);
}

function arrayFor(ds, name) {
  const key = `${ds.id}${viewOf(ds)}/${name}`;
  if (!state.arrays.has(key)) {
    const p = storeFor(ds).then((store) => zarr.open(zarr.root(store).resolve(name), { kind: "array" }));
    p.catch(() => state.arrays.delete(key));
    state.arrays.set(key, p);
  }
  return state.arrays.get(key);
}

/** A dimension's coordinate variable, decoded; null when there is none, {error} when it failed. */
function coordFor(ds, dim) {
  const meta = ds.variables.find((v) => v.name === dim && v.shape.length === 1);
  if (!meta) return Promise.resolve(null);
  const key = `${ds.id}${viewOf(ds)}/${dim}`;
  if (!state.coords.has(key)) {
    const p = (async () => {
      try {
        const arr = await arrayFor(ds, dim);
        const chunk = await zarr.get(arr);
        const { values } = cfDecoder(arr.attrs, meta.fill_value, meta.dtype).decode(chunk.data);
        const coord = describeCoord(dim, values, arr.attrs);
        state.resolvedCoords.set(key, coord);
        return coord;
      } catch (err) {
        state.coords.delete(key); // try again next view
        return { name: dim, error: err };
      }
    })();
    state.coords.set(key, p);
  }
  return state.coords.get(key);
}

function describeCoord(name, values, attrs) {
  const parse = cfTimeParser(attrs);
  const dates = parse ? Array.from(values, (v) => parse(v)) : null;
  const units = String(attrs.units ?? "");
  const coord = { name, values, attrs, dates, degrees: /^degrees?_?(north|east|n|e)$/i.test(units) };
  coord.format = coordFormatter(coord);
  return coord;
}

function errorText(err) {
  let msg = err?.message ?? String(err);
  let cause = err?.cause;
  while (cause) {
    msg += ` — ${cause.message ?? cause}`;
    cause = cause.cause;
  }
  return msg;
}

// ---------------------------------------------------------------------------------------------
// datasets and variables

async function loadDatasets() {
  const base = apiBase();
  els.apiBase.textContent = new URLSearchParams(location.search).get("api") ? base.origin : "same origin";
  try {
    const body = await getJson("api/datasets");
    // Block-mode datasets (kind "files") serve files by byte ranges, not Zarr: nothing to draw.
    state.datasets = (body.datasets ?? []).filter((d) => d.kind !== "files");
    els.dsStatus.textContent = state.datasets.length
      ? `${state.datasets.length} dataset${state.datasets.length === 1 ? "" : "s"}`
      : "No datasets are configured.";
  } catch (err) {
    els.dsStatus.textContent = `Could not load /api/datasets (${errorText(err)}).`;
    els.dsStatus.classList.add("error");
    return;
  }
  renderDatasets();
  const h = readHash();
  state.decoded = h.decoded;
  const ds = state.datasets.find((d) => d.id === h.ds);
  if (ds) {
    openDataset(ds, { focus: false });
    const v = ds.variables?.find((x) => x.name === h.variable);
    if (v) openVariable(v, { indices: h.indices, scroll: false });
  }
}

function renderDatasets() {
  els.dsList.replaceChildren(
    ...state.datasets.map((ds) => {
      const ok = ds.state === "loaded";
      const nvars = ds.variables?.length ?? 0;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "ds-btn",
            "data-dataset": ds.id,
            "aria-pressed": String(state.ds?.id === ds.id),
            onclick: () => openDataset(ds, { focus: true }),
          },
          el("span", { class: "ds-line" }, el("span", { class: "ds-id", text: ds.id }), el("span", { class: `badge ${ok ? "ok" : "bad"}`, text: ds.state ?? "?" })),
          ds.description ? el("span", { class: "ds-desc", text: ds.description }) : null,
          el("span", { class: "ds-meta", text: ok ? `${nvars} variables · ${ds.references ?? "?"} references` : "" }),
          ds.error ? el("span", { class: "ds-error", text: ds.error }) : null,
        ),
      );
    }),
  );
}

function openDataset(ds, { focus }) {
  if (state.ds?.id !== ds.id) {
    state.ds = ds;
    state.variable = null;
  }
  for (const b of els.dsList.querySelectorAll(".ds-btn")) b.setAttribute("aria-pressed", String(b.dataset.dataset === ds.id));
  syncDecoded();
  els.varsDs.textContent = `of ${ds.id}`;
  const vars = ds.variables ?? [];
  if (ds.state !== "loaded" || !vars.length) {
    els.varList.hidden = true;
    els.varsStatus.hidden = false;
    els.varsStatus.textContent = ds.state !== "loaded" ? `Dataset ${ds.id} is not available: ${ds.error ?? ds.state}.` : "This dataset has no variables.";
    writeHash();
    return;
  }
  els.varsStatus.hidden = true;
  els.varList.hidden = false;
  // data variables first, then coordinates (1-D arrays named like their dimension), then scalars
  const rank = (v) => (v.shape.length === 0 ? 2 : v.shape.length === 1 && dimsOf(v)[0] === v.name ? 1 : 0);
  const sorted = [...vars].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
  const kv = (k, v) => el("span", { class: "kv" }, el("span", { class: "k", text: k }), " ", el("span", { class: "v", text: v }));
  els.varList.replaceChildren(
    ...sorted.map((v) => {
      const dims = dimsOf(v);
      const codecs = codecsOf(v);
      const kind = ["", "coordinate", "scalar"][rank(v)];
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: `var-btn${kind ? ` ${kind}` : ""}`,
            "data-variable": v.name,
            "aria-pressed": String(state.variable?.name === v.name),
            onclick: () => openVariable(v, { scroll: true }),
          },
          el("span", { class: "var-line" }, el("span", { class: "var-name", text: v.name }), el("code", { class: "dtype", text: v.dtype })),
          el("span", { class: "var-facts" }, kv("shape", shapeText(v.shape)), kv("chunks", v.chunks?.length ? v.chunks.join(" × ") : "—")),
          el("span", { class: "sub", text: [dims.length ? `(${dims.join(", ")})` : "", codecs.length ? codecs.join(" + ") : "uncompressed", kind].filter(Boolean).join(" · ") }),
        ),
      );
    }),
  );
  writeHash();
  if (focus) els.varList.querySelector(".var-btn")?.focus({ preventScroll: true });
}

/** The "decode at the edge" box shows the current dataset's view; forced on for GRIB2, off
 * (and unavailable) for a Zarr store over HTTP, which is read as it is. */
function syncDecoded() {
  const ds = state.ds;
  els.decoded.checked = Boolean(ds && viewOf(ds));
  els.decoded.disabled = !ds || ds.kind === "zarr" || needsDecoded(ds);
  els.decoded.title = !ds ? "" : ds.kind === "zarr" ? "A Zarr store over HTTP is read as it is" : needsDecoded(ds) ? "GRIB2 is decoded at the edge: no browser library decodes it" : "";
}

// ---------------------------------------------------------------------------------------------
// the view

function openVariable(v, { indices = {}, scroll }) {
  state.variable = v;
  state.lockedRange = null;
  els.lock.checked = false;
  state.probe = null;
  for (const b of els.varList.querySelectorAll(".var-btn")) b.setAttribute("aria-pressed", String(b.dataset.variable === v.name));
  const dims = dimsOf(v);
  state.indices = {};
  for (let i = 0; i < dims.length - 2; i++) {
    const want = indices[dims[i]] ?? 0;
    state.indices[dims[i]] = Math.max(0, Math.min(v.shape[i] - 1, want));
  }
  els.viewerH.textContent = `${state.ds.id} / ${v.name}`;
  els.viewerSub.textContent = `${dims.join(" × ") || "scalar"} · ${shapeText(v.shape)} · ${v.dtype}`;
  // Size the plot for this slice now, from the metadata, so nothing moves when chunks arrive.
  sizePlot();
  clearPlot();
  buildSliders(v);
  els.refetch.disabled = false;
  writeHash();
  if (scroll && matchMedia("(max-width: 900px)").matches) els.viewer.scrollIntoView({ behavior: "smooth", block: "start" });
  showView();
}

let sliderTimer = 0;

function buildSliders(v) {
  const dims = dimsOf(v);
  const leading = dims.slice(0, Math.max(0, dims.length - 2));
  els.sliders.replaceChildren(
    ...leading.map((dim, i) => {
      const id = `dim-${i}`;
      const input = el("input", {
        type: "range",
        id,
        min: "0",
        max: String(v.shape[i] - 1),
        step: "1",
        value: String(state.indices[dim]),
        "data-dim": dim,
      });
      input.addEventListener("input", () => {
        state.indices[dim] = Number(input.value);
        updateSliderLabels();
        writeHash();
        clearTimeout(sliderTimer);
        sliderTimer = setTimeout(showView, 120);
      });
      return el(
        "div",
        { class: "control slider" },
        el("label", { for: id }, el("span", { class: "dim-name", text: dim }), " ", el("output", { for: id, id: `${id}-val` })),
        input,
      );
    }),
  );
  updateSliderLabels();
}

function updateSliderLabels(coords = state.grid?.coords) {
  const v = state.variable;
  if (!v) return;
  const dims = dimsOf(v);
  els.sliders.querySelectorAll("input[type=range]").forEach((input, i) => {
    const dim = dims[i];
    const idx = state.indices[dim];
    const coord = coords?.[i] ?? (state.ds ? state.resolvedCoords.get(`${state.ds.id}${viewOf(state.ds)}/${dim}`) : undefined);
    const label = coord?.values ? coord.format(coord.values[idx], idx) : `index ${idx}`;
    const text = `${label} (${idx + 1} of ${v.shape[i]})`;
    $(`${input.id}-val`).textContent = text;
    input.setAttribute("aria-valuetext", text);
  });
}

function sizePlot() {
  const v = state.variable;
  const width = els.wrap.clientWidth;
  if (!v || !width) return;
  const { rows, cols } = sliceShape(v);
  state.layout = plotLayout(width, rows, cols);
  els.wrap.style.height = `${state.layout.H}px`;
}

function clearPlot() {
  const { canvas } = els;
  const L = state.layout;
  if (L) {
    canvas.width = L.W;
    canvas.height = L.H;
    canvas.style.width = `${L.W}px`;
    canvas.style.height = `${L.H}px`;
  }
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  els.colorbar.getContext("2d").clearRect(0, 0, els.colorbar.width, els.colorbar.height);
  els.probe.hidden = true;
  state.grid = null;
}

function setMessage(text, kind = "") {
  els.plotMsg.textContent = text;
  els.plotMsg.className = `plot-msg ${kind}`;
  els.plotMsg.hidden = !text;
}

async function showView() {
  const ds = state.ds;
  const v = state.variable;
  if (!ds || !v) return;
  const gen = ++state.gen;
  state.abort?.abort();
  const abort = (state.abort = new AbortController());
  const dims = dimsOf(v);
  const nd = v.shape.length;
  const ledger = new Ledger(`${v.name}/`);
  ledger.expected = expectedChunks(v);
  ledger.listeners.add(renderCost);
  state.ledger = ledger;
  renderCost(ledger);
  els.canvas.dataset.state = "loading";
  els.canvas.setAttribute("aria-busy", "true");
  setMessage(`Loading ${ledger.expected} chunk${ledger.expected === 1 ? "" : "s"}…`, "loading");
  const index = { ...state.indices };
  try {
    const arr = await arrayFor(ds, v.name);
    if (gen !== state.gen) return;
    els.viewerSub.textContent = describeArray(v, arr.attrs);
    const selection = dims.map((d, i) => (i < nd - 2 ? index[d] : null));
    const coordsP = Promise.all(dims.map((d) => (d === v.name ? null : coordFor(ds, d))));
    const dataP = nd === 0 ? zarr.get(arr, null, { signal: abort.signal }) : zarr.get(arr, selection, { signal: abort.signal });
    const [chunk, coords] = await Promise.all([dataP, coordsP]);
    if (gen !== state.gen) return;

    // contiguous stored values of the slice
    let raw;
    let rows;
    let cols;
    if (nd === 0) {
      raw = [chunk];
      rows = cols = 1;
    } else {
      const shape = chunk.shape;
      rows = shape.length >= 2 ? shape[0] : 1;
      cols = shape[shape.length - 1];
      const [sr, sc] = shape.length >= 2 ? chunk.stride : [0, chunk.stride[0]];
      const contiguous = shape.length >= 2 ? sr === cols && sc === 1 : sc === 1;
      raw = contiguous ? chunk.data : Array.from({ length: rows * cols }, (_, k) => chunk.data[Math.floor(k / cols) * sr + (k % cols) * sc]);
    }
    const meta = ds.variables.find((x) => x.name === v.name) ?? v;
    const decoder = cfDecoder(arr.attrs, meta.fill_value, meta.dtype);
    const { values, masked } = decoder.decode(raw);

    // axes: the variable's own values are its axis when it is a coordinate
    const axisOf = (i) => {
      if (i < 0) return null;
      if (dims[i] === v.name) return describeCoord(v.name, values, arr.attrs);
      const c = coords[i];
      return c && !c.error ? c : null;
    };
    const xAxis = axisOf(nd - 1);
    const yAxis = nd >= 2 ? axisOf(nd - 2) : null;
    const yv = yAxis?.values;
    const flipY = !!(yv && yv.length > 1 && !yAxis.dates && yv[yv.length - 1] > yv[0]);

    let dataMin = Infinity;
    let dataMax = -Infinity;
    for (const x of values) {
      if (Number.isNaN(x)) continue;
      if (x < dataMin) dataMin = x;
      if (x > dataMax) dataMax = x;
    }
    if (!Number.isFinite(dataMin)) dataMin = dataMax = NaN;
    const coordErrors = coords.filter((c) => c?.error);

    state.grid = {
      dataset: ds.id,
      variable: v.name,
      dims,
      index,
      selection,
      rows,
      cols,
      values,
      masked,
      flipY,
      dataMin,
      dataMax,
      xAxis,
      yAxis,
      xDim: nd >= 1 ? dims[nd - 1] : null,
      yDim: nd >= 2 ? dims[nd - 2] : null,
      coords,
      coordErrors,
      attrs: arr.attrs,
      decoder,
      units: String(arr.attrs.units ?? ""),
      longName: String(arr.attrs.long_name ?? arr.attrs.standard_name ?? v.name),
      codecs: codecsOf(v),
    };
    updateSliderLabels(coords);
    draw();
    ledger.finish();
    if (nd === 0) setMessage(`${v.name} is a scalar: ${Number.isNaN(values[0]) ? "masked (fill value)" : `${fmtNumber(values[0])} ${state.grid.units}`.trim()}`, "info");
    else if (masked === values.length) setMessage("Every cell of this slice is masked (fill value).", "info");
    else if (coordErrors.length) setMessage(`Axis labels unavailable: ${coordErrors.map((c) => `${c.name}: ${errorText(c.error)}`).join("; ")}`, "info corner");
    else setMessage("");
    els.canvas.removeAttribute("aria-busy");
    els.canvas.dataset.state = "ready";
    scheduleStats();
  } catch (err) {
    if (gen !== state.gen || abort.signal.aborted) return;
    ledger.finish();
    console.error(err);
    clearPlot();
    els.canvas.removeAttribute("aria-busy");
    els.canvas.dataset.state = "error";
    els.canvas.setAttribute("aria-label", `Could not draw ${v.name}`);
    setMessage(`Could not draw ${ds.id}/${v.name}: ${errorText(err)}`, "error");
    window.__zecView = { state: "error", dataset: ds.id, variable: v.name, index, error: errorText(err), ...costFields(ledger) };
  }
}

function describeArray(v, attrs) {
  const name = String(attrs.long_name ?? attrs.standard_name ?? v.name);
  const units = attrs.units ? ` (${attrs.units})` : "";
  const codecs = codecsOf(v);
  return `${name}${units} · ${shapeText(v.shape)} · ${v.dtype}${codecs.length ? ` · ${codecs.join(" + ")}` : ""}`;
}

/** (Re)draw state.grid with the current colour map, range and size; publish window.__zecView. */
function draw() {
  const g = state.grid;
  if (!g) return;
  const L = state.layout;
  const dpr = window.devicePixelRatio || 1;
  let [min, max] = state.lockedRange ?? [g.dataMin, g.dataMax];
  if (min === max) {
    min -= 0.5;
    max += 0.5;
  }
  Object.assign(g, { min, max, cmap: state.cmap, dpr });
  drawHeatmap(els.canvas, g, L, dpr);
  drawColorbar(els.colorbar, L, { min, max, cmap: state.cmap, units: g.units }, dpr);
  placeProbe();
  const where = Object.entries(g.index)
    .map(([d, i]) => `${d} ${g.coords[g.dims.indexOf(d)]?.format?.(g.coords[g.dims.indexOf(d)].values[i], i) ?? i}`)
    .join(", ");
  els.canvas.setAttribute(
    "aria-label",
    `Heatmap of ${g.longName}${where ? ` at ${where}` : ""}: ${g.rows} by ${g.cols} cells, from ${fmtNumber(g.dataMin)} to ${fmtNumber(g.dataMax)} ${g.units}${
      g.masked ? `, ${g.masked} masked` : ""
    }.`,
  );
  publish();
}

function costFields(ledger) {
  const s = ledger.summary();
  return {
    chunks: s.chunks,
    expectedChunks: ledger.expected,
    chunkBytes: s.chunkBytes,
    bytes: s.bytes,
    ms: s.ms,
    requests: ledger.requests.map((r) => ({ key: r.key, kind: r.kind, xcache: r.xcache, status: r.status, bytes: r.bytes, ms: r.ms, serverTiming: r.serverTiming })),
  };
}

function publish() {
  const g = state.grid;
  const L = state.layout;
  const table = lut(g.cmap);
  window.__zecView = {
    state: "ready",
    dataset: g.dataset,
    variable: g.variable,
    dims: g.dims,
    index: { ...g.index },
    selection: g.selection,
    xDim: g.xDim,
    yDim: g.yDim,
    rows: g.rows,
    cols: g.cols,
    flipY: g.flipY,
    min: g.min,
    max: g.max,
    dataMin: g.dataMin,
    dataMax: g.dataMax,
    units: g.units,
    longName: g.longName,
    codecs: g.codecs,
    scale_factor: g.decoder.scale_factor,
    add_offset: g.decoder.add_offset,
    fillValues: g.decoder.fillValues,
    masked: g.masked,
    values: Array.from(g.values, (x) => (Number.isNaN(x) ? null : x)),
    colormap: g.cmap,
    lut: table.map((c) => [...c]),
    maskColors: MASK_COLORS.map((c) => [...c]),
    dpr: g.dpr,
    layout: { ...L },
    xAxis: g.xAxis ? { name: g.xAxis.name, values: Array.from(g.xAxis.values) } : null,
    yAxis: g.yAxis ? { name: g.yAxis.name, values: Array.from(g.yAxis.values) } : null,
    ...costFields(state.ledger),
    /** Centre of cell (r, c) in the canvas's backing-store pixels (for getImageData). */
    cellCenter(r, c) {
      const rect = cellRect(L, g, r, c);
      return { x: Math.floor((rect.x + rect.w / 2) * g.dpr), y: Math.floor((rect.y + rect.h / 2) * g.dpr) };
    },
    valueAt(r, c) {
      const x = g.values[r * g.cols + c];
      return Number.isNaN(x) ? null : x;
    },
    colorOf(value) {
      return [...table[lutIndex(value, g.min, g.max)]];
    },
  };
}

// ---------------------------------------------------------------------------------------------
// value under the cursor / keyboard probe

function placeProbe() {
  const g = state.grid;
  const p = state.probe;
  if (!g || !p) {
    els.probe.hidden = true;
    return;
  }
  const rect = cellRect(state.layout, g, p.r, p.c);
  Object.assign(els.probe.style, {
    left: `${rect.x}px`,
    top: `${rect.y}px`,
    width: `${Math.max(rect.w, 3)}px`,
    height: `${Math.max(rect.h, 3)}px`,
  });
  els.probe.hidden = false;
}

function showProbe(p) {
  state.probe = p;
  placeProbe();
  const g = state.grid;
  if (!g || !p) {
    els.readout.textContent = DEFAULT_README;
    return;
  }
  const parts = [];
  const axisText = (axis, dim, i) => (axis ? `${dim} ${axis.format(axis.values[i], i)}` : `${dim} ${i}`);
  if (g.yDim) parts.push(axisText(g.yAxis, g.yDim, p.r));
  if (g.xDim) parts.push(axisText(g.xAxis, g.xDim, p.c));
  const value = g.values[p.r * g.cols + p.c];
  const valText = Number.isNaN(value) ? "no data (masked)" : `${fmtNumber(value)}${g.units ? ` ${g.units}` : ""}`;
  els.readout.replaceChildren(el("span", { class: "where", text: parts.join(", ") || g.variable }), " → ", el("strong", { text: valText }));
}

els.canvas.addEventListener("pointermove", (e) => {
  if (!state.grid) return;
  const r = els.canvas.getBoundingClientRect();
  showProbe(cellAt(state.layout, state.grid, e.clientX - r.left, e.clientY - r.top));
});
els.canvas.addEventListener("pointerleave", () => {
  if (document.activeElement !== els.canvas) showProbe(null);
});
els.canvas.addEventListener("blur", () => showProbe(null));
els.canvas.addEventListener("focus", () => {
  const g = state.grid;
  if (g && !state.probe) showProbe({ r: Math.floor(g.rows / 2), c: Math.floor(g.cols / 2) });
});
els.canvas.addEventListener("keydown", (e) => {
  const g = state.grid;
  if (!g) return;
  const p = state.probe ?? { r: Math.floor(g.rows / 2), c: Math.floor(g.cols / 2) };
  const step = e.shiftKey ? 10 : 1;
  const up = g.flipY ? 1 : -1; // ArrowUp moves up on screen
  const moves = {
    ArrowLeft: [0, -step],
    ArrowRight: [0, step],
    ArrowUp: [up * step, 0],
    ArrowDown: [-up * step, 0],
    Home: [0, -g.cols],
    End: [0, g.cols],
  };
  const m = moves[e.key];
  if (!m) {
    if (e.key === "Escape") showProbe(null);
    return;
  }
  e.preventDefault();
  showProbe({ r: Math.max(0, Math.min(g.rows - 1, p.r + m[0])), c: Math.max(0, Math.min(g.cols - 1, p.c + m[1])) });
});

// ---------------------------------------------------------------------------------------------
// cost panel

function renderCost(ledger) {
  if (ledger !== state.ledger) return;
  const s = ledger.summary();
  const done = ledger.finished !== null;
  $("c-total").textContent = done ? String(s.chunks.total) : `${s.chunks.total} / ${ledger.expected}`;
  for (const k of CACHE_KINDS) $(`c-${k}`).textContent = String(s.chunks[k]);
  $("c-bytes").textContent = fmtBytes(s.chunkBytes);
  $("c-ms").textContent = done ? fmtMs(s.ms) : "…";
  $("c-req").textContent = String(s.requests);
  const others = ledger.requests.filter((r) => r.kind !== "chunk");
  const otherBytes = others.reduce((a, r) => a + r.bytes, 0);
  const kinds = [...new Set(others.map((r) => (r.kind === "metadata" ? "metadata" : "coordinates")))].join(" and ");
  els.costExtra.textContent = others.length
    ? `Plus ${others.length} request${others.length === 1 ? "" : "s"} for ${kinds}: ${fmtBytes(otherBytes)} (${fmtBytes(s.bytes)} in all).`
    : done
      ? "Metadata and coordinates were already loaded: only the variable's chunks were fetched."
      : "\u00a0";
  els.reqRows.replaceChildren(
    ...ledger.requests.map((r) =>
      el(
        "tr",
        { class: r.kind },
        el("td", {}, el("code", { text: r.key })),
        el("td", {}, el("span", { class: `xc xc-${r.xcache}`, text: r.xcache })),
        el("td", { class: "num", text: String(r.bytes) }),
        el("td", { class: "num", text: r.ms.toFixed(1) }),
        el("td", { class: "st", text: r.serverTiming.replace(/;dur=/g, " ").replace(/,\s*/g, " · ") }),
      ),
    ),
  );
}

els.refetch.addEventListener("click", () => showView());

// ---------------------------------------------------------------------------------------------
// /api/stats

let statsTimer = 0;
let statsLoaded = false;

function scheduleStats() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(loadStats, 500);
}

// "12 / 340 KiB of 1 MiB" (or "… unbounded"): what the dataset keeps stored against its capacity
function storedText(d) {
  const capacity = typeof d.capacity_bytes === "number" ? fmtBytes(d.capacity_bytes) : "unbounded";
  return `${d.entries ?? "—"} / ${fmtBytes(Number(d.bytes_stored ?? NaN))} of ${capacity}`;
}

// "12 / 80 ms": nearest-rank percentiles of the cached keys' origin fetch times
function fetchText(d) {
  const ms = (v) => (typeof v === "number" ? `${v}` : "—");
  return d.fetch_ms_p50 == null ? "—" : `${ms(d.fetch_ms_p50)} / ${ms(d.fetch_ms_p95)} ms`;
}

async function loadStats() {
  clearTimeout(statsTimer);
  els.statsRefresh.disabled = true;
  try {
    const body = await getJson("api/stats");
    const rows = body.datasets ?? [];
    els.statsRows.replaceChildren(
      ...rows.map((d) => {
        const hits = Number(d.hits ?? 0);
        const misses = Number(d.misses ?? 0);
        const ratio = typeof d.hit_ratio === "number" ? d.hit_ratio : hits + misses ? hits / (hits + misses) : null;
        return el(
          "tr",
          {},
          el("th", { scope: "row", text: d.id }),
          el("td", { class: "num", text: String(hits) }),
          el("td", { class: "num", text: String(misses) }),
          el(
            "td",
            { class: "ratio" },
            ratio === null
              ? "—"
              : [el("meter", { min: "0", max: "1", value: String(ratio), "aria-label": `hit ratio of ${d.id}` }), ` ${Math.round(ratio * 100)}%`],
          ),
          el("td", { class: "num", text: fmtBytes(Number(d.bytes_from_cache ?? NaN)) }),
          el("td", { class: "num", text: fmtBytes(Number(d.bytes_from_origin ?? NaN)) }),
          el("td", { class: "num", text: storedText(d) }),
          el("td", { text: d.eviction ?? "—" }),
          el("td", { class: "num", text: fetchText(d) }),
        );
      }),
    );
    els.statsTable.hidden = rows.length === 0;
    els.statsStatus.classList.remove("error");
    els.statsStatus.textContent = rows.length ? `Updated ${new Date().toLocaleTimeString()}.` : "No statistics yet.";
    statsLoaded = true;
  } catch (err) {
    els.statsStatus.classList.add("error");
    const why = err.status ? `/api/stats answered ${errorText(err)}` : `/api/stats could not be reached (${errorText(err)})`;
    els.statsStatus.textContent = `${statsLoaded ? "Refresh failed" : "Statistics unavailable"}: ${why}.`;
  } finally {
    els.statsRefresh.disabled = false;
  }
}

els.statsRefresh.addEventListener("click", loadStats);

// ---------------------------------------------------------------------------------------------
// controls, resize, start

for (const [name, cm] of Object.entries(COLORMAPS)) els.cmap.append(el("option", { value: name, text: cm.label }));
els.cmap.value = state.cmap;
els.cmap.addEventListener("change", () => {
  state.cmap = els.cmap.value;
  draw();
});
els.decoded.addEventListener("change", () => {
  state.decoded = els.decoded.checked;
  writeHash();
  if (state.variable) openVariable(state.variable, { indices: state.indices, scroll: false });
});
els.lock.addEventListener("change", () => {
  const g = state.grid;
  state.lockedRange = els.lock.checked && g ? [g.min, g.max] : null;
  draw();
});

let lastWidth = 0;
new ResizeObserver(() => {
  const w = els.wrap.clientWidth;
  if (w === lastWidth) return;
  lastWidth = w;
  sizePlot();
  if (state.grid) draw();
  else if (state.variable) clearPlot();
}).observe(els.wrap);

window.addEventListener("hashchange", () => {
  const h = readHash();
  const ds = state.datasets.find((d) => d.id === h.ds);
  if (!ds) return;
  const viewChanged = state.decoded !== h.decoded;
  state.decoded = h.decoded;
  if (state.ds?.id !== ds.id) openDataset(ds, { focus: false });
  else syncDecoded();
  const v = ds.variables?.find((x) => x.name === h.variable);
  if (v && (viewChanged || state.variable?.name !== v.name || JSON.stringify(h.indices) !== JSON.stringify(state.indices))) openVariable(v, { indices: h.indices, scroll: false });
});

setMessage("Choose a dataset, then a variable.");
loadDatasets();
loadStats();
