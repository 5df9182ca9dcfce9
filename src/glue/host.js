// The hot path's calls into the Workers runtime, each made in one crossing from wasm (the
// `host` module of src/glue/host.rs binds them). Going through wasm-bindgen's generic bindings,
// a warm hit made ~40 crossings (each header, option and metadata field a call of its own, each
// string copied and decoded, each promise two closures and a timer closure); measured in workerd
// they were most of the worker's own CPU per hit (bench/README.md, "CPU per warm hit").

// wasm-bindgen's executor (js-sys futures) schedules its next tick with the global
// queueMicrotask when there is one, else with a resolved promise's `then` (its fallback for
// runtimes without it). It looks once, when its queue is made (the first request). workerd's
// queueMicrotask wraps each callback in a new function (to report its exceptions), several µs a
// tick against a V8 builtin's fraction of one. So the global's first read answers undefined and
// puts it back: that read is the executor's (nothing else in the worker reads it, and nothing
// reads it before the first request); every later one sees the runtime's.
(function hideQueueMicrotaskOnce() {
  let owner = globalThis;
  while (owner !== null && !Object.prototype.hasOwnProperty.call(owner, "queueMicrotask")) {
    owner = Object.getPrototypeOf(owner);
  }
  if (owner === null) return;
  const original = Object.getOwnPropertyDescriptor(owner, "queueMicrotask");
  try {
    Object.defineProperty(globalThis, "queueMicrotask", {
      configurable: true,
      get() {
        if (owner === globalThis) Object.defineProperty(globalThis, "queueMicrotask", original);
        else delete globalThis.queueMicrotask;
        return undefined;
      },
    });
  } catch {
    // not configurable here: the executor uses queueMicrotask
  }
})();

// Rejects after `ms`, as `tag: no answer within ms`; `clear` cancels it.
function deadline(ms, tag) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${tag}: no answer within ${ms} ms`)), ms);
  });
  return { late, clear: () => clearTimeout(timer) };
}

// An R2 read within `ms`: `length < 0` reads the whole object, else `length` bytes from
// `offset`. Resolves to null (no object, or one without a body) or
// `{ body, size, uploaded, checksum, validator }`: the body's stream, the object's size, its
// upload time (ms since the epoch) and the two custom metadata values the cache reads
// (undefined when absent).
export function r2Get(bucket, key, offset, length, ms) {
  const options = length >= 0 ? { range: { offset, length } } : undefined;
  const { late, clear } = deadline(ms, "R2 get");
  return Promise.race([bucket.get(key, options), late]).then(
    (object) => {
      clear();
      if (object === null || object.body === undefined) return null;
      const meta = object.customMetadata ?? {};
      return {
        body: object.body,
        size: object.size,
        uploaded: object.uploaded.getTime(),
        checksum: meta["zec-checksum"],
        validator: meta["zec-validator"],
      };
    },
    (error) => {
      clear();
      throw error;
    },
  );
}

// A stream read whole within `ms`, as bytes.
export function readAll(stream, ms) {
  const { late, clear } = deadline(ms, "R2 read");
  return Promise.race([new Response(stream).arrayBuffer(), late]).then(
    (buffer) => {
      clear();
      return new Uint8Array(buffer);
    },
    (error) => {
      clear();
      throw error;
    },
  );
}

// Splits `flat` ("name\nvalue\nname\nvalue…", as src/glue/host.rs joins it) into a Headers.
function headersOf(flat) {
  const headers = new Headers();
  if (flat.length === 0) return headers;
  const parts = flat.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) headers.append(parts[i], parts[i + 1]);
  return headers;
}

// The response: `body` is null, a Uint8Array or a ReadableStream.
export function respond(status, flatHeaders, body) {
  return new Response(body, { status, headers: headersOf(flatHeaders) });
}

// The method and URL of a request, in one string ("METHOD\nURL": neither can hold a line break).
export function requestTarget(request) {
  return `${request.method}\n${request.url}`;
}

// The values of the headers named in `names` ("\n"-separated), in one string: a line each,
// "\0" for a header that is absent (neither can occur in a header value).
export function requestHeaders(request, names) {
  const headers = request.headers;
  return names
    .split("\n")
    .map((name) => headers.get(name) ?? "\0")
    .join("\n");
}

// A POST of `body` to `url` with `flatHeaders`, aborted after `ms`; resolves to
// `{ status, body }` (the answer's bytes), rejects with the runtime's error.
// `{ status: 0, body: null }` when the time ran out.
export function postBytes(url, flatHeaders, body, ms) {
  const init = { method: "POST", headers: headersOf(flatHeaders), body, signal: AbortSignal.timeout(ms) };
  return fetch(url, init)
    .then((answer) =>
      answer.arrayBuffer().then((buffer) => ({ status: answer.status, body: new Uint8Array(buffer) })),
    )
    .catch((error) => {
      if (error?.name === "TimeoutError") return { status: 0, body: null };
      throw error;
    });
}
