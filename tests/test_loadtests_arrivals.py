"""The open loop: its schedule of arrivals, its send lag, and a process sending on schedule,
in-process against the service under gunicorn (Locust imported as in test_loadtests_plugin.py,
without its monkey-patching)."""

import itertools
import json
import os
import random
import statistics
from unittest import mock

import pytest

with mock.patch.dict(os.environ, {"LOCUST_SKIP_MONKEY_PATCH": "1"}):
    import gevent
    from locust.env import Environment
    from locust.event import Events

    from loadtests.read_heavy import ReadHeavyUser
    from locust_cachebench import plugin
    from locust_cachebench.arrivals import SendLag, arrival_offsets, combined

from test_loadtests_plugin import no_listener_raises, parse  # noqa: F401  (a fixture)

from reports.history import read_history
from reports.history_format import RUN_FILE


def test_poisson_arrivals_come_at_the_rate_with_exponential_gaps():
    rate, count = 100.0, 10_000
    offsets = list(itertools.islice(arrival_offsets(rate, "poisson", random.Random(7)), count))
    gaps = [b - a for a, b in itertools.pairwise([0.0, *offsets])]
    assert all(gap > 0 for gap in gaps)
    # Mean and standard deviation of exponential gaps are both 1 / rate; 5 standard errors.
    assert statistics.fmean(gaps) == pytest.approx(1 / rate, abs=5 / rate / count**0.5)
    assert statistics.stdev(gaps) == pytest.approx(1 / rate, rel=0.05)
    # A Poisson count in 50 s: 5,000 expected, its standard deviation about 71.
    in_50_s = sum(offset <= 50 for offset in offsets)
    assert abs(in_50_s - 5_000) < 5 * 5_000**0.5
    again = itertools.islice(arrival_offsets(rate, "poisson", random.Random(7)), count)
    assert list(again) == offsets, "the RNG alone decides the schedule"


def test_constant_arrivals_are_evenly_spaced():
    offsets = list(itertools.islice(arrival_offsets(8.0, "constant", random.Random()), 100_001))
    assert offsets[:3] == [0.125, 0.25, 0.375]
    assert offsets[-1] == 12_500.125  # no rounding error built up


def test_the_send_lag_adds_up_across_processes():
    one, other = SendLag(), SendLag()
    for lag_ns in (50_000, 1_234_000, 987_654_000):  # 50 µs, 1.234 ms, 0.988 s
        one.add(lag_ns)
    other.add(-5)  # sent a hair early: no lag
    assert one.counts == {50: 1, 1200: 1, 990_000: 1}  # µs, two significant digits
    other.merge({str(us): n for us, n in one.counts.items()})  # keys as a report may bring them
    assert other.figures() == {
        "send_lag_p50_ms": 1.2,  # of 4, the upper middle one, as Locust takes it
        "send_lag_p99_ms": 990.0,
        "send_lag_max_ms": 990.0,
    }


def test_a_closed_loop_has_no_arrivals():
    assert combined([]) == dict.fromkeys(
        [
            "arrivals_scheduled",
            "arrivals_sent",
            "arrivals_waited",
            "send_lag_p50_ms",
            "send_lag_p99_ms",
            "send_lag_max_ms",
        ]
    )


def test_a_process_sends_its_arrivals_on_schedule_within_its_cap(serve, tmp_path):
    # Every GET a MISS of 20 ms: 3 slots send at most about 150 a second.
    host = serve(CACHE_BACKEND="none", VIDEOS_WORK_MS=20)
    events = Events()
    events.init.add_listener(plugin.on_init)
    cap = 3
    options = parse(
        *("--keys", "10", "--history-dir", str(tmp_path)),
        *("--arrival-rate", "200", "--max-in-flight", str(cap)),
    )
    env = Environment(
        user_classes=[ReadHeavyUser], events=events, host=host, parsed_options=options
    )
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    try:
        runner.start(2, spawn_rate=100)  # users Locust spawns send nothing in an open loop
        gevent.sleep(1.5)
        runner.stop()
    finally:
        runner.quit()
    events.quitting.fire(environment=env, reverse=True)
    events.quit.fire(exit_code=0)

    record = json.loads((tmp_path / RUN_FILE).read_text())
    history = read_history(tmp_path)
    load = history[~history["worker"].str.endswith("-seed")]
    assert (record["arrival_rate"], record["arrival"], record["max_in_flight"]) == (
        200.0,
        "poisson",
        cap,
    )
    # About 300 due in 1.5 s, more than the slots could send.
    assert 150 <= record["arrivals_scheduled"] <= 450
    assert record["arrivals_sent"] == len(load)
    assert record["arrivals_sent"] <= record["arrivals_scheduled"]
    assert record["arrivals_waited"] > 0
    assert record["send_lag_max_ms"] >= record["send_lag_p99_ms"] >= record["send_lag_p50_ms"]
    assert (load["t_intended_ns"] <= load["t_invoke_ns"]).all()
    assert (load["t_intended_ns"] >= record["t_seeded_ns"]).all()
    # Never more than `cap` operations outstanding, each on a user of its own.
    edges = sorted(
        [(t, 1) for t in load["t_invoke_ns"]] + [(t, -1) for t in load["t_complete_ns"]],
        key=lambda edge: (edge[0], edge[1]),
    )
    assert max(itertools.accumulate(step for _, step in edges)) <= cap
    assert load["worker"].nunique() <= cap
    assert set(load["op"]) <= {"get", "put"}
