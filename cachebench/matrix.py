"""The matrix runner: every cache configuration × scenario × repeat, each on a fresh store,
an empty cache and its own gunicorn, with Locust as a separate process; then checked.

Whatever happens (Ctrl-C, a failed run), everything started is stopped and the runs that
finished are kept.
"""

import importlib.util
import ipaddress
import itertools
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from argparse import ArgumentTypeError
from collections.abc import Callable, Mapping
from contextlib import ExitStack, nullcontext, suppress
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import pandas as pd

from cachebench.affinity import (
    AUTO,
    CpuSets,
    available_cpus,
    cpu_columns,
    cpu_sets,
    more_processes,
    pinned,
)
from cachebench.capacity import (
    DEFAULT_REDIS_POLICY,
    EVICTION,
    REDIS_POLICIES,
    UNBOUNDED,
    capacity_entries,
    sized_server,
)
from cachebench.faults import NONE, Fault, Target, injected, not_applicable, parse_fault, read_fault
from cachebench.metadata import collect, run_conditions
from cachebench.netns import NetworkError
from cachebench.processes import ServerError, gunicorn_process, run_environment, stop
from cachebench.resources import probes, sampling
from cachebench.scenarios import default_scenarios, scenarios
from cachebench.servers import SERVERS, ServerUnavailable, needed, private_instance, server_address
from cachebench.strategies import DIMENSIONS as STRATEGY_DIMENSIONS
from cachebench.strategies import applies_to, extra_store_reads, run_settings
from cachebench.strategies import not_applicable as strategy_not_applicable
from cachebench.topology import (
    DEFAULT_LOADGEN_HOSTS,
    DEFAULT_SERVICE_HOSTS,
    HOSTS,
    MAX_HOSTS,
    SINGLE,
    TOPOLOGIES,
    Hosts,
    Layout,
    built,
    missing,
)
from locust_cachebench.cpu import CPU_SATURATED
from locust_cachebench.options import (
    DEFAULT_ARRIVAL,
    DEFAULT_MAX_IN_FLIGHT,
    arrival_kind,
    arrival_rate,
    in_flight_cap,
    keys_count,
    random_seed,
    seed_choice,
    zipf_exponent,
)
from reports.bounds import RunShape, run_bounds
from reports.cells import configurations
from reports.figures import figures_and_visibility, unsent_arrivals
from reports.history import (
    HistoryError,
    read_final_reads,
    read_history,
    run_window,
    write_final_reads,
)
from reports.history_format import RUN_FILE
from reports.redact import redact
from reports.report import write_report
from reports.resources import drift, leaks, per_second_throughput, read_resources
from reports.stampede import hot_key_figures
from reports.stats import UNSTABLE_CV, estimate
from reports.theory import che_hit_rate, popularity, top_c_hit_rate
from reports.timeline import fault_figures, timeline
from reports.visibility import VISIBILITY_FILE
from service import create_app
from service.backends import BACKENDS
from service.settings import BY_NAME, CACHE_BACKENDS

# Locust's own command from this environment (`python -m locust` calls itself __main__.py).
LOCUST = Path(sys.executable).with_name("locust")
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


# The longest run the runner asks Locust for: far past any soak run, and a number Locust's
# timers can hold (1e308 s overflowed them).
MAX_RUN_S = 7 * 24 * 3600
# What a finished or interrupted run leaves in its --out; another run must not mix with it.
RUN_OUTPUTS = ("metadata.json", "summary.csv", "histories")
# Each run's capacity settings, beside its history: what its cache was given.
CAPACITY_FILE = "capacity.json"
# Every run's store: one SQLite file, shared by the workers (what the store-lock fault locks).
STORE = "sqlite"
# In a faulted run's directory: its figures per interval (reports.timeline), for the report.
TIMELINE_FILE = "timeline.csv"


class OptionsError(ValueError):
    """Options the runner refuses; the message says what to change."""


