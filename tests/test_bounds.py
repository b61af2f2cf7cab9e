"""The bounds a run's figures must respect, and the flags that name a broken one."""

import math

import pytest
from histories import get, history, put

from reports.bounds import RunShape, bound_flags, run_bounds

MS = 1_000_000
# A run that respects every bound: misses/s under workers × threads ÷ work, no MISS faster
# than the work, throughput at users ÷ latency, and (for "none") no hit or stale read.
SOUND = {
    "miss_rps": 39.0, "miss_rps_bound": 40.0,
    "get_miss_min_ms": 50.5, "get_miss_min_ms_bound": 50.0,
    "throughput_rps": 98.0, "throughput_law_rps": 100.0,
    "stale_reads": 0, "hit_rate": 0.0,
}  # fmt: skip


@pytest.mark.parametrize(
    ("cache", "changes", "flags"),
    [
        ("none", {}, []),
        ("none", {"miss_rps": 44.0}, []),  # within 10 % above
        ("redis", {"miss_rps": 44.5},
         ["misses/s 44.5 above Little's-law bound 40.0"]),
        ("none", {"miss_rps": 35.9},
         ["misses/s 35.9 more than 10% below the bound 40.0"]),
        ("none", {"miss_rps": 36.0}, []),  # 10 % below: still at the bound
        ("redis", {"miss_rps": 5.0}, []),  # a cache's misses may be far below it
        ("none", {"miss_rps_bound": math.nan}, []),  # a server the runner did not start
        ("none", {"miss_rps": 1e9, "miss_rps_bound": math.inf}, []),  # no work: no bound
        ("none", {"get_miss_min_ms": 49.9},
         ["a MISS took 49.9 ms < work 50 ms"]),
        ("none", {"get_miss_min_ms": math.nan}, []),  # no miss
        ("none", {"throughput_rps": 111.0},
         ["throughput 111/s above users/latency 100/s"]),
        ("none", {"throughput_rps": 89.0},
         ["throughput 89/s more than 10% below users/latency 100/s: "
          "the load generator loses time between requests"]),
        ("none", {"throughput_rps": None}, []),  # nothing measured
        ("none", {"stale_reads": 1}, ["stale reads or hits without a cache"]),
        ("none", {"hit_rate": 0.01}, ["stale reads or hits without a cache"]),
        ("simple", {"stale_reads": 40, "hit_rate": 0.9}, []),
        ("none", {"miss_rps": 50.0, "get_miss_min_ms": 10.0, "hit_rate": 0.5},
         ["misses/s 50.0 above Little's-law bound 40.0", "a MISS took 10.0 ms < work 50 ms",
          "stale reads or hits without a cache"]),
    ],
)  # fmt: skip
def test_bound_flags_name_each_broken_bound(cache, changes, flags):
    assert bound_flags({**SOUND, **changes}, cache) == flags


def test_run_bounds_measure_the_window_against_the_shape():
    # One worker slot, 10 ms of work: at most 100 misses/s. Two misses in a 1 s window.
    ops = history(
        put(1, "A", 0, 1 * MS),
        get(1, "A", 100 * MS, 112 * MS, cache="MISS"),
        get(1, "A", 200 * MS, 203 * MS, cache="HIT"),
        get(2, None, 300 * MS, 311 * MS, cache="MISS"),
    )
    bounds = run_bounds(ops, (0, 1000 * MS), RunShape("simple", 1, 1, 1, 10), {})
    assert bounds["miss_rps"] == 2.0
    assert bounds["miss_rps_bound"] == 100.0
    assert bounds["get_miss_min_ms"] == 11.0
    assert bounds["get_miss_min_ms_bound"] == 10.0
    assert bounds["throughput_law_rps"] == pytest.approx(1 / 0.00675)  # 1 user, mean 6.75 ms
    assert bounds["bound_flags"] == ""


def test_a_server_the_runner_did_not_start_has_no_server_bounds():
    ops = history(get(1, None, 0, 20 * MS, cache="MISS"))
    bounds = run_bounds(ops, (0, 1000 * MS), RunShape("external", 2), {})
    assert math.isnan(bounds["miss_rps_bound"])
    assert math.isnan(bounds["get_miss_min_ms_bound"])
    assert bounds["throughput_law_rps"] == 100.0
