"""Fixtures shared by the tests and the benchmarks: a real Redis and fresh apps."""

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from flask import Flask

from cachebench.processes import RedisUnavailable, gunicorn_service, private_redis
from cachebench.processes import redis_url as start_redis
from service import create_app
from service.cache import cache

T = TypeVar("T")


def no_redis(reason: str) -> None:
    """Skip for want of Redis, except under CI, which must never go green with it untested."""
    if os.environ.get("CI"):
        pytest.fail(f"Redis is required when CI is set: {reason}")
    pytest.skip(reason)


def started(stack: ExitStack, server: AbstractContextManager[T]) -> T:
    """Enter `server` on `stack`, or skip (fail under CI) if there is no Redis to start."""
    try:
        return stack.enter_context(server)
    except RedisUnavailable as exc:
        no_redis(str(exc))
        raise  # not reached: no_redis skips or fails


# The fixtures that start Redis, as collection sees them in a test's fixtures. A fixture asked
# for by name while a test runs (make_app's for the redis backend) is not seen: redis_url
# checks those.
REDIS_FIXTURES = {"redis_server", "redis_url", "stoppable_redis"}


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `redis` every test that needs Redis, so that `-m "not redis"` runs without one:
    those using a Redis fixture, and those run with the redis backend."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        if REDIS_FIXTURES & set(item.fixturenames) or backend == "redis":
            item.add_marker(pytest.mark.redis)


def marked_redis(request: pytest.FixtureRequest) -> None:
    """Fail a test that gets Redis without the `redis` mark: `-m "not redis"` would run it."""
    if request.node.get_closest_marker("redis") is None:
        pytest.fail(f"{request.node.nodeid} uses Redis: mark it @pytest.mark.redis")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A real Redis for the session: REDIS_URL, or a private redis-server on a free port."""
    with ExitStack() as stack:
        yield started(stack, start_redis())


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """The session's Redis, for a test marked `redis`: its URL."""
    marked_redis(request)
    return request.getfixturevalue("redis_server")


@pytest.fixture
def stoppable_redis(request: pytest.FixtureRequest):
    """A private redis-server this test may stop (never the shared REDIS_URL): (url, process)."""
    marked_redis(request)
    with ExitStack() as stack:
        yield started(stack, private_redis())


def service_settings(tmp_path: Path, request: pytest.FixtureRequest, **settings: object) -> dict:
    """A test's service settings: its own database and cache directory, no simulated work,
    the session's Redis for the redis backend, then the overrides given."""
    config = {
        "VIDEOS_DATABASE": str(tmp_path / "videos.sqlite"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "VIDEOS_WORK_MS": 0,
        **settings,
    }
    if config.get("CACHE_BACKEND") == "redis":
        config.setdefault("CACHE_REDIS_URL", request.getfixturevalue("redis_url"))
    return config


@pytest.fixture
def make_app(tmp_path, request) -> Iterator[Callable[..., Flask]]:
    """Build fresh apps on the test's own database from settings overrides.

    GET does no simulated work unless asked. The caches are emptied afterwards: on a shared
    REDIS_URL, the version keys that memoize's PUT leaves behind never expire.
    """
    apps = []

    def make(**settings: object) -> Flask:
        app = create_app({"TESTING": True, **service_settings(tmp_path, request, **settings)})
        apps.append(app)
        return app

    yield make
    for app in apps:
        # A test may have stopped its Redis on purpose.
        with app.app_context(), suppress(redis.exceptions.ConnectionError):
            cache.clear()


@pytest.fixture
def serve(tmp_path, request) -> Iterator[Callable[..., str]]:
    """Start the service under gunicorn (2 sync workers) with the test's settings and the
    overrides given; returns its URL. Its output goes to `gunicorn.log` in the test's
    tmp_path. Stopped after the test."""
    with ExitStack() as stack:

        def start(**settings: object) -> str:
            config = service_settings(tmp_path, request, **{"SERVICE_WORKERS": 2, **settings})
            return stack.enter_context(gunicorn_service(config, tmp_path / "gunicorn.log"))

        yield start


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, request) -> Iterator[tuple[str, Path]]:
    """The service under gunicorn (2 sync workers) with the default test settings, shared by
    the tests of a module, for many short cases on one start: its URL and its log."""
    directory = tmp_path_factory.mktemp("served")
    log = directory / "gunicorn.log"
    with gunicorn_service(service_settings(directory, request, SERVICE_WORKERS=2), log) as url:
        yield url, log
