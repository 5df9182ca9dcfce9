"""A reverse proxy that makes a loopback origin behave like a remote object store.

Usage::

    python bench/slow_proxy.py --listen 127.0.0.1:28091 --upstream http://127.0.0.1:28090 \
        [--latency-ms 50] [--bandwidth-mb-s 20]

Every request is forwarded to ``--upstream`` (method, path, query and the request headers that
matter to an object store: ``Range``, ``If-None-Match``, ``If-Modified-Since``, ``If-Range``,
``User-Agent``), with two costs added, as a remote store in another region has them:

* a fixed latency before the first byte (``--latency-ms``, default 50 ms): the proxy waits that
  long before it forwards the request, so time to first byte is the upstream's plus this;
* a bandwidth cap per connection (``--bandwidth-mb-s``, default 20 MB/s, 0 = no cap): the body is
  sent in 16 KiB pieces, each no earlier than its last byte is due at that rate. HTTP/1.1 keeps
  one request at a time on a connection, so pacing each response paces each connection.

Status, body and headers (``Content-Length``, ``Content-Range``, ``ETag``, ...) pass through
unchanged, so ``Range`` requests behave exactly as at the origin. Nothing is cached. The proxy
counts what it forwarded at ``GET /__proxy_stats`` (``{"requests", "bytes"}``); the benchmark
counts origin traffic at nginx's access log instead, behind this proxy, so both origin profiles
are counted in the same place.

Only asyncio and aiohttp (already a project dependency); no third-party proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

FORWARDED_REQUEST_HEADERS = ("Range", "If-None-Match", "If-Modified-Since", "If-Range", "User-Agent")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authenticate", "proxy-authorization", "content-length"}
PIECE = 16 * 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:28091", help="HOST:PORT to listen on (loopback only)")
    parser.add_argument("--upstream", required=True, help="origin base URL, e.g. http://127.0.0.1:28090")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="added before the first byte of every request")
    parser.add_argument("--bandwidth-mb-s", type=float, default=20.0,
                        help="cap per connection in MB/s (10^6 bytes/s); 0 for none")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host.startswith("127.") and host not in ("localhost", "::1"):
        parser.error("--listen must be a loopback address")
    args.host, args.port = host, int(port)
    args.upstream = args.upstream.rstrip("/")
    if args.latency_ms < 0 or args.bandwidth_mb_s < 0:
        parser.error("--latency-ms and --bandwidth-mb-s must be >= 0")
    return args


class SlowProxy:
    def __init__(self, upstream: str, latency_s: float, bytes_per_s: float):
        self.upstream = upstream
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        self.session: ClientSession | None = None
        self.requests = 0
        self.bytes = 0

    async def start(self, _app: web.Application) -> None:
        self.session = ClientSession(
            connector=TCPConnector(limit=0, force_close=False),
            timeout=ClientTimeout(total=None, sock_connect=10, sock_read=120),
            auto_decompress=False,
        )

    async def stop(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def stats(self, _request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "bytes": self.bytes,
                                  "latency_ms": self.latency_s * 1000, "bandwidth_bytes_s": self.bytes_per_s})

    async def forward(self, request: web.Request) -> web.StreamResponse:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        headers = {h: request.headers[h] for h in FORWARDED_REQUEST_HEADERS if h in request.headers}
        headers["Accept-Encoding"] = "identity"
        assert self.session is not None
        async with self.session.request(request.method, self.upstream + request.rel_url.raw_path_qs,
                                        headers=headers, allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            self.requests += 1
            if request.method == "HEAD":
                await response.write_eof()
                return response
            first_byte = time.monotonic()
            sent = 0
            async for piece in upstream.content.iter_chunked(PIECE):
                sent += len(piece)
                if self.bytes_per_s:
                    due = first_byte + sent / self.bytes_per_s
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await response.write(piece)
            self.bytes += sent
            await response.write_eof()
            return response


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    proxy = SlowProxy(args.upstream, args.latency_ms / 1000.0, args.bandwidth_mb_s * 1e6)
    app = web.Application()
    app.on_startup.append(proxy.start)
    app.on_cleanup.append(proxy.stop)
    app.router.add_get("/__proxy_stats", proxy.stats)
    app.router.add_route("*", "/{tail:.*}", proxy.forward)
    print(f"slow_proxy: http://{args.host}:{args.port} -> {args.upstream} "
          f"(+{args.latency_ms:g} ms before the first byte, "
          f"{'no cap' if not args.bandwidth_mb_s else f'{args.bandwidth_mb_s:g} MB/s per connection'})",
          flush=True)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None,
                handle_signals=True, shutdown_timeout=1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
