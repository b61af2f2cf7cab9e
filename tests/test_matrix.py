"""The main job: options, the target check, the plan, and `cachebench run` end to end as a
real process (gunicorn, Locust and Redis real too)."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from proc import interrupted, spawned, wait_for
from summaries import run_row

from cachebench.cli import build_parser, options_from
from cachebench.matrix import flag_unstable, run_matrix, unstable_cells
from cachebench.metadata import cpu_list
from cachebench.one_run import MIN_OPS, invalid_reason
from cachebench.plan import QUICK, Options, OptionsError, check_target, plan, prepare_out, validate
from cachebench.processes import ServerError
from cachebench.scenarios import default_scenarios
from cachebench.servers import SERVERS, needed
from reports.resources import read_resources
from service.settings import CACHE_BACKENDS

CACHEBENCH = Path(sys.executable).with_name("cachebench")
SCENARIOS = default_scenarios()


def needs_every_server(test):
    """The mark of every cache server (see conftest.py): the test's run uses them all."""
    for name in SERVERS:
        test = getattr(pytest.mark, name)(test)
    return test


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
        ({"duration_s": 1e308}, "must be at most 604,800 s"),
        ({"keys": (1_000_001,)}, "--keys: must be a whole number <= 1000000, not 1000001"),
        ({"clock_skew_ms": -1.0}, "--clock-skew-ms must be a number of milliseconds >= 0"),
        ({"random_seed": "lucky"}, "--random-seed: must be a whole number >= 0 or none"),
    ],
)
def test_bad_options_say_what_to_change(changes, says):
    with pytest.raises(OptionsError, match=re.escape(says)):
        validate(Options(**changes))


@pytest.mark.parametrize("output", ["metadata.json", "summary.csv", "histories"])
def test_an_out_directory_that_holds_a_run_is_refused(tmp_path, output):
    (tmp_path / output).mkdir()
    with pytest.raises(OptionsError, match=rf"holds a run already \({output}\)"):
        prepare_out(tmp_path)


def test_an_out_directory_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OptionsError, match=r"^--out .*: Not a directory$"):
        prepare_out(tmp_path / "file" / "run")
    prepare_out(tmp_path / "new" / "run")  # made, and empty
    assert list((tmp_path / "new" / "run").iterdir()) == []


def test_a_missing_tool_is_one_line_saying_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr("cachebench.plan.LOCUST", tmp_path / "locust")
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


def test_every_value_of_the_other_dimensions_is_a_cell_of_its_own(monkeypatch):
    dimensions = [("fault", ("none", "cache-stall")), ("fill", ("plain",))]
    monkeypatch.setattr(Options, "dimensions", lambda self: dimensions)
    runs = plan(Options(repeats=1, scenarios=("mixed",)), ("redis",))
    assert [r.name for r in runs] == [
        "redis-mixed-none-plain-r1",
        "redis-mixed-cache-stall-plain-r1",
    ]
    assert runs[1].variant_label == "fault=cache-stall,fill=plain"


