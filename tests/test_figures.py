"""The per-run figures: counts, rates, throughput, latency, staleness, lost writes, window."""

import json

import pytest
from histories import delete, get, history, put

from reports.figures import check, figures, format_figures
from reports.history import HistoryError
from reports.history_format import FINAL_READS_FILE, RUN_FILE

MS = 1_000_000

# The contract with the runner's summary.csv: these names, in this order.
FIGURE_NAMES = [
    "ops",
    "reads",
    "writes",
    "errors",
    "duration_s",
    "throughput_rps",
    "offered_rps",
    "send_lag_p99_ms",
    "hit_rate",
    "judged_reads",
    "stale_reads",
    "stale_rate",
    "staleness_median_ms",
    "staleness_max_ms",
    "visibility_1pct_ms",
    "visibility_01pct_ms",
    "phantoms",
    "future_reads",
    "earlier_run_reads",
    "clock_skew_ms",
    "final_reads",
    "lost_writes",
    *(
        f"{group}{corrected}_{p}_ms"
        for group in ("all", "get", "get_hit", "get_miss", "put")
        for corrected in ("", "_corrected")
        for p in ("p50", "p95", "p99", "max")
    ),
]


def run() -> list[dict]:
    return [
        put(2, "A", 0, 2 * MS),  # the seeding PUT
        get(2, "A", 10 * MS, 11 * MS),
        put(2, "B", 20 * MS, 24 * MS),
        get(2, "A", 30 * MS, 31 * MS, cache="HIT"),  # stale: B completed at 24 ms
        get(2, "B", 40 * MS, 42 * MS, cache="HIT"),
        get(2, None, 50 * MS, 53 * MS),  # stale: A superseded the initial absence at 2 ms
        get(2, "nobody", 60 * MS, 64 * MS, cache="BYPASS"),  # phantom
        get(3, None, 70 * MS, 200 * MS, status=0, cache=""),  # timed out: no latency, unjudged
        put(3, "C", 80 * MS, 90 * MS, status=503),
        delete(2, 100 * MS, 101 * MS),
    ]


def test_the_figures_of_a_whole_run():
    result = figures(history(*run()))
    assert list(result) == FIGURE_NAMES
    assert result["ops"] == 10
    assert result["reads"] == 6
    assert result["writes"] == 4
    assert result["errors"] == 2
    assert result["duration_s"] == pytest.approx(0.2)  # first invocation to last completion
    assert result["throughput_rps"] == pytest.approx(10 / 0.2)
    assert result["hit_rate"] == pytest.approx(2 / 5)  # of the GETs answered
    assert result["judged_reads"] == 5
    assert result["stale_reads"] == 2
    assert result["stale_rate"] == pytest.approx(2 / 5)
    assert result["staleness_median_ms"] == pytest.approx((6 + 48) / 2)
    assert result["staleness_max_ms"] == pytest.approx(48)
    assert result["phantoms"] == 1
    assert result["future_reads"] == 0
    assert result["clock_skew_ms"] == 0
    assert result["final_reads"] is None
    assert result["lost_writes"] is None


def test_a_read_stale_by_no_more_than_the_clock_skew_is_not_counted():
    result = figures(history(*run()), clock_skew_ms=10)
    # The read 6 ms after B completed could be concurrent with it on clocks 10 ms apart.
    assert (result["stale_reads"], result["staleness_max_ms"]) == (1, pytest.approx(48))
    assert result["clock_skew_ms"] == 10


def test_latency_percentiles_by_kind_of_operation():
    result = figures(history(*run()))
    # Answered operations only: the timed-out GET's 130 ms is its client's patience.
    assert result["all_max_ms"] == pytest.approx(10)
    assert result["get_hit_p50_ms"] == pytest.approx(1.5)  # 1 and 2 ms, interpolated
    assert result["get_hit_p95_ms"] == pytest.approx(1.95)
    assert result["get_hit_p99_ms"] == pytest.approx(1.99)
    assert result["get_hit_max_ms"] == pytest.approx(2)
    assert result["get_miss_p50_ms"] == pytest.approx(2)  # 1 and 3 ms; BYPASS is neither
    # Every answered GET, BYPASS too: 1, 1, 2, 3 and 4 ms.
    assert (result["get_p50_ms"], result["get_max_ms"]) == (pytest.approx(2), pytest.approx(4))
    assert result["put_p50_ms"] == pytest.approx(4)  # 2, 4 and the 503's 10 ms
    assert result["put_max_ms"] == pytest.approx(10)


