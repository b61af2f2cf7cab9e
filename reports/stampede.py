"""The stampede figures of a run's hottest key, from what the clients saw (X-Cache): how many
GETs missed it each time it was refilled, and what the GETs waited meanwhile.

A **refill** starts with a GET that misses the key (after an expiry or an invalidation) and
lasts until that GET is answered, by which time its view has run and its fill is stored:
the MISS answers of GETs sent meanwhile are the refill's too. Without protection every GET
sent while the view runs misses (a stampede); with one filler per key (CACHE_FILL=lock) the
others wait and then hit, and with early recomputation (xfetch) one GET refreshes the entry
while the others still hit the old one. The order the GETs were sent in decides, not the
order of their answers: GETs sent as the entry expires reach the cache in no fixed order,
some before the expiry (HIT), some after (MISS).
"""

import numpy as np
import pandas as pd

from reports.figures import Figures, window_mask

NAMES = (
    "hot_key", "hot_key_gets", "refills", "misses_per_refill", "hot_get_p99_ms",
    "refill_get_p99_ms",
)  # fmt: skip


def refills(gets: pd.DataFrame) -> pd.DataFrame:
    """The refills of one key, from its answered GETs (`cache`, `t_invoke_ns`,
    `t_complete_ns`): one row each, `start_ns` (its first MISS sent), `end_ns` (its last
    MISS answered) and `misses`."""
    misses = gets[gets["cache"] == "MISS"].sort_values("t_invoke_ns", kind="stable")
    rows: list[list[int]] = []
    filled_ns = None  # when the current refill's first GET was answered, its fill stored
    for sent, answered in zip(misses["t_invoke_ns"], misses["t_complete_ns"], strict=True):
        if filled_ns is not None and sent < filled_ns:
            rows[-1][1] = max(rows[-1][1], int(answered))
            rows[-1][2] += 1
        else:
            rows.append([int(sent), int(answered), 1])
            filled_ns = answered
    return pd.DataFrame(rows, columns=["start_ns", "end_ns", "misses"], dtype="int64")


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