QUOTABLE = {
    "loadgen_cpu_warning": False,
    "loadgen_cpu": 0.5,
    "window_s": 4.0,
    "ops": 1000,
    "send_lag_p99_ms": 0.0,
    "arrivals_waited_share": float("nan"),  # a closed loop
}
BEHIND = "load generator behind its schedule (send lag p99 10.5 ms, the in-flight cap not reached)"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, ""),
        ({"loadgen_cpu_warning": True}, "load generator saturated (CPU 50% of a core)"),
        ({"loadgen_cpu": 0.9}, "load generator saturated (CPU 90% of a core)"),
        ({"loadgen_cpu": 0.89}, ""),
        ({"loadgen_cpu": float("nan")}, ""),  # not measured: not judged
        ({"window_s": 3.5}, "measured 3.5 s of the 4 s asked: seeding or the warm-up took "
                            "the rest of the run"),
        ({"window_s": 3.6}, ""),  # 90 % of the duration is enough
        ({"ops": MIN_OPS - 1}, f"too few operations ({MIN_OPS - 1} < {MIN_OPS})"),
        ({"ops": MIN_OPS}, ""),
        ({"loadgen_cpu": 1.0, "window_s": 1.0, "ops": 0},
         "load generator saturated (CPU 100% of a core)"),  # the first reason found
        ({"window_s": 1.0, "ops": 0}, "measured 1.0 s of the 4 s asked: seeding or the "
                                      "warm-up took the rest of the run"),
        # An open loop that could not keep its schedule, though its slots were free.
        ({"send_lag_p99_ms": 10.5, "arrivals_waited_share": 0.0}, BEHIND),
        ({"send_lag_p99_ms": 10.5, "arrivals_waited_share": 0.009}, BEHIND),
        ({"send_lag_p99_ms": 10.0, "arrivals_waited_share": 0.0}, ""),
        ({"send_lag_p99_ms": 10.5}, BEHIND),  # no count of waits: not shown to be the cap
        # Arrivals waited for the cap: the server, not Locust, made them late.
        ({"send_lag_p99_ms": 500.0, "arrivals_waited_share": 0.01}, ""),
        ({"send_lag_p99_ms": None, "ops": 0}, f"too few operations (0 < {MIN_OPS})"),
        ({"loadgen_cpu": 0.95, "send_lag_p99_ms": 50.0},
         "load generator saturated (CPU 95% of a core)"),
    ],
)  # fmt: skip
def test_a_run_is_not_quoted_for_the_first_reason_it_has(changes, reason):
    assert invalid_reason({**QUOTABLE, **changes}, Options(duration_s=4.0)) == reason


@pytest.mark.parametrize(
    ("throughputs", "cv", "unstable"),
    [
        ([100, 101, 99], 0.01, False),
        ([90, 100, 110], 0.10, True),  # pyperf's rule: 10 % is unstable already
        ([50, 100, 150], 0.50, True),
        ([100, 100, 100, (10, "too few operations")], 0.0, False),  # unquoted runs left out
        ([100], None, False),  # one repeat: no spread to judge
        ([(100, "too few operations"), (10, "too few operations")], None, False),
    ],
)
def test_a_cell_is_unstable_when_its_quotable_repeats_vary_10_percent(throughputs, cv, unstable):
    runs = [t if isinstance(t, tuple) else (t, "") for t in throughputs]
    summary = pd.DataFrame(
        [{"cache": "redis", "scenario": "mixed", "throughput_rps": rps, "invalid": why}
         for rps, why in runs]
        + [{"cache": "none", "scenario": "mixed", "throughput_rps": 40.0, "invalid": ""}] * 2
    )  # fmt: skip
    flagged = flag_unstable(summary)
    redis = flagged[flagged["cache"] == "redis"]["throughput_cv"]
    if cv is None:
        assert redis.isna().all()
    else:
        assert redis.to_numpy() == pytest.approx([cv] * len(runs), abs=1e-3)
    expected = [("redis", "mixed", pytest.approx(cv))] if unstable else []
    assert unstable_cells(flagged) == expected


def test_an_empty_summary_has_no_unstable_cell():
    assert flag_unstable(pd.DataFrame()).empty
    assert unstable_cells(pd.DataFrame()) == []


class Told:
    """A Progress that keeps what the matrix told it."""

    def __init__(self):
        self.finished_runs = []

    def running(self, run, elapsed_s, rps):
        pass

    def finished(self, run, row, error):
        self.finished_runs.append((run.name, error))


def cells_that(**outcomes):
    """A cell runner whose runs named in `outcomes` raise what is given; the others return a
    summary row, as run_one does. It keeps the names of the runs it was asked for."""
    asked = []

    def run_cell(run, options, addresses, progress):
        asked.append(run.name)
        if run.name in outcomes:
            raise outcomes[run.name]
        return run_row(run.cache, run.scenario, run.repeat, 100.0 + run.repeat)

    run_cell.asked = asked
    return run_cell


