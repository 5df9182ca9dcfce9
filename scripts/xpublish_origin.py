"""A real xpublish server as a Zarr-over-HTTP origin for the test and dev stacks.

Usage::

    python scripts/xpublish_origin.py --port 18095 [--data-version N] [--values-offset X] [--test-routes]

Serves one small CF dataset as ``/datasets/air`` with xpublish and its plugins, under uvicorn on
127.0.0.1:

* ``/datasets/air/zarr/...``  Zarr v3 (xpublish-zarr): ``zarr.json`` (consolidated), ``var/zarr.json``,
  ``var/c/i/j/k``; an unknown variable or a chunk index out of range is 404;
* ``/datasets/air/edr/...``   OGC EDR (xpublish-edr), e.g. ``edr/position?coords=POINT(10 20)``;
* ``/datasets/air/info``, ``keys``, ``dict``  xpublish's dataset info.

The dataset (``build_dataset``): dims time (8, 6-hourly from 2020-01-01), lat (46, -90..90),
lon (90, -180..176), regular grids with CF axis attributes (what xpublish-edr's selection needs).
``air_temperature`` float32 (chunks 4x23x45: 8 chunks), ``precipitation`` float32 (2x23x90:
8 chunks), ``surface_height`` float32 (23x45: 4 chunks). Values are closed-form plus seeded noise,
so every start gives byte-identical answers. No chunk is all fill value: xpublish-zarr answers 500
for such a chunk (its encoder writes nothing for it), which a test origin must not do by accident.

* ``--data-version N`` (default 1): a new release of the data. ``air_temperature`` is
  +10 K per version above 1 in every chunk and ``precipitation`` is scaled by N, AND the global
  attributes ``data_version``/``date_modified`` change, so the root ``zarr.json`` changes (what a
  cache can notice). ``surface_height`` never changes.
* ``--values-offset X`` (default 0): adds X to ``air_temperature`` and changes no metadata byte:
  only an explicit version bump in a cache can reveal it.
* ``--test-routes``: routes outside the dataset for bad-origin tests (scripts/test turns them on):

  ``GET /bad/html/zarr.json``, ``/bad/html/v/c/0``   200 text/html (a portal page, not Zarr)
  ``GET /bad/malformed/zarr.json``                   200 application/json, truncated JSON
  ``GET /bad/{huge,huge-chunked,redirect,stall,short}/zarr.json`` and ``.../v/zarr.json``: valid
      v3 metadata of a group holding a float32 array ``v`` (shape 4, chunks 1), then the chunk:
  ``GET /bad/huge/v/c/0``          300 MiB of zeros streamed lazily, Content-Length declared
  ``GET /bad/huge-chunked/v/c/0``  the same with no Content-Length (chunked transfer)
  ``GET /bad/redirect/v/c/0``      302 to http://data.example.org/x
  ``GET /bad/stall/v/c/0``         headers and body after 30 s
  ``GET /bad/short/v/c/0``         Content-Length 1024, 16 bytes sent, then the connection closes
  ``GET|POST /datasets/air/fail``, ``/datasets/air/fail/{path}``  500 (inside the routes base of a
      dataset fronting /datasets/air; xpublish-edr owns edr/..., so the failure lives beside it)
  ``GET|POST|PUT|PATCH|DELETE /datasets/air/echo/{path}``  200 JSON of method, path, query string,
      body and a per-process request count (each answer differs: a cached one is recognisable)

  FastAPI answers HEAD on a GET-only route with 405, as it does on xpublish's own routes.

uvicorn's access log (one line per request, ``"GET /path?query HTTP/1.1" 200``) goes to stderr,
which scripts/lib.sh's spawn writes to the service's log file: tests count origin requests there.
"""

import argparse
import asyncio
import datetime as dt
import json
import sys
import time

