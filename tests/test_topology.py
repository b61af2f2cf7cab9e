"""--topology hosts: hosts of the run's own in network namespaces, each part where it belongs,
and nothing of the run left behind (namespaces, links, processes), however it ends."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from proc import interrupted, spawned, wait_for

from cachebench.netns import (
    SUBNET,
    entered,
    ip,
    leftovers,
    network,
    processes_in,
    run_namespaces,
)
from cachebench.plan import Options, OptionsError, validate
from cachebench.processes import ServerError
from cachebench.topology import Layout, built, haproxy_config
from tests.test_matrix import CACHEBENCH, cachebench, processes_of


def namespaces() -> set[str]:
    return set(ip("netns", "list").split())


def links() -> set[str]:
    """The links of the caller's namespace, by name."""
    return {line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link").splitlines()}


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead and waiting for its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_haproxy_balances_round_robin_over_every_service_host_checked_on_health(tmp_path):
    servers = [("service-1", "198.18.0.3:8000"), ("service-2", "198.18.0.4:8000")]
    config = haproxy_config("198.18.0.5", servers, tmp_path / "stats.sock")
    assert "bind 198.18.0.5:8000" in config
    assert "balance roundrobin" in config
    assert "option httpchk GET /health" in config
    assert "server service-1 198.18.0.3:8000" in config
    assert "server service-2 198.18.0.4:8000" in config
    assert f"stats socket {tmp_path / 'stats.sock'} mode 600" in config


def test_a_layout_names_a_host_for_every_role():
    assert Layout(3, 2).roles() == [
        "store", "cache", "service-1", "service-2", "service-3", "balancer",
        "locust-master", "locust-1", "locust-2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"host": "http://127.0.0.1:8000"}, "not with --host"),
        ({"faults": ("worker-kill",)}, "not with --fault"),
        ({"capacities": ("10",)}, "not with --capacities"),
        ({"loadgen_hosts": 0}, "--loadgen-hosts must be from 1 to 16"),
        ({"service_hosts": 17}, "--service-hosts must be from 1 to 16"),
        ({"users": 1}, "--users 1 with 2 load-generating hosts"),
        ({"topology": "single", "service_hosts": 3}, "--service-hosts needs --topology hosts"),
        ({"topology": "single", "loadgen_hosts": 2}, "--loadgen-hosts needs --topology hosts"),
    ],
)
def test_a_topology_option_that_makes_no_sense_is_refused(tmp_path, options, said):
    with pytest.raises(OptionsError, match=said):
        validate(Options(**{"topology": "hosts", "out": tmp_path, **options}))


@pytest.mark.parametrize("lacking", ["ip", "haproxy"])
def test_without_iproute2_or_haproxy_the_hosts_topology_is_one_line(tmp_path, lacking):
    path = tmp_path / "bin"
    path.mkdir()
    for tool in {"ip", "haproxy"} - {lacking}:
        if shutil.which(tool):
            (path / tool).symlink_to(shutil.which(tool))
    out = tmp_path / "run"
    env = {**os.environ, "PATH": str(path)}
    result = cachebench("run", "--topology", "hosts", "--out", out, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    if os.geteuid() != 0:
        assert "--topology hosts needs root" in result.stderr
    elif lacking == "ip" or not shutil.which("ip"):
        assert "--topology hosts needs iproute2's `ip` on PATH" in result.stderr
    else:
        assert "--topology hosts needs HAProxy on PATH" in result.stderr
    assert not out.exists()


@pytest.mark.hosts
def test_hosts_reach_each_other_only_and_leave_nothing(hosts_machine):
    before = links()
    with network() as made:
        a, b = made.add("a"), made.add("b")
        assert {a.address, b.address} <= set(map(str, SUBNET.hosts()))
        assert links() == before, "a link of the run in the caller's namespace"
        with entered(b):
            listening = socket.create_server((b.address, 0))
            port = listening.getsockname()[1]
        with listening, entered(a):
            socket.create_connection((b.address, port), timeout=5).close()
            # No route out: anything but the run's own hosts is unreachable.
            with pytest.raises(OSError, match="unreachable") as unreachable:
                socket.create_connection(("198.19.0.1", 80), timeout=5)
            assert unreachable.value.errno == errno.ENETUNREACH
            left = subprocess.Popen(["sleep", "600"])  # in a's namespace, never stopped
        assert processes_in(a.namespace) == [left.pid]
    assert left.wait(timeout=10) == -signal.SIGKILL
    assert run_namespaces(made.run_id) == []
    assert links() == before


KILLED_RUN = """
import os, signal, subprocess
from cachebench.netns import entered, network
with network() as made:
    with entered(made.add("a")):
        subprocess.Popen(["sleep", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(made.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.hosts
def test_the_next_run_removes_what_a_killed_run_left(hosts_machine):
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN], capture_output=True, text=True, check=False
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_id = killed.stdout.strip()
    left = run_namespaces(run_id)
    assert len(left) == 2  # its switch and its host, with a process in it
    assert set(left) <= set(leftovers())
    with network() as made:
        assert run_namespaces(run_id) == []
        assert made.run_id not in " ".join(leftovers())  # a live run's are not left over
    assert links_of(run_id) == []


def links_of(run_id):
    """The links left in the caller's namespace that name run `run_id`."""
    return [line for line in ip("-o", "link").splitlines() if run_id in line]


@pytest.mark.hosts
def test_two_runs_on_the_same_addresses_never_reach_each_other(hosts_machine):
    with network() as one, network() as two:
        server, other, client = one.add("a"), two.add("a"), two.add("b")
        assert server.address == other.address
        assert server.namespace != other.namespace
        with entered(server):
            listening = socket.create_server((server.address, 0))
        # The address is the other run's own `a`, where nothing listens.
        with listening, entered(client), pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.address, listening.getsockname()[1]), 5)


