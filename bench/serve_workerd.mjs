// The built worker in workerd as production runs it: through Miniflare's API, with no wrangler
// dev proxy, ProxyWorker or inspector in front of it (see bench/README.md, "Runtimes").
//
//   node bench/serve_workerd.mjs CONFIG.json
//
// CONFIG (written by bench/run from wrangler.toml and the worker's vars file):
//   {"script": ".../build/entry.mjs", "compatibility_date": "...", "port": N,
//    "bindings": {NAME: "text"}, "r2_buckets": {BINDING: "bucket"}, "persist_to": "...",
//    "inspector_port": N (optional)}
// `persist_to` is the directory given to `wrangler dev --persist-to`: local R2 (and the Cache
// API's store) is shared with the wrangler dev workers of the same run. `inspector_port` opens
// workerd's own inspector there (no proxy in front of it: `http://127.0.0.1:N/json` lists the
// worker's websocket): bench/run starts a second, profiling instance with it, read only by the
// CPU-per-hit passes, so the instance of the throughput passes has no inspector at all.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Miniflare, Log, LogLevel } from "miniflare";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const script = path.resolve(config.script);
const mf = new Miniflare({
  host: "127.0.0.1",
  port: config.port,
  log: new Log(LogLevel.WARN),
  // No request.cf from the network (this machine has none): a fixed placeholder.
  cf: false,
  modules: true,
  scriptPath: script,
  modulesRoot: path.dirname(script),
  // worker-build writes ES modules as .js (the entry imports build/index.js).
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: config.compatibility_date,
  bindings: config.bindings,
  r2Buckets: config.r2_buckets,
  // wrangler keeps each simulator's state under <persist-to>/v3/<kind>.
  r2Persist: path.join(config.persist_to, "v3", "r2"),
  // The Cache API's store: the workers' shared one, or one of the instance's own (`cache_persist`:
  // the runtime floor's, so its puts never contend with the others' for the same SQLite file).
  cachePersist: config.cache_persist ?? path.join(config.persist_to, "v3", "cache"),
  ...(config.inspector_port ? { inspectorPort: config.inspector_port } : {}),
});
const url = await mf.ready;
console.log(`workerd (Miniflare API, no dev proxy) ready at ${url}` +
  (config.inspector_port ? `, inspector on :${config.inspector_port}` : ""));
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
