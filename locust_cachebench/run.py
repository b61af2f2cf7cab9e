"""One Locust process's part of a load test: settings, history file, key choice, seeding, hit
counts, and at the end the thresholds (the exit code) and `locust-run.json`.

Importing this module registers its Locust event listeners; every scenario imports it
through locust_cachebench.users, and Python imports it once however many scenarios are loaded.
"""

import atexit
import itertools
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import locust
import locust.log
from flask import Response, request
from locust import events
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.event import EventHook
from locust.runners import MasterRunner, WorkerRunner
from locust.web import WebUI

from locust_cachebench.client import VideosClient
from locust_cachebench.history import HistoryWriter, NoHistory, Writer, process_id
from locust_cachebench.hits import WEB_UI_TAB, WEB_UI_TABLE, HitCounter, format_table, web_ui_rows
from locust_cachebench.keys import KeyChooser, key_chooser
from locust_cachebench.options import Settings, SettingsError, add_options
from reports.history_format import RUN_FILE
from reports.redact import redact

log = logging.getLogger("loadtests")

DEFAULT_HOST = "http://127.0.0.1:8000"  # where `tox -e serve` listens
SEED_CONCURRENCY = 8
# A process busier than this is saturated (Locust's own CPU warning threshold, in %).
CPU_SATURATED = 90
# Tutorial ids lie above the keyspace, one block of 2^32 per Locust worker.
PRIVATE_IDS_PER_PROCESS = 2**32


