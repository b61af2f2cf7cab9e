"""Faults the matrix runner injects into a run, only into the processes and files it started
for that run: a stalled or restarted cache server, a killed gunicorn worker, the lost
FileSystemCache directory, the SQLite write lock held by another connection.

A fault is given as `KIND` or `KIND@START:LENGTH`, seconds into the measured window (by
default it starts a third into it and lasts a third of it). Each is a value of the matrix's
`fault` dimension beside `none`, the calm run; a cell it does not apply to is not run.
"""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cachebench.processes import ServerError, children
from cachebench.servers import PrivateServer, needed
from reports.history_format import SEEDED_FILE
from service.backends import BACKENDS, filesystem_config

NONE = "none"  # the fault dimension's calm run
FAULT_FILE = "fault.json"  # in the run's directory: when the fault was in effect, and what it hit
# How often the injector looks for SEEDED_FILE; the fault is timed from the time written in
# it, not from when it is seen.
POLL_S = 0.02


class FaultError(ServerError):
    """A fault that could not be injected or undone; the message says which and why."""


@dataclass(frozen=True)
class Target:
    """What the runner started for one run, that a fault may go into."""

    gunicorn: subprocess.Popen  # the master
    server: PrivateServer | None  # the run's own cache server, if its fault needs one
    cache_dir: Path  # the run's CACHE_DIR
    database: Path  # the run's SQLite file


# Each fault, held for its length: entered at its start, left at its end (or when the run
# stops early), undoing what can be undone. It yields a dict of what it hit, for FAULT_FILE.
Injection = Callable[[Target], AbstractContextManager[dict]]


@contextmanager
def stall_server(target: Target) -> Iterator[dict]:
    pid = target.server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield {"pid": pid}
    finally:
        os.kill(pid, signal.SIGCONT)


@contextmanager
def restart_server(target: Target) -> Iterator[dict]:
    server = target.server
    details = {"killed_pid": server.process.pid}
    server.process.kill()
    server.process.wait()
    try:
        yield details
    finally:
        server.restart()
        details["restarted_pid"] = server.process.pid


@contextmanager
def kill_worker(target: Target) -> Iterator[dict]:
    workers = children(target.gunicorn.pid)
    if not workers:
        raise FaultError("gunicorn had no worker to kill")
    os.kill(workers[0], signal.SIGKILL)
    details = {"killed_pid": workers[0], "workers_before": workers}
    yield details
    details["workers_after"] = children(target.gunicorn.pid)


@contextmanager
def remove_cache_dir(target: Target) -> Iterator[dict]:
    # Moved aside at once, then removed: the workers, which find their files by path, can
    # then add none to it while it is being removed.
    lost = target.cache_dir.with_name(f"{target.cache_dir.name}.lost")
    try:
        target.cache_dir.rename(lost)
    except FileNotFoundError:
        raise FaultError(f"there was no cache directory to remove: {target.cache_dir}") from None
    shutil.rmtree(lost)
    yield {"removed": str(target.cache_dir)}


