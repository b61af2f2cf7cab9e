"""Where the videos live: SQLite shared by every gunicorn worker, a PostgreSQL schema shared
by every worker on every host, or the tutorial's dict.

The tutorial keeps videos in a module-level dict, which under several workers gives each
process its own copy; SQLite in WAL mode gives all of them one store, and PostgreSQL gives
one to several hosts.
"""

import hashlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Generic, NamedTuple, Protocol, TypedDict, TypeVar

import psycopg
from flask import Flask, current_app
from psycopg import sql

from service.settings import PostgresTimeouts

T = TypeVar("T")
Connection = TypeVar("Connection", sqlite3.Connection, psycopg.Connection)


class Video(TypedDict):
    name: str
    views: int
    likes: int


SEED: dict[int, Video] = {1: {"name": "HelloWorld", "views": 147, "likes": 3}}


class StoreError(Exception):
    """The store could not complete an operation (locked too long, disk error, ...)."""


class Writes(Protocol):
    """A store's writes: a video, and the marks an invalidation strategy leaves with it (the
    video's version, an outbox row naming it)."""

    def put(self, video_id: int, video: Video) -> None: ...
    def delete(self, video_id: int) -> bool: ...
    def bump_version(self, video_id: int) -> None: ...
    def record_invalidation(self, video_id: int) -> int: ...


class Store(Protocol):
    deployment_id: str

    def get(self, video_id: int) -> Video | None: ...
    def put(self, video_id: int, video: Video) -> None: ...
    def delete(self, video_id: int) -> bool: ...
    def close(self) -> None: ...

    # For the invalidation strategies (service/invalidation.py).
    def transaction(self) -> AbstractContextManager[Writes]:
        """Writes committed together when the block ends, or not at all if it raises."""
        ...

    def version(self, video_id: int) -> int:
        """How many writes marked `video_id`'s version: 0 before the first."""
        ...

    def pending_invalidations(self, video_id: int | None = None) -> dict[int, int]:
        """The videos (or only `video_id`) with rows in the outbox, each with its newest's
        sequence number."""
        ...

    def confirm_invalidations(self, video_id: int, up_to: int) -> None:
        """Remove `video_id`'s outbox rows numbered up to `up_to`: their invalidation is done."""
        ...


class MemoryStore:
    """The tutorial's dict: correct in one process only."""

    def __init__(self) -> None:
        self.deployment_id = uuid.uuid4().hex[:12]
        self._videos: dict[int, Video] = dict(SEED)
        self._versions: dict[int, int] = {}
        self._outbox: dict[int, int] = {}  # seq -> video id
        self._seq = 0
        self._lock = threading.Lock()

    def get(self, video_id: int) -> Video | None:
        return self._videos.get(video_id)

    def put(self, video_id: int, video: Video) -> None:
        self._videos[video_id] = video

    def delete(self, video_id: int) -> bool:
        return self._videos.pop(video_id, None) is not None

    def close(self) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator["MemoryStore"]:
        # Nothing between a write and its mark can fail half-way: the lock only keeps the
        # threads' writes and marks from interleaving.
        with self._lock:
            yield self

    def bump_version(self, video_id: int) -> None:
        self._versions[video_id] = self._versions.get(video_id, 0) + 1

    def record_invalidation(self, video_id: int) -> int:
        self._seq += 1
        self._outbox[self._seq] = video_id
        return self._seq

    def version(self, video_id: int) -> int:
        return self._versions.get(video_id, 0)

    def pending_invalidations(self, video_id: int | None = None) -> dict[int, int]:
        with self._lock:
            return {v: seq for seq, v in sorted(self._outbox.items()) if video_id in (None, v)}

    def confirm_invalidations(self, video_id: int, up_to: int) -> None:
        with self._lock:
            for seq in [s for s, v in self._outbox.items() if v == video_id and s <= up_to]:
                del self._outbox[seq]


class Queries(NamedTuple):
    """A SQL store's statements, in its own dialect, each taking the parameters in order."""

    select: Any  # id -> (name, views, likes)
    upsert: Any  # id, name, views, likes
    delete: Any  # id
    version: Any  # id -> (version)
    bump_version: Any  # id
    record_invalidation: Any  # id -> (seq), the new outbox row's
    pending: Any  # -> (id, newest seq) per video
    pending_of: Any  # id -> (id, newest seq)
    confirm: Any  # id, seq