class CpuMeter:
    """This process's CPU use over the measured period, in % of one core.

    Locust samples CPU every 10 s only, so its warning never fires in a shorter run; a load
    generator near 100 % of its core is what makes throughput figures untrustworthy.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None
        self.percent: float | None = None

    def start(self) -> None:
        self._start = (time.monotonic(), time.process_time())
        self.percent = None

    def current(self) -> float | None:
        if self._start is None:
            return self.percent
        wall, cpu = time.monotonic() - self._start[0], time.process_time() - self._start[1]
        return round(100 * cpu / wall, 1) if wall > 0 else None

    def stop(self) -> None:
        self.percent = self.current()
        self._start = None


@dataclass(frozen=True)
class Verdict:
    """One threshold applied at the end of a run."""

    option: str
    limit: float
    value: float

    @property
    def passed(self) -> bool:
        return self.value <= self.limit


class LoadRun:
    """What this Locust process knows of the run; created by the `init` event."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.rng = random.Random()
        self.configure(Settings.from_options(environment.parsed_options))
        self.process = process_id()
        self.history: HistoryWriter | NoHistory = NoHistory()
        self.deleted: set[int] = set()  # ids this process deleted and has not PUT back yet
        self.hits = HitCounter()
        self.cpu = CpuMeter()
        self.workers: dict[str, dict[str, Any]] = {}  # on a master: what each worker reported
        self.error: str | None = None
        self.verdicts_at_quit: list[Verdict] = []
        self.test_started = False
        self.t_seeded_ns: int | None = None
        self.t_stop_ns: int | None = None
        self._users = itertools.count(1)
        self._private_ids = itertools.count(0)

    def configure(self, settings: Settings) -> None:
        self.settings = settings
        self.choose_key: KeyChooser = key_chooser(
            settings.key_dist, settings.keys, settings.zipf_s, self.rng
        )

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    # What users ask of the run.

    def next_worker_id(self) -> str:
        return f"{self.process}-u{next(self._users)}"

    def key_to_write(self) -> int:
        """A deleted id first, so that the keyspace stays live; else a chosen id."""
        return self.deleted.pop() if self.deleted else self.choose_key()

    def private_id(self) -> int:
        """An id no other user of any process touches (the tutorial's own video)."""
        index = max(getattr(self.environment.runner, "worker_index", 0), 0)
        return self.settings.keys + 1 + index * PRIVATE_IDS_PER_PROCESS + next(self._private_ids)

    # Event listeners.

    def attach(self, web_ui: WebUI | None) -> None:
        """Register this run's listeners on its environment's events."""
        ev = self.environment.events
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.reset_stats.add_listener(self.hits.reset)
        ev.quitting.add_listener(self.on_quitting)
        ev.quit.add_listener(self.on_quit)
        if self.is_worker:
            ev.report_to_master.add_listener(self.on_report_to_master)
        elif isinstance(self.environment.runner, MasterRunner):
            ev.worker_report.add_listener(self.on_worker_report)
        if web_ui is not None:
            self.extend_web_ui(web_ui)

    def on_test_start(self, **_kwargs: object) -> None:
        self.test_started = True
        try:
            # Again: the web UI's form, or a master's options on a worker, may have changed them.
            self.configure(Settings.from_options(self.environment.parsed_options))
            self.open_history()
        except (SettingsError, OSError) as exc:
            self.abort(f"cannot start the load test: {exc}")
            return
        self.deleted.clear()
        self.hits.reset()
        if not self.is_worker:
            try:
                self.seed()
            except SeedError as exc:
                self.abort(str(exc))
                return
            self.t_seeded_ns = time.time_ns()
            # The measured period starts now, not when seeding began.
            self.environment.stats.reset_all()
        self.cpu.start()

    def on_test_stopping(self, **_kwargs: object) -> None:
        self.t_stop_ns = time.time_ns()

    def on_test_stop(self, **_kwargs: object) -> None:
        self.history.flush()
        self.cpu.stop()

    def on_report_to_master(self, client_id: str, data: dict, **_kwargs: object) -> None:
        data["cachebench"] = {
            "process": self.process,
            "history_file": self.history_file(),
            "cpu_percent": self.cpu.current(),
            "hits": self.hits.take(),
        }

    def on_worker_report(self, client_id: str, data: dict, **_kwargs: object) -> None:
        report = data.get("cachebench")
        if report is not None:
            self.hits.add(report["hits"])
            self.workers[client_id] = {k: v for k, v in report.items() if k != "hits"}

    def on_quitting(self, **_kwargs: object) -> None:
        runner = self.environment.runner
        if runner is not None:
            # On Ctrl-C or SIGTERM, Locust fires `quitting` with the users still running and
            # stops them only afterwards: stop them first, so that their last rows are kept.
            # A master's stop waits for its workers to stop, which flushes their histories
            # before the thresholds below judge them.
            runner.stop()
        self.history.close()
        if self.is_worker:
            return
        if self.test_started and self.t_seeded_ns is None and self.error is None:
            # Stopped (-t, Ctrl-C) while seeding: there was no measured load.
            self.error = "stopped before seeding finished: nothing was measured"
            log.error(self.error)
        verdicts = self.verdicts()
        for verdict in verdicts:
            outcome = "passed" if verdict.passed else "FAILED"
            log.log(
                logging.INFO if verdict.passed else logging.ERROR,
                f"{verdict.option} {verdict.limit:g}: {outcome} ({verdict.value:.4g})",
            )
        if self.error is not None:
            # Not 1, Locust's "some requests failed": this run measured nothing at all.
            self.environment.process_exit_code = 2
        elif not all(v.passed for v in verdicts):
            self.environment.process_exit_code = 1
        elif (
            self.settings.max_failure_rate is not None
            and not locust.log.unhandled_greenlet_exception
        ):
            # The failure threshold replaces Locust's own rule (any failure exits with 1).
            self.environment.process_exit_code = 0
        self.verdicts_at_quit = verdicts

    def on_quit(self, exit_code: int, **_kwargs: object) -> None:
        # Fired after Locust's summary, with the exit code it settled on.
        if self.is_worker:
            return
        logging.getLogger("locust.stats_logger").info(format_table(self.hits.rows()) + "\n")
        if self.settings.history_dir is not None:
            path = self.settings.history_dir / RUN_FILE
            try:
                write_json(path, self.record(self.verdicts_at_quit, exit_code))
            except OSError as exc:
                log.error(f"could not write {path}: {exc}")

    # The parts.

    def abort(self, message: str) -> None:
        """Stop the test before it measures anything, with `message` and exit code 2."""
        log.error(message)
        self.error = message
        runner = self.environment.runner
        if runner is None:  # run_single_user
            sys.exit(message)
        options = self.environment.parsed_options
        # Not from within test_start, which runs in the greenlet that quit() would kill.
        gevent.spawn(runner.quit if options is None or options.headless else runner.stop)

    def open_history(self) -> None:
        directory = self.settings.history_dir
        if directory is not None and isinstance(self.history, NoHistory):
            directory.mkdir(parents=True, exist_ok=True)
            self.history = HistoryWriter(directory, self.process)
            # For the exits that fire no `quitting` (run_single_user, an error in Locust).
            atexit.register(self.history.close)

    def history_file(self) -> str | None:
        path = getattr(self.history, "path", None)
        return path.name if path is not None else None

    def seed(self) -> None:
        """PUT every id of the keyspace once, recorded like any write."""
        failures: list[str] = []
        report = EventHook()  # seeding is not part of the measured requests

        def on_request(exception: Exception | None, url: str, **_kwargs: object) -> None:
            if exception is not None:
                failures.append(f"PUT {url}: {exception}")

        report.add_listener(on_request)
        host = self.environment.host or DEFAULT_HOST
        session = FastHttpSession(host, report, user=None, concurrency=SEED_CONCURRENCY)
        client = VideosClient(session, self.history, Writer(f"{self.process}-seed"))
        try:
            gevent.pool.Pool(SEED_CONCURRENCY).map(client.put, range(1, self.settings.keys + 1))
        finally:
            session.client.close()
        if failures:
            raise SeedError(
                f"seeding {redact(host)} failed ({len(failures)} PUTs), first: {failures[0]}"
            )
        log.info(f"Seeded {self.settings.keys} videos at {redact(host)}")

    def thresholds(self) -> list[tuple[str, float | None, Callable[[], float]]]:
        """Each threshold option, its limit (None: not set) and how to measure its value."""
        return [
            (
                "--max-failure-rate",
                self.settings.max_failure_rate,
                lambda: self.environment.stats.total.fail_ratio,
            ),
            ("--max-stale-rate", self.settings.max_stale_rate, self.stale_rate),
        ]

    def stale_rate(self) -> float:
        """The share of the measured GETs that were stale reads, judged from the history."""
        # Imported here: pandas and the checker cost a Locust process that never asks.
        from reports.figures import figures
        from reports.history import read_history

        history = read_history(self.settings.history_dir)
        return figures(history, start_ns=self.t_seeded_ns)["stale_rate"] or 0.0

    def verdicts(self) -> list[Verdict]:
        return [
            Verdict(option, limit, measure())
            for option, limit, measure in self.thresholds()
            if limit is not None
        ]

    def cpu_percent(self) -> dict[str, float | None]:
        own = {self.process: self.cpu.percent}
        return own | {w["process"]: w["cpu_percent"] for w in self.workers.values()}

    def record(self, verdicts: list[Verdict], exit_code: int) -> dict[str, Any]:
        """What locust-run.json says about the run (see README)."""
        runner = self.environment.runner
        options = self.environment.parsed_options
        stats = self.environment.stats.total
        cpu = self.cpu_percent()
        own_file = self.history_file()
        history_files = [own_file] if own_file else []
        history_files += sorted(
            w["history_file"] for w in self.workers.values() if w["history_file"]
        )
        counts = dict(getattr(runner, "final_user_classes_count", {}) or {})
        return {
            "locust_version": locust.__version__,
            "hostname": socket.gethostname(),
            "command": [redact(arg) for arg in sys.argv],
            "host": self.environment.host and redact(self.environment.host),
            "user_classes": sorted(u.__name__ for u in self.environment.user_classes),
            "user_count": sum(counts.values()) or getattr(options, "num_users", None),
            "user_classes_count": counts,
            "processes": len(runner.worker_indexes) if isinstance(runner, MasterRunner) else 1,
            **{k: v for k, v in asdict(self.settings).items() if k != "history_dir"},
            "t_seeded_ns": self.t_seeded_ns,
            "t_stop_ns": self.t_stop_ns,
            "cpu_warning": bool(
                getattr(runner, "cpu_warning_emitted", False)
                or getattr(runner, "worker_cpu_warning_emitted", False)
                or any(p is not None and p >= CPU_SATURATED for p in cpu.values())
            ),
            "cpu_percent": cpu,
            "requests": stats.num_requests,
            "failures": stats.num_failures,
            "fail_ratio": stats.fail_ratio,
            "total_rps": stats.total_rps,
            "hit_rate": {row.pop("scenario"): row for row in self.hits.rows()},
            "history_files": history_files,
            "thresholds": [asdict(v) | {"passed": v.passed} for v in verdicts],
            "error": self.error,
            "exit_code": exit_code,
        }

    def extend_web_ui(self, web_ui: WebUI) -> None:
        """A "Cache hits" tab next to Locust's own, fed with its /stats/requests answers."""
        web_ui.template_args["extended_tabs"] = [WEB_UI_TAB]
        web_ui.template_args["extended_tables"] = [WEB_UI_TABLE]

        def add_hit_rates(response: Response) -> Response:
            if request.path.endswith("/stats/requests") and response.is_json:
                body = response.get_json()
                body["extended_stats"] = [
                    {"key": WEB_UI_TAB["key"], "data": web_ui_rows(self.hits.rows())}
                ]
                response.set_data(json.dumps(body))
            return response

        web_ui.app.after_request(add_hit_rates)


