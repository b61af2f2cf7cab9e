"""Fixtures of the tests: the app and client over every backend and strategy."""

import pytest

from service.settings import CACHE_BACKENDS, CACHE_STRATEGIES


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
