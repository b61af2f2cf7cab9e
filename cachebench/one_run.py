"""One run of the matrix: a fresh store and cache, the service under gunicorn, Locust as a
separate process for the warm-up and the measured time, the final reads, and the figures
that make its row of summary.csv."""

import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from contextlib import ExitStack, nullcontext, suppress
from pathlib import Path
from typing import Protocol

import pandas as pd

from cachebench.affinity import cpu_columns, pinned
from cachebench.capacity import (
    DEFAULT_REDIS_POLICY,
    EVICTION,
    UNBOUNDED,
    capacity_entries,
    sized_server,
)
from cachebench.faults import Target, injected, read_fault
from cachebench.metadata import run_conditions
from cachebench.plan import (
    FRESH,
    LOCUST,
    SERVICE_OPTIONS,
    STORE,
    STRATEGY_SETTINGS,
    Options,
    Run,
    run_cpu_sets,
    run_fault,
    run_keys,
    run_work_ms,
)
from cachebench.processes import ServerError, gunicorn_process, run_environment, stop
from cachebench.resources import probes, sampling
from cachebench.scenarios import scenarios
from cachebench.servers import SERVERS, private_instance
from cachebench.strategies import extra_store_reads, run_settings
from cachebench.topology import Hosts
from locust_cachebench.cpu import CPU_SATURATED
from reports.bounds import RunShape, run_bounds
from reports.figures import figures_and_visibility, unsent_arrivals
from reports.history import read_final_reads, read_history, run_window, write_final_reads
from reports.history_format import RUN_FILE
from reports.resources import drift, leaks, per_second_throughput, read_resources
from reports.stampede import hot_key_figures
from reports.theory import che_hit_rate, popularity, top_c_hit_rate
from reports.timeline import fault_figures, timeline
from reports.visibility import VISIBILITY_FILE
from service import create_app
from service.backends import BACKENDS

EXTERNAL = "external"  # the cache label of runs against --host: its cache is unknown
# Seconds of the run Locust may spend seeding before the warm-up starts (100 keys: 0.2 s),
# and per id seeded (800 PUTs a second measured here, with two gunicorn workers).
SEEDING_S = 0.5
SEEDING_S_PER_KEY = 1 / 800
# A run with fewer operations in its window than this is too small to quote (with no cache
# and the default work time, a run makes about 35 a second).
MIN_OPS = 100
# An open loop whose operations started more than this late (99th percentile), while almost
# no arrival waited for the in-flight cap, was paced by Locust, not by the server: under
# 1 % of arrivals waiting cannot account for the 99th percentile.
MAX_SEND_LAG_MS = 10.0
CAPPED_SHARE = 0.01
# Each run's capacity settings, beside its history: what its cache was given.
CAPACITY_FILE = "capacity.json"
# In a faulted run's directory: its figures per interval (reports.timeline), for the report.
TIMELINE_FILE = "timeline.csv"


class Progress(Protocol):
    """Told how the matrix advances, to show it."""

    def running(self, run: Run, elapsed_s: float, rps: float | None) -> None: ...
    def finished(self, run: Run, row: dict | None, error: str | None) -> None: ...


def service_settings(
    options: Options, run: Run, workdir: Path, addresses: Mapping[str, str]
) -> dict:
    return {
        "CACHE_BACKEND": run.cache,
        "CACHE_DIR": workdir / "cache",
        **addresses,
        "VIDEOS_STORE": STORE,
        "VIDEOS_DATABASE": workdir / "videos.sqlite",
        **{setting: getattr(options, field_name) for field_name, _, setting in SERVICE_OPTIONS},
        "VIDEOS_WORK_MS": run_work_ms(run, options),
        **run_settings(dict(run.variant)),
    }


def run_capacity(run: Run, options: Options) -> dict:
    """What `run`'s cache holds and drops: {} without a capacity, else `capacity_entries` and
    `eviction_policy`."""
    variant = dict(run.variant)
    if "capacity" not in variant:
        return {}
    policy = EVICTION[run.cache] or variant.get("policy", DEFAULT_REDIS_POLICY)
    entries = capacity_entries(variant["capacity"], run_keys(run, options))
    return {"capacity_entries": entries, "eviction_policy": policy}


