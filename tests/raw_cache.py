"""What a cache server holds, read and written past the service's client, as another client of
the same server would: to look at entries, their time to live, and to plant some."""

import pickle
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import pymemcache
import redis
from flask import Flask
from pymemcache.serde import pickle_serde

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


class RawMemcached:
    def __init__(self, address: str) -> None:
        # pymemcache's own serde: bytes as they are, anything else pickled (flag 1).
        self.client = pymemcache.Client(address, serde=pickle_serde, default_noreply=False)
        self.address = pymemcache.client.base.normalize_server_spec(address)

    def get(self, key: str) -> bytes | None:
        return self.client.get(key)

    def set(self, key: str, value: Any) -> None:
        self.client.set(key, value)

    def keys(self, prefix: str) -> list[str]:
        """memcached's crawler lists every key it holds, URL-encoded, one a line."""
        lines = self._ask(b"lru_crawler metadump all\r\n", b"END\r\n").splitlines()
        keys = [unquote(line.split()[0].removeprefix(b"key=").decode()) for line in lines[:-1]]
        return [k for k in keys if k.startswith(prefix)]

    def ttl(self, key: str) -> int:
        """Seconds left, as the meta get's `t` flag answers (`HD t297`), -1 for never."""
        answer = self._ask(f"mg {key} t\r\n".encode(), b"\r\n").split()
        assert answer[0] == b"HD", answer
        return int(answer[1].removeprefix(b"t"))

    def _ask(self, command: bytes, end: bytes) -> bytes:
        with socket.create_connection(self.address, timeout=10) as sock:
            sock.sendall(command)
            answer = b""
            while not answer.endswith(end):
                answer += sock.recv(65536)
            return answer

    def close(self) -> None:
        self.client.close()


RAW = {"redis": RawRedis, "memcached": RawMemcached}


@contextmanager
def raw_cache(app: Flask) -> Iterator[RawRedis | RawMemcached]:
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
