"""The hosts of `cachebench run --topology hosts`, as data, and what runs on each: the service
under gunicorn on several hosts behind HAProxy, the cache servers and PostgreSQL on hosts of
their own, a Locust master and its workers on theirs, in the run's own network namespaces
(cachebench/netns.py).

As TechEmpower's toolset does, each part is started where it belongs, waited for and checked
to answer correctly before anything is measured (gunicorn's /health, every balanced server
UP, /health through the balancer), and always torn down.
"""

import csv
import io
import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cachebench.netns import SUBNET, Host, entered, network
from cachebench.netns import missing as network_missing
from cachebench.postgres import PostgresUnavailable, private_postgres, server_binaries
from cachebench.processes import (
    gunicorn_process,
    healthy,
    launch,
    run_environment,
    stop,
    wait_until,
)
from cachebench.servers import Server, ServerUnavailable, private_instance
from reports.redact import redact

SINGLE, HOSTS = "single", "hosts"
TOPOLOGIES = (SINGLE, HOSTS)
DEFAULT_SERVICE_HOSTS = 2
DEFAULT_LOADGEN_HOSTS = 2
# Hosts of one role at most: more would not fit this kind of machine, nor a /24.
MAX_HOSTS = 16
STORE, CACHE, BALANCER, MASTER = "store", "cache", "balancer", "locust-master"
BALANCER_PORT = 8000
MASTER_PORT = 5557  # Locust's own; each run's master has a host of its own
# How long the master waits for its workers to connect before it starts without them (and
# the run is then incomplete, or measured nothing).
WORKERS_WAIT_S = 30
# In each run's directory: the hosts, their addresses and how many requests the balancer
# sent each service host.
TOPOLOGY_FILE = "topology.json"
# HAProxy's configuration; {placeholders} filled in by haproxy_config. The server timeout
# outlasts any request of the service (its own worker timeout ends it first). A sync gunicorn
# worker is held by a client that sends part of a request and goes quiet: HAProxy waits for
# the whole request, headers and body (http-buffer-request), up to `timeout http-request`,
# before it hands it to a worker.
HAPROXY_CONFIG = """\
global
    maxconn 4096
    stats socket {stats_socket} mode 600 level operator

defaults
    mode http
    option http-buffer-request
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s

frontend videos
    bind {address}:{port}
    default_backend service

backend service
    balance roundrobin
    option httpchk GET /health
    http-check expect status 200
    default-server check inter 500ms fall 2 rise 2
{servers}
"""


@dataclass(frozen=True)
class Layout:
    """Which hosts a run has, by role."""

    service_hosts: int = DEFAULT_SERVICE_HOSTS
    loadgen_hosts: int = DEFAULT_LOADGEN_HOSTS

    @property
    def service(self) -> list[str]:
        return [f"service-{i}" for i in range(1, self.service_hosts + 1)]

    @property
    def loadgen(self) -> list[str]:
        return [f"locust-{i}" for i in range(1, self.loadgen_hosts + 1)]

    def roles(self) -> list[str]:
        return [STORE, CACHE, *self.service, BALANCER, MASTER, *self.loadgen]


def missing() -> str | None:
    """What this machine lacks for the hosts topology, in one line, or None."""
    why = network_missing()
    if why:
        return why
    if shutil.which("haproxy") is None:
        return "needs HAProxy on PATH (Debian/Ubuntu: apt-get install haproxy)"
    try:
        server_binaries()
    except PostgresUnavailable as exc:
        return f"needs a PostgreSQL server to start: {exc}"
    return None


def haproxy_config(address: str, servers: Sequence[tuple[str, str]], stats_socket: Path) -> str:
    """HAProxy's configuration: round robin over `servers` ((name, host:port) each), each
    checked on /health, behind `address`:BALANCER_PORT."""
    lines = "\n".join(f"    server {name} {target}" for name, target in servers)
    return HAPROXY_CONFIG.format(
        stats_socket=stats_socket, address=address, port=BALANCER_PORT, servers=lines
    )


