"""`cachebench check`, called through main() as the console script calls it."""

import json
import subprocess
import sys

import pytest
from histories import get, history, put

from cachebench.cli import main
from reports import synthetic
from reports.history_format import COLUMNS, FINAL_READS_FILE, RUN_FILE

MS = 1_000_000


@pytest.fixture
def run_dir(tmp_path):
    """A run directory with a small history: one stale read, after a 10 ms warm-up."""
    history(
        put(2, "A", 0, 2 * MS),
        put(2, "B", 10 * MS, 12 * MS),
        get(2, "A", 20 * MS, 21 * MS, cache="HIT"),
        get(2, "B", 30 * MS, 31 * MS),
    ).to_csv(tmp_path / "history-1.csv", index=False)
    return tmp_path


def test_check_starts_without_the_runner_or_the_service():
    """The command's start imports neither the matrix runner (matplotlib, scipy) nor the
    service (Flask, Redis, psycopg): `check` needs none of them."""
    heavy = "{'matplotlib', 'scipy', 'flask', 'redis', 'psycopg'}"
    code = f"import sys, cachebench.cli; print(sorted({heavy} & set(sys.modules)))"
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert started.stdout.strip() == "[]", started.stderr


def test_check_prints_a_table_of_the_figures(run_dir, capsys):
    assert main(["check", str(run_dir)]) == 0
    out, err = capsys.readouterr()
    lines = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert lines["ops"] == "4"
    assert lines["stale_reads"] == "1"
    assert lines["hit_rate"] == "50 %"
    assert lines["lost_writes"] == "n/a"
    assert err == ""


def test_check_prints_json(run_dir, capsys):
    assert main(["check", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ops"] == 4
    assert result["stale_reads"] == 1
    assert result["stale_rate"] == 0.5
    assert result["lost_writes"] is None


def test_check_leaves_out_the_warm_up(run_dir, capsys):
    assert main(["check", str(run_dir), "--json", "--warmup", "0.015"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ops"] == 2
    assert result["stale_reads"] == 1  # judged by B, written during the warm-up


@pytest.mark.parametrize(("skew_ms", "stale_reads"), [("5", 1), ("10", 0)])
def test_check_allows_the_clock_skew_it_is_told(run_dir, capsys, skew_ms, stale_reads):
    # B, invoked 8 ms after A completed, supersedes it only on clocks less than 8 ms apart.
    assert main(["check", str(run_dir), "--json", "--clock-skew-ms", skew_ms]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["stale_reads"] == stale_reads
    assert result["clock_skew_ms"] == float(skew_ms)


def test_check_counts_lost_writes_when_the_run_made_final_reads(run_dir, capsys):
    history(get(2, "A", 50 * MS, 51 * MS)).to_csv(run_dir / FINAL_READS_FILE, index=False)
    assert main(["check", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["final_reads"] == 1
    assert result["lost_writes"] == 1


def test_check_reads_what_the_synthetic_generator_writes(tmp_path, capsys):
    synthetic.main([str(tmp_path), "--ops", "5000", "--keys", "10"])
    expected = synthetic.make_history(5000, 10)
    assert main(["check", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ops"] == 5000
    assert result["stale_reads"] == (expected["expected"] == "stale").sum()


HEADER = ",".join(COLUMNS) + "\n"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no history-*.csv files"),
        ({"history-1.csv": ""}, "not a readable CSV file"),
        ({"history-1.csv": HEADER}, "no operations"),
        ({"history-1.csv": "when,what\n1,2\n"}, "lacks the columns"),
        ({"history-1.csv": HEADER + "get,two,x,200,,1,2,w\n"}, "malformed value"),
        ({"history-1.csv": HEADER + "get,2,x,200,,1,2,w\n", FINAL_READS_FILE: "x\n"}, "lacks"),
        ({"history-1.csv": HEADER + "get,2,x,200,,1,2,w\n", RUN_FILE: "null"}, "not a run"),
        (
            {
                "history-1.csv": HEADER + "get,2,x,200,,1,2,w\n",
                RUN_FILE: '{"t_seeded_ns": 1, "t_stop_ns": "2"}',
            },
            "whole nanoseconds",
        ),
        (
            {
                "history-1.csv": HEADER + "get,2,x,200,,1,2,w\n",
                RUN_FILE: '{"histories": {"history-1.csv": {"rows": 1}, "history-2.csv": {}}}',
            },
            "the history is incomplete, no figures from part of the load: history-2.csv missing",
        ),
    ],
)
def test_a_run_that_cannot_be_read_is_one_line_and_status_2(tmp_path, capsys, files, message):
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    assert main(["check", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("cachebench check: ")
    assert message in err


def test_a_missing_directory_is_one_line_and_status_2(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert main(["check", str(missing)]) == 2
    assert capsys.readouterr().err == f"cachebench check: {missing} is not a directory\n"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["check"],
        ["check", ".", "--warmup", "-1"],
        ["check", ".", "--clock-skew-ms", "x"],
        ["nope"],
    ],
)
def test_bad_arguments_are_one_line_pointing_at_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("cachebench")
    assert "--help)" in err
