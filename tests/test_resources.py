"""Soak runs' analysis: growth that does not level off, throughput drift, the per-interval
series, and the sampler's rows (its real runs are in test_matrix.py's quick run)."""

import time

import numpy as np
import pandas as pd
import pytest

from cachebench.resources import sample, sampling
from reports.resources import drift, grows, intervals, leaks, per_second_throughput

N = 100
RAMP = np.linspace(100, 200, N)


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (np.full(N, 100.0), False),  # flat
        (RAMP, True),  # rising to the end
        (np.minimum(RAMP, 150), False),  # rose, then levelled off
        (np.concatenate([np.full(N // 2, 100.0), np.full(N // 2, 300.0)]), False),  # a step
        (np.linspace(100, 105, N), False),  # rising less than GROWTH_SHARE
        (RAMP[::-1], False),  # falling
        (RAMP[:10], False),  # too few samples to tell
        (np.sqrt(np.arange(N) + 1) * 100, True),  # slowing, but still rising at the end
    ],
    ids=["flat", "ramp", "levels-off", "step", "small", "falling", "short", "sqrt"],
)
def test_growth_is_a_rise_that_has_not_levelled_off(series, expected):
    assert grows(pd.Series(series)) is expected


def test_empty_samples_are_left_out_of_growth():
    with_gaps = pd.Series(RAMP).where(np.arange(N) % 3 != 0)
    assert grows(with_gaps)


def test_leaks_names_the_growing_resources():
    resources = pd.DataFrame({
        "t_ns": np.arange(N) * 1e9,
        "gunicorn_rss_bytes": np.full(N, 9e7),
        # One worker growing while the sum stays within the noise.
        "gunicorn_worker_rss_max_bytes": RAMP * 4e5,
        "gunicorn_workers": RAMP,  # a count, not a resource
        "cache_keys": RAMP,
        "cache_used_bytes": RAMP * 1000,
        "store_bytes": np.nan,
    })  # fmt: skip
    assert leaks(resources) == ["gunicorn_worker_rss_max_bytes", "cache_used_bytes", "cache_keys"]
    assert leaks(None) == []


RNG = np.random.default_rng(1)
NOISY = 1000 + RNG.normal(0, 100, N)


@pytest.mark.parametrize(
    ("per_second", "relative", "beyond"),
    [
        (np.full(N, 1000.0), 0.0, False),
        (np.linspace(1000, 700, N), pytest.approx(-0.29, abs=0.02), True),
        (NOISY, pytest.approx(0, abs=0.1), False),  # noise alone
        (np.linspace(1000, 950, N), pytest.approx(-0.05, abs=0.01), False),  # under 10 %
        # 30 % down, but within noise of ±60 % per second.
        (np.linspace(1000, 700, N) * (1 + 0.6 * np.sign(np.sin(np.arange(N)))), None, False),
        (np.full(10, 1000.0), None, False),  # too short to tell
    ],
    ids=["flat", "falling", "noise", "small", "noisy-fall", "short"],
)
def test_drift_is_a_change_beyond_the_noise(per_second, relative, beyond):
    got_relative, got_beyond = drift(per_second)
    if relative is not None:
        assert got_relative == relative
    assert got_beyond is beyond


def history(done_s: list[float], cache: list[str]) -> pd.DataFrame:
    done = (np.array(done_s) * 1e9).astype("int64")
    return pd.DataFrame({
        "op": "get", "status": 200, "cache": cache,
        "t_intended_ns": done - 10_000_000, "t_complete_ns": done,
    })  # fmt: skip


def test_per_second_throughput_counts_whole_seconds_of_the_window():
    ops = history([0.5, 1.2, 1.3, 2.9, 3.5], ["HIT"] * 5)
    assert per_second_throughput(ops, 0, 3_500_000_000).tolist() == [1, 2, 1]


def test_intervals_give_throughput_hit_rate_and_p99_per_interval():
    ops = history([0.1, 0.2, 0.3, 0.4, 1.5, 1.6], ["HIT", "MISS", "HIT", "HIT", "MISS", "HIT"])
    ops["status"] = [200, 200, 404, 200, 200, 0]  # a cached 404 is a hit; no answer is none
    series = intervals(ops, 0, 2_000_000_000, count=2)
    assert series["t_s"].tolist() == [1.0, 2.0]
    assert series["throughput"].tolist() == [4.0, 2.0]
    assert series["hit_rate"].tolist() == [0.75, 0.0]
    assert series["p99_ms"].tolist() == pytest.approx([10.0, 10.0])


def failing_probe() -> dict[str, float]:
    raise ConnectionError("the server went away")


def test_a_probe_that_fails_leaves_its_columns_empty():
    row = sample([failing_probe, lambda: {"cache_keys": 3}])
    assert row["cache_keys"] == 3
    assert "cache_used_bytes" not in row
    assert row["t_ns"] > 0


def test_sampling_writes_rows_until_the_block_ends(tmp_path):
    with sampling(tmp_path, [failing_probe, lambda: {"store_bytes": 7}], interval_s=0.01):
        # Some rows, whatever the machine's speed: wait for the file to hold two.
        while len((tmp_path / "resources.csv").read_text().splitlines()) < 3:
            time.sleep(0.01)
    rows = pd.read_csv(tmp_path / "resources.csv")
    assert len(rows) >= 2
    assert (rows["store_bytes"] == 7).all()
    assert rows["cache_keys"].isna().all()
