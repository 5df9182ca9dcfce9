// Colour maps as 256-entry lookup tables, and the value -> colour rule the heatmap uses.

export const COLORMAPS = {
  viridis: {
    label: "Viridis",
    stops: ["#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c", "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"],
  },
  rdylbu: {
    label: "Red–yellow–blue (diverging)",
    stops: ["#313695", "#4575b4", "#74add1", "#abd9e9", "#e0f3f8", "#ffffbf", "#fee090", "#fdae61", "#f46d43", "#d73027", "#a50026"],
  },
  greys: {
    label: "Greys",
    stops: ["#141414", "#f5f5f5"],
  },
};

export const LUT_SIZE = 256;

/** Masked cells are left transparent over a hatch of these two colours (RGB). */
export const MASK_COLORS = [
  [196, 199, 204],
  [150, 154, 160],
];

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

const cache = new Map();

/** The colour map as [[r, g, b], ...] with {@link LUT_SIZE} entries. */
export function lut(name) {
  if (cache.has(name)) return cache.get(name);
  const stops = (COLORMAPS[name] ?? COLORMAPS.viridis).stops.map(hexToRgb);
  const out = [];
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = (i / (LUT_SIZE - 1)) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    const a = stops[k];
    const b = stops[k + 1];
    out.push([0, 1, 2].map((j) => Math.round(a[j] + (b[j] - a[j]) * f)));
  }
  cache.set(name, out);
  return out;
}

/** Index into the LUT for value `v` on the colour scale [min, max] (values outside are clamped). */
export function lutIndex(v, min, max) {
  const t = max > min ? (v - min) / (max - min) : 0.5;
  return Math.max(0, Math.min(LUT_SIZE - 1, Math.round(t * (LUT_SIZE - 1))));
}
