"""The plugin in-process, as Locust's own tests do it: an Environment on events of its own with
the plugin's `init` listener, its runner, and Locust's events fired by the test.

Locust is imported here without its monkey-patching of the standard library, as Locust's own
pytest plugin avoids it. Patched when this module is collected, the session would break: the
conftest has imported ssl already (through redis and requests), so gevent warns (an error under
our warning filter), and with the warning ignored, Locust's own import dies in a RecursionError
in ssl (gevent issue 1016: urllib3 kept the unpatched SSLContext); it would also switch socket,
threading, subprocess and time to gevent under every test collected after this one. The plugin
needs no patching: it uses gevent directly, and geventhttpclient uses gevent's own sockets.
"""

import json
import os
import sys
from types import SimpleNamespace
from unittest import mock

import pytest

with mock.patch.dict(os.environ, {"LOCUST_SKIP_MONKEY_PATCH": "1"}):
    import gevent
    import gevent.monkey
    import locust.log
    from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
    from locust.env import Environment
    from locust.event import Events
    from locust.runners import MasterRunner
    from locust.stats import RequestStats

    from loadtests.read_heavy import ReadHeavyUser
    from locust_cachebench import plugin
    from locust_cachebench.hits import SCENARIO
    from locust_cachebench.run import LoadRun

from cachebench.processes import free_port
from reports.history_format import RUN_FILE, SEEDED_FILE


def locust_parser():
    """Locust's own parser with the plugin's options, reading no configuration file."""
    parser = get_empty_argument_parser(default_config_files=[])
    setup_parser_arguments(parser)
    plugin.on_init_command_line_parser(parser)
    return parser


def parse(*args: str):
    """Locust's options for the command line `args` (and no environment variable)."""
    return locust_parser().parse_args(list(args), env_vars={})


@pytest.fixture(autouse=True)
def no_listener_raises(monkeypatch):
    """Locust keeps "a listener raised" in a module global, which decides exit codes: start each
    test without it, and fail a test during which a listener raised."""
    monkeypatch.setattr(locust.log, "unhandled_greenlet_exception", False)
    yield
    assert not locust.log.unhandled_greenlet_exception, "a listener raised (see the log)"


@pytest.fixture
def environment():
    """Make environments as Locust's main does, `init` fired on events of their own; their
    runners quit after the test."""
    runners = []

    def make(
        *args: str, host: str | None = None, master: bool = False, web_ui: bool = False
    ) -> Environment:
        events = Events()
        events.init.add_listener(plugin.on_init)
        env = Environment(
            user_classes=[ReadHeavyUser], events=events, host=host, parsed_options=parse(*args)
        )
        runner = (
            env.create_master_runner("127.0.0.1", free_port())
            if master
            else env.create_local_runner()
        )
        runners.append(runner)
        # Not started: the test asks its Flask app directly.
        ui = env.create_web_ui("127.0.0.1", free_port(), delayed_start=True) if web_ui else None
        events.init.fire(environment=env, runner=runner, web_ui=ui)
        return env

    yield make
    for runner in runners:
        runner.quit()
        if isinstance(runner, MasterRunner):
            # Locust leaves its master's socket and zmq context to the process's exit.
            runner.server.close(linger=0)
            runner.server.socket.context.term()


def request(env: Environment, method: str = "GET", x_cache=None, failed: bool = False, **context):
    """Fire Locust's `request` event as a user's FastHttpSession does."""
    headers = None if x_cache is False else {} if x_cache is None else {"X-Cache": x_cache}
    env.events.request.fire(
        request_type=method,
        name="/videos/[id]",
        response_time=1.0,
        response_length=0,
        response=SimpleNamespace(headers=headers),
        context=context,
        exception=RuntimeError("GET: unexpected status 500") if failed else None,
        start_time=0.0,
        url="/videos/1",
    )


def quit_locust(env: Environment) -> int | None:
    """Fire `quitting` as Locust's shutdown does: the exit code the listeners set."""
    env.events.quitting.fire(environment=env, reverse=True)
    return env.process_exit_code