@contextmanager
def lock_store(target: Target) -> Iterator[dict]:
    # isolation_level=None: the transaction is the one begun here, not one sqlite3 opens.
    connection = sqlite3.connect(target.database, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")  # the write lock; readers of WAL go on
        try:
            yield {"database": str(target.database)}
        finally:
            connection.execute("ROLLBACK")
    finally:
        connection.close()


@dataclass(frozen=True)
class Kind:
    name: str
    description: str  # what it does, as the README and --help say it
    goes_into: str  # "server", "worker", "cache-dir" or "store": decides where it applies
    inject: Injection


KINDS = {
    kind.name: kind
    for kind in (
        Kind("cache-stall", "the cache server stops answering (SIGSTOP, then SIGCONT): it "
             "keeps its data", "server", stall_server),
        Kind("cache-restart", "the cache server is killed (SIGKILL) and started again, empty, "
             "on the same port at the end", "server", restart_server),
        Kind("worker-kill", "one gunicorn worker is killed (SIGKILL) at the start; gunicorn "
             "starts another", "worker", kill_worker),
        Kind("cache-dir-loss", "the FileSystemCache directory (the run's CACHE_DIR) is removed "
             "at the start", "cache-dir", remove_cache_dir),
        Kind("store-lock", "another connection holds the SQLite write lock (BEGIN IMMEDIATE, "
             "then ROLLBACK)", "store", lock_store),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Fault:
    kind: Kind
    start_s: float | None = None  # into the measured window; None: a third of it
    length_s: float | None = None

    @property
    def label(self) -> str:
        """As the matrix names it: `KIND`, or `KIND@START:LENGTH`."""
        if self.start_s is None:
            return self.kind.name
        return f"{self.kind.name}@{self.start_s:g}:{self.length_s:g}"

    def window(self, duration_s: float) -> tuple[float, float]:
        """(start, length) in seconds into a measured window of `duration_s`."""
        if self.start_s is None:
            return duration_s / 3, duration_s / 3
        return self.start_s, self.length_s


def parse_fault(text: str, duration_s: float) -> Fault:
    """The fault `text` names (`KIND` or `KIND@START:LENGTH`), checked against a measured
    window of `duration_s`; raises ValueError saying what to change."""
    name, at, timing = text.partition("@")
    if name not in KINDS:
        raise ValueError(f"unknown fault {name!r}: use {', '.join(KINDS)}")
    if not at:
        return Fault(KINDS[name])
    start, colon, length = timing.partition(":")
    try:
        start_s, length_s = float(start), float(length)
    except ValueError:
        start_s = length_s = float("nan")
    if not (colon and start_s >= 0 and length_s > 0):
        raise ValueError(
            f"{text!r}: START:LENGTH must be seconds into the measured window, START >= 0 "
            "and LENGTH > 0, like cache-stall@1:2"
        )
    if start_s + length_s > duration_s:
        raise ValueError(
            f"{text!r} ends {start_s + length_s:g} s into the measured window, which lasts "
            f"{duration_s:g} s (--duration): the fault must fit in it"
        )
    return Fault(KINDS[name], start_s, length_s)


def not_applicable(kind: Kind, cache: str, store: str) -> str | None:
    """Why `kind` does not apply to a run of backend `cache` on `store`, or None if it does."""
    backend = BACKENDS[cache]
    if kind.goes_into == "server":
        if backend.server is None:
            return f"{kind.name} does not apply: `{cache}` has no cache server"
        (server,) = needed([cache])
        if os.environ.get(server.env_var):
            return (
                f"{kind.name} does not apply: the {server.name} server is {server.env_var}'s, "
                "and faults go only into what the runner started"
            )
    if kind.goes_into == "cache-dir" and backend.config is not filesystem_config:
        return f"{kind.name} does not apply: `{cache}` keeps no cache directory"
    if kind.goes_into == "store" and store != "sqlite":
        return f"{kind.name} does not apply: the store is {store}, not SQLite"
    return None


@contextmanager
def injected(
    fault: Fault, target: Target, run_dir: Path, warmup_s: float, duration_s: float
) -> Iterator[None]:
    """Inject `fault` into `target` from a thread of its own while the body (the Locust run
    writing into `run_dir`) runs, timed from the end of seeding; on exit, whatever happens,
    the fault is undone before this returns. Writes FAULT_FILE; raises FaultError if the
    fault could not be injected or undone."""
    stop = threading.Event()
    outcome: dict = {}
    # Not a daemon: the interpreter waits for it, so a stalled server is always continued.
    thread = threading.Thread(
        target=_inject,
        args=(fault, target, run_dir, warmup_s, duration_s, stop, outcome),
        name=f"fault {fault.label}",
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if "error" in outcome:
        raise FaultError(f"{fault.label}: {outcome['error']}")


def _inject(
    fault: Fault,
    target: Target,
    run_dir: Path,
    warmup_s: float,
    duration_s: float,
    stop: threading.Event,
    outcome: dict,
) -> None:
    try:
        seeded_ns = _seeded_ns(run_dir, stop)
        if seeded_ns is None:
            outcome["error"] = "the run stopped before seeding finished"
            return
        start_s, length_s = fault.window(duration_s)
        planned_start = seeded_ns + round((warmup_s + start_s) * 1e9)
        planned_end = planned_start + round(length_s * 1e9)
        if stop.wait(max(planned_start - time.time_ns(), 0) / 1e9):
            outcome["error"] = "the run stopped before the fault's start"
            return
        record = {"fault": fault.label, "kind": fault.kind.name,
                  "planned_start_ns": planned_start, "planned_end_ns": planned_end}  # fmt: skip
        # The window of the figures: from when the fault was surely in effect to when it was
        # surely undone.
        with fault.kind.inject(target) as details:
            record["start_ns"] = time.time_ns()
            stop.wait(max(planned_end - time.time_ns(), 0) / 1e9)
        record["end_ns"] = time.time_ns()
        record.update(details)
        (run_dir / FAULT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    except Exception as exc:  # told to the main thread, which fails the run with it
        outcome["error"] = f"{type(exc).__name__}: {exc}"


def _seeded_ns(run_dir: Path, stop: threading.Event) -> int | None:
    """When seeding finished, from SEEDED_FILE once the plugin has written it; None if the
    run stops first."""
    path = run_dir / SEEDED_FILE
    while not stop.is_set():
        try:
            return int(json.loads(path.read_text())["t_seeded_ns"])
        except FileNotFoundError:
            stop.wait(POLL_S)
    return None


def read_fault(run_dir: Path) -> dict:
    """What FAULT_FILE says of the fault of the run in `run_dir`."""
    return json.loads((run_dir / FAULT_FILE).read_text())