class SQLWrites:
    """The writes, as statements on one connection: each its own transaction, or the
    transaction it is in."""

    def __init__(self, connection: sqlite3.Connection | psycopg.Connection, queries: Queries):
        self._connection = connection
        self._queries = queries

    def put(self, video_id: int, video: Video) -> None:
        self._connection.execute(
            self._queries.upsert, (video_id, video["name"], video["views"], video["likes"])
        )

    def delete(self, video_id: int) -> bool:
        return self._connection.execute(self._queries.delete, (video_id,)).rowcount > 0

    def bump_version(self, video_id: int) -> None:
        self._connection.execute(self._queries.bump_version, (video_id,))

    def record_invalidation(self, video_id: int) -> int:
        cursor = self._connection.execute(self._queries.record_invalidation, (video_id,))
        return cursor.fetchone()[0]


class SQLStore(Generic[Connection]):
    """What the SQL stores share: one connection per process, opened lazily so that a store
    made before a fork never shares its connection with the children, and used by one thread
    at a time; each statement commits on its own, before the response is sent; any error of
    the database is a StoreError."""

    errors: tuple[type[Exception], ...]

    def __init__(self, where: str, queries: Queries) -> None:
        self.where = where
        self._queries = queries
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._pid = 0

    def get(self, video_id: int) -> Video | None:
        row = self._run(
            "read a video",
            lambda conn: conn.execute(self._queries.select, (video_id,)).fetchone(),
        )
        return None if row is None else {"name": row[0], "views": row[1], "likes": row[2]}

    def put(self, video_id: int, video: Video) -> None:
        self._run("write a video", lambda conn: SQLWrites(conn, self._queries).put(video_id, video))

    def delete(self, video_id: int) -> bool:
        return self._run(
            "delete a video", lambda conn: SQLWrites(conn, self._queries).delete(video_id)
        )

    @contextmanager
    def transaction(self) -> Iterator[SQLWrites]:
        with self._errors("write a video and its mark"), self._lock:
            connection = self._connect()
            with self._begin(connection):
                yield SQLWrites(connection, self._queries)

    def version(self, video_id: int) -> int:
        row = self._run(
            "read a version",
            lambda conn: conn.execute(self._queries.version, (video_id,)).fetchone(),
        )
        return 0 if row is None else row[0]

    def pending_invalidations(self, video_id: int | None = None) -> dict[int, int]:
        query, params = (
            (self._queries.pending, ())
            if video_id is None
            else (self._queries.pending_of, (video_id,))
        )
        rows = self._run("read the outbox", lambda conn: conn.execute(query, params).fetchall())
        return dict(rows)

    def confirm_invalidations(self, video_id: int, up_to: int) -> None:
        self._run(
            "clear the outbox",
            lambda conn: conn.execute(self._queries.confirm, (video_id, up_to)),
        )

    def close(self) -> None:
        """Close this process's connection; the next operation opens another."""
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None

    def _open_store(self, create_and_seed: Callable[[Connection], str]) -> str:
        """The deployment id, of a store created and seeded unless it was; a store that
        cannot be opened keeps no connection open."""
        try:
            return self._run("open the store", create_and_seed)
        except BaseException:
            self.close()
            raise

    def _run(self, what: str, operation: Callable[[Connection], T]) -> T:
        with self._errors(what), self._lock:
            return operation(self._connect())

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self.errors as exc:
            # The database's messages may run over several lines; a log line should not.
            raise StoreError(
                f"could not {what} in {self.where}: {' '.join(str(exc).split())}"
            ) from exc

    def _begin(self, connection: Connection) -> AbstractContextManager[Any]:
        """A transaction on `connection`, committed when the block ends."""
        raise NotImplementedError

    def _connect(self) -> Connection:
        if self._connection is not None and self._pid == os.getpid():
            if self._usable(self._connection):
                return self._connection
            self._connection.close()
        # A connection inherited through a fork is the parent's: dropped here, never closed.
        self._connection, self._pid = self._open(), os.getpid()
        return self._connection

    def _open(self) -> Connection:
        raise NotImplementedError

    def _usable(self, connection: Connection) -> bool:
        raise NotImplementedError


