"""A PostgreSQL server for the videos store: POSTGRES_URL, or a private one made with initdb
in a temporary directory, served on a free loopback port and removed at the end."""

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg import sql

from cachebench.processes import LOOPBACK, ServerError, free_port, stop, wait_until

POSTGRES_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql; macOS: brew "
    "install postgresql) or set POSTGRES_URL to a database you may create schemas in"
)
# PostgreSQL refuses to run as root: as root, the private server runs as this user.
SERVER_USER = "postgres"


class PostgresUnavailable(ServerError):
    """No PostgreSQL to use: neither POSTGRES_URL nor a server that can be started here."""


def server_binaries() -> Path:
    """The directory of initdb and postgres: on PATH, else the newest of Debian's
    /usr/lib/postgresql/<version>/bin, which Debian keeps off PATH."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    versions = [p for p in found if p.parent.name.isdigit()]
    if not versions:
        raise PostgresUnavailable(f"initdb not found: {POSTGRES_HINT}")
    return max(versions, key=lambda p: int(p.parent.name))


def server_user() -> pwd.struct_passwd | None:
    """Whom to run the server as: None for this process's own user, unless that is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"PostgreSQL will not run as root, and there is no {SERVER_USER!r} user to run it "
            f"as: {POSTGRES_HINT}"
        ) from None


def accepts_connections(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


class PrivatePostgres:
    """A PostgreSQL server of our own, its data in `directory`, listening on `host` (loopback
    unless a host of the run's own: cachebench/topology.py) and trusting every connection from
    loopback, and from `clients` (a network, as 198.18.0.0/24) if given; stop() and start()
    again keep its data and its port."""

    def __init__(self, directory: Path, host: str = LOOPBACK, clients: str | None = None) -> None:
        self.binaries = server_binaries()
        self.user = server_user()
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self.host = host
        self.port = free_port()
        self.url = f"postgresql://postgres@{host}:{self.port}/postgres"
        self._process: subprocess.Popen | None = None
        if self.user is not None:
            os.chown(directory, self.user.pw_uid, self.user.pw_gid)
        self._run_as_server_user(
            [
                str(self.binaries / "initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ]
        )
        if clients is not None:
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {clients} trust\n")

    def start(self) -> None:
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [
                    str(self.binaries / "postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-c",
                    f"listen_addresses={self.host}",
                    # TCP only: no socket file in a directory shared with others.
                    "-c",
                    "unix_socket_directories=",
                    # A server for tests: a crash of the machine may lose it whole.
                    "-c",
                    "fsync=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._as_server_user(),
            )
        wait_until(lambda: accepts_connections(self.url), self._process, "postgres", self.log)

    def stop(self) -> None:
        if self._process is None:
            return
        # SIGINT is the fast shutdown; SIGTERM's smart one waits for every client to leave.
        with suppress(ProcessLookupError):
            self._process.send_signal(signal.SIGINT)
        with suppress(subprocess.TimeoutExpired):
            self._process.wait(10)
        stop(self._process)
        self._process = None

    def _as_server_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _run_as_server_user(self, command: list[str]) -> None:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            **self._as_server_user(),
        )
        if result.returncode != 0:
            raise ServerError(f"{command[0]} failed ({result.returncode}):\n{result.stderr}")


@contextmanager
def private_postgres(
    directory: Path | None = None, host: str = LOOPBACK, clients: str | None = None
) -> Iterator[PrivatePostgres]:
    """A private PostgreSQL server (PrivatePostgres), started; stopped and its data removed on
    exit."""
    with tempfile.TemporaryDirectory(prefix="cachebench-postgres-", dir=directory) as workdir:
        server = PrivatePostgres(Path(workdir), host, clients)
        try:
            server.start()
            yield server
        finally:
            server.stop()


@contextmanager
def postgres_url() -> Iterator[str]:
    """POSTGRES_URL when it is set, else the URL of a private server for the duration."""
    if os.environ.get("POSTGRES_URL"):
        yield os.environ["POSTGRES_URL"]
        return
    with private_postgres() as server:
        yield server.url


def drop_schema(url: str, schema: str) -> None:
    """Remove a deployment's schema and everything in it, if it is there."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
