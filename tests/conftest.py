"""Fixtures of the tests: the app and client over every backend and strategy."""

import pytest

from cachebench.servers import needed
from service.settings import CACHE_BACKENDS, CACHE_STRATEGIES


@pytest.fixture(params=CACHE_BACKENDS)
def backend(request):
    """Each cache backend (those that need a server get a real one)."""
    for server in needed([request.param]):
        request.getfixturevalue("cache_server")(server.name)
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
