#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the fuzz corpora into fuzz/corpus/<target>/.

Run from the repository root: `python3 fuzz/seeds/make_seeds.py`. Seeds are named `seed-*` so
that `cargo fuzz cmin` results (named by content hash) and seeds are told apart. Every seed is a
real input shape: the kerchunk test fixtures, the worker's routes, Range headers clients send,
Upstash REST replies, codec fixtures. The binary framing of each target is documented in fuzz/harness.rs.
"""

import base64
import json
import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
MAX_SEED = 64 * 1024


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) <= MAX_SEED, (target, name, len(data))
    path = CORPUS / target / f"seed-{name}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def kerchunk():
    for fixture in sorted((ROOT / "tests" / "fixtures" / "kerchunk").glob("*.json")):
        data = fixture.read_bytes()
        if len(data) <= MAX_SEED:
            write("kerchunk_refs", fixture.stem, data)
    b64 = base64.b64encode(b"\x00\x01\x02\xff").decode()
    sets = {
        "v0_minimal": {".zgroup": '{"zarr_format":2}'},
        "v0_mixed": {
            ".zgroup": '{"zarr_format":2}',
            "a/.zarray": {"shape": [2], "chunks": [1], "dtype": "<i4"},
            "a/0": ["http://origin.test/a.bin", 0, 4],
            "a/1": ["https://origin.test/a.bin", 4, 4],
            "b/0": ["http://origin.test/whole.bin"],
            "c/0": "base64:" + b64,
            "d/0": "plain text \u00e9 \u2603",
        },
        "v1_relative_and_s3": {
            "version": 1,
            "refs": {
                ".zgroup": '{"zarr_format":2}',
                "r/0": ["data/r.bin", 0, 10],
                "r/1": ["../up/r.bin", 10, 10],
                "r/2": ["/abs/r.bin"],
                "r/3": ["//other.test/r.bin", 5, 5],
                "r/4": ["?q=1"],
                "s/0": ["s3://bucket/key with space/%.nc", 0, 100],
                "s/1": ["s3a://bucket/k.nc"],
            },
        },
        "v1_templates": {
            "version": 1,
            "templates": {"u": "http://origin.test/raw", "f": "{{c}}/{{d}}"},
            "refs": {
                "t/0": ["{{u}}/a.bin", 0, 8],
                "t/1": ["{{f(c='http://origin.test', d='b.bin')}}", 8, 8],
                "t/2": ["{{ u }}/c.bin"],
            },
        },
        "v1_gen": {
            "version": 1,
            "templates": {"u": "http://origin.test"},
            "gen": [
                {
                    "key": "v/{{i}}.{{j}}",
                    "url": "{{u}}/v_{{i}}.bin",
                    "offset": "{{j * 100}}",
                    "length": "100",
                    "dimensions": {"i": {"start": 0, "stop": 3}, "j": [0, 1, 2]},
                },
                {
                    "key": "w/{{k % 4}}/{{k // 4}}",
                    "url": "{{u}}/w.bin",
                    "offset": "{{k * 8 + 16}}",
                    "length": "8",
                    "dimensions": {"k": {"start": 0, "stop": 16, "step": 1}},
                },
                {
                    "key": "big/{{n}}",
                    "url": "{{u}}/big_{{n}}.bin",
                    "dimensions": {"n": {"stop": 1000000000}},
                },
            ],
            "refs": {"v/.zarray": '{"shape":[3,3]}', "v/0.0": ["http://origin.test/x", 1, 2]},
        },
        "v1_unsorted_duplicates": {
            "version": 1,
            "refs": {"z": "1", "a": "2", "m/0": ["http://h/x", 0, 1]},
        },
        "v1_bad_version": {"version": 2, "refs": {}},
        "v1_range_limits": {
            "version": 1,
            "refs": {
                "max": ["http://h/x", 18446744073709551614, 1],
                "zero": ["http://h/x", 0, 0],
            },
        },
    }
    for name, value in sets.items():
        write("kerchunk_refs", name, json.dumps(value, ensure_ascii=False))
    # Duplicate keys and escapes need hand-written JSON text.
    write(
        "kerchunk_refs",
        "v0_duplicates_escapes",
        '{"k":"1","k":"2","\\u00e9/0":"\\ud83d\\ude00","t\\/0":["http:\\/\\/h\\/x",0,1],'
        '"n":{"a":[1,2.5,-3e2,true,false,null]}}',
    )


def routes():
    lines = [
        ("GET", "/api/health"),
        ("HEAD", "/api/health/"),
        ("GET", "/api/datasets"),
        ("GET", "/api/stats"),
        ("GET", "/api/stats/keys?dataset=a&limit=3"),
        ("GET", "/api/stats/keys?dataset=air&sort=hits&order=desc&limit=50&cursor=abc%3D%3D"),
        ("GET", "/api/stats/history?dataset=air&limit=10"),
        ("GET", "/zarr/air"),
        ("GET", "/zarr/air/"),
        ("GET", "/zarr/air/.zmetadata"),
        ("GET", "/zarr/air/air_temperature/0.0.0"),
        ("HEAD", "/zarr/my-data.v2/grp/x/.zarray"),
        ("GET", "/zarr/air/t%C3%A9mp/0"),
        ("GET", "/zarr/air/a%20b/0"),
        ("GET", "/zarr/air/../secret"),
        ("GET", "/zarr/air/a%2Fb"),
        ("GET", "/zarr/air/%2E%2E/x"),
        ("GET", "/zarr/.hidden/x"),
        ("POST", "/zarr/air/.zgroup"),
        ("POST", "/api/admin/purge"),
        ("POST", "/api/admin/warm/"),
        ("POST", "/api/admin/sweep"),
        ("GET", "/api/admin/purge"),
        ("GET", "/api/admin/datasets"),
        ("PUT", "/api/admin/datasets/air"),
        ("DELETE", "/api/admin/datasets/run-time_1.x"),
        ("GET", "/api/adminx"),
        ("GET", "/api/admin"),
        ("OPTIONS", "/zarr/air/air_temperature/0.0.0"),
        ("GET", "/"),
        ("GET", "/index.html?a=1&b=x+y&c=%E2%98%83&&d"),
    ]
    for i, (method, target) in enumerate(lines):
        write("route_and_key", f"{i:02}", f"{method}\n{target}")


def ranges():
    cases = [
        (1000, "bytes=0-99"),
        (1000, "bytes=500-"),
        (1000, "bytes=-100"),
        (1000, "bytes=-0"),
        (1000, "bytes=999-999"),
        (1000, "bytes=1000-"),
        (1000, "bytes=5-2"),
        (1000, "bytes=0-1,4-5"),
        (1000, "items=0-1"),
        (1000, " bytes= 10 - 20 "),
        (0, "bytes=0-"),
        (0, "bytes=-5"),
        (2**64 - 1, "bytes=18446744073709551614-18446744073709551615"),
        (10, "bytes=99999999999999999999-"),
    ]
    inm = ['"00ff"', 'W/"00ff"', '"x", "00ff"', "*", ""]
    for i, (size, header) in enumerate(cases):
        body = f"{header}\n{inm[i % len(inm)]}\n\x00\xff"
        write("range_header", f"{i:02}", struct.pack("<Q", size) + body.encode("latin-1"))


def upstash():
    def b64(data):
        return base64.b64encode(data).decode()

    replies = [
        (200, '{"result":"OK"}'),
        (200, '{"result":null}'),
        (200, '{"result":42}'),
        (200, '{"result":-9223372036854775808}'),
        (200, json.dumps({"result": b64(b"PONG")})),
        (200, json.dumps({"result": [b64("\u00e9".encode()), [1, None, "OK"]]})),
        (200, '[{"result":1},{"error":"ERR x"}]'),
        (200, json.dumps([{"result": "OK"}, {"error": "WRONGTYPE x"}, {"result": b64(b"v")}])),
        (200, '[{"result":["a2V5","MTA="]},{"result":[]}]'),
        (200, '{"error":"EXECABORT Transaction discarded"}'),
        (400, '{"error":"ERR unknown command \'FOO\'"}'),
        (401, '{"error":"Unauthorized"}'),
        (502, "<html>bad gateway</html>"),
        (200, "not json"),
        (200, '{"result":"%%%"}'),
        (200, '{"result":1.5}'),
        (200, '{"result":true}'),
        (200, '{"result":{"a":1}}'),
        (200, "[]"),
        (200, '[{"nothing":1}]'),
    ]
    for i, (status, body) in enumerate(replies):
        write("upstash_reply", f"{i:02}", struct.pack("<H", status) + body.encode())


def codecs():
    """The codec fixtures (numcodecs- and eccodes-written chunks), each behind the index of the
    chain of `harness::CODEC_CHAINS` that reads its codec."""
    fixtures = ROOT / "tests" / "fixtures" / "codecs"
    chain = {"blosc_blosclz_bytes": 4, "zlib_shuffle_filter": 5, "zstd_delta": 6, "gzip": 1}
    for path in sorted(fixtures.glob("*.bin")) + sorted(fixtures.glob("*.grib2")):
        name = path.stem
        pick = chain.get(name, 7 if name.startswith("grib") else 3)
        data = path.read_bytes()
        if len(data) < MAX_SEED:
            write("codec_decode", name, bytes([pick]) + data)
    write("codec_decode", "raw-be-f8", bytes([9]) + struct.pack(">100d", *range(100)))


if __name__ == "__main__":
    kerchunk()
    routes()
    ranges()
    upstash()
    codecs()
