"""t-visibility on hand-built histories (times in ms): which (write, read) pairs count, how
the curve's intervals fill, and when its figures have enough reads to be said."""

import numpy as np
import pandas as pd
from histories import delete, get, history, put
from hypothesis import given, settings
from test_checker_properties import register_histories

from reports.checker import classify_reads
from reports.figures import figures
from reports.visibility import (
    EDGES_MS,
    falls_under,
    pooled,
    visibility_curve,
    visibility_figures,
)

MS = 1_000_000


def interval(curve: pd.DataFrame, t_ms: float) -> pd.Series:
    """The curve's row whose interval holds `t_ms`."""
    return curve[(curve["t_ms"] <= t_ms) & (t_ms < curve["t_end_ms"])].iloc[0]


def test_a_read_5_ms_after_a_write_that_returns_the_old_value_counts_stale_at_5_ms():
    h = history(put(2, "A", 0, MS), put(2, "B", 10 * MS, 20 * MS), get(2, "A", 25 * MS, 26 * MS))
    curve = visibility_curve(h)
    assert (interval(curve, 5)[["reads", "stale", "probability"]] == [1, 1, 1.0]).all()
    assert curve["reads"].sum() == 1


def test_a_read_of_the_new_value_counts_fresh_and_a_read_before_any_write_not_at_all():
    h = history(
        get(2, None, 0, MS),  # nothing written before it: not counted
        put(2, "A", 2 * MS, 3 * MS),
        get(2, "A", 4 * MS, 5 * MS),  # 1 ms after A completed
        get(2, "A", 103 * MS, 104 * MS),  # 100 ms after
    )
    curve = visibility_curve(h)
    assert interval(curve, 1)["reads"] == interval(curve, 100)["reads"] == 1
    assert curve["reads"].sum() == 2
    assert curve["stale"].sum() == 0


def test_t_runs_from_the_last_write_that_completed_before_the_read():
    h = history(
        put(2, "A", 0, MS),
        delete(2, 10 * MS, 11 * MS),
        get(2, "A", 14 * MS, 15 * MS),  # stale, 3 ms after the DELETE completed
    )
    assert interval(visibility_curve(h), 3)["stale"] == 1


def test_a_write_that_failed_or_is_still_in_flight_is_not_the_write_to_see():
    h = history(
        put(2, "A", 0, MS),
        put(2, "B", 10 * MS, 11 * MS, status=503),  # may not have happened
        put(2, "C", 12 * MS, 40 * MS),  # in flight when the read was invoked
        get(2, "A", 30 * MS, 31 * MS),
    )
    curve = visibility_curve(h)
    assert interval(curve, 29)["reads"] == 1  # paired with A, completed at 1 ms
    assert curve["stale"].sum() == 0


def test_phantoms_future_and_unjudged_reads_say_nothing_of_visibility():
    h = history(
        put(2, "A", 0, MS),
        get(2, "nobody", 5 * MS, 6 * MS),
        get(2, "A", 5 * MS, 6 * MS, status=0),
        get(2, "later", 7 * MS, 8 * MS),
        put(2, "later", 9 * MS, 10 * MS),
    )
    assert visibility_curve(h)["reads"].sum() == 0


def test_with_a_clock_skew_a_write_completed_within_it_is_not_yet_the_write_to_see():
    h = history(put(2, "A", 0, MS), put(2, "B", 10 * MS, 20 * MS), get(2, "A", 25 * MS, 26 * MS))
    assert interval(visibility_curve(h, clock_skew_ms=4), 5)["stale"] == 1
    skewed = visibility_curve(h, clock_skew_ms=5)  # B only 5 ms before: paired with A, ok
    assert interval(skewed, 24)["reads"] == 1
    assert skewed["stale"].sum() == 0


def test_only_the_reads_in_the_window_count():
    h = history(put(2, "A", 0, MS), get(2, "A", 5 * MS, 6 * MS), get(2, "A", 50 * MS, 51 * MS))
    curve = visibility_curve(h, in_window=np.array([True, False, True]))
    assert curve["reads"].sum() == 1
    assert interval(curve, 49)["reads"] == 1


def curve_of(reads: list[int], stale: list[int]) -> pd.DataFrame:
    edges = EDGES_MS[: len(reads)]
    with np.errstate(invalid="ignore"):
        probability = np.array(stale) / np.array(reads)
    return pd.DataFrame(
        {
            "t_ms": edges,
            "t_end_ms": [*edges[1:], np.inf],
            "reads": reads,
            "stale": stale,
            "probability": probability,
        }
    )


def test_the_t_under_a_probability_is_the_start_of_the_first_interval_after_the_last_above():
    curve = curve_of([100, 100, 0, 400, 3000], [50, 0, 0, 8, 4])
    # Interval 3 (0.5 ms) is at 2 %: under 1 % from 1 ms on, with 3,000 reads there.
    assert falls_under(curve, 0.01) == 1.0
    assert falls_under(curve, 0.001) is None  # 4 in 3,000 is not under 0.1 %
    assert falls_under(curve_of([100, 3000], [50, 2]), 0.001) == 0.1


def test_too_few_reads_to_say_is_none():
    assert falls_under(curve_of([100, 299], [50, 0]), 0.01) is None
    assert falls_under(curve_of([100, 300], [50, 0]), 0.01) == 0.1
    assert falls_under(curve_of([0, 0], [0, 0]), 0.01) is None


def test_from_the_start_when_no_interval_is_above():
    figures_ = visibility_figures(curve_of([3000, 5000], [0, 0]))
    assert figures_ == {"visibility_1pct_ms": 0.0, "visibility_01pct_ms": 0.0}


def test_the_figures_are_in_check_s_figures():
    h = history(put(2, "A", 0, MS), put(2, "B", 10 * MS, 20 * MS), get(2, "A", 25 * MS, 26 * MS))
    result = figures(h)
    assert result["visibility_1pct_ms"] is None  # one read: too few to say
    assert result["visibility_01pct_ms"] is None


@settings(deadline=None)
@given(register_histories())
def test_every_stale_read_is_in_the_curve_and_only_judged_reads_are(case):
    h, _ = case
    verdicts = classify_reads(h)["verdict"]
    curve = visibility_curve(h)
    assert curve["stale"].sum() == (verdicts == "stale").sum() == 0
    assert curve["reads"].sum() <= verdicts.isin(["ok", "stale"]).sum()


def test_repeats_pool_their_reads_and_stale_reads_per_interval():
    one = pd.DataFrame({"t_ms": [0.0, 5.0], "t_end_ms": [5.0, np.inf], "reads": [10, 0],
                        "stale": [1, 0], "probability": [0.1, np.nan]})  # fmt: skip
    two = one.assign(reads=[30, 4], stale=[1, 2], probability=[1 / 30, 0.5])
    both = pooled([one, two])
    assert list(both["reads"]) == [40, 4]
    assert list(both["stale"]) == [2, 2]
    assert list(both["probability"]) == [0.05, 0.5]
