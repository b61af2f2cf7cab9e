import os
from contextlib import ExitStack

import pytest

from service import create_app
from service.processes import RedisUnavailable, private_redis
from service.processes import redis_url as start_redis
from service.settings import CACHE_BACKENDS, CACHE_STRATEGIES


def _no_redis(reason: str):
    # CI must never go green with Redis untested.
    if os.environ.get("CI"):
        pytest.fail(f"Redis is required when CI is set: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis for the session: REDIS_URL, or a private redis-server on a free port."""
    with ExitStack() as stack:
        try:
            url = stack.enter_context(start_redis())
        except RedisUnavailable as exc:
            _no_redis(str(exc))
        yield url


@pytest.fixture
def stoppable_redis():
    """A private redis-server this test may stop (never the shared REDIS_URL): (url, process)."""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(private_redis())
        except RedisUnavailable as exc:
            _no_redis(str(exc))
        yield server


@pytest.fixture
def make_app(tmp_path, request):
    """Build a fresh app on its own database (and Redis prefix) from settings overrides."""

    def make(**settings):
        config = {
            "TESTING": True,
            "VIDEOS_DATABASE": str(tmp_path / "videos.sqlite"),
            "CACHE_DIR": str(tmp_path / "cache"),
            "VIDEOS_WORK_MS": 0,
            **settings,
        }
        if config.get("CACHE_BACKEND") == "redis":
            config.setdefault("CACHE_REDIS_URL", request.getfixturevalue("redis_url"))
        return create_app(config)

    return make


@pytest.fixture(params=CACHE_BACKENDS)
def backend(request):
    """Each of the four cache backends (Redis is a real server)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param


@pytest.fixture(params=CACHE_STRATEGIES)
def strategy(request):
    """Each of the three ways of caching GET."""
    return request.param


@pytest.fixture
def app(make_app, backend, strategy):
    """A fresh app for every backend and strategy."""
    return make_app(CACHE_BACKEND=backend, CACHE_STRATEGY=strategy)


@pytest.fixture
def client(app):
    """A test client of `app`."""
    return app.test_client()
