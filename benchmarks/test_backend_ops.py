"""Each cache backend's raw operations on the value the service caches for a GET.

The backends are taken from an app of the service, so they are configured as it configures
them (FileSystemCache's directory and threshold, the servers' key prefix), and the value is the
one the service itself cached: what `@cache.cached` stores is the view's return value, the
tuple `(video, 200)`, as JSON (service/cache_format.py) for every backend.
"""

import itertools
import os

import pytest
from cachelib import BaseCache, FileSystemCache

from service.cache import cache
from service.settings import CACHE_BACKENDS
from service.store import SEED

pytestmark = pytest.mark.benchmark(group="backend-ops")

BACKENDS = [b for b in CACHE_BACKENDS if b != "none"]
KEY = "get/videos/1"  # the cached strategy's key for GET /videos/1
ROUNDS = 1000  # rounds of the benchmarks that need a setup before every call
SLOW_ROUNDS = 20  # a set over FileSystemCache's threshold reads the whole directory


@pytest.fixture
def cached_video(make_app, backend) -> tuple[BaseCache, object]:
    """`backend` as the service configures it, holding the video the service cached there."""
    app = make_app(CACHE_BACKEND=backend)
    assert app.test_client().get("/videos/1").headers["X-Cache"] == "MISS"
    with app.app_context():
        backend_cache = cache.cache
    value = backend_cache.get(KEY)
    assert value == (SEED[1], 200)
    return backend_cache, value


@pytest.fixture(autouse=True)
def record_backend(benchmark, cached_video, backend) -> None:
    """Record the backend and the size of the value as it is stored (JSON)."""
    backend_cache, value = cached_video
    benchmark.extra_info["backend"] = backend
    benchmark.extra_info["payload_bytes"] = len(backend_cache.serializer.dumps(value))


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_hit(benchmark, cached_video):
    backend_cache, value = cached_video
    result = benchmark(backend_cache.get, KEY)
    assert result == value


@pytest.mark.parametrize("backend", BACKENDS)
def test_get_miss(benchmark, cached_video):
    backend_cache, _ = cached_video
    result = benchmark(backend_cache.get, "get/videos/2")
    assert result is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_set(benchmark, cached_video):
    """Set a key that is absent, as the GET after an invalidation does."""
    backend_cache, value = cached_video

    def forget() -> None:
        backend_cache.delete(KEY)

    result = benchmark.pedantic(
        backend_cache.set, args=(KEY, value), setup=forget, rounds=ROUNDS, warmup_rounds=10
    )
    assert result is True
    assert backend_cache.get(KEY) == value


@pytest.mark.parametrize("backend", BACKENDS)
def test_delete(benchmark, cached_video):
    """Delete a key that is present, as the invalidation after a cached GET does."""
    backend_cache, value = cached_video

    def put_back() -> None:
        backend_cache.set(KEY, value)

    result = benchmark.pedantic(
        backend_cache.delete, args=(KEY,), setup=put_back, rounds=ROUNDS, warmup_rounds=10
    )
    assert result is True
    assert backend_cache.get(KEY) is None


@pytest.mark.parametrize("backend", ["filesystem"])
def test_set_over_threshold(benchmark, cached_video):
    """Set a new key once the directory holds more entries than the threshold.

    FileSystemCache then prunes on every set: it reads every file to find the expired ones,
    then again to remove the oldest until it is back at the threshold.
    """
    backend_cache, value = cached_video
    assert isinstance(backend_cache, FileSystemCache)
    threshold = backend_cache._threshold  # the service leaves Flask-Caching's default, 500
    for i in range(threshold):  # with KEY, one entry more than the threshold
        backend_cache.set(f"filler/{i}", value)
    new_keys = (f"new/{i}" for i in itertools.count())

    def new_key() -> tuple[tuple[str, object], dict]:
        return (next(new_keys), value), {}

    result = benchmark.pedantic(backend_cache.set, setup=new_key, rounds=SLOW_ROUNDS)
    assert result is True
    # Every set added an entry and the pruning took one away: still one over the threshold.
    entries = [name for name in os.listdir(backend_cache._path) if not backend_cache._is_mgmt(name)]
    assert len(entries) == threshold + 1
    benchmark.extra_info["entries"] = threshold + 1
