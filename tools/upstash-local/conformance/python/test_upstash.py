"""Conformance of upstash-local with the official ``upstash-redis`` client,
plus raw-HTTP checks of the REST protocol (httpx, the client's own HTTP
library).

Run by ../run, which starts a throwaway redis-server and upstash-local and
exports UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN. Every test uses
its own key prefix and deletes its keys afterwards.
"""

import base64
import os
import uuid
from urllib.parse import quote

import httpx
import pytest
from upstash_redis import Redis
from upstash_redis.errors import UpstashError

URL = os.environ.get("UPSTASH_REDIS_REST_URL", "")
TOKEN = os.environ.get("UPSTASH_REDIS_REST_TOKEN", "")

if not URL or not TOKEN:
    raise RuntimeError(
        "UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN must be set (use ../run)"
    )


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


@pytest.fixture(scope="session")
def http():
    with httpx.Client(base_url=URL, timeout=30) as client:
        yield client


def rest(http, path, body=None, method="POST", headers=None, token=TOKEN, content=None):
    """Raw REST call; returns (status, headers, parsed JSON body)."""
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    kwargs = {}
    if body is not None:
        kwargs["json"] = body
    if content is not None:
        kwargs["content"] = content
    r = http.request(method, path, headers=h, **kwargs)
    return r.status_code, r.headers, (r.json() if r.content else None)


@pytest.fixture
def prefix(http):
    p = f"conf:py:{uuid.uuid4()}:"
    yield p
    cursor = "0"
    while True:
        _, _, body = rest(http, "/", ["SCAN", cursor, "MATCH", p + "*", "COUNT", 1000])
        cursor, keys = body["result"]
        if keys:
            rest(http, "/", ["DEL", *keys])
        if cursor == "0":
            break


@pytest.fixture(params=["base64", None], ids=["base64", "text"])
def redis(request):
    """The official client, with its default base64 encoding and without."""
    return Redis(URL, TOKEN, rest_encoding=request.param, allow_telemetry=False)


# --- the official client -------------------------------------------------


def test_unicode_and_binary_looking_round_trip(redis, prefix):
    values = [
        "héllo wörld ✓ 日本語 😀",
        "\x00\x01\x02\x7f\x80\xff end",
        'quotes " and \\ backslash\nnew line\ttab',
        "\ufffd replacement char",
        "",
    ]
    for i, v in enumerate(values):
        assert redis.set(f"{prefix}{i}", v) is True
        assert redis.get(f"{prefix}{i}") == v, f"value {i}"
    assert redis.set(f"{prefix}ключ", "значение") is True
    assert redis.get(f"{prefix}ключ") == "значение"


def test_pipeline(redis, prefix):
    p = redis.pipeline()
    p.set(f"{prefix}a", "1")
    p.incr(f"{prefix}a")
    p.get(f"{prefix}a")
    p.rpush(f"{prefix}l", "x", "y")
    p.lrange(f"{prefix}l", 0, -1)
    assert p.exec() == [True, 2, "2", 2, ["x", "y"]]


def test_pipeline_error_does_not_stop_later_commands(redis, prefix):
    p = redis.pipeline()
    p.set(f"{prefix}s", "str")
    p.lpush(f"{prefix}s", "boom")
    p.set(f"{prefix}after", "ran")
    with pytest.raises(UpstashError, match="WRONGTYPE"):
        p.exec()
    assert redis.get(f"{prefix}after") == "ran"


def test_multi_transaction(redis, prefix):
    tx = redis.multi()
    tx.set(f"{prefix}k", "a")
    tx.append(f"{prefix}k", "b")
    tx.get(f"{prefix}k")
    tx.hset(f"{prefix}h", "f", "v")
    assert tx.exec() == [True, 2, "ab", 1]


def test_hincrby(redis, prefix):
    assert redis.hincrby(f"{prefix}h", "n", 5) == 5
    assert redis.hincrby(f"{prefix}h", "n", -7) == -2
    assert redis.hget(f"{prefix}h", "n") == "-2"


