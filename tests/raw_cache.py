"""What a cache server holds, read and written past the service's client, as another client of
the same server would: to look at entries, their time to live, and to plant some."""

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from flask import Flask

from cachebench.servers import needed
from service.cache import cache


class RawRedis:
    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def get(self, key: str) -> bytes | None:
        return self.client.get(key)

    def set(self, key: str, value: Any) -> None:
        """Store bytes as they are, anything else pickled as cachelib's Redis client does."""
        self.client.set(key, value if isinstance(value, bytes) else b"!" + pickle.dumps(value))

    def keys(self, prefix: str) -> list[str]:
        return [k.decode() for k in self.client.scan_iter(match=f"{prefix}*")]

    def ttl(self, key: str) -> int:
        return self.client.ttl(key)

    def close(self) -> None:
        self.client.close()


RAW = {"redis": RawRedis}


@contextmanager
def raw_cache(app: Flask) -> Iterator[RawRedis]:
    """The server of `app`'s cache, reached directly."""
    (server,) = needed([app.config["CACHE_BACKEND"]])
    raw = RAW[server.name](app.config[server.setting])
    try:
        yield raw
    finally:
        raw.close()


def full_key(app: Flask, key: str) -> str:
    """The name under which `app`'s cache stores `key` on its server."""
    with app.app_context():
        return cache.cache.key_prefix + key
