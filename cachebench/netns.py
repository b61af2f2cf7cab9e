"""Hosts of a run's own on this machine: Linux network namespaces joined by a bridge, with
addresses from 198.18.0.0/15 (the block RFC 2544 reserves for benchmark tests), and nothing
else: no route out, no link in the caller's namespace, no forwarding. Removed whole, with
every process in them, whatever ends the run.

A run's namespaces are `cb-<run id>-<host>`, and its bridge and links live inside them (the
bridge in a `cb-<run id>-switch` namespace of its own), so that two runs never share a name
and removing a run's namespaces removes exactly its links.
"""

import ctypes
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

# Each run's hosts get one /24 of the benchmark block: their own bridge keeps it apart from
# any other run's, which may use the same addresses.
SUBNET = ipaddress.ip_network("198.18.0.0/24")
BENCHMARK_BLOCK = ipaddress.ip_network("198.18.0.0/15")
NAMESPACES = Path("/run/netns")  # where `ip netns` keeps the namespaces it names
PREFIX = "cb-"
SWITCH = "switch"
BRIDGE = "bridge"
HOST_LINK = "eth0"  # a host's end of its link, inside its own namespace
CLONE_NEWNET = 0x40000000  # <sched.h>
# How long processes in a namespace being removed get to go after SIGKILL.
KILL_WAIT_S = 5.0
_libc = ctypes.CDLL(None, use_errno=True)


class NetworkError(RuntimeError):
    """The network could not be made or removed; the message says what failed."""


def missing() -> str | None:
    """What this machine lacks to make hosts, in one line, or None."""
    if os.geteuid() != 0:
        return "needs root, to make network namespaces (run it as root, e.g. with sudo)"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` on PATH (Debian/Ubuntu: apt-get install iproute2)"
    return None


def ip(*args: str) -> str:
    """Run `ip ARGS`; its output, or NetworkError with its message."""
    result = subprocess.run(
        ["ip", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Host:
    name: str
    namespace: str
    address: str


class Network:
    """The hosts of one run, each a namespace with one link to the run's bridge."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.hosts: dict[str, Host] = {}
        self.namespaces: list[str] = []  # made, in order: removed in reverse
        self._addresses = SUBNET.hosts()
        self.switch = self._namespace(SWITCH)
        ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.switch, "link", "set", "dev", BRIDGE, "up")

    def _namespace(self, name: str) -> str:
        namespace = f"{PREFIX}{self.run_id}-{name}"
        ip("netns", "add", namespace)
        self.namespaces.append(namespace)
        return namespace

    def add(self, name: str) -> Host:
        """A new host `name`: its namespace, loopback up, one address on the bridge; no
        default route, so that it reaches nothing but the run's other hosts."""
        namespace = self._namespace(name)
        address = str(next(self._addresses))
        # Both ends made where they belong: no link ever appears in the caller's namespace.
        ip("link", "add", HOST_LINK, "netns", namespace, "type", "veth",
           "peer", "name", name, "netns", self.switch)  # fmt: skip
        ip("-n", self.switch, "link", "set", "dev", name, "master", BRIDGE, "up")
        ip("-n", namespace, "addr", "add", f"{address}/{SUBNET.prefixlen}", "dev", HOST_LINK)
        ip("-n", namespace, "link", "set", "dev", HOST_LINK, "up")
        ip("-n", namespace, "link", "set", "dev", "lo", "up")
        host = Host(name, namespace, address)
        self.hosts[name] = host
        return host

    def remove(self) -> list[str]:
        """Remove every namespace of the run, the processes in it first; the failures, each a
        line (one failure does not keep the others)."""
        failures = []
        for namespace in reversed(self.namespaces):
            try:
                remove_namespace(namespace)
            except NetworkError as exc:
                failures.append(str(exc))
        return failures


def processes_in(namespace: str) -> list[int]:
    """The processes in `namespace` (ip netns pids)."""
    return [int(pid) for pid in ip("netns", "pids", namespace).split()]


def remove_namespace(namespace: str) -> None:
    """Kill every process in `namespace`, then delete it (and with it its links)."""
    deadline = time.monotonic() + KILL_WAIT_S
    while pids := processes_in(namespace):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise NetworkError(f"processes {pids} in {namespace} did not die")
        time.sleep(0.05)
    ip("netns", "delete", namespace)


def run_namespaces(run_id: str) -> list[str]:
    """The namespaces of run `run_id` that exist."""
    return sorted(p.name for p in NAMESPACES.glob(f"{PREFIX}{run_id}-*"))


@contextmanager
def network(run_id: str | None = None) -> Iterator[Network]:
    """A run's network, with no host yet (Network.add); removed on exit, whatever happens."""
    run_id = run_id or secrets.token_hex(3)
    made: list[Network] = []
    try:
        made.append(Network(run_id))
        yield made[0]
    finally:
        # A failure half-way through making the switch leaves namespaces no Network knows.
        failures = made[0].remove() if made else []
        for namespace in run_namespaces(run_id):
            try:
                remove_namespace(namespace)
            except NetworkError as exc:
                failures.append(str(exc))
        if failures:
            raise NetworkError("; ".join(failures))


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


@contextmanager
def entered(host: Host) -> Iterator[None]:
    """Move this thread into `host`'s namespace for the block: the sockets it opens and the
    processes and threads it starts there stay in it (they keep the namespace they were
    made in). The caller's own namespace has no route to the hosts: a connection to one made
    from it would go out of the machine."""
    with (
        open("/proc/thread-self/ns/net", "rb") as home,
        open(NAMESPACES / host.namespace, "rb") as target,
    ):
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())