def test_a_failed_cell_is_reported_and_the_others_go_on(tmp_path):
    options = Options(caches=("none", "simple"), scenarios=("mixed",), repeats=2, out=tmp_path)
    run_cell = cells_that(**{
        "simple-mixed-r1": ServerError("gunicorn was not ready after 30 s"),
        "none-mixed-r2": ValueError("a bug"),
    })  # fmt: skip
    told = Told()
    result = run_matrix(options, told, run_cell)
    assert run_cell.asked == [
        "none-mixed-r1",
        "simple-mixed-r1",
        "none-mixed-r2",
        "simple-mixed-r2",
    ]
    assert list(zip(result.summary["cache"], result.summary["repeat"], strict=True)) == [
        ("none", 1), ("simple", 2),
    ]  # fmt: skip
    log = tmp_path / "histories" / "none-mixed-r2" / "error.log"
    assert result.failures == [
        "simple-mixed-r1: gunicorn was not ready after 30 s",
        f"none-mixed-r2: ValueError: a bug (traceback in {log})",
    ]
    assert "raise outcomes[run.name]" in log.read_text()  # the traceback, for the bug
    assert [error for _, error in told.finished_runs] == [
        None, "gunicorn was not ready after 30 s", f"ValueError: a bug (traceback in {log})", None,
    ]  # fmt: skip
    assert not result.interrupted
    assert "throughput_cv" in result.summary


def test_an_interrupted_matrix_keeps_the_runs_that_finished_and_runs_no_more(tmp_path):
    options = Options(caches=("none", "simple"), scenarios=("mixed",), repeats=2, out=tmp_path)
    run_cell = cells_that(**{"simple-mixed-r1": KeyboardInterrupt()})
    result = run_matrix(options, Told(), run_cell)
    assert result.interrupted
    assert run_cell.asked == ["none-mixed-r1", "simple-mixed-r1"]
    assert list(result.summary["cache"]) == ["none"]
    assert result.failures == []


