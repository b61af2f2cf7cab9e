"""The servers the cache backends need, as data, and a private instance of each on a free
loopback port, or the user's own server named in the environment.

A backend names its server in service/backends.py; the matrix, the metadata and the tests
find here how to start it, ping it, record its version and point the service at it.
"""

import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cachebench.processes import (
    LOOPBACK,
    ServerError,
    free_port,
    launch,
    run_environment,
    stop,
    wait_until,
)
from service.backends import BACKENDS


class ServerUnavailable(ServerError):
    """No server to use: neither its environment variable nor its executable."""


@dataclass(frozen=True)
class Server:
    name: str  # as the backends name it
    executable: str
    # A private instance's arguments, split as a shell would, then {host} (the address it
    # listens on), {port}, {workdir} (its temporary directory) and {user} (this process's)
    # filled in.
    args: str
    ping: tuple[bytes, bytes]  # a command, and how the answer starts once it is ready
    version_flag: str  # the executable's option that prints its version
    address: str  # what the service setting takes, {host} and {port} filled in
    setting: str  # the service setting the address fills
    env_var: str  # names a server of the user's own, used instead of a private one
    install: str  # how to get one


SERVERS = {
    server.name: server
    for server in (
        Server(
            name="redis",
            executable="redis-server",
            # Nothing saved: its directory is a temporary one, removed when it stops. Protected
            # mode would refuse a host of the run's own; only the run's hosts reach {host}.
            args="--bind {host} --port {port} --save '' --appendonly no --dir {workdir} "
            "--daemonize no --protected-mode no",
            ping=(b"PING\r\n", b"+PONG"),
            version_flag="--version",
            address="redis://{host}:{port}/0",
            setting="CACHE_REDIS_URL",
            env_var="REDIS_URL",
            install="install redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: "
            "brew install redis) or set REDIS_URL to a Redis server you may write to",
        ),
        Server(
            name="memcached",
            executable="memcached",
            # Without UDP; it keeps nothing on disk. It refuses to run as root unless told
            # which user to run as (this one, then); as any other user, -u is ignored.
            args="-l {host} -p {port} -U 0 -u {user}",
            ping=(b"version\r\n", b"VERSION "),
            version_flag="-V",
            address="{host}:{port}",
            setting="CACHE_MEMCACHED_SERVERS",
            env_var="MEMCACHED_SERVERS",
            install="install memcached (Debian/Ubuntu: apt-get install memcached; macOS: brew "
            "install memcached) or set MEMCACHED_SERVERS to the host:port of a memcached you "
            "may flush",
        ),
    )
}


def needed(caches: Iterable[str]) -> list[Server]:
    """The servers the backends among `caches` need, each once, in their order."""
    names = [BACKENDS[c].server for c in caches if c in BACKENDS and BACKENDS[c].server]
    return [SERVERS[name] for name in dict.fromkeys(names)]


def answers(server: Server, port: int, host: str = LOOPBACK) -> bool:
    command, answer = server.ping
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(command)
            return sock.recv(64).startswith(answer)
    except OSError:
        return False


class PrivateServer:
    """A server of our own on a port of `host` (loopback unless a host of the run's own:
    cachebench/topology.py), keeping nothing on disk but in `workdir`, given `extra_args`
    after its own (a capacity: cachebench/capacity.py): its current process, which a fault
    may kill and restart (empty) on the same port."""

    def __init__(
        self,
        server: Server,
        port: int,
        workdir: Path,
        extra_args: Sequence[str] = (),
        host: str = LOOPBACK,
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.workdir = workdir
        self.extra_args = tuple(extra_args)
        self.address = server.address.format(host=host, port=port)
        self.process = self._start()

    def restart(self) -> None:
        """Stop the process if it still runs, then start a new one, empty, on the same port."""
        stop(self.process)
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        server = self.server
        executable = shutil.which(server.executable)
        if executable is None:
            raise ServerUnavailable(f"{server.executable} not found: {server.install}")
        log = self.workdir / f"{server.name}.log"
        user = pwd.getpwuid(os.geteuid()).pw_name
        args = [
            a.format(host=self.host, port=self.port, workdir=self.workdir, user=user)
            for a in shlex.split(server.args)
        ]
        process = launch([executable, *args, *self.extra_args], log, run_environment({}))
        try:
            wait_until(
                lambda: answers(server, self.port, self.host), process, server.executable, log
            )
        except BaseException:
            stop(process)
            raise
        return process


@contextmanager
def private_instance(
    server: Server,
    directory: Path | None = None,
    extra_args: Sequence[str] = (),
    host: str = LOOPBACK,
) -> Iterator[PrivateServer]:
    """A PrivateServer on a free port of `host`, in a temporary directory; stopped on exit,
    whichever process it then has."""
    with tempfile.TemporaryDirectory(prefix=f"cachebench-{server.name}-", dir=directory) as workdir:
        instance = PrivateServer(server, free_port(), Path(workdir), extra_args, host)
        try:
            yield instance
        finally:
            stop(instance.process)


@contextmanager
def private_server(
    server: Server, directory: Path | None = None, extra_args: Sequence[str] = ()
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A server of our own on a free loopback port, keeping nothing on disk, given
    `extra_args` after its own (a capacity: cachebench/capacity.py).

    Yields its address and process (so a test can stop it early); stopped on exit.
    """
    with private_instance(server, directory, extra_args) as instance:
        yield instance.address, instance.process


@contextmanager
def server_address(server: Server) -> Iterator[str]:
    """The server in its environment variable when set, else a private one for the duration."""
    if os.environ.get(server.env_var):
        yield os.environ[server.env_var]
        return
    with private_server(server) as (address, _process):
        yield address
