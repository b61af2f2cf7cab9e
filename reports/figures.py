"""The figures of one run, computed from its history: plain numbers, worded separately.

Counts, throughput, hit rate and latency cover the operations invoked in a measurement
window, which excludes a warm-up; staleness is judged against the whole history (a read in
the window may return a value written during the warm-up) and counted for the window's
reads.
"""

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from reports.checker import classify_final_reads, classify_reads
from reports.history import HistoryError, read_final_reads, read_history, run_window
from reports.history_format import RUN_FILE

# Latency figures: f"{group}_{percentile}_ms" for each group of operations (see figures()).
PERCENTILES = {"p50": 50, "p95": 95, "p99": 99, "max": 100}

Figures = dict[str, int | float | None]


def figures(
    history: pd.DataFrame,
    final_reads: pd.DataFrame | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    unsent_arrivals: int = 0,
    clock_skew_ms: float = 0.0,
) -> Figures:
    """The figures of a run (see the README, "Checking a history", for each one).

    `history` as read_history returns it; `final_reads` as read_final_reads does (None: the
    run made none, and the lost-write figures are None). The window is `window_mask`'s;
    either bound may be left open. `clock_skew_ms` bounds how far apart the clocks of the
    history's processes may be (reports/checker.py), and is a figure itself.
    `unsent_arrivals`: an open loop's arrivals that were never sent (see unsent_arrivals),
    offered in the window but in no history. A figure that
    has nothing to be computed from (a rate without operations, a percentile without
    samples) is None.
    """
    skew_ns = round(clock_skew_ms * 1e6)
    in_window = window_mask(history, start_ns, end_ns)
    ops = history[in_window]
    reads = classify_reads(history, skew_ns)
    reads = reads[in_window[reads.index]]
    verdicts = reads["verdict"].value_counts()

    # Throughput's denominator: the window, from its start (else the first invocation in it)
    # to its end (else the last completion in it).
    duration_ns = offered = None
    if len(ops):
        start = start_ns if start_ns is not None else ops["t_invoke_ns"].min()
        end = end_ns if end_ns is not None else ops["t_complete_ns"].max()
        duration_ns = int(end - start)
        # Offered when it was due, answered or not: an open loop's arrival, or any operation
        # of a closed loop (due when it was sent).
        intended = history["t_intended_ns"]
        offered = int(((intended >= start) & (intended <= end)).sum()) + unsent_arrivals

    status = ops["status"]
    answered = ops[status != 0]
    answered_gets = answered[answered["op"] == "get"]
    judged = len(reads) - int(verdicts["unjudged"])
    staleness_ms = reads["staleness_ns"].dropna().to_numpy(np.int64) / 1e6

    result: Figures = {
        "ops": len(ops),
        "reads": int((ops["op"] == "get").sum()),
        "writes": int(ops["op"].isin(("put", "delete")).sum()),
        "errors": int(((status == 0) | (status >= 500)).sum()),
        "duration_s": duration_ns / 1e9 if duration_ns else None,
        "throughput_rps": len(ops) / (duration_ns / 1e9) if duration_ns else None,
        "offered_rps": offered / (duration_ns / 1e9) if duration_ns else None,
        "send_lag_p99_ms": _percentile(
            (ops["t_invoke_ns"] - ops["t_intended_ns"]).to_numpy() / 1e6, 99
        ),
        "hit_rate": _hit_rate(answered_gets["cache"]),
        "judged_reads": judged,
        "stale_reads": int(verdicts["stale"]),
        "stale_rate": _share(verdicts["stale"], judged),
        "staleness_median_ms": float(np.median(staleness_ms)) if len(staleness_ms) else None,
        "staleness_max_ms": float(staleness_ms.max()) if len(staleness_ms) else None,
        "phantoms": int(verdicts["phantom"]),
        "future_reads": int(verdicts["future"]),
        "earlier_run_reads": int(reads["earlier_run"].sum()),
        "clock_skew_ms": clock_skew_ms,
        **_lost_writes(history, final_reads, skew_ns),
    }
    latency_ms = (answered["t_complete_ns"] - answered["t_invoke_ns"]) / 1e6
    # From when it was due: what the user of an open loop waits, the send lag included.
    corrected_ms = (answered["t_complete_ns"] - answered["t_intended_ns"]) / 1e6
    is_get = answered["op"] == "get"
    groups = {
        "all": np.ones(len(answered), dtype=bool),
        "get": is_get,  # a latency objective's: what a reader waits, hit or miss
        "get_hit": is_get & (answered["cache"] == "HIT"),
        "get_miss": is_get & (answered["cache"] == "MISS"),
        "put": answered["op"] == "put",
    }
    for group, members in groups.items():
        result.update(_percentiles(group, latency_ms[members].to_numpy()))
        result.update(_percentiles(f"{group}_corrected", corrected_ms[members].to_numpy()))
    return result


