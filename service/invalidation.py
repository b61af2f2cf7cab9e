"""CACHE_INVALIDATION: what a PUT or DELETE does to the cached GET, and, since some of them
need it, how a GET names its key, reads it and stores its fill (service/fill.py runs the GET).

For the `cached` strategy's key; the tutorial's `delete` with the `plain` fill stays
Flask-Caching's own decorator (service/videos.py), and each class here is that strategy
written out, then changed where it must be.
"""

import logging
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from service.atomic import LEASES
from service.cache import backend_of, cache, try_invalidation
from service.settings import fill_lifetime_ms
from service.store import Store, Video, Writes, get_store

log = logging.getLogger(__name__)


def video_key(video_id: int) -> str:
    """The tutorial's key: `cached(key_prefix="get%s")` names a GET by its path."""
    return f"get/videos/{video_id}"


@dataclass(frozen=True)
class Read:
    """What a GET found in the cache, and whether it may store what its view computes."""

    entry: Any  # None on a miss
    may_fill: bool
    ticket: Any = None  # under `lease`: the condition its fill is stored on


def write_video(writes: Store | Writes, video_id: int, video: Video | None) -> bool:
    """Put `video`, or delete the video if None: False if there was none to delete."""
    if video is None:
        return writes.delete(video_id)
    writes.put(video_id, video)
    return True


class Delete:
    """The tutorial's: the write commits, then the cached GET is deleted."""

    leases = False  # whether `read` elects one filler per key (service/fill.py's lock)
    # Store reads per GET beyond the tutorial's (its view's one, on a miss), hit or miss: the
    # comparison's table puts them beside what the strategy buys (tests/test_strategies.py
    # counts them on SQLite).
    extra_store_reads = 0

    def __init__(self, app: Flask) -> None:
        self.timeout = app.config["CACHE_VIEW_TIMEOUT"]  # None: the backend's default

    def key(self, video_id: int) -> str:
        return video_key(video_id)

    def read(self, key: str) -> Read:
        return Read(cache.get(key), may_fill=True)

    def fill(self, key: str, entry: Any, read: Read) -> None:
        cache.set(key, entry, timeout=self.timeout)

    def write(self, video_id: int, video: Video | None) -> bool:
        if not write_video(get_store(), video_id, video):
            return False
        try_invalidation(lambda: cache.delete(video_key(video_id)))
        return True

    def stop(self) -> None:
        """End what it runs in the background, before its app's cache and store close."""


class DoubleDelete(Delete):
    """Deletes before the write, after it, and once more CACHE_DOUBLE_DELETE_MS later: the
    last removes an entry that a GET filled after the second, from a read before the write."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.delay_s = app.config["CACHE_DOUBLE_DELETE_MS"] / 1000
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()

    def write(self, video_id: int, video: Video | None) -> bool:
        key = video_key(video_id)
        try_invalidation(lambda: cache.delete(key))
        if not write_video(get_store(), video_id, video):
            return False
        try_invalidation(lambda: cache.delete(key))
        self._delete_later(cache.cache, key)
        return True

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
            timer.join()

    def _delete_later(self, backend: Any, key: str) -> None:
        def delete() -> None:
            # After the response: a failure can only be logged.
            try:
                backend.delete(key)
            except Exception as exc:
                log.error("delayed cache delete of %s failed, it may be stale: %s", key, exc)
            with self._lock:
                self._timers.discard(timer)

        timer = threading.Timer(self.delay_s, delete)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()


class Lease(Delete):
    """A miss leaves a lease token in the key (service/atomic.py), and its fill is stored only
    if the token is still there. The write deletes it with the entry: a GET that read the old
    value before the write can no longer store it."""

    leases = True

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.lease = LEASES[app.config["CACHE_BACKEND"]](backend_of(app))
        self.lifetime_ms = fill_lifetime_ms(app.config)

    def read(self, key: str) -> Read:
        entry, ticket = self.lease.read(key, self.lifetime_ms)
        return Read(entry, may_fill=ticket is not None, ticket=ticket)

    def fill(self, key: str, entry: Any, read: Read) -> None:
        self.lease.store(key, entry, self.timeout, read.ticket)


class Versioned(Delete):
    """The store keeps a version per video, bumped in the write's transaction, and the key
    carries it: after a write every GET reads another key, and an entry filled from a read
    before the write sits under the old one, never read again, until its TTL."""

    extra_store_reads = 1  # the version

    def key(self, video_id: int) -> str:
        # Read before the view reads the video, so that a fill from a read older than a write
        # lands under a version older than the write's.
        return f"{video_key(video_id)}@v{get_store().version(video_id)}"

    def write(self, video_id: int, video: Video | None) -> bool:
        with get_store().transaction() as writes:
            if not write_video(writes, video_id, video):
                return False
            writes.bump_version(video_id)
        return True


class Outbox(Delete):
    """The write records its invalidation in the store, in its transaction, and removes it
    once the cache delete succeeds. A pending one is delivered before a GET of that video
    reads the cache, and by each worker every CACHE_OUTBOX_RETRY_MS, so that a cache that was
    unreachable during the write is corrected as soon as it is back."""

    extra_store_reads = 1  # the video's pending invalidations

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.interval_s = app.config["CACHE_OUTBOX_RETRY_MS"] / 1000
        # The thread holds the app weakly: an app dropped (the tests make hundreds) ends it.
        self._app = weakref.ref(app)
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def key(self, video_id: int) -> str:
        self._retry_in_background()
        pending = get_store().pending_invalidations(video_id)
        if pending:
            # Raises while the cache is still unreachable: the GET then goes without it.
            self.deliver(video_id, pending[video_id])
        return video_key(video_id)

    def write(self, video_id: int, video: Video | None) -> bool:
        self._retry_in_background()
        with get_store().transaction() as writes:
            if not write_video(writes, video_id, video):
                return False
            recorded = writes.record_invalidation(video_id)
        try_invalidation(lambda: self.deliver(video_id, recorded))
        return True

    def deliver(self, video_id: int, up_to: int) -> None:
        """Delete the cached GET, then the outbox rows up to `up_to`, which were written
        before the delete began."""
        cache.delete(video_key(video_id))
        get_store().confirm_invalidations(video_id, up_to)

    def retry(self) -> None:
        """Deliver every pending invalidation; the first failure ends the round."""
        for video_id, up_to in get_store().pending_invalidations().items():
            self.deliver(video_id, up_to)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join()

    def _retry_in_background(self) -> None:
        # Started by the first request of each process: a thread started before gunicorn
        # forks its workers would not be in them.
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                self._thread = threading.Thread(target=self._run, name="outbox", daemon=True)
                self._thread.start()
                self._pid = os.getpid()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            app = self._app()
            if app is None:
                return
            try:
                with app.app_context():
                    self.retry()
            except Exception as exc:
                log.warning("outbox: pending invalidations not delivered yet: %s", exc)
            del app


STRATEGIES: dict[str, Callable[[Flask], Delete]] = {
    "delete": Delete,
    "double-delete": DoubleDelete,
    "lease": Lease,
    "versioned": Versioned,
    "outbox": Outbox,
}


def init_app(app: Flask) -> None:
    app.extensions["cache_invalidation"] = STRATEGIES[app.config["CACHE_INVALIDATION"]](app)


def current_invalidation() -> Delete:
    return current_app.extensions["cache_invalidation"]