@pytest.mark.hosts
def test_a_failure_on_the_hosts_leaves_no_namespace_and_no_process(hosts_machine, tmp_path):
    made, started = [], []

    def serve_what_fails() -> None:
        with built(Layout(1, 1), []) as hosts:
            made.extend(host.namespace for host in hosts.hosts.values())
            started.extend(pid for namespace in made for pid in processes_in(namespace))
            # A schema name the service refuses: gunicorn exits as it starts.
            settings = {**hosts.store_settings(1), "VIDEOS_SCHEMA": "Not a schema"}
            settings["CACHE_DIR"] = tmp_path / "cache"
            with hosts.serving(settings, tmp_path):
                pass

    with pytest.raises(ServerError, match="gunicorn exited"):
        serve_what_fails()
    assert started, "PostgreSQL ran on its host"
    assert not set(made) & namespaces()
    assert [pid for pid in started if alive(pid)] == []


def run_hosts(out: Path, *args: str) -> list[str]:
    return [
        str(CACHEBENCH), "run", "--topology", "hosts", "--scenarios", "mixed",
        "--repeats", "1", "--work-ms", "10", "--out", str(out), *args,
    ]  # fmt: skip


@pytest.mark.hosts
def test_a_hosts_run_measures_through_the_balancer_and_leaves_nothing(hosts_machine, tmp_path):
    before_namespaces, before_links = namespaces(), links()
    out = tmp_path / "run"
    result = subprocess.run(
        run_hosts(out, "--caches", "filesystem", "--duration", "1", "--warmup", "0.5"),
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cache"]) == ["filesystem"]
    assert summary.loc[0, "errors"] == 0
    assert summary.loc[0, "lost_writes"] == 0
    run_dir = out / "histories" / "filesystem-mixed-r1"
    topology = json.loads((run_dir / "topology.json").read_text())
    assert topology["store"].startswith("postgresql://***@198.18.0.")
    balanced = topology["balanced"]
    assert sorted(balanced) == ["service-1", "service-2"]
    assert all(int(s["responses_2xx"]) > 0 for s in balanced.values()), balanced
    record = json.loads((run_dir / "locust-run.json").read_text())
    assert record["incomplete"] is None
    deliveries = sorted(h["delivery"] for h in record["histories"].values())
    assert deliveries == ["own", "sent", "sent"], "the master's, and each worker host's"
    options = json.loads((out / "metadata.json").read_text())["options"]
    assert (options["topology"], options["service_hosts"], options["loadgen_hosts"]) == (
        "hosts", 2, 2,
    )  # fmt: skip
    assert "On hosts of the run's own (`--topology hosts`" in (out / "report.md").read_text()
    assert namespaces() == before_namespaces
    assert links() == before_links
    assert processes_of(out) == []


@pytest.mark.hosts
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_hosts_run_leaves_nothing(hosts_machine, tmp_path, signum):
    before_namespaces, before_links = namespaces(), links()
    out = tmp_path / "run"
    errors = tmp_path / "stderr"
    with spawned(run_hosts(out, "--caches", "simple", "--duration", "60"), errors) as process:
        # Mid-run: Locust's workers are up on their hosts.
        wait_for(
            lambda: list(out.glob("histories/*/locust-locust-2.log")), process, errors, timeout=120
        )
        started = processes_of(out)
        interrupted(process, signum, errors)
    assert "interrupted: kept the 0 finished runs" in errors.read_text()
    assert namespaces() == before_namespaces
    assert links() == before_links
    assert processes_of(out) == []
    assert [pid for pid in started if alive(pid)] == []


# What a silent client sends before it goes quiet: part of its headers, or its headers and
# part of a body shorter than its Content-Length.
PARTIAL = {
    "headers": b"GET /videos/1 HTTP/1.1\r\nHost: service\r\n",
    "body": b"PUT /videos/1 HTTP/1.1\r\nHost: service\r\nContent-Type: application/json\r\n"
    b'Content-Length: 100\r\n\r\n{"name": ',
}


@pytest.mark.hosts
@pytest.mark.parametrize("partial", sorted(PARTIAL))
def test_the_balancer_keeps_silent_clients_away_from_the_sync_workers(
    hosts_machine, tmp_path, partial
):
    with built(Layout(1, 1), []) as hosts:
        settings = {
            **hosts.store_settings(1), "CACHE_BACKEND": "none", "CACHE_DIR": tmp_path / "cache",
            "SERVICE_WORKERS": 2, "VIDEOS_WORK_MS": 0,
        }  # fmt: skip
        with hosts.serving(settings, tmp_path) as url, hosts.client():
            address, port = url.removeprefix("http://").split(":")
            # As many silent clients as the host has sync workers.
            silent = [socket.create_connection((address, int(port)), timeout=5) for _ in "12"]
            for connection in silent:
                connection.sendall(PARTIAL[partial])
            time.sleep(1)  # for the partial requests to reach the workers, were they passed on
            # Unprotected, this waits for gunicorn to kill a held worker (its timeout, 20 s).
            with urllib.request.urlopen(f"{url}/videos/1", timeout=60) as response:
                assert response.status == 200
            for connection in silent:  # still held open by the balancer, not answered
                connection.setblocking(False)
                with pytest.raises(BlockingIOError):
                    connection.recv(1)
                connection.close()
    assert "WORKER TIMEOUT" not in (tmp_path / "gunicorn-service-1.log").read_text()
