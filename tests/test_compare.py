"""cachebench compare: each figure's change between two runs, beyond noise or not."""

import pandas as pd

from cachebench.cli import main
from reports.compare import compare_runs


def write_run(directory, throughputs, invalid=""):
    directory.mkdir()
    rows = [
        {
            "scenario": "mixed",
            "cache": "redis",
            "repeat": i,
            "throughput_rps": t,
            "hit_rate": 0.9,
            "stale_rate": 0.0,
            "get_hit_p50_ms": 2.0,
            "get_hit_p95_ms": 5.0,
            "get_miss_p50_ms": 55.0,
            "put_p50_ms": 3.0,
            "invalid": invalid,
        }
        for i, t in enumerate(throughputs, start=1)
    ]
    pd.DataFrame(rows).to_csv(directory / "summary.csv", index=False)
    return directory


def test_a_clear_change_is_beyond_noise_and_an_unchanged_figure_is_not(tmp_path):
    a = write_run(tmp_path / "a", [100, 101, 99])
    b = write_run(tmp_path / "b", [150, 149, 151])
    table = compare_runs(a, b).set_index("figure")
    assert table.loc["throughput_rps", "beyond_noise"]
    assert table.loc["throughput_rps", "change"] == 0.5
    assert not table.loc["hit_rate", "beyond_noise"]


def test_cli_prints_the_comparison(tmp_path, capsys):
    a = write_run(tmp_path / "a", [100, 101, 99])
    b = write_run(tmp_path / "b", [150, 149, 151])
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "throughput_rps" in out
    assert "+50.0%" in out
    assert "beyond noise" in out


def test_cli_refuses_a_run_where_nothing_finished_in_one_line(tmp_path, capsys):
    a = write_run(tmp_path / "a", [100])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "summary.csv").write_text("\n")
    assert main(["compare", str(a), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "holds no runs to compare" in err


def test_cli_refuses_a_directory_without_summary_in_one_line(tmp_path, capsys):
    a = write_run(tmp_path / "a", [100])
    assert main(["compare", str(a), str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "has no summary.csv" in err


def test_repeats_without_spread_compare_by_their_exact_difference(tmp_path, capsys):
    a = write_run(tmp_path / "a", [100, 100, 100])
    b = write_run(tmp_path / "b", [150, 150, 150])
    table = compare_runs(a, b).set_index("figure")
    assert table.loc["throughput_rps", ["diff_low", "diff_high"]].tolist() == [50, 50]
    assert table.loc["throughput_rps", "beyond_noise"]
    # The same figure in both runs, repeat for repeat: no change at all.
    assert table.loc["hit_rate", ["diff_low", "diff_high"]].tolist() == [0, 0]
    assert not table.loc["hit_rate", "beyond_noise"]
    assert main(["compare", str(a), str(b)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "throughput_rps" in x)
    assert line.split()[-4:] == ["[+50,", "+50]", "beyond", "noise"]