def run_one(
    run: Run,
    options: Options,
    addresses: Mapping[str, str],
    progress: Progress,
    hosts: Hosts | None = None,
) -> dict:
    """One cell: a fresh service (with a capacity, a private cache server sized for it),
    Locust for warm-up + duration with the run's fault injected, final reads, the figures.
    With `hosts` (--topology hosts), the service on its hosts, on the PostgreSQL store."""
    run_dir = options.out / "histories" / run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    conditions = run_conditions()  # before this run adds its own load
    workdir = Path(tempfile.mkdtemp(prefix="cachebench-run-"))
    capacity = run_capacity(run, options)
    fault = run_fault(run, options)
    cpus = run_cpu_sets(options)
    try:
        with ExitStack() as stack:
            # What starts from here (a cache server, gunicorn and its workers, a fault's
            # restart) inherits the server's CPUs; Locust gets its own (run_locust).
            stack.enter_context(pinned(cpus.server))
            backend_server = BACKENDS[run.cache].server if run.cache in BACKENDS else None
            server = None  # a cache server of the run's own
            if capacity and backend_server:
                # A connection per worker thread, and one to spare.
                connections = options.workers * options.threads + 1
                entries, policy = capacity["capacity_entries"], capacity["eviction_policy"]
                server, given = stack.enter_context(
                    sized_server(backend_server, entries, policy, connections)
                )
                capacity.update(given)
            elif fault is not None and fault.kind.goes_into == "server":
                # A server of the run's own, never the matrix's: the fault may kill it.
                server = stack.enter_context(private_instance(SERVERS[backend_server]))
            if server is not None:
                addresses = {**addresses, server.server.setting: server.address}
            (run_dir / CAPACITY_FILE).write_text(json.dumps(capacity))
            settings = service_settings(options, run, workdir, addresses)
            settings["CACHE_THRESHOLD"] = capacity.get("capacity_entries", UNBOUNDED)
            if options.host:
                url = options.host
            elif hosts is not None:
                settings.update(hosts.store_settings(run.index))
                url = stack.enter_context(hosts.serving(settings, run_dir))
                with hosts.client():  # the sampling thread is made there, and stays
                    stack.enter_context(sampling(run_dir, probes(settings)))
            else:
                log = run_dir / "gunicorn.log"
                url, gunicorn = stack.enter_context(gunicorn_process(settings, log))
                stack.enter_context(sampling(run_dir, probes(settings)))
            if fault is not None:
                target = Target(gunicorn, server, workdir / "cache", workdir / "videos.sqlite")
                stack.enter_context(
                    injected(fault, target, run_dir, options.warmup_s, options.duration_s)
                )
            with pinned(cpus.loadgen):
                run_locust(run, options, url, run_dir, progress, hosts)
        history = read_history(run_dir)
        if not options.host:
            with hosts.client() if hosts else nullcontext():
                final_reads(settings, history, run_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return summarize(run, options, run_dir, conditions, history)


def locust_command(run: Run, options: Options, url: str, run_dir: Path) -> list[str]:
    seeding = seeding_s(run, options)
    return [
        str(LOCUST),
        "-f", str(scenarios()[run.scenario].path),
        "--headless", "--only-summary",
        "--users", str(options.users), "--spawn-rate", str(options.users),
        # The plugin stops the load --warmup + --duration after seeding; Locust's own clock,
        # which counts whole seconds from before seeding, is only the bound of a stuck run.
        "--measure-time", f"{options.warmup_s + options.duration_s:g}",
        "--run-time", f"{math.ceil(options.warmup_s + options.duration_s + 2 * seeding)}s",
        "--host", url,
        "--history-dir", str(run_dir.resolve()),
        "--keys", str(run_keys(run, options)),
        "--seed", run_seed(run, options),
        "--key-dist", options.key_dist,
        "--zipf-s", str(options.zipf_s),
        "--csv", str(run_dir.resolve() / "locust"),
        *(["--random-seed", options.random_seed] if options.random_seed != FRESH else []),
        *(["--processes", str(options.processes)] if options.processes > 1 else []),
        *open_loop_options(options),
    ]  # fmt: skip


def open_loop_options(options: Options) -> list[str]:
    """Locust's options of an open loop at options.arrival_rate; none for a closed loop."""
    if options.arrival_rate is None:
        return []
    return [
        "--arrival-rate", str(options.arrival_rate),
        "--arrival", options.arrival,
        "--max-in-flight", str(options.max_in_flight),
    ]  # fmt: skip


def run_seed(run: Run, options: Options) -> str:
    """`run`'s --seed: options.seed, but `all` for `warm` in a configuration that caches
    nothing, whose GETs would warm nothing (and cost the work time each)."""
    backend = BACKENDS.get(run.cache)
    return "all" if options.seed == "warm" and backend and not backend.caches else options.seed


def seeding_s(run: Run, options: Options) -> float:
    """About how long `run`'s seeding takes: its PUTs, and with --seed warm its GETs, each a
    miss that holds a server thread for the work time."""
    seed = run_seed(run, options)
    seeded = 0 if seed == "none" else run_keys(run, options)
    threads = options.workers * options.threads
    warm = run_work_ms(run, options) / 1000 / threads if seed == "warm" else 0
    return SEEDING_S + seeded * (SEEDING_S_PER_KEY + warm)


def run_locust(
    run: Run,
    options: Options,
    url: str,
    run_dir: Path,
    progress: Progress,
    hosts: Hosts | None = None,
) -> None:
    """Run Locust to its end, isolated from the caller: only the options given count. With
    `hosts`, as a master and its workers on hosts of their own.

    Locust reads settings from LOCUST_* variables (left out of run_environment), from
    ~/.locust.conf, and from ./locust.conf and ./pyproject.toml's [tool.locust]: it runs in an
    empty directory of its own that is also its HOME.
    """
    with (
        tempfile.TemporaryDirectory(prefix="cachebench-locust-") as home,
        (run_dir / "locust.log").open("wb") as log,
        ExitStack() as stack,
    ):
        command = locust_command(run, options, url, run_dir)
        if hosts is None:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=home, env=run_environment({"HOME": home}), start_new_session=True,
            )  # fmt: skip
        else:
            worker = [str(LOCUST), "-f", str(scenarios()[run.scenario].path)]
            process = stack.enter_context(
                hosts.load_generators(command, worker, home, log, run_dir)
            )
        started = time.monotonic()
        deadline = started + options.warmup_s + options.duration_s + seeding_s(run, options) + 60
        try:
            while process.poll() is None:
                progress.running(run, time.monotonic() - started, current_rps(run_dir))
                if time.monotonic() > deadline:
                    raise ServerError(f"locust did not stop; see {run_dir / 'locust.log'}")
                # Back as soon as Locust exits: the next run need not wait for the tick.
                with suppress(subprocess.TimeoutExpired):
                    process.wait(0.5)
        finally:
            stop(process)
    # Completed runs: 1 is Locust's own "there were failures", 3 a failed threshold of the
    # plugin (the matrix sets none). 2 is a run that measured nothing.
    if process.returncode not in (0, 1, 3):
        tail = (run_dir / "locust.log").read_text(errors="replace").splitlines()[-5:]
        raise ServerError(f"locust exited with {process.returncode}: " + " | ".join(tail))


