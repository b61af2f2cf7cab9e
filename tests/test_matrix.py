"""The main job: options, the target check, the plan, and `cachebench run` end to end as a
real process (gunicorn, Locust and Redis real too)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cachebench.matrix import Options, OptionsError, check_target, plan, validate
from cachebench.servers import SERVERS, needed
from service.settings import CACHE_BACKENDS

CACHEBENCH = Path(sys.executable).with_name("cachebench")
SCENARIOS = ("read_heavy", "mixed", "write_heavy")


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:1", "http://[::1]:80", "https://127.9.9.9"]
)
def test_loopback_targets_are_accepted(url):
    check_target(url, allow_remote=False)


@pytest.mark.parametrize("url", ["http://192.0.2.10:8000", "http://10.1.2.3"])
def test_a_remote_target_is_refused_unless_allowed(url):
    with pytest.raises(OptionsError, match=r"is not loopback .* add --allow-remote"):
        check_target(url, allow_remote=False)
    check_target(url, allow_remote=True)  # resolves nothing, sends nothing


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"caches": ("couchbase",)}, "unknown cache 'couchbase'"),
        ({"scenarios": ("nope",)}, "unknown scenario 'nope'"),
        ({"repeats": 0}, "--repeats must be at least 1"),
        ({"host": "ftp://127.0.0.1"}, "is not an http(s) URL"),
    ],
)
def test_bad_options_say_what_to_change(changes, says):
    with pytest.raises(OptionsError, match=re.escape(says)):
        validate(Options(**changes))


def test_a_missing_tool_is_one_line_saying_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr("cachebench.matrix.LOCUST", tmp_path / "locust")
    with pytest.raises(
        OptionsError, match=r"^Locust is not installed beside .*pip install -e \.\)$"
    ):
        validate(Options())


def test_repeats_are_outermost_so_drift_spreads_over_every_cell():
    runs = plan(Options(repeats=2, scenarios=("mixed",)), ("none", "redis"))
    assert [(r.repeat, r.cache) for r in runs] == [
        (1, "none"),
        (1, "redis"),
        (2, "none"),
        (2, "redis"),
    ]
    assert [r.index for r in runs] == [1, 2, 3, 4]
    assert runs[0].name == "none-mixed-r1"


def cachebench(*args, env=None, timeout=240):
    return subprocess.run(
        [str(CACHEBENCH), *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env=env, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, cache_server):
    """One `cachebench run --quick` for the module (about a minute): its output directory."""
    for server in needed(CACHE_BACKENDS):
        cache_server(server.name)  # or skip, or fail under CI, as the tests of that server
    out = tmp_path_factory.mktemp("quick") / "run"
    result = cachebench("run", "--quick", "--keys", "20", "--out", out)
    said = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, said
    assert f"report: {out / 'report.md'}" in result.stdout, said
    return out


def test_quick_run_covers_the_matrix(quick_run):
    summary = pd.read_csv(quick_run / "summary.csv")
    assert sorted(zip(summary["cache"], summary["scenario"], strict=True)) == sorted(
        (c, s) for c in CACHE_BACKENDS for s in SCENARIOS
    )
    for run in summary.itertuples():
        directory = quick_run / "histories" / f"{run.cache}-{run.scenario}-r1"
        assert list(directory.glob("history-*.csv"))
        assert (directory / "final-reads.csv").is_file()


def test_quick_run_measures_what_each_cache_buys_and_costs(quick_run):
    summary = pd.read_csv(quick_run / "summary.csv").set_index(["cache", "scenario"])
    # SimpleCache is per gunicorn worker: a write invalidates one of two copies.
    assert summary.loc[("simple", "read_heavy"), "stale_reads"] > 0
    for scenario in SCENARIOS:
        assert summary.loc[("none", scenario), "stale_reads"] == 0
        assert summary.loc[("none", scenario), "hit_rate"] == 0
    for cache in [c for c in CACHE_BACKENDS if c != "none"]:
        assert summary.loc[(cache, "read_heavy"), "hit_rate"] > 0.5
    assert (summary["phantoms"] == 0).all()
    assert (summary["future_reads"] == 0).all()
    assert (summary["lost_writes"] == 0).all()
    assert (summary["final_reads"] > 0).all()


def test_quick_run_writes_a_complete_report(quick_run):
    report = (quick_run / "report.md").read_text()
    for heading in ["How this was measured", *(f"Scenario `{s}`" for s in SCENARIOS), "Charts",
                    *(f"Bounds, `{s}`" for s in SCENARIOS), "Definitions", "Metadata"]:  # fmt: skip
        assert f"\n## {heading}\n" in report
    page = (quick_run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    metadata = json.loads((quick_run / "metadata.json").read_text())
    assert metadata["options"]["repeats"] == 1
    assert metadata["options"]["keys"] == 20
    assert metadata["machine"]["cpu_count"] == os.cpu_count()
    assert metadata["versions"]["locust"] != "not installed"
    assert metadata["commit"]


@pytest.mark.parametrize("cache", [c for c in CACHE_BACKENDS if needed([c])])
def test_without_its_server_a_cache_is_left_out_and_the_report_says_why(tmp_path, cache):
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in {s.env_var for s in SERVERS.values()}}
    env["PATH"] = str(tmp_path)  # no server on it
    result = cachebench(
        "run", "--quick", "--caches", f"none,{cache}", "--scenarios", "read_heavy", "--out", out,
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (server,) = needed([cache])
    missing = f"{server.executable} not found: install {server.executable}"
    assert f"not run: {cache}: {missing}" in result.stderr
    assert list(pd.read_csv(out / "summary.csv")["cache"]) == ["none"]
    assert f"`{cache}` was not run: {missing}" in (out / "report.md").read_text()


def test_a_server_of_ones_own_is_measured_as_external(tmp_path, serve):
    url = serve(CACHE_BACKEND="redis", VIDEOS_WORK_MS=5)
    out = tmp_path / "run"
    result = cachebench(
        "run", "--host", url, "--scenarios", "read_heavy", "--repeats", "1",
        "--warmup", "0.5", "--duration", "1.5", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cache"]) == ["external"]
    assert summary["lost_writes"].isna().all()  # no fresh store to read back
    assert summary["miss_rps_bound"].isna().all()
    assert summary.loc[0, "hit_rate"] > 0.5
    assert f"Against `{url}`, served as it is" in (out / "report.md").read_text()


def processes_of(run_dir: Path) -> list[int]:
    """Processes whose environment names `run_dir` as their run (see cachebench.cli)."""
    marker = f"CACHEBENCH_RUN={run_dir.resolve()}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_matrix_leaves_no_process_and_keeps_the_finished_runs(tmp_path, signum):
    out = tmp_path / "run"
    errors = tmp_path / "stderr"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [str(CACHEBENCH), "run", "--caches", "none,simple", "--scenarios", "read_heavy",
             "--repeats", "3", "--warmup", "0", "--duration", "3", "--work-ms", "10",
             "--out", str(out)],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "[1/6]" not in errors.read_text():
            assert process.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, errors.read_text()
            time.sleep(0.2)
        # Into the second run: its gunicorn and Locust are up.
        while len(processes_of(out)) < 2:
            assert process.poll() is None, errors.read_text()
            assert time.monotonic() < deadline, errors.read_text()
            time.sleep(0.1)
        process.send_signal(signum)
        assert process.wait(timeout=60) == 130, errors.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "interrupted: kept the 1 finished runs" in errors.read_text()
    assert processes_of(out) == []
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cache"]) == ["none"]
    assert (out / "report.md").is_file()
