"""The SQLite store shared by the workers, and the tutorial's dict."""

import logging
import multiprocessing
import sqlite3
import stat
from contextlib import closing, contextmanager

import pytest

from service.store import SEED, MemoryStore, SQLiteStore, StoreError

VIDEO = {"name": "Cats", "views": 10, "likes": 2}


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    """Each store, new and seeded."""
    if request.param == "memory":
        return MemoryStore()
    return SQLiteStore(tmp_path / "videos.sqlite")


def test_store_is_seeded_and_reads_writes_deletes(store):
    assert store.get(1) == SEED[1]
    assert store.get(2) is None
    store.put(2, VIDEO)
    assert store.get(2) == VIDEO
    store.put(2, {**VIDEO, "views": 11})
    assert store.get(2)["views"] == 11
    assert store.delete(2) is True
    assert store.delete(2) is False
    assert store.get(2) is None


def test_sqlite_uses_wal_and_keeps_its_deployment(tmp_path):
    path = tmp_path / "videos.sqlite"
    first = SQLiteStore(path)
    assert SQLiteStore(path).deployment_id == first.deployment_id
    assert SQLiteStore(tmp_path / "other.sqlite").deployment_id != first.deployment_id
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_database_is_readable_by_its_user_only(tmp_path):
    store = SQLiteStore(tmp_path / "videos.sqlite")
    store.put(2, VIDEO)
    for name in ("videos.sqlite", "videos.sqlite-wal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_a_restarted_worker_does_not_reseed_a_deleted_video(tmp_path):
    path = tmp_path / "videos.sqlite"
    SQLiteStore(path).delete(1)
    assert SQLiteStore(path).get(1) is None


def test_writes_are_visible_to_another_process_at_once(tmp_path):
    path = tmp_path / "videos.sqlite"
    SQLiteStore(path).put(5, VIDEO)
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT name FROM videos WHERE id = 5").fetchone() == ("Cats",)


def _open(path, start, queue):
    start.wait()
    queue.put(SQLiteStore(path).deployment_id)


def test_workers_starting_together_seed_exactly_once(tmp_path):
    path = tmp_path / "videos.sqlite"
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_open, args=(path, start, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert len({queue.get() for _ in workers}) == 1
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM videos").fetchone() == (1,)
        assert connection.execute("SELECT count(*) FROM deployment").fetchone() == (1,)


@contextmanager
def locked(path):
    """Hold SQLite's write lock on `path`, as a long transaction elsewhere would."""
    with closing(sqlite3.connect(path, isolation_level=None)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            blocker.execute("ROLLBACK")


def test_locked_store_is_an_error_not_a_hang(tmp_path):
    path = tmp_path / "videos.sqlite"
    store = SQLiteStore(path, busy_timeout_ms=50)
    with locked(path), pytest.raises(StoreError, match="database is locked"):
        store.put(1, VIDEO)
    store.put(1, VIDEO)


def test_store_error_is_503_json_and_logged(make_app, tmp_path, caplog):
    path = tmp_path / "videos.sqlite"
    client = make_app(VIDEOS_BUSY_TIMEOUT_MS=50, CACHE_BACKEND="none").test_client()
    with locked(path), caplog.at_level(logging.ERROR):
        response = client.put("/videos/1", json=VIDEO)
    assert response.status_code == 503
    assert "database is locked" in response.get_json()["message"]
    assert any("database is locked" in record.getMessage() for record in caplog.records)
    assert client.get("/videos/1").get_json() == SEED[1]


def test_memory_store_is_per_app(make_app):
    first = make_app(VIDEOS_STORE="memory").test_client()
    second = make_app(VIDEOS_STORE="memory").test_client()
    first.put("/videos/1", json=VIDEO)
    assert second.get("/videos/1").get_json() == SEED[1]
