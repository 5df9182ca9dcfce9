// CF conventions for the values the page shows: packing (scale_factor, add_offset), missing data
// (_FillValue, missing_value, the Zarr fill_value, valid_min/valid_max/valid_range) and time units.

function asList(v) {
  if (v === undefined || v === null) return [];
  return Array.isArray(v) ? v : [v];
}

function asNumber(v) {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  if (typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v))) return Number(v);
  return undefined;
}

/**
 * How to turn the stored values of one array into physical values.
 * `dtype` is the Zarr v2 dtype string ("<f4", ">i2", ...) or the v3 data type ("float32", ...),
 * `fillValue` the array's fill_value.
 */
export function cfDecoder(attrs, fillValue, dtype) {
  const f32 = /f4$|^float32$/.test(dtype);
  const norm = (v) => (f32 ? Math.fround(v) : v);
  const scale = asNumber(attrs.scale_factor);
  const offset = asNumber(attrs.add_offset);
  const fills = [];
  let maskNaN = false;
  for (const v of [...asList(attrs._FillValue), ...asList(attrs.missing_value), fillValue]) {
    const n = asNumber(v);
    if (n === undefined) continue;
    if (Number.isNaN(n)) maskNaN = true;
    else if (!fills.includes(norm(n))) fills.push(norm(n));
  }
  if (/f[248]$|^float(16|32|64)$/.test(dtype)) maskNaN = true;
  let validMin = asNumber(attrs.valid_min);
  let validMax = asNumber(attrs.valid_max);
  const range = asList(attrs.valid_range).map(asNumber);
  if (range.length === 2 && range.every((x) => x !== undefined)) [validMin, validMax] = range;
  const s = scale ?? 1;
  const o = offset ?? 0;
  const packed = scale !== undefined || offset !== undefined;
  return {
    scale_factor: scale ?? null,
    add_offset: offset ?? null,
    fillValues: fills,
    validMin: validMin ?? null,
    validMax: validMax ?? null,
    /** Stored values (any typed array) -> Float64Array of physical values, NaN where masked. */
    decode(raw) {
      const out = new Float64Array(raw.length);
      let masked = 0;
      const fillSet = new Set(fills);
      for (let i = 0; i < raw.length; i++) {
        let v = raw[i];
        if (typeof v !== "number") v = Number(v);
        if (
          (maskNaN && Number.isNaN(v)) ||
          fillSet.has(v) ||
          (validMin !== undefined && v < validMin) ||
          (validMax !== undefined && v > validMax)
        ) {
          out[i] = NaN;
          masked++;
          continue;
        }
        out[i] = packed ? v * s + o : v;
      }
      return { values: out, masked };
    },
  };
}

const UNIT_MS = {
  millisecond: 1,
  milliseconds: 1,
  ms: 1,
  second: 1e3,
  seconds: 1e3,
  sec: 1e3,
  secs: 1e3,
  s: 1e3,
  minute: 6e4,
  minutes: 6e4,
  min: 6e4,
  mins: 6e4,
  hour: 36e5,
  hours: 36e5,
  hr: 36e5,
  hrs: 36e5,
  h: 36e5,
  day: 864e5,
  days: 864e5,
  d: 864e5,
};

/** `units: "hours since 2020-01-01 00:00:00"` (standard calendars only) -> value => Date, or null. */
export function cfTimeParser(attrs) {
  const units = typeof attrs?.units === "string" ? attrs.units.trim() : "";
  const m = units.match(/^(\w+)\s+since\s+(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?\s*(Z|UTC|[+-]\d{1,2}(?::?\d{2})?)?$/i);
  if (!m) return null;
  const calendar = String(attrs.calendar ?? "standard").toLowerCase();
  if (!["standard", "gregorian", "proleptic_gregorian"].includes(calendar)) return null;
  const unit = UNIT_MS[m[1].toLowerCase()];
  if (!unit) return null;
  let epoch = Date.UTC(+m[2], +m[3] - 1, +m[4], +(m[5] ?? 0), +(m[6] ?? 0), 0, 0);
  epoch += Math.round(parseFloat(m[7] ?? "0") * 1000);
  const tz = m[8] && !/^(Z|UTC)$/i.test(m[8]) ? m[8] : null;
  if (tz) {
    const t = tz.match(/^([+-])(\d{1,2}):?(\d{2})?$/);
    if (t) epoch -= (t[1] === "-" ? -1 : 1) * ((+t[2]) * 60 + +(t[3] ?? 0)) * 6e4;
  }
  return (v) => new Date(epoch + v * unit);
}

/** Dates as "2020-01-01 06:00", or "2020-01-01" when every date of the axis is at midnight. */
export function dateFormatter(dates) {
  const midnight = dates.every((d) => d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0);
  return (d) => {
    const iso = d.toISOString();
    return midnight ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)}`;
  };
}

const numberFmt = new Intl.NumberFormat("en", { maximumSignificantDigits: 5 });

/** A compact number for labels and readouts. */
export function fmtNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return numberFmt.format(v);
}

/** Coordinate values with their units, e.g. "45°N", "120°W", "2020-01-01 06:00", "850 hPa". */
export function coordFormatter(coord) {
  if (!coord || !coord.values) return (i) => `${i}`;
  const attrs = coord.attrs ?? {};
  const units = String(attrs.units ?? "");
  const std = String(attrs.standard_name ?? "");
  if (coord.dates) {
    const f = dateFormatter(coord.dates);
    return (_v, i) => f(coord.dates[i]);
  }
  const isLat = std === "latitude" || /^degrees?_?n(orth)?$/i.test(units) || attrs.axis === "Y" && /degree/i.test(units);
  const isLon = std === "longitude" || /^degrees?_?e(ast)?$/i.test(units) || attrs.axis === "X" && /degree/i.test(units);
  if (isLat) {
    return (v) => (v === 0 ? "0°" : `${fmtNumber(Math.abs(v))}°${v > 0 ? "N" : "S"}`);
  }
  if (isLon) {
    return (v) => {
      let w = ((((v + 180) % 360) + 360) % 360) - 180;
      if (Math.abs(w) < 1e-9) w = 0;
      if (w === 0 || Math.abs(w) === 180) return `${fmtNumber(Math.abs(w))}°`;
      return `${fmtNumber(Math.abs(w))}°${w > 0 ? "E" : "W"}`;
    };
  }
  const u = units && units !== "1" ? ` ${units}` : "";
  return (v) => `${fmtNumber(v)}${u}`;
}
