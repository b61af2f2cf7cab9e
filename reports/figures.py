"""The figures of one run, computed from its history: plain numbers, worded separately.

Counts, throughput, hit rate and latency cover the operations invoked in a measurement
window, which excludes a warm-up; staleness is judged against the whole history (a read in
the window may return a value written during the warm-up) and counted for the window's
reads.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from reports.checker import FINAL_VERDICTS, VERDICTS, Judge
from reports.history import HistoryError, read_final_reads, read_history, run_window
from reports.history_format import RUN_FILE
from reports.visibility import curve, visibility_figures

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
    """figures_and_visibility's figures, without the curve."""
    return figures_and_visibility(
        history,
        final_reads,
        start_ns=start_ns,
        end_ns=end_ns,
        unsent_arrivals=unsent_arrivals,
        clock_skew_ms=clock_skew_ms,
    )[0]


def figures_and_visibility(
    history: pd.DataFrame,
    final_reads: pd.DataFrame | None = None,
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    unsent_arrivals: int = 0,
    clock_skew_ms: float = 0.0,
) -> tuple[Figures, pd.DataFrame]:
    """The figures of a run, and its t-visibility curve (reports.visibility), from one
    judgement of its reads (see the README, "Checking a history", for each one).

    `history` as read_history returns it; `final_reads` as read_final_reads does (None: the
    run made none, and the lost-write figures are None). The window is `window_mask`'s;
    either bound may be left open. `clock_skew_ms` bounds how far apart the clocks of the
    history's processes may be (reports/checker.py), and is a figure itself.
    `unsent_arrivals`: an open loop's arrivals that were never sent (see unsent_arrivals),
    offered in the window but in no history. A figure that
    has nothing to be computed from (a rate without operations, a percentile without
    samples) is None.
    """
    # Every subset is a boolean mask over the history's columns as arrays: a history of ten
    # million operations is never copied whole.
    skew_ns = round(clock_skew_ms * 1e6)
    in_window = window_mask(history, start_ns, end_ns).to_numpy()
    judge = Judge(history, skew_ns)
    judged = judge.reads()
    read_in_window = in_window[judged.positions]
    verdicts = _counts(judged.verdict[read_in_window], VERDICTS)
    t_invoke = history["t_invoke_ns"].to_numpy()
    t_complete = history["t_complete_ns"].to_numpy()
    t_intended = history["t_intended_ns"].to_numpy()
    n_ops = int(in_window.sum())

    # Throughput's denominator: the window, from its start (else the first invocation in it)
    # to its end (else the last completion in it).
    duration_ns = offered = None
    if n_ops:
        start = start_ns if start_ns is not None else t_invoke[in_window].min()
        end = end_ns if end_ns is not None else t_complete[in_window].max()
        duration_ns = int(end - start)
        # Offered when it was due, answered or not: an open loop's arrival, or any operation
        # of a closed loop (due when it was sent).
        offered = int(((t_intended >= start) & (t_intended <= end)).sum()) + unsent_arrivals

    status = history["status"].to_numpy()
    op = history["op"]
    is_get = judge.is_get
    answered = in_window & (status != 0)
    n_reads = int(read_in_window.sum())
    judged_reads = n_reads - int(verdicts["unjudged"])
    stale = read_in_window & (judged.verdict == VERDICTS.index("stale"))
    staleness_ms = judged.staleness_ns[stale] / 1e6
    cache = history["cache"]
    send_lag_ms = (t_invoke - t_intended)[in_window] / 1e6
    # A closed loop sends each operation when it is due: no lag, and latencies from when it
    # was due are those from when it was sent, not computed twice.
    sent_when_due = not send_lag_ms.any()

    visibility = curve(judge, judged, read_in_window)
    result: Figures = {
        "ops": n_ops,
        "reads": n_reads,
        "writes": int((in_window & ~is_get).sum()),
        "errors": int((in_window & ((status == 0) | (status >= 500))).sum()),
        "duration_s": duration_ns / 1e9 if duration_ns else None,
        "throughput_rps": n_ops / (duration_ns / 1e9) if duration_ns else None,
        "offered_rps": offered / (duration_ns / 1e9) if duration_ns else None,
        "send_lag_p99_ms": _percentiles(send_lag_ms, [99])[0],
        "hit_rate": _hit_rate(cache, answered & is_get),
        "judged_reads": judged_reads,
        "stale_reads": int(verdicts["stale"]),
        "stale_rate": _share(verdicts["stale"], judged_reads),
        "staleness_median_ms": float(np.median(staleness_ms)) if len(staleness_ms) else None,
        "staleness_max_ms": float(staleness_ms.max()) if len(staleness_ms) else None,
        **visibility_figures(visibility),
        "phantoms": int(verdicts["phantom"]),
        "future_reads": int(verdicts["future"]),
        "earlier_run_reads": int(judged.earlier_run[read_in_window].sum()),
        "clock_skew_ms": clock_skew_ms,
        **_lost_writes(judge, final_reads),
    }
    latency_ms = (t_complete[answered] - t_invoke[answered]) / 1e6
    # From when it was due: what the user of an open loop waits, the send lag included.
    corrected_ms = latency_ms if sent_when_due else (t_complete - t_intended)[answered] / 1e6
    is_get = is_get[answered]
    groups = {
        "all": np.ones(len(latency_ms), dtype=bool),
        "get": is_get,  # a latency objective's: what a reader waits, hit or miss
        "get_hit": is_get & (cache == "HIT").to_numpy(bool)[answered],
        "get_miss": is_get & (cache == "MISS").to_numpy(bool)[answered],
        "put": (op == "put").to_numpy(bool)[answered],
    }
    for group, members in groups.items():
        latency = _percentiles(latency_ms[members])
        corrected = latency if sent_when_due else _percentiles(corrected_ms[members])
        for name, values in ((group, latency), (f"{group}_corrected", corrected)):
            result.update(
                {f"{name}_{p}_ms": value for p, value in zip(PERCENTILES, values, strict=True)}
            )
    return result, visibility


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


def _lost_writes(judge: Judge, final_reads: pd.DataFrame | None) -> Figures:
    if final_reads is None:
        return {"final_reads": None, "lost_writes": None}
    verdicts = _counts(judge.final_reads(final_reads), FINAL_VERDICTS)
    return {
        "final_reads": len(final_reads) - int(verdicts["unjudged"]),
        "lost_writes": int(verdicts["lost"] + verdicts["phantom"]),
    }


def _counts(codes: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    """How many of `codes` are each of `names` (codes index it)."""
    return dict(zip(names, np.bincount(codes, minlength=len(names)).tolist(), strict=True))


def _percentiles(
    samples: np.ndarray, percentiles: Sequence[float] = tuple(PERCENTILES.values())
) -> list[float | None]:
    """The `percentiles` of `samples`, each None without samples. `samples` is reordered: it
    is the caller's copy, partitioned in place instead of copied once more."""
    if not len(samples):
        return [None] * len(percentiles)
    return np.percentile(samples, percentiles, overwrite_input=True).tolist()


def _hit_rate(cache: pd.Series, answered_gets: np.ndarray) -> float | None:
    """The share of HIT among the answered GETs' X-Cache headers (`cache` where
    `answered_gets`); unknown (None) when the server sent none, which is not a hit rate of 0."""
    if not (cache != "").to_numpy(bool)[answered_gets].any():
        return None
    return _share((cache == "HIT").to_numpy(bool)[answered_gets].sum(), int(answered_gets.sum()))


def _share(part: float, whole: int) -> float | None:
    return float(part) / whole if whole else None
