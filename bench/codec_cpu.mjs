// The codec CPU benchmark's runner (bench/codec-cpu runs it): decodes each input chunk with the
// worker's codecs compiled to wasm, in Node's V8 (the engine workerd runs), and reports the CPU
// per decode and per MB of decoded output against the Free plan's 10 ms of CPU per request.
//
//   node bench/codec_cpu.mjs INPUT_DIR WASM_JS OUT_PREFIX
//
// INPUT_DIR: bench/codec_inputs.py's output; WASM_JS: wasm-bindgen's nodejs glue of the
// codec_cpu example. Writes OUT_PREFIX.md and OUT_PREFIX.json.

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [inputDir, wasmJs, outPrefix] = process.argv.slice(2);
if (!outPrefix) {
  console.error("usage: node bench/codec_cpu.mjs INPUT_DIR WASM_JS OUT_PREFIX");
  process.exit(2);
}
const { decode_chunk: decodeChunk } = createRequire(import.meta.url)(resolve(wasmJs));
const cases = JSON.parse(readFileSync(join(inputDir, "cases.json"), "utf8"));
const FREE_PLAN_CPU_MS = 10;
const cpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

const rows = [];
for (const [name, c] of Object.entries(cases)) {
  const chunk = new Uint8Array(readFileSync(join(inputDir, c.file)));
  const zarray = JSON.stringify(c.zarray);
  const n = decodeChunk(zarray, chunk); // a first call compiles the code paths (Liftoff, then TurboFan)
  if (n !== c.decoded_bytes) throw new Error(`${name}: decoded ${n} bytes, expected ${c.decoded_bytes}`);
  for (let i = 0; i < 3; i++) decodeChunk(zarray, chunk);
  // At least 1 s of CPU and 10 decodes.
  const samples = [];
  const start = cpuMs();
  while (samples.length < 10 || cpuMs() - start < 1000) {
    const t = cpuMs();
    decodeChunk(zarray, chunk);
    samples.push(cpuMs() - t);
  }
  samples.sort((a, b) => a - b);
  const median = samples[Math.floor(samples.length / 2)];
  const decodedMb = c.decoded_bytes / 1e6;
  const perMb = median / decodedMb;
  rows.push({
    codec: name, encoded_bytes: c.encoded_bytes, decoded_bytes: c.decoded_bytes, decodes: samples.length,
    cpu_ms_per_chunk: median, cpu_ms_per_mb: perMb, mb_within_10ms: FREE_PLAN_CPU_MS / perMb,
  });
  console.error(`  ${name}: ${median.toFixed(2)} ms per ${decodedMb.toFixed(2)} MB chunk, ${perMb.toFixed(2)} ms/MB (${samples.length} decodes)`);
}

const fmt = (x, d = 2) => x.toFixed(d);
const lines = [
  "# Codec CPU: the decoded view's decode, per codec",
  "",
  `Node ${process.version} (V8 ${process.versions.v8}), the worker's codecs built for wasm32 (release, as the worker).`,
  "CPU per decode is the median over at least 1 s of CPU after warm-up (process.cpuUsage); the Free plan allows 10 ms of CPU per request.",
  "",
  "| codec chain | encoded | decoded | CPU per chunk | CPU per MB decoded | MB decoded within 10 ms | this chunk within 10 ms |",
  "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
  ...rows.map((r) => `| ${r.codec} | ${(r.encoded_bytes / 1e6).toFixed(2)} MB | ${(r.decoded_bytes / 1e6).toFixed(2)} MB | ${fmt(r.cpu_ms_per_chunk)} ms | ${fmt(r.cpu_ms_per_mb)} ms | ${fmt(r.mb_within_10ms, 1)} | ${r.cpu_ms_per_chunk <= FREE_PLAN_CPU_MS ? "yes" : "**no**"} |`),
  "",
];
writeFileSync(`${outPrefix}.md`, lines.join("\n"));
writeFileSync(`${outPrefix}.json`, JSON.stringify({ node: process.version, v8: process.versions.v8, rows }, null, 1) + "\n");
console.log(lines.join("\n"));
