"""What a result was obtained with: code, packages, interpreter, machine and options."""

import os
import platform
import shutil
import socket
import subprocess
import sys
from collections.abc import Collection
from importlib import metadata as package_metadata
from pathlib import Path
from statistics import mean

from cachebench.postgres import PostgresUnavailable, server_binaries
from cachebench.servers import SERVERS
from service.backends import BACKENDS

PACKAGES = (
    "cachebench", "flask", "flask-restful", "flask-caching", "cachelib", "werkzeug",
    "gunicorn", "locust", "pandas", "numpy", "scipy", "matplotlib", "psycopg",
    *(backend.client for backend in BACKENDS.values() if backend.client),
)  # fmt: skip
PROJECT = Path(__file__).resolve().parents[1]
SYS_CPU = Path("/sys/devices/system/cpu")
CPUINFO = Path("/proc/cpuinfo")


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
    # The balancer and the database of --topology hosts.
    haproxy = shutil.which("haproxy")
    found["haproxy"] = _first_line(_run([haproxy, "-v"])) if haproxy else "not found"
    try:
        found["postgres"] = _run([str(server_binaries() / "postgres"), "--version"])
    except PostgresUnavailable:
        found["postgres"] = "not found"
    return found


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def cpu_model() -> str:
    try:
        for line in CPUINFO.read_text().splitlines():
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


def run_conditions() -> dict:
    """What the machine was doing as one run started, recorded with the run (as pyperf does
    with each run, not once): its load, its CPUs' clock, and the CPUs the run may use."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_mhz": cpu_mhz(cpus) if cpus else None,
        "affinity": cpu_list(cpus) if cpus else None,
    }


def cpu_mhz(
    cpus: Collection[int], sys_cpu: Path = SYS_CPU, cpuinfo: Path = CPUINFO
) -> float | None:
    """The mean current clock of `cpus` in MHz: cpufreq's, else /proc/cpuinfo's (a VM often
    has no cpufreq); None when neither says."""
    clocks = {}
    for cpu in cpus:
        try:
            khz = (sys_cpu / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq").read_text()
            clocks[cpu] = int(khz) / 1000
        except (OSError, ValueError):
            continue
    if not clocks:
        clocks = {cpu: mhz for cpu, mhz in _cpuinfo_mhz(cpuinfo).items() if cpu in cpus}
    return round(mean(clocks.values()), 1) if clocks else None


def _cpuinfo_mhz(cpuinfo: Path) -> dict[int, float]:
    """Each processor's "cpu MHz" in /proc/cpuinfo."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        return {}
    clocks, processor = {}, None
    for line in lines:
        name, _, value = (part.strip() for part in line.partition(":"))
        try:
            if name == "processor":
                processor = int(value)
            elif name == "cpu MHz" and processor is not None:
                clocks[processor] = float(value)
        except ValueError:
            continue
    return clocks


def cpu_list(cpus: Collection[int]) -> str:
    """CPUs as taskset and /sys write them: {0, 1, 2, 5} is "0-2,5"."""
    ranges: list[list[int]] = []
    for cpu in sorted(cpus):
        if ranges and cpu == ranges[-1][1] + 1:
            ranges[-1][1] = cpu
        else:
            ranges.append([cpu, cpu])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


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