def haproxy_stats(stats_socket: Path) -> list[dict[str, str]]:
    """HAProxy's `show stat`: a row per proxy and server."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().removeprefix("# ")
    return list(csv.DictReader(io.StringIO(text)))


def balanced_servers(stats_socket: Path) -> dict[str, dict[str, str]]:
    """Each balanced server's status and what it was sent (sessions, 2xx and 5xx answers)."""
    return {
        row["svname"]: {
            "status": row["status"],
            "sessions": row["stot"],
            "responses_2xx": row["hrsp_2xx"],
            "responses_5xx": row["hrsp_5xx"],
        }
        for row in haproxy_stats(stats_socket)
        if row["pxname"] == "service" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def all_up(stats_socket: Path) -> bool:
    try:
        servers = balanced_servers(stats_socket)
    except OSError:  # not listening yet
        return False
    return bool(servers) and all(s["status"] == "UP" for s in servers.values())


class Hosts:
    """A built layout: its network, its PostgreSQL and cache servers; each cell of the
    matrix serves the service and runs Locust on it (serving, load_generators)."""

    def __init__(self, layout: Layout, workdir: Path) -> None:
        self.layout = layout
        self.workdir = workdir
        self.hosts: dict[str, Host] = {}
        self.store_url = ""
        self.addresses: dict[str, str] = {}  # each cache server's service setting -> address
        self.skipped: dict[str, str] = {}  # cache server -> why it could not be started

    def client(self) -> AbstractContextManager[None]:
        """Where the runner's own connections to the hosts go from (the final reads, the
        samples of the servers): the master's host."""
        return entered(self.hosts[MASTER])

    def store_settings(self, run_index: int) -> dict[str, object]:
        """The service's store in the matrix's run `run_index`: PostgreSQL on its host, a
        schema of the run's own (and no SQLite file)."""
        return {
            "VIDEOS_STORE": "postgres",
            "VIDEOS_DATABASE_URL": self.store_url,
            "VIDEOS_SCHEMA": f"run_{run_index}",
            "VIDEOS_DATABASE": None,
        }

    @contextmanager
    def serving(self, settings: Mapping[str, object], run_dir: Path) -> Iterator[str]:
        """The service with `settings` under gunicorn on every service host, each with a
        FileSystemCache directory of its own under CACHE_DIR, behind HAProxy: the balancer's
        URL, once every host answers through it. Writes TOPOLOGY_FILE at the end."""
        with ExitStack() as stack:
            targets = []
            for name in self.layout.service:
                host = self.hosts[name]
                own = {**settings, "CACHE_DIR": Path(str(settings["CACHE_DIR"])) / name}
                with entered(host):
                    url, _ = stack.enter_context(
                        gunicorn_process(own, run_dir / f"gunicorn-{name}.log", host.address)
                    )
                targets.append((name, url.removeprefix("http://")))
            stats_socket, url = stack.enter_context(self._balancer(targets, run_dir))
            yield url
            record = {
                "hosts": {name: host.address for name, host in self.hosts.items()},
                "store": redact(self.store_url),
                "cache_servers": {k: redact(v) for k, v in self.addresses.items()},
                "balancer": url,
                "balanced": balanced_servers(stats_socket),
            }
            (run_dir / TOPOLOGY_FILE).write_text(json.dumps(record, indent=2))

    @contextmanager
    def _balancer(
        self, targets: Sequence[tuple[str, str]], run_dir: Path
    ) -> Iterator[tuple[Path, str]]:
        """HAProxy on the balancer host in front of `targets`: its stats socket and URL, once
        every target is UP and /health answers through it."""
        host = self.hosts[BALANCER]
        with tempfile.TemporaryDirectory(prefix="haproxy-", dir=self.workdir) as directory:
            config = Path(directory) / "haproxy.cfg"
            stats_socket = Path(directory) / "stats.sock"
            config.write_text(haproxy_config(host.address, targets, stats_socket))
            config.chmod(0o600)
            log = run_dir / "haproxy.log"
            url = f"http://{host.address}:{BALANCER_PORT}"
            with entered(host):
                # -db: in the foreground, so that stop() reaches it.
                process = launch(["haproxy", "-db", "-f", str(config)], log, run_environment({}))
                try:
                    wait_until(
                        lambda: all_up(stats_socket) and healthy(f"{url}/health"),
                        process,
                        "haproxy",
                        log,
                    )
                except BaseException:
                    stop(process)
                    raise
            try:
                yield stats_socket, url
            finally:
                stop(process)

    @contextmanager
    def load_generators(
        self, master: list[str], worker: list[str], home: str, log: IO[bytes], run_dir: Path
    ) -> Iterator[subprocess.Popen]:
        """Locust's `master` command on the master's host, writing to `log`, and the
        `worker` command on every load-generating host, each with a history directory of its
        own (the histories reach the master over Locust's messages): the master's process.
        All of them run in `home`, their HOME too; stopped on exit."""
        address = self.hosts[MASTER].address
        env = run_environment({"HOME": home})
        master = [
            *master,
            "--master", "--master-bind-host", address, "--master-bind-port", str(MASTER_PORT),
            "--expect-workers", str(self.layout.loadgen_hosts),
            "--expect-workers-max-wait", str(WORKERS_WAIT_S),
        ]  # fmt: skip
        with ExitStack() as stack:
            with entered(self.hosts[MASTER]):
                process = subprocess.Popen(
                    master, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=home, env=env, start_new_session=True,
                )  # fmt: skip
            stack.callback(stop, process)
            for name in self.layout.loadgen:
                history_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
                stack.callback(shutil.rmtree, history_dir, ignore_errors=True)
                command = [
                    *worker, "--worker", "--master-host", address,
                    "--master-port", str(MASTER_PORT), "--history-dir", str(history_dir),
                ]  # fmt: skip
                with (
                    entered(self.hosts[name]),
                    (run_dir / f"locust-{name}.log").open("wb") as worker_log,
                ):
                    started = subprocess.Popen(
                        command, stdin=subprocess.DEVNULL, stdout=worker_log,
                        stderr=subprocess.STDOUT, cwd=home, env=env, start_new_session=True,
                    )  # fmt: skip
                stack.callback(stop, started)
            yield process


@contextmanager
def built(layout: Layout, servers: Sequence[Server]) -> Iterator[Hosts]:
    """The hosts of `layout` in a network of their own, with PostgreSQL on its host and each
    of `servers` on the cache host (one that cannot be started is in Hosts.skipped); all
    removed on exit, whatever happens, the processes in them first."""
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cachebench-hosts-")))
        hosts = Hosts(layout, workdir)
        made = stack.enter_context(network())
        hosts.hosts = {name: made.add(name) for name in layout.roles()}
        with entered(hosts.hosts[STORE]):
            # Trusting every connection from the run's hosts: nothing else can reach it.
            store = stack.enter_context(
                private_postgres(host=hosts.hosts[STORE].address, clients=str(SUBNET))
            )
        hosts.store_url = store.url
        for server in servers:
            cache_host = hosts.hosts[CACHE]
            try:
                with entered(cache_host):
                    instance = stack.enter_context(
                        private_instance(server, workdir, host=cache_host.address)
                    )
            except ServerUnavailable as exc:
                hosts.skipped[server.name] = str(exc)
                continue
            hosts.addresses[server.setting] = instance.address
        yield hosts