def test_the_run_hangs_on_its_environment(environment):
    env = environment("--keys", "20", "--key-dist", "uniform")
    other = environment()
    assert isinstance(env.cachebench, LoadRun)
    assert (env.cachebench.settings.keys, env.cachebench.settings.key_dist) == (20, "uniform")
    assert other.cachebench is not env.cachebench, "one run per environment, no global"
    user = ReadHeavyUser(env)
    user.on_start()
    assert user.load is env.cachebench
    assert user.context() == {SCENARIO: "ReadHeavyUser"}


def test_gets_and_hits_are_counted_per_scenario_from_request_events(environment):
    env = environment()
    for x_cache in ("HIT", "HIT", "MISS", None, False):  # None: no header; False: no response
        request(env, x_cache=x_cache, **{SCENARIO: "ReadHeavyUser"})
    request(env, x_cache="HIT", **{SCENARIO: "MixedUser"})
    request(env, "PUT", x_cache="HIT", **{SCENARIO: "MixedUser"})  # not a GET
    request(env, x_cache="HIT")  # not a scenario's user
    assert env.cachebench.hits.rows() == [
        {"scenario": "MixedUser", "gets": 1, "hits": 1, "rate": 1.0},
        {"scenario": "ReadHeavyUser", "gets": 5, "hits": 2, "rate": 0.4},
        {"scenario": "Aggregated", "gets": 6, "hits": 3, "rate": 0.5},
    ]
    env.events.reset_stats.fire()
    assert env.cachebench.hits.rows() == []


def test_a_users_gets_are_counted_from_the_servers_x_cache(environment, serve, monkeypatch):
    """Through Locust's own client: the user's context reaches the `request` listener."""
    monkeypatch.setattr(ReadHeavyUser, "host", serve(CACHE_BACKEND="filesystem"))
    env = environment("--keys", "1")
    user = ReadHeavyUser(env)
    user.on_start()
    user.write()
    user.read()  # MISS: the PUT invalidated the cached GET
    user.read()  # HIT
    assert env.cachebench.hits.rows() == [
        {"scenario": "ReadHeavyUser", "gets": 2, "hits": 1, "rate": 0.5}
    ]
    assert env.stats.total.num_requests == 3


@pytest.mark.parametrize(
    ("args", "failed", "code"),
    [
        ([], 1, None),  # Locust's own rule: 1, since a request failed
        (["--max-failure-rate", "0.5"], 1, 0),  # the threshold replaces Locust's rule
        (["--max-failure-rate", "0.1"], 1, 3),
        (["--max-failure-rate", "0"], 0, 0),
    ],
)
def test_the_failure_threshold_sets_the_exit_code(environment, args, failed, code):
    env = environment(*args)
    request(env)
    for _ in range(failed):
        request(env, failed=True)
    assert quit_locust(env) == code


@pytest.mark.parametrize(("stale", "code"), [(False, None), (True, 3)])
def test_the_stale_threshold_judges_the_history(environment, tmp_path, stale, code):
    env = environment("--history-dir", str(tmp_path), "--max-stale-rate", "0")
    run = env.cachebench
    run.open_history()
    run.history.record("put", 1, "w#1", 201, "", 10, 20, "w")
    run.history.record("put", 1, "w#2", 201, "", 30, 40, "w")
    # Read after the second write completed: the first write's name is a stale read.
    run.history.record("get", 1, "w#1" if stale else "w#2", 200, "HIT", 50, 60, "w")
    assert quit_locust(env) == code


def test_an_incomplete_history_is_not_judged_and_exits_with_2(environment, tmp_path, caplog):
    env = environment("--history-dir", str(tmp_path), "--max-stale-rate", "0")
    run = env.cachebench
    run.open_history()
    run.histories.expect("history-host-2-bbbbbb.csv", "host-2-bbbbbb", "worker-b")
    assert quit_locust(env) == 2
    assert run.incomplete == (
        "history of worker host-2-bbbbbb missing: history-host-2-bbbbbb.csv (not received)"
    )
    assert "--max-stale-rate 0: not judged, the history is incomplete" in caplog.text
    env.events.quit.fire(exit_code=2)
    record = json.loads((tmp_path / RUN_FILE).read_text())
    assert (record["incomplete"], record["thresholds"]) == (run.incomplete, [])