def test_a_closed_loop_sends_every_operation_when_it_is_due():
    result = figures(history(*run()))
    assert result["send_lag_p99_ms"] == 0
    assert result["offered_rps"] == result["throughput_rps"]
    for group in ("all", "get", "get_hit", "get_miss", "put"):
        for p in ("p50", "p95", "p99", "max"):
            assert result[f"{group}_corrected_{p}_ms"] == result[f"{group}_{p}_ms"]


def test_an_open_loop_s_latency_is_corrected_from_the_intended_time():
    """A server that stalled from 0 to 100 ms, with one slot in flight: the arrivals due
    meanwhile were sent when it answered, each measured from when it was due."""
    ops = [
        get(1, None, 0, 100 * MS),  # in flight during the stall: its service time shows it
        *(
            get(1, None, 100 * MS, 101 * MS, t_intended=t)
            for t in range(10 * MS, 100 * MS, 10 * MS)
        ),
        get(1, None, 110 * MS, 111 * MS),  # due when sent, after the stall
    ]
    result = figures(history(*ops), start_ns=0, end_ns=120 * MS)
    assert result["all_max_ms"] == pytest.approx(100)
    assert result["all_p50_ms"] == pytest.approx(1)  # service time: all but one took 1 ms
    # From when they were due: 91, 81, … 11 ms, and the 100 and 1 ms of the others.
    assert result["all_corrected_max_ms"] == pytest.approx(100)
    assert result["all_corrected_p50_ms"] == pytest.approx(51)
    assert result["get_miss_corrected_p50_ms"] == pytest.approx(51)
    # Lags 0, 0, 10, … 90 ms: the 99th percentile interpolates between 80 and 90.
    assert result["send_lag_p99_ms"] == pytest.approx(89)
    assert result["offered_rps"] == pytest.approx(11 / 0.12)


def test_offered_counts_arrivals_when_due_and_those_never_sent():
    ops = [
        get(1, None, 50 * MS, 60 * MS, t_intended=5 * MS),  # due in the window
        get(1, None, 90 * MS, 130 * MS, status=0, t_intended=80 * MS),  # cut off by the end
        get(1, None, 150 * MS, 160 * MS, t_intended=110 * MS),  # due after the window
    ]
    result = figures(history(*ops), start_ns=0, end_ns=100 * MS, unsent_arrivals=3)
    assert (result["ops"], result["throughput_rps"]) == (1, pytest.approx(10))
    assert result["offered_rps"] == pytest.approx((2 + 3) / 0.1)


def test_a_server_that_sends_no_x_cache_has_an_unknown_hit_rate_not_zero():
    h = history(put(2, "A", 0, MS), get(2, "A", 2 * MS, 3 * MS, cache=""))
    assert figures(h)["hit_rate"] is None


def test_reads_of_names_an_earlier_run_wrote_are_counted_not_phantoms():
    earlier = "otherhost-4242-abcdef-u3#17"
    result = figures(history(get(2, earlier, 0, MS), put(2, "A", 2 * MS, 3 * MS)))
    assert (result["earlier_run_reads"], result["phantoms"]) == (1, 0)


def test_a_figure_without_anything_to_compute_it_from_is_none():
    result = figures(history(put(2, "A", 0, MS), get(2, "A", 2 * MS, 3 * MS)))
    assert result["get_hit_p50_ms"] is None
    assert result["staleness_median_ms"] is None
    assert result["hit_rate"] == 0
    assert result["stale_rate"] == 0
    empty = figures(history(put(2, "A", 0, MS)), start_ns=10 * MS)
    assert empty["ops"] == 0
    assert empty["throughput_rps"] is None
    assert empty["hit_rate"] is None
    assert empty["stale_rate"] is None


def test_the_window_leaves_out_the_warm_up_but_judges_with_the_whole_history():
    result = figures(history(*run()), start_ns=25 * MS)
    assert result["ops"] == 7
    assert result["reads"] == 5
    assert result["stale_reads"] == 2  # the stale read of A was judged by B, in the warm-up
    assert result["judged_reads"] == 4
    assert result["duration_s"] == pytest.approx((200 - 25) / 1000)  # from the window's start
    assert result["get_miss_max_ms"] == pytest.approx(3)  # the warm-up's GET left out


def test_a_closed_window_is_its_own_duration():
    result = figures(history(*run()), start_ns=25 * MS, end_ns=65 * MS)
    assert result["ops"] == 4
    assert result["duration_s"] == pytest.approx(0.04)
    assert result["throughput_rps"] == pytest.approx(100)


