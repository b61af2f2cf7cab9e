"""The tutorial's checks against the real thing: gunicorn with 2 workers on one SQLite store,
or on one PostgreSQL schema with several gunicorns."""

import http.client
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from cachebench.processes import GUNICORN_CONF, RUN_MARKER, run_environment
from service.backends import BACKENDS
from service.settings import CACHE_BACKENDS
from service.validation import MAX_BODY_BYTES

SEED = {"name": "HelloWorld", "views": 147, "likes": 3}


def video(n):
    return {"name": f"write-{n}", "views": n, "likes": n}


@pytest.mark.parametrize(
    ("backend", "store"),
    [
        *((b, "sqlite") for b in CACHE_BACKENDS if not BACKENDS[b].per_process),
        pytest.param("redis", "postgres", marks=pytest.mark.postgres),
    ],
)
def test_second_get_always_shows_the_write(serve, backend, store):
    """A cache shared by the workers (or none): a PUT through one invalidates for all."""
    url = serve(CACHE_BACKEND=backend, VIDEOS_STORE=store) + "/videos/1"
    for n in range(10):
        assert requests.get(url, timeout=10).status_code == 200
        assert requests.put(url, json=video(n), timeout=10).status_code == 201
        assert requests.get(url, timeout=10).json() == video(n)
        assert requests.get(url, timeout=10).status_code == 200
        assert requests.delete(url, timeout=10).status_code == 204
        assert requests.get(url, timeout=10).status_code == 404
        assert requests.put(url, json=video(n), timeout=10).status_code == 201


def test_simple_cache_per_worker_serves_the_old_value(serve):
    """SimpleCache lives in each worker: a PUT invalidates only the worker that served it.

    This is what the harness exists to measure, not a bug to hide. Two GETs sent together
    while a GET holds its worker in the simulated work reach both workers.
    """
    url = serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=300) + "/videos/1"

    def get_pair():
        with ThreadPoolExecutor(2) as pool:
            return [r.json() for r in pool.map(lambda _: requests.get(url, timeout=10), "ab")]

    assert get_pair() == [SEED, SEED]  # both workers now cache the seed
    assert requests.put(url, json=video(1), timeout=10).status_code == 201
    seen = get_pair() + get_pair()
    assert SEED in seen, "the other worker's cache should still hold the old value"


@pytest.mark.postgres
def test_postgres_is_seeded_once_by_many_workers_and_shared_by_two_services(
    serve, postgres_url, postgres_schema
):
    """Two services on one schema, as on two hosts: the first one's 4 workers start
    together and seed it once; the second seeds nothing, so a deleted video stays deleted;
    each sees the other's writes, committed before the answer."""
    settings = {"VIDEOS_STORE": "postgres", "CACHE_BACKEND": "none"}
    first = serve(**settings, SERVICE_WORKERS=4) + "/videos"
    with psycopg.connect(postgres_url, options=f"-c search_path={postgres_schema}") as database:
        assert database.execute("SELECT count(*) FROM deployment").fetchone() == (1,)
        assert database.execute("SELECT id FROM videos").fetchall() == [(1,)]
        assert requests.delete(f"{first}/1", timeout=10).status_code == 204
        second = serve(**settings) + "/videos"
        assert requests.get(f"{second}/1", timeout=10).status_code == 404
        assert requests.put(f"{second}/2", json=video(2), timeout=10).status_code == 201
        assert database.execute("SELECT name FROM videos WHERE id = 2").fetchone() == ("write-2",)
        assert requests.get(f"{first}/2", timeout=10).json() == video(2)
        assert database.execute("SELECT count(*) FROM deployment").fetchone() == (1,)


