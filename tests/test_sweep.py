"""`cachebench sweep`: the search over rates, each rate's verdict against the objective, the
capacity table, and a --quick sweep end to end (real gunicorn, Locust and Redis)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cachebench.cli import main
from cachebench.sweep import Search, next_rate, run_duration
from reports.sweep import COLUMNS, FAIL, FLAGGED, PASS, capacities, rate_verdict, rates, run_verdict

CACHEBENCH = Path(sys.executable).with_name("cachebench")
AUTO = Search(start_rps=25, doublings=10, bisections=3)
P, F, X = PASS, FAIL, FLAGGED


@pytest.mark.parametrize(
    ("tried", "expected"),
    [
        ([], 25),
        ([(25, P)], 50),
        ([(25, P), (50, P)], 100),
        ([(25, P), (50, P), (100, F)], 75),  # bisect between the last pass and the failure
        ([(25, P), (50, P), (100, F), (75, P)], 88),  # a whole number: 87.5 rounds to 88
        ([(25, P), (50, P), (100, F), (75, F)], 62),
        ([(25, P), (50, P), (100, F), (75, P), (88, F), (81, P)], None),  # 3 bisections
        ([(25, F)], 12),  # nothing passed: between 0 and the start
        ([(25, P), (50, X)], 38),  # a flagged rate ends the doubling as a failure does
        ([(25, P), (26, F)], None),  # no whole number left between them
    ],
)
def test_auto_doubles_until_a_rate_fails_then_bisects(tried, expected):
    assert next_rate(tried, AUTO) == expected


def test_auto_doubles_a_bounded_number_of_times():
    search = Search(start_rps=10, doublings=2)
    assert next_rate([(10, P), (20, P)], search) == 40
    assert next_rate([(10, P), (20, P), (40, P)], search) is None


def test_given_rates_are_run_in_turn_whatever_their_verdict():
    search = Search(rates=(10, 20, 40))
    assert [next_rate([(0, F)] * n, search) for n in range(4)] == [10, 20, 40, None]


def test_a_low_rate_runs_long_enough_to_be_quoted():
    assert run_duration(100, 4) == 4
    assert run_duration(20, 4) == 10


def row(**figures) -> dict:
    return {"rate": 100, "offered_rps": 100.0, "throughput_rps": 99.0,
            "get_corrected_p99_ms": 150.0, "errors": 0, "invalid": ""} | figures  # fmt: skip


@pytest.mark.parametrize(
    ("figures", "verdict", "why"),
    [
        ({}, PASS, ""),
        ({"throughput_rps": 94.0}, FAIL, "94 of 100 ops/s offered"),
        ({"offered_rps": 90.0, "throughput_rps": 86.0}, PASS, ""),  # of what was drawn
        ({"get_corrected_p99_ms": 201.0}, FAIL, "GET p99 201 ms over 200"),
        ({"get_corrected_p99_ms": None}, FAIL, "GET p99 – ms over 200"),
        ({"errors": 2}, FAIL, "2 errors"),
        ({"invalid": "load generator saturated", "errors": 2}, FLAGGED, "load generator saturated"),
    ],
)
def test_a_run_passes_when_it_delivers_within_the_objective_without_errors(figures, verdict, why):
    assert run_verdict(row(**figures), slo_p99_ms=200) == (verdict, why)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [([P, P], P), ([P, F], F), ([X, P], P), ([X, X], X), ([F, X], F)],
)
def test_a_rate_fails_with_one_quoted_repeat_and_is_flagged_without_any(verdicts, expected):
    assert rate_verdict(verdicts) == expected


def sweep_rows(cache: str, outcomes: dict[float, str], miss_share: float) -> list[dict]:
    return [{
        "scenario": "read_heavy", "cache": cache, "variant": "", "rate": rate, "repeat": 1,
        "verdict": verdict, "throughput_rps": rate, "offered_rps": rate,
        "get_corrected_p50_ms": 10.0, "get_corrected_p99_ms": 50.0, "get_p50_ms": 9.0,
        "get_p99_ms": 40.0, "stale_rate": 0.0, "hit_rate": 1 - miss_share,
        "miss_rps": rate * miss_share, "miss_rps_bound": 40.0, "processes": 1,
    } for rate, verdict in outcomes.items()]  # fmt: skip


def test_the_capacity_is_the_highest_rate_that_passed_beside_its_bound():
    sweep = pd.DataFrame(
        sweep_rows("none", {25: P, 50: F, 37: P, 43: F, 40: F}, miss_share=0.9)
        + sweep_rows("redis", {25: P, 50: P, 100: X}, miss_share=0.2)
        + sweep_rows("simple", {25: F, 12: F}, miss_share=0.5)
    )
    table = capacities(rates(sweep)).set_index("cache")
    assert table.loc["none", "capacity_rps"] == 37
    assert table.loc["none", "limit_rps"] == 40
    assert not table.loc["none", "limited_by_loadgen"]
    assert table.loc["none", "bound_rps"] == pytest.approx(40 / 0.9)
    assert table.loc["redis", "capacity_rps"] == 50
    assert table.loc["redis", "limited_by_loadgen"]  # the search ended on a flagged rate
    assert table.loc["redis", "bound_rps"] == pytest.approx(200)
    assert math.isnan(table.loc["simple", "capacity_rps"])
    assert table.loc["simple", "rates_tried"] == 2


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--rates", "fast"], "argument --rates: give auto or a comma list"),
        (["--rates", "10,-5"], "argument --rates: give auto or a comma list"),
        (["--slo-p99-ms", "0"], "argument --slo-p99-ms: give a number of milliseconds > 0"),
        (["--slo-p99-ms", "nan"], "argument --slo-p99-ms: give a number of milliseconds > 0"),
    ],
)
def test_a_bad_sweep_option_is_one_line(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"cachebench sweep: {says}")


def test_a_sweep_takes_its_rates_from_rates_not_arrival_rate(tmp_path):
    result = subprocess.run(
        [str(CACHEBENCH), "sweep", "--arrival-rate", "50", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr == "cachebench sweep: --arrival-rate: a sweep offers the rates of --rates\n"
    )


@pytest.mark.redis
def test_a_quick_sweep_finds_each_configuration_s_capacity(tmp_path, session_servers):
    session_servers("redis")  # or skip, or fail under CI, as every test of Redis
    out = tmp_path / "sweep"
    result = subprocess.run(
        [str(CACHEBENCH), "sweep", "--quick", "--caches", "none,redis", "--keys", "20",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    said = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, said
    sweep = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    assert list(sweep.columns) == list(COLUMNS)
    assert set(sweep["cache"]) == {"none", "redis"}
    assert set(sweep["verdict"]) <= {PASS, FAIL, FLAGGED}
    for cache, runs in sweep.groupby("cache"):
        # The search of --quick: from 200, at most 2 doublings and 1 bisection.
        assert runs["rate"].iloc[0] == 200, cache
        assert 1 <= len(runs) <= 4, cache
        for run in runs.itertuples():
            assert (out / run.history).is_dir()
    assert (sweep["throughput_rps"] > 0).all()
    assert (sweep["get_corrected_p99_ms"] >= sweep["get_p99_ms"] - 1e-6).all()
    report = (out / "report.md").read_text()
    assert "## Capacity at the objective" in report
    assert "capacity at GET p99 ≤ 200 ms" in report
    for chart in ("sweep-latency-read_heavy.png", "sweep-stale-read_heavy.png"):
        assert (out / "charts" / chart).is_file()
    assert (out / "report.html").is_file()
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["sweep"]["slo_p99_ms"] == 200
    assert metadata["runs"] == len(sweep)