def test_hset_hgetall(redis, prefix):
    assert redis.hset(f"{prefix}h", values={"name": "zarr", "size": 3, "uni": "ß✓"}) == 3
    assert redis.hgetall(f"{prefix}h") == {"name": "zarr", "size": "3", "uni": "ß✓"}
    assert redis.hgetall(f"{prefix}missing") == {}


def test_zadd_zrange_withscores(redis, prefix):
    assert redis.zadd(f"{prefix}z", {"a": 1.5, "b": 2, "c": -0.25}) == 3
    assert redis.zrange(f"{prefix}z", 0, -1, withscores=True) == [
        ("c", -0.25),
        ("a", 1.5),
        ("b", 2.0),
    ]
    assert redis.zrange(f"{prefix}z", 0, -1) == ["c", "a", "b"]
    assert redis.zscore(f"{prefix}z", "a") == 1.5


def test_expire_ttl(redis, prefix):
    redis.set(f"{prefix}k", "v")
    assert redis.ttl(f"{prefix}k") == -1
    assert redis.expire(f"{prefix}k", 100) is True
    assert 90 < redis.ttl(f"{prefix}k") <= 100
    assert redis.ttl(f"{prefix}missing") == -2


def test_set_nx_px_second_fails(redis, prefix):
    assert redis.set(f"{prefix}lock", "one", nx=True, px=5000) is True
    # the client maps SET's nil reply (NX not met) to False
    assert redis.set(f"{prefix}lock", "two", nx=True, px=5000) is False
    assert redis.get(f"{prefix}lock") == "one"
    assert 0 < redis.pttl(f"{prefix}lock") <= 5000


def test_error_reply_raises_upstash_error(redis, prefix):
    redis.set(f"{prefix}s", "string")
    with pytest.raises(UpstashError, match="WRONGTYPE"):
        redis.lpush(f"{prefix}s", "x")
    with pytest.raises(UpstashError, match="not an integer"):
        redis.incr(f"{prefix}s")


def test_scripts_load_exists_evalsha_noscript(redis, prefix):
    text = f"-- {prefix}\nredis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])"
    sha = redis.script_load(text)
    assert len(sha) == 40 and all(c in "0123456789abcdef" for c in sha)
    assert redis.script_exists(sha, "0" * 40) == [True, False]
    assert redis.evalsha(sha, keys=[f"{prefix}k"], args=["v1"]) == "v1"
    with pytest.raises(UpstashError, match="NOSCRIPT"):
        redis.evalsha("f" * 40, keys=[], args=[])
    assert redis.eval("return ARGV[1]", keys=[], args=["x"]) == "x"


def test_wrong_token_is_refused():
    bad = Redis(URL, "not-the-token", rest_retries=0, allow_telemetry=False)
    with pytest.raises(UpstashError, match="(?i)wrongpass|unauthorized"):
        bad.get("conf:py:any")


# --- raw HTTP ---------------------------------------------------------------


def test_path_form_and_post_body(http, prefix):
    k = quote(f"{prefix}a", safe="")
    assert rest(http, f"/set/{k}/h%C3%A9llo%20there", method="GET")[2] == {"result": "OK"}
    assert rest(http, "/", ["GET", f"{prefix}a"])[2] == {"result": "héllo there"}
    status, _, body = rest(http, f"/set/{k}?EX=100", content=b"posted / body ?")
    assert (status, body) == (200, {"result": "OK"})
    assert rest(http, f"/get/{k}", method="GET")[2] == {"result": "posted / body ?"}
    assert 90 < rest(http, f"/ttl/{k}", method="GET")[2]["result"] <= 100


def test_query_token(http, prefix):
    status, _, body = rest(http, f"/echo/hi?_token={TOKEN}", method="GET", token=None)
    assert (status, body) == (200, {"result": "hi"})
    assert rest(http, "/echo/hi?_token=nope", method="GET", token=None)[0] == 401


def test_401_json_body(http):
    for token in (None, "wrong"):
        status, _, body = rest(http, "/", ["PING"], token=token)
        assert status == 401
        assert isinstance(body["error"], str) and body["error"]


