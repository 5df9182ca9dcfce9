// The worker's entry module (wrangler.toml `main`, copied to build/ by scripts/build-worker): the
// handlers of worker-build's module (build/index.js) called as plain functions.
//
// worker-build's default export is its Entrypoint class behind a Proxy that, on every request,
// constructs the class, wraps the instance in a second Proxy and each method it hands out in a
// third, with an `async apply` (one more promise and tick): ~20 µs of the isolate's CPU per
// request in workerd (bench/README.md, "CPU per warm hit"), a tenth of a warm hit's own. What the
// wrapper is for stays: a wasm abort still re-instantiates the module on the next call
// (wasm-bindgen's abort handler, which the worker crate sets to schedule a reinit: the glue
// checks it on every call into wasm), and the module's `error` listener still runs.
import Worker from "./index.js";

// The class proxy traps only `construct`: its prototype is the class's own, whose methods call
// the wasm exports with `this.env` and `this.ctx`.
const { fetch, scheduled } = Worker.prototype;
if (typeof fetch !== "function" || typeof scheduled !== "function") {
  throw new Error("build/index.js: worker-build's Entrypoint has no fetch/scheduled handler (a worker-build change?)");
}

export default {
  fetch(request, env, ctx) {
    return fetch.call({ env, ctx }, request);
  },
  scheduled(event, env, ctx) {
    return scheduled.call({ env, ctx }, event);
  },
};