@dataclass(frozen=True)
class Options:
    """Everything that shapes a comparison; all of it is recorded with the results."""

    caches: tuple[str, ...] = CACHE_BACKENDS
    scenarios: tuple[str, ...] = field(default_factory=default_scenarios)
    repeats: int = 3
    # Six seconds make every cell's throughput CV < 5 % here: at 4, a write_heavy or simple
    # cell's few hundred misses still varied by 5-7 % from run to run (README, CPU affinity
    # and precision).
    duration_s: float = 6.0
    # After --seed warm the caches hold every id; a second lets the writes bring them down to
    # the scenario's steady hit rate (a cold start took 3 s to the hot ids, 10 to the tail).
    warmup_s: float = 1.0
    users: int = 8
    workers: int = 2
    threads: int = 1
    work_ms: tuple[int, ...] = (50,)  # more than one: a dimension, the race-window sweep
    work_phase: str = "before-read"
    strategy: str = "cached"
    cache_timeout_s: int = 300
    keys: tuple[int, ...] = (100,)
    key_dist: str = "zipf"
    zipf_s: float = 1.0
    # warm: the measured period starts from a full cache, not from its cold start, whose
    # pace varies from run to run (and is a fault's question: cache-restart).
    seed: str = "warm"
    # Every run draws its operations from this seed, so that repeats and configurations are
    # offered the same sequence (the draw's own variation is not the configuration's);
    # FRESH: a new draw each run.
    random_seed: str = "1"
    # Each a count of entries or a share of the keyspace ("10%"); none: unbounded caches.
    capacities: tuple[str, ...] = ()
    eviction_policies: tuple[str, ...] = ()  # Redis's maxmemory-policy, with a capacity
    # How far apart the load generators' clocks may be (reports/checker.py); one machine: 0.
    clock_skew_ms: float = 0.0
    host: str | None = None
    allow_remote: bool = False
    # Each --fault, `KIND` or `KIND@START:LENGTH` (cachebench/faults.py), as validate words it.
    faults: tuple[str, ...] = ()
    # CACHE_INVALIDATION and CACHE_FILL values (cachebench/strategies.py); none: the defaults.
    invalidations: tuple[str, ...] = ()
    fills: tuple[str, ...] = ()
    # `single`: everything on this host; `hosts`: hosts of the run's own (cachebench/topology.py),
    # with these many service and load-generating hosts (validate fills in the defaults).
    topology: str = SINGLE
    service_hosts: int | None = None
    loadgen_hosts: int | None = None
    # An open loop at this many operations a second, the same for every configuration (None:
    # the users' closed loop), spaced by `arrival`, at most `max_in_flight` outstanding.
    arrival_rate: float | None = None
    arrival: str = DEFAULT_ARRIVAL
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    # Which CPUs the load generator and the server get (cachebench/affinity.py).
    affinity: str = AUTO
    # Locust's load-generating processes (its --processes); more when one saturates.
    processes: int = 1
    out: Path = field(default_factory=lambda: Path("reports/runs") / time.strftime("%Y%m%d-%H%M%S"))

    def dimensions(self) -> list[tuple[str, tuple[str, ...]]]:
        """The matrix's dimensions besides cache, scenario and repeat: (name, values) each,
        a column of summary.csv and part of a run's `variant` (for the caches it applies to,
        DIMENSION_APPLIES). A new dimension (a fault, a strategy) is an option whose values
        are listed here. With --fault, `fault`: the calm run (`none`) and each fault given."""
        dimensions = []
        if len(self.keys) > 1:
            dimensions.append(("keys", tuple(map(str, self.keys))))
        if len(self.work_ms) > 1:
            dimensions.append(("work_ms", tuple(map(str, self.work_ms))))
        for name in STRATEGY_DIMENSIONS:  # each from its option, `invalidations`, `fills`
            if getattr(self, f"{name}s"):
                dimensions.append((name, getattr(self, f"{name}s")))
        if self.capacities:
            dimensions.append(("capacity", self.capacities))
        if self.eviction_policies:
            dimensions.append(("policy", self.eviction_policies))
        if self.faults:
            dimensions.append(("fault", (NONE, *self.faults)))
        return dimensions


# The dimensions that apply to some caches only: a cache without a capacity (none, a --host's
# unknown one) has none, and only Redis has a choice of eviction policy; the strategies apply
# to the caches the service lists for them (a value that does not apply to one of those is
# not run: strategy_not_applicable).
DIMENSION_APPLIES = {
    "capacity": lambda cache: cache in EVICTION,
    "policy": lambda cache: cache == "redis",
    **{name: lambda cache, name=name: cache in applies_to(name) for name in STRATEGY_DIMENSIONS},
}


