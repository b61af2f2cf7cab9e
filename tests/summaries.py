"""Hand-built summaries of a matrix, as `cachebench run` writes summary.csv: one row a run."""

import pandas as pd

from reports.cells import LATENCY_GROUPS
from reports.figures import PERCENTILES

CACHES = ("none", "simple", "filesystem", "redis")


def run_row(cache: str, scenario: str, repeat: int, throughput: float, **overrides) -> dict:
    """One quotable run's row, its figures as plausible as they need be; `overrides` wins."""
    row = {
        "cache": cache, "scenario": scenario, "repeat": repeat,
        "throughput_rps": throughput, "hit_rate": 0.0 if cache == "none" else 0.9,
        "stale_reads": 3 if cache == "simple" else 0,
        "stale_rate": 0.01 if cache == "simple" else 0.0,
        "staleness_median_ms": 120.0 if cache == "simple" else None,
        "staleness_max_ms": 900.0 if cache == "simple" else None,
        "errors": 0, "phantoms": 0, "lost_writes": 0, "ops": 5000, "judged_reads": 300,
        "miss_rps": 39.0, "miss_rps_bound": 40.0, "get_miss_min_ms": 50.5,
        "get_miss_min_ms_bound": 50.0, "throughput_law_rps": throughput * 1.02,
        "bound_flags": "", "invalid": "",
    }  # fmt: skip
    for group in LATENCY_GROUPS:
        for p in PERCENTILES:
            row[f"{group}_{p}_ms"] = {"p50": 2.0, "p95": 5.0, "p99": 9.0, "max": 30.0}[p]
    row.update(overrides)
    return row


def matrix_summary() -> pd.DataFrame:
    """Two scenarios, four caches, three repeats; redis is the fastest, and one more redis
    run that cannot be quoted."""
    speed = {"none": 40, "simple": 600, "filesystem": 500, "redis": 700}
    rows = [
        run_row(cache, scenario, repeat, speed[cache] + repeat)
        for scenario in ("read_heavy", "mixed")
        for cache in CACHES
        for repeat in (1, 2, 3)
    ]
    rows.append(run_row("redis", "mixed", 4, 10.0, invalid="load generator saturated (CPU 97%)"))
    return pd.DataFrame(rows)
