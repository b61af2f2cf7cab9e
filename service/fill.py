"""CACHE_FILL: how a GET finds its entry and fills it on a miss; and the GET itself, written
out where Flask-Caching's `cached` decorator would do it: the entry (X-Cache: HIT), or the
view and then the fill (MISS, whether or not the fill is stored), or the view alone when the
cache fails (BYPASS).
"""

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from service.atomic import LOCKS
from service.cache import backend_of, record_status
from service.invalidation import Delete, Read, current_invalidation
from service.settings import LOCK_POLL_MS, LOCK_WAIT_MARGIN_MS, fill_lifetime_ms
from service.store import StoreError

log = logging.getLogger(__name__)


class Plain:
    """The tutorial's: every miss runs the view and stores its answer."""

    def __init__(self, app: Flask) -> None:
        pass

    def find(self, key: str, invalidation: Delete) -> Read:
        return invalidation.read(key)

    def fresh(self, entry: Any) -> bool:
        """Whether `entry` answers the GET: what the view returns, as `cached` stores it (its
        answer, or the HTTP error it raised); anything else is a miss."""
        return isinstance(entry, tuple | HTTPException)

    def answer(self, entry: Any) -> Any:
        return entry

    def pack(self, answer: Any, seconds: float) -> Any:
        """The entry of the view's `answer`, which took it `seconds`."""
        return answer

    def release(self, key: str, invalidation: Delete) -> None:
        """Let go of what `find` took to fill `key`, once the fill is done."""


class Lock(Plain):
    """One filler per key: a miss takes a lock on it (service/atomic.py) and fills it, and the
    others read the cache until its value is there, for a bounded time, then run the view
    without storing. Under `lease` the lease is the lock: only its holder may fill."""

    def __init__(self, app: Flask) -> None:
        self.lock = LOCKS[app.config["CACHE_BACKEND"]](backend_of(app))
        self.lifetime_ms = fill_lifetime_ms(app.config)
        # As long as the filler's view, about: then running it oneself costs no more.
        self.wait_s = (app.config["VIDEOS_WORK_MS"] + LOCK_WAIT_MARGIN_MS) / 1000

    def find(self, key: str, invalidation: Delete) -> Read:
        deadline = time.monotonic() + self.wait_s
        while True:
            read = invalidation.read(key)
            if read.entry is not None and self.fresh(read.entry):
                return read
            if invalidation.leases:
                if read.may_fill:
                    return read
            elif self.lock.take(lock_key(key), self.lifetime_ms):
                return read
            if time.monotonic() >= deadline:
                return replace(read, may_fill=False)
            time.sleep(LOCK_POLL_MS / 1000)

    def release(self, key: str, invalidation: Delete) -> None:
        if not invalidation.leases:
            self.lock.release(lock_key(key))


def lock_key(key: str) -> str:
    return f"lock:{key}"


class XFetch(Plain):
    """An entry carries its expiry and how long its view took (delta), and a GET recomputes
    it early, before it expires, with a probability that rises towards the expiry: when
    now − delta · beta · ln(rand()) ≥ expiry (Vattani, Chierichetti and Lowenstein, "Optimal
    Probabilistic Cache Stampede Prevention", VLDB 2015). One GET refreshes a popular entry
    instead of every GET that finds it expired at once."""

    BETA = 1.0  # the paper's default; above 1 recomputes earlier

    def __init__(self, app: Flask) -> None:
        view, default = app.config["CACHE_VIEW_TIMEOUT"], app.config["CACHE_DEFAULT_TIMEOUT"]
        self.ttl_s = default if view is None else view  # 0: never expires

    def fresh(self, entry: Any) -> bool:
        if not (isinstance(entry, dict) and entry.keys() == {"answer", "delta", "expiry"}):
            return False
        if entry["expiry"] is None:
            return True
        # 1 - random() is in (0, 1], where the logarithm is defined.
        early_s = -entry["delta"] * self.BETA * math.log(1.0 - random.random())
        return time.time() + early_s < entry["expiry"]

    def answer(self, entry: Any) -> Any:
        return entry["answer"]

    def pack(self, answer: Any, seconds: float) -> Any:
        # Wall-clock time: the entry is read by every worker.
        expiry = time.time() + self.ttl_s if self.ttl_s else None
        return {"answer": answer, "delta": seconds, "expiry": expiry}


STRATEGIES: dict[str, Callable[[Flask], Plain]] = {"plain": Plain, "lock": Lock, "xfetch": XFetch}


def init_app(app: Flask) -> None:
    app.extensions["cache_fill"] = STRATEGIES[app.config["CACHE_FILL"]](app)


def cached_get(video_id: int, view: Callable[[int], Any]) -> ResponseReturnValue:
    """GET /videos/<id> through the cache, under CACHE_INVALIDATION and CACHE_FILL."""
    invalidates, fills = current_invalidation(), current_app.extensions["cache_fill"]
    try:
        key = invalidates.key(video_id)
        read = fills.find(key, invalidates)
    except StoreError:
        raise
    except Exception as exc:
        # As Flask-Caching's decorators do: the view, without the cache (BYPASS).
        log.error("cache backend failed, the GET is served without it: %s", exc)
        return view(video_id)
    if read.entry is not None and fills.fresh(read.entry):
        record_status("HIT")
        return answered(fills.answer(read.entry))
    record_status("MISS")
    started = time.monotonic()
    try:
        answer = view(video_id)
    except HTTPException as exc:  # cached as `cached` does: a 404 is an answer too
        answer = exc
    if read.may_fill:
        entry = fills.pack(answer, time.monotonic() - started)
        try:
            try:
                invalidates.fill(key, entry, read)
            finally:
                fills.release(key, invalidates)
        except Exception as exc:
            log.error("cache fill of %s failed: %s", key, exc)
    return answered(answer)


def answered(answer: Any) -> ResponseReturnValue:
    if isinstance(answer, HTTPException):
        raise answer
    return answer
