"""The bounds a run's figures must respect, computed beside the measurement.

Each bound follows from how the service and the load are built, so a figure on the wrong
side of one is a broken measurement (or a broken service), not a result:
- Little's law at the server: every GET that misses holds a worker slot for VIDEOS_WORK_MS,
  so misses per second <= workers x threads / work time. With no cache every GET misses and
  a saturated server should run at that bound.
- A miss cannot be faster than the work it does: GET MISS latency >= VIDEOS_WORK_MS.
- The response-time law at the client: N closed-loop users without think time complete
  N / mean response time operations per second, at most, exactly when the generator loses
  no time between a response and the next request; well below it, it does (its own
  overhead), and above it the measurement itself is broken.
- Without a cache nothing can be stale and nothing can hit.
- A cache of C entries hits at most the C likeliest keys' share of the reads (the top-C bound,
  reports/theory.py), when requests are independent draws of known popularity.
"""

import math
from dataclasses import dataclass

import pandas as pd

from reports.figures import window_mask

# How far a measurement may stray from a bound it should meet before it is flagged.
TOLERANCE = 0.10
# A hit rate above its top-C bound by more than this (a share of the reads) is flagged: a finite
# run's sampling and a capacity in bytes (Redis, memcached) that holds a few entries more.
HIT_RATE_TOLERANCE = 0.05


@dataclass(frozen=True)
class RunShape:
    """What the bounds depend on: how the service was served and loaded (None: unknown, as
    for a server the runner did not start, whose bounds are then not computed)."""

    cache: str
    users: int | None  # None: an open loop, whose users send nothing
    workers: int | None = None
    threads: int | None = None
    work_ms: int | None = None


def run_bounds(
    history: pd.DataFrame, window: tuple[int, int], shape: RunShape, figures: dict
) -> dict:
    """Measured figures and their bounds for one run, plus `bound_flags` naming violations.

    `figures` are the checker's for the same window (throughput, hit and stale rates).
    """
    start, end = window
    in_window = history[window_mask(history, start, end)]
    seconds = (end - start) / 1e9
    gets = in_window[in_window["op"] == "get"]
    misses = gets[gets["cache"] == "MISS"]
    latency_s = (in_window["t_complete_ns"] - in_window["t_invoke_ns"]) / 1e9
    known = None not in (shape.workers, shape.threads, shape.work_ms)
    slots = shape.workers * shape.threads if known else 0
    bounds = {
        "miss_rps": len(misses) / seconds if seconds > 0 else float("nan"),
        "miss_rps_bound": (
            float("nan") if not known
            else slots / (shape.work_ms / 1000) if shape.work_ms else float("inf")
        ),
        "get_miss_min_ms": float(
            ((misses["t_complete_ns"] - misses["t_invoke_ns"]) / 1e6).min()
        ) if len(misses) else float("nan"),
        "get_miss_min_ms_bound": float(shape.work_ms) if known else float("nan"),
        "throughput_law_rps": (
            shape.users / latency_s.mean()
            if shape.users and len(latency_s) and latency_s.mean() > 0 else float("nan")
        ),
    }  # fmt: skip
    bounds["bound_flags"] = "; ".join(bound_flags({**figures, **bounds}, shape.cache))
    return bounds


def bound_flags(figures: dict, cache: str) -> list[str]:
    """What in `figures` (a run's, or a cell's aggregate) breaks the bound it should meet.

    A figure that could not be measured (None or NaN: no miss, no operation) breaks nothing,
    and neither does an infinite bound (no work: Little's law sets no limit).
    """
    value = {k: v for k, v in figures.items() if isinstance(v, int | float) and math.isfinite(v)}
    flags = []
    miss_rps, miss_bound = value.get("miss_rps"), value.get("miss_rps_bound")
    if miss_rps is not None and miss_bound is not None:
        if miss_rps > miss_bound * (1 + TOLERANCE):
            flags.append(f"misses/s {miss_rps:.1f} above Little's-law bound {miss_bound:.1f}")
        if cache == "none" and miss_rps < miss_bound * (1 - TOLERANCE):
            flags.append(f"misses/s {miss_rps:.1f} more than 10% below the bound {miss_bound:.1f}")
    fastest, work_ms = value.get("get_miss_min_ms"), value.get("get_miss_min_ms_bound")
    if fastest is not None and work_ms is not None and fastest < work_ms:
        flags.append(f"a MISS took {fastest:.1f} ms < work {work_ms:.0f} ms")
    law, throughput = value.get("throughput_law_rps"), value.get("throughput_rps")
    if law is not None and throughput is not None:
        if throughput > law * (1 + TOLERANCE):
            flags.append(f"throughput {throughput:.0f}/s above users/latency {law:.0f}/s")
        if throughput < law * (1 - TOLERANCE):
            flags.append(
                f"throughput {throughput:.0f}/s more than 10% below users/latency {law:.0f}/s: "
                "the load generator loses time between requests"
            )
    hit_rate, top_c = value.get("hit_rate"), value.get("hit_rate_top_c")
    if hit_rate is not None and top_c is not None and hit_rate > top_c + HIT_RATE_TOLERANCE:
        flags.append(f"hit rate {hit_rate:.1%} above the top-C bound {top_c:.1%}")
    if cache == "none" and (value.get("stale_reads") or value.get("hit_rate")):
        flags.append("stale reads or hits without a cache")
    return flags
