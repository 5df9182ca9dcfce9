#!/usr/bin/env node
// Builds the explorer page: www/src/ -> www/dist/ (served by the worker as static assets).
//
//   node www/build.mjs          minified build with source maps
//   node www/build.mjs --dev    unminified
//
// Idempotent: it builds into a fresh temporary directory, then moves each file into www/dist/ (an
// atomic rename per file) and deletes whatever the build no longer produces. www/dist/ itself is
// kept, so `wrangler dev` (which watches it as the assets directory) and static servers keep working.
// Everything (zarrita, numcodecs and its WebAssembly codecs) is bundled: the page needs no CDN.

import { cp, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, "src");
const dist = join(here, "dist");
const tmp = join(here, `dist.tmp-${process.pid}`);
const dev = process.argv.includes("--dev");

await rm(tmp, { recursive: true, force: true });
await mkdir(tmp, { recursive: true });
try {
  const result = await esbuild.build({
    absWorkingDir: here,
    entryPoints: { app: join(src, "main.js"), styles: join(src, "styles.css") },
    outdir: tmp,
    bundle: true,
    format: "esm",
    // numcodecs' Blosc/LZ4/Zstd (WebAssembly, ~0.6 MB each) become chunks loaded only when an
    // array needs them.
    splitting: true,
    entryNames: "[name]",
    chunkNames: "chunks/[name]-[hash]",
    target: ["es2022", "chrome109", "firefox115", "safari16"],
    platform: "browser",
    minify: !dev,
    sourcemap: "linked",
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  });
  await cp(join(src, "index.html"), join(tmp, "index.html"));

  const built = await listFiles(tmp);
  await mkdir(dist, { recursive: true });
  for (const name of built) {
    await mkdir(dirname(join(dist, name)), { recursive: true });
    await rename(join(tmp, name), join(dist, name));
  }
  const keep = new Set(built);
  for (const name of await listFiles(dist)) if (!keep.has(name)) await rm(join(dist, name));
  await removeEmptyDirs(dist);
  await rm(tmp, { recursive: true, force: true });

  for (const name of built.filter((n) => !n.endsWith(".map")).sort()) {
    const size = (await stat(join(dist, name))).size;
    console.log(`  www/dist/${name.padEnd(40)} ${(size / 1024).toFixed(1).padStart(8)} KiB`);
  }
  if (result.warnings.length) console.log(`${result.warnings.length} warning(s)`);
  console.log(`built www/dist/ (${dev ? "dev" : "minified"})`);
} catch (err) {
  await rm(tmp, { recursive: true, force: true });
  console.error(err.message ?? err);
  process.exit(1);
}

async function listFiles(root, dir = root, out = []) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) await listFiles(root, p, out);
    else out.push(relative(root, p));
  }
  return out;
}

async function removeEmptyDirs(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const p = join(dir, entry.name);
    await removeEmptyDirs(p);
    if ((await readdir(p)).length === 0) await rm(p, { recursive: true });
  }
}
