"""A run over time: what its processes and stores held (resources.csv, sampled by the runner
every second) beside its throughput, hit rate and p99 per interval (from the history), the
resources that grow without levelling off, and throughput that drifts.

Growth (a leak): a resource whose median over the last tenth of the run exceeds its median
over the middle tenth by more than GROWTH_SHARE, and is still rising at the end (the last
tenth's median above the ninth's by more than RISING_SHARE). Growth that levels off before
the end is not flagged; nor is anything in a run of fewer than MIN_SAMPLES samples.

Drift: the median per-second throughput of the last tenth of the measured window against
the first tenth's; beyond the noise when the difference exceeds DRIFT_NOISE_FACTOR × the
larger standard deviation of per-second throughput within those two tenths, and
DRIFT_SHARE of the first tenth's.
"""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

RESOURCES_FILE = "resources.csv"
RESOURCE_COLUMNS = (
    "t_ns",
    "gunicorn_rss_bytes",  # every worker's resident memory, summed
    "gunicorn_worker_rss_max_bytes",  # the largest worker's
    "gunicorn_workers",
    "locust_rss_bytes",  # Locust's processes, summed
    "cache_used_bytes",  # Redis used_memory, memcached bytes
    "cache_keys",  # Redis DBSIZE, memcached curr_items
    "fs_entries",  # FileSystemCache files
    "fs_bytes",
    "store_bytes",  # SQLite file + write-ahead log
)
# Resources whose growth would be a leak (gunicorn_workers is a count, not a resource).
TRACKED = tuple(c for c in RESOURCE_COLUMNS if c not in ("t_ns", "gunicorn_workers"))
GROWTH_SHARE = 0.10
RISING_SHARE = 0.01
MIN_SAMPLES = 20
DRIFT_NOISE_FACTOR = 2.0
DRIFT_SHARE = 0.10
INTERVALS = 20  # of the measured window, for the per-interval series


def read_resources(run_dir: Path) -> pd.DataFrame | None:
    """The run's resources.csv (empty samples as NaN), or None if it has none."""
    path = Path(run_dir) / RESOURCES_FILE
    if not path.exists():
        return None
    return pd.read_csv(path).reindex(columns=list(RESOURCE_COLUMNS)).astype(float)


def _tenth_medians(values: pd.Series) -> list[float]:
    return [float(np.median(part)) for part in np.array_split(values.to_numpy(), 10)]


def grows(values: pd.Series) -> bool:
    """Whether a series of samples grows without levelling off (see the module docstring);
    empty samples are left out."""
    values = values.dropna()
    if len(values) < MIN_SAMPLES:
        return False
    tenths = _tenth_medians(values)
    middle, ninth, last = tenths[4], tenths[8], tenths[9]
    return last > middle * (1 + GROWTH_SHARE) and last > ninth * (1 + RISING_SHARE)


def leaks(resources: pd.DataFrame | None) -> list[str]:
    """The tracked resources that grow without levelling off, in RESOURCE_COLUMNS order."""
    if resources is None:
        return []
    return [c for c in TRACKED if c in resources and grows(resources[c])]


def per_second_throughput(history: pd.DataFrame, start_ns: int, end_ns: int) -> np.ndarray:
    """Operations completed in each whole second of [start_ns, end_ns)."""
    seconds = int((end_ns - start_ns) // 1_000_000_000)
    done = history["t_complete_ns"].to_numpy()
    done = done[(done >= start_ns) & (done < start_ns + seconds * 1_000_000_000)]
    return np.bincount((done - start_ns) // 1_000_000_000, minlength=seconds).astype(float)


def drift(per_second: np.ndarray) -> tuple[float | None, bool]:
    """(the last tenth's median throughput relative to the first's, minus 1; whether that is
    beyond the noise) of per-second throughputs. (None, False) for fewer than 20 seconds."""
    if len(per_second) < MIN_SAMPLES:
        return None, False
    tenths = np.array_split(per_second, 10)
    first, last = float(np.median(tenths[0])), float(np.median(tenths[-1]))
    if first == 0:
        return None, False
    noise = max(float(np.std(tenths[0])), float(np.std(tenths[-1])))
    difference = abs(last - first)
    beyond = difference > DRIFT_NOISE_FACTOR * noise and difference > DRIFT_SHARE * first
    return last / first - 1, beyond


def intervals(
    history: pd.DataFrame, start_ns: int, end_ns: int, count: int = INTERVALS
) -> pd.DataFrame:
    """Per interval of the window (by completion): t_s from its start, throughput (ops/s),
    hit_rate (HIT share of answered GETs, as
    reports/figures.py has it) and p99_ms (from when each operation was due)."""
    edges = np.linspace(start_ns, end_ns, count + 1)
    done = history["t_complete_ns"]
    rows = []
    for low, high in itertools.pairwise(edges):
        ops = history[(done >= low) & (done < high)]
        # As reports/figures.py counts it: a 404 answered from the cache is a hit too.
        gets = ops[(ops["op"] == "get") & (ops["status"] != 0)]
        latency_ms = (ops["t_complete_ns"] - ops["t_intended_ns"]) / 1e6
        rows.append({
            "t_s": (high - start_ns) / 1e9,
            "throughput": len(ops) / ((high - low) / 1e9),
            "hit_rate": (gets["cache"] == "HIT").mean() if len(gets) else np.nan,
            "p99_ms": latency_ms.quantile(0.99) if len(ops) else np.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)


def resource_chart(
    title: str, series: pd.DataFrame, resources: pd.DataFrame | None, start_ns: int, path: Path
) -> Path:
    """Throughput, hit rate and p99 per interval above, the sampled resources below, on one
    time axis from the start of the measured window; written to `path`."""
    fig = Figure(figsize=(10, 5))
    axes = fig.subplots(2, 3, sharex=True)
    for ax, column, label in zip(
        axes[0], ("throughput", "hit_rate", "p99_ms"), ("ops/s", "hit rate", "p99 ms"),
        strict=True,
    ):  # fmt: skip
        ax.plot(series["t_s"], series[column], marker=".")
        ax.set_ylabel(label)
    panels = (
        (
            ("gunicorn_rss_bytes", "gunicorn_worker_rss_max_bytes", "locust_rss_bytes"),
            "RSS MB",
            1e6,
        ),
        (("cache_keys", "fs_entries"), "keys / entries", 1),
        (("cache_used_bytes", "fs_bytes", "store_bytes"), "MB", 1e6),
    )
    for ax, (columns, label, scale) in zip(axes[1], panels, strict=True):
        if resources is not None:
            t_s = (resources["t_ns"] - start_ns) / 1e9
            for column in columns:
                if resources[column].notna().any():
                    ax.plot(t_s, resources[column] / scale, label=column)
            if ax.lines:
                ax.legend(fontsize="x-small")
        ax.set_ylabel(label)
        ax.set_xlabel("s from the measured window's start")
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path
