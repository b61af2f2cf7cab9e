"""The figures of a run with a fault: its timeline, availability during and after the fault,
the time it took to recover, and the stale reads after it. Numbers only; the report words
them.

Times are `time.time_ns()` as in the history; a window is (start, end). An operation counts
where it completed, as in reports.figures; one still in flight when the window ends was cut
off by the stop of the load and is left out.
"""

import math

import numpy as np
import pandas as pd

from reports.checker import classify_reads
from reports.figures import Figures, window_mask

BUCKET_NS = 250_000_000  # the timeline's interval
SECOND_NS = 1_000_000_000
# Recovered: a second whose throughput is back to this share of the median second before.
RECOVERED = 0.9

Window = tuple[int, int]


def timeline(history: pd.DataFrame, window: Window, fault: Window) -> pd.DataFrame:
    """The measured `window` of `history` per BUCKET_NS interval, by completion.

    Columns: `t_s` (the interval's start, seconds into the window), `throughput_rps`,
    `errors` (status 0 or 5xx), `bypass_share` (of the answered GETs, those with
    `X-Cache: BYPASS`; NaN without any), `stale_reads` (judged against the whole history)
    and `in_fault` (the interval overlaps the `fault`'s window).
    """
    start, end = window
    edges = np.arange(start, end, BUCKET_NS)
    ops = history[window_mask(history, start, end)]
    # (edge, edge + BUCKET_NS]: the window's first completion counts in the first interval.
    bucket = (ops["t_complete_ns"].to_numpy() - start - 1) // BUCKET_NS
    status = ops["status"]
    gets = (ops["op"] == "get") & (status != 0)
    reads = classify_reads(history).reindex(ops.index)
    frame = pd.DataFrame(
        {
            "bucket": bucket,
            "ops": 1,
            "errors": ((status == 0) | (status >= 500)).to_numpy(),
            "gets": gets.to_numpy(),
            "bypass": (gets & (ops["cache"] == "BYPASS")).to_numpy(),
            "stale_reads": (reads["verdict"] == "stale").to_numpy(),
        }
    )
    sums = frame.groupby("bucket").sum().reindex(range(len(edges)), fill_value=0)
    lengths = np.minimum(edges + BUCKET_NS, end) - edges  # the last may be shorter
    with np.errstate(invalid="ignore", divide="ignore"):
        bypass = np.where(sums["gets"] > 0, sums["bypass"] / sums["gets"], np.nan)
    return pd.DataFrame(
        {
            "t_s": (edges - start) / 1e9,
            "throughput_rps": sums["ops"].to_numpy() / (lengths / 1e9),
            "errors": sums["errors"].to_numpy(),
            "bypass_share": bypass,
            "stale_reads": sums["stale_reads"].to_numpy(),
            "in_fault": (edges < fault[1]) & (edges + BUCKET_NS > fault[0]),
        }
    )


def fault_figures(history: pd.DataFrame, window: Window, fault: Window) -> Figures:
    """The figures of a `fault` in effect within the measured `window` of `history`.

    - `availability_during`: of the operations in flight during the fault (invoked before its
      end, completed after its start), the share answered: not 5xx, not status 0 (a timeout
      or a transport error); `availability_after`: the same of those invoked after it;
    - `baseline_rps`: the median throughput of the whole seconds of the window before the
      fault (None if it started less than a second into it);
    - `time_to_recover_s`: from the end of the fault to the first second (stepping by the
      timeline's interval) whose throughput is back to RECOVERED × baseline_rps; infinite
      if no second of the window after the fault is, None if it cannot be told (no
      baseline, or less than a second of the window after the fault);
    - `stale_reads_after`, `staleness_after_max_ms`: the stale reads invoked after the
      fault, and their largest staleness age (None without any).
    """
    start, end = window
    done = history[window_mask(history, start, end)]
    during = done[(done["t_invoke_ns"] < fault[1]) & (done["t_complete_ns"] > fault[0])]
    after = done[done["t_invoke_ns"] >= fault[1]]
    reads = classify_reads(history).reindex(after.index).dropna(subset=["verdict"])
    stale = reads[reads["verdict"] == "stale"]
    baseline = _baseline_rps(done["t_complete_ns"], start, fault[0])
    return {
        "availability_during": _availability(during["status"]),
        "availability_after": _availability(after["status"]),
        "baseline_rps": baseline,
        "time_to_recover_s": _time_to_recover(done["t_complete_ns"], fault[1], end, baseline),
        "stale_reads_after": len(stale),
        "staleness_after_max_ms": (
            float(stale["staleness_ns"].max()) / 1e6 if len(stale) else None
        ),
    }


def _availability(status: pd.Series) -> float | None:
    if not len(status):
        return None
    return float(((status != 0) & (status < 500)).mean())


def _completed(completions: pd.Series, start: int, end: int) -> int:
    """Completions in (start, end]."""
    return int(((completions > start) & (completions <= end)).sum())


def _baseline_rps(completions: pd.Series, window_start: int, fault_start: int) -> float | None:
    seconds = (fault_start - window_start) // SECOND_NS
    if seconds < 1:
        return None
    counts = [
        _completed(completions, fault_start - (k + 1) * SECOND_NS, fault_start - k * SECOND_NS)
        for k in range(seconds)
    ]
    return float(np.median(counts))


def _time_to_recover(
    completions: pd.Series, fault_end: int, window_end: int, baseline: float | None
) -> float | None:
    if baseline is None or fault_end + SECOND_NS > window_end:
        return None
    step = 0
    while fault_end + step + SECOND_NS <= window_end:
        second = fault_end + step
        if _completed(completions, second, second + SECOND_NS) >= RECOVERED * baseline:
            return step / 1e9
        step += BUCKET_NS
    return math.inf
