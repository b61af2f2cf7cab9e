"""A cache's capacity in entries, the common unit, and how each backend is given it:
CACHE_THRESHOLD for simple and filesystem, a private server sized for it for redis
(maxmemory from a measured size of an entry) and memcached (-m in whole megabytes).
"""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from cachebench.servers import SERVERS, PrivateServer, private_instance
from service.cache_format import JSONSerializer

# What each backend drops when full. cachelib drops the expired entries, then those expiring
# first: with one TTL, the oldest set (FIFO). Redis takes a policy (--eviction-policies).
EVICTION = {"simple": "fifo", "filesystem": "fifo", "memcached": "lru", "redis": None}
REDIS_POLICIES = (
    "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu",
    "volatile-random", "volatile-ttl",
)  # fmt: skip
DEFAULT_REDIS_POLICY = "allkeys-lru"
# Without a capacity, simple and filesystem hold the whole keyspace, as Redis does (cachelib's
# own default would drop entries past 500).
UNBOUNDED = 10**9
# A cached video of the service, as the `cached` strategy writes it (the 404 it caches for an
# id never written is smaller): what one entry of a Redis cache is measured with.
SAMPLE_KEY = "cachebench:0123456789ab:get/videos/{id}"
SAMPLE_VALUE = JSONSerializer().dumps(({"name": "p1a2b3c4-u8#123456", "views": 1, "likes": 0}, 200))
CALIBRATION_ENTRIES = 2000
# Redis counts its clients' buffers in used_memory, some 45 kB a connection here (Redis 7.0):
# more than a small cache's entries, so maxmemory leaves room for the service's connections.
CALIBRATION_CONNECTIONS = 8
# memcached stores such an entry in its 192-byte chunk class (measured with memcached 1.6.18,
# `stats slabs`): a slab page of 1 MB holds 5461. Memory comes in whole pages per slab class
# and memcached needs -m 2 at least (its 1 MB item limit must be at most half of it).
MEMCACHED_ENTRIES_PER_MB = 2**20 // 192
MEMCACHED_MIN_MB = 2


def capacity_entries(capacity: str, keys: int) -> int:
    """Entries of `capacity`, a count ("1000") or a share of the keyspace ("10%"), at least 1;
    raises ValueError for anything else."""
    text = capacity.strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1])
            if not 0 < share <= 100:
                raise ValueError
            return max(1, round(keys * share / 100))
        entries = int(text)
    except ValueError:
        raise ValueError(
            f"{capacity!r} is not a count of entries >= 1 or a share of the keys such as 10%"
        ) from None
    if entries < 1:
        raise ValueError(f"{capacity!r} is not a count of entries >= 1")
    return entries


def memcached_megabytes(entries: int) -> int:
    return max(MEMCACHED_MIN_MB, math.ceil(entries / MEMCACHED_ENTRIES_PER_MB))


@contextmanager
def sized_server(
    name: str, entries: int, policy: str, connections: int
) -> Iterator[tuple[PrivateServer, dict]]:
    """A private server of `name` (redis, memcached) that holds about `entries` entries with
    `connections` clients, and what it was given (recorded with the run)."""
    server = SERVERS[name]
    if name == "memcached":
        megabytes = memcached_megabytes(entries)
        with private_instance(server, extra_args=["-m", str(megabytes)]) as instance:
            yield (
                instance,
                {
                    "memcached_mb": megabytes,
                    "capacity_effective": megabytes * MEMCACHED_ENTRIES_PER_MB,
                },
            )
        return
    with private_instance(server, extra_args=["--maxmemory-policy", policy]) as instance:
        yield instance, size_redis(instance.address, entries, connections)


def size_redis(address: str, entries: int, connections: int) -> dict:
    """Set maxmemory to the empty server's memory plus `entries` entries and `connections`
    clients, each as measured on this server: CALIBRATION_ENTRIES sample entries with a TTL
    (so with the keyspace's and the expiry table's overhead) and CALIBRATION_CONNECTIONS
    clients, over their count."""
    client = redis.Redis.from_url(address)
    others = [redis.Redis.from_url(address) for _ in range(CALIBRATION_CONNECTIONS)]
    try:
        alone = client.info("memory")["used_memory"]
        for other in others:
            other.get(SAMPLE_KEY.format(id=0))
        per_connection = (client.info("memory")["used_memory"] - alone) / len(others)
        empty = client.info("memory")["used_memory"]
        pipe = client.pipeline(transaction=False)
        for i in range(CALIBRATION_ENTRIES):
            pipe.set(SAMPLE_KEY.format(id=100_000 + i), SAMPLE_VALUE, ex=300)
        pipe.execute()
        per_entry = (client.info("memory")["used_memory"] - empty) / CALIBRATION_ENTRIES
        client.flushall()
        for other in others:
            other.close()
        room = entries * per_entry + connections * per_connection
        maxmemory = client.info("memory")["used_memory"] + math.ceil(room)
        client.config_set("maxmemory", maxmemory)
    finally:
        client.close()
        for other in others:
            other.close()
    return {
        "redis_maxmemory": maxmemory,
        "redis_bytes_per_entry": round(per_entry, 1),
        "redis_bytes_per_connection": round(per_connection),
    }
