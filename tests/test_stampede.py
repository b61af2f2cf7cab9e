"""The stampede figures of the hottest key, on hand-built histories (times in ms, as ns)."""

import pytest
from histories import get, history, put

from reports.stampede import hot_key_figures, refills

MS = 1_000_000


def read(key, t_invoke_ms, t_complete_ms, cache, status=None):
    return get(key, "v", t_invoke_ms * MS, t_complete_ms * MS, status=status, cache=cache)


def figures(*ops):
    return hot_key_figures(history(*ops), 0, 10_000 * MS)


def test_every_get_sent_while_the_view_runs_misses_a_stampede():
    result = figures(
        read(1, 0, 1, "HIT"),
        # The entry expired: three GETs arrive during the first's 50 ms view.
        read(1, 100, 150, "MISS"),
        read(1, 110, 160, "MISS"),
        read(1, 120, 170, "MISS"),
        read(1, 200, 201, "HIT"),
        # A write invalidated it: one refill of one miss.
        put(1, "w", 300, 301),
        read(1, 400, 450, "MISS"),
        read(1, 500, 501, "HIT"),
    )
    assert (result["hot_key"], result["hot_key_gets"]) == (1, 7)
    assert result["refills"] == 2
    assert result["misses_per_refill"] == pytest.approx(2.0)


def test_a_fill_lock_s_waiters_hit_and_their_wait_counts_around_the_refill():
    ops = [read(1, 0, 1, "HIT"), read(1, 100, 150, "MISS")]
    # Waiters: sent during the filler's view, answered from the cache it filled.
    ops += [read(1, 101 + i, 152, "HIT") for i in range(10)]
    ops += [read(1, 300 + i, 301 + i, "HIT") for i in range(89)]
    result = figures(*ops)
    assert (result["refills"], result["misses_per_refill"]) == (1, 1.0)
    assert result["refill_get_p99_ms"] == pytest.approx(51.0, abs=0.5)  # the waiters' wait
    assert result["hot_get_p99_ms"] < result["refill_get_p99_ms"]


def test_the_hot_key_is_the_most_read_and_only_hit_or_miss_answers_count():
    result = figures(
        read(2, 0, 10, "MISS"),
        read(1, 0, 10, "MISS"),
        read(1, 20, 21, "HIT"),
        read(1, 30, 31, "HIT"),
        # Neither a refill nor an answer of the cache: the cache failed, the GET timed out.
        read(1, 40, 90, "BYPASS"),
        read(1, 40, 90, "", status=0),
    )
    assert (result["hot_key"], result["hot_key_gets"], result["refills"]) == (1, 3, 1)


def test_no_get_no_figure():
    assert set(figures(put(1, "w", 0, 1)).values()) == {None}


def test_a_refill_lasts_until_its_first_get_is_answered_whatever_the_order_of_answers():
    frame = history(
        read(1, 0, 50, "MISS"),
        # Sent as the entry expired: reached the cache before the expiry, or after.
        read(1, 1, 2, "HIT"),
        read(1, 2, 52, "MISS"),
        read(1, 3, 4, "HIT"),
        read(1, 49, 99, "MISS"),
        # Sent once the first was answered: the entry was filled, so another refill.
        read(1, 50, 100, "MISS"),
    )
    table = refills(frame[frame["op"] == "get"])
    assert table.to_dict("records") == [
        {"start_ns": 0, "end_ns": 99 * MS, "misses": 3},
        {"start_ns": 50 * MS, "end_ns": 100 * MS, "misses": 1},
    ]
