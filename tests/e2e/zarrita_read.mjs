// Reads a whole Zarr store over HTTP with zarrita (the JS reader of the www page) and prints one
// JSON document, for tests/e2e/test_zarr_http.py to compare between URLs and with zarr-python:
//   node tests/e2e/zarrita_read.mjs URL v2|v3
// {"attributes": {...root...}, "arrays": {"/name": {shape, chunks, dtype, attributes, values}},
//  "requests": [[key, status], ...]}. values is the array flattened in C order; NaN is null and
// 64-bit integers become Numbers (exact for the demo's values), so the JSON is plain.
import * as zarr from "zarrita";

const [url, format] = process.argv.slice(2);
if (!url || !["v2", "v3"].includes(format)) {
  console.error("usage: node tests/e2e/zarrita_read.mjs URL v2|v3");
  process.exit(2);
}
// Every request and its status: absent chunks must have been a 404 (read as the fill value).
const requests = [];
const recording = async (request) => {
  const response = await fetch(request);
  requests.push([new URL(request.url).pathname.slice(new URL(url).pathname.length), response.status]);
  return response;
};
const store = await zarr.withConsolidatedMetadata(new zarr.FetchStore(url, { fetch: recording }), { format });
// Pinned to the store's format: no requests for the other format's metadata keys.
const open = format === "v3" ? zarr.open.v3 : zarr.open.v2;
const root = await open(store, { kind: "group" });
const plain = (v) => (typeof v === "bigint" ? Number(v) : Number.isNaN(v) ? null : v);
const arrays = {};
for (const { path, kind } of store.contents().sort((a, b) => a.path.localeCompare(b.path))) {
  if (kind !== "array") continue;
  const arr = await open(root.resolve(path), { kind: "array" });
  const chunk = await zarr.get(arr);
  // A 0-d array reads as a scalar, an n-d one as {data, shape, stride}.
  const data = chunk !== null && typeof chunk === "object" && "data" in chunk ? Array.from(chunk.data, plain) : [plain(chunk)];
  arrays[path] = { shape: arr.shape, chunks: arr.chunks, dtype: arr.dtype, attributes: arr.attrs, values: data };
}
console.log(JSON.stringify({ attributes: root.attrs, arrays, requests }));