# A smoke run: every cell once, briefly, with a short work time so that even the runs
# without a cache make enough operations. Its figures show the matrix works, not what to buy.
QUICK = {"repeats": 1, "duration_s": 1.0, "warmup_s": 0.5, "work_ms": (10,)}


# --random-seed's value for a new draw in every run.
FRESH = "none"


def seed_or_fresh(value: str) -> str:
    """The runner's --random-seed: the load tests' seed, or FRESH."""
    if value == FRESH:
        return value
    try:
        return str(random_seed(value))
    except ArgumentTypeError:
        raise ArgumentTypeError(f"must be a whole number >= 0 or {FRESH}, not {value!r}") from None


# The options that become the service's settings: (option's field, its flag, the setting).
SERVICE_OPTIONS = (
    ("strategy", "--strategy", "CACHE_STRATEGY"),
    ("cache_timeout_s", "--ttl", "CACHE_DEFAULT_TIMEOUT"),
    ("work_ms", "--work-ms", "VIDEOS_WORK_MS"),
    ("work_phase", "--work-phase", "VIDEOS_WORK_PHASE"),
    ("workers", "--workers", "SERVICE_WORKERS"),
    ("threads", "--threads", "SERVICE_THREADS"),
)
# The strategy dimensions' options: (option's field, its flag, the setting of each value).
STRATEGY_OPTIONS = tuple(
    (f"{name}s", f"--{name}s", setting) for name, setting in STRATEGY_DIMENSIONS.items()
)
STRATEGY_SETTINGS = tuple(STRATEGY_DIMENSIONS.values())
# The options handed to Locust, checked by the load tests' own rules.
LOCUST_OPTIONS = (
    ("zipf_s", "--zipf-s", zipf_exponent),
    ("seed", "--seed", seed_choice),
    ("arrival", "--arrival", arrival_kind),
    ("max_in_flight", "--max-in-flight", in_flight_cap),
    ("arrival_rate", "--arrival-rate", arrival_rate),
    ("random_seed", "--random-seed", seed_or_fresh),
)


def validate(options: Options) -> Options:
    """The options, checked; raises OptionsError with one line saying what to change."""
    unknown = set(options.caches) - set(CACHE_BACKENDS)
    if unknown:
        raise OptionsError(f"unknown cache {sorted(unknown)[0]!r}: use {', '.join(CACHE_BACKENDS)}")
    unknown = set(options.scenarios) - set(scenarios())
    if unknown:
        raise OptionsError(f"unknown scenario {sorted(unknown)[0]!r}: use {', '.join(scenarios())}")
    for name in ("repeats", "users", "processes"):
        if getattr(options, name) < 1:
            raise OptionsError(f"--{name} must be at least 1")
    if not (options.duration_s > 0 and options.warmup_s >= 0):
        raise OptionsError("--duration must be positive and --warmup not negative")
    if not 0 <= options.clock_skew_ms < math.inf:
        raise OptionsError("--clock-skew-ms must be a number of milliseconds >= 0")
    if options.duration_s + options.warmup_s > MAX_RUN_S:
        raise OptionsError(
            f"--duration plus --warmup must be at most {MAX_RUN_S:,} s (a week) per run"
        )
    for field_name, flag, setting in SERVICE_OPTIONS + STRATEGY_OPTIONS:
        value = getattr(options, field_name)
        for one in value if isinstance(value, tuple) else (value,):
            try:
                BY_NAME[setting].parse(one)
            except ValueError as exc:
                raise OptionsError(f"{flag} {one!r}: {exc}") from None
    if not options.work_ms:
        raise OptionsError("--work-ms needs at least one work time")
    check_strategies(options)
    if not options.keys:
        raise OptionsError("--keys needs at least one keyspace size")
    for keys in options.keys:
        try:
            keys_count(keys)
            for capacity in options.capacities:
                capacity_entries(capacity, keys)
        except (ArgumentTypeError, ValueError) as exc:
            flag = "--keys" if isinstance(exc, ArgumentTypeError) else "--capacities"
            raise OptionsError(f"{flag}: {exc}") from None
    unknown = set(options.eviction_policies) - set(REDIS_POLICIES)
    if unknown:
        raise OptionsError(
            f"unknown eviction policy {sorted(unknown)[0]!r}: use {', '.join(REDIS_POLICIES)}"
        )
    if options.eviction_policies and not options.capacities:
        raise OptionsError("--eviction-policies needs --capacities: without one nothing evicts")
    if options.capacities and options.host is not None:
        raise OptionsError("--capacities needs the runner's own service, not --host")
    for field_name, flag, check in LOCUST_OPTIONS:
        value = getattr(options, field_name)
        if value is None:  # an open loop's rate not given: the closed loop
            continue
        try:
            check(value)
        except ArgumentTypeError as exc:
            raise OptionsError(f"{flag}: {exc}") from None
    try:
        run_cpu_sets(options)
    except ValueError as exc:
        raise OptionsError(f"--affinity {options.affinity!r}: {exc}") from None
    options = check_topology(options)
    if options.host is not None:
        check_target(options.host, options.allow_remote)
    check_tools(serving=options.host is None)
    return replace(options, faults=check_faults(options))