def test_chunked_oversized_body_is_413(serve):
    base = urlsplit(serve(CACHE_BACKEND="none"))
    connection = http.client.HTTPConnection(base.hostname, base.port, timeout=10)
    body = b'{"name": "' + b"x" * (2 * MAX_BODY_BYTES) + b'", "views": 1, "likes": 1}'
    connection.request(
        "PUT",
        "/videos/1",
        body=iter([body]),
        encode_chunked=True,
        headers={"Content-Type": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 413
    connection.close()
    assert requests.get(f"{base.geturl()}/videos/1", timeout=10).json() == SEED


def gunicorn(settings, *options):
    """Run gunicorn with the service's config, `settings` and `options`, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), *options],
        env=run_environment({"SERVICE_BIND": "127.0.0.1:0", **settings}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (
            {"CACHE_BACKEND": "couchbase"},
            f"CACHE_BACKEND='couchbase': must be one of {', '.join(CACHE_BACKENDS)}",
        ),
        (
            {"VIDEOS_STORE": "postgres"},
            "VIDEOS_STORE='postgres' needs VIDEOS_DATABASE_URL, e.g. "
            "postgresql://postgres@127.0.0.1:5432/postgres",
        ),
        # Before it was checked here, each worker died on it with a traceback of ~100 lines.
        (
            {"CACHE_BACKEND": "redis", "CACHE_REDIS_URL": "redis://:bad"},
            "CACHE_REDIS_URL='redis://:bad': must be a Redis URL such as "
            "redis://127.0.0.1:6379/0 (Port could not be cast to integer value as 'bad')",
        ),
    ],
)
def test_bad_setting_stops_gunicorn_with_one_line(settings, says):
    result = gunicorn(settings, "service:create_app()")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"cachebench service: {says}"]


def test_a_strategy_that_does_not_apply_stops_gunicorn_with_one_line():
    result = gunicorn({"CACHE_INVALIDATION": "lease"}, "service:create_app()")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "cachebench service: CACHE_INVALIDATION='lease' does not apply to "
        "CACHE_BACKEND='simple': it needs an atomic compare-and-set on a server (redis, memcached)"
    ]


def worker_timeout(settings):
    result = gunicorn(settings, "--print-config", "service:create_app()")
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.split()[:2] == ["timeout", "="]]
    return int(line.split("=")[1])


def test_worker_timeout_outlasts_the_longest_request_unless_set():
    """The timeout kills a worker that is silent (see test_raw_http.py), so it must not kill
    one that does its work or waits for SQLite's lock."""
    assert worker_timeout({"VIDEOS_WORK_MS": 20_000, "VIDEOS_BUSY_TIMEOUT_MS": 7_000}) > 27
    assert worker_timeout({"VIDEOS_WORK_MS": 20_000, "SERVICE_TIMEOUT": 4}) == 4
    # A GET or a PUT that waits out the cache client's timeouts (a stalled cache).
    stalled_cache = {"CACHE_CONNECT_TIMEOUT_MS": 20_000, "CACHE_SOCKET_TIMEOUT_MS": 30_000}
    assert worker_timeout({"VIDEOS_WORK_MS": 0, "VIDEOS_BUSY_TIMEOUT_MS": 0, **stalled_cache}) > 50


@pytest.mark.postgres
def test_worker_timeout_outlasts_connecting_to_postgres_and_a_whole_statement(
    postgres_url, postgres_schema
):
    """With postgres a request may spend the connect timeout, then the statement timeout."""
    settings = {
        "VIDEOS_STORE": "postgres",
        "VIDEOS_DATABASE_URL": postgres_url,
        "VIDEOS_SCHEMA": postgres_schema,
        "VIDEOS_WORK_MS": 20_000,
        "VIDEOS_BUSY_TIMEOUT_MS": 7_000,
    }
    assert worker_timeout(settings) > 20 + 7 + 2 * 7


def test_a_run_inherits_only_the_allowed_part_of_the_callers_environment(monkeypatch):
    inherited = {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", RUN_MARKER: "/tmp/run"}
    left_out = {"CACHE_BACKEND": "redis", "LOCUST_USERS": "1", "GUNICORN_CMD_ARGS": "-w 9",
                "PYTHONWARNINGS": "error", "http_proxy": "http://proxy:3128"}  # fmt: skip
    for name, value in {**inherited, **left_out}.items():
        monkeypatch.setenv(name, value)
    env = run_environment({"VIDEOS_WORK_MS": 5, "CACHE_REDIS_URL": None})
    assert inherited.items() <= env.items()
    assert not left_out.keys() & env.keys()
    assert env["VIDEOS_WORK_MS"] == "5"
    assert "CACHE_REDIS_URL" not in env
