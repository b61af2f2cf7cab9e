"""--affinity: the CPU sets it means, and the processes a run starts pinned to them (real
gunicorn, Locust and Redis, read from /proc)."""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cachebench import matrix, plan
from cachebench.affinity import CpuSets, cpu_sets, more_processes, parse_cpus, pinned
from cachebench.processes import children

CACHEBENCH = Path(sys.executable).with_name("cachebench")
TWO = frozenset({0}), frozenset({1})


@pytest.mark.parametrize(
    ("affinity", "available", "serving", "expected"),
    [
        ("auto", {0, 1}, True, CpuSets(*TWO)),
        ("auto", {0, 1, 2, 3}, True, CpuSets(frozenset({0, 1}), frozenset({2, 3}))),
        ("auto", {0, 1, 2}, True, CpuSets(frozenset({0}), frozenset({1, 2}))),
        ("auto", {3}, True, CpuSets()),  # one CPU: nothing to keep apart
        ("auto", {0, 1}, False, CpuSets()),  # --host: no server of ours
        ("off", {0, 1}, True, CpuSets()),
        ("0:1", {0, 1}, True, CpuSets(*TWO)),
        ("1:0", {0, 1}, False, CpuSets(frozenset({1}), None)),
        ("0-1,3:2", {0, 1, 2, 3}, True, CpuSets(frozenset({0, 1, 3}), frozenset({2}))),
    ],
)
def test_affinity_means_a_set_of_cpus_for_each_side(affinity, available, serving, expected):
    assert cpu_sets(affinity, serving, available) == expected


@pytest.mark.parametrize(
    ("affinity", "says"),
    [
        ("0", "use auto, off or LOADGEN:SERVER"),
        ("0:x", "is not a CPU list"),
        ("3-1:0", "runs backwards"),
        ("0:7", "CPU 7 is not among those this run may use (0-1)"),
        ("0-1:1", "share a CPU"),
        (":1", "is not a CPU list"),
    ],
)
def test_a_bad_affinity_says_what_to_give(affinity, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        cpu_sets(affinity, True, {0, 1})


def test_a_cpu_list_is_read_as_taskset_writes_it():
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}


@pytest.mark.parametrize("argv", [["run", "--affinity", "0:0"], ["sweep", "--affinity", "x"]])
def test_a_bad_affinity_is_one_line(argv, tmp_path):
    result = subprocess.run(
        [str(CACHEBENCH), *argv, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    err = result.stderr
    assert err.count("\n") == 1
    assert err.startswith(f"cachebench {argv[0]}: --affinity")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("saturated", "processes", "cpus", "expected"),
    [
        (True, 1, 1, None),  # saturated, but no CPU to spare: the run stands, flagged
        (True, 1, 2, 2),
        (True, 2, 4, 3),
        (True, 4, 4, None),
        (False, 1, 4, None),
    ],
)
def test_one_more_locust_process_while_saturated_and_a_cpu_is_spare(
    saturated, processes, cpus, expected
):
    assert more_processes(saturated, processes, cpus) == expected


def allowed_cpus(pid: int) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split(":")[1].strip() for line in status.splitlines()
                if line.startswith("Cpus_allowed_list"))  # fmt: skip


needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or not {0, 1} <= os.sched_getaffinity(0),
    reason="needs CPUs 0 and 1 and Linux's /proc",
)


@needs_two_cpus
def test_a_process_started_while_pinned_keeps_the_cpus_and_the_caller_gets_its_own_back():
    before = os.sched_getaffinity(0)
    with pinned(frozenset({1})):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert allowed_cpus(child.pid) == "1"
        assert os.sched_getaffinity(0) == before
    finally:
        child.kill()
        child.wait()


def processes_of(out: Path, runner: int) -> dict[int, str]:
    """The processes of the run into `out`: pid -> command line. Those whose environment
    names the run (see cachebench.cli), and the runner's children (Redis writes its title
    over its environment)."""
    marker = f"CACHEBENCH_RUN={out.resolve()}".encode()
    found, spawned = {}, set(children(runner))
    for pid in [int(p.name) for p in Path("/proc").glob("[0-9]*")]:
        with contextlib.suppress(OSError):  # gone, or not ours
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if marker in environ or pid in spawned:
                found[pid] = cmdline
    return found


@needs_two_cpus
@pytest.mark.redis
def test_an_open_loop_run_pins_locust_and_the_server_apart(tmp_path, own_servers):
    """`cachebench run --arrival-rate` at one rate, Locust on CPU 0 and gunicorn, its workers
    and the private Redis on CPU 1, as /proc says while they run; recorded with the run."""
    out = tmp_path / "run"
    env = own_servers("redis")
    process = subprocess.Popen(
        [str(CACHEBENCH), "run", "--quick", "--caches", "redis", "--scenarios", "read_heavy",
         "--duration", "3", "--arrival-rate", "150", "--max-in-flight", "32",
         "--affinity", "0:1", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: dict[str, set[str]] = {"locust": set(), "gunicorn": set(), "redis-server": set()}
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            for pid, command in processes_of(out, process.pid).items():
                for name, cpus in seen.items():
                    if name in command:
                        with contextlib.suppress(OSError, StopIteration):
                            cpus.add(allowed_cpus(pid))
            time.sleep(0.2)
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, errors
    assert seen == {"locust": {"0"}, "gunicorn": {"1"}, "redis-server": {"1"}}
    summary = pd.read_csv(out / "summary.csv", dtype={"loadgen_cpus": str, "server_cpus": str})
    assert (list(summary["loadgen_cpus"]), list(summary["server_cpus"])) == (["0"], ["1"])
    assert summary["offered_rps"].iloc[0] > 0
    assert summary["get_corrected_p99_ms"].iloc[0] >= summary["get_p99_ms"].iloc[0]
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["options"]["arrival_rate"] == 150
    assert metadata["options"]["cpu_sets"] == {"loadgen_cpus": "0", "server_cpus": "1"}


def test_a_saturated_run_is_made_again_with_one_more_process_while_a_cpu_is_spare(
    tmp_path, monkeypatch
):
    """run_fitted's decision wired to the runs it makes (run_one stands in for the real run
    here: what it takes and gives is what the decision reads)."""
    made = []

    def run_one(run, options, addresses, progress, hosts=None):
        made.append(options.processes)
        (options.out / "histories" / run.name).mkdir(parents=True)
        busy = options.processes < 3
        return {"processes": options.processes, "loadgen_cpu": 0.97 if busy else 0.6,
                "loadgen_cpu_warning": False}  # fmt: skip

    monkeypatch.setattr(matrix, "run_one", run_one)
    run = plan.Run("redis", "read_heavy", 1, 1, 1)
    options = plan.Options(affinity="0-3:4", out=tmp_path)
    monkeypatch.setattr(plan, "cpu_sets", lambda *_, **__: CpuSets(frozenset(range(4))))
    row = matrix.run_fitted(run, options, {}, None)
    assert made == [1, 2, 3]
    assert row["processes"] == 3
    histories = sorted(p.name for p in (tmp_path / "histories").iterdir())
    assert histories == ["redis-read_heavy-r1", "redis-read_heavy-r1.p1", "redis-read_heavy-r1.p2"]