def check_strategies(options: Options) -> None:
    """The strategies apply to the runner's own service with CACHE_STRATEGY=cached only."""
    for field_name, flag, _ in STRATEGY_OPTIONS:
        if not getattr(options, field_name):
            continue
        if options.host is not None:
            raise OptionsError(f"{flag} needs the runner's own service, not --host")
        if options.strategy != "cached":
            raise OptionsError(f"{flag} applies to --strategy cached only, not {options.strategy}")
        values = getattr(options, field_name)
        if len(set(values)) < len(values):
            raise OptionsError(f"{flag}: a value is given twice")


def check_topology(options: Options) -> Options:
    """The options with --topology hosts's counts of hosts filled in; OptionsError for what
    it cannot do or this machine lacks."""
    counts = (
        ("--service-hosts", options.service_hosts),
        ("--loadgen-hosts", options.loadgen_hosts),
    )
    if options.topology not in TOPOLOGIES:
        raise OptionsError(f"unknown topology {options.topology!r}: use {', '.join(TOPOLOGIES)}")
    if options.topology == SINGLE:
        for flag, count in counts:
            if count is not None:
                raise OptionsError(f"{flag} needs --topology hosts")
        return options
    refused = {
        "--host": options.host is not None,
        "--allow-remote": options.allow_remote,
        "--fault": bool(options.faults),
        "--capacities": bool(options.capacities),
    }
    for flag, given in refused.items():
        if given:
            raise OptionsError(
                f"--topology hosts starts and sizes everything on hosts of its own, without "
                f"faults: not with {flag} (use --topology single)"
            )
    for flag, count in counts:
        if count is not None and not 1 <= count <= MAX_HOSTS:
            raise OptionsError(f"{flag} must be from 1 to {MAX_HOSTS}")
    layout = Layout(
        options.service_hosts or DEFAULT_SERVICE_HOSTS,
        options.loadgen_hosts or DEFAULT_LOADGEN_HOSTS,
    )
    if options.users < layout.loadgen_hosts:
        raise OptionsError(
            f"--users {options.users} with {layout.loadgen_hosts} load-generating hosts: a "
            "worker without users sends no load; give at least one user per host"
        )
    why = missing()
    if why:
        raise OptionsError(f"--topology hosts {why}")
    return replace(options, service_hosts=layout.service_hosts, loadgen_hosts=layout.loadgen_hosts)


def layout_of(options: Options) -> Layout:
    """The hosts of a validated --topology hosts run."""
    return Layout(options.service_hosts, options.loadgen_hosts)


