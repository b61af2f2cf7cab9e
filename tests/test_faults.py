"""Faults: the --fault option, where a fault applies, and each kind injected into a real run
(gunicorn, Locust, Redis and the FileSystemCache real), undone, measured and reported."""

import json
import re
import signal
import sqlite3
import time
from pathlib import Path

import pandas as pd
import pytest
import redis
from proc import interrupted, spawned, state, wait_for
from summaries import run_row
from test_matrix import CACHEBENCH, Told, cachebench, processes_of

from cachebench.cli import build_parser, options_from
from cachebench.faults import (
    FAULT_FILE,
    KINDS,
    FaultError,
    Target,
    injected,
    not_applicable,
    parse_fault,
)
from cachebench.matrix import run_matrix
from cachebench.plan import Options, OptionsError, plan, validate
from cachebench.processes import children
from cachebench.servers import SERVERS, answers, private_instance
from reports.history import read_history
from reports.history_format import SEEDED_FILE


@pytest.mark.parametrize(
    ("text", "label", "window"),
    [
        ("cache-stall", "cache-stall", (2.0, 2.0)),  # a third into the window, for a third
        ("worker-kill@1:0.5", "worker-kill@1:0.5", (1.0, 0.5)),
        ("store-lock@0:6", "store-lock@0:6", (0.0, 6.0)),  # the whole window
        ("cache-restart@1.50:2.0", "cache-restart@1.5:2", (1.5, 2.0)),
    ],
)
def test_a_fault_and_its_window(text, label, window):
    fault = parse_fault(text, duration_s=6)
    assert fault.label == label
    assert fault.window(6) == window


@pytest.mark.parametrize(
    ("faults", "says"),
    [
        (["cache-melt"], "--fault unknown fault 'cache-melt': use cache-stall, cache-restart, "
                         "worker-kill, cache-dir-loss, store-lock"),
        (["cache-stall@1"], "--fault 'cache-stall@1': START:LENGTH must be seconds"),
        (["cache-stall@x:1"], "START:LENGTH must be seconds"),
        (["cache-stall@1:0"], "START:LENGTH must be seconds"),
        (["cache-stall@-1:2"], "START:LENGTH must be seconds"),
        (["cache-stall@1:nan"], "START:LENGTH must be seconds"),
        (["cache-stall@3:2"], "--fault 'cache-stall@3:2' ends 5 s into the measured window, "
                              "which lasts 4 s (--duration): the fault must fit in it"),
        (["cache-stall", "cache-stall"], "--fault 'cache-stall' is given twice"),
        (["none"], "unknown fault 'none'"),
    ],
)  # fmt: skip
def test_a_bad_fault_is_one_line_saying_what_to_change(faults, says):
    with pytest.raises(OptionsError, match=re.escape(says)) as refused:
        validate(Options(duration_s=4, faults=tuple(faults)))
    assert "\n" not in str(refused.value)


def test_faults_go_only_into_what_the_runner_started_never_with_host():
    options = Options(host="http://127.0.0.1:8000", faults=("worker-kill",))
    with pytest.raises(OptionsError, match=r"^--fault goes only into .* not with --host$"):
        validate(options)


