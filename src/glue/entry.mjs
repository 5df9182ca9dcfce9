// The worker's entry module (wrangler.toml `main`, copied to build/ by scripts/build-worker): the
// handlers of worker-build's module (build/index.js) called as plain functions, and the edge
// tier's lookup.
//
// worker-build's default export is its Entrypoint class behind a Proxy that, on every request,
// constructs the class, wraps the instance in a second Proxy and each method it hands out in a
// third, with an `async apply` (one more promise and tick): ~20 µs of the isolate's CPU per
// request in workerd (bench/README.md, "CPU per warm hit"), a tenth of a warm hit's own. What the
// wrapper is for stays: a wasm abort still re-instantiates the module on the next call
// (wasm-bindgen's abort handler, which the worker crate sets to schedule a reinit: the glue
// checks it on every call into wasm, `edgeTier` too), and the module's `error` listener still
// runs.
import Worker from "./index.js";

// The class proxy traps only `construct`: its prototype is the class's own, whose methods call
// the wasm exports with `this.env` and `this.ctx`; worker-build puts the crate's other exported
// functions there too (`edgeTier`, which takes its arguments only).
const { fetch, scheduled, edgeTier } = Worker.prototype;
if (typeof fetch !== "function" || typeof scheduled !== "function" || typeof edgeTier !== "function") {
  throw new Error(
    "build/index.js: no fetch, scheduled or edgeTier on worker-build's Entrypoint (a worker-build change?)",
  );
}

function handle(request, env, ctx) {
  return fetch.call({ env, ctx }, request);
}

export default {
  // The edge tier: the worker decides which requests the data centre's cache may answer
  // (`edgeTier`, synchronous: a GET of a Zarr key of a dataset with edge_ttl_seconds > 0) and
  // puts full answers there; a hit is answered here as stored (`X-Cache: EDGE`), without the
  // fetch handler's future. A miss, or a cache that fails, goes to the handler.
  fetch(request, env, ctx) {
    if (!edgeTier(request.method, request.url, env)) return handle(request, env, ctx);
    return caches.default.match(request).then(
      (hit) => hit ?? handle(request, env, ctx),
      () => handle(request, env, ctx),
    );
  },
  scheduled(event, env, ctx) {
    return scheduled.call({ env, ctx }, event);
  },
};
