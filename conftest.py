"""Fixtures shared by the tests and the benchmarks: a real Redis, a real PostgreSQL and
fresh apps."""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from flask import Flask

from cachebench.postgres import PostgresUnavailable, drop_schema, private_postgres
from cachebench.postgres import postgres_url as start_postgres
from cachebench.processes import RedisUnavailable, gunicorn_service, private_redis
from cachebench.processes import redis_url as start_redis
from service import create_app
from service.cache import cache

T = TypeVar("T")


def no_server(name: str, reason: str) -> None:
    """Skip for want of the server `name`, except under CI, which must never go green with it
    untested."""
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required when CI is set: {reason}")
    pytest.skip(reason)


def started(stack: ExitStack, server: AbstractContextManager[T]) -> T:
    """Enter `server` on `stack`, or skip (fail under CI) if there is no Redis or PostgreSQL
    to start."""
    try:
        return stack.enter_context(server)
    except RedisUnavailable as exc:
        no_server("Redis", str(exc))
        raise  # not reached: no_server skips or fails
    except PostgresUnavailable as exc:
        no_server("PostgreSQL", str(exc))
        raise


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis for the session: REDIS_URL, or a private redis-server on a free port."""
    with ExitStack() as stack:
        yield started(stack, start_redis())


@pytest.fixture
def stoppable_redis():
    """A private redis-server this test may stop (never the shared REDIS_URL): (url, process)."""
    with ExitStack() as stack:
        yield started(stack, private_redis())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL for the session: POSTGRES_URL, or a private server on a free port."""
    with ExitStack() as stack:
        yield started(stack, start_postgres())


@pytest.fixture
def own_postgres():
    """A private PostgreSQL server of the test's own, which it may stop, start again and give
    roles (never the shared POSTGRES_URL)."""
    with ExitStack() as stack:
        yield started(stack, private_postgres())


@pytest.fixture
def postgres_schema(postgres_url) -> Iterator[str]:
    """A schema name of the test's own on the session's PostgreSQL, dropped afterwards:
    test runs sharing a server never see each other's videos."""
    schema = f"cachebench_test_{uuid.uuid4().hex[:12]}"
    yield schema
    drop_schema(postgres_url, schema)


def service_settings(tmp_path: Path, request: pytest.FixtureRequest, **settings: object) -> dict:
    """A test's service settings: its own database and cache directory, no simulated work,
    the session's Redis for the redis backend, a schema of its own on the session's
    PostgreSQL for the postgres store, then the overrides given."""
    config = {
        "VIDEOS_DATABASE": str(tmp_path / "videos.sqlite"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "VIDEOS_WORK_MS": 0,
        **settings,
    }
    if config.get("CACHE_BACKEND") == "redis":
        config.setdefault("CACHE_REDIS_URL", request.getfixturevalue("redis_url"))
    # A test that gives its own server must not start the session's.
    if config.get("VIDEOS_STORE") == "postgres" and "VIDEOS_DATABASE_URL" not in config:
        config["VIDEOS_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        config.setdefault("VIDEOS_SCHEMA", request.getfixturevalue("postgres_schema"))
    return config


@pytest.fixture
def make_app(tmp_path, request) -> Iterator[Callable[..., Flask]]:
    """Build fresh apps on the test's own database from settings overrides.

    GET does no simulated work unless asked. The caches are emptied afterwards: on a shared
    REDIS_URL, the version keys that memoize's PUT leaves behind never expire. The stores
    are closed: an open PostgreSQL connection left to the garbage collector is a warning.
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
        app.extensions["videos_store"].close()


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