def current_rps(run_dir: Path) -> float | None:
    """Locust's latest aggregated requests/s, from the stats history it writes every second."""
    path = run_dir / "locust_stats_history.csv"
    try:
        lines = path.read_text().splitlines()
        header, last = lines[0].split(","), lines[-1].split(",")
        return float(last[header.index('"Requests/s"')]) if len(lines) > 1 else None
    except (OSError, ValueError, IndexError):
        return None


def final_reads(settings: dict, history: pd.DataFrame, run_dir: Path) -> None:
    """Read every key once through the API without a cache, so lost writes show."""
    # The same settings gunicorn had (as the strings of its environment), without the cache
    # and so without the strategies, which need one.
    given = {k: str(v) for k, v in settings.items() if v is not None and k not in STRATEGY_SETTINGS}
    app = create_app({**given, "CACHE_BACKEND": "none", "VIDEOS_WORK_MS": "0"})
    client = app.test_client()
    rows = []
    for key in sorted(history["key"].unique()):
        t_invoke = time.time_ns()
        response = client.get(f"/videos/{key}")
        body = response.get_json(silent=True) or {}
        rows.append({
            "op": "get", "key": int(key), "value": body.get("name", ""),
            "status": response.status_code, "cache": "",
            "t_invoke_ns": t_invoke, "t_complete_ns": time.time_ns(), "worker": "final",
        })  # fmt: skip
    write_final_reads(run_dir, rows)


def summarize(
    run: Run, options: Options, run_dir: Path, conditions: dict, history: pd.DataFrame
) -> dict:
    """The summary row of one run: its figures, the machine's conditions as it started (see
    run_conditions), the bounds and whether it may be quoted."""
    info = json.loads((run_dir / RUN_FILE).read_text())
    window = run_window(run_dir, options.warmup_s, options.duration_s)
    run_figures, visibility = figures_and_visibility(
        history,
        read_final_reads(run_dir),
        start_ns=window[0],
        end_ns=window[1],
        unsent_arrivals=unsent_arrivals(info),
        clock_skew_ms=options.clock_skew_ms,
    )
    visibility.to_csv(run_dir / VISIBILITY_FILE, index=False)
    # Each Locust process's CPU over its measured load, as it measured it (no start-up).
    cpu = [p for p in info.get("cpu_percent", {}).values() if p is not None]
    keys = run_keys(run, options)
    row = {
        "cache": run.cache,
        "scenario": run.scenario,
        "variant": run.variant_label,
        **dict(run.variant),
        "keys": keys,
        "work_ms": run_work_ms(run, options),
        "extra_store_reads": extra_store_reads(run.cache, dict(run.variant)),
        **capacity_figures(run_dir, keys, options),
        "repeat": run.repeat,
        **conditions,
        **cpu_columns(run_cpu_sets(options)),
        "processes": info.get("processes", 1),
        "window_s": (window[1] - window[0]) / 1e9,
        "loadgen_cpu": max(cpu) / 100 if cpu else float("nan"),
        "loadgen_cpu_warning": bool(info.get("cpu_warning")),
        "arrivals_waited_share": _share(info.get("arrivals_waited"), info.get("arrivals_sent")),
        "unsent_arrivals": unsent_arrivals(info),
        **run_figures,
        **hot_key_figures(history, *window),
        **soak_figures(history, window, run_dir),
    }
    if run_fault(run, options) is not None:
        row.update(faulted_figures(history, window, run_dir, options.out))
    # An open loop's users send nothing: no response-time law bounds it.
    users = None if options.arrival_rate else info.get("user_count") or options.users
    # Every service host has --workers.
    workers = options.workers * (options.service_hosts or 1)
    # A server the runner did not start is served as it is, not as the options say.
    shape = (
        RunShape(run.cache, users)
        if options.host
        else RunShape(run.cache, users, workers, options.threads, run_work_ms(run, options))
    )
    row.update(run_bounds(history, window, shape, run_figures))
    row["invalid"] = invalid_reason(row, options)
    return row


