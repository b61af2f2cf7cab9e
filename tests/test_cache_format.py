"""What the caches hold: JSON data, so an entry planted by whoever can write there is a miss,
never code the service runs."""

import importlib
import json
import logging
import os
import pickle
import struct

import pytest
from flask_caching.signals import cache_memoize_miss, cache_view_miss
from raw_cache import full_key, raw_cache

from service.backends import BACKENDS
from service.cache import cache
from service.cache_format import JSONSerializer
from service.settings import CACHE_BACKENDS
from service.store import SEED

# The ones another process can write to: a directory, a server.
SHARED_BACKENDS = ["filesystem", *(b for b in CACHE_BACKENDS if BACKENDS[b].server)]
FILE_HEADER = struct.pack("I", 0)  # FileSystemCache's expiry before the value: 0 is never


class Planted:
    """Unpickling this makes a directory: the proof that a cached value ran as code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def backend_of(app):
    with app.app_context():
        return cache.cache


def write_entry(path, value):
    """Write a FileSystemCache file holding `value`, never expiring."""
    with open(path, "wb") as f:
        f.write(FILE_HEADER + value)


def plant(app, backend, key, value):
    """Write `value` where `app`'s cache keeps `key`, as an intruder would: not through it.
    Bytes are written as they are, anything else pickled as the backend's own client would."""
    if backend == "filesystem":
        data = value if isinstance(value, bytes) else pickle.dumps(value)
        write_entry(backend_of(app)._get_filename(key), data)
        return
    with raw_cache(app) as server:
        server.set(full_key(app, key), value)


def plant_everywhere(app, backend, value):
    """Replace every value the cache holds for `app` (memoize's versions too) with `value`,
    pickled as the backend's own client would."""
    backend_cache = backend_of(app)
    if backend == "filesystem":
        directory = backend_cache._path
        names = [n for n in os.listdir(directory) if not backend_cache._is_mgmt(n)]
        for name in names:
            write_entry(os.path.join(directory, name), pickle.dumps(value))
    else:
        with raw_cache(app) as server:
            names = server.keys(backend_cache.key_prefix)
            for name in names:
                server.set(name, value)
    assert names


def get_missed_key(client, path="/videos/1"):
    """GET `path`; returns the response and the keys whose misses Flask-Caching signalled."""
    keys = []

    def record(sender, cache_key, **extra):
        keys.append(cache_key)

    with cache_view_miss.connected_to(record), cache_memoize_miss.connected_to(record):
        response = client.get(path)
    return response, keys


def assert_served_from_the_store(response, status):
    assert (response.status_code, response.headers["X-Cache"]) == (200, status)
    assert response.get_json() == SEED[1]


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
@pytest.mark.parametrize("strategy", ["cached", "memoize-fixed"])
def test_a_planted_pickle_is_a_miss_never_code(make_app, backend, strategy, tmp_path, caplog):
    app = make_app(CACHE_BACKEND=backend, CACHE_STRATEGY=strategy)
    client = app.test_client()
    assert_served_from_the_store(client.get("/videos/1"), "MISS")
    marker = tmp_path / "planted-code-ran"
    plant_everywhere(app, backend, Planted(str(marker)))
    with caplog.at_level(logging.WARNING):
        response = client.get("/videos/1")
    assert not marker.exists()
    assert_served_from_the_store(response, "MISS")
    # One line, for the first entry read (memoize-fixed's version: a new one names a new key).
    assert [(r.name, r.levelname, r.exc_info) for r in caplog.records] == [
        ("service.cache", "WARNING", None)
    ]
    # The view put its own value back, in the service's format.
    assert_served_from_the_store(client.get("/videos/1"), "HIT")


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_a_corrupt_entry_is_a_miss_with_one_line_naming_it(make_app, backend, caplog):
    client = make_app(CACHE_BACKEND=backend).test_client()
    _, (key,) = get_missed_key(client)
    plant(client.application, backend, key, b"\xff{not json")
    with caplog.at_level(logging.WARNING):
        response, missed = get_missed_key(client)
    assert_served_from_the_store(response, "MISS")
    assert missed == [key]
    assert [r.name for r in caplog.records if key in r.getMessage()] == ["service.cache"]
    assert all(r.exc_info is None for r in caplog.records)
    assert_served_from_the_store(client.get("/videos/1"), "HIT")


@pytest.mark.parametrize("backend", ["simple", *SHARED_BACKENDS])
@pytest.mark.parametrize(
    ("strategy", "path", "status"),
    [
        ("cached", "/videos/1", 200),
        ("cached", "/videos/9", 404),
        ("memoize-fixed", "/videos/1", 200),
    ],
)
def test_a_hit_answers_what_the_miss_did(make_app, backend, strategy, path, status):
    """The JSON keeps what the views cache: a tuple stays a tuple, a 404 stays a 404."""
    client = make_app(CACHE_BACKEND=backend, CACHE_STRATEGY=strategy).test_client()
    miss, hit = client.get(path), client.get(path)
    assert [miss.headers["X-Cache"], hit.headers["X-Cache"]] == ["MISS", "HIT"]
    assert miss.status_code == hit.status_code == status
    assert miss.data == hit.data


@pytest.mark.parametrize("backend", SHARED_BACKENDS)
def test_the_cached_video_is_stored_as_json(make_app, backend):
    app = make_app(CACHE_BACKEND=backend)
    app.test_client().get("/videos/1")
    if backend == "filesystem":
        with open(backend_of(app)._get_filename("get/videos/1"), "rb") as f:
            stored = f.read()[len(FILE_HEADER) :]
    else:
        with raw_cache(app) as server:
            stored = server.get(full_key(app, "get/videos/1"))
    assert json.loads(stored) == {" t": [SEED[1], 200]}


@pytest.mark.parametrize("backend", [b for b in CACHE_BACKENDS if b != "none"])
def test_every_backend_that_caches_stores_json(backend):
    """A backend added to service/backends.py must be a JSON class of cache_format.py."""
    module, _, name = BACKENDS[backend].cache_type.rpartition(".")
    assert module == "service.cache_format"
    assert isinstance(getattr(importlib.import_module(module), name).serializer, JSONSerializer)
