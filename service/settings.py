"""Every setting of the videos service, its default, and how a value is checked.

One table serves the app factory, the gunicorn config and the README, so a setting
cannot be read in one place and forgotten in another.
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.connection import parse_url

from service.atomic import LEASES, LOCKS
from service.backends import BACKENDS, CLIENT_TIMEOUTS

CACHE_BACKENDS = tuple(BACKENDS)
CACHE_STRATEGIES = ("cached", "memoize", "memoize-fixed")
INVALIDATIONS = ("delete", "double-delete", "lease", "versioned", "outbox")
FILLS = ("plain", "lock", "xfetch")
STORES = ("sqlite", "postgres", "memory")
WORK_PHASES = ("before-read", "after-read")
# What a request spends besides its work and its wait for SQLite's lock: the framework, the
# store, the cache round trip, a busy machine. The slowest request of the example matrix
# (reports/example: 2 cores shared with Locust, 50 ms of work) took 214 ms, queueing
# included: 3 s is ample, and still lets a silent client hold a worker only seconds.
TIMEOUT_MARGIN_S = 3
# How long the Redis or memcached client waits, unless set: the cache exists to be faster than
# the store, so a stalled one may cost a request a quarter of the work a hit saves, no more
# (redis-py's own default is 5 s, pymemcache's forever). Never under 100 ms, which a healthy
# loopback round trip does not reach: the slowest of 30,000 reads from each server, with 8
# CPU-bound processes on this machine's 2 cores, took 56 ms.
CACHE_TIMEOUT_WORK_FRACTION = 4
CACHE_TIMEOUT_FLOOR_MS = 100
# A fill lock's waiters poll the cache this often: they see the value at most this late, and
# each costs its cache about a hundred reads a second meanwhile.
LOCK_POLL_MS = 10
# ... for up to VIDEOS_WORK_MS and this: the filler's store read and cache round trips.
LOCK_WAIT_MARGIN_MS = 100


class SettingError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[Any], Any]
    help: str
    applies_to: str = "app"  # "app" (create_app) or "gunicorn" (gunicorn.conf.py)


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be a whole number")
        try:
            number = int(value)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be a whole number {bound}")
        return number

    return parse


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        return None if value in (None, "") else parse(value)

    return parse_optional


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty string")
    return value


def host_port(value: Any) -> str:
    host, _, port = text(value).rpartition(":")
    if not host or "," in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be one server as host:port, such as 127.0.0.1:11211")
    return value


def schema_name(value: Any) -> str:
    # Lower case needs no quoting to be read back by hand; PostgreSQL cuts a longer name to
    # 63 bytes, which could make two deployments one, and keeps pg_ for itself.
    if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise ValueError(
            "must be 1 to 63 lower-case letters, digits and _, not starting with a digit"
        )
    if value.startswith("pg_"):
        raise ValueError("must not start with pg_, which PostgreSQL keeps for itself")
    return value


def redis_url(value: Any) -> str:
    # redis-py's own parser, which the client runs in every worker as it boots: what it
    # refuses would otherwise kill each of them with a traceback.
    try:
        parse_url(text(value))
    except ValueError as exc:
        raise ValueError(f"must be a Redis URL such as redis://127.0.0.1:6379/0 ({exc})") from None
    return value


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    raise ValueError("must be true or false")


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CACHE_BACKEND",
        "simple",
        choice(*CACHE_BACKENDS),
        "Which cache: "
        + ", ".join(f"`{b.name}` ({b.description})" for b in BACKENDS.values())
        + ".",
    ),
    Setting(
        "CACHE_STRATEGY",
        "cached",
        choice(*CACHE_STRATEGIES),
        'How GET is cached: `cached` (the tutorial\'s `@cache.cached(key_prefix="get%s")`), '
        "`memoize` (the tutorial's pitfall: keys on the per-request Resource instance), "
        "`memoize-fixed` (memoize ignoring `self`, invalidated on PUT and DELETE).",
    ),
    Setting(
        "CACHE_INVALIDATION",
        "delete",
        choice(*INVALIDATIONS),
        "What a PUT or DELETE does to the cached GET (with `CACHE_STRATEGY=cached`). "
        "`delete` (the tutorial's): deletes it once the write has committed. "
        "`double-delete`: deletes it before the write, after it, and again "
        "`CACHE_DOUBLE_DELETE_MS` later, which removes a fill made from a read just before "
        "the write. "
        "`lease` (`redis`, `memcached`): a miss leaves a lease token in the key, and its fill is "
        "stored only if the token is still there (a Redis script; memcached's `gets` and "
        "`cas`); the write's delete revokes it. "
        "`versioned`: the store keeps a version per video, bumped in the write's transaction, "
        "and the cache key carries it, so an old entry is never read again; one more store "
        "read per GET. "
        "`outbox` (`filesystem`, `redis`, `memcached`): the write records its invalidation in "
        "the store, in its transaction, removed once the cache delete succeeds; pending ones "
        "are retried before a GET of that video and every `CACHE_OUTBOX_RETRY_MS`, so a cache "
        "unreachable during the write is corrected when it is back, not at the TTL.",
    ),
    Setting(
        "CACHE_DOUBLE_DELETE_MS",
        1000,
        integer(1, 60_000),
        "Milliseconds from `double-delete`'s second delete to its third. To remove a stale fill "
        "it must outlast a GET's time from its read to its fill (`VIDEOS_WORK_MS` with "
        "`after-read`).",
    ),
    Setting(
        "CACHE_OUTBOX_RETRY_MS",
        1000,
        integer(1),
        "How often each worker retries `outbox`'s pending invalidations in the background, "
        "at the cost of one store read each time.",
    ),
    Setting(
        "CACHE_FILL",
        "plain",
        choice(*FILLS),
        "How a GET fills the cache (with `CACHE_STRATEGY=cached`). "
        "`plain` (the tutorial's): every miss runs the view and stores its answer. "
        "`lock` (`simple`, `redis`, `memcached`): a miss takes a lock on its key (Redis "
        "`SET NX PX`, memcached's `add`, SimpleCache's in its process) and fills it; the others "
        f"read the cache every {LOCK_POLL_MS} ms for its value, for up to `VIDEOS_WORK_MS` + "
        f"{LOCK_WAIT_MARGIN_MS} ms, then run the view without storing (under `lease` the lease "
        "is the lock). "
        "`xfetch`: an entry carries its expiry and how long its view took (delta), and a GET "
        "recomputes it early when now − delta · ln(rand()) ≥ expiry (Vattani et al., VLDB "
        "2015, β = 1): one GET refreshes a popular entry before it expires. "
        f"A lock or a lease lasts `VIDEOS_WORK_MS` + {TIMEOUT_MARGIN_S} s.",
    ),
    Setting(
        "CACHE_DEFAULT_TIMEOUT",
        300,
        integer(0),
        "Seconds a cached GET lives (0: until invalidated).",
    ),
    Setting(
        "CACHE_VIEW_TIMEOUT",
        None,
        optional(integer(0)),
        "Per-view timeout in seconds, as the tutorial's `timeout=50`; unset: "
        "`CACHE_DEFAULT_TIMEOUT`.",
    ),
    Setting(
        "CACHE_DIR",
        None,
        optional(text),
        "FileSystemCache base directory (made 0700 if missing); each deployment uses its own "
        "subdirectory, always 0700. Unset: `cache` in Flask's instance folder.",
    ),
    Setting(
        "CACHE_THRESHOLD",
        500,
        integer(1),
        "Entries a `simple` cache (each worker's own) or a `filesystem` cache holds before it "
        "evicts: past it, cachelib drops the expired entries, then those that expire first "
        "(with one TTL, the oldest set: FIFO). 500 is Flask-Caching's default.",
    ),
    Setting(
        "CACHE_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        redis_url,
        "Redis server of the `redis` backend.",
    ),
    Setting(
        "CACHE_MEMCACHED_SERVERS",
        "127.0.0.1:11211",
        host_port,
        "memcached server of the `memcached` backend, one `host:port`.",
    ),
    Setting(
        "CACHE_CONNECT_TIMEOUT_MS",
        None,
        optional(integer(1, 60_000)),
        "Milliseconds the Redis or memcached client waits to connect. Unset: "
        f"`VIDEOS_WORK_MS` / {CACHE_TIMEOUT_WORK_FRACTION}, at least {CACHE_TIMEOUT_FLOOR_MS}.",
    ),
    Setting(
        "CACHE_SOCKET_TIMEOUT_MS",
        None,
        optional(integer(1, 60_000)),
        "Milliseconds the Redis or memcached client waits for each answer; past it the request "
        "goes on without the cache (`X-Cache: BYPASS`), and a failed command is not retried. "
        f"Unset: `VIDEOS_WORK_MS` / {CACHE_TIMEOUT_WORK_FRACTION}, at least "
        f"{CACHE_TIMEOUT_FLOOR_MS}.",
    ),
    Setting(
        "CACHE_KEY_PREFIX",
        None,
        optional(text),
        "Key prefix in Redis and memcached. Unset: `cachebench:<deployment>:`, where the "
        "deployment id is made when the store is created, so runs never see each other's keys.",
    ),
    Setting(
        "VIDEOS_STORE",
        "sqlite",
        choice(*STORES),
        "`sqlite` (one file shared by all workers), `postgres` (a PostgreSQL schema shared by "
        "all workers on all hosts) or `memory` (the tutorial's dict: one process only).",
    ),
    Setting(
        "VIDEOS_DATABASE",
        None,
        optional(text),
        "SQLite file of the `sqlite` store, created and seeded on first use. Unset: "
        "`videos.sqlite` in Flask's instance folder.",
    ),
    Setting(
        "VIDEOS_DATABASE_URL",
        None,
        optional(text),
        "PostgreSQL database of the `postgres` store, which needs it, as a libpq URL "
        "(`postgresql://user:password@host:port/database`).",
    ),
    Setting(
        "VIDEOS_SCHEMA",
        "cachebench",
        schema_name,
        "PostgreSQL schema of the `postgres` store, created and seeded on first use; one per "
        "deployment, so that deployments sharing a database never see each other's videos. "
        "At most 63 lower-case letters, digits and `_`.",
    ),
    Setting(
        "VIDEOS_BUSY_TIMEOUT_MS",
        5000,
        integer(0),
        "How long a write waits for the store's lock before the request fails with 503. With "
        "`postgres`, any statement's wait for any lock (`lock_timeout`; 0 is 1 ms, as 0 would "
        "mean no limit), twice that for a whole statement (`statement_timeout`), and this in "
        "whole seconds, at least 2, to connect.",
    ),
    Setting(
        "VIDEOS_WORK_MS",
        1000,
        integer(0, 60_000),
        "Milliseconds of simulated expensive work in GET (the tutorial's `time.sleep(1)`).",
    ),
    Setting(
        "VIDEOS_WORK_PHASE",
        "before-read",
        choice(*WORK_PHASES),
        "`before-read` (the tutorial's order) or `after-read`, which sleeps between reading the "
        "store and answering and so widens the window of the cache-aside race (a reader fills "
        "the cache with a value a concurrent PUT has just replaced).",
    ),
    Setting(
        "SERVICE_BIND",
        "127.0.0.1:8000",
        text,
        "Address gunicorn listens on (loopback by default).",
        "gunicorn",
    ),
    Setting("SERVICE_WORKERS", 2, integer(1, 64), "Gunicorn worker processes.", "gunicorn"),
    Setting(
        "SERVICE_THREADS",
        1,
        integer(1, 256),
        "Threads per worker (more than 1 selects the `gthread` worker).",
        "gunicorn",
    ),
    Setting(
        "SERVICE_TIMEOUT",
        None,
        optional(integer(1)),
        "Seconds a sync worker may spend on one request before gunicorn kills it and starts "
        "another; this is what drops a client that goes silent in the middle of its request. "
        "Unset: the longest request, `VIDEOS_WORK_MS` + `VIDEOS_BUSY_TIMEOUT_MS` (with "
        "`postgres`, its connect and statement timeouts instead) + the cache client's two "
        f"timeouts in whole seconds, plus {TIMEOUT_MARGIN_S}. A `gthread` worker is never "
        "killed for a slow request, so there it drops no client.",
        "gunicorn",
    ),
    Setting(
        "SERVICE_ACCESS_LOG",
        False,
        boolean,
        "Log every request to stdout (off by default: it costs throughput).",
        "gunicorn",
    ),
)

BY_NAME = {setting.name: setting for setting in SETTINGS}


def parse_settings(values: Mapping[str, Any], applies_to: str = "app") -> dict[str, Any]:
    """The settings of `applies_to` found in `values`, checked and converted.

    Raises SettingError naming the first bad setting and what it accepts.
    """
    parsed = {}
    for setting in SETTINGS:
        if setting.applies_to != applies_to or setting.name not in values:
            continue
        value = values[setting.name]
        try:
            parsed[setting.name] = setting.parse(value)
        except ValueError as exc:
            raise SettingError(f"{setting.name}={value!r}: {exc}") from None
    return parsed


CACHING = tuple(name for name, backend in BACKENDS.items() if backend.caches)
SHARED = tuple(name for name in CACHING if not BACKENDS[name].per_process)
# The invalidations and fills besides the tutorial's: the backends each applies to, and what
# it needs of them. Nothing is cached with `none`; `outbox` would confirm an invalidation
# that reached one worker's SimpleCache while the others keep the old value.
NEEDS: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    ("CACHE_INVALIDATION", "double-delete"): (CACHING, "a cache"),
    ("CACHE_INVALIDATION", "lease"): (tuple(LEASES), "an atomic compare-and-set on a server"),
    ("CACHE_INVALIDATION", "versioned"): (CACHING, "a cache"),
    ("CACHE_INVALIDATION", "outbox"): (SHARED, "a cache shared by the workers"),
    ("CACHE_FILL", "lock"): (tuple(LOCKS), "an atomic add"),
    ("CACHE_FILL", "xfetch"): (CACHING, "a cache"),
}


def check_together(app_settings: Mapping[str, Any]) -> None:
    """Raise SettingError if the app's settings, each valid alone, cannot run together."""
    if app_settings["VIDEOS_STORE"] == "postgres" and not app_settings["VIDEOS_DATABASE_URL"]:
        raise SettingError(
            "VIDEOS_STORE='postgres' needs VIDEOS_DATABASE_URL, e.g. "
            "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    backend, strategy = app_settings["CACHE_BACKEND"], app_settings["CACHE_STRATEGY"]
    for (name, value), (backends, needs) in NEEDS.items():
        if app_settings[name] != value:
            continue
        # The memoize strategies are the tutorial's pitfall and its fix, measured as written.
        if strategy != "cached":
            raise SettingError(
                f"{name}={value!r} applies to CACHE_STRATEGY='cached' only, not {strategy!r}"
            )
        if backend not in backends:
            raise SettingError(
                f"{name}={value!r} does not apply to CACHE_BACKEND={backend!r}: it needs "
                f"{needs} ({', '.join(backends)})"
            )


def defaults(applies_to: str = "app") -> dict[str, Any]:
    return {s.name: s.default for s in SETTINGS if s.applies_to == applies_to}


class PostgresTimeouts(NamedTuple):
    """The PostgreSQL store's bounds, all from VIDEOS_BUSY_TIMEOUT_MS."""

    connect_s: int  # connect_timeout: whole seconds, and libpq takes less than 2 as 2
    lock_ms: int  # lock_timeout: what SQLite's busy timeout bounds
    statement_ms: int  # statement_timeout: a lock wait, then the statement's own run

    @classmethod
    def of(cls, busy_timeout_ms: int) -> "PostgresTimeouts":
        # 0 turns PostgreSQL's timeouts off: the shortest bound is 1 ms.
        lock_ms = max(busy_timeout_ms, 1)
        return cls(max(2, math.ceil(busy_timeout_ms / 1000)), lock_ms, 2 * lock_ms)

    def longest_ms(self) -> int:
        return self.connect_s * 1000 + self.statement_ms


def cache_timeout_ms(app_settings: Mapping[str, Any], name: str) -> int:
    """The cache client's timeout `name` (one of CLIENT_TIMEOUTS): as set, or derived
    from the work time."""
    if app_settings[name] is not None:
        return app_settings[name]
    work_ms = app_settings["VIDEOS_WORK_MS"]
    return max(CACHE_TIMEOUT_FLOOR_MS, work_ms // CACHE_TIMEOUT_WORK_FRACTION)


def fill_lifetime_ms(app_settings: Mapping[str, Any]) -> int:
    """How long a fill lock or a lease holds its key: the GET's work and the rest of its
    request, so that a filler alive never loses it, and one that died frees it soon."""
    return app_settings["VIDEOS_WORK_MS"] + TIMEOUT_MARGIN_S * 1000


def worker_timeout(app_settings: Mapping[str, Any]) -> int:
    """SERVICE_TIMEOUT when unset: whole seconds above the longest legitimate request, a GET's
    work plus its read, or a PUT waiting for the store's lock until it answers 503; with
    PostgreSQL, connecting first and then a whole statement; either of them also waiting out
    the cache client's timeouts (a stalled cache)."""
    busy_ms = app_settings["VIDEOS_BUSY_TIMEOUT_MS"]
    if app_settings["VIDEOS_STORE"] == "postgres":
        busy_ms = PostgresTimeouts.of(busy_ms).longest_ms()
    longest_ms = (
        app_settings["VIDEOS_WORK_MS"]
        + busy_ms
        + sum(cache_timeout_ms(app_settings, name) for name in CLIENT_TIMEOUTS)
    )
    return math.ceil(longest_ms / 1000) + TIMEOUT_MARGIN_S
