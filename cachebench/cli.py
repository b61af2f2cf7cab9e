"""The `cachebench` command: parse, then dispatch to one function per subcommand.

The work lives in library functions (reports.figures and the like) that the tests call
directly; a subcommand only turns arguments into a call and the result into output.
"""

import argparse
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from cachebench.scenarios import scenarios
from locust_cachebench.keys import KEY_DISTRIBUTIONS
from locust_cachebench.options import ARRIVALS, SEED_CHOICES, arrival_rate
from reports.figures import check, format_figures
from reports.history import HistoryError
from reports.history_format import FILE_PATTERN, FINAL_READS_FILE

if TYPE_CHECKING:
    from cachebench.plan import Options, Run

# The matrix runner (cachebench.matrix) and the comparison bring matplotlib and scipy, a
# second or more of start-up: only `run` and `compare` import them, when they are used. So
# do `run` and `sweep` the modules that import the service (Flask, Redis, psycopg: half a
# second more), which `check` does not need.


class OneLineParser(argparse.ArgumentParser):
    """A bad option is one line that says what to do, not a usage dump.

    `populate(parser)`, if given, adds the parser's arguments when it is first used (parsed
    or asked for help), so that a subcommand's imports are paid by that subcommand only.
    """

    def __init__(
        self,
        *args: object,
        populate: Callable[[argparse.ArgumentParser], None] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._populate = populate

    def parse_known_args(self, *args: object, **kwargs: object) -> tuple:
        self._populated()
        return super().parse_known_args(*args, **kwargs)

    def format_help(self) -> str:
        self._populated()
        return super().format_help()

    def _populated(self) -> None:
        if self._populate is not None:
            populate, self._populate = self._populate, None
            populate(self)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cachebench", description="What an HTTP cache buys, and what it costs."
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    check_parser = commands.add_parser(
        "check",
        help="print the figures of one run: throughput, latency, hit rate, stale reads",
        description=f"Check one run's history ({FILE_PATTERN}, and {FINAL_READS_FILE} if "
        "present) and print its figures. Exit status 2 if it cannot be read.",
    )
    check_parser.add_argument("history_dir", type=Path, help="the run's directory")
    check_parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    check_parser.add_argument(
        "--warmup",
        type=_seconds,
        default=0.0,
        metavar="SECONDS",
        help="leave out of the figures the operations invoked in the history's first SECONDS "
        "(their writes still judge the reads after them; default: 0)",
    )
    check_parser.add_argument(
        "--clock-skew-ms",
        type=_milliseconds,
        default=0.0,
        metavar="MS",
        help="how far apart the clocks of the machines that wrote the history may be: times "
        "closer than MS are concurrent, and a read is stale only by more than MS (default: 0, "
        "one machine)",
    )
    check_parser.set_defaults(command=cmd_check)
    _add_run(commands)
    _add_sweep(commands)

    compare_parser = commands.add_parser(
        "compare",
        help="the change of each figure between two runs, and whether it is beyond noise",
        description="Compare two `cachebench run` outputs: for each scenario × cache and "
        "figure, B's mean against A's with the 95 %% interval of the difference.",
    )
    compare_parser.add_argument("run_a", type=Path, help="the baseline run's directory")
    compare_parser.add_argument("run_b", type=Path, help="the run compared with it")
    compare_parser.set_defaults(command=cmd_compare)
    return parser


def _add_run(commands: argparse._SubParsersAction) -> None:
    commands.add_parser(
        "run",
        help="run every cache configuration × scenario × repeat and write the report",
        description="Start a fresh service for every cache configuration × scenario × repeat, "
        "load it with Locust, check every history and write summary.csv, metadata.json, "
        "report.md and report.html into --out.",
        populate=_add_run_options,
    )


def _add_run_options(run: argparse.ArgumentParser) -> None:
    from cachebench.capacity import DEFAULT_REDIS_POLICY, REDIS_POLICIES
    from cachebench.faults import KINDS
    from cachebench.plan import QUICK, Options
    from cachebench.topology import DEFAULT_LOADGEN_HOSTS, DEFAULT_SERVICE_HOSTS, TOPOLOGIES
    from service.settings import CACHE_BACKENDS, CACHE_STRATEGIES, FILLS, INVALIDATIONS, WORK_PHASES

    defaults = Options()
    add = run.add_argument
    add(
        "--caches",
        type=_choices(CACHE_BACKENDS),
        metavar="LIST",
        help=f"comma list (default: {','.join(defaults.caches)})",
    )
    add(
        "--scenarios",
        type=_choices(tuple(scenarios())),
        metavar="LIST",
        help=f"comma list (default: {','.join(defaults.scenarios)})",
    )
    add("--repeats", type=int, help=f"runs of each cell (default: {defaults.repeats})")
    add(
        "--duration",
        dest="duration_s",
        metavar="SECONDS",
        type=_seconds,
        help=f"measured seconds per run (default: {defaults.duration_s:g})",
    )
    add(
        "--warmup",
        dest="warmup_s",
        metavar="SECONDS",
        type=_seconds,
        help=f"seconds before measuring, excluded (default: {defaults.warmup_s:g})",
    )
    add("--users", type=int, help=f"Locust users (default: {defaults.users})")
    add("--workers", type=int, help=f"gunicorn workers (default: {defaults.workers})")
    add("--threads", type=int, help=f"threads per worker (default: {defaults.threads})")
    add(
        "--work-ms",
        type=_numbers,
        metavar="LIST",
        help="VIDEOS_WORK_MS, comma list; more than one is a dimension, the race window of "
        f"--work-phase after-read (default: {','.join(map(str, defaults.work_ms))})",
    )
    add(
        "--work-phase",
        choices=WORK_PHASES,
        help=f"VIDEOS_WORK_PHASE (default: {defaults.work_phase})",
    )
    add(
        "--strategy",
        choices=CACHE_STRATEGIES,
        help=f"CACHE_STRATEGY (default: {defaults.strategy})",
    )
    add(
        "--invalidations",
        type=_choices(INVALIDATIONS),
        metavar="LIST",
        help="CACHE_INVALIDATION values, a dimension of the caches each applies to "
        f"({', '.join(INVALIDATIONS)}; default: the service's, delete)",
    )
    add(
        "--fills",
        type=_choices(FILLS),
        metavar="LIST",
        help=f"CACHE_FILL values, a dimension ({', '.join(FILLS)}; default: the service's, plain)",
    )
    add(
        "--ttl",
        dest="cache_timeout_s",
        metavar="SECONDS",
        type=int,
        help=f"CACHE_DEFAULT_TIMEOUT s (default: {defaults.cache_timeout_s})",
    )
    add(
        "--clock-skew-ms",
        type=_milliseconds,
        metavar="MS",
        help="clocks of the load generators up to MS apart: a read is stale only by more "
        f"(default: {defaults.clock_skew_ms:g}, one machine)",
    )
    add(
        "--keys",
        type=_numbers,
        metavar="LIST",
        help=f"keyspace sizes, comma list; more than one is a dimension (default: "
        f"{','.join(map(str, defaults.keys))})",
    )
    add(
        "--seed",
        choices=SEED_CHOICES,
        help="all: PUT every id before measuring; warm: then GET each once, so that the caches "
        f"start full; none: neither (default: {defaults.seed})",
    )
    add(
        "--capacities",
        type=_list,
        metavar="LIST",
        help="cache capacities, a dimension: entries (1000) or shares of the keys (10%%), "
        "comma list (default: unbounded)",
    )
    add(
        "--eviction-policies",
        type=_choices(REDIS_POLICIES),
        metavar="LIST",
        help=f"Redis maxmemory-policy values, a dimension (default: {DEFAULT_REDIS_POLICY})",
    )
    add(
        "--key-dist",
        choices=KEY_DISTRIBUTIONS,
        help=f"key popularity (default: {defaults.key_dist})",
    )
    add("--zipf-s", type=float, help=f"zipf exponent (default: {defaults.zipf_s:g})")
    add(
        "--host",
        help="load this server instead of starting one (loopback only unless --allow-remote)",
    )
    add(
        "--allow-remote",
        action="store_true",
        default=None,
        help="allow a --host that is not this machine",
    )
    add(
        "--fault",
        dest="faults",
        action="append",
        metavar="KIND[@START:LENGTH]",
        help="inject this fault into a run of every cell it applies to, beside the calm run "
        "(repeatable): "
        + "; ".join(f"{k.name}: {k.description}" for k in KINDS.values())
        + ". By default it starts a third into the measured window and lasts a third of it; "
        "@START:LENGTH in seconds sets both",
    )
    add_load_options(run)
    add(
        "--topology",
        choices=TOPOLOGIES,
        help="single: everything on this host; hosts: the service on --service-hosts hosts "
        "behind HAProxy, the cache servers, PostgreSQL and Locust's master and --loadgen-hosts "
        "workers each on hosts of their own, network namespaces made for the run (needs root, "
        f"iproute2, haproxy) (default: {defaults.topology})",
    )
    add(
        "--service-hosts",
        type=int,
        metavar="N",
        help=f"with --topology hosts: hosts serving the service (default: {DEFAULT_SERVICE_HOSTS})",
    )
    add(
        "--loadgen-hosts",
        type=int,
        metavar="K",
        help=f"with --topology hosts: hosts of Locust workers (default: {DEFAULT_LOADGEN_HOSTS})",
    )
    add("--out", type=Path, help="output directory (default: reports/runs/<run-id>)")
    add(
        "--quick",
        action="store_true",
        help="a smoke run in under a minute: "
        + ", ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else f'{v:g}'}"
            for k, v in QUICK.items()
        ),
    )
    run.set_defaults(command=cmd_run)  # fmt: skip


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """How the load is offered and where each side runs: `run`'s and `sweep`'s."""
    from cachebench.affinity import HELP
    from cachebench.plan import Options

    defaults = Options()
    add = parser.add_argument
    add(
        "--arrival-rate",
        type=arrival_rate,
        metavar="R",
        help="an open loop at R operations a second, the same for every configuration, "
        "latency corrected from when each was due (default: the users' closed loop)",
    )
    add(
        "--arrival",
        choices=ARRIVALS,
        help=f"open loop: how arrivals are spaced (default: {defaults.arrival})",
    )
    add(
        "--max-in-flight",
        type=int,
        metavar="N",
        help=f"open loop: operations outstanding at most per Locust process (default: "
        f"{defaults.max_in_flight})",
    )
    add(
        "--random-seed",
        metavar="N|none",
        help="draw every run's operations and ids from this seed, so that each repeat and "
        "configuration is offered the same sequence; none: a fresh draw each run "
        f"(default: {defaults.random_seed})",
    )
    add(
        "--affinity",
        metavar="auto|off|CPUS:CPUS",
        help=f"{HELP} (default: {defaults.affinity})",
    )
    add(
        "--processes",
        type=int,
        metavar="N",
        help=f"Locust processes to start with; one more, up to the load generator's CPUs, "
        f"after a run that saturated them (default: {defaults.processes})",
    )


