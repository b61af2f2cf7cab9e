"""Which CPUs the load generator and the server get (`--affinity`), and pinning the processes
the runner starts to them.

Locust and gunicorn fighting over two cores is noise in every figure (issue 9): by default the
load generator gets one half of the CPUs this process may use and the server (gunicorn, and
the Redis or memcached the runner starts) the other. Only processes the runner starts are
pinned, by starting them from a thread pinned for the time (a child inherits its parent
thread's CPUs, and so do a gunicorn master's workers, forked later): nothing else on the
machine is touched.
"""

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cachebench.metadata import cpu_list

AUTO = "auto"
OFF = "off"
HELP = (
    "auto: the load generator on one half of the CPUs, the server and its cache on the "
    "other, when there are 2 CPUs or more; off: neither pinned; LOADGEN:SERVER: the CPUs of "
    "each, as taskset writes them (0:1, 0-1:2-3)"
)


@dataclass(frozen=True)
class CpuSets:
    """The CPUs of the load generator and of the server; None: not pinned."""

    loadgen: frozenset[int] | None = None
    server: frozenset[int] | None = None


def available_cpus() -> frozenset[int]:
    """The CPUs this process may use."""
    return frozenset(os.sched_getaffinity(0))


def parse_cpus(text: str) -> frozenset[int]:
    """A CPU list as taskset and /sys write it ("0-2,5"); ValueError for anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not (first.isdigit() and (last.isdigit() or not dash)):
            raise ValueError(f"{text!r} is not a CPU list such as 0 or 0-1,3")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise ValueError(f"{part.strip()!r} is a range that runs backwards")
        cpus.update(range(low, high + 1))
    return frozenset(cpus)


def cpu_sets(
    affinity: str, serving: bool = True, available: Collection[int] | None = None
) -> CpuSets:
    """The CPU sets `affinity` (auto, off or LOADGEN:SERVER) means among the `available`
    CPUs (by default, this process's). `serving`: the runner starts the server here; without
    one (--host, --topology hosts), auto pins nothing, there being nothing of ours to keep
    apart, and LOADGEN:SERVER pins the load generator only. ValueError, worded for the user,
    for a bad value."""
    cpus = frozenset(available_cpus() if available is None else available)
    if affinity == OFF:
        return CpuSets()
    if affinity == AUTO:
        if len(cpus) < 2 or not serving:
            return CpuSets()
        ordered = sorted(cpus)
        half = len(ordered) // 2
        return CpuSets(frozenset(ordered[:half]), frozenset(ordered[half:]))
    loadgen_text, colon, server_text = affinity.partition(":")
    if not colon:
        raise ValueError("use auto, off or LOADGEN:SERVER, CPU lists such as 0:1 or 0-1:2-3")
    loadgen, server = parse_cpus(loadgen_text), parse_cpus(server_text)
    missing = sorted((loadgen | server) - cpus)
    if missing:
        raise ValueError(f"CPU {missing[0]} is not among those this run may use ({cpu_list(cpus)})")
    if loadgen & server:
        raise ValueError("the two sets share a CPU: give disjoint sets, or off to share them all")
    return CpuSets(loadgen, server if serving else None)


@contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """While inside, this thread runs on `cpus` (None: as it was), and so does every process
    (and thread) it starts meanwhile, for good; its own CPUs are given back on exit."""
    if cpus is None:
        yield
        return
    # pid 0 is the calling thread only (Linux's sched_setaffinity): the runner's other
    # threads (the resource sampler) keep theirs.
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def more_processes(saturated: bool, processes: int, cpus: int) -> int | None:
    """How many Locust processes to run again with after a run of `processes` whose load
    generator `saturated`, on `cpus` CPUs: one more while a CPU is spare, else None (the run
    stands, flagged)."""
    return processes + 1 if saturated and processes < cpus else None


def cpu_columns(sets: CpuSets) -> dict[str, str]:
    """A run's columns: the CPUs its load generator and its server were pinned to, as
    taskset writes them; "" for one not pinned."""
    return {
        "loadgen_cpus": cpu_list(sets.loadgen) if sets.loadgen else "",
        "server_cpus": cpu_list(sets.server) if sets.server else "",
    }
