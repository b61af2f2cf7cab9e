"""The stores shared by the workers, SQLite and PostgreSQL (a real server), and the
tutorial's dict."""

import functools
import logging
import multiprocessing
import sqlite3
import stat
import uuid
from contextlib import ExitStack, closing, contextmanager

import psycopg
import pytest

from cachebench.postgres import drop_schema
from service.store import SEED, MemoryStore, PostgresStore, SQLiteStore, StoreError

VIDEO = {"name": "Cats", "views": 10, "likes": 2}


class Database:
    """A database as a test sees it: stores opened on it (closed with the test's `stack`), its
    rows read through a connection of the test's own, its write lock held as a long
    transaction elsewhere would hold it."""

    def store(self, **options):
        store = self.open(**options)
        self.stack.callback(store.close)
        return store


class SQLiteDatabase(Database):
    """A SQLite file."""

    lock_error = "database is locked"

    def __init__(self, stack, directory, name="videos"):
        self.stack = stack
        self.path = directory / f"{name}.sqlite"
        # Picklable, for the processes that open the store together.
        self.open = functools.partial(SQLiteStore, self.path)
        self.settings = {"VIDEOS_STORE": "sqlite", "VIDEOS_DATABASE": str(self.path)}

    def another(self):
        """Another deployment on the same server: its own file beside this one."""
        return SQLiteDatabase(self.stack, self.path.parent, f"other-{uuid.uuid4().hex[:8]}")

    def rows(self, query):
        with closing(sqlite3.connect(self.path)) as connection:
            return connection.execute(query).fetchall()

    @contextmanager
    def locked(self):
        with closing(sqlite3.connect(self.path, isolation_level=None)) as blocker:
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                yield
            finally:
                blocker.execute("ROLLBACK")


class PostgresDatabase(Database):
    """A schema of the test's own on the session's PostgreSQL, dropped at the end, after its
    stores are closed."""

    lock_error = "lock timeout"

    def __init__(self, stack, url):
        self.stack = stack
        self.url = url
        schema = f"cachebench_test_{uuid.uuid4().hex[:12]}"
        stack.callback(drop_schema, url, schema)
        self.open = functools.partial(PostgresStore, url, schema)
        self.settings = {
            "VIDEOS_STORE": "postgres",
            "VIDEOS_DATABASE_URL": url,
            "VIDEOS_SCHEMA": schema,
        }
        self.connect = functools.partial(
            psycopg.connect, url, autocommit=True, options=f"-c search_path={schema}"
        )

    def another(self):
        """Another deployment on the same server: its own schema."""
        return PostgresDatabase(self.stack, self.url)

    def rows(self, query):
        with self.connect() as connection:
            return connection.execute(query).fetchall()

    @contextmanager
    def locked(self):
        with self.connect() as blocker, blocker.transaction():
            blocker.execute("LOCK TABLE videos IN ACCESS EXCLUSIVE MODE")
            yield


SHARED = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def new_database(kind, stack, request, tmp_path):
    if kind == "sqlite":
        return SQLiteDatabase(stack, tmp_path)
    return PostgresDatabase(stack, request.getfixturevalue("postgres_url"))


@pytest.fixture(params=SHARED)
def database(request, tmp_path):
    """Each database a store shares between workers, new: a SQLite file, a PostgreSQL schema."""
    with ExitStack() as stack:
        yield new_database(request.param, stack, request, tmp_path)


@pytest.fixture(params=[*SHARED, "memory"])
def store(request, tmp_path):
    """Each store, new and seeded."""
    with ExitStack() as stack:
        if request.param == "memory":
            yield MemoryStore()
        else:
            yield new_database(request.param, stack, request, tmp_path).store()


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


