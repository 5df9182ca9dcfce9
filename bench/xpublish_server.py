"""xpublish serving the benchmark dataset directly from the origin (the comparison server).

Usage::

    python bench/xpublish_server.py --manifest STATE/manifest.json --port 28092

For each origin profile and each concurrency of the run it opens the benchmark references
(``refs/direct-<profile>.json``) with xarray over fsspec's ReferenceFileSystem (dask-backed,
one dask chunk per source chunk) as its own datasets: ``xp-<profile>-c<N>``, which the benchmark
reads directly, and ``xw-<profile>-c<N>``, which it reads through the worker (a kind ``zarr``
dataset of the same id fronting it). So every cold pass starts with xpublish's response cache
empty for its dataset (it is keyed by dataset id), the worker's too. It serves them with xpublish and
the ``xpublish-zarr`` plugin (Zarr v3 keys: ``/datasets/<id>/zarr/<var>/c/<i>/<j>/<k>``) under
uvicorn. A chunk request reads the source chunk from the origin (one range request), decodes it,
and re-encodes it with zarr's default v3 codecs (zstd); xpublish then keeps the response in its
in-memory cache (cachey), which is what a second ("warm") pass reads.

The source variables' v2 codecs (shuffle, zlib) are dropped from the encoding xpublish sees:
xpublish-zarr writes Zarr v3 metadata and zarr-python refuses numcodecs filters there.

``GET /__stats`` answers the requests served so far per dataset, ``{"<id>": {"chunk": n,
"metadata": m}}`` (a chunk is ``/datasets/<id>/zarr/<var>/c/...``, anything else under
``/datasets/<id>/`` metadata): the benchmark checks with it that a pass through the worker asks
xpublish for every chunk once when cold and for none when warm.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def counting(app):
    """`app` behind a counter of the requests per dataset, which ``GET /__stats`` answers."""
    counts: dict[str, dict[str, int]] = {}

    async def wrapped(scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/__stats":
                body = json.dumps(counts).encode()
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            parts = path.split("/")
            if len(parts) > 2 and parts[1] == "datasets":
                kind = "chunk" if len(parts) > 5 and parts[3] == "zarr" and parts[5] == "c" else "metadata"
                entry = counts.setdefault(parts[2], {"chunk": 0, "metadata": 0})
                entry[kind] += 1
        await app(scope, receive, send)

    return wrapped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", default="", help="comma-separated; default: the manifest's")
    args = parser.parse_args(argv)

    started = time.monotonic()
    import dask
    import uvicorn
    import xarray as xr
    import xpublish
    from xpublish_zarr import ZarrPlugin

    dask.config.set(scheduler="synchronous")  # one chunk per request: no nested thread pool
    manifest = json.load(open(args.manifest))
    if args.concurrency or "xpublish_datasets" not in manifest:
        concurrency = [int(c) for c in args.concurrency.split(",") if c] or \
            sorted({a["concurrency"] for a in manifest["aliases"].values() if a["concurrency"]})
        wanted = {f"{prefix}-{profile}-c{c}": profile for profile in manifest["direct_refs"]
                  for prefix in ("xp", "xw") for c in concurrency}
    else:
        wanted = manifest["xpublish_datasets"]  # {dataset id: origin profile}
    datasets = {}
    refs_of = {profile: json.load(open(path)) for profile, path in manifest["direct_refs"].items()}
    for dataset_id, profile in wanted.items():
        ds = xr.open_dataset(
            "reference://", engine="zarr", chunks={}, decode_cf=False,
            backend_kwargs={"consolidated": False, "zarr_format": 2,
                            "storage_options": {"fo": refs_of[profile], "remote_protocol": "http",
                                                "remote_options": {"asynchronous": True}}},
        )
        for variable in ds.variables.values():
            for key in ("filters", "compressor", "compressors", "serializer", "preferred_chunks"):
                variable.encoding.pop(key, None)
        datasets[dataset_id] = ds
    rest = xpublish.Rest(datasets, plugins={"zarr": ZarrPlugin()}, cache_kws={"available_bytes": 2e9})
    print(f"xpublish_server: {len(datasets)} datasets opened in {time.monotonic() - started:.1f}s, "
          f"serving http://127.0.0.1:{args.port}/datasets/<id>/zarr/", flush=True)
    uvicorn.run(counting(rest.app), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
