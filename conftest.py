"""Fixtures shared by the tests and the benchmarks: real cache servers, a real PostgreSQL and
fresh apps."""

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import TypeVar

import pytest
from flask import Flask

from cachebench.postgres import PostgresUnavailable, drop_schema, private_postgres
from cachebench.postgres import postgres_url as start_postgres
from cachebench.processes import gunicorn_service
from cachebench.servers import SERVERS, ServerUnavailable, needed, private_server, server_address
from cachebench.topology import missing as hosts_missing
from service import create_app
from service.cache import cache

T = TypeVar("T")


def no_server(reason: str) -> None:
    """Skip for want of a server, except under CI, which must never go green with it untested."""
    if os.environ.get("CI"):
        pytest.fail(f"every server is required when CI is set: {reason}")
    pytest.skip(reason)


def started(stack: ExitStack, server: AbstractContextManager[T]) -> T:
    """Enter `server` on `stack`, or skip (fail under CI) if there is none to start."""
    try:
        return stack.enter_context(server)
    except (ServerUnavailable, PostgresUnavailable) as exc:
        no_server(str(exc))
        raise  # not reached: no_server skips or fails


def pytest_configure(config: pytest.Config) -> None:
    for server in SERVERS.values():
        config.addinivalue_line(
            "markers",
            f"{server.name}: needs a real {server.executable} (a private one, or {server.env_var})",
        )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test run with a backend that needs a server with that server's name (`redis`,
    `memcached`), so that `-m "not redis"` runs without one. A test that asks for a server
    otherwise carries the mark itself, which cache_server and stoppable_server check."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec else None
        for server in needed([backend] if isinstance(backend, str) else []):
            item.add_marker(getattr(pytest.mark, server.name))


def marked(request: pytest.FixtureRequest, name: str) -> None:
    """Fail a test that gets server `name` without its mark: `-m "not <name>"` would run it."""
    if request.node.get_closest_marker(name) is None:
        pytest.fail(f"{request.node.nodeid} uses {name}: mark it @pytest.mark.{name}")


@pytest.fixture(scope="session")
def session_servers() -> Iterator[Callable[[str], str]]:
    """The address of a real server of each kind asked for (the names of cachebench/servers.py),
    started the first time for the session: its environment variable (REDIS_URL,
    MEMCACHED_SERVERS), or a private one on a free port."""
    with ExitStack() as stack:
        addresses: dict[str, str] = {}

        def address(name: str) -> str:
            if name not in addresses:
                addresses[name] = started(stack, server_address(SERVERS[name]))
            return addresses[name]

        yield address


@pytest.fixture(scope="session")
def own_servers() -> Callable[..., dict[str, str]]:
    """own_servers(*names): the environment of a `cachebench run` that starts private servers
    of those kinds itself (faults go only into those): this one without their environment
    variables. Skips (fails under CI) if one cannot be started for want of its executable."""

    def environment(*names: str) -> dict[str, str]:
        servers = [SERVERS[name] for name in names]
        for server in servers:
            if shutil.which(server.executable) is None:
                no_server(f"{server.executable} not found: {server.install}")
        variables = {server.env_var for server in servers}
        return {k: v for k, v in os.environ.items() if k not in variables}

    return environment


@pytest.fixture
def cache_server(request: pytest.FixtureRequest, session_servers) -> Callable[[str], str]:
    """cache_server(name): the session's server of that kind, for a test marked `name`."""

    def address(name: str) -> str:
        marked(request, name)
        return session_servers(name)

    return address


@pytest.fixture
def stoppable_server(request) -> Iterator[Callable[[str], tuple[str, subprocess.Popen]]]:
    """stoppable_server(name): a private server of that kind, which this test may stop (never
    the shared one of the environment), for a test marked `name`: (address, process)."""
    with ExitStack() as stack:

        def start(name: str) -> tuple[str, subprocess.Popen]:
            marked(request, name)
            return started(stack, private_server(SERVERS[name]))

        yield start


@pytest.fixture
def hosts_machine(request: pytest.FixtureRequest) -> None:
    """For a test marked `hosts`: skip (fail under CI) where --topology hosts cannot run: not
    root, or no iproute2, HAProxy or PostgreSQL server."""
    marked(request, "hosts")
    why = hosts_missing()
    if why:
        no_server(f"--topology hosts {why}")


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
    the session's server for a backend that needs one, a schema of its own on the session's
    PostgreSQL for the postgres store, then the overrides given."""
    config = {
        "VIDEOS_DATABASE": str(tmp_path / "videos.sqlite"),
        "CACHE_DIR": str(tmp_path / "cache"),
        "VIDEOS_WORK_MS": 0,
        **settings,
    }
    for server in needed([config.get("CACHE_BACKEND")]):
        config.setdefault(server.setting, request.getfixturevalue("cache_server")(server.name))
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
    and cache clients are closed: a connection left to the garbage collector is a warning.
    """
    apps = []

    def make(**settings: object) -> Flask:
        app = create_app({"TESTING": True, **service_settings(tmp_path, request, **settings)})
        apps.append(app)
        return app

    yield make
    for app in apps:
        # The invalidation's background work (service/invalidation.py) ends first: it uses
        # the cache and the store.
        if "cache_invalidation" in app.extensions:
            app.extensions["cache_invalidation"].stop()
        # A test may have stopped its server on purpose: whatever its client then raises.
        with app.app_context(), suppress(Exception):
            cache.clear()
        with app.app_context():
            # The backends with connections close them (service/cache_format.py).
            getattr(cache.cache, "close", lambda: None)()
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