class SQLiteStore(SQLStore[sqlite3.Connection]):
    """One SQLite file in WAL mode."""

    errors = (sqlite3.Error,)

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        super().__init__(
            self.path.name,
            Queries(
                select="SELECT name, views, likes FROM videos WHERE id = ?",
                upsert="INSERT INTO videos (id, name, views, likes) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " name = excluded.name, views = excluded.views, likes = excluded.likes",
                delete="DELETE FROM videos WHERE id = ?",
                version="SELECT version FROM versions WHERE id = ?",
                bump_version="INSERT INTO versions (id, version) VALUES (?, 1)"
                " ON CONFLICT (id) DO UPDATE SET version = versions.version + 1",
                record_invalidation="INSERT INTO outbox (id) VALUES (?) RETURNING seq",
                pending="SELECT id, max(seq) FROM outbox GROUP BY id",
                pending_of="SELECT id, max(seq) FROM outbox WHERE id = ? GROUP BY id",
                confirm="DELETE FROM outbox WHERE id = ? AND seq <= ?",
            ),
        )
        # SQLite would make the file with the umask's mode, and its -wal and -shm files copy it.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.deployment_id = self._open_store(_create_and_seed)

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: each statement commits on its own, before the response.
        connection = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            _use_wal(connection, self.busy_timeout_ms)
            # NORMAL in WAL mode: a commit survives a crash of the process, not of the machine.
            connection.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            connection.close()
            raise
        return connection

    def _usable(self, connection: sqlite3.Connection) -> bool:
        return True

    def _begin(self, connection: sqlite3.Connection) -> AbstractContextManager[None]:
        return _immediate(connection)


