"""The figures of a faulted run, on hand-built histories: the timeline, availability, time to
recover and the stale reads after the fault."""

import math

import pytest
from histories import get, history, put

from reports.timeline import fault_figures, timeline

MS = 1_000_000
S = 1_000 * MS


def steady(start_ms: int, end_ms: int, every_ms: int, key: int = 1, name: str = "A") -> list:
    """GETs of `name` completing every `every_ms` in (start_ms, end_ms], each taking 1 ms."""
    return [
        get(key, name, (t - 1) * MS, t * MS, cache="HIT")
        for t in range(start_ms + every_ms, end_ms + 1, every_ms)
    ]


def test_the_timeline_counts_each_interval_by_completion():
    ops = history(
        put(1, "A", 0, 1 * MS),
        get(1, "A", 10 * MS, 20 * MS, cache="HIT"),
        get(1, "A", 100 * MS, 250 * MS, cache="BYPASS"),  # the first interval's last instant
        get(1, "A", 260 * MS, 300 * MS, cache="MISS"),
        get(1, None, 270 * MS, 310 * MS, status=503),
        get(1, "A", 320 * MS, 330 * MS, status=0),  # a timeout: an error, not answered
        put(1, "B", 400 * MS, 410 * MS),
        get(1, "A", 500 * MS, 510 * MS, cache="HIT"),  # stale: B completed before
        get(1, "B", 600 * MS, 1100 * MS),  # after the window: cut off, left out
    )
    frame = timeline(ops, (0, 600 * MS), (300 * MS, 400 * MS))
    assert list(frame["t_s"]) == [0, 0.25, 0.5]
    assert list(frame["throughput_rps"]) == [3 / 0.25, 4 / 0.25, 1 / 0.1]  # the last is 100 ms
    assert list(frame["errors"]) == [0, 2, 0]
    # Of the answered GETs (a 503 is answered, status 0 is not): HIT, BYPASS; MISS, 503.
    assert list(frame["bypass_share"]) == [0.5, 0, 0]
    assert list(frame["stale_reads"]) == [0, 0, 1]
    assert list(frame["in_fault"]) == [False, True, False]


def test_an_interval_without_a_get_has_no_bypass_share():
    frame = timeline(history(put(1, "A", 0, 100 * MS)), (0, 500 * MS), (0, 1))
    assert list(frame["throughput_rps"]) == [4, 0]
    assert math.isnan(frame["bypass_share"][1])


def test_availability_counts_the_operations_in_flight_during_the_fault_and_those_after():
    fault = (2 * S, 3 * S)
    ops = history(
        get(1, "A", 1 * S, 1 * S + 1, cache="HIT"),  # before: in neither
        get(1, "A", 1 * S, 2 * S + 5, status=0),  # began before, failed during
        get(1, "A", 2 * S + 10, 2 * S + 20, status=503),
        get(1, "A", 2 * S + 30, 2 * S + 40, cache="BYPASS"),
        get(1, "A", 2 * S + 50, 3 * S + 50, cache="MISS"),  # answered after it ended
        get(1, "A", 3 * S + 60, 3 * S + 70, cache="MISS"),
        get(1, None, 3 * S + 80, 3 * S + 90),  # a 404 is an answer
        get(1, "A", 3 * S + 95, 5 * S + 1, status=0),  # cut off by the end of the window
    )
    result = fault_figures(ops, (0, 4 * S), fault)
    assert result["availability_during"] == 2 / 4
    assert result["availability_after"] == 1.0


def test_without_operations_there_is_no_availability():
    result = fault_figures(history(put(1, "A", 0, 1)), (0, 4 * S), (2 * S, 3 * S))
    assert result["availability_during"] is None
    assert result["availability_after"] is None


@pytest.mark.parametrize(
    ("after", "recovered"),
    [
        ([(4000, 7000, 10)], 0.0),  # back at once: 100/s against a median of 100/s
        ([(4000, 4750, 100), (4750, 7000, 10)], 0.75),  # a slow start, then 100/s
        ([(4000, 7000, 11)], 0.0),  # 90/s of 100/s: 90 % is enough
        ([(4000, 7000, 12)], math.inf),  # 83/s: not back within the window
    ],
)
def test_time_to_recover_is_to_the_first_second_back_to_90_percent_of_before(after, recovered):
    before = steady(0, 1000, 5) + steady(1000, 2000, 10) + steady(2000, 3000, 20)
    ops = history(*before, *[op for args in after for op in steady(*args)])
    result = fault_figures(ops, (0, 7 * S), (3 * S, 4 * S))
    assert result["baseline_rps"] == 100  # the median of the seconds before: 200, 100, 50
    assert result["time_to_recover_s"] == recovered


@pytest.mark.parametrize(
    "fault",
    [
        (500 * MS, 1 * S),  # less than a second before the fault: nothing to compare with
        (2 * S, 3500 * MS),  # less than a second after it: nothing to judge
    ],
)
def test_time_to_recover_is_not_told_without_a_second_to_judge(fault):
    result = fault_figures(history(*steady(0, 4000, 10)), (0, 4 * S), fault)
    assert result["time_to_recover_s"] is None


def test_stale_reads_after_the_fault_and_their_largest_age():
    fault = (2 * S, 3 * S)
    ops = history(
        put(1, "A", 0, 1 * MS),
        put(1, "B", 2100 * MS, 2200 * MS),  # its invalidation lost: A stays cached
        get(1, "A", 2300 * MS, 2301 * MS, cache="HIT"),  # stale, but during the fault
        get(1, "A", 3100 * MS, 3101 * MS, cache="HIT"),  # stale by 900 ms
        get(1, "A", 3400 * MS, 3401 * MS, cache="HIT"),  # stale by 1200 ms
        get(1, "B", 3500 * MS, 3501 * MS, cache="MISS"),
    )
    result = fault_figures(ops, (0, 4 * S), fault)
    assert result["stale_reads_after"] == 2
    assert result["staleness_after_max_ms"] == 1200


def test_no_stale_read_after_the_fault_has_no_age():
    result = fault_figures(history(*steady(0, 4000, 10)), (0, 4 * S), (2 * S, 3 * S))
    assert result["stale_reads_after"] == 0
    assert result["staleness_after_max_ms"] is None
