// Conformance of upstash-local with the official @upstash/redis client, plus
// raw-HTTP checks of the REST protocol (node's fetch).
//
// Run by ../run, which starts a throwaway redis-server and upstash-local and
// exports UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN.
// Every test uses its own key prefix and deletes its keys afterwards.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { afterEach, describe, test } from "node:test";

import { Redis, errors } from "@upstash/redis";

const URL_ = process.env.UPSTASH_REDIS_REST_URL;
const TOKEN = process.env.UPSTASH_REDIS_REST_TOKEN;
if (!URL_ || !TOKEN) {
  throw new Error("UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set (use ../run)");
}

/** Keys created by the current test, deleted in afterEach. */
let prefixes = [];

/** A fresh key prefix for this test. */
function prefix() {
  const p = `conf:node:${randomUUID()}:`;
  prefixes.push(p);
  return p;
}

/** Raw REST call; returns { status, headers, body } with body parsed as JSON. */
async function rest(path, { method = "POST", body, headers = {}, token = TOKEN } = {}) {
  const h = { ...headers };
  if (token !== null) h.Authorization = `Bearer ${token}`;
  const init = { method, headers: h };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
  }
  const res = await fetch(`${URL_}${path}`, init);
  const text = await res.text();
  let json;
  try {
    json = text.length ? JSON.parse(text) : undefined;
  } catch {
    assert.fail(`answer to ${method} ${path} is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, headers: res.headers, body: json };
}

const b64 = (s) => Buffer.from(s).toString("base64");

afterEach(async () => {
  for (const p of prefixes) {
    let cursor = "0";
    do {
      const { body } = await rest("/", { body: ["SCAN", cursor, "MATCH", `${p}*`, "COUNT", 1000] });
      const [next, keys] = body.result;
      if (keys.length) await rest("/", { body: ["DEL", ...keys] });
      cursor = next;
    } while (cursor !== "0");
  }
  prefixes = [];
});

const modes = [
  { name: "auto-pipelining (default)", opts: {} },
  { name: "enableAutoPipelining: false", opts: { enableAutoPipelining: false } },
];

for (const mode of modes) {
  describe(`@upstash/redis, ${mode.name}`, () => {
    const redis = new Redis({ url: URL_, token: TOKEN, ...mode.opts });
    const raw = new Redis({ url: URL_, token: TOKEN, automaticDeserialization: false, ...mode.opts });

    test("unicode and binary-looking strings round-trip", async () => {
      const p = prefix();
      const values = [
        "héllo wörld ✓ 日本語 😀",
        "\u0000\u0001\u0002\u007f\u0080\u00ff end",
        "quotes \" and \\ backslash\nnew line\ttab",
        "\ufffd replacement char",
        "",
      ];
      for (const [i, v] of values.entries()) {
        assert.equal(await raw.set(`${p}${i}`, v), "OK");
        assert.equal(await raw.get(`${p}${i}`), v, `value ${i}`);
      }
      // unicode keys too
      assert.equal(await raw.set(`${p}ключ`, "значение"), "OK");
      assert.equal(await raw.get(`${p}ключ`), "значение");
      // the client's JSON serialization round-trips objects and numbers
      await redis.set(`${p}obj`, { a: 1, b: ["x", "ü"] });
      assert.deepEqual(await redis.get(`${p}obj`), { a: 1, b: ["x", "ü"] });
      await redis.set(`${p}num`, 42.5);
      assert.equal(await redis.get(`${p}num`), 42.5);
      await redis.set(`${p}bool`, true);
      assert.equal(await raw.get(`${p}bool`), "true");
    });

    test("pipeline", async () => {
      const p = prefix();
      const res = await redis
        .pipeline()
        .set(`${p}a`, "1")
        .incr(`${p}a`)
        .get(`${p}a`)
        .rpush(`${p}l`, "x", "y")
        .lrange(`${p}l`, 0, -1)
        .exec();
      assert.deepEqual(res, ["OK", 2, 2, 2, ["x", "y"]]);

      // a failing command does not stop the ones after it
      const kept = await redis
        .pipeline()
        .set(`${p}s`, "str")
        .lpush(`${p}s`, "boom")
        .set(`${p}after`, "ran")
        .exec({ keepErrors: true });
      assert.equal(kept[0].result, "OK");
      assert.match(kept[1].error, /^WRONGTYPE/);
      assert.equal(kept[2].result, "OK");
      assert.equal(await raw.get(`${p}after`), "ran");
      await assert.rejects(
        redis.pipeline().set(`${p}s2`, "str").lpush(`${p}s2`, "boom").exec(),
        errors.UpstashError,
      );
    });

    test("multi / transaction", async () => {
      const p = prefix();
      const res = await redis
        .multi()
        .set(`${p}k`, "a")
        .append(`${p}k`, "b")
        .get(`${p}k`)
        .hset(`${p}h`, { f: "v" })
        .exec();
      assert.deepEqual(res, ["OK", 2, "ab", 1]);
      // a runtime error inside EXEC fails only its own command
      const kept = await redis
        .multi()
        .set(`${p}t`, "x")
        .incr(`${p}t`)
        .set(`${p}t2`, "y")
        .exec({ keepErrors: true });
      assert.equal(kept[0].result, "OK");
      assert.match(kept[1].error, /not an integer/);
      assert.equal(kept[2].result, "OK");
    });

    test("HINCRBY", async () => {
      const p = prefix();
      assert.equal(await redis.hincrby(`${p}h`, "n", 5), 5);
      assert.equal(await redis.hincrby(`${p}h`, "n", -7), -2);
      assert.equal(await raw.hget(`${p}h`, "n"), "-2");
    });

    test("HSET / HGETALL", async () => {
      const p = prefix();
      assert.equal(await redis.hset(`${p}h`, { name: "zarr", size: 3, uni: "ß✓" }), 3);
      assert.deepEqual(await redis.hgetall(`${p}h`), { name: "zarr", size: 3, uni: "ß✓" });
      assert.equal(await redis.hgetall(`${p}missing`), null);
    });

    test("ZADD / ZRANGE WITHSCORES", async () => {
      const p = prefix();
      assert.equal(
        await redis.zadd(`${p}z`, { score: 1.5, member: "a" }, { score: 2, member: "b" }, { score: -0.25, member: "c" }),
        3,
      );
      assert.deepEqual(await redis.zrange(`${p}z`, 0, -1, { withScores: true }), ["c", -0.25, "a", 1.5, "b", 2]);
      assert.deepEqual(await raw.zrange(`${p}z`, 0, -1, { withScores: true }), ["c", "-0.25", "a", "1.5", "b", "2"]);
      assert.equal(await redis.zscore(`${p}z`, "a"), 1.5);
    });

    test("EXPIRE / TTL", async () => {
      const p = prefix();
      await redis.set(`${p}k`, "v");
      assert.equal(await redis.ttl(`${p}k`), -1);
      assert.equal(await redis.expire(`${p}k`, 100), 1);
      const ttl = await redis.ttl(`${p}k`);
      assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
      assert.equal(await redis.ttl(`${p}missing`), -2);
    });

    test("SET NX PX: the second NX fails", async () => {
      const p = prefix();
      assert.equal(await redis.set(`${p}lock`, "one", { nx: true, px: 5000 }), "OK");
      assert.equal(await redis.set(`${p}lock`, "two", { nx: true, px: 5000 }), null);
      assert.equal(await raw.get(`${p}lock`), "one");
      const pttl = await redis.pttl(`${p}lock`);
      assert.ok(pttl > 0 && pttl <= 5000, `pttl ${pttl}`);
    });

    test("an error reply raises UpstashError", async () => {
      const p = prefix();
      await redis.set(`${p}s`, "string");
      await assert.rejects(redis.lpush(`${p}s`, "x"), (e) => {
        assert.ok(e instanceof errors.UpstashError, `got ${e?.constructor?.name}`);
        assert.match(e.message, /WRONGTYPE/);
        return true;
      });
      await assert.rejects(redis.incr(`${p}s`), errors.UpstashError);
    });

    test("scripts: SCRIPT LOAD, SCRIPT EXISTS, EVALSHA, NOSCRIPT, createScript's fallback", async () => {
      const p = prefix();
      // A text of its own, so Redis has not cached it yet.
      const text = `-- ${p}\nredis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])`;
      const sha = await redis.scriptLoad(text);
      assert.match(sha, /^[0-9a-f]{40}$/);
      assert.deepEqual(await redis.scriptExists(sha, "0".repeat(40)), [1, 0]);
      assert.equal(await raw.evalsha(sha, [`${p}k`], ["v1"]), "v1");
      await assert.rejects(redis.evalsha("f".repeat(40), [], []), (e) => {
        assert.ok(e instanceof errors.UpstashError, `got ${e?.constructor?.name}`);
        assert.match(e.message, /NOSCRIPT/);
        return true;
      });
      const fresh = redis.createScript(`-- ${p} fresh\nreturn ARGV[1]`);
      assert.equal(await fresh.exec([], ["once"]), "once");
      assert.equal(await fresh.exec([], ["twice"]), "twice");
    });

    test("a wrong token is refused", async () => {
      const bad = new Redis({ url: URL_, token: "not-the-token", retry: false, ...mode.opts });
      await assert.rejects(bad.get("conf:node:any"), (e) => {
        assert.ok(e instanceof errors.UpstashError, `got ${e?.constructor?.name}`);
        assert.match(e.message, /WRONGPASS|Unauthorized/i);
        return true;
      });
    });
  });
}

describe("raw HTTP protocol", () => {
  test("JSON command body, path form and POST body appended", async () => {
    const p = prefix();
    assert.deepEqual((await rest("/", { body: ["SET", `${p}a`, "v", "EX", 100] })).body, { result: "OK" });
    assert.deepEqual((await rest(`/get/${encodeURIComponent(`${p}a`)}`, { method: "GET" })).body, { result: "v" });
    const k = encodeURIComponent(`${p}b/with slash`);
    assert.deepEqual((await rest(`/set/${k}/h%C3%A9llo%20there`, { method: "GET" })).body, { result: "OK" });
    assert.deepEqual((await rest("/", { body: ["GET", `${p}b/with slash`] })).body, { result: "héllo there" });
    // POST body is the last argument; query pairs follow it
    const posted = await rest(`/set/${encodeURIComponent(`${p}c`)}?EX=100`, { body: "a body / with ? chars" });
    assert.deepEqual(posted.body, { result: "OK" });
    assert.deepEqual((await rest("/", { body: ["GET", `${p}c`] })).body, { result: "a body / with ? chars" });
    const ttl = (await rest("/", { body: ["TTL", `${p}c`] })).body.result;
    assert.ok(ttl > 90 && ttl <= 100, `ttl ${ttl}`);
    // numbers and booleans in the JSON array
    assert.deepEqual((await rest("/", { body: ["SET", `${p}n`, 1.5] })).body, { result: "OK" });
    assert.deepEqual((await rest("/", { body: ["INCRBYFLOAT", `${p}n`, 1] })).body, { result: "2.5" });
    assert.deepEqual((await rest("/", { body: ["SET", `${p}t`, true] })).body, { result: "OK" });
    assert.deepEqual((await rest("/", { body: ["GET", `${p}t`] })).body, { result: "true" });
  });

  test("?_token= authenticates", async () => {
    const p = prefix();
    const r = await rest(`/set/${encodeURIComponent(`${p}q`)}/1?_token=${encodeURIComponent(TOKEN)}`, {
      method: "GET",
      token: null,
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { result: "OK" });
    const bad = await rest(`/get/${encodeURIComponent(`${p}q`)}?_token=nope`, { method: "GET", token: null });
    assert.equal(bad.status, 401);
  });

  test("401 with a JSON error body", async () => {
    for (const token of [null, "wrong"]) {
      const r = await rest("/", { body: ["PING"], token });
      assert.equal(r.status, 401);
      assert.equal(typeof r.body.error, "string");
      assert.ok(r.body.error.length > 0);
    }
  });

  test("405 for other methods, with a JSON error body", async () => {
    for (const method of ["DELETE", "PATCH", "OPTIONS"]) {
      const r = await rest("/get/x", { method });
      assert.equal(r.status, 405, method);
      assert.equal(typeof r.body.error, "string");
    }
    for (const method of ["HEAD", "GET"]) {
      const r = await fetch(`${URL_}/`, { method });
      assert.equal(r.status, 200, method);
    }
  });

  test("upstash-sync-token header on every answer, increasing", async () => {
    const seen = [];
    for (const token of [TOKEN, "wrong"]) {
      const r = await rest("/", { body: ["PING"], token, headers: { "upstash-sync-token": seen.at(-1) ?? "" } });
      const v = r.headers.get("upstash-sync-token");
      assert.ok(v, "header missing");
      seen.push(v);
    }
    const r = await rest("/x", { method: "DELETE" });
    seen.push(r.headers.get("upstash-sync-token"));
    const nums = seen.map(Number);
    assert.ok(nums.every((n, i) => i === 0 || n > nums[i - 1]), `not increasing: ${seen}`);
  });

  test("Redis errors: 400 with Redis's text; pipeline keeps going", async () => {
    const p = prefix();
    const r = await rest("/", { body: ["NOSUCHCOMMAND", "x"] });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /^ERR unknown command/);
    const w = await rest("/", { body: ["GET"] });
    assert.equal(w.status, 400);
    assert.match(w.body.error, /wrong number of arguments/);
    const pl = await rest("/pipeline", {
      body: [["SET", `${p}a`, "x"], ["INCR", `${p}a`], ["NOPE"], ["SET", `${p}b`, "y"], ["GET", `${p}b`]],
    });
    assert.equal(pl.status, 200);
    assert.equal(pl.body.length, 5);
    assert.deepEqual(pl.body[0], { result: "OK" });
    assert.match(pl.body[1].error, /not an integer/);
    assert.match(pl.body[2].error, /unknown command/);
    assert.deepEqual(pl.body.slice(3), [{ result: "OK" }, { result: "y" }]);
  });

  test("multi-exec is atomic; a discarded transaction is one error", async () => {
    const p = prefix();
    const ok = await rest("/multi-exec", { body: [["SET", `${p}a`, "1"], ["INCRBY", `${p}a`, 41], ["GET", `${p}a`]] });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, [{ result: "OK" }, { result: 42 }, { result: "42" }]);
    const discarded = await rest("/multi-exec", { body: [["SET", `${p}b`, "1"], ["NOPE", "x"]] });
    assert.equal(discarded.status, 400);
    assert.ok(!Array.isArray(discarded.body));
    assert.match(discarded.body.error, /unknown command/);
    assert.deepEqual((await rest("/", { body: ["EXISTS", `${p}b`] })).body, { result: 0 });
    const arity = await rest("/multi-exec", { body: [["SET", `${p}c`, "1"], ["GET"]] });
    assert.equal(arity.status, 400);
    assert.match(arity.body.error, /wrong number of arguments/);
    assert.deepEqual((await rest("/", { body: ["EXISTS", `${p}c`] })).body, { result: 0 });
  });

  test("Upstash-Encoding: base64 encodes nested strings, leaves OK, ints and null", async () => {
    const p = prefix();
    const h = { "Upstash-Encoding": "base64" };
    const set = await rest("/", { body: ["SET", `${p}k`, "bar"], headers: h });
    assert.deepEqual(set.body, { result: "OK" });
    assert.deepEqual((await rest("/", { body: ["GET", `${p}k`], headers: h })).body, { result: b64("bar") });
    const nested = await rest("/", {
      body: ["EVAL", "return {redis.status_reply('OK'), {ARGV[1], 7, {ARGV[2]}}, false}", 0, "ab", "ü"],
      headers: h,
    });
    assert.deepEqual(nested.body, { result: ["OK", [b64("ab"), 7, [b64("ü")]], null] });
    const pl = await rest("/pipeline", {
      body: [["SET", `${p}a`, "x"], ["RPUSH", `${p}l`, "a", "b"], ["LRANGE", `${p}l`, 0, -1], ["GET", `${p}none`], ["PING"]],
      headers: h,
    });
    assert.deepEqual(pl.body, [
      { result: "OK" },
      { result: 2 },
      { result: [b64("a"), b64("b")] },
      { result: null },
      { result: b64("PONG") },
    ]);
    const tx = await rest("/multi-exec", { body: [["SET", `${p}m`, "v"], ["GET", `${p}m`]], headers: h });
    assert.deepEqual(tx.body, [{ result: "OK" }, { result: b64("v") }]);
  });

  test("binary values round-trip with base64, lossy text without", async () => {
    const p = prefix();
    const bytes = Uint8Array.from([0x00, 0xff, 0x80, 0x01, 0xfe, 0x0a, 0x22, 0x5c, 0xc3]);
    const key = encodeURIComponent(`${p}bin`);
    assert.deepEqual((await rest(`/set/${key}`, { body: bytes })).body, { result: "OK" });
    assert.deepEqual((await rest("/", { body: ["STRLEN", `${p}bin`] })).body, { result: bytes.length });
    const enc = await rest(`/get/${key}`, { method: "GET", headers: { "Upstash-Encoding": "base64" } });
    assert.deepEqual(Buffer.from(enc.body.result, "base64"), Buffer.from(bytes));
    const text = await rest(`/get/${key}`, { method: "GET" });
    assert.ok(text.body.result.includes("\ufffd"), "invalid UTF-8 becomes U+FFFD");
    // percent-encoded binary in the path form too
    assert.deepEqual((await rest(`/set/${key}2/%00%FF%80`, { method: "GET" })).body, { result: "OK" });
    const enc2 = await rest(`/get/${key}2`, { method: "GET", headers: { "Upstash-Encoding": "base64" } });
    assert.deepEqual(Buffer.from(enc2.body.result, "base64"), Buffer.from([0x00, 0xff, 0x80]));
  });

  test("requests over 10 MB are refused with a JSON error", async () => {
    const p = prefix();
    const big = "x".repeat(10 * 1024 * 1024 + 1);
    const r = await rest("/", { body: ["SET", `${p}big`, big] });
    assert.equal(r.status, 400);
    assert.match(r.body.error, /^ERR max request size exceeded/);
    assert.deepEqual((await rest("/", { body: ["EXISTS", `${p}big`] })).body, { result: 0 });
    // just under the limit is fine
    const ok = await rest("/", { body: ["SET", `${p}ok`, "y".repeat(10 * 1024 * 1024 - 100)] });
    assert.deepEqual(ok.body, { result: "OK" });
  });

  test("commands that cannot work over REST are refused, not hung", async () => {
    for (const cmd of [["SUBSCRIBE", "c"], ["MONITOR"], ["SELECT", "1"], ["BLPOP", "conf:node:l", 0], ["QUIT"]]) {
      const r = await rest("/", { body: cmd });
      assert.equal(r.status, 400, cmd[0]);
      assert.match(r.body.error, /^ERR /);
    }
    const short = await rest("/", { body: ["BLPOP", "conf:node:nolist", 0.1] });
    assert.deepEqual(short.body, { result: null });
  });

  test("/__stats counts a pipeline of N as N commands and 1 round trip", async () => {
    const p = prefix();
    const reset = await rest("/__stats/reset");
    assert.equal(reset.status, 200);
    const n = 7;
    const cmds = Array.from({ length: n }, (_, i) => ["SET", `${p}${i}`, String(i)]);
    assert.equal((await rest("/pipeline", { body: cmds })).status, 200);
    const s1 = (await rest("/__stats", { method: "GET" })).body;
    assert.equal(s1.http_requests, 1);
    assert.equal(s1.commands, n);
    assert.equal(s1.pipelines, 1);
    assert.equal(s1.transactions, 0);
    assert.equal(s1.errors, 0);
    await rest("/multi-exec", { body: [["GET", `${p}0`], ["INCR", `${p}1`]] });
    await rest("/", { body: ["NOPE"] });
    const s2 = (await rest("/__stats", { method: "GET" })).body;
    assert.equal(s2.http_requests, 3);
    assert.equal(s2.commands, n + 3);
    assert.equal(s2.transactions, 1);
    assert.equal(s2.single_commands, 1);
    assert.equal(s2.errors, 1);
    await rest("/", { body: ["EVAL", "return 1", "0"] });
    await rest("/pipeline", { body: [["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"], ["evalsha", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"]] });
    const s3 = (await rest("/__stats", { method: "GET" })).body;
    assert.equal(s3.eval, 1);
    assert.equal(s3.evalsha, 2);
    // token required
    assert.equal((await rest("/__stats", { method: "GET", token: null })).status, 401);
  });
});