HUGE_BYTES = 300 * 1024 * 1024  # over the worker's 64 MiB cap on an origin body (src/glue/http_origin.rs)
PIECE = b"\0" * (1024 * 1024)
BAD_PREFIXES = ("huge", "huge-chunked", "redirect", "stall", "short")


def build_dataset(data_version: int = 1, values_offset: float = 0.0):
    import numpy as np
    import pandas as pd
    import xarray as xr

    rng = np.random.default_rng(20240614)
    time_ = pd.date_range("2020-01-01", periods=8, freq="6h")
    lat = np.linspace(-90.0, 90.0, 46)
    lon = np.arange(90) * 4.0 - 180.0
    hours = np.arange(time_.size, dtype=np.float64)[:, None, None] * 6.0
    phi = np.deg2rad(lat)[None, :, None]
    lam = np.deg2rad(lon)[None, None, :]
    air = (300.0 - 45.0 * np.sin(phi) ** 2
           + 4.0 * np.cos(phi) * np.cos(lam + 2 * np.pi * hours / 24.0)
           + rng.normal(0.0, 0.2, size=(time_.size, lat.size, lon.size)))
    air += 10.0 * (data_version - 1) + values_offset
    # Half dry, with a rain band near the equator; never the fill value (NaN).
    rain = np.clip(8.0 * np.exp(-((np.rad2deg(phi) - 5.0) / 12.0) ** 2) * np.sin(3 * lam - hours / 9.0), 0, None)
    rain = rain * rng.gamma(4.0, 0.25, size=rain.shape) * data_version
    height = 3000.0 * np.cos(2 * phi[0]) * np.sin(lam[0]) ** 3
    height = np.where(height > 1.0, height, 0.0)  # mountains on a sea-level plain

    coords = {
        "time": ("time", time_, {"standard_name": "time", "long_name": "time", "axis": "T"}),
        "lat": ("lat", lat.astype(np.float32),
                {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", lon.astype(np.float32),
                {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east", "axis": "X"}),
    }
    ds = xr.Dataset(
        {
            "air_temperature": (("time", "lat", "lon"), air.astype(np.float32),
                                {"standard_name": "air_temperature", "long_name": "Air temperature at 2 m",
                                 "units": "K"}),
            "precipitation": (("time", "lat", "lon"), rain.astype(np.float32),
                              {"standard_name": "precipitation_amount", "long_name": "6-hourly precipitation",
                               "units": "mm"}),
            "surface_height": (("lat", "lon"), height.astype(np.float32),
                               {"standard_name": "surface_altitude", "units": "m"}),
        },
        coords=coords,
        attrs={
            "title": "Synthetic 6-hourly near-surface analysis (zarr-edge-cache xpublish origin)",
            "Conventions": "CF-1.8",
            "source": "closed-form fields plus seeded noise; see scripts/xpublish_origin.py",
            "data_version": data_version,
            "date_modified": (dt.datetime(2024, 1, 1) + dt.timedelta(days=data_version - 1)).strftime("%Y-%m-%dT00:00:00Z"),
        },
    )
    # The chunk grid xpublish-zarr publishes (numpy-backed: encoded once, when the store is built).
    ds["air_temperature"].encoding["chunks"] = (4, 23, 45)
    ds["precipitation"].encoding["chunks"] = (2, 23, 90)
    ds["surface_height"].encoding["chunks"] = (23, 45)
    ds["time"].encoding.update(units="hours since 2020-01-01 00:00:00", calendar="standard", dtype="int64")
    return ds


def bad_array_metadata() -> dict:
    return {"zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "float32",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1]}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0.0, "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {}, "dimension_names": ["x"]}


def add_test_routes(app) -> None:
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

    portal = "<!doctype html><html><head><title>Sign in</title></head><body>Please sign in.</body></html>"

    @app.get("/bad/html/zarr.json")
    @app.get("/bad/html/v/c/0")
    def html_page():
        return HTMLResponse(portal)

    @app.get("/bad/malformed/zarr.json")
    def malformed():
        return Response('{"zarr_format": 3, "node_type": "group", "attributes": {"title": "cut he',
                        media_type="application/json")

    array = bad_array_metadata()
    root = {"zarr_format": 3, "node_type": "group", "attributes": {},
            "consolidated_metadata": {"kind": "inline", "must_understand": False, "metadata": {"v": array}}}

    @app.get("/bad/{prefix}/zarr.json")
    def bad_root(prefix: str):
        if prefix not in BAD_PREFIXES:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(json.dumps(root), media_type="application/json")

    @app.get("/bad/{prefix}/v/zarr.json")
    def bad_array(prefix: str):
        if prefix not in BAD_PREFIXES:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return Response(json.dumps(array), media_type="application/json")

    async def zeros(total: int):
        sent = 0
        while sent < total:
            piece = PIECE[: min(len(PIECE), total - sent)]
            sent += len(piece)
            yield piece

    @app.get("/bad/huge/v/c/0")
    def huge():
        return StreamingResponse(zeros(HUGE_BYTES), media_type="application/octet-stream",
                                 headers={"Content-Length": str(HUGE_BYTES)})

    @app.get("/bad/huge-chunked/v/c/0")
    def huge_chunked():
        return StreamingResponse(zeros(HUGE_BYTES), media_type="application/octet-stream")

    @app.get("/bad/redirect/v/c/0")
    def redirect():
        return RedirectResponse("http://data.example.org/x", status_code=302)

    @app.get("/bad/stall/v/c/0")
    async def stall():
        await asyncio.sleep(30)
        return Response(b"\0" * 4, media_type="application/octet-stream")

    @app.get("/bad/short/v/c/0")
    def short():
        async def body():
            yield b"\1" * 16  # uvicorn then closes the connection: the answer is cut short

        return StreamingResponse(body(), media_type="application/octet-stream", headers={"Content-Length": "1024"})

    @app.api_route("/datasets/air/fail", methods=["GET", "POST"])
    @app.api_route("/datasets/air/fail/{rest:path}", methods=["GET", "POST"])
    def fail():
        return JSONResponse({"detail": "origin failure (test route)"}, status_code=500)

    counter = {"n": 0}

    @app.api_route("/datasets/air/echo/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def echo(rest: str, request: Request):
        counter["n"] += 1
        body = await request.body()
        return JSONResponse({"method": request.method, "path": request.url.path,
                             "query": request.url.query, "body": body.decode("utf-8", "replace"),
                             "count": counter["n"]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-version", type=int, default=1)
    parser.add_argument("--values-offset", type=float, default=0.0)
    parser.add_argument("--test-routes", action="store_true")
    args = parser.parse_args(argv)
    if args.data_version < 1:
        parser.error("--data-version must be 1 or more")

    started = time.monotonic()
    import uvicorn
    import xpublish
    from xpublish.plugins.included.dataset_info import DatasetInfoPlugin
    from xpublish_edr import CfEdrPlugin
    from xpublish_zarr import ZarrPlugin

    ds = build_dataset(args.data_version, args.values_offset)
    rest = xpublish.Rest({"air": ds}, plugins={"info": DatasetInfoPlugin(), "zarr": ZarrPlugin(),
                                               "edr": CfEdrPlugin()})
    app = rest.app
    if args.test_routes:
        # Registered after xpublish's routers; none of theirs matches /bad/... or air/fail, air/echo.
        add_test_routes(app)
    print(f"xpublish_origin: data version {args.data_version}, values offset {args.values_offset}, "
          f"test routes {'on' if args.test_routes else 'off'}; ready in {time.monotonic() - started:.1f}s "
          f"at http://127.0.0.1:{args.port}/datasets/air/", flush=True)
    # A stop (scripts/stack xpublish-restart, stop_all) waits at most 1 s for requests in flight,
    # such as a /bad/stall/... a worker gave up on.
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info", access_log=True,
                timeout_graceful_shutdown=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