def _use_wal(connection: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode, waiting for the lock it takes as long as the busy timeout.

    Leaving a new file's rollback journal takes an exclusive lock, which SQLite refuses at
    once, without calling its busy handler (waiting could deadlock), to a connection that
    read the file while another was taking it: workers opening a new file together do.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


@contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """A transaction that takes the write lock as it begins (waiting for it up to the busy
    timeout), so that it never fails half-way for want of it."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _create_and_seed(connection: sqlite3.Connection) -> str:
    """Create the schema and seed it once, even when several workers start together."""
    # The write lock first, so exactly one worker seeds a new file and a worker restarted
    # later never re-seeds a video that was deleted.
    with _immediate(connection):
        connection.execute(
            "CREATE TABLE IF NOT EXISTS videos ("
            " id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " views INTEGER NOT NULL, likes INTEGER NOT NULL)"
        )
        connection.execute("CREATE TABLE IF NOT EXISTS deployment (id TEXT NOT NULL)")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS versions (id INTEGER PRIMARY KEY, version INTEGER NOT NULL)"
        )
        # AUTOINCREMENT: a number is never used twice, so that confirming the rows up to one
        # never removes the row of a later write that reused it.
        connection.execute(
            "CREATE TABLE IF NOT EXISTS outbox ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL)"
        )
        connection.execute("CREATE INDEX IF NOT EXISTS outbox_id ON outbox (id)")
        row = connection.execute("SELECT id FROM deployment").fetchone()
        if row is None:
            row = (uuid.uuid4().hex[:12],)
            connection.execute("INSERT INTO deployment (id) VALUES (?)", row)
            connection.executemany(
                "INSERT INTO videos (id, name, views, likes) VALUES (?, ?, ?, ?)",
                [(i, v["name"], v["views"], v["likes"]) for i, v in SEED.items()],
            )
    return row[0]


class PostgresStore(SQLStore[psycopg.Connection]):
    """One schema of a PostgreSQL database, named per deployment, so that deployments
    sharing a database never see each other's videos."""

    errors = (psycopg.Error,)

    def __init__(self, url: str, schema: str, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.schema = schema
        self.busy_timeout_ms = busy_timeout_ms
        videos = sql.Identifier(schema, "videos")
        versions = sql.Identifier(schema, "versions")
        outbox = sql.Identifier(schema, "outbox")
        super().__init__(
            f"PostgreSQL schema {schema}",
            Queries(
                select=sql.SQL("SELECT name, views, likes FROM {} WHERE id = %s").format(videos),
                upsert=sql.SQL(
                    "INSERT INTO {} (id, name, views, likes) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (id) DO UPDATE SET"
                    " name = excluded.name, views = excluded.views, likes = excluded.likes"
                ).format(videos),
                delete=sql.SQL("DELETE FROM {} WHERE id = %s").format(videos),
                version=sql.SQL("SELECT version FROM {} WHERE id = %s").format(versions),
                bump_version=sql.SQL(
                    "INSERT INTO {} AS v (id, version) VALUES (%s, 1)"
                    " ON CONFLICT (id) DO UPDATE SET version = v.version + 1"
                ).format(versions),
                record_invalidation=sql.SQL("INSERT INTO {} (id) VALUES (%s) RETURNING seq").format(
                    outbox
                ),
                pending=sql.SQL("SELECT id, max(seq) FROM {} GROUP BY id").format(outbox),
                pending_of=sql.SQL("SELECT id, max(seq) FROM {} WHERE id = %s GROUP BY id").format(
                    outbox
                ),
                confirm=sql.SQL("DELETE FROM {} WHERE id = %s AND seq <= %s").format(outbox),
            ),
        )
        self.deployment_id = self._open_store(self._create_and_seed)

    def _open(self) -> psycopg.Connection:
        timeouts = PostgresTimeouts.of(self.busy_timeout_ms)
        # autocommit: each statement commits on its own, before the response.
        connection = psycopg.connect(self.url, autocommit=True, connect_timeout=timeouts.connect_s)
        try:
            connection.execute(
                "SELECT set_config('lock_timeout', %s, false),"
                " set_config('statement_timeout', %s, false)",
                (f"{timeouts.lock_ms}ms", f"{timeouts.statement_ms}ms"),
            )
        except BaseException:
            connection.close()
            raise
        return connection

    def _usable(self, connection: psycopg.Connection) -> bool:
        # A connection the server dropped (a restart, an administrator) is closed on its
        # first failure; the operation after it gets a new one.
        return not connection.closed

    def _begin(self, connection: psycopg.Connection) -> AbstractContextManager[Any]:
        return connection.transaction()

    def _create_and_seed(self, connection: psycopg.Connection) -> str:
        """Create the schema and seed it once, even when workers on several hosts start
        together."""

        def execute(statement: str, params: tuple = ()) -> psycopg.Cursor:
            query = sql.SQL(statement).format(schema=sql.Identifier(self.schema))
            return connection.execute(query, params)

        with connection.transaction():
            # The lock serialises the creators, where CREATE ... IF NOT EXISTS alone may fail
            # on a concurrent creation; a worker restarted later finds the deployment row and
            # never re-seeds a video that was deleted.
            execute("SELECT pg_advisory_xact_lock(%s)", (_advisory_key(self.schema),))
            # Created only if missing: IF NOT EXISTS would still need the right to create
            # one, which a user given a schema of its own need not have.
            if execute("SELECT FROM pg_namespace WHERE nspname = %s", (self.schema,)).rowcount == 0:
                execute("CREATE SCHEMA {schema}")
            execute(
                "CREATE TABLE IF NOT EXISTS {schema}.videos ("
                " id BIGINT PRIMARY KEY, name TEXT NOT NULL,"
                " views BIGINT NOT NULL, likes BIGINT NOT NULL)"
            )
            execute("CREATE TABLE IF NOT EXISTS {schema}.deployment (id TEXT NOT NULL)")
            execute(
                "CREATE TABLE IF NOT EXISTS {schema}.versions ("
                " id BIGINT PRIMARY KEY, version BIGINT NOT NULL)"
            )
            # An identity never gives a number twice (see the SQLite store's outbox).
            execute(
                "CREATE TABLE IF NOT EXISTS {schema}.outbox ("
                " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id BIGINT NOT NULL)"
            )
            execute("CREATE INDEX IF NOT EXISTS outbox_id ON {schema}.outbox (id)")
            row = execute("SELECT id FROM {schema}.deployment").fetchone()
            if row is None:
                row = (uuid.uuid4().hex[:12],)
                execute("INSERT INTO {schema}.deployment (id) VALUES (%s)", row)
                with connection.cursor() as cursor:
                    cursor.executemany(
                        self._queries.upsert,
                        [(i, v["name"], v["views"], v["likes"]) for i, v in SEED.items()],
                    )
        return row[0]


def _advisory_key(schema: str) -> int:
    """The key of the advisory lock that guards the creation of `schema`: 64 bits of a hash,
    since the lock's key space is the whole database's."""
    digest = hashlib.sha256(f"cachebench videos store {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def make_store(config: dict) -> Store:
    if config["VIDEOS_STORE"] == "memory":
        return MemoryStore()
    if config["VIDEOS_STORE"] == "postgres":
        return PostgresStore(
            config["VIDEOS_DATABASE_URL"], config["VIDEOS_SCHEMA"], config["VIDEOS_BUSY_TIMEOUT_MS"]
        )
    path = Path(config["VIDEOS_DATABASE"])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return SQLiteStore(path, config["VIDEOS_BUSY_TIMEOUT_MS"])


def init_app(app: Flask) -> None:
    app.extensions["videos_store"] = make_store(app.config)


def get_store() -> Store:
    return current_app.extensions["videos_store"]
