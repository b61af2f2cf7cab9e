"""The scenarios end to end: `locust -f loadtests/` as a real subprocess against the service
under gunicorn (2 workers), judged by its exit code, history files and locust-run.json."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psutil
import pytest
from proc import wait_for

from cachebench.processes import free_port, stop
from reports.figures import check
from reports.history import history_files, read_history
from reports.history_format import WRITTEN_COLUMNS
from reports.stampede import hot_key_figures

ROOT = Path(__file__).resolve().parents[1]
# The command users run, from this environment (not `python -m locust`, which names itself
# __main__.py in its messages).
LOCUST = Path(sys.executable).with_name("locust")
CACHEBENCH = Path(sys.executable).with_name("cachebench")
KEYS = 20
WORK_MS = 5  # of simulated work per GET: short runs, yet misses that cost something
SCENARIOS = {
    "ReadHeavyUser",
    "MixedUser",
    "WriteHeavyUser",
    "TutorialUser",
    "HotReader",
    "HotWriter",
}


@pytest.fixture
def locust(tmp_path):
    """Start `locust ARGS` in its own session; it and every process it forked stop after the test.

    Yields a function returning the process and the path of its output.
    """
    # The caller's LOCUST_* settings must not leak into the runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    with ExitStack() as stack:

        def start(*args, cwd=ROOT, **extra_env):
            output = tmp_path / f"locust-{len(list(tmp_path.glob('locust-*.log')))}.log"
            with output.open("w") as out:
                process = subprocess.Popen(
                    [LOCUST, *args],
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env | extra_env,
                    start_new_session=True,
                )
            stack.callback(stop, process)
            return process, output

        yield start


def run_to_end(locust, *args, **extra_env):
    """Run locust with `args` until it exits: (exit code, output)."""
    process, output = locust(*args, **extra_env)
    code = process.wait(timeout=120)
    return code, output.read_text()


def headless(host, history, *args):
    return [
        *("--headless", "-r", "8", "--host", host, "--history-dir", str(history)),
        *("--keys", str(KEYS)),
        *args,
    ]


def run_file(history):
    return json.loads((history / "locust-run.json").read_text())


def split_seeding(history):
    ops = read_history(history)
    seeding = ops["worker"].str.endswith("-seed")
    return ops[seeding], ops[~seeding]


def test_every_scenario_in_two_processes(serve, locust, tmp_path):
    history = tmp_path / "history"
    # A master port of its own: on Locust's 5557, another run's workers on this machine
    # could join this master (and this run's workers another master).
    port = str(free_port())
    code, output = run_to_end(
        locust,
        *("-f", "loadtests/"),
        *headless(
            serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS),
            history,
            "-u",
            "8",
            "-t",
            "4s",
            "--processes",
            "2",
        ),
        *("--master-bind-port", port, "--master-port", port),
        *("--max-failure-rate", "1"),
    )
    assert code == 0, output

    run = run_file(history)
    files = history_files(history)
    assert len(files) == 3, "the master's (seeding) and one per worker"
    assert sorted(run["history_files"]) == [f.name for f in files]
    # The workers wrote into the master's directory: nothing was copied.
    deliveries = sorted(about["delivery"] for about in run["histories"].values())
    assert deliveries == ["in place", "in place", "own"]
    assert run["incomplete"] is None
    for path in files:
        assert path.read_text().splitlines()[0] == ",".join(WRITTEN_COLUMNS)
    assert set(run["user_classes"]) == SCENARIOS
    # A hit rate for every user class that reads (hot_expiry's writers only write).
    assert set(run["hit_rate"]) == SCENARIOS - {"HotWriter"} | {"Aggregated"}
    assert run["processes"] == 2
    assert (run["keys"], run["key_dist"], run["zipf_s"]) == (KEYS, "zipf", 1.0)
    assert run["thresholds"] == [
        {"option": "--max-failure-rate", "limit": 1.0, "value": run["fail_ratio"], "passed": True}
    ]
    assert "Cache hit rate" in output

    seeding, load = split_seeding(history)
    # Seeded once, by one process, before any measured operation.
    assert sorted(seeding["key"]) == list(range(1, KEYS + 1))
    assert seeding["worker"].nunique() == 1
    assert (seeding["status"] == 201).all()
    assert seeding["t_complete_ns"].max() <= run["t_seeded_ns"] <= load["t_invoke_ns"].min()
    assert load["worker"].str.rsplit("-", n=2).str[0].nunique() == 2, "users of both workers"
    assert set(load["op"]) == {"get", "put", "delete"}

    ops = read_history(history)
    puts = ops[ops["op"] == "put"]
    assert puts["value"].is_unique
    assert (puts["value"].str.rpartition("#")[0] == puts["worker"]).all()
    # The tutorial's ids lie above the keyspace, each touched by one user only.
    private = load[load["key"] > KEYS]
    assert len(private) > 0
    assert (private.groupby("key")["worker"].nunique() == 1).all()


@pytest.mark.redis
def test_a_master_and_a_worker_record_every_operation(serve, locust, tmp_path):
    history = tmp_path / "history"
    port = str(free_port())
    master, master_output = locust(
        *("-f", "loadtests/read_heavy.py", "--master", "--master-bind-port", port),
        *("--expect-workers", "1"),
        *headless(
            serve(CACHE_BACKEND="redis", VIDEOS_WORK_MS=WORK_MS),
            history,
            "-u",
            "2",
            "-t",
            "3s",
            "--max-failure-rate",
            "0",
        ),
    )
    worker, _ = locust("-f", "loadtests/read_heavy.py", "--worker", "--master-port", port)
    assert master.wait(timeout=120) == 0, master_output.read_text()
    assert worker.wait(timeout=60) == 0

    run = run_file(history)
    assert run["processes"] == 1
    files = history_files(history)
    assert len(files) == 2, "the master's (seeding) and the worker's"
    assert sorted(run["history_files"]) == [f.name for f in files]
    seeding, load = split_seeding(history)
    assert sorted(seeding["key"]) == list(range(1, KEYS + 1))
    assert run["requests"] <= len(load) <= run["requests"] + 2


@pytest.mark.redis
def test_hot_expiry_refills_one_hot_key_at_each_expiry_and_write(serve, locust, tmp_path):
    """Readers of id 1 only, two writers of it; its entry lives a second."""
    history = tmp_path / "history"
    url = serve(CACHE_BACKEND="redis", CACHE_DEFAULT_TIMEOUT=1, VIDEOS_WORK_MS=WORK_MS)
    code, output = run_to_end(
        locust, "-f", "loadtests/hot_expiry.py", *headless(url, history, "-u", "6", "-t", "4s")
    )
    assert code == 0, output
    _, load = split_seeding(history)
    assert set(load["key"]) == {1}
    puts = load[load["op"] == "put"]
    assert puts["worker"].nunique() == 2, "the two writers"
    # Those cut off as the load stopped (status 0) aside, every operation succeeded.
    assert load.loc[load["status"] != 0, "status"].isin((200, 201)).all()
    # Ranked by key popularity, the hot key is id 1; it expired or was written several times.
    window = int(load["t_invoke_ns"].min()), int(load["t_complete_ns"].max())
    figures = hot_key_figures(read_history(history), *window)
    assert figures["hot_key"] == 1
    assert figures["refills"] >= 3
    assert figures["misses_per_refill"] >= 1
    assert figures["refill_get_p99_ms"] >= WORK_MS


@pytest.mark.parametrize(("backend", "broken"), [("simple", True), ("redis", False)])
def test_tutorial_read_your_writes(serve, locust, tmp_path, backend, broken):
    """SimpleCache is per gunicorn worker: a write invalidates one of two caches."""
    history = tmp_path / "history"
    code, output = run_to_end(
        locust,
        *("-f", "loadtests/", "TutorialUser"),
        *headless(
            serve(CACHE_BACKEND=backend, VIDEOS_WORK_MS=WORK_MS),
            history,
            "-u",
            "4",
            "-t",
            "3s",
            "--max-failure-rate",
            "0",
        ),
    )
    run = run_file(history)
    assert run["user_classes"] == ["TutorialUser"]
    assert run["requests"] > 0
    if broken:
        assert code == 3, output  # the failure threshold's, not Locust's 1
        assert "read-your-writes broken in get-" in output
        assert run["failures"] > 0
        assert run["thresholds"][0]["passed"] is False
    else:
        assert code == 0, output
        assert "read-your-writes" not in output
        assert run["failures"] == 0

    # One process: every request Locust counted is in the history, plus at most one per
    # user that was cut off by the end of the run.
    _, load = split_seeding(history)
    assert run["requests"] <= len(load) <= run["requests"] + 4


@pytest.mark.parametrize(("backend", "stale"), [("simple", True), ("redis", False)])
def test_max_stale_rate_sets_the_exit_code(serve, locust, tmp_path, backend, stale):
    """Per-worker SimpleCaches serve old values after a write (measured: 30-45 % of reads);
    a shared Redis only through the rare cache-aside race (measured: 0 to a few reads)."""
    history = tmp_path / "history"
    code, output = run_to_end(
        locust,
        *("-f", "loadtests/read_heavy.py"),
        *headless(
            serve(CACHE_BACKEND=backend, VIDEOS_WORK_MS=WORK_MS),
            history,
            "-u",
            "4",
            "-t",
            "3s",
            "--max-stale-rate",
            "0.05",
        ),
    )
    (verdict,) = run_file(history)["thresholds"]
    assert verdict["option"] == "--max-stale-rate"
    assert verdict["passed"] is not stale
    assert code == (3 if stale else 0), output
    assert ("--max-stale-rate 0.05: FAILED" in output) is stale


def test_ctrl_c_keeps_every_operation(serve, locust, tmp_path):
    history = tmp_path / "history"
    process, output = locust(
        *("-f", "loadtests/mixed.py"),
        *headless(
            serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS),
            history,
            "-u",
            "4",
            "--max-failure-rate",
            "1",
        ),
    )
    # Locust's periodic stats table gets a /videos/[id] row once requests were answered.
    wait_for(lambda: "/videos/[id]" in output.read_text(), process, output)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it: to the whole group
    assert process.wait(timeout=60) == 0, output.read_text()

    run = run_file(history)
    _, load = split_seeding(history)
    assert run["requests"] > 0
    assert run["requests"] <= len(load) <= run["requests"] + 4
    assert (load["t_complete_ns"] >= load["t_invoke_ns"]).all()


def test_an_open_loop_in_two_processes_shares_its_rate(serve, locust, tmp_path):
    history = tmp_path / "history"
    port = str(free_port())
    code, output = run_to_end(
        locust,
        *("-f", "loadtests/mixed.py"),
        # One user for two processes: Locust's users send nothing in an open loop.
        *headless(serve(CACHE_BACKEND="filesystem"), history, "-u", "1", "-t", "3s"),
        *("--processes", "2", "--master-bind-port", port, "--master-port", port),
        *("--arrival-rate", "100", "--arrival", "constant"),
    )
    assert code == 0, output
    run = run_file(history)
    assert (run["processes"], run["arrival_rate"], run["arrival"]) == (2, 100.0, "constant")
    # At most about 290 due in the 2.9 s after seeding (a loaded machine starts the workers'
    # schedulers late, so fewer); each process's constant gaps are 20 ms: 50 a second each.
    assert 0 < run["arrivals_scheduled"] <= 400
    # Every arrival sent, but perhaps one per process due as the test stopped.
    assert run["arrivals_scheduled"] - 2 <= run["arrivals_sent"] <= run["arrivals_scheduled"]
    _, load = split_seeding(history)
    process = load["worker"].str.rsplit("-", n=2).str[0]
    assert process.nunique() == 2, "arrivals of both workers"
    for _, intended in load.groupby(process)["t_intended_ns"]:
        gaps = intended.drop_duplicates().sort_values().diff().dropna()
        assert gaps.median() == pytest.approx(20e6, rel=0.01)
    assert run["requests"] <= len(load) <= run["requests"] + 2 * 256


PAUSE_S = 1.0


def process_group_listening_on(url: str) -> int:
    """The process group of the server listening at `url`'s port (gunicorn's: its master
    and workers, started in a session of their own)."""
    port = int(url.rsplit(":", 1)[1])
    (pid, *_) = {
        c.pid
        for c in psutil.net_connections("tcp")
        if c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid
    }
    return os.getpgid(pid)


def run_with_a_pause(locust, url, history, *args):
    """Run Locust with `args` for 4 s, the server stopped (SIGSTOP) for PAUSE_S in the
    middle of its load; returns its exit code and output."""
    group = process_group_listening_on(url)  # first: on a busy machine, a slow look
    process, output = locust(
        *("-f", "loadtests/read_heavy.py"), *headless(url, history, "-t", "4s", *args)
    )
    wait_for(lambda: "Seeded" in output.read_text(), process, output)
    time.sleep(0.5)  # under load first
    os.killpg(group, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        os.killpg(group, signal.SIGCONT)
    return process.wait(timeout=120), output.read_text()


def test_the_corrected_latency_sees_a_paused_server(serve, locust, tmp_path):
    """At 100 operations a second and 2 in flight at most, a server paused for 1 s keeps
    about 100 arrivals from being sent: measured from when they were due, half of them wait
    0.5 s or more; from when they were sent, only the 2 in flight do."""
    history = tmp_path / "history"
    cap = 2
    code, output = run_with_a_pause(
        locust,
        serve(CACHE_BACKEND="simple"),
        history,
        *("-u", "1", "--arrival-rate", "100", "--max-in-flight", str(cap)),
    )
    assert code == 0, output
    run = run_file(history)
    _, load = split_seeding(history)
    answered = load[load["status"] != 0]
    corrected_s = (answered["t_complete_ns"] - answered["t_intended_ns"]) / 1e9
    service_s = (answered["t_complete_ns"] - answered["t_invoke_ns"]) / 1e9
    # About 50 were due in the first half of the pause (a Poisson count: sd about 7).
    assert (corrected_s >= PAUSE_S / 2).sum() >= 30
    assert (service_s >= PAUSE_S / 2).sum() <= cap
    assert run["arrivals_waited"] >= 30
    figures = check(history)
    assert figures["all_corrected_max_ms"] >= 0.9 * PAUSE_S * 1000
    assert figures["all_corrected_p95_ms"] >= 10 * figures["all_p95_ms"]
    assert figures["send_lag_p99_ms"] >= 0.5 * PAUSE_S * 1000


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--keys", "0"], {}, "argument --keys: must be a whole number >= 1, not '0'"),
        (["--key-dist", "hot"], {}, "argument --key-dist: must be one of uniform, zipf, not 'hot'"),
        ([], {"LOCUST_ZIPF_S": "-1"}, "argument --zipf-s: must be a number >= 0, not '-1'"),
        (
            ["--arrival-rate", "0"],
            {},
            "argument --arrival-rate: must be operations per second > 0, not '0'",
        ),
    ],
)
def test_a_bad_option_is_one_line(locust, args, env, message):
    code, output = run_to_end(locust, "-f", "loadtests/", "--headless", *args, **env)
    assert code == 2
    assert output.splitlines() == [f"locust: error: {message}"]


def test_a_history_dir_that_cannot_be_made_is_one_line(locust, tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    history = tmp_path / "taken" / "history"
    code, output = run_to_end(locust, "-f", "loadtests/", "--headless", "--history-dir", history)
    assert code == 2
    assert output.splitlines()[-1].startswith("locust: error: argument --history-dir: ")
    assert "Traceback" not in output


def test_a_stale_threshold_without_a_history_is_one_line(locust):
    code, output = run_to_end(locust, "-f", "loadtests/", "--headless", "--max-stale-rate", "0.1")
    assert code == 2
    assert output.splitlines()[-1] == (
        "locust: error: argument --max-stale-rate: needs --history-dir, "
        "the stale reads are judged from it"
    )
    assert "Traceback" not in output


def test_a_run_stopped_while_seeding_measured_nothing(serve, locust, tmp_path):
    history = tmp_path / "history"
    code, output = run_to_end(
        locust,
        *("-f", "loadtests/read_heavy.py"),
        *headless(
            serve(CACHE_BACKEND="none", VIDEOS_WORK_MS=WORK_MS), history, "-u", "1", "-t", "1s"
        ),
        "--keys=100000",  # far more PUTs than one second holds
    )
    assert code == 2, output
    run = run_file(history)
    assert run["error"] == "stopped before seeding finished: nothing was measured"
    assert run["t_seeded_ns"] is None
    assert "Traceback" not in output


def test_a_run_that_cannot_seed_measures_nothing(locust, tmp_path):
    history = tmp_path / "history"
    code, output = run_to_end(
        locust,
        *("-f", "loadtests/read_heavy.py"),
        *headless(f"http://127.0.0.1:{free_port()}", history, "-u", "1", "-t", "10s"),
    )
    assert code == 2, output
    run = run_file(history)
    assert run["error"].startswith(f"seeding {run['host']} failed ({KEYS} requests), first: PUT ")
    assert run["error"] in output
    assert run["t_seeded_ns"] is None
    assert run["requests"] == 0
    assert "Traceback" not in output


def test_a_master_started_elsewhere_listens_on_loopback_only(locust, tmp_path):
    # Away from the checkout no config file applies: only the plugin's defaults hold.
    web_port, master_port = free_port(), free_port()
    ports = {web_port, master_port}
    process, output = locust(
        *("-f", ROOT / "loadtests" / "read_heavy.py", "--master"),
        *("--web-port", str(web_port), "--master-bind-port", str(master_port)),
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, output.read_text()
        listening = {
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(process.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        }
        if {port for _, port in listening} >= ports:
            break
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.1)
    assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening


def completed_rows(path):
    """The t_complete_ns of every whole row of a history file that a kill may have cut."""
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    whole = [row for row in rows if None not in row.values() and row["worker"]]
    return [int(row["t_complete_ns"]) for row in whole if not row["worker"].endswith("-seed")]


def test_a_killed_process_loses_at_most_the_last_second(serve, locust, tmp_path):
    """Fewer rows than a batch: without the timer, nothing of the load would be on disk."""
    history = tmp_path / "history"
    process, output = locust(
        *("-f", "loadtests/read_heavy.py"),
        *headless(serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS), history, "-u", "2"),
    )

    def tables():
        return output.read_text().count(" Aggregated ")

    # Locust prints its stats every 2 s; the first table with a request marks a moment of
    # the load, and the kill comes two tables (4 s of Locust's clock) later: by then the
    # history must hold rows completed after the mark, whatever the number of requests.
    wait_for(lambda: "/videos/[id]" in output.read_text(), process, output)
    marked_ns, seen = time.time_ns(), tables()
    wait_for(lambda: tables() >= seen + 2, process, output)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)

    (path,) = history_files(history)
    assert any(t > marked_ns for t in completed_rows(path))

    # The run did not finish: its record, written when the test started, says so.
    code, out = check_run(history)
    assert code == 2
    assert out.splitlines() == [
        f"cachebench check: {history}: the history is incomplete, no figures from part of the "
        f"load: {path.name} truncated: its writer never reported it done"
    ]


def check_run(history):
    """`cachebench check` on a run directory: (exit code, output)."""
    result = subprocess.run(
        [CACHEBENCH, "check", str(history)], capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout + result.stderr


def distributed(locust, host, history, workers, *args):
    """A master and one worker per directory in `workers`, each writing its history there, all
    on a port of their own: (master, its output, [worker, ...])."""
    port = str(free_port())
    master = locust(
        *("-f", "loadtests/read_heavy.py", "--master", "--master-bind-port", port),
        *("--expect-workers", str(len(workers))),
        *headless(host, history, "-u", "4", *args),
    )
    started = [
        locust(
            *("-f", "loadtests/read_heavy.py", "--worker", "--master-port", port),
            *("--history-dir", str(directory)),
        )[0]
        for directory in workers
    ]
    return (*master, started)


def test_workers_send_their_histories_to_the_master(serve, locust, tmp_path):
    """As across machines: each worker writes into a directory of its own."""
    history, own = tmp_path / "history", [tmp_path / "worker-1", tmp_path / "worker-2"]
    host = serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS)
    master, output, workers = distributed(
        locust, host, history, own, "-t", "3s", "--max-failure-rate", "1"
    )
    assert master.wait(timeout=120) == 0, output.read_text()
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]

    run = run_file(history)
    sent = [path for directory in own for path in history_files(directory)]
    assert len(sent) == 2
    assert sorted(run["history_files"]) == sorted(f.name for f in history_files(history))
    assert {f.name for f in history_files(history)} >= {path.name for path in sent}
    for path in sent:
        assert (history / path.name).read_bytes() == path.read_bytes()
        about = run["histories"][path.name]
        assert about["delivery"] == "sent"
        assert about["rows"] == len(path.read_text().splitlines()) - 1 > 0
    assert len({run["histories"][path.name]["sender"] for path in sent}) == 2
    assert run["incomplete"] is None
    assert list(history.glob(".*")) == [], "no partial file left"

    code, out = check_run(history)
    assert code == 0, out
    _, load = split_seeding(history)
    assert load["worker"].str.rsplit("-", n=2).str[0].nunique() == 2, "users of both workers"


def test_a_worker_killed_mid_run_makes_the_run_incomplete(serve, locust, tmp_path):
    history, own = tmp_path / "history", [tmp_path / "worker-1", tmp_path / "worker-2"]
    host = serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS)
    master, output, (killed, survivor) = distributed(locust, host, history, own)

    def loading(directory):  # the worker's file has rows: its users are running
        return any(len(p.read_text().splitlines()) > 1 for p in history_files(directory))

    wait_for(lambda: loading(own[0]) and loading(own[1]), master, output)
    os.killpg(killed.pid, signal.SIGKILL)
    os.kill(master.pid, signal.SIGTERM)
    assert master.wait(timeout=120) == 2, output.read_text()
    assert survivor.wait(timeout=60) == 0

    (lost,) = history_files(own[0])
    run = run_file(history)
    assert run["histories"][lost.name]["rows"] is None
    assert run["incomplete"].startswith(f"history of worker {lost.name[8:-4]} missing: ")
    assert run["exit_code"] == 2
    assert "incomplete run, no figures from part of the load" in output.read_text()
    (kept,) = history_files(own[1])
    assert run["histories"][kept.name]["delivery"] == "sent"

    code, out = check_run(history)
    assert code == 2
    assert out.splitlines() == [
        f"cachebench check: {history}: the history is incomplete, no figures from part of the "
        f"load: {lost.name} missing (the worker disappeared without sending it)"
    ]


def test_ctrl_c_on_every_process_keeps_every_history(serve, locust, tmp_path):
    """As a terminal's Ctrl-C reaches a master and workers started from it: each worker
    stops and sends its history on its own, and waits until the master has it."""
    history, own = tmp_path / "history", [tmp_path / "worker-1", tmp_path / "worker-2"]
    host = serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS)
    master, output, workers = distributed(locust, host, history, own, "--max-failure-rate", "1")

    def loading(directory):
        return any(len(p.read_text().splitlines()) > 1 for p in history_files(directory))

    wait_for(lambda: loading(own[0]) and loading(own[1]), master, output)
    for process in (master, *workers):
        os.kill(process.pid, signal.SIGINT)
    assert master.wait(timeout=120) == 0, output.read_text()
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]

    run = run_file(history)
    assert run["incomplete"] is None
    for directory in own:
        (path,) = history_files(directory)
        assert (history / path.name).read_bytes() == path.read_bytes()
    assert check_run(history)[0] == 0


@pytest.mark.redis
def test_a_warm_seeding_fills_the_cache_and_the_test_ends_its_measure_time_later(
    serve, locust, tmp_path
):
    history = tmp_path / "history"
    url = serve(CACHE_BACKEND="redis", VIDEOS_WORK_MS=WORK_MS)
    args = ("--seed", "warm", "--measure-time", "1.5", "-u", "2", "-t", "60s")
    code, output = run_to_end(
        locust, "-f", "loadtests/read_heavy.py", *headless(url, history, *args)
    )
    assert code == 0, output

    run = run_file(history)
    assert (run["seed"], run["measure_time"]) == ("warm", 1.5)
    # Ended by --measure-time after seeding, long before Locust's --run-time.
    assert 1.5e9 <= run["t_stop_ns"] - run["t_seeded_ns"] < 60e9
    seeding, load = split_seeding(history)
    puts, gets = seeding[seeding["op"] == "put"], seeding[seeding["op"] == "get"]
    keys = list(range(1, KEYS + 1))
    assert sorted(puts["key"]) == keys
    assert sorted(gets["key"]) == keys
    assert puts["t_complete_ns"].max() <= gets["t_invoke_ns"].min()
    assert (gets["status"] == 200).all()
    assert (
        gets.set_index("key")["value"]
        .sort_index()
        .equals(puts.set_index("key")["value"].sort_index())
    )
    # The measured load starts from a full cache: a GET of an id not written since is a hit.
    load = load.sort_values("t_invoke_ns")
    writes = load[load["op"] != "get"].groupby("key")["t_invoke_ns"].min()
    first_gets = load[load["op"] == "get"].groupby("key").first()
    untouched = first_gets[
        first_gets["t_complete_ns"] < writes.reindex(first_gets.index).fillna(float("inf"))
    ]
    assert len(untouched) > 0
    assert (untouched["cache"] == "HIT").all()


def test_a_random_seed_sends_the_same_operations_again(serve, locust, tmp_path):
    host = serve(CACHE_BACKEND="simple", VIDEOS_WORK_MS=WORK_MS)

    def operations(name, *args):
        history = tmp_path / name
        code, output = run_to_end(
            locust,
            *("-f", "loadtests/mixed.py"),
            *headless(host, history, "-u", "1", "-t", "2s", *args),
        )
        assert code == 0, output
        _, load = split_seeding(history)
        load = load.sort_values("t_invoke_ns")
        return list(zip(load["op"], load["key"], strict=True))

    first = operations("first", "--random-seed", "7")
    again = operations("again", "--random-seed", "7")
    other = operations("other", "--random-seed", "8")
    fresh = operations("fresh")
    # Each run stops after its own number of operations: the shorter is where the longer began.
    shortest = min(len(first), len(again), len(other), len(fresh))
    assert shortest > 50, "enough operations to tell sequences apart"
    assert first[:shortest] == again[:shortest]
    assert other[:shortest] != first[:shortest]
    assert fresh[:shortest] != first[:shortest]
    assert run_file(tmp_path / "first")["random_seed"] == 7
    assert run_file(tmp_path / "fresh")["random_seed"] is None