def test_sqlite_uses_wal(tmp_path):
    path = tmp_path / "videos.sqlite"
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_sqlite_file_is_readable_by_its_user_only(tmp_path):
    store = SQLiteStore(tmp_path / "videos.sqlite")
    store.put(2, VIDEO)
    for name in ("videos.sqlite", "videos.sqlite-wal"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    store.close()


def test_a_deployment_keeps_its_id_and_never_sees_another_deployments_videos(database):
    first = database.store()
    assert database.store().deployment_id == first.deployment_id
    other = database.another().store()
    assert other.deployment_id != first.deployment_id
    first.delete(1)
    first.put(2, VIDEO)
    assert other.get(1) == SEED[1]
    assert other.get(2) is None


def test_a_restarted_worker_does_not_reseed_a_deleted_video(database):
    database.store().delete(1)
    assert database.store().get(1) is None


def test_writes_are_committed_before_they_return(database):
    """Visible at once to another connection, as to another worker's."""
    store = database.store()
    store.put(5, VIDEO)
    assert database.rows("SELECT name, views, likes FROM videos WHERE id = 5") == [("Cats", 10, 2)]
    store.delete(5)
    assert database.rows("SELECT name FROM videos WHERE id = 5") == []


def test_a_transaction_commits_a_write_with_its_marks(store):
    """What the invalidation strategies write: a video's version, bumped, and outbox rows,
    read per video (the newest) and removed up to the one confirmed."""
    assert (store.version(2), store.pending_invalidations()) == (0, {})
    with store.transaction() as writes:
        writes.put(2, VIDEO)
        writes.bump_version(2)
        first = writes.record_invalidation(2)
    with store.transaction() as writes:
        assert writes.delete(2) is True
        writes.bump_version(2)
        second = writes.record_invalidation(2)
    with store.transaction() as writes:
        assert writes.delete(3) is False
        third = writes.record_invalidation(3)
    assert store.get(2) is None
    assert (store.version(2), store.version(3)) == (2, 0)
    assert first < second
    assert store.pending_invalidations() == {2: second, 3: third}
    assert store.pending_invalidations(2) == {2: second}
    store.confirm_invalidations(2, first)
    assert store.pending_invalidations(2) == {2: second}
    store.confirm_invalidations(2, second)
    assert store.pending_invalidations() == {3: third}


def test_an_outbox_number_is_never_given_twice(store):
    """Confirming up to a number must never remove a later write's row that reused it."""
    with store.transaction() as writes:
        first = writes.record_invalidation(2)
    store.confirm_invalidations(2, first)
    with store.transaction() as writes:
        assert writes.record_invalidation(2) > first


def marked_write(store, video_id, fail=False):
    """A write with both marks, as the invalidation strategies make it; failing before the
    commit if asked."""
    with store.transaction() as writes:
        writes.put(video_id, VIDEO)
        writes.bump_version(video_id)
        writes.record_invalidation(video_id)
        if fail:
            raise RuntimeError("failed before the commit")


def test_a_transaction_that_raises_writes_nothing(database):
    store = database.store()
    with pytest.raises(RuntimeError, match="before the commit"):
        marked_write(store, 2, fail=True)
    assert (store.get(2), store.version(2), store.pending_invalidations()) == (None, 0, {})
    with store.transaction() as writes:
        writes.put(2, VIDEO)
    assert store.get(2) == VIDEO


def _open(open_store, start, queue):
    start.wait()
    store = open_store()
    queue.put(store.deployment_id)
    store.close()


def test_workers_starting_together_seed_exactly_once(database):
    context = multiprocessing.get_context("spawn")
    start, queue = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_open, args=(database.open, start, queue)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert len({queue.get() for _ in workers}) == 1
    assert database.rows("SELECT count(*) FROM videos") == [(1,)]
    assert database.rows("SELECT count(*) FROM deployment") == [(1,)]


def test_locked_store_is_an_error_not_a_hang(database):
    store = database.store(busy_timeout_ms=50)
    with database.locked(), pytest.raises(StoreError, match=database.lock_error):
        store.put(1, VIDEO)
    with database.locked(), pytest.raises(StoreError, match=database.lock_error):
        marked_write(store, 1)
    store.put(1, VIDEO)
    assert store.version(1) == 0


def test_store_error_is_503_json_and_logged(make_app, database, caplog):
    app = make_app(**database.settings, VIDEOS_BUSY_TIMEOUT_MS=50, CACHE_BACKEND="none")
    client = app.test_client()
    with database.locked(), caplog.at_level(logging.ERROR):
        response = client.put("/videos/1", json=VIDEO)
    assert response.status_code == 503
    assert database.lock_error in response.get_json()["message"]
    assert any(database.lock_error in record.getMessage() for record in caplog.records)
    assert client.get("/videos/1").get_json() == SEED[1]


@pytest.mark.postgres
def test_a_stopped_postgres_is_503_and_its_restart_costs_each_connection_one(
    make_app, own_postgres
):
    """While the server is down every request answers 503 at once; after a restart, the
    connection the restart dropped fails once, and the next request connects again."""
    server = own_postgres
    settings = {"VIDEOS_STORE": "postgres", "VIDEOS_DATABASE_URL": server.url}
    client = make_app(**settings, VIDEOS_SCHEMA="videos", CACHE_BACKEND="none").test_client()
    assert client.put("/videos/2", json=VIDEO).status_code == 201
    server.stop()
    for method in (client.get, client.delete):
        response = method("/videos/2")
        assert response.status_code == 503
        assert "could not" in response.get_json()["message"]
    server.start()
    assert client.get("/videos/2").get_json() == VIDEO
    server.stop()
    server.start()
    assert client.get("/videos/2").status_code == 503
    assert client.get("/videos/2").get_json() == VIDEO


@pytest.mark.postgres
def test_a_user_given_a_schema_needs_no_right_to_create_one(own_postgres):
    with psycopg.connect(own_postgres.url, autocommit=True) as admin:
        admin.execute("CREATE ROLE videos LOGIN")
        admin.execute("REVOKE CREATE ON DATABASE postgres FROM PUBLIC")
        admin.execute("CREATE SCHEMA given AUTHORIZATION videos")
    url = own_postgres.url.replace("postgres@", "videos@")
    store = PostgresStore(url, "given")
    assert store.get(1) == SEED[1]
    store.close()
    with pytest.raises(StoreError, match="permission denied"):
        PostgresStore(url, "another")


def test_memory_store_is_per_app(make_app):
    first = make_app(VIDEOS_STORE="memory").test_client()
    second = make_app(VIDEOS_STORE="memory").test_client()
    first.put("/videos/1", json=VIDEO)
    assert second.get("/videos/1").get_json() == SEED[1]
