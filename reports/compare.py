"""Compare two comparison runs: each figure's change, its 95 % interval, and whether it is
beyond the noise of the repeats."""

import math
from pathlib import Path

import pandas as pd

from reports.cells import configurations
from reports.stats import change

COMPARED = (
    "throughput_rps", "hit_rate", "stale_rate",
    "get_hit_p50_ms", "get_hit_p95_ms", "get_miss_p50_ms", "put_p50_ms",
)  # fmt: skip


class CompareError(ValueError):
    """A run directory that cannot be compared; the message says which and why."""


def read_summary(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "summary.csv"
    if not path.is_file():
        raise CompareError(f"{run_dir} has no summary.csv: is it a `cachebench run` output?")
    try:
        summary = pd.read_csv(path, dtype={"invalid": str})
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise CompareError(f"{path} holds no runs to compare ({exc})") from None
    summary["invalid"] = summary["invalid"].fillna("")
    return summary[summary["invalid"] == ""]


def compare_runs(run_a: Path, run_b: Path) -> pd.DataFrame:
    """One row per scenario × cache × figure present in both runs."""
    a, b = configurations(read_summary(run_a)), configurations(read_summary(run_b))
    rows = []
    cells = (
        a[["scenario", "cache"]].drop_duplicates().merge(b[["scenario", "cache"]].drop_duplicates())
    )
    for scenario, cache in cells.itertuples(index=False):
        in_a = a[(a["scenario"] == scenario) & (a["cache"] == cache)]
        in_b = b[(b["scenario"] == scenario) & (b["cache"] == cache)]
        for figure in COMPARED:
            delta = change(in_a[figure], in_b[figure])
            rows.append({
                "scenario": scenario, "cache": cache, "figure": figure,
                "a": delta.a.mean, "b": delta.b.mean, "change": delta.relative,
                "diff_low": delta.low, "diff_high": delta.high,
                "beyond_noise": delta.beyond_noise,
                "a_n": delta.a.n, "b_n": delta.b.n,  # repeats with a value
            })  # fmt: skip
    if not rows:
        raise CompareError(f"{run_a} and {run_b} share no scenario × cache to compare")
    return pd.DataFrame(rows)


def format_comparison(table: pd.DataFrame) -> str:
    lines = [
        f"{'scenario':<12} {'cache':<11} {'figure':<16} {'A':>10} {'B':>10} "
        f"{'change':>8}  {'95% interval of B−A':<24} verdict"
    ]
    for row in table.itertuples():
        verdict = "beyond noise" if row.beyond_noise else "within noise"
        interval = f"[{row.diff_low:+.4g}, {row.diff_high:+.4g}]"
        if min(row.a_n, row.b_n) == 0:
            interval, verdict = "n/a (no value in a run)", "unknown"
        elif math.isnan(row.diff_low):
            interval, verdict = "n/a (needs 2+ repeats)", "unknown"
        change_text = "–" if math.isnan(row.change) else f"{row.change:+.1%}"
        lines.append(
            f"{row.scenario:<12} {row.cache:<11} {row.figure:<16} {row.a:>10.4g} {row.b:>10.4g} "
            f"{change_text:>8}  {interval:<24} {verdict}"
        )
    return "\n".join(lines)
