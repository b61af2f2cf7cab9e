"""The GET cache: one Flask-Caching extension, the backends of service/backends.py, and the
X-Cache header.

X-Cache tells clients what the cache did for a GET, so that hit rates can be measured from
outside: HIT (served from the cache), MISS (the view ran and the cache was asked), BYPASS
(the cache backend failed, so the view ran without it).

Values are cached as JSON (service/cache_format.py): an entry that does not decode is a MISS.
"""

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_caching import Cache
from flask_caching.signals import (
    cache_memoize_hit,
    cache_memoize_miss,
    cache_view_hit,
    cache_view_miss,
)

from service.backends import BACKENDS
from service.cache_format import UndecodableEntry
from service.store import get_store

log = logging.getLogger(__name__)


class JSONCache(Cache):
    """Flask-Caching's Cache, where an entry that does not decode is a miss, told in one line.

    Flask-Caching's views and memoize read through get and get_many; were the error to reach
    them, they would log a traceback and run the view without the cache (BYPASS). The view
    runs, as for any miss, and its value replaces the entry.
    """

    def get(self, key: str) -> Any:
        try:
            return super().get(key)
        except UndecodableEntry as exc:
            log.warning("cache entry %s does not decode, counted as a miss: %s", key, exc)
            return None

    def get_many(self, *keys: str) -> list[Any]:
        try:
            return super().get_many(*keys)
        except UndecodableEntry:
            # Redis reads them all at once: again one by one, to keep the others.
            return [self.get(key) for key in keys]


cache = JSONCache()


def init_app(app: Flask) -> None:
    """Attach the cache selected by CACHE_BACKEND; call after the store is attached."""
    backend = BACKENDS[app.config["CACHE_BACKEND"]]
    with app.app_context():
        deployment = get_store().deployment_id
    config = {
        "CACHE_TYPE": backend.cache_type,
        "CACHE_NO_NULL_WARNING": True,
        "CACHE_ENABLE_SIGNALS": True,
        "CACHE_KEY_PREFIX": app.config["CACHE_KEY_PREFIX"] or f"cachebench:{deployment}:",
        **backend.config(app, deployment),
    }
    cache.init_app(app, config)
    app.after_request(add_x_cache_header)


def cache_state() -> str:
    """What /health says of the cache: `none` (CACHE_BACKEND=none), `ok` (it answers a read), or
    `unreachable` (the read failed, within the client's timeouts: requests go on without the
    cache, X-Cache: BYPASS, until it answers again)."""
    if current_app.config["CACHE_BACKEND"] == "none":
        return "none"
    try:
        cache.get("health")  # a key never written: a read the server answers with nothing
    except Exception:
        return "unreachable"
    return "ok"


def backend_of(app: Flask) -> Any:
    """`app`'s Flask-Caching backend object, as `cache.cache` is within its context."""
    return app.extensions["cache"][cache]


def mark_view_ran() -> None:
    """Called by the GET view body: the view ran, whether or not the cache was reached."""
    g.view_ran = True


def record_status(status: str) -> None:
    """X-Cache of a GET that reads the cache itself (service/fill.py) rather than through
    Flask-Caching's decorators, whose signals set it."""
    g.cache_status = status


def try_invalidation(invalidate: Callable[[], object]) -> None:
    """Run one step of a write's invalidation. The write is committed (or will be) whatever
    the cache does: a cache that cannot be reached must not turn it into an error, but it may
    now serve the old value until the TTL, so say so."""
    try:
        invalidate()
    except Exception as exc:
        log.error("cache invalidation failed, the cached GET may be stale: %s", exc)
        g.cache_status = "BYPASS"


def _record(status: str):
    def receiver(sender: object, **extra: object) -> None:
        g.cache_status = status

    return receiver


# Flask-Caching signals a hit or a miss once it has read the backend; when the backend
# raises it logs, calls the view and signals nothing, which is how BYPASS is told apart.
_on_hit, _on_miss = _record("HIT"), _record("MISS")
for _signal in (cache_view_hit, cache_memoize_hit):
    _signal.connect(_on_hit)
for _signal in (cache_view_miss, cache_memoize_miss):
    _signal.connect(_on_miss)


def add_x_cache_header(response: Response) -> Response:
    status = g.get("cache_status")
    if status is None and request.method == "GET" and g.get("view_ran"):
        status = "BYPASS"
    if status is not None:
        response.headers["X-Cache"] = status
    return response