def test_a_run_that_could_not_seed_measured_nothing(environment):
    env = environment("--keys", "2", host=f"http://127.0.0.1:{free_port()}")
    env.events.test_start.fire(environment=env)
    assert env.cachebench.error.startswith(f"seeding {env.host} failed (2 requests), first: PUT ")
    request(env, failed=True)  # whatever Locust counted, a threshold cannot pass it
    assert quit_locust(env) == 2


def test_the_end_of_seeding_is_written_at_once(environment, tmp_path, serve):
    """Before the run ends: the matrix runner times its faults from it."""
    env = environment("--keys", "2", "--history-dir", str(tmp_path), host=serve())
    env.events.test_start.fire(environment=env)
    assert env.cachebench.error is None
    seeded = json.loads((tmp_path / SEEDED_FILE).read_text())
    assert seeded == {"t_seeded_ns": env.cachebench.t_seeded_ns}


def test_a_run_that_could_not_seed_writes_no_end_of_seeding(environment, tmp_path):
    env = environment("--keys", "2", "--history-dir", str(tmp_path),
                      host=f"http://127.0.0.1:{free_port()}")  # fmt: skip
    env.events.test_start.fire(environment=env)
    assert env.cachebench.error is not None
    assert not (tmp_path / SEEDED_FILE).exists()


def test_the_run_record(environment, tmp_path):
    env = environment("--keys", "5", "--history-dir", str(tmp_path), "--max-failure-rate", "0")
    run = env.cachebench
    run.open_history()
    request(env, x_cache="HIT", **{SCENARIO: "ReadHeavyUser"})
    request(env, x_cache="MISS", **{SCENARIO: "ReadHeavyUser"})
    code = quit_locust(env)
    env.events.quit.fire(exit_code=code)

    record = json.loads((tmp_path / RUN_FILE).read_text())
    assert record["user_classes"] == ["ReadHeavyUser"]
    assert (record["processes"], record["keys"], record["max_failure_rate"]) == (1, 5, 0.0)
    assert (record["requests"], record["failures"]) == (2, 0)
    assert record["hit_rate"] == {"ReadHeavyUser": {"gets": 2, "hits": 1, "rate": 0.5}}
    assert record["history_files"] == [run.history.path.name]
    assert record["histories"] == {
        run.history.path.name: {
            "process": run.process,
            "sender": None,
            "rows": 0,
            "delivery": "own",
            "problem": None,
        }
    }
    assert record["incomplete"] is None
    assert record["thresholds"] == [
        {"option": "--max-failure-rate", "limit": 0.0, "value": 0.0, "passed": True}
    ]
    assert (record["error"], record["exit_code"]) == (None, 0)
    assert list(record["cpu_percent"]) == [run.process]
    # A closed loop: no arrival rate, no schedule to keep.
    assert (record["arrival_rate"], record["arrival"], record["max_in_flight"]) == (
        None,
        "poisson",
        256,
    )
    assert record["arrivals_scheduled"] is record["send_lag_p99_ms"] is None


def worker_report(process: str, gets: int, hits: int, test_started: bool = True) -> dict:
    """What a worker sends with its stats: Locust's part (no requests) and the plugin's."""
    stats = RequestStats()
    return {
        "stats": stats.serialize_stats(),
        "stats_total": stats.total.get_stripped_report(),
        "errors": stats.serialize_errors(),
        "cachebench": {
            "process": process,
            "history_file": f"history-{process}.csv",
            "cpu_percent": 50.0,
            "hits": {"ReadHeavyUser": [gets, hits]},
            "test_started": test_started,
        },
    }


