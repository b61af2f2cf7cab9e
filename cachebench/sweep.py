"""`cachebench sweep`: each configuration × scenario of the matrix at a series of offered rates
(an open loop), to find the highest rate it serves within a latency objective.

The rates are given, or found (`auto`): doubled from a start until one fails the objective,
then bisected between the last pass and the first failure a bounded number of times. Each
run is the matrix's own (run_fitted: a fresh service, Locust, the checker); reports/sweep.py
judges them and writes the report.
"""

import math
from argparse import ArgumentTypeError
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace

import pandas as pd

from cachebench.matrix import CellRunner, attempt, cache_servers, run_fitted, save_metadata
from cachebench.one_run import MIN_OPS, Progress
from cachebench.plan import Options, Run, plan
from reports.sweep import COLUMNS, FAIL, PASS, rate_verdict, run_verdict, write_sweep_report

AUTO = "auto"
# The default search: from 25 operations a second (a configuration without a cache serves
# some 30 with the default 50 ms of work), at most 10 doublings and 3 bisections.
START_RPS = 25.0
DOUBLINGS = 10
BISECTIONS = 3
DEFAULT_SLO_P99_MS = 200.0
# A run measures at least this many operations' worth of time (a low rate runs longer), so
# that it is not refused for too few (the matrix's MIN_OPS) by the draw of its arrivals.
SWEEP_MIN_OPS = 2 * MIN_OPS
# `--quick`: the matrix's smoke settings (QUICK), one repeat, a short search from a rate that
# fills even a one-second window.
QUICK_SEARCH = {"start_rps": 200.0, "doublings": 2, "bisections": 1}
# A sweep's own defaults, beside the matrix's (Options): one scenario, one repeat per rate of
# the matrix's former 4 s, so that the default sweep takes about 5 minutes on a 2-core machine.
SWEEP_DEFAULTS = {"scenarios": ("read_heavy",), "repeats": 1, "duration_s": 4.0}


@dataclass(frozen=True)
class Search:
    """Which rates to run: `rates` as given, or (empty) found from `start_rps`."""

    rates: tuple[float, ...] = ()
    start_rps: float = START_RPS
    doublings: int = DOUBLINGS
    bisections: int = BISECTIONS
    slo_p99_ms: float = DEFAULT_SLO_P99_MS

    @property
    def label(self) -> str:
        if self.rates:
            return ", ".join(f"{r:g}" for r in self.rates) + " ops/s"
        return (
            f"auto: from {self.start_rps:g} ops/s, doubled until one fails (at most "
            f"{self.doublings} times), then {self.bisections} bisections"
        )


def parse_rates(text: str) -> tuple[float, ...]:
    """`auto` (empty: found) or a comma list of rates > 0, in increasing order."""
    if text.strip() == AUTO:
        return ()
    try:
        rates = tuple(float(r) for r in text.split(",") if r.strip())
    except ValueError:
        rates = ()
    if not rates or not all(0 < r < math.inf for r in rates):
        raise ArgumentTypeError(
            f"give auto or a comma list of operations per second > 0 (25,50,100), not {text!r}"
        )
    return tuple(sorted(set(rates)))


def objective_ms(text: str) -> float:
    """A latency objective: milliseconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ArgumentTypeError(f"give a number of milliseconds > 0, not {text!r}")
    return value


def next_rate(tried: Sequence[tuple[float, str]], search: Search) -> float | None:
    """The next rate to run after `tried` (rate, verdict) in the order run, or None when the
    search is over. Given rates are run in turn. Found: doubled from start_rps while every
    rate passed (at most `doublings` times), then the midpoint, a whole number, between the
    highest pass below the lowest rate that did not pass and that rate (0 if none passed),
    `bisections` times at most, or until no whole number is left between them. A flagged
    rate ends the doubling as a failure does: above it, the figures are the load
    generator's."""
    if search.rates:
        return search.rates[len(tried)] if len(tried) < len(search.rates) else None
    if not tried:
        return search.start_rps
    stops = [i for i, (_, verdict) in enumerate(tried) if verdict != PASS]
    if not stops:
        doubled = len(tried) - 1
        return tried[-1][0] * 2 if doubled < search.doublings else None
    if len(tried) - 1 - stops[0] >= search.bisections:
        return None
    high = min(rate for rate, verdict in tried if verdict != PASS)
    low = max((rate for rate, verdict in tried if verdict == PASS and rate < high), default=0.0)
    middle = float(round((low + high) / 2))
    return middle if low < middle < high else None


