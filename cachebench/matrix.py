"""The matrix runner: every cache configuration × scenario × repeat, each on a fresh store,
an empty cache and its own gunicorn, with Locust as a separate process; then checked.

Whatever happens (Ctrl-C, a failed run), everything started is stopped and the runs that
finished are kept.
"""

import json
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from functools import partial

import pandas as pd

from cachebench.affinity import available_cpus, cpu_columns, more_processes, pinned
from cachebench.faults import not_applicable
from cachebench.metadata import collect
from cachebench.netns import NetworkError
from cachebench.one_run import EXTERNAL, Progress, run_one, saturated
from cachebench.plan import STORE, Options, Run, layout_of, plan, run_cpu_sets, run_fault
from cachebench.processes import ServerError
from cachebench.servers import ServerUnavailable, needed, server_address
from cachebench.strategies import not_applicable as strategy_not_applicable
from cachebench.topology import HOSTS, Hosts, built
from reports.cells import configurations
from reports.history import HistoryError
from reports.redact import redact
from reports.report import write_report
from reports.stats import UNSTABLE_CV, estimate


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
