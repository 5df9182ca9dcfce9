// The floor of a warm hit in this runtime: the least any worker can do to answer one, in plain
// JS, with no cache logic at all. bench/run serves it in workerd through Miniflare's API
// (bench/serve_workerd.mjs, its own inspector) over the same local R2 as the worker, and the CPU
// section profiles it as it profiles the worker: what the runtime's own calls (R2's `get`, the
// Cache API's `match`, `Response`) cost an isolate here, which no worker can go under.
//
//   GET /list?cursor=C   the bucket's objects: {"objects": [{"key", "size"}], "cursor"}
//   GET /hit?k=KEY       one R2 get, the body streamed back (404 when there is no such object)
//   GET /edge?k=KEY      the Cache API's answer (X-Cache: EDGE); else as /hit (MISS), a copy put
//                        in the cache
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/list") {
      const listed = await env.CHUNKS.list({ limit: 1000, cursor: url.searchParams.get("cursor") ?? undefined });
      const objects = listed.objects.map((o) => ({ key: o.key, size: o.size }));
      return Response.json({ objects, cursor: listed.truncated ? listed.cursor : null });
    }
    const edge = url.pathname === "/edge";
    if (edge) {
      const stored = await caches.default.match(request);
      if (stored) return stored;
    }
    const object = await env.CHUNKS.get(url.searchParams.get("k") ?? "");
    if (object === null) return new Response("no such object", { status: 404 });
    const headers = {
      "content-length": String(object.size),
      "content-type": "application/octet-stream",
      "cache-control": "public, max-age=3600",
    };
    const answer = new Response(object.body, { headers: { ...headers, "x-cache": edge ? "MISS" : "HIT" } });
    if (edge) {
      const copy = new Response(answer.clone().body, { headers: { ...headers, "x-cache": "EDGE" } });
      ctx.waitUntil(caches.default.put(request, copy));
    }
    return answer;
  },
};