def options_from(
    args: argparse.Namespace, defaults: Mapping[str, object] | None = None
) -> "Options":
    """Options' defaults, then `defaults`, then --quick's, then every option given."""
    from cachebench.plan import QUICK, Options

    options = replace(Options(), **{**(defaults or {}), **(QUICK if args.quick else {})})
    given = {f.name: getattr(args, f.name) for f in fields(Options) if hasattr(args, f.name)}
    return replace(options, **{k: v for k, v in given.items() if v is not None})


def cmd_check(args: argparse.Namespace) -> int:
    try:
        result = check(args.history_dir, warmup_s=args.warmup, clock_skew_ms=args.clock_skew_ms)
    except (HistoryError, OSError) as exc:
        print(f"cachebench check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else format_figures(result))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from cachebench.matrix import run_matrix, save, unstable_cells
    from cachebench.plan import OptionsError, prepare_out, validate
    from cachebench.processes import RUN_MARKER

    # What a run writes is its user's, as the service's files are: --out and the directories
    # made in it 0700, every file 0600, those of gunicorn and Locust too (they inherit it).
    os.umask(0o077)
    try:
        options = validate(options_from(args))
        prepare_out(options.out)
    except OptionsError as exc:
        print(f"cachebench run: {exc}", file=sys.stderr)
        return 2
    os.environ[RUN_MARKER] = str(options.out.resolve())
    # A `kill` or a CI timeout stops the matrix as Ctrl-C does: processes stopped, runs kept.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    result = run_matrix(options, ConsoleProgress(sys.stderr))
    save(result, options, started)
    print(f"report: {options.out / 'report.md'} (and report.html, summary.csv, metadata.json)")
    for cache, why in {**result.skipped, **result.not_applicable}.items():
        print(f"not run: {cache}: {why}", file=sys.stderr)
    for cache, scenario, cv in unstable_cells(result.summary):
        print(
            f"unstable: {cache} × {scenario}: throughput varies {cv:.0%} across repeats "
            "(CV ≥ 10%); see the report before quoting it",
            file=sys.stderr,
        )
    if result.interrupted:
        print(f"interrupted: kept the {len(result.summary)} finished runs", file=sys.stderr)
        return 130
    if result.summary.empty:
        for failure in result.failures:
            print(f"failed: {failure}", file=sys.stderr)
        print("no run finished: nothing was measured", file=sys.stderr)
        return 1
    return 1 if result.failures else 0


def _add_sweep(commands: argparse._SubParsersAction) -> None:
    commands.add_parser(
        "sweep",
        help="find the highest offered rate each cache configuration serves within a latency "
        "objective",
        populate=_add_sweep_options,
    )


def _add_sweep_options(sweep: argparse.ArgumentParser) -> None:
    """`run`'s options, and the sweep's own."""
    from cachebench.sweep import (
        BISECTIONS,
        DEFAULT_SLO_P99_MS,
        DOUBLINGS,
        QUICK_SEARCH,
        START_RPS,
        SWEEP_DEFAULTS,
        objective_ms,
        parse_rates,
    )

    sweep.description = (
        "Run each cache configuration × scenario as an open loop at a series of "
        "offered rates and write sweep.csv, metadata.json, report.md and report.html into "
        "--out: the latency–throughput curves and the capacity at the objective. Takes "
        "`run`'s options (but --arrival-rate: the rates are --rates); by default "
        + ", ".join(f"--{k.removesuffix('_s')} {','.join(v) if isinstance(v, tuple) else f'{v:g}'}"
                    for k, v in SWEEP_DEFAULTS.items())
        + f"; --quick also searches from {QUICK_SEARCH['start_rps']:g} ops/s with "
        f"{QUICK_SEARCH['doublings']} doublings and {QUICK_SEARCH['bisections']} bisection."
    )  # fmt: skip
    _add_run_options(sweep)
    sweep.add_argument(
        "--rates",
        type=parse_rates,
        metavar="auto|LIST",
        help=f"the offered rates, ops/s, comma list; auto: from {START_RPS:g}, doubled until "
        f"one fails (at most {DOUBLINGS} times), then bisected {BISECTIONS} times between the "
        "last pass and the first failure (default: auto)",
    )
    sweep.add_argument(
        "--slo-p99-ms",
        type=objective_ms,
        metavar="MS",
        help="the objective: the GETs' p99, from when each was due, within MS (default: "
        f"{DEFAULT_SLO_P99_MS:g})",
    )
    sweep.set_defaults(command=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from cachebench.plan import OptionsError, prepare_out, validate
    from cachebench.processes import RUN_MARKER
    from cachebench.sweep import (
        DEFAULT_SLO_P99_MS,
        QUICK_SEARCH,
        SWEEP_DEFAULTS,
        Search,
        run_sweep,
        save_sweep,
    )
    from cachebench.topology import SINGLE

    os.umask(0o077)  # as cmd_run: the user's own
    try:
        if args.arrival_rate is not None:
            raise OptionsError("--arrival-rate: a sweep offers the rates of --rates")
        if args.topology not in (None, SINGLE):
            raise OptionsError(f"--topology {args.topology}: a sweep runs on this host only")
        options = validate(options_from(args, SWEEP_DEFAULTS))
        prepare_out(options.out)
    except OptionsError as exc:
        print(f"cachebench sweep: {exc}", file=sys.stderr)
        return 2
    search = Search(**(QUICK_SEARCH if args.quick else {}))
    search = replace(
        search,
        rates=args.rates or (),
        slo_p99_ms=args.slo_p99_ms or DEFAULT_SLO_P99_MS,
    )
    os.environ[RUN_MARKER] = str(options.out.resolve())
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    result = run_sweep(options, search, ConsoleProgress(sys.stderr))
    save_sweep(result, options, search, started)
    print(f"report: {options.out / 'report.md'} (and report.html, sweep.csv, metadata.json)")
    for cache, why in result.skipped.items():
        print(f"not run: {cache}: {why}", file=sys.stderr)
    if result.interrupted:
        print(f"interrupted: kept the {len(result.rows)} finished runs", file=sys.stderr)
        return 130
    if not result.rows:
        print("no run finished: nothing was measured", file=sys.stderr)
        return 1
    return 1 if result.failures else 0


def cmd_compare(args: argparse.Namespace) -> int:
    from reports.compare import CompareError, compare_runs, format_comparison

    try:
        table = compare_runs(args.run_a, args.run_b)
    except (CompareError, OSError, KeyError) as exc:
        print(f"cachebench compare: {exc}", file=sys.stderr)
        return 2
    print(format_comparison(table))
    return 0


class ConsoleProgress:
    """One line that follows the matrix on a terminal; a line per run elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def running(self, run: "Run", elapsed_s: float, rps: float | None) -> None:
        if self.live:
            rate = f"{rps:.0f} req/s" if rps is not None else "starting"
            self.stream.write(
                f"\r[{run.index}/{run.total}] {run.name}: {elapsed_s:.0f} s, {rate}\x1b[K"
            )
            self.stream.flush()

    def finished(self, run: "Run", row: dict | None, error: str | None) -> None:
        prefix = (
            f"\r[{run.index}/{run.total}] {run.name}: "
            if self.live
            else f"[{run.index}/{run.total}] {run.name}: "
        )
        if row is None:
            line = f"FAILED: {error}"
        else:
            line = (
                f"{row['throughput_rps'] or 0:.0f} ops/s, hit rate {row['hit_rate'] or 0:.0%}, "
                f"{row['stale_reads']} stale reads"
            )
            if row["invalid"]:
                line += f" — INVALID, not quoted: {row['invalid']}"
        self.stream.write(prefix + line + ("\x1b[K\n" if self.live else "\n"))
        self.stream.flush()


def _choices(allowed: Sequence[str]):
    def parse(text: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"{unknown[0] if unknown else text!r} is not one of {', '.join(allowed)}"
            )
        return names

    return parse


def _list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError(f"not a comma list: {text!r}")
    return values


def _numbers(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of whole numbers: {text!r}") from None


def _amount(unit: str) -> Callable[[str], float]:
    """A parser of a finite number of `unit` >= 0."""

    def parse(text: str) -> float:
        try:
            amount = float(text)
        except ValueError:
            amount = math.nan
        if not 0 <= amount < math.inf:
            raise argparse.ArgumentTypeError(f"not a number of {unit} >= 0: {text!r}")
        return amount

    return parse


_seconds = _amount("seconds")
_milliseconds = _amount("milliseconds")


if __name__ == "__main__":
    sys.exit(main())