def test_405_json_body(http):
    for method in ("DELETE", "PATCH", "OPTIONS"):
        status, _, body = rest(http, "/get/x", method=method)
        assert status == 405, method
        assert isinstance(body["error"], str)


def test_sync_token_header(http):
    values = []
    for token in (TOKEN, "wrong", TOKEN):
        _, headers, _ = rest(http, "/", ["PING"], token=token)
        assert headers.get("upstash-sync-token"), "header missing"
        values.append(int(headers["upstash-sync-token"]))
    assert values == sorted(values) and len(set(values)) == len(values)


def test_base64_nested_and_ok(http, prefix):
    h = {"Upstash-Encoding": "base64"}
    assert rest(http, "/", ["SET", f"{prefix}k", "bar"], headers=h)[2] == {"result": "OK"}
    assert rest(http, "/", ["GET", f"{prefix}k"], headers=h)[2] == {"result": b64("bar")}
    script = "return {redis.status_reply('OK'), {ARGV[1], 7, {ARGV[2]}}, false}"
    _, _, body = rest(http, "/", ["EVAL", script, 0, "ab", "ü"], headers=h)
    assert body == {"result": ["OK", [b64("ab"), 7, [b64("ü")]], None]}
    _, _, body = rest(
        http,
        "/multi-exec",
        [["SET", f"{prefix}m", "v"], ["GET", f"{prefix}m"], ["ZADD", f"{prefix}z", 1.5, "a"],
         ["ZRANGE", f"{prefix}z", 0, -1, "WITHSCORES"]],
        headers=h,
    )
    assert body == [
        {"result": "OK"},
        {"result": b64("v")},
        {"result": 1},
        {"result": [b64("a"), b64("1.5")]},
    ]


def test_binary_round_trip(http, prefix):
    data = bytes([0x00, 0xFF, 0x80, 0x01, 0xFE, 0x0A, 0x22, 0x5C, 0xC3])
    k = quote(f"{prefix}bin", safe="")
    assert rest(http, f"/set/{k}", content=data)[2] == {"result": "OK"}
    _, _, body = rest(http, f"/get/{k}", method="GET", headers={"Upstash-Encoding": "base64"})
    assert base64.b64decode(body["result"]) == data
    _, _, body = rest(http, f"/get/{k}", method="GET")
    assert "\ufffd" in body["result"]


def test_over_10mb_refused(http, prefix):
    big = "x" * (10 * 1024 * 1024 + 1)
    status, _, body = rest(http, "/", ["SET", f"{prefix}big", big])
    assert status == 400
    assert body["error"].startswith("ERR max request size exceeded")
    assert rest(http, "/", ["EXISTS", f"{prefix}big"])[2] == {"result": 0}


def test_discarded_transaction_is_one_error(http, prefix):
    status, _, body = rest(http, "/multi-exec", [["SET", f"{prefix}b", "1"], ["NOPE"]])
    assert status == 400
    assert isinstance(body, dict) and "unknown command" in body["error"]
    assert rest(http, "/", ["EXISTS", f"{prefix}b"])[2] == {"result": 0}


def test_unsupported_commands_refused(http):
    for cmd in (["SUBSCRIBE", "c"], ["MONITOR"], ["SELECT", "1"], ["BRPOP", "conf:py:l", 0]):
        status, _, body = rest(http, "/", cmd)
        assert status == 400, cmd
        assert body["error"].startswith("ERR ")


def test_stats_count_pipeline_as_n_commands_one_round_trip(http, prefix):
    assert rest(http, "/__stats/reset")[0] == 200
    n = 5
    status, _, _ = rest(http, "/pipeline", [["SET", f"{prefix}{i}", i] for i in range(n)])
    assert status == 200
    _, _, stats = rest(http, "/__stats", method="GET")
    assert stats["http_requests"] == 1
    assert stats["commands"] == n
    assert stats["pipelines"] == 1
    assert stats["errors"] == 0
    assert rest(http, "/__stats", method="GET", token=None)[0] == 401
