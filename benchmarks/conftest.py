"""Fixtures the benchmarks share: a real Redis, and fresh apps of the service."""

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from flask import Flask

from service import create_app
from service.cache import cache
from service.processes import RedisUnavailable, redis_url


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a real Redis for the session: REDIS_URL, or a private redis-server."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(redis_url())
        except RedisUnavailable as exc:
            # As in the tests: CI must never go green with Redis unmeasured.
            if os.environ.get("CI"):
                pytest.fail(f"Redis is required when CI is set: {exc}")
            pytest.skip(str(exc))
        yield url


@pytest.fixture
def make_service(tmp_path, request) -> Iterator[Callable[..., Flask]]:
    """Build a fresh service app on its own database from settings overrides.

    GET does no simulated work, so what is measured is the framework, store and cache. The
    cache is emptied afterwards: on a shared REDIS_URL, the version keys that memoize's PUT
    leaves behind never expire.
    """
    apps = []

    def make(**settings: object) -> Flask:
        config = {
            "TESTING": True,
            "VIDEOS_DATABASE": str(tmp_path / "videos.sqlite"),
            "CACHE_DIR": str(tmp_path / "cache"),
            "VIDEOS_WORK_MS": 0,
            **settings,
        }
        if config.get("CACHE_BACKEND") == "redis":
            config.setdefault("CACHE_REDIS_URL", request.getfixturevalue("redis_server"))
        app = create_app(config)
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            cache.clear()
