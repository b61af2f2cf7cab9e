"""Start the real processes the harness needs (the service under gunicorn, the cache servers of
cachebench/servers.py) and stop them, with everything they started, whatever happens in
between."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import service

GUNICORN_CONF = Path(service.__file__).with_name("gunicorn.conf.py")
# Set in the environment of everything `cachebench run` starts, so that a process left behind
# could be found by it (the tests look for exactly that).
RUN_MARKER = "CACHEBENCH_RUN"
# What the processes of a run inherit from the caller's environment, as pyperf passes its
# workers an allow-list (pyperf/_utils.py, create_environ): enough to find programs and
# libraries and to speak the locale. Anything else (a service setting, LOCUST_*,
# GUNICORN_CMD_ARGS, PYTHONWARNINGS, a proxy) could change what is measured.
INHERITED = ("PATH", "HOME", "TMPDIR", "LANG", "PYTHONPATH", "PYTHON_CPU_COUNT", "PYTHON_GIL",
             RUN_MARKER)  # fmt: skip
INHERITED_PREFIX = "LC_"
LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A server could not be started; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop `process` and its process group: politely first, then for good."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    # Children may outlive their parent (a gunicorn worker whose master was killed).
    _signal_group(process, signal.SIGKILL)
    process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path, timeout: float = 30
) -> None:
    """Poll `ready` until it holds; fail early, with the log's end, if `process` exits."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise ServerError(f"{what} exited with code {process.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise ServerError(f"{what} was not ready after {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.05)


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def launch(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def run_environment(settings: Mapping[str, object]) -> dict[str, str]:
    """The allow-listed part of this process's environment (INHERITED), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith(INHERITED_PREFIX)}
    env.update({k: str(v) for k, v in settings.items() if v is not None})
    return env


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def gunicorn_process(
    settings: Mapping[str, object], log: Path, host: str = LOOPBACK
) -> Iterator[tuple[str, subprocess.Popen]]:
    """The service under gunicorn with `settings` on a free port of `host` (loopback unless a
    host of the run's own: cachebench/topology.py): its URL and its master process (whose
    children are the workers).

    Waits until /health answers; gunicorn's output goes to `log`.
    """
    port = free_port()
    base_url = f"http://{host}:{port}"
    env = run_environment({**settings, "SERVICE_BIND": f"{host}:{port}"})
    process = launch(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "service:create_app()"],
        log,
        env,
    )
    try:
        wait_until(lambda: healthy(f"{base_url}/health"), process, "gunicorn", log)
        yield base_url, process
    finally:
        stop(process)


@contextmanager
def gunicorn_service(settings: Mapping[str, object], log: Path) -> Iterator[str]:
    """The service under gunicorn (gunicorn_process); yields its URL."""
    with gunicorn_process(settings, log) as (url, _process):
        yield url


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from Linux's /proc (a gunicorn master's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command in parentheses may hold anything: the fields follow its last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)
