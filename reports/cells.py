"""A comparison's cells: one row per scenario × configuration (a cache backend and its variant),
aggregated over its quotable repeats.

Numbers only; report.py words and lays them out.
"""

import math
from collections.abc import Sequence

import pandas as pd

from reports.bounds import bound_flags
from reports.figures import PERCENTILES
from reports.stats import estimate

# A cell's capacity and the theory's hit rates at it (summary.csv has them with a capacity;
# NaN for a cache without one, such as none).
CAPACITY_COLUMNS = (
    "keys", "capacity_entries", "capacity_share", "eviction_policy", "hit_rate_che",
    "hit_rate_top_c",
)  # fmt: skip
# The latency groups of figures() a cell keeps: the report's tables and its chart.
LATENCY_GROUPS = ("get_hit", "get_miss", "put", "all")


def configurations(summary: pd.DataFrame) -> pd.DataFrame:
    """`summary` with `backend`, the cache backend, and `cache` naming the configuration: the
    backend, with its `variant` in brackets when the matrix had other dimensions (a fault, a
    strategy; `variant` in summary.csv, as `name=value,...`)."""
    if summary.empty:
        return summary
    variant = summary.get("variant", pd.Series("", index=summary.index)).fillna("")
    label = summary["cache"].where(variant == "", summary["cache"] + " [" + variant + "]")
    return summary.assign(backend=summary["cache"], cache=label)


def cache_order(table: pd.DataFrame, listed: Sequence[str] = ()) -> list[str]:
    """The configurations of `table`: by their backend in the order the run listed them (its
    --caches), then any other (`external`); within a backend, in the table's order, which is
    the matrix's."""
    backends = table["backend"] if "backend" in table else table["cache"]
    rank = {b: i for i, b in enumerate(dict.fromkeys([*listed, *backends]))}
    pairs = dict.fromkeys(zip(table["cache"], backends, strict=True))
    return [cache for cache, backend in sorted(pairs, key=lambda pair: rank[pair[1]])]


def cells(summary: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per scenario × cache over its quotable repeats: the figures of the report,
    the caches in `order` (by default the summary's)."""
    if summary.empty:
        return pd.DataFrame()
    summary = configurations(summary)
    quotable = summary[summary["invalid"] == ""]
    rows = []
    for (scenario, cache), runs in quotable.groupby(["scenario", "cache"], sort=False):
        backend = runs["backend"].iloc[0]
        throughput = estimate(runs["throughput_rps"])
        judged = runs["judged_reads"].sum()
        row = {
            "scenario": scenario,
            "cache": cache,
            "backend": backend,
            "repeats": len(runs),
            "throughput": throughput,
            "throughput_runs": list(runs["throughput_rps"]),
            "hit_rate": runs["hit_rate"].median(),
            # Pooled over the repeats, like the count beside it.
            "stale_rate": runs["stale_reads"].sum() / judged if judged else math.nan,
            "stale_reads": int(runs["stale_reads"].sum()),
            "staleness_median_ms": runs["staleness_median_ms"].median(),
            "staleness_max_ms": runs["staleness_max_ms"].max(),
            "errors": int(runs["errors"].sum()),
            "phantoms": int(runs["phantoms"].sum()),
            "lost_writes": runs["lost_writes"].sum(min_count=1),
            "miss_rps": runs["miss_rps"].median(),
            "miss_rps_bound": runs["miss_rps_bound"].iloc[0],
            "get_miss_min_ms": runs["get_miss_min_ms"].min(),
            "get_miss_min_ms_bound": runs["get_miss_min_ms_bound"].iloc[0],
            # A mean, as throughput's is: the law bounds each run's throughput.
            "throughput_law_rps": runs["throughput_law_rps"].mean(),
        }
        if "hit_rate_top_c" in runs:  # a matrix with capacities: its hit-rate curve
            row.update({c: runs[c].iloc[0] for c in CAPACITY_COLUMNS})
            row["write_share"] = runs["writes"].sum() / runs["ops"].sum()
        for group in LATENCY_GROUPS:
            for p in PERCENTILES:
                column = f"{group}_{p}_ms"
                aggregate = runs[column].max() if p == "max" else runs[column].median()
                row[column] = aggregate
        row["bound_flags"] = "; ".join(
            bound_flags({**row, "throughput_rps": throughput.mean}, backend)
        )
        rows.append(row)
    return _in_order(pd.DataFrame(rows), summary, order)


def fault_cells(summary: pd.DataFrame, order: Sequence[str] = ()) -> pd.DataFrame:
    """One row per scenario × configuration with a fault (summary.csv's `fault` column, not
    `none`), over its quotable repeats: the figures of reports.timeline, each the worst of
    the repeats, and each repeat's timeline file and fault window; the caches in `order`
    as cells() has them."""
    if summary.empty or "fault" not in summary:
        return pd.DataFrame()
    summary = configurations(summary)
    faulted = summary[(summary["fault"] != "none") & (summary["invalid"] == "")]
    rows = []
    for (scenario, cache), runs in faulted.groupby(["scenario", "cache"], sort=False):
        recovery = runs["time_to_recover_s"]
        rows.append({
            "scenario": scenario,
            "cache": cache,
            "backend": runs["backend"].iloc[0],
            "fault": runs["fault"].iloc[0],
            "repeats": len(runs),
            "fault_start_s": runs["fault_start_s"].median(),
            "fault_end_s": runs["fault_end_s"].median(),
            "availability_during": runs["availability_during"].min(),
            "availability_after": runs["availability_after"].min(),
            # Runs whose throughput was not back within the window (an infinite time).
            "not_recovered": int((recovery == math.inf).sum()),
            "time_to_recover_s": recovery.max(),
            "stale_reads_after": int(runs["stale_reads_after"].sum()),
            "staleness_after_max_ms": runs["staleness_after_max_ms"].max(),
            "lost_writes": runs["lost_writes"].sum(min_count=1),
            "runs": runs[["repeat", "timeline", "fault_start_s", "fault_end_s"]].to_dict("records"),
        })  # fmt: skip
    return _in_order(pd.DataFrame(rows), summary, order)


def _in_order(table: pd.DataFrame, summary: pd.DataFrame, order: Sequence[str]) -> pd.DataFrame:
    """`table`'s cells by scenario, then configuration as cache_order ranks `summary`'s."""
    if table.empty:
        return table
    rank = {c: i for i, c in enumerate(cache_order(summary, order))}
    return table.sort_values(
        ["scenario", "cache"], key=lambda s: s.map(rank) if s.name == "cache" else s
    ).reset_index(drop=True)
