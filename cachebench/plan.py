"""What a comparison runs: its options, checked (validate), and the runs they make (plan),
each a cell of the matrix and a repeat."""

import importlib.util
import ipaddress
import itertools
import math
import os
import socket
import sys
import time
from argparse import ArgumentTypeError
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from cachebench.affinity import AUTO, CpuSets, cpu_sets
from cachebench.capacity import EVICTION, REDIS_POLICIES, capacity_entries
from cachebench.faults import NONE, Fault, parse_fault
from cachebench.scenarios import default_scenarios, scenarios
from cachebench.strategies import DIMENSIONS as STRATEGY_DIMENSIONS
from cachebench.strategies import applies_to
from cachebench.topology import (
    DEFAULT_LOADGEN_HOSTS,
    DEFAULT_SERVICE_HOSTS,
    MAX_HOSTS,
    SINGLE,
    TOPOLOGIES,
    Layout,
    missing,
)
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
from reports.redact import redact
from service.settings import BY_NAME, CACHE_BACKENDS

# Locust's own command from this environment (`python -m locust` calls itself __main__.py).
LOCUST = Path(sys.executable).with_name("locust")
# The longest run the runner asks Locust for: far past any soak run, and a number Locust's
# timers can hold (1e308 s overflowed them).
MAX_RUN_S = 7 * 24 * 3600
# What a finished or interrupted run leaves in its --out; another run must not mix with it.
RUN_OUTPUTS = ("metadata.json", "summary.csv", "histories")
# Every run's store: one SQLite file, shared by the workers (what the store-lock fault locks).
STORE = "sqlite"


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


def run_fault(run: Run, options: Options) -> Fault | None:
    """The run's fault (its value of the fault dimension); None for a calm run."""
    label = dict(run.variant).get("fault", NONE)
    return None if label == NONE else parse_fault(label, options.duration_s)


def run_keys(run: Run, options: Options) -> int:
    """The keyspace of `run`: its `keys` value, or the only one."""
    return int(dict(run.variant).get("keys", options.keys[0]))


def run_work_ms(run: Run, options: Options) -> int:
    """The GET's work time of `run`: its `work_ms` value, or the only one."""
    return int(dict(run.variant).get("work_ms", options.work_ms[0]))


def run_cpu_sets(options: Options) -> CpuSets:
    """What --affinity means for a run of `options`: the server is the runner's to pin only
    when it starts it here (not --host's, nor --topology hosts', whose hosts have their own
    servers and balancer)."""
    return cpu_sets(options.affinity, serving=options.host is None and options.topology == SINGLE)