def check_faults(options: Options) -> tuple[str, ...]:
    """Each --fault as the matrix names it (Fault.label); OptionsError for a bad one."""
    if options.faults and options.host is not None:
        raise OptionsError(
            "--fault goes only into the processes and files the runner started: not with --host"
        )
    labels = []
    for text in options.faults:
        try:
            fault = parse_fault(text, options.duration_s)
        except ValueError as exc:
            raise OptionsError(f"--fault {exc}") from None
        label = fault.label
        if fault.kind.name == "cache-restart" and options.capacities:
            raise OptionsError(
                "--fault cache-restart with --capacities: the restarted server would come back "
                "without the size it was measured for; run them apart"
            )
        if label in labels or label == NONE:
            raise OptionsError(f"--fault {text!r} is given twice (the calm run is always made)")
        labels.append(label)
    return tuple(labels)


def prepare_out(out: Path) -> None:
    """Make the output directory, or say in one line why it cannot be used: it holds another
    run (whose histories this one would mix with its own) or it cannot be written."""
    held = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if held:
        raise OptionsError(f"--out {out} holds a run already ({held[0]}): give a new directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".cachebench-probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise OptionsError(f"--out {out}: {exc.strerror or exc}") from None


def check_tools(serving: bool) -> None:
    """The runner starts Locust (and gunicorn) from this Python's environment: say so, once,
    if they are not there, rather than failing every run."""
    install = f"install cachebench with its dependencies into {sys.prefix} (pip install -e .)"
    if not LOCUST.exists():
        raise OptionsError(f"Locust is not installed beside {sys.executable}: {install}")
    if serving and importlib.util.find_spec("gunicorn") is None:
        raise OptionsError(f"gunicorn is not installed for {sys.executable}: {install}")


def check_target(url: str, allow_remote: bool) -> None:
    """Refuse a target that is not this machine unless told: a load test aimed at the wrong
    host is an outage."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionsError(
            f"--host {redact(url)!r} is not an http(s) URL like http://127.0.0.1:8000"
        )
    if allow_remote:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, None)}
    except socket.gaierror as exc:
        raise OptionsError(f"--host {parts.hostname!r} does not resolve: {exc}") from None
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a).is_loopback)
    if remote:
        raise OptionsError(
            f"--host {parts.hostname} is not loopback ({remote[0]}): "
            "add --allow-remote if you mean to load another machine"
        )


@dataclass(frozen=True)
class Run:
    cache: str
    scenario: str
    repeat: int
    index: int
    total: int
    # The run's value of each of the matrix's other dimensions (Options.dimensions).
    variant: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        values = "".join(f"-{value}" for _, value in self.variant)
        return f"{self.cache}-{self.scenario}{values}-r{self.repeat}"

    @property
    def variant_label(self) -> str:
        """As summary.csv's `variant` column has it: `name=value,...`, empty for none."""
        return ",".join(f"{name}={value}" for name, value in self.variant)


def plan(options: Options, caches: tuple[str, ...]) -> list[Run]:
    """Repeats outermost, so that drift of a shared machine spreads over all cells; every
    value of the other dimensions (Options.dimensions) innermost."""
    dimensions = options.dimensions()
    variants = list(
        itertools.product(*[[(name, v) for v in values] for name, values in dimensions])
    )

    def cache_variants(cache: str) -> list[tuple[tuple[str, str], ...]]:
        applying = [
            tuple((n, v) for n, v in variant if DIMENSION_APPLIES.get(n, lambda _: True)(cache))
            for variant in variants
        ]
        return list(dict.fromkeys(applying))

    cells = [
        (repeat, scenario, cache, variant)
        for repeat in range(1, options.repeats + 1)
        for scenario in options.scenarios
        for cache in caches
        for variant in cache_variants(cache)
    ]
    return [Run(c, s, r, i, len(cells), v) for i, (r, s, c, v) in enumerate(cells, start=1)]


class Progress(Protocol):
    """Told how the matrix advances, to show it."""

    def running(self, run: Run, elapsed_s: float, rps: float | None) -> None: ...
    def finished(self, run: Run, row: dict | None, error: str | None) -> None: ...


@dataclass
class MatrixResult:
    summary: pd.DataFrame
    skipped: dict[str, str]  # cache -> why it was not run
    interrupted: bool = False
    failures: list[str] = field(default_factory=list)
    # configuration (`cache [fault=…]`) -> why its fault does not apply, so it was not run
    not_applicable: dict[str, str] = field(default_factory=dict)


# Runs one cell of the matrix: (run, options, Redis URL or None, progress) -> its summary row.
CellRunner = Callable[[Run, Options, Mapping[str, str], Progress], dict]


def run_matrix(
    options: Options, progress: Progress, run_cell: CellRunner | None = None
) -> MatrixResult:
    """Run every cell of the matrix into options.out with `run_cell` (by default run_fitted,
    the real run; a test gives its own); returns what finished."""
    run_cell = run_cell or run_fitted
    options.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    result = MatrixResult(pd.DataFrame(), {})
    with ExitStack() as stack:
        hosts = None
        if options.topology == HOSTS:
            try:
                hosts = stack.enter_context(built(layout_of(options), needed(options.caches)))
            except KeyboardInterrupt:
                result.interrupted = True
                return result
            except (ServerError, NetworkError) as exc:
                result.failures.append(f"the hosts could not be made: {exc}")
                return result
            run_cell = partial(run_cell, hosts=hosts) if run_cell is run_fitted else run_cell
        addresses, caches = cache_servers(stack, options, result.skipped, hosts)
        runs = []
        for run in plan(options, caches):
            why = fault_not_applicable(run, options) or strategy_not_applicable(
                run.cache, options.strategy, dict(run.variant)
            )
            if why:
                result.not_applicable[f"{run.cache} [{run.variant_label}]"] = why
            else:
                runs.append(run)
        try:
            for run in renumbered(runs):
                row = attempt(run_cell, run, options, addresses, progress, result.failures)
                if row is not None:
                    rows.append(row)
        except KeyboardInterrupt:
            result.interrupted = True
    result.summary = flag_unstable(pd.DataFrame(rows))
    return result


def run_cpu_sets(options: Options) -> CpuSets:
    """What --affinity means for a run of `options`: the server is the runner's to pin only
    when it starts it here (not --host's, nor --topology hosts', whose hosts have their own
    servers and balancer)."""
    return cpu_sets(options.affinity, serving=options.host is None and options.topology == SINGLE)


def cache_servers(
    stack: ExitStack, options: Options, skipped: dict[str, str], hosts: Hosts | None = None
) -> tuple[dict[str, str], tuple[str, ...]]:
    """Start on `stack` the cache servers options.caches need, on the server's CPUs (with
    `hosts`, --topology hosts, those its hosts started): each server's service setting -> its
    address, and the caches that can run (`external` with --host); a cache whose server
    cannot be had goes into `skipped` with why."""
    caches = (EXTERNAL,) if options.host else options.caches
    addresses = dict(hosts.addresses) if hosts else {}
    unavailable = hosts.skipped if hosts else {}  # each server the hosts lack -> why
    server_cpus = run_cpu_sets(options).server
    for server in needed(caches):
        try:
            if hosts is None:
                with pinned(server_cpus):
                    addresses[server.setting] = stack.enter_context(server_address(server))
            elif server.name in unavailable:
                raise ServerUnavailable(unavailable[server.name])
        except ServerUnavailable as exc:
            left_out = [c for c in caches if server in needed([c])]
            skipped.update(dict.fromkeys(left_out, str(exc)))
            caches = tuple(c for c in caches if c not in left_out)
    return addresses, caches


def attempt(
    run_cell: CellRunner,
    run: Run,
    options: Options,
    addresses: Mapping[str, str],
    progress: Progress,
    failures: list[str],
) -> dict | None:
    """`run_cell`'s row of `run`, told to `progress`; None when it failed, whatever the
    exception, which is told and added to `failures`: one run's failure must not lose the
    runs that finished."""
    try:
        row = run_cell(run, options, addresses, progress)
    except Exception as exc:
        error = failure(run, options, exc)
        failures.append(f"{run.name}: {error}")
        progress.finished(run, None, error)
        return None
    progress.finished(run, row, None)
    return row


def run_fitted(
    run: Run,
    options: Options,
    addresses: Mapping[str, str],
    progress: Progress,
    hosts: Hosts | None = None,
) -> dict:
    """run_one, run again with one more Locust process while Locust saturated its CPU and
    the load generator's CPUs have one to spare (more_processes); a saturated attempt's
    directory is kept beside, named for its processes (`…-r1.p1`)."""
    row = run_one(run, options, addresses, progress, hosts)
    cpus = run_cpu_sets(options).loadgen
    while more := more_processes(saturated(row), row["processes"], len(cpus or available_cpus())):
        run_dir = options.out / "histories" / run.name
        run_dir.rename(run_dir.with_name(f"{run.name}.p{row['processes']}"))
        options = replace(options, processes=more)
        row = run_one(run, options, addresses, progress, hosts)
    return row


def run_fault(run: Run, options: Options) -> Fault | None:
    """The run's fault (its value of the fault dimension); None for a calm run."""
    label = dict(run.variant).get("fault", NONE)
    return None if label == NONE else parse_fault(label, options.duration_s)


def fault_not_applicable(run: Run, options: Options) -> str | None:
    """Why the run's fault does not apply to its cache, or None (also for no fault)."""
    fault = run_fault(run, options)
    return None if fault is None else not_applicable(fault.kind, run.cache, STORE)


def renumbered(runs: list[Run]) -> list[Run]:
    """`runs` counted again from 1, after the plan's cells that are not run were left out."""
    return [replace(run, index=i, total=len(runs)) for i, run in enumerate(runs, start=1)]


def failure(run: Run, options: Options, exc: Exception) -> str:
    """One line for the failure of `run`; an unexpected exception's traceback goes to a file."""
    if isinstance(exc, ServerError | HistoryError | OSError):
        return str(exc)
    path = options.out / "histories" / run.name / "error.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(traceback.format_exception(exc)))
    return f"{type(exc).__name__}: {exc} (traceback in {path})"


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


def run_keys(run: Run, options: Options) -> int:
    """The keyspace of `run`: its `keys` value, or the only one."""
    return int(dict(run.variant).get("keys", options.keys[0]))


def run_work_ms(run: Run, options: Options) -> int:
    """The GET's work time of `run`: its `work_ms` value, or the only one."""
    return int(dict(run.variant).get("work_ms", options.work_ms[0]))


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


# What makes a cell of the matrix: its repeats are the same run again.
CELL = ["cache", "scenario", "variant"]


def flag_unstable(summary: pd.DataFrame) -> pd.DataFrame:
    """Add each cell's coefficient of variation of throughput over its valid repeats."""
    if summary.empty:
        return summary
    summary = summary.assign(variant=summary.get("variant", ""))
    valid = summary[summary["invalid"] == ""]
    cv = valid.groupby(CELL)["throughput_rps"].agg(lambda s: estimate(s).cv)
    return summary.join(cv.rename("throughput_cv"), on=CELL)


def unstable_cells(summary: pd.DataFrame) -> list[tuple[str, str, float]]:
    """(configuration, scenario, CV) of every cell whose throughput varies too much across
    repeats; the configuration as the report names it (configurations)."""
    if summary.empty:
        return []
    named = configurations(summary)
    cells = named[["cache", "scenario", "throughput_cv"]].drop_duplicates()
    return [tuple(c) for c in cells[cells["throughput_cv"] >= UNSTABLE_CV].itertuples(index=False)]


def options_record(options: Options) -> dict:
    record = asdict(options)
    record["out"] = str(options.out)
    record["host"] = options.host and redact(options.host)
    # What --affinity came to on this machine: the CPUs of each side ("" not pinned).
    record["cpu_sets"] = cpu_columns(run_cpu_sets(options))
    return record


def save_metadata(options: Options, started: str, **outcome: object) -> dict:
    """Write metadata.json into options.out: the machine, versions and options (collect),
    when the run started and finished, and `outcome` (what was run, skipped, failed);
    returns it."""
    metadata = collect(options.out.name, options_record(options))
    metadata.update(started=started, finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"), **outcome)
    (options.out / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    return metadata


def save(result: MatrixResult, options: Options, started: str) -> dict:
    """Write summary.csv, metadata.json and the report into options.out; returns metadata."""
    metadata = save_metadata(
        options,
        started,
        interrupted=result.interrupted,
        skipped=result.skipped,
        not_applicable=result.not_applicable,
        failures=result.failures,
        runs=len(result.summary),
    )
    result.summary.to_csv(options.out / "summary.csv", index=False)
    write_report(options.out, result.summary, metadata, result.skipped, result.failures)
    return metadata