def test_a_bad_fault_on_the_command_line_is_one_line(tmp_path):
    result = cachebench("run", "--fault", "cache-stall@9:9", "--out", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("cachebench run: --fault 'cache-stall@9:9' ends 18 s")
    assert not (tmp_path / "run").exists()


def test_each_fault_is_a_cell_of_its_own_beside_the_calm_run():
    argv = ["run", "--fault", "cache-stall", "--fault", "worker-kill@1:2", "--duration", "4"]
    options = validate(options_from(build_parser().parse_args(argv)))
    assert options.faults == ("cache-stall", "worker-kill@1:2")
    runs = plan(options, ("redis",))
    assert [run.name for run in runs if run.scenario == "mixed" and run.repeat == 1] == [
        "redis-mixed-none-r1",
        "redis-mixed-cache-stall-r1",
        "redis-mixed-worker-kill@1:2-r1",
    ]
    assert plan(Options(), ("redis",))[0].variant == ()  # without --fault, no dimension


@pytest.mark.parametrize(
    ("kind", "cache", "store", "why"),
    [
        ("cache-stall", "redis", "sqlite", None),
        ("cache-restart", "memcached", "sqlite", None),
        ("cache-stall", "simple", "sqlite", "cache-stall does not apply: `simple` has no "
                                            "cache server"),
        ("cache-restart", "none", "sqlite", "cache-restart does not apply: `none` has no "
                                            "cache server"),
        ("worker-kill", "none", "sqlite", None),
        ("cache-dir-loss", "filesystem", "sqlite", None),
        ("cache-dir-loss", "redis", "sqlite", "cache-dir-loss does not apply: `redis` keeps no "
                                              "cache directory"),
        ("store-lock", "simple", "sqlite", None),
        ("store-lock", "simple", "memory", "store-lock does not apply: the store is memory, "
                                           "not SQLite"),
    ],
)  # fmt: skip
def test_where_a_fault_applies(monkeypatch, kind, cache, store, why):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MEMCACHED_SERVERS", raising=False)
    assert not_applicable(KINDS[kind], cache, store) == why


def test_a_server_of_the_users_own_is_never_faulted(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    assert not_applicable(KINDS["cache-stall"], "redis", "sqlite") == (
        "cache-stall does not apply: the redis server is REDIS_URL's, and faults go only into "
        "what the runner started"
    )


def test_a_cell_a_fault_does_not_apply_to_is_not_run_and_says_why(tmp_path):
    options = Options(
        caches=("simple", "filesystem"), scenarios=("mixed",), repeats=1, out=tmp_path,
        faults=("cache-dir-loss",),
    )  # fmt: skip
    asked = []

    def run_cell(run, options, addresses, progress):
        asked.append((run.name, run.index, run.total))
        return run_row(run.cache, run.scenario, run.repeat, 100.0)

    result = run_matrix(options, Told(), run_cell)
    assert asked == [
        ("simple-mixed-none-r1", 1, 3),
        ("filesystem-mixed-none-r1", 2, 3),
        ("filesystem-mixed-cache-dir-loss-r1", 3, 3),
    ]
    assert result.not_applicable == {
        "simple [fault=cache-dir-loss]": "cache-dir-loss does not apply: `simple` keeps no "
        "cache directory"
    }
    assert result.skipped == {}


def seeded_now(run_dir: Path) -> None:
    """Say, as the plugin does, that the run in `run_dir` has just finished seeding."""
    (run_dir / SEEDED_FILE).write_text(json.dumps({"t_seeded_ns": time.time_ns()}))


def until(condition, what: str) -> None:
    """Wait for `condition`, which a working fault makes true within milliseconds."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def interrupt(text: str, target: Target, run_dir: Path, in_effect) -> None:
    """Inject the fault `text` at once, for a minute, and press Ctrl-C once `in_effect()`."""
    fault = parse_fault(text, duration_s=60)
    with injected(fault, target, run_dir, 0, 60):
        until(in_effect, f"{text} did not take effect")
        raise KeyboardInterrupt


@pytest.mark.redis
def test_a_killed_server_restarts_empty_on_its_port(own_servers):
    own_servers("redis")
    with private_instance(SERVERS["redis"]) as server:
        client = redis.Redis.from_url(server.address)
        client.set("kept", "no")
        killed = server.process
        killed.kill()
        server.restart()
        assert server.process.pid != killed.pid
        assert client.get("kept") is None  # the same address, an empty server
        client.close()
    assert server.process.poll() is not None  # stopped with the instance


@pytest.mark.redis
def test_a_stall_interrupted_by_ctrl_c_continues_the_server(tmp_path, own_servers):
    own_servers("redis")
    seeded_now(tmp_path)
    with private_instance(SERVERS["redis"]) as server:
        target = Target(None, server, tmp_path / "cache", tmp_path / "videos.sqlite")
        stopped = lambda: state(server.process.pid) == "T"  # noqa: E731
        with pytest.raises(KeyboardInterrupt):
            interrupt("cache-stall@0:60", target, tmp_path, stopped)
        assert state(server.process.pid) != "T"
        assert answers(SERVERS["redis"], server.port)


def test_a_write_lock_interrupted_by_ctrl_c_is_released(tmp_path):
    seeded_now(tmp_path)
    database = tmp_path / "videos.sqlite"
    other = sqlite3.connect(database, timeout=0, isolation_level=None)

    def locked() -> bool:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        other.execute("ROLLBACK")
        return False

    target = Target(None, None, tmp_path / "cache", database)
    with pytest.raises(KeyboardInterrupt):
        interrupt("store-lock@0:60", target, tmp_path, locked)
    assert not locked()
    other.close()


def test_a_fault_the_run_never_reached_fails_the_run(tmp_path):
    target = Target(None, None, tmp_path / "cache", tmp_path / "videos.sqlite")
    fault = parse_fault("store-lock", duration_s=4)
    stopped = "^store-lock: the run stopped before seeding finished$"
    with pytest.raises(FaultError, match=stopped), injected(fault, target, tmp_path, 0, 4):
        pass  # Locust exited at once, without seeding
    assert not (tmp_path / FAULT_FILE).exists()


# The end-to-end runs: seconds long, the fault at its default, a third into the window.
SHORT = ("--scenarios", "read_heavy", "--repeats", "1", "--warmup", "0.5", "--duration", "2.4",
         "--work-ms", "10", "--keys", "20")  # fmt: skip
FAULTS = ("cache-stall", "cache-restart", "worker-kill", "cache-dir-loss", "store-lock")


@pytest.fixture(scope="module")
def faulted_run(tmp_path_factory, own_servers):
    """One `cachebench run` of filesystem and redis with every fault (each applies to one of
    them at least), on a private Redis: its output directory."""
    env = own_servers("redis")
    out = tmp_path_factory.mktemp("faults") / "run"
    faults = [arg for fault in FAULTS for arg in ("--fault", fault)]
    result = cachebench(
        "run", "--caches", "filesystem,redis", *SHORT, *faults, "--out", out, env=env
    )
    said = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, said
    (out / "stderr").write_text(result.stderr)
    return out


def faulted(out: Path, cache: str, fault: str) -> tuple[pd.DataFrame, dict]:
    """The history of the run of `cache` with `fault`, and its FAULT_FILE."""
    directory = out / "histories" / f"{cache}-read_heavy-{fault}-r1"
    return read_history(directory), json.loads((directory / FAULT_FILE).read_text())


def invoked_during(history: pd.DataFrame, fault: dict) -> pd.DataFrame:
    """The operations invoked while the fault was surely in effect: from its start to its
    planned end, when it began to be undone."""
    t = history["t_invoke_ns"]
    return history[(t >= fault["start_ns"]) & (t < fault["planned_end_ns"])]


def after(history: pd.DataFrame, fault: dict) -> pd.DataFrame:
    return history[history["t_invoke_ns"] >= fault["end_ns"]]


@pytest.mark.redis
def test_every_faulted_run_ran_and_lost_no_write(faulted_run):
    summary = pd.read_csv(faulted_run / "summary.csv", keep_default_na=False)
    assert list(zip(summary["cache"], summary["fault"], strict=True)) == [
        ("filesystem", "none"), ("filesystem", "worker-kill"), ("filesystem", "cache-dir-loss"),
        ("filesystem", "store-lock"), ("redis", "none"), ("redis", "cache-stall"),
        ("redis", "cache-restart"), ("redis", "worker-kill"), ("redis", "store-lock"),
    ]  # fmt: skip
    assert (summary["lost_writes"] == 0).all()
    assert (summary["phantoms"] == 0).all()
    faults = summary[summary["fault"] != "none"]
    assert (faults["fault_start_s"] < faults["fault_end_s"]).all()
    for path in faults["timeline"]:
        assert len(pd.read_csv(faulted_run / path)) > 0
    # The calm runs have none of a fault's figures.
    assert (summary.loc[summary["fault"] == "none", "availability_during"] == "").all()
    assert processes_of(faulted_run) == []


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["cache-stall", "cache-restart"])
def test_a_stalled_or_restarted_server_answers_nothing_then_serves_again(faulted_run, fault):
    history, record = faulted(faulted_run, "redis", fault)
    gets = invoked_during(history, record).query("op == 'get'")
    assert len(gets) > 0
    # Answered in time by Redis, neither a hit nor a miss: it did not answer (BYPASS), the
    # request failed, or it waited for the server until after the fault.
    by_redis = gets[
        gets["cache"].isin(["HIT", "MISS"]) & (gets["t_complete_ns"] < record["planned_end_ns"])
    ]
    assert by_redis.empty
    assert (after(history, record)["cache"] == "HIT").any()  # back, and filled again
    if fault == "cache-restart":
        assert record["restarted_pid"] != record["killed_pid"]


@pytest.mark.redis
@pytest.mark.parametrize("cache", ["filesystem", "redis"])
def test_a_killed_worker_is_replaced_by_gunicorn(faulted_run, cache):
    _, record = faulted(faulted_run, cache, "worker-kill")
    killed = record["killed_pid"]
    assert killed in record["workers_before"]
    assert killed not in record["workers_after"]
    assert len(record["workers_after"]) == len(record["workers_before"])
    (new,) = set(record["workers_after"]) - set(record["workers_before"])
    log = faulted_run / "histories" / f"{cache}-read_heavy-worker-kill-r1" / "gunicorn.log"
    text = log.read_text()
    assert f"Worker (pid:{killed}) was sent SIGKILL" in text
    assert f"Booting worker with pid: {new}" in text


@pytest.mark.redis
def test_a_lost_cache_directory_loses_every_entry(faulted_run):
    history, record = faulted(faulted_run, "filesystem", "cache-dir-loss")
    gets = history[history["op"] == "get"]
    # A miss in flight while the directory went fills its key again, in the directory the
    # service makes anew: leave such keys out. The directory goes between the planned start
    # and start_ns (renamed, then deleted: tens of ms on a loaded machine), and a miss
    # answered within that time may already have filled the new one.
    straddling = gets[(gets["t_invoke_ns"] < record["start_ns"])
                      & (gets["t_complete_ns"] > record["planned_start_ns"])]  # fmt: skip
    after = gets[(gets["t_invoke_ns"] >= record["start_ns"]) & ~gets["key"].isin(straddling["key"])]
    first = after.drop_duplicates("key")
    assert len(first) > 0
    assert (first["cache"] != "HIT").all()  # not one entry left to hit


@pytest.mark.redis
@pytest.mark.parametrize("cache", ["filesystem", "redis"])
def test_a_held_write_lock_holds_every_write_until_it_is_released(faulted_run, cache):
    history, record = faulted(faulted_run, cache, "store-lock")
    puts = invoked_during(history, record).query("op == 'put' and status == 201")
    assert len(puts) > 0
    assert (puts["t_complete_ns"] > record["planned_end_ns"]).all()
    assert (after(history, record).query("op == 'put'")["status"] == 201).any()  # released


@pytest.mark.redis
def test_the_report_sets_the_faults_beside_the_calm_runs(faulted_run):
    report = (faulted_run / "report.md").read_text()
    faults = report.split("\n## Faults\n")[1].split("\n## ")[0]
    for cell in ("filesystem [fault=cache-stall]", "filesystem [fault=cache-restart]",
                 "redis [fault=cache-dir-loss]"):  # fmt: skip
        assert f"`{cell}` was not run: " in faults
        assert f"not run: {cell}: " in (faulted_run / "stderr").read_text()
    # A row and a chart per faulted cell, of those with a run that may be quoted (on a
    # loaded machine, seeding may leave a run too short a window).
    summary = pd.read_csv(faulted_run / "summary.csv", keep_default_na=False)
    quoted = summary[(summary["fault"] != "none") & (summary["invalid"] == "")]
    rows = [line for line in faults.splitlines() if line.startswith("| read_heavy |")]
    assert len(rows) == faults.count("![timeline-") == len(quoted) > 0
    calm = summary[(summary["fault"] == "none") & (summary["invalid"] == "")]
    for cache in calm["cache"]:  # the calm runs, in the scenario's table
        assert f"| {cache} [fault=none] |" in report
    page = (faulted_run / "report.html").read_text()
    # Three charts of every report, the timelines, and each first repeat's resources.
    firsts = summary[(summary["repeat"] == summary["repeat"].min()) & (summary["invalid"] == "")]
    assert page.count("data:image/png;base64,") == 3 + len(quoted) + len(firsts)


@pytest.mark.redis
def test_a_matrix_stopped_during_a_stall_continues_the_server_and_stops_everything(
    tmp_path, own_servers
):
    out, errors = tmp_path / "run", tmp_path / "stderr"
    command = [
        str(CACHEBENCH), "run", "--caches", "redis", *SHORT, "--fault", "cache-stall@0:2.4",
        "--out", str(out),
    ]  # fmt: skip
    with spawned(command, errors, env=own_servers("redis")) as process:
        # The run's own Redis, stopped (redis-server overwrites its environment with its
        # title: processes_of does not find it).
        stalled = wait_for(
            lambda: [pid for pid in children(process.pid) if state(pid) == "T"],
            process,
            errors,
            timeout=120,
        )
        interrupted(process, signal.SIGINT, errors)
    assert "interrupted: kept the 1 finished runs" in errors.read_text()
    assert processes_of(out) == []
    assert state(stalled[0]) is None
