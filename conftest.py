"""Fixtures shared by the tests and the benchmarks: real cache servers and fresh apps."""

import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import TypeVar

import pytest
from flask import Flask

from cachebench.processes import gunicorn_service
from cachebench.servers import SERVERS, ServerUnavailable, needed, private_server, server_address
from service import create_app
from service.cache import cache

T = TypeVar("T")


def no_server(reason: str) -> None:
    """Skip for want of a server, except under CI, which must never go green with it untested."""
    if os.environ.get("CI"):
        pytest.fail(f"every cache server is required when CI is set: {reason}")
    pytest.skip(reason)


def started(stack: ExitStack, server: AbstractContextManager[T]) -> T:
    """Enter `server` on `stack`, or skip (fail under CI) if there is none to start."""
    try:
        return stack.enter_context(server)
    except ServerUnavailable as exc:
        no_server(str(exc))
        raise  # not reached: no_server skips or fails


@pytest.fixture(scope="session")
def cache_server() -> Iterator[Callable[[str], str]]:
    """The address of a real server of each kind of cache_server(name) asked for (the names of
    cachebench/servers.py), the first time for the session: its environment variable
    (REDIS_URL, MEMCACHED_SERVERS), or a private one on a free port."""
    with ExitStack() as stack:
        addresses: dict[str, str] = {}

        def address(name: str) -> str:
            if name not in addresses:
                addresses[name] = started(stack, server_address(SERVERS[name]))
            return addresses[name]

        yield address


@pytest.fixture
def stoppable_server() -> Iterator[Callable[[str], tuple[str, subprocess.Popen]]]:
    """A private server of the kind stoppable_server(name) asks for, which this test may stop
    (never the shared one of the environment): (address, process)."""
    with ExitStack() as stack:
        yield lambda name: started(stack, private_server(SERVERS[name]))


def service_settings(tmp_path: Path, request: pytest.FixtureRequest, **settings: object) -> dict:
    """A test's service settings: its own database and cache directory, no simulated work,
    the session's server for a backend that needs one, then the overrides given."""
    config = {
        "VIDEOS_DATABASE": str(tmp_path / "videos.sqlite"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "VIDEOS_WORK_MS": 0,
        **settings,
    }
    for server in needed([config.get("CACHE_BACKEND")]):
        config.setdefault(server.setting, request.getfixturevalue("cache_server")(server.name))
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
        # A test may have stopped its server on purpose: whatever its client then raises.
        with app.app_context(), suppress(Exception):
            cache.clear()


@pytest.fixture
def serve(tmp_path, request) -> Iterator[Callable[..., str]]:
    """Start the service under gunicorn (2 sync workers) with the test's settings and the
    overrides given; returns its URL. Stopped after the test."""
    with ExitStack() as stack:

        def start(**settings: object) -> str:
            config = service_settings(tmp_path, request, SERVICE_WORKERS=2, **settings)
            return stack.enter_context(gunicorn_service(config, tmp_path / "gunicorn.log"))

        yield start
