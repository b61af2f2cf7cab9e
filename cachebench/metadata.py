"""What a result was obtained with: code, packages, interpreter, machine and options."""

import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata as package_metadata
from pathlib import Path

from cachebench.servers import SERVERS
from service.backends import BACKENDS

PACKAGES = (
    "cachebench", "flask", "flask-restful", "flask-caching", "cachelib", "werkzeug",
    "gunicorn", "locust", "pandas", "numpy", "scipy", "matplotlib",
    *(backend.client for backend in BACKENDS.values() if backend.client),
)  # fmt: skip
PROJECT = Path(__file__).resolve().parents[1]


def _run(command: list[str], cwd: Path = PROJECT) -> str:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def commit() -> str:
    """The checked-out commit, with `-dirty` when the tree has uncommitted changes."""
    head = _run(["git", "rev-parse", "--short=12", "HEAD"])
    if not head:
        return "unknown (not a git checkout)"
    return head + (
        "-dirty" if _run(["git", "status", "--porcelain", "--untracked-files=no"]) else ""
    )


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            found[name] = "not installed"
    for server in SERVERS.values():
        executable = shutil.which(server.executable)
        found[server.executable] = (
            _run([executable, server.version_flag]) if executable else "not found"
        )
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def collect(run_id: str, options: dict) -> dict:
    return {
        "run_id": run_id,
        "commit": commit(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "versions": versions(),
        "machine": machine(),
        "options": options,
    }
