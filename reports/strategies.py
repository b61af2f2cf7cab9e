"""The invalidation and fill strategies side by side (summary.csv's `invalidation` and `fill`
columns): each one's price beside what it buys, and the race-window sweep, stale reads
against the work time. Numbers only; report.py words them.
"""

import math
from collections.abc import Sequence

import pandas as pd

from reports.cells import cells, configurations

DIMENSIONS = ("invalidation", "fill")
# Figures of a run that the strategies' table carries, each a median over the repeats, when
# summary.csv has them: the stampede's (reports/stampede.py) and t-visibility's.
MEDIANS = ("refill_get_p99_ms", "visibility_1pct_ms", "visibility_01pct_ms")


def has_strategies(summary: pd.DataFrame) -> bool:
    return not summary.empty and any(d in summary for d in DIMENSIONS)


def _quotable(summary: pd.DataFrame) -> pd.DataFrame:
    named = configurations(summary)
    return named[named["invalid"] == ""]


def strategy_cells(summary: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """cells() of a matrix with strategies (the caches in `order`, as cells() has them), each
    row with its `invalidation`, `fill` and `work_ms` ("" where the run had none),
    `extra_store_reads`, `misses_per_refill` (MISS answers over refills, pooled over the
    repeats) and the MEDIANS it has."""
    if not has_strategies(summary):
        return pd.DataFrame()
    table = cells(summary, order)
    if table.empty:
        return table
    quotable = _quotable(summary)
    extra = []
    for (scenario, cache), runs in quotable.groupby(["scenario", "cache"], sort=False):
        row = {"scenario": scenario, "cache": cache}
        for column in (*DIMENSIONS, "work_ms"):
            value = runs[column].iloc[0] if column in runs else ""
            row[column] = "" if pd.isna(value) else value
        row["extra_store_reads"] = runs.get("extra_store_reads", pd.Series([math.nan])).iloc[0]
        if "refills" in runs:
            refills = runs["refills"].sum()
            misses = (runs["misses_per_refill"] * runs["refills"]).sum()
            row["misses_per_refill"] = misses / refills if refills else math.nan
        for column in MEDIANS:
            if column in runs:
                row[column] = runs[column].median()
        extra.append(row)
    return table.merge(pd.DataFrame(extra), on=["scenario", "cache"], how="left")


def dose_response(summary: pd.DataFrame) -> pd.DataFrame:
    """The stale-read rate of each invalidation against the work time: one row per scenario,
    `line` (the backend, the invalidation and any fill) and `work_ms`, with `stale_rate`
    pooled over the repeats, `stale_reads`, `judged_reads` and `runs`. Empty unless the runs
    had an invalidation and more than one work time."""
    if "invalidation" not in summary or summary.empty:
        return pd.DataFrame()
    runs = _quotable(summary)
    runs = runs[runs["invalidation"].notna() & (runs["invalidation"] != "")]
    if runs["work_ms"].nunique() < 2:
        return pd.DataFrame()
    line = runs["backend"] + " " + runs["invalidation"]
    if "fill" in runs:
        line = line + runs["fill"].fillna("").map(lambda f: f" + {f}" if f else "")
    grouped = runs.assign(line=line).groupby(["scenario", "line", "work_ms"], sort=False)
    table = grouped.agg(
        stale_reads=("stale_reads", "sum"),
        judged_reads=("judged_reads", "sum"),
        runs=("repeat", "size"),
    ).reset_index()
    table["stale_rate"] = table["stale_reads"] / table["judged_reads"].where(
        table["judged_reads"] > 0
    )
    # The lines in the matrix's order (its --invalidations), each by work time.
    first = {line: i for i, line in enumerate(dict.fromkeys(table["line"]))}
    return table.sort_values(
        ["scenario", "line", "work_ms"],
        key=lambda s: s.map(first) if s.name == "line" else s,
        kind="stable",
    ).reset_index(drop=True)
