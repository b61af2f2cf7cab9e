"""The stampede figures of a run's hottest key, from what the clients saw (X-Cache): how many
GETs missed it each time it was refilled, and what the GETs waited meanwhile.

A **refill** is a run of consecutive MISS answers of the key, in the order the GETs were
sent: from an expiry or an invalidation to the GET that finds the key filled again. Without
protection every GET sent while the view runs misses (a stampede); with one filler per key
(CACHE_FILL=lock) the others wait and then hit, and with early recomputation (xfetch) one
GET refreshes the entry while the others still hit the old one.
"""

import numpy as np
import pandas as pd

from reports.figures import Figures, window_mask

NAMES = (
    "hot_key", "hot_key_gets", "refills", "misses_per_refill", "hot_get_p99_ms",
    "refill_get_p99_ms",
)  # fmt: skip


def refills(gets: pd.DataFrame) -> pd.DataFrame:
    """The refills of one key, from its answered GETs (`op`, `cache`, `t_invoke_ns`,
    `t_complete_ns`): one row each, `start_ns` (its first MISS sent), `end_ns` (its last
    MISS answered) and `misses`."""
    ordered = gets.sort_values("t_invoke_ns", kind="stable")
    miss = (ordered["cache"] == "MISS").to_numpy()
    first = miss & ~np.concatenate(([False], miss[:-1]))
    episode = np.cumsum(first)[miss]
    misses = ordered[miss]
    grouped = misses.groupby(episode)
    return pd.DataFrame({
        "start_ns": grouped["t_invoke_ns"].min().to_numpy(),
        "end_ns": grouped["t_complete_ns"].max().to_numpy(),
        "misses": grouped.size().to_numpy(),
    })  # fmt: skip


def during_refills(gets: pd.DataFrame, episodes: pd.DataFrame) -> pd.Series:
    """Which of `gets` were in flight during one of the `episodes` (refills' rows)."""
    if episodes.empty:
        return pd.Series(False, index=gets.index)
    starts = episodes["start_ns"].to_numpy()
    # The latest end among the refills started so far: a refill may outlast the next's start.
    ends = np.maximum.accumulate(episodes["end_ns"].to_numpy())
    latest = np.searchsorted(starts, gets["t_complete_ns"].to_numpy(), side="right") - 1
    overlaps = (latest >= 0) & (ends[np.maximum(latest, 0)] >= gets["t_invoke_ns"].to_numpy())
    return pd.Series(overlaps, index=gets.index)


def hot_key_figures(history: pd.DataFrame, start_ns: int, end_ns: int) -> Figures:
    """The figures of the most read key among the GETs answered with HIT or MISS in the
    window (window_mask's): `hot_key`, `hot_key_gets`, `refills`, `misses_per_refill` (the
    MISS answers over the refills), `hot_get_p99_ms` (every GET of it) and
    `refill_get_p99_ms` (those in flight during a refill). None where nothing is to count."""
    ops = history[window_mask(history, start_ns, end_ns)]
    gets = ops[(ops["op"] == "get") & (ops["status"] != 0) & ops["cache"].isin(("HIT", "MISS"))]
    if gets.empty:
        return dict.fromkeys(NAMES)
    key = int(gets["key"].value_counts().idxmax())
    hot = gets[gets["key"] == key]
    episodes = refills(hot)
    latency_ms = ((hot["t_complete_ns"] - hot["t_invoke_ns"]) / 1e6).to_numpy()
    around = latency_ms[during_refills(hot, episodes).to_numpy()]
    return {
        "hot_key": key,
        "hot_key_gets": len(hot),
        "refills": len(episodes),
        "misses_per_refill": float(episodes["misses"].mean()) if len(episodes) else None,
        "hot_get_p99_ms": float(np.percentile(latency_ms, 99)),
        "refill_get_p99_ms": float(np.percentile(around, 99)) if len(around) else None,
    }
