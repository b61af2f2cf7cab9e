"""What a request costs through the whole service, per cache backend and strategy.

Every path goes through Flask's test client, as does the floor: a bare Flask view answering
the same JSON, which the report uses as the unit. GET does no simulated work
(VIDEOS_WORK_MS=0), so a MISS costs the framework, the store and the cache, not a sleep.
"""

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from service.cache import cache
from service.settings import CACHE_BACKENDS, CACHE_STRATEGIES
from service.store import SEED

pytestmark = pytest.mark.benchmark(group="request-paths")

PATH = "/videos/1"
NEW = {"name": "Cats", "views": 10, "likes": 2}
ROUNDS = 300  # rounds of the paths that need a setup before every request
CACHING_BACKENDS = [b for b in CACHE_BACKENDS if b != "none"]
# memoize keys on the per-request Resource, so its GET cannot be made to hit on demand.
HITTING_STRATEGIES = [s for s in CACHE_STRATEGIES if s != "memoize"]


@pytest.fixture
def service_app(make_app, backend, strategy) -> Flask:
    """The service with `backend` and `strategy`."""
    return make_app(CACHE_BACKEND=backend, CACHE_STRATEGY=strategy)


@pytest.fixture
def service_client(service_app, benchmark, backend, strategy) -> FlaskClient:
    """A test client of `service_app`; the benchmark records the backend and strategy."""
    benchmark.extra_info.update(backend=backend, strategy=strategy)
    return service_app.test_client()


def make_next_get_miss(app: Flask, client: FlaskClient, strategy: str) -> Callable[[], None]:
    """A setup after which the next GET misses, the cache otherwise as a real miss finds it."""
    if strategy != "memoize":

        def invalidate() -> None:
            client.put(PATH, json=SEED[1])

        return invalidate

    # memoize's PUT invalidates the key of its own Resource only, and the GET's new Resource
    # may reuse the address of an earlier one and hit: only emptying the cache is sure. It
    # adds nothing to the GET: at a new address memoize rewrites both version keys anyway.
    def empty_cache() -> None:
        with app.app_context():
            cache.clear()

    return empty_cache


def test_bare_flask_floor(benchmark):
    """The floor: a bare Flask view returning the same JSON, under the same test client."""
    app = Flask("floor")

    @app.get("/videos/<int:video_id>")
    def video(video_id: int) -> dict:
        return dict(SEED[video_id])

    response = benchmark(app.test_client().get, PATH)
    assert response.status_code == 200
    assert response.get_json() == SEED[1]
    benchmark.extra_info["body_bytes"] = len(response.data)


@pytest.mark.parametrize("strategy", HITTING_STRATEGIES)
@pytest.mark.parametrize("backend", CACHING_BACKENDS)
def test_get_hit(benchmark, service_client):
    service_client.get(PATH)
    response = benchmark(service_client.get, PATH)
    assert response.headers["X-Cache"] == "HIT"
    assert response.get_json() == SEED[1]
    benchmark.extra_info["body_bytes"] = len(response.data)


@pytest.mark.parametrize("strategy", CACHE_STRATEGIES)
@pytest.mark.parametrize("backend", CACHE_BACKENDS)
def test_get_miss(benchmark, service_app, service_client, strategy):
    response = benchmark.pedantic(
        service_client.get,
        args=(PATH,),
        setup=make_next_get_miss(service_app, service_client, strategy),
        rounds=ROUNDS,
        warmup_rounds=10,
    )
    assert response.headers["X-Cache"] == "MISS"
    assert response.get_json() == SEED[1]
    benchmark.extra_info["body_bytes"] = len(response.data)


@pytest.mark.parametrize("strategy", CACHE_STRATEGIES)
@pytest.mark.parametrize("backend", CACHE_BACKENDS)
def test_put_invalidates(benchmark, service_client, strategy):
    """PUT the video while its GET is cached: the store write, then the invalidation."""

    def fill_cache() -> None:
        service_client.get(PATH)

    response = benchmark.pedantic(
        service_client.put,
        args=(PATH,),
        kwargs={"json": NEW},
        setup=fill_cache,
        rounds=ROUNDS,
        warmup_rounds=10,
    )
    assert response.status_code == 201
    assert response.get_json() == NEW
    assert "X-Cache" not in response.headers  # BYPASS: the invalidation failed
    if strategy != "memoize":  # whose PUT invalidates its own Resource's key only
        assert service_client.get(PATH).headers["X-Cache"] == "MISS"
    benchmark.extra_info["body_bytes"] = len(response.data)


@pytest.mark.parametrize("strategy", CACHE_STRATEGIES)
@pytest.mark.parametrize("backend", CACHE_BACKENDS)
def test_delete_invalidates(benchmark, service_client, strategy):
    """DELETE the video while its GET is cached: the store delete, then the invalidation."""

    def store_and_cache() -> None:
        service_client.put(PATH, json=NEW)
        service_client.get(PATH)

    response = benchmark.pedantic(
        service_client.delete, args=(PATH,), setup=store_and_cache, rounds=ROUNDS, warmup_rounds=10
    )
    assert response.status_code == 204
    assert "X-Cache" not in response.headers
    if strategy != "memoize":
        after = service_client.get(PATH)
        assert (after.status_code, after.headers["X-Cache"]) == (404, "MISS")
    benchmark.extra_info["body_bytes"] = len(response.data)