class SeedError(RuntimeError):
    """The keyspace could not be seeded; the message says which request failed and how."""


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` whole or not at all (a reader never sees half a file)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


_run: LoadRun | None = None


def current_run() -> LoadRun:
    """This process's LoadRun (made when Locust fires `init`)."""
    if _run is None:
        raise RuntimeError("Locust has not fired init: run the scenarios with locust")
    return _run


@events.init_command_line_parser.add_listener
def _on_init_command_line_parser(parser: Any, **_kwargs: object) -> None:
    add_options(parser)


@events.init.add_listener
def _on_init(environment: Environment, web_ui: WebUI | None = None, **_kwargs: object) -> None:
    global _run
    try:
        _run = LoadRun(environment)
    except SettingsError as exc:  # options that argparse accepted one by one
        print(f"locust: error: argument {exc}", file=sys.stderr)
        sys.exit(2)
    directory = _run.settings.history_dir
    if directory is not None:
        # Now rather than when the test starts: a directory that cannot be made is one
        # line and an exit, like any other bad option.
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"locust: error: argument --history-dir: {exc}", file=sys.stderr)
            sys.exit(2)  # as argparse exits for the other options
    _run.attach(web_ui)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        gevent.signal_handler(signal.SIGINT, _interrupt_main)


def _interrupt_main() -> None:
    """Ctrl-C, raised where Locust expects it: in the main greenlet, which then shuts down.

    Python raises KeyboardInterrupt in whatever code runs when the signal comes, and
    geventhttpclient closes sockets under a bare `except:` that swallows it; with gunicorn's
    sync workers closing every connection, about one Ctrl-C in seven was lost that way. A
    signal handled by the event loop never lands in a user's code.
    """
    gevent.get_hub().parent.throw(KeyboardInterrupt)