@pytest.mark.parametrize("cache", [c for c in CACHE_BACKENDS if needed([c])])
def test_without_its_server_the_matrix_leaves_a_cache_out_and_says_why(
    tmp_path, monkeypatch, cache
):
    (server,) = needed([cache])
    monkeypatch.delenv(server.env_var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no server on it
    options = Options(caches=("none", cache), scenarios=("mixed",), repeats=1, out=tmp_path)
    run_cell = cells_that()
    result = run_matrix(options, Told(), run_cell)
    assert run_cell.asked == ["none-mixed-r1"]
    assert list(result.skipped) == [cache]
    assert result.skipped[cache].startswith(f"{server.executable} not found: install ")
    assert server.env_var in result.skipped[cache]
    assert list(result.summary["cache"]) == ["none"]


def test_a_matrix_where_every_cell_failed_has_an_empty_summary(tmp_path):
    options = Options(caches=("none",), scenarios=("mixed",), repeats=1, out=tmp_path)
    result = run_matrix(options, Told(), cells_that(**{"none-mixed-r1": OSError("disk full")}))
    assert result.summary.empty
    assert result.failures == ["none-mixed-r1: disk full"]


def cachebench(*args, env=None, cwd=None, timeout=240):
    return subprocess.run(
        [str(CACHEBENCH), *map(str, args)], capture_output=True, text=True, timeout=timeout,
        env=env, cwd=cwd, check=False,
    )  # fmt: skip


def test_quick_runs_every_cell_of_the_default_matrix_once():
    options = options_from(build_parser().parse_args(["run", "--quick"]))
    runs = plan(options, options.caches)
    assert sorted((r.cache, r.scenario, r.repeat) for r in runs) == sorted(
        (c, s, 1) for c in CACHE_BACKENDS for s in SCENARIOS
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, session_servers):
    """One `cachebench run --quick` of every cache under the scenario a cache is built for
    (the other scenarios would add time, not checks): its output directory. Its tests carry
    every server's mark (needs_every_server)."""
    for server in needed(CACHE_BACKENDS):
        session_servers(server.name)  # or skip, or fail under CI, as the tests of that server
    out = tmp_path_factory.mktemp("quick") / "run"
    result = cachebench("run", "--quick", "--keys", "20", "--scenarios", "read_heavy", "--out", out)
    said = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, said
    assert f"report: {out / 'report.md'}" in result.stdout, said
    return out


@needs_every_server
def test_quick_run_runs_the_cells_asked_for(quick_run):
    summary = pd.read_csv(quick_run / "summary.csv")
    assert list(zip(summary["cache"], summary["scenario"], strict=True)) == [
        (c, "read_heavy") for c in CACHE_BACKENDS
    ]
    # Each run's conditions, recorded as it started.
    assert (summary["load_avg_1m"] >= 0).all()
    assert (summary["affinity"].astype(str) == cpu_list(os.sched_getaffinity(0))).all()
    # The plugin stopped the load once seeding, the warm-up and the whole --duration were done.
    assert (summary["window_s"] == QUICK["duration_s"]).all()
    for run in summary.itertuples():
        directory = quick_run / "histories" / f"{run.cache}-{run.scenario}-r1"
        record = json.loads((directory / "locust-run.json").read_text())
        # Every cache starts the measured period full; `none` has nothing to warm.
        assert record["seed"] == ("all" if run.cache == "none" else "warm")
        assert record["measure_time"] == QUICK["warmup_s"] + QUICK["duration_s"]
        assert list(directory.glob("history-*.csv"))
        assert (directory / "final-reads.csv").is_file()
        assert (directory / "visibility.csv").is_file()


@needs_every_server
def test_quick_run_measures_what_each_cache_buys_and_costs(quick_run):
    summary = pd.read_csv(quick_run / "summary.csv").set_index(["cache", "scenario"])
    # SimpleCache is per gunicorn worker: a write invalidates one of two copies.
    assert summary.loc[("simple", "read_heavy"), "stale_reads"] > 0
    assert summary.loc[("none", "read_heavy"), "stale_reads"] == 0
    assert summary.loc[("none", "read_heavy"), "hit_rate"] == 0
    for cache in [c for c in CACHE_BACKENDS if c != "none"]:
        assert summary.loc[(cache, "read_heavy"), "hit_rate"] > 0.5
    assert (summary["phantoms"] == 0).all()
    assert (summary["future_reads"] == 0).all()
    assert (summary["lost_writes"] == 0).all()
    assert (summary["final_reads"] > 0).all()


@needs_every_server
def test_quick_run_writes_a_complete_report(quick_run):
    report = (quick_run / "report.md").read_text()
    for heading in ("How this was measured", "Scenario `read_heavy`", "Charts",
                    "Bounds, `read_heavy`", "Definitions", "Metadata"):  # fmt: skip
        assert f"\n## {heading}\n" in report
    assert "\n## Resources over the run\n" in report
    page = (quick_run / "report.html").read_text()
    # The three charts of the cells, and the resources over time of each run that may be
    # quoted (on a loaded machine, seeding may leave a quick run too short a window).
    summary = pd.read_csv(quick_run / "summary.csv", keep_default_na=False)
    quoted = summary[summary["invalid"] == ""]
    assert page.count("data:image/png;base64,") == 3 + len(quoted)


@needs_every_server
def test_quick_run_samples_each_run_s_resources(quick_run):
    for cache in CACHE_BACKENDS:
        resources = read_resources(quick_run / "histories" / f"{cache}-read_heavy-r1")
        assert resources is not None, cache
        assert (resources["gunicorn_rss_bytes"] > 0).any(), cache
        largest = resources["gunicorn_worker_rss_max_bytes"]
        assert (largest > 0).any(), cache
        assert (largest <= resources["gunicorn_rss_bytes"]).all(), cache
        assert (resources["gunicorn_workers"] == Options().workers).any(), cache
        assert (resources["locust_rss_bytes"] > 0).any(), cache
        assert (resources["store_bytes"] > 0).any(), cache
        if cache in ("redis", "memcached"):
            assert (resources["cache_keys"] > 0).any(), cache
            assert (resources["cache_used_bytes"] > 0).any(), cache
        if cache == "filesystem":
            assert (resources["fs_entries"] > 0).any(), cache
    summary = pd.read_csv(quick_run / "summary.csv", keep_default_na=False)
    assert {"leaks", "throughput_drift", "throughput_drifted", "history"} <= set(summary)
    metadata = json.loads((quick_run / "metadata.json").read_text())
    assert metadata["options"]["repeats"] == 1
    assert metadata["options"]["keys"] == [20]
    # Every run was offered the operations of the same seed.
    assert metadata["options"]["random_seed"] == "1"
    for cache in CACHE_BACKENDS:
        run_record = quick_run / "histories" / f"{cache}-read_heavy-r1" / "locust-run.json"
        assert json.loads(run_record.read_text())["random_seed"] == 1, cache
    assert metadata["machine"]["cpu_count"] == os.cpu_count()
    assert metadata["versions"]["locust"] != "not installed"
    # The commit (12 hex digits, "-dirty" with uncommitted changes), or the wording for none.
    assert re.fullmatch(r"[0-9a-f]{12}(-dirty)?|unknown \(not a git checkout\)", metadata["commit"])


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


def test_locusts_own_settings_of_the_caller_do_not_change_a_run(tmp_path):
    caller, home, out = tmp_path / "caller", tmp_path / "home", tmp_path / "run"
    caller.mkdir()
    home.mkdir()
    # Each would leave the users without a task: the run would measure nothing.
    (caller / "locust.conf").write_text("tags = no-such-tag\n")
    (caller / "pyproject.toml").write_text('[tool.locust]\ntags = "no-such-tag"\n')
    (home / ".locust.conf").write_text("tags = no-such-tag\n")
    env = {**os.environ, "HOME": str(home), "LOCUST_TAGS": "no-such-tag"}
    result = cachebench(
        "run", "--quick", "--caches", "none", "--scenarios", "read_heavy",
        "--out", "../run", env=env, cwd=caller,  # relative to the caller
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out / "summary.csv").loc[0, "reads"] > 0  # the tasks ran


@pytest.mark.redis
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


def test_a_host_s_credentials_are_kept_out_of_a_private_run(tmp_path, serve):
    url = serve(VIDEOS_WORK_MS=5)
    out = tmp_path / "run"
    result = cachebench(
        "run", "--host", url.replace("://", "://user:secret@"), "--scenarios", "read_heavy",
        "--repeats", "1", "--warmup", "0", "--duration", "0.5", "--keys", "10", "--out", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    files = [path for path in out.rglob("*") if path.is_file()]
    assert [path for path in files if b"secret" in path.read_bytes()] == []
    redacted = url.replace("://", "://***@")
    assert json.loads((out / "metadata.json").read_text())["options"]["host"] == redacted
    run = json.loads((out / "histories" / "external-read_heavy-r1" / "locust-run.json").read_text())
    assert run["host"] == redacted
    exposed = {
        str(path): oct(path.stat().st_mode & 0o777)
        for path in [out, *out.rglob("*")]
        if path.stat().st_mode & 0o077
    }
    assert exposed == {}, "readable by others than the run's user"


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
    command = [
        str(CACHEBENCH), "run", "--caches", "none,simple", "--scenarios", "read_heavy",
        "--repeats", "3", "--warmup", "0", "--duration", "3", "--work-ms", "10",
        "--out", str(out),
    ]  # fmt: skip
    with spawned(command, errors) as process:
        wait_for(lambda: "[1/6]" in errors.read_text(), process, errors, timeout=120)
        # Into the second run: its gunicorn and Locust are up.
        wait_for(lambda: len(processes_of(out)) >= 2, process, errors)
        interrupted(process, signum, errors)
    assert "interrupted: kept the 1 finished runs" in errors.read_text()
    assert processes_of(out) == []
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["cache"]) == ["none"]
    assert (out / "report.md").is_file()