def soak_figures(history: pd.DataFrame, window: tuple[int, int], run_dir: Path) -> dict:
    """The run's growing resources (`leaks`, `;`-separated), its throughput drift from the
    first to the last tenth of the window and whether that is beyond the noise (see
    reports/resources.py), and where its history is (`history`, relative to the output)."""
    relative_drift, beyond = drift(per_second_throughput(history, *window))
    return {
        "leaks": ";".join(leaks(read_resources(run_dir))),
        "throughput_drift": relative_drift,
        "throughput_drifted": beyond,
        "history": f"histories/{run_dir.name}",
    }


def capacity_figures(run_dir: Path, keys: int, options: Options) -> dict:
    """The run's capacity as given (CAPACITY_FILE) and the theory's hit rates at it: Che's
    for LRU and the top-C bound, for reads of independent keys."""
    path = run_dir / CAPACITY_FILE
    capacity = json.loads(path.read_text()) if path.exists() else {}
    if not capacity:
        return {}
    held = capacity.get("capacity_effective", capacity["capacity_entries"])
    p = popularity(keys, options.key_dist, options.zipf_s)
    return {
        **capacity,
        "capacity_share": held / keys,
        "hit_rate_che": che_hit_rate(p, held),
        "hit_rate_top_c": top_c_hit_rate(p, held),
    }


def faulted_figures(
    history: pd.DataFrame, window: tuple[int, int], run_dir: Path, out: Path
) -> dict:
    """The figures of the faulted run in `run_dir` (reports.timeline): when its fault was in
    effect, in seconds into the window, its timeline (written to TIMELINE_FILE, named
    relative to `out`), availability, recovery and stale reads after it."""
    fault = read_fault(run_dir)
    fault_window = fault["start_ns"], fault["end_ns"]
    path = run_dir / TIMELINE_FILE
    timeline(history, window, fault_window).to_csv(path, index=False)
    return {
        "fault_start_s": (fault_window[0] - window[0]) / 1e9,
        "fault_end_s": (fault_window[1] - window[0]) / 1e9,
        **fault_figures(history, window, fault_window),
        "timeline": str(path.relative_to(out)),
    }


def invalid_reason(row: dict, options: Options) -> str:
    """Why a run must not be quoted, or "" when it may be."""
    if saturated(row):
        return f"load generator saturated (CPU {row['loadgen_cpu']:.0%} of a core)"
    lag = row.get("send_lag_p99_ms")
    if (
        lag is not None
        and lag > MAX_SEND_LAG_MS
        and not row.get("arrivals_waited_share", 0) >= CAPPED_SHARE
    ):
        return (
            f"load generator behind its schedule (send lag p99 {lag:.1f} ms, "
            "the in-flight cap not reached)"
        )
    if row["window_s"] < 0.9 * options.duration_s:
        return (
            f"measured {row['window_s']:.1f} s of the {options.duration_s:g} s asked: "
            "seeding or the warm-up took the rest of the run"
        )
    if row["ops"] < MIN_OPS:
        return f"too few operations ({row['ops']} < {MIN_OPS})"
    return ""


def saturated(row: Mapping) -> bool:
    """Whether the run's load generator used 90 % of a core or more, or Locust warned so."""
    return bool(row["loadgen_cpu_warning"]) or row["loadgen_cpu"] >= CPU_SATURATED / 100


def _share(part: object, whole: object) -> float:
    """part / whole from locust-run.json; NaN when either is missing (a closed loop)."""
    if type(part) is int and type(whole) is int and whole:
        return part / whole
    return float("nan")