def test_a_closed_loop_s_throughput_is_measured_without_bias():
    """8 users, each running 800 ms operations back to back: 10 a second, whatever the window."""
    ops = [
        get(1, "HelloWorld", t, t + 800 * MS, worker=f"u{user}")
        for user in range(8)
        for t in range(user * 100 * MS, 20_000 * MS, 800 * MS)
    ]
    # A window 8 s long: every user completes exactly 10 operations in it.
    result = figures(history(*ops), start_ns=5_050 * MS, end_ns=13_050 * MS)
    assert result["ops"] == 80
    assert result["throughput_rps"] == pytest.approx(10)


def test_an_operation_cut_off_by_the_end_of_the_window_is_left_out_not_an_error():
    ops = [
        put(1, "A", 0, 1 * MS),
        get(1, "A", 2 * MS, 3 * MS),
        get(1, None, 9 * MS, 12 * MS, status=0),  # still in flight when the load stopped
    ]
    result = figures(history(*ops), end_ns=10 * MS)
    assert (result["ops"], result["reads"], result["errors"]) == (2, 1, 0)
    assert figures(history(*ops))["errors"] == 1


def test_lost_writes_from_the_final_reads():
    final_reads = history(
        get(2, "B", 300 * MS, 301 * MS),  # B was superseded by the DELETE
        get(3, None, 300 * MS, 301 * MS),  # the 503 may or may not have written C
        get(4, "D", 300 * MS, 301 * MS),  # a phantom
        get(5, None, 300 * MS, 301 * MS, status=0),  # not judged
    )
    result = figures(history(*run()), final_reads)
    assert result["final_reads"] == 3
    assert result["lost_writes"] == 2


def test_figures_are_plain_numbers_that_json_keeps():
    result = figures(history(*run()), history(get(2, None, 300 * MS, 301 * MS)))
    assert json.loads(json.dumps(result)) == result
    assert all(type(value) in (int, float, type(None)) for value in result.values())


def test_check_reads_a_run_directory_and_leaves_out_the_warm_up(tmp_path):
    history(*run()).to_csv(tmp_path / "history-1.csv", index=False)
    history(get(2, None, 300 * MS, 301 * MS)).to_csv(tmp_path / FINAL_READS_FILE, index=False)
    result = check(tmp_path, warmup_s=0.025)
    assert result == figures(
        history(*run()), history(get(2, None, 300 * MS, 301 * MS)), start_ns=25 * MS
    )
    assert result["lost_writes"] == 0


def test_check_measures_the_run_s_own_window_when_it_has_its_record(tmp_path):
    ops = [
        put(1, "seed", 0, 1 * MS),  # seeding, before the measured load
        get(1, "seed", 20 * MS, 21 * MS),  # in the warm-up
        get(1, "seed", 40 * MS, 41 * MS),
        get(1, None, 95 * MS, 120 * MS, status=0),  # cut off when the load stopped
    ]
    history(*ops).to_csv(tmp_path / "history-1.csv", index=False)
    record = {"t_seeded_ns": 10 * MS, "t_stop_ns": 100 * MS}
    (tmp_path / RUN_FILE).write_text(json.dumps(record))
    result = check(tmp_path, warmup_s=0.02)
    assert (result["ops"], result["errors"]) == (1, 0)
    assert result["duration_s"] == pytest.approx(0.07)
    assert result["offered_rps"] == pytest.approx(2 / 0.07)  # the GET cut off was offered
    # An open loop's arrivals that never got a slot were offered too.
    (tmp_path / RUN_FILE).write_text(
        json.dumps(record | {"arrivals_scheduled": 10, "arrivals_sent": 3})
    )
    assert check(tmp_path, warmup_s=0.02)["offered_rps"] == pytest.approx((2 + 7) / 0.07)


def test_check_refuses_a_run_that_measured_nothing(tmp_path):
    history(put(1, "seed", 0, 1 * MS)).to_csv(tmp_path / "history-1.csv", index=False)
    (tmp_path / RUN_FILE).write_text(json.dumps({"t_seeded_ns": None, "t_stop_ns": 5 * MS}))
    with pytest.raises(HistoryError, match="stopped before it measured anything"):
        check(tmp_path)


def test_check_refuses_a_history_without_operations(tmp_path):
    history().to_csv(tmp_path / "history-1.csv", index=False)
    with pytest.raises(HistoryError, match="no operations"):
        check(tmp_path)


def test_the_table_gives_every_figure_its_unit():
    table = format_figures(figures(history(*run())))
    lines = dict(line.split(maxsplit=1) for line in table.splitlines())
    assert list(lines) == FIGURE_NAMES
    assert lines["ops"] == "10"
    assert lines["stale_rate"] == "40 %"
    assert lines["throughput_rps"] == "50.0 /s"
    assert lines["duration_s"] == "0.200 s"
    assert lines["staleness_max_ms"] == "48.000 ms"
    assert lines["lost_writes"] == "n/a"
