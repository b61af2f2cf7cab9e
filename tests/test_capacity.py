"""A cache's capacity: its parsing, the matrix's dimensions, the settings each backend gets,
and a real run whose cache is smaller than its keyspace."""

import re
import socket

import pandas as pd
import pytest
import redis

from cachebench.capacity import MEMCACHED_ENTRIES_PER_MB, capacity_entries, sized_server
from cachebench.plan import Options, OptionsError, plan, validate
from service.cache import cache
from tests.test_matrix import cachebench


def test_a_capacity_is_a_count_of_entries_or_a_share_of_the_keys():
    assert capacity_entries("250", 1000) == 250
    assert capacity_entries("10%", 1000) == 100
    assert capacity_entries("0.01%", 1000) == 1  # never an empty cache


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"capacities": ("0",)}, "--capacities: '0' is not a count of entries >= 1"),
        ({"capacities": ("ten",)}, "--capacities: 'ten' is not a count of entries >= 1 or"),
        ({"capacities": ("150%",)}, "--capacities: '150%' is not a count"),
        ({"capacities": ("1",), "eviction_policies": ("mru",)}, "unknown eviction policy 'mru'"),
        ({"eviction_policies": ("allkeys-lfu",)}, "--eviction-policies needs --capacities"),
    ],
)
def test_bad_capacity_options_say_what_to_change(changes, says):
    with pytest.raises(OptionsError, match=re.escape(says)):
        validate(Options(**changes))


def test_capacity_and_policy_are_cells_of_the_caches_they_apply_to():
    options = Options(
        repeats=1, scenarios=("read_heavy",), keys=(100, 1000), capacities=("10%",),
        eviction_policies=("allkeys-lru", "allkeys-lfu"),
    )  # fmt: skip
    names = [r.name for r in plan(options, ("none", "simple", "redis"))]
    assert names == [
        "none-read_heavy-100-r1",
        "none-read_heavy-1000-r1",
        "simple-read_heavy-100-10%-r1",
        "simple-read_heavy-1000-10%-r1",
        "redis-read_heavy-100-10%-allkeys-lru-r1",
        "redis-read_heavy-100-10%-allkeys-lfu-r1",
        "redis-read_heavy-1000-10%-allkeys-lru-r1",
        "redis-read_heavy-1000-10%-allkeys-lfu-r1",
    ]


@pytest.mark.parametrize("backend", ["simple", "filesystem"])
def test_cache_threshold_reaches_cachelib(make_app, backend):
    app = make_app(CACHE_BACKEND=backend, CACHE_THRESHOLD=7)
    assert app.extensions["cache"][cache]._threshold == 7


@pytest.mark.redis
def test_a_sized_redis_answers_with_its_maxmemory_and_policy(session_servers):
    session_servers("redis")  # or skip, or fail under CI, as the other Redis tests
    with sized_server("redis", 1000, "allkeys-lfu", 3) as (server, given):
        client = redis.Redis.from_url(server.address)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lfu"}
        assert int(client.config_get("maxmemory")["maxmemory"]) == given["redis_maxmemory"]
        assert 50 < given["redis_bytes_per_entry"] < 500
        client.close()


@pytest.mark.memcached
def test_a_sized_memcached_gets_whole_megabytes(session_servers):
    session_servers("memcached")
    with sized_server("memcached", 3 * MEMCACHED_ENTRIES_PER_MB, "lru", 3) as (server, given):
        host, port = server.address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"stats\r\n")
            stats = b""
            while not stats.endswith(b"END\r\n"):
                stats += sock.recv(4096)
        assert b"STAT limit_maxbytes 3145728\r\n" in stats
        assert given == {"memcached_mb": 3, "capacity_effective": 3 * MEMCACHED_ENTRIES_PER_MB}


def test_a_cache_smaller_than_its_keyspace_misses_and_its_theory_is_beside_it(tmp_path):
    out = tmp_path / "run"
    result = cachebench(
        "run", "--caches", "simple", "--scenarios", "read_heavy", "--repeats", "1",
        "--warmup", "1", "--duration", "2", "--work-ms", "5", "--keys", "200",
        "--capacities", "10", "--seed", "none", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert (row["capacity_entries"], row["eviction_policy"]) == (10, "fifo")
    assert 0 < row["hit_rate_che"] < row["hit_rate_top_c"] < 1
    assert 0 < row["hit_rate"] < row["hit_rate_top_c"] + 0.05
    assert "Hit-rate curve" in (out / "report.md").read_text()
