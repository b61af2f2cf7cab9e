"""Start the real servers the harness needs (a private Redis, the service under gunicorn) and
stop them, with everything they started, whatever happens in between."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
REDIS_HINT = (
    "install redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install "
    "redis) or set REDIS_URL to a Redis server you may write to"
)


class ServerError(RuntimeError):
    """A server could not be started; the message says why and what to do."""


class RedisUnavailable(ServerError):
    """No Redis to use: neither REDIS_URL nor a redis-server executable."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
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


def _start(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def private_redis(directory: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of our own on a free loopback port, keeping nothing on disk.

    Yields its URL and process (so a test can stop it early); stopped on exit.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise RedisUnavailable(f"redis-server not found: {REDIS_HINT}")
    with tempfile.TemporaryDirectory(prefix="cachebench-redis-", dir=directory) as workdir:
        log = Path(workdir) / "redis.log"
        port = free_port()
        process = _start(
            [
                executable,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
                "--daemonize",
                "no",
            ],
            log,
        )
        try:
            wait_until(lambda: _redis_ping(port), process, "redis-server", log)
            yield f"redis://127.0.0.1:{port}/0", process
        finally:
            stop(process)


@contextmanager
def redis_url() -> Iterator[str]:
    """REDIS_URL when it is set, else the URL of a private redis-server for the duration."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with private_redis() as (url, _process):
        yield url


def run_environment(settings: Mapping[str, object]) -> dict[str, str]:
    """The allow-listed part of this process's environment (INHERITED), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith(INHERITED_PREFIX)}
    env.update({k: str(v) for k, v in settings.items() if v is not None})
    return env


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def gunicorn_service(settings: Mapping[str, object], log: Path) -> Iterator[str]:
    """The service under gunicorn with `settings` on a free loopback port; yields its URL.

    Waits until /health answers; gunicorn's output goes to `log`.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = run_environment({**settings, "SERVICE_BIND": f"127.0.0.1:{port}"})
    process = _start(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "service:create_app()"],
        log,
        env,
    )
    try:
        wait_until(lambda: _healthy(f"{base_url}/health"), process, "gunicorn", log)
        yield base_url
    finally:
        stop(process)
