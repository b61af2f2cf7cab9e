"""The cache backends, as data: per backend its Flask-Caching type, what it needs from the
app's settings, and the server it needs.

Everything else is derived from this table: the choices of CACHE_BACKEND, the cache the
app attaches, the tool's --caches and the servers it starts, the tests' and benchmarks'
parameters. A new backend is an entry here (and its JSON class in service/cache_format.py).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask


def private_directory(path: Path) -> Path:
    """Make the deployment's own directory `path`, readable by this user only, and the base
    directory it is in if missing (0700 too)."""
    # A base directory that exists is the operator's, left as it is (it may be /tmp).
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode yields to the umask
    return path


def filesystem_config(app: Flask, deployment: str) -> dict[str, Any]:
    # FileSystemCache has no key prefix: a directory per deployment keeps runs apart.
    base = Path(app.config["CACHE_DIR"] or Path(app.instance_path) / "cache")
    return {
        "CACHE_DIR": str(private_directory(base / deployment)),
        "CACHE_THRESHOLD": app.config["CACHE_THRESHOLD"],
    }


def no_config(app: Flask, deployment: str) -> dict[str, Any]:
    return {}


def settings_config(*names: str) -> Callable[[Flask, str], dict[str, Any]]:
    """A config builder that hands the backend the app's settings `names` as they are."""

    def config(app: Flask, deployment: str) -> dict[str, Any]:
        return {name: app.config[name] for name in names}

    return config


# The settings, in milliseconds, that bound a server backend's client (service/settings.py
# derives them when unset); the JSON classes of cache_format.py hand them to the client.
CLIENT_TIMEOUTS = ("CACHE_CONNECT_TIMEOUT_MS", "CACHE_SOCKET_TIMEOUT_MS")


@dataclass(frozen=True)
class Backend:
    name: str  # the value of CACHE_BACKEND
    # Flask-Caching's CACHE_TYPE: for a backend that caches, a JSON class of cache_format.py.
    cache_type: str
    description: str  # what CACHE_BACKEND's help says of it
    # (app, deployment id) -> the Flask-Caching config it needs besides its type and the key
    # prefix, which every backend gets (cachebench:<deployment>: unless CACHE_KEY_PREFIX).
    config: Callable[[Flask, str], dict[str, Any]] = no_config
    # The server it needs, by its name in cachebench/servers.py, and the Python package that
    # talks to it (recorded with every result).
    server: str | None = None
    client: str | None = None
    per_process: bool = False  # each worker process has a cache of its own
    caches: bool = True  # False: nothing is ever stored


BACKENDS = {
    backend.name: backend
    for backend in (
        Backend("none", "NullCache", "NullCache", caches=False),
        Backend(
            "simple",
            "service.cache_format.JSONSimpleCache",
            "SimpleCache, per process, as in the tutorial",
            config=settings_config("CACHE_THRESHOLD"),
            per_process=True,
        ),
        Backend(
            "filesystem",
            "service.cache_format.JSONFileSystemCache",
            "FileSystemCache in `CACHE_DIR`",
            config=filesystem_config,
        ),
        Backend(
            "redis",
            "service.cache_format.JSONRedisCache",
            "RedisCache at `CACHE_REDIS_URL`",
            config=settings_config("CACHE_REDIS_URL", *CLIENT_TIMEOUTS),
            server="redis",
            client="redis",
        ),
        Backend(
            "memcached",
            "service.cache_format.JSONMemcachedCache",
            "MemcachedCache through pymemcache at `CACHE_MEMCACHED_SERVERS`",
            config=settings_config("CACHE_MEMCACHED_SERVERS", *CLIENT_TIMEOUTS),
            server="memcached",
            client="pymemcache",
        ),
    )
}
