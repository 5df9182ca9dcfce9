"""A TCP proxy whose faults a test switches at run time, for index outages on the real stack.

Usage::

    python scripts/fault_proxy.py --listen 127.0.0.1:18092 --upstream 127.0.0.1:18079 \
        --mode-file STATE/fault_proxy.mode

Bytes pass through unchanged while the mode file says ``pass`` (or is missing). The mode is
read again for every piece of data and every new connection, so a test switches it by writing
the file:

* ``pass``: a plain TCP relay;
* ``hold``: connections are accepted and kept open, but nothing is forwarded either way (a
  server that stopped answering: every call times out, open keep-alive connections too);
* ``refuse``: new connections are closed at once and open ones are cut.

Only the standard library (asyncio). Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

PIECE = 64 * 1024


def mode(path: Path) -> str:
    try:
        return path.read_text().strip() or "pass"
    except OSError:
        return "pass"


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mode_file: Path) -> None:
    try:
        while True:
            data = await reader.read(PIECE)
            if not data:
                break
            while (current := mode(mode_file)) == "hold":
                await asyncio.sleep(0.05)
            if current == "refuse":
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer, upstream: tuple[str, int], mode_file: Path) -> None:
    if mode(mode_file) == "refuse":
        client_writer.close()
        return
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(
        relay(client_reader, up_writer, mode_file),
        relay(up_reader, client_writer, mode_file),
    )


async def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT (loopback)")
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--mode-file", required=True, type=Path)
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host.startswith("127."):
        parser.error("--listen must be a loopback address")
    up_host, _, up_port = args.upstream.rpartition(":")
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, (up_host, int(up_port)), args.mode_file), host, int(port))
    print(f"fault_proxy: {args.listen} -> {args.upstream} (mode file {args.mode_file})", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1:]))
    except KeyboardInterrupt:
        pass