def window_mask(history: pd.DataFrame, start_ns: int | None, end_ns: int | None) -> pd.Series:
    """The operations of a measurement window: those that completed after `start_ns` and by
    `end_ns`.

    Counting completions measures a closed loop's throughput without bias: an operation
    that straddles the start counts once, where it completed, instead of being lost to both
    sides. One still in flight at the end was cut off by the stop of the load, not failed by
    the service (the history gives it the time it was cut off): it is left out, not counted
    as an error.
    """
    completed = history["t_complete_ns"]
    in_window = pd.Series(True, index=history.index)
    if start_ns is not None:
        in_window &= completed > start_ns
    if end_ns is not None:
        in_window &= completed <= end_ns
    return in_window


def check(directory: Path, *, warmup_s: float = 0.0, clock_skew_ms: float = 0.0) -> Figures:
    """The figures of the run in `directory`, its first `warmup_s` seconds left out, its
    processes' clocks up to `clock_skew_ms` apart.

    With the run's RUN_FILE, the window is its measured load (run_window): the warm-up counts
    from the end of seeding, and the window ends when the load was stopped. Without it, the
    warm-up counts from the first operation of the history. Raises HistoryError for a
    directory without a readable, non-empty history.
    """
    history = read_history(directory)
    if history.empty:
        raise HistoryError(f"{directory}: the history has no operations")
    unsent = 0
    if (Path(directory) / RUN_FILE).exists():
        start_ns, end_ns = run_window(directory, warmup_s)
        unsent = unsent_arrivals(json.loads((Path(directory) / RUN_FILE).read_text()))
    else:
        start_ns, end_ns = int(history["t_invoke_ns"].iloc[0]) + round(warmup_s * 1e9), None
    final_reads = read_final_reads(directory)
    return figures(
        history,
        final_reads,
        start_ns=start_ns,
        end_ns=end_ns,
        unsent_arrivals=unsent,
        clock_skew_ms=clock_skew_ms,
    )


def unsent_arrivals(run: Mapping[str, object]) -> int:
    """An open loop's arrivals that were due but never got a slot before the load stopped,
    from its RUN_FILE (`run`); 0 for a closed loop.

    They are the latest arrivals (the earlier ones took the slots), and counted as offered
    in a window that reaches the stop of the load.
    """
    scheduled, sent = run.get("arrivals_scheduled"), run.get("arrivals_sent")
    if type(scheduled) is int and type(sent) is int:
        return max(scheduled - sent, 0)
    return 0


def format_figures(result: Figures) -> str:
    """`result` as a two-column table, each figure with its unit."""
    width = max(map(len, result))
    return "\n".join(f"{name:<{width}}  {_format(name, value)}" for name, value in result.items())


def _format(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name.endswith("_rate"):
        return f"{value * 100:.3g} %"  # significant digits: a tiny stale rate must not read 0
    if name.endswith("_ms"):
        return f"{value:,.3f} ms"
    if name.endswith("_s"):
        return f"{value:,.3f} s"
    if name.endswith("_rps"):
        return f"{value:,.1f} /s"
    return f"{value:,}"


def _lost_writes(history: pd.DataFrame, final_reads: pd.DataFrame | None, skew_ns: int) -> Figures:
    if final_reads is None:
        return {"final_reads": None, "lost_writes": None}
    verdicts = classify_final_reads(history, final_reads, skew_ns)["verdict"].value_counts()
    return {
        "final_reads": len(final_reads) - int(verdicts["unjudged"]),
        "lost_writes": int(verdicts["lost"] + verdicts["phantom"]),
    }


def _percentile(values: np.ndarray, percentile: float) -> float | None:
    return float(np.percentile(values, percentile)) if len(values) else None


def _percentiles(group: str, latency_ms: np.ndarray) -> Figures:
    names = [f"{group}_{name}_ms" for name in PERCENTILES]
    if not len(latency_ms):
        return dict.fromkeys(names)
    values = np.percentile(latency_ms, list(PERCENTILES.values()))
    return {name: float(value) for name, value in zip(names, values, strict=True)}


def _hit_rate(cache: pd.Series) -> float | None:
    """The share of HIT among the answered GETs' X-Cache headers; unknown (None) when the
    server sent none, which is not a hit rate of 0."""
    if not (cache != "").any():
        return None
    return _share((cache == "HIT").sum(), len(cache))


def _share(part: float, whole: int) -> float | None:
    return float(part) / whole if whole else None
