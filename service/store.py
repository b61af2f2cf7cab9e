"""Where the videos live: SQLite shared by every gunicorn worker, or the tutorial's dict.

The tutorial keeps videos in a module-level dict, which under several workers gives each
process its own copy; SQLite in WAL mode gives all of them one store.
"""

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypedDict, TypeVar

from flask import Flask, current_app

T = TypeVar("T")


class Video(TypedDict):
    name: str
    views: int
    likes: int


SEED: dict[int, Video] = {1: {"name": "HelloWorld", "views": 147, "likes": 3}}


class StoreError(Exception):
    """The store could not complete an operation (locked too long, disk error, ...)."""


class Store(Protocol):
    deployment_id: str

    def get(self, video_id: int) -> Video | None: ...
    def put(self, video_id: int, video: Video) -> None: ...
    def delete(self, video_id: int) -> bool: ...


class MemoryStore:
    """The tutorial's dict: correct in one process only."""

    def __init__(self) -> None:
        self.deployment_id = uuid.uuid4().hex[:12]
        self._videos: dict[int, Video] = dict(SEED)

    def get(self, video_id: int) -> Video | None:
        return self._videos.get(video_id)

    def put(self, video_id: int, video: Video) -> None:
        self._videos[video_id] = video

    def delete(self, video_id: int) -> bool:
        return self._videos.pop(video_id, None) is not None


class SQLiteStore:
    """One SQLite file in WAL mode, one connection per process, every write committed at once."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        # One connection per process, opened lazily so that a store made before a fork
        # never shares its connection with the children.
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        # SQLite would make the file with the umask's mode, and its -wal and -shm files copy it.
        os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self.deployment_id = self._run("open the store", _create_and_seed)

    def get(self, video_id: int) -> Video | None:
        row = self._run(
            "read a video",
            lambda conn: conn.execute(
                "SELECT name, views, likes FROM videos WHERE id = ?", (video_id,)
            ).fetchone(),
        )
        return None if row is None else {"name": row[0], "views": row[1], "likes": row[2]}

    def put(self, video_id: int, video: Video) -> None:
        self._run(
            "write a video",
            lambda conn: conn.execute(
                "INSERT INTO videos (id, name, views, likes) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " name = excluded.name, views = excluded.views, likes = excluded.likes",
                (video_id, video["name"], video["views"], video["likes"]),
            ),
        )

    def delete(self, video_id: int) -> bool:
        cursor = self._run(
            "delete a video",
            lambda conn: conn.execute("DELETE FROM videos WHERE id = ?", (video_id,)),
        )
        return cursor.rowcount > 0

    def _run(self, what: str, operation: Callable[[sqlite3.Connection], T]) -> T:
        try:
            with self._lock:
                return operation(self._connect())
        except sqlite3.Error as exc:
            raise StoreError(f"could not {what} in {self.path.name}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
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
        self._connection, self._pid = connection, os.getpid()
        return connection


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


def _create_and_seed(connection: sqlite3.Connection) -> str:
    """Create the schema and seed it once, even when several workers start together."""
    # BEGIN IMMEDIATE takes the write lock first, so exactly one worker seeds a new file
    # and a worker restarted later never re-seeds a video that was deleted.
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS videos ("
            " id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " views INTEGER NOT NULL, likes INTEGER NOT NULL)"
        )
        connection.execute("CREATE TABLE IF NOT EXISTS deployment (id TEXT NOT NULL)")
        row = connection.execute("SELECT id FROM deployment").fetchone()
        if row is None:
            row = (uuid.uuid4().hex[:12],)
            connection.execute("INSERT INTO deployment (id) VALUES (?)", row)
            connection.executemany(
                "INSERT INTO videos (id, name, views, likes) VALUES (?, ?, ?, ?)",
                [(i, v["name"], v["views"], v["likes"]) for i, v in SEED.items()],
            )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return row[0]


def make_store(config: dict) -> Store:
    if config["VIDEOS_STORE"] == "memory":
        return MemoryStore()
    path = Path(config["VIDEOS_DATABASE"])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return SQLiteStore(path, config["VIDEOS_BUSY_TIMEOUT_MS"])


def init_app(app: Flask) -> None:
    app.extensions["videos_store"] = make_store(app.config)


def get_store() -> Store:
    return current_app.extensions["videos_store"]