def run_duration(rate: float, duration_s: float) -> float:
    """A run's measured seconds at `rate`: `duration_s`, or longer, for SWEEP_MIN_OPS."""
    return max(duration_s, SWEEP_MIN_OPS / rate)


@dataclass
class SweepResult:
    rows: list[dict] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def table(self) -> pd.DataFrame:
        """sweep.csv's rows."""
        frame = pd.DataFrame(self.rows)
        return frame.reindex(columns=list(COLUMNS)) if not frame.empty else frame


def run_sweep(
    options: Options, search: Search, progress: Progress, run_cell: CellRunner | None = None
) -> SweepResult:
    """Sweep each configuration × scenario of `options` (one repeat of its plan each) over the
    rates of `search`, into options.out; returns what finished. Each rate runs its
    options.repeats in a row (the next rate depends on them), each run with `run_cell`
    (by default run_fitted, the real run)."""
    run_cell = run_cell or run_fitted
    options.out.mkdir(parents=True, exist_ok=True)
    result = SweepResult()
    with ExitStack() as stack:
        addresses, caches = cache_servers(stack, options, result.skipped)
        lines = plan(replace(options, repeats=1), caches)
        per_line = len(search.rates) or 1 + search.doublings + search.bisections
        total = len(lines) * per_line * options.repeats
        count = 0
        try:
            for line in lines:
                tried: list[tuple[float, str]] = []
                while (rate := next_rate(tried, search)) is not None:
                    verdicts = []
                    for repeat in range(1, options.repeats + 1):
                        count += 1
                        variant = (*line.variant, ("rate", f"{rate:g}"))
                        run = Run(line.cache, line.scenario, repeat, count, total, variant)
                        row = sweep_run(run, rate, options, search, addresses, progress,
                                        result.failures, run_cell)  # fmt: skip
                        if row is None:  # failed: a failure, the search goes no higher
                            verdicts.append(FAIL)
                            break
                        result.rows.append(row)
                        verdicts.append(row["verdict"])
                    tried.append((rate, rate_verdict(verdicts)))
        except KeyboardInterrupt:
            result.interrupted = True
    return result


def sweep_run(
    run: Run,
    rate: float,
    options: Options,
    search: Search,
    addresses: Mapping[str, str],
    progress: Progress,
    failures: list[str],
    run_cell: CellRunner,
) -> dict | None:
    """One run of the sweep at `rate`: its sweep.csv row (its summary row, the line's own
    variant, its rate and verdict), or None if it failed."""
    at_rate = replace(options, arrival_rate=rate, duration_s=run_duration(rate, options.duration_s))
    row = attempt(run_cell, run, at_rate, addresses, progress, failures)
    if row is None:
        return None
    verdict, why = run_verdict({**row, "rate": rate}, search.slo_p99_ms)
    variant = ",".join(f"{n}={v}" for n, v in run.variant if n != "rate")
    return {**row, "variant": variant, "rate": rate, "verdict": verdict, "why": why}


def save_sweep(result: SweepResult, options: Options, search: Search, started: str) -> dict:
    """Write sweep.csv, metadata.json and the report into options.out; returns metadata."""
    metadata = save_metadata(
        options,
        started,
        interrupted=result.interrupted,
        skipped=result.skipped,
        failures=result.failures,
        runs=len(result.rows),
        sweep={**asdict(search), "rates": search.label, "min_ops": SWEEP_MIN_OPS},
    )
    table = result.table
    table.to_csv(options.out / "sweep.csv", index=False)
    write_sweep_report(options.out, table, metadata)
    return metadata
