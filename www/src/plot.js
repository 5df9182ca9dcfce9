// Canvas drawing: the heatmap with its axes, and the colour bar.

import { lut, lutIndex, MASK_COLORS } from "./colormap.js";
import { fmtNumber } from "./cf.js";

export const MARGIN = { left: 58, right: 16, top: 10, bottom: 30 };
export const COLORBAR_HEIGHT = 44;

/**
 * Where the plot goes in a canvas `width` CSS pixels wide, for a slice of rows x cols cells.
 * Depends on the slice's shape only (known from the metadata before any chunk arrives), so the
 * page can size the canvas before loading and nothing moves when the data comes in.
 */
export function plotLayout(width, rows, cols) {
  const W = Math.max(240, Math.floor(width));
  const left = W < 520 ? 46 : MARGIN.left;
  const right = W < 520 ? 10 : MARGIN.right;
  const w = W - left - right;
  const natural = Math.round((w * rows) / Math.max(cols, 1));
  const h = Math.max(rows <= 1 ? 36 : 96, Math.min(natural, Math.round(w * 1.1), 640));
  return { W, H: h + MARGIN.top + MARGIN.bottom, x: left, y: MARGIN.top, w, h };
}

/** Cell (row r, column c of the slice) -> its rectangle in CSS pixels. */
export function cellRect(layout, g, r, c) {
  const cw = layout.w / g.cols;
  const ch = layout.h / g.rows;
  const dr = g.flipY ? g.rows - 1 - r : r;
  return { x: layout.x + c * cw, y: layout.y + dr * ch, w: cw, h: ch };
}

/** CSS pixel position -> the cell under it, or null outside the plot. */
export function cellAt(layout, g, px, py) {
  const fx = (px - layout.x) / layout.w;
  const fy = (py - layout.y) / layout.h;
  if (fx < 0 || fx >= 1 || fy < 0 || fy >= 1) return null;
  const c = Math.min(g.cols - 1, Math.floor(fx * g.cols));
  const dr = Math.min(g.rows - 1, Math.floor(fy * g.rows));
  return { r: g.flipY ? g.rows - 1 - dr : dr, c };
}

function textColor(canvas) {
  return getComputedStyle(canvas).color || "#222";
}

const FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/** The slice as a cols x rows image: one pixel per cell, masked cells transparent. */
function cellImage(g) {
  const table = lut(g.cmap);
  const canvas = document.createElement("canvas");
  canvas.width = g.cols;
  canvas.height = g.rows;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(g.cols, g.rows);
  const px = img.data;
  for (let i = 0; i < g.values.length; i++) {
    const v = g.values[i];
    if (Number.isNaN(v)) continue; // alpha stays 0
    const rgb = table[lutIndex(v, g.min, g.max)];
    px[i * 4] = rgb[0];
    px[i * 4 + 1] = rgb[1];
    px[i * 4 + 2] = rgb[2];
    px[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function rgb(c) {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

function hatch(ctx, { x, y, w, h }) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip();
  ctx.fillStyle = rgb(MASK_COLORS[0]);
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = rgb(MASK_COLORS[1]);
  ctx.lineWidth = 2.5;
  ctx.beginPath();
  for (let d = -h; d < w; d += 7) {
    ctx.moveTo(x + d, y + h);
    ctx.lineTo(x + d + h, y);
  }
  ctx.stroke();
  ctx.restore();
}

/** About `count` round numbers between lo and hi. `steps` (optional) lists the allowed steps. */
export function niceTicks(lo, hi, count, steps) {
  if (!(hi > lo) || !Number.isFinite(lo) || !Number.isFinite(hi)) return Number.isFinite(lo) ? [lo] : [];
  const raw = (hi - lo) / Math.max(1, count);
  let step;
  if (steps) {
    // the allowed step nearest to the ideal one (on a log scale)
    step = steps.reduce((best, s) => (Math.abs(Math.log(s / raw)) < Math.abs(Math.log(best / raw)) ? s : best));
  } else {
    const mag = 10 ** Math.floor(Math.log10(raw));
    const e = raw / mag;
    step = (e >= 7.5 ? 10 : e >= 3.5 ? 5 : e >= 1.5 ? 2 : 1) * mag;
  }
  const out = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

const DEGREE_STEPS = [1, 2, 5, 10, 15, 20, 30, 45, 60, 90];

/**
 * Tick positions along an axis of n cells as [{f, label}], f = fractional cell index (cell centres
 * are at integers). Uses round coordinate values when the coordinate is numeric and monotonic.
 */
function axisTicks(axis, n, lengthPx, spacingPx) {
  const count = Math.max(1, Math.floor(lengthPx / spacingPx));
  const c = axis?.values;
  const fmt = axis?.format ?? ((v, i) => `${i}`);
  const monotonic =
    c && c.length === n && n >= 2 && !axis.dates &&
    Array.from(c).every((v, i) => i === 0 || (c[n - 1] > c[0] ? v > c[i - 1] : v < c[i - 1]));
  if (!monotonic) {
    const idx = niceTicks(0, n - 1, count).filter((i) => Number.isInteger(i));
    return idx.map((i) => ({ f: i, label: c ? fmt(c[i], i) : `${i}` }));
  }
  const asc = c[n - 1] > c[0];
  const lo = asc ? c[0] : c[n - 1];
  const hi = asc ? c[n - 1] : c[0];
  const ticks = niceTicks(lo, hi, count, axis.degrees ? DEGREE_STEPS : undefined);
  return ticks.map((t) => {
    // fractional index by linear interpolation between neighbouring coordinates
    let i = 0;
    while (i < n - 2 && (asc ? c[i + 1] < t : c[i + 1] > t)) i++;
    const f = i + (t - c[i]) / (c[i + 1] - c[i]);
    return { f, label: fmt(t, Math.round(f)) };
  });
}

/**
 * Draw the heatmap. `g` = {rows, cols, values (Float64Array, NaN = masked), flipY, min, max, cmap,
 * xAxis, yAxis ({values, format, dates, degrees} or null)}.
 */
export function drawHeatmap(canvas, g, layout, dpr) {
  canvas.width = Math.round(layout.W * dpr);
  canvas.height = Math.round(layout.H * dpr);
  canvas.style.width = `${layout.W}px`;
  canvas.style.height = `${layout.H}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, layout.W, layout.H);
  const { x, y, w, h } = layout;
  hatch(ctx, layout);
  ctx.imageSmoothingEnabled = false;
  const img = cellImage(g);
  if (g.flipY) {
    ctx.save();
    ctx.translate(x, y + h);
    ctx.scale(1, -1);
    ctx.drawImage(img, 0, 0, w, h);
    ctx.restore();
  } else {
    ctx.drawImage(img, x, y, w, h);
  }
  const ink = textColor(canvas);
  ctx.strokeStyle = ink;
  ctx.lineWidth = 1;
  ctx.strokeRect(x - 0.5, y - 0.5, w + 1, h + 1);

  ctx.font = FONT;
  ctx.fillStyle = ink;
  // x axis
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  let lastRight = -Infinity;
  for (const t of axisTicks(g.xAxis, g.cols, w, 80)) {
    const tx = x + ((t.f + 0.5) / g.cols) * w;
    if (tx < x - 0.5 || tx > x + w + 0.5) continue;
    ctx.fillRect(Math.round(tx) - 0.5, y + h, 1, 4);
    const tw = ctx.measureText(t.label).width;
    if (tx - tw / 2 < lastRight + 6 || tx + tw / 2 > layout.W) continue;
    ctx.fillText(t.label, tx, y + h + 6);
    lastRight = tx + tw / 2;
  }
  // y axis
  if (g.rows > 1) {
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    let lastY = Infinity;
    for (const t of axisTicks(g.yAxis, g.rows, h, 44)) {
      const fr = g.flipY ? g.rows - 1 - t.f : t.f;
      const ty = y + ((fr + 0.5) / g.rows) * h;
      if (ty < y - 0.5 || ty > y + h + 0.5) continue;
      ctx.fillRect(x - 4, Math.round(ty) - 0.5, 4, 1);
      if (Math.abs(ty - lastY) < 16) continue;
      ctx.fillText(t.label, x - 7, ty);
      lastY = ty;
    }
  }
}

/** The horizontal colour bar under the plot, aligned with it, with ticks and the units. */
export function drawColorbar(canvas, layout, { min, max, cmap, units }, dpr) {
  const W = layout.W;
  const H = COLORBAR_HEIGHT;
  canvas.width = Math.round(W * dpr);
  canvas.height = Math.round(H * dpr);
  canvas.style.width = `${W}px`;
  canvas.style.height = `${H}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const table = lut(cmap);
  const bx = Math.round(layout.x * dpr);
  const bw = Math.round(layout.w * dpr);
  const by = Math.round(4 * dpr);
  const bh = Math.round(14 * dpr);
  const img = ctx.createImageData(bw, bh);
  for (let i = 0; i < bw; i++) {
    const c = table[Math.round((i / Math.max(1, bw - 1)) * (table.length - 1))];
    for (let j = 0; j < bh; j++) {
      const o = (j * bw + i) * 4;
      img.data[o] = c[0];
      img.data[o + 1] = c[1];
      img.data[o + 2] = c[2];
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, bx, by);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const ink = textColor(canvas);
  ctx.strokeStyle = ink;
  ctx.strokeRect(layout.x - 0.5, 3.5, layout.w + 1, 15);
  ctx.fillStyle = ink;
  ctx.font = FONT;
  ctx.textBaseline = "top";
  ctx.textAlign = "center";
  if (Number.isFinite(min) && Number.isFinite(max)) {
    let lastRight = -Infinity;
    const ticks = max > min ? niceTicks(min, max, Math.max(2, Math.floor(layout.w / 90))) : [min];
    for (const t of ticks) {
      const tx = layout.x + (max > min ? ((t - min) / (max - min)) * layout.w : layout.w / 2);
      ctx.fillRect(Math.round(tx) - 0.5, 18, 1, 4);
      const label = fmtNumber(t);
      const tw = ctx.measureText(label).width;
      if (tx - tw / 2 < lastRight + 8) continue;
      ctx.fillText(label, tx, 24);
      lastRight = tx + tw / 2;
    }
  }
  if (units) {
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(units.length > 8 ? `${units.slice(0, 7)}…` : units, layout.x - 7, 11);
  }
}
