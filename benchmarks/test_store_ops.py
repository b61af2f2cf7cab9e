"""The SQLite store alone: the read a GET MISS makes, and the writes of PUT and DELETE."""

import pytest

from service.store import SEED, SQLiteStore

pytestmark = pytest.mark.benchmark(group="store")

NEW = {"name": "Cats", "views": 10, "likes": 2}
ROUNDS = 1000  # rounds of the delete, which needs the video written back before every call


@pytest.fixture
def sqlite_store(tmp_path) -> SQLiteStore:
    """A new seeded store, as the service opens it."""
    return SQLiteStore(tmp_path / "videos.sqlite")


def test_read(benchmark, sqlite_store):
    result = benchmark(sqlite_store.get, 1)
    assert result == SEED[1]


def test_write(benchmark, sqlite_store):
    result = benchmark(sqlite_store.put, 1, NEW)
    assert result is None
    assert sqlite_store.get(1) == NEW


def test_delete(benchmark, sqlite_store):
    def write_back() -> None:
        sqlite_store.put(1, NEW)

    result = benchmark.pedantic(
        sqlite_store.delete, args=(1,), setup=write_back, rounds=ROUNDS, warmup_rounds=10
    )
    assert result is True
    assert sqlite_store.get(1) is None