def test_a_master_counts_the_worker_processes_that_took_part(environment):
    env = environment(master=True)
    reports = [
        ("host_a", worker_report("host-1-aa", 2, 1)),
        ("host_b", worker_report("host-1-aa", 2, 1)),  # the same process, under another id
        ("host_c", worker_report("host-2-bb", 4, 1)),
        # Another run's worker, whose master could not bind this one's port.
        ("host_d", worker_report("host-3-cc", 0, 0, test_started=False)),
    ]
    for client_id, data in reports:
        env.events.worker_report.fire(client_id=client_id, data=data)
    run = env.cachebench
    assert run.processes() == 2
    assert run.history_files() == ["history-host-1-aa.csv", "history-host-2-bb.csv"]
    assert run.hits.rows() == [{"scenario": "ReadHeavyUser", "gets": 8, "hits": 3, "rate": 3 / 8}]


def test_the_options_are_a_group_of_their_own():
    parser = locust_parser()
    (group,) = [g for g in parser._action_groups if g.title == "cachebench"]
    options = [a.option_strings[0] for a in group._group_actions]
    assert options == [
        "--keys",
        "--key-dist",
        "--zipf-s",
        "--seed",
        "--random-seed",
        "--measure-time",
        "--history-dir",
        "--max-failure-rate",
        "--max-stale-rate",
        "--arrival-rate",
        "--arrival",
        "--max-in-flight",
    ]
    assert "exits with code 3" in parser.format_help()
    assert parser.parse_args([], env_vars={"LOCUST_KEYS": "7"}).keys == 7


def test_the_web_ui_has_a_cache_hits_tab(environment, monkeypatch):
    # Locust's web UI parses the process's command line for its form's extra options.
    monkeypatch.setattr(sys, "argv", ["locust"])
    env = environment(web_ui=True)
    for x_cache in ("HIT", *["MISS"] * 7):
        request(env, x_cache=x_cache, **{SCENARIO: "ReadHeavyUser"})
    # The form's extra options: the plugin's, all but the history directory, as before.
    options = env.web_ui.template_args["extra_options"]
    assert set(options) == {
        "keys",
        "key_dist",
        "zipf_s",
        "seed",
        "random_seed",
        "measure_time",
        "max_failure_rate",
        "max_stale_rate",
        "arrival_rate",
        "arrival",
        "max_in_flight",
    }
    assert env.web_ui.template_args["extended_tabs"] == [
        {"title": "Cache hits", "key": "cache-hits"}
    ]
    answer = env.web_ui.app.test_client().get("/stats/requests").get_json()
    assert answer["extended_stats"] == [
        {
            "key": "cache-hits",
            "data": [{"scenario": "ReadHeavyUser", "gets": 8, "hits": 1, "rate": "12.5%"}],
        }
    ]


def test_locust_did_not_monkey_patch_this_session():
    assert not gevent.monkey.is_module_patched("socket")
    assert not gevent.monkey.is_module_patched("threading")


def wait_for_greenlets(condition, timeout: float = 30) -> None:
    """Let the plugin's greenlets run until `condition()` holds (or `timeout` seconds pass)."""
    with gevent.Timeout(timeout, False):
        while not condition():
            gevent.sleep(0.01)


@pytest.mark.parametrize(("mode", "ends_with"), [(("--headless",), "quit"), ((), "stop")])
def test_the_measure_time_ends_the_test_as_run_time_would(environment, serve, mode, ends_with):
    """Headless, Locust quits; with the web UI, the test stops and the UI stays."""
    env = environment(*mode, "--keys", "2", "--measure-time", "0.05", host=serve())
    ended = []
    env.runner.quit = lambda: ended.append("quit")
    env.runner.stop = lambda: ended.append("stop")
    env.events.test_start.fire(environment=env)
    assert env.cachebench.t_seeded_ns is not None
    wait_for_greenlets(lambda: ended)
    assert ended == [ends_with]


def test_a_test_stopped_before_its_measure_time_is_not_ended_again(environment, serve):
    env = environment("--keys", "2", "--measure-time", "0.05", host=serve())
    ended = []
    env.runner.stop = lambda: ended.append("stop")
    env.events.test_start.fire(environment=env)
    env.events.test_stopping.fire(environment=env)  # stopped from the web UI, say
    gevent.sleep(0.5)  # ten times the measure time: its end would have come by now
    assert ended == []
