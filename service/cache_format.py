"""Cached values as JSON, never pickle: the backends the service uses and their serializer.

Whoever can write to a cache (the shared Redis, the cache directory) could make the service
run code if the values read back were unpickled; JSON decodes to data only. A video and its
status are plain data; Flask's tagged JSON keeps what JSON alone would change, so that what
comes back is what was stored: a tuple stays a tuple, and the 404 that Flask-Caching's
`cached` stores (the HTTPException the view raised) stays one.
"""

import json
import logging
import os
from pathlib import Path
from typing import IO, Any, ClassVar

from flask import Flask
from flask.json.tag import JSONTag, PassDict, PassList, TagDict, TaggedJSONSerializer, TagTuple
from flask_caching.backends import FileSystemCache, MemcachedCache, RedisCache, SimpleCache
from pymemcache.client.base import PooledClient
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException, default_exceptions

from service.backends import private_directory

log = logging.getLogger(__name__)


class UndecodableEntry(ValueError):
    """A cached value not in this format: planted, corrupt, or written by an older version."""


class TagHTTPException(JSONTag):
    """An HTTPException as abort() raises it: Werkzeug's class for its code, with the data
    Flask-RESTful's abort attaches (the JSON message)."""

    key = " http"

    def check(self, value: Any) -> bool:
        return (
            isinstance(value, HTTPException)
            and value.response is None
            and type(value) is default_exceptions.get(value.code)
        )

    def to_json(self, value: HTTPException) -> dict:
        fields = {"code": value.code, "description": value.description}
        if hasattr(value, "data"):
            fields["data"] = self.serializer.tag(value.data)
        return fields

    def to_python(self, value: dict) -> HTTPException:
        exception = default_exceptions[value["code"]](value["description"])
        if "data" in value:
            exception.data = value["data"]
        return exception


class CacheJSON(TaggedJSONSerializer):
    """Flask's tagged JSON with only the types the views cache, over the standard json module:
    Flask's own dumps would turn other types into strings (and sort keys), which would not
    come back as stored; this refuses them (TypeError), and Flask-Caching then logs and
    leaves that value uncached."""

    default_tags: ClassVar[list[type[JSONTag]]] = [
        TagDict,
        PassDict,
        TagTuple,
        PassList,
        TagHTTPException,
    ]

    def dumps(self, value: Any) -> str:
        return json.dumps(self.tag(value), separators=(",", ":"))

    def loads(self, value: str | bytes) -> Any:
        return json.loads(value, object_hook=self.untag)


class JSONSerializer:
    """cachelib's serializer interface over CacheJSON: dumps/loads for Redis and SimpleCache,
    dump/load for FileSystemCache's files (after the expiry it writes and reads itself), and
    pymemcache's serde interface, serialize/deserialize, for memcached.

    An integer is its ASCII digits, as cachelib's Redis serializer writes it, so Redis's
    INCRBY still works on it.
    """

    format = CacheJSON()

    def dumps(self, value: Any) -> bytes:
        return self.format.dumps(value).encode()

    def loads(self, data: bytes | None) -> Any:
        if data is None:  # Redis's answer for a key it does not hold
            return None
        try:
            return self.format.loads(data)
        except Exception as exc:  # whatever fails (bytes, JSON, tags, depth), it is not data
            raise UndecodableEntry(f"{type(exc).__name__}: {exc}") from exc

    def dump(self, value: Any, f: IO[bytes]) -> None:
        f.write(self.dumps(value))

    def load(self, f: IO[bytes]) -> Any:
        return self.loads(f.read())

    def serialize(self, key: bytes, value: Any) -> tuple[bytes, int]:
        return self.dumps(value), 0

    def deserialize(self, key: bytes, value: bytes, flags: int) -> Any:
        # The flags are another client's word for its format (1: pickled); whatever they
        # say, the value is read as JSON.
        return self.loads(value)


# The serializer is a class attribute, so that it is already in place when a backend's
# constructor writes (FileSystemCache writes its entry count there).
class JSONSimpleCache(SimpleCache):
    serializer = JSONSerializer()


class JSONFileSystemCache(FileSystemCache):
    serializer = JSONSerializer()

    def set(
        self, key: str, value: Any, timeout: int | None = None, mgmt_element: bool = False
    ) -> bool:
        # A directory removed while serving (an operator, a cleanup of /tmp) would otherwise
        # fail every write with a traceback, and the cache stay off until a restart. Reads
        # need nothing: a missing file is a miss.
        if not os.path.isdir(self._path):
            log.warning("the cache directory %s was removed: made again", self._path)
            private_directory(Path(self._path))
        return super().set(key, value, timeout, mgmt_element)


def client_timeouts_s(config: dict) -> tuple[float, float]:
    """The cache client's (connect, socket) timeouts in seconds, from the settings in
    milliseconds that service/backends.py hands the backend."""
    return config["CACHE_CONNECT_TIMEOUT_MS"] / 1000, config["CACHE_SOCKET_TIMEOUT_MS"] / 1000


class JSONRedisCache(RedisCache):
    serializer = JSONSerializer()

    @classmethod
    def factory(cls, app: Flask, config: dict, args: list, kwargs: dict) -> "JSONRedisCache":
        connect_s, socket_s = client_timeouts_s(config)
        # Flask-Caching hands CACHE_OPTIONS to redis.from_url with CACHE_REDIS_URL.
        options = {
            "socket_connect_timeout": connect_s,
            "socket_timeout": socket_s,
            # Never retried: each retry would wait the timeout again. from_url's connections
            # do not retry today, but redis-py's Redis() retries a timeout 10 times by default.
            "retry": Retry(NoBackoff(), 0),
        }
        return super().factory(app, {**config, "CACHE_OPTIONS": options}, args, kwargs)

    def close(self) -> None:
        """Close the connections to Redis (see JSONMemcachedCache.close)."""
        self._write_client.close()
        self._read_client.close()

    __del__ = close


class JSONMemcachedCache(MemcachedCache):
    """Flask-Caching's memcached backend over pymemcache, with the JSON serializer as its serde
    (pymemcache's own pickles whatever is not a string or an integer)."""

    serializer = JSONSerializer()

    @classmethod
    def factory(cls, app: Flask, config: dict, args: list, kwargs: dict) -> "JSONMemcachedCache":
        # One server, a pool of connections to it for the threads of a worker. pymemcache's
        # client of several servers (HashClient) answers a miss and skips a delete, without a
        # word, while a server is failing: a failed invalidation would pass unseen.
        connect_s, socket_s = client_timeouts_s(config)
        client = PooledClient(
            config["CACHE_MEMCACHED_SERVERS"],
            serde=cls.serializer,
            # pymemcache's default is to wait forever: a memcached that stops answering would
            # hold every request until gunicorn kills the worker.
            connect_timeout=connect_s,
            timeout=socket_s,
            # Wait for memcached's answer to every command: a PUT is answered only once its
            # invalidation is done, and a failed one raises (X-Cache: BYPASS).
            default_noreply=False,
        )
        # cachelib takes a client object in place of the server list.
        return super().factory(app, {**config, "CACHE_MEMCACHED_SERVERS": client}, args, kwargs)

    def close(self) -> None:
        """Close the connections to memcached. A dropped app (the tests make hundreds) would
        otherwise leave them to the garbage collector, which warns of every socket still open;
        the collector may come to the sockets first, so the tests close each app's."""
        self._client.close()

    __del__ = close

    def has(self, key: str) -> bool:
        # cachelib asks memcached by appending "" to the value, which the serde would turn
        # into `""`, spoiling the value: read it instead.
        return self.get(key) is not None
