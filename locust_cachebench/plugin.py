"""The plugin's wiring to Locust's events.

On `init`, each environment gets its run (locust_cachebench/run.py), hung on it as
`environment.cachebench`, and the listeners below on its own events: seeding when a test starts,
the workers' reports and histories to the master (locust_cachebench/gathering.py), the
thresholds when Locust quits (the exit code), the hit rate table and locust-run.json after
Locust's summary, and the web UI's tab.

Importing this module registers its `init_command_line_parser` and `init` listeners on Locust's
events; every scenario imports it through locust_cachebench.users, and Python imports it once
however many scenarios are loaded.
"""

import logging
import signal
import sys
import time

import gevent
from locust import events
from locust.argument_parser import LocustArgumentParser
from locust.env import Environment
from locust.web import WebUI

from locust_cachebench import thresholds
from locust_cachebench.gathering import HistoryGatherer, HistorySender
from locust_cachebench.history import FLUSH_EVERY_S
from locust_cachebench.hits import format_table
from locust_cachebench.options import Settings, SettingsError, add_options
from locust_cachebench.record import record, write_json
from locust_cachebench.run import DEFAULT_HOST, LoadRun
from locust_cachebench.seeding import SeedError, seed
from locust_cachebench.web_ui import extend_web_ui
from reports.history_format import RUN_FILE, SEEDED_FILE

log = logging.getLogger("loadtests")


@events.init_command_line_parser.add_listener
def on_init_command_line_parser(parser: LocustArgumentParser, **_kwargs: object) -> None:
    add_options(parser)


@events.init.add_listener
def on_init(environment: Environment, web_ui: WebUI | None = None, **_kwargs: object) -> None:
    """Hang this process's run on `environment`, and listen to the environment's events."""
    try:
        run = LoadRun(environment)
    except SettingsError as exc:  # options that argparse accepted one by one
        print(f"locust: error: argument {exc}", file=sys.stderr)
        sys.exit(2)  # as argparse exits for the other options
    directory = run.settings.history_dir
    if directory is not None:
        # Now rather than when the test starts: a directory that cannot be made is one
        # line and an exit, like any other bad option.
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"locust: error: argument --history-dir: {exc}", file=sys.stderr)
            sys.exit(2)
    environment.cachebench = run
    RunListeners(run).attach(web_ui)


@events.init.add_listener
def on_init_deliver_ctrl_c(**_kwargs: object) -> None:
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


class RunListeners:
    """The listeners of one environment's run, from the start of a test to Locust's exit."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.verdicts: list[thresholds.Verdict] = []  # judged at `quitting`, recorded at `quit`
        self.flusher: gevent.Greenlet | None = None
        self.timer: gevent.Greenlet | None = None  # ends the test at --measure-time
        self.quitting = False
        self.sender = HistorySender(run) if run.is_worker else None
        self.gatherer = HistoryGatherer(run, self.write_record) if run.is_master else None

    def attach(self, web_ui: WebUI | None) -> None:
        """Register the listeners on the run's environment's events."""
        run = self.run
        ev = run.environment.events
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stopping.add_listener(self.on_test_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.request.add_listener(run.hits.on_request)
        ev.reset_stats.add_listener(run.hits.reset)
        ev.quitting.add_listener(self.on_quitting)
        ev.quit.add_listener(self.on_quit)
        if self.sender is not None:
            ev.report_to_master.add_listener(self.on_report_to_master)
            self.sender.attach()
        elif self.gatherer is not None:
            ev.worker_report.add_listener(self.on_worker_report)
            self.gatherer.attach()
        if web_ui is not None:
            extend_web_ui(web_ui, run.hits)

    def on_test_start(self, **_kwargs: object) -> None:
        run = self.run
        run.test_started = True
        try:
            # Again: the web UI's form, or a master's options on a worker, may have changed them.
            run.configure(Settings.from_options(run.environment.parsed_options))
            run.open_history()
        except (SettingsError, OSError) as exc:
            self.abort(f"cannot start the load test: {exc}")
            return
        if self.flusher is None:
            self.flusher = gevent.spawn(self.flush_every_second)
        if self.sender is not None:
            self.sender.announce()
        elif run.histories is not None:
            self.write_record()  # what a killed run leaves: the files it had, none complete
        run.deleted.clear()
        run.hits.reset()
        run.arrivals = None  # the web UI may start a closed loop after an open one
        if run.is_master:
            run.tell_workers_their_share()
        if not run.is_worker:
            try:
                host = run.environment.host or DEFAULT_HOST
                seeded = 0 if run.settings.seed == "none" else run.settings.keys
                seed(host, seeded, run.history, run.process, warm=run.settings.seed == "warm")
            except SeedError as exc:
                self.abort(str(exc))
                return
            run.t_seeded_ns = time.time_ns()
            # The measured period starts now, not when seeding began.
            run.environment.stats.reset_all()
            self.tell_seeded()
            if run.settings.measure_time is not None:
                self.timer = gevent.spawn_later(run.settings.measure_time, self.stop_test)
        if run.open_loop and not run.is_master:
            run.start_arrivals()
        run.cpu.start()

    def flush_every_second(self) -> None:
        # A process killed mid-run (SIGKILL, the OOM killer) loses only the rows recorded
        # since the last write: at most FLUSH_EVERY_S of them.
        while True:
            gevent.sleep(FLUSH_EVERY_S)
            self.run.history.flush()

    def tell_seeded(self) -> None:
        """Write SEEDED_FILE now: a runner times its faults from the end of seeding."""
        directory = self.run.settings.history_dir
        if directory is None:
            return
        try:
            write_json(directory / SEEDED_FILE, {"t_seeded_ns": self.run.t_seeded_ns})
        except OSError as exc:
            log.error(f"could not write {directory / SEEDED_FILE}: {exc}")

    def on_test_stopping(self, **_kwargs: object) -> None:
        self.run.t_stop_ns = time.time_ns()
        if self.timer is not None and self.timer is not gevent.getcurrent():
            self.timer.kill(block=False)  # stopped before its time: not the next test's end
        self.run.stop_arrivals()

    def on_test_stop(self, **_kwargs: object) -> None:
        self.run.history.flush()
        self.run.cpu.stop()
        if self.sender is not None:
            self.sender.send()
        elif self.gatherer is not None:
            self.gatherer.request()

    def on_report_to_master(self, client_id: str, data: dict, **_kwargs: object) -> None:
        data["cachebench"] = self.run.report()

    def on_worker_report(self, client_id: str, data: dict, **_kwargs: object) -> None:
        report = data.get("cachebench")
        if report is not None:
            self.run.add_worker_report(report)

    def on_quitting(self, environment: Environment, **_kwargs: object) -> None:
        if self.quitting:
            return  # Locust's SIGTERM handler shuts down, then its main greenlet again
        self.quitting = True
        run = self.run
        runner = environment.runner
        if runner is not None:
            # On Ctrl-C or SIGTERM, Locust fires `quitting` with the users still running and
            # stops them only afterwards: stop them first, so that their last rows are kept.
            # A master's stop waits for its workers to stop and send their histories.
            runner.stop()
        if self.flusher is not None:
            self.flusher.kill()
        run.history.close()
        if self.sender is not None:
            self.sender.wait_for_receipt()
            return
        if run.histories is not None:
            if self.gatherer is not None:
                self.gatherer.wait()
            run.histories.closed_own(run.history.path.name, run.history.rows_written)
            run.incomplete = run.histories.incomplete()
            if run.incomplete is not None:
                log.error(f"incomplete run, no figures from part of the load: {run.incomplete}")
            self.write_record()  # before the stale reads are judged from it
        if run.test_started and run.t_seeded_ns is None and run.error is None:
            # Stopped (-t, Ctrl-C) while seeding: there was no measured load.
            run.error = "stopped before seeding finished: nothing was measured"
            log.error(run.error)
        fail_ratio = environment.stats.total.fail_ratio
        self.verdicts = thresholds.verdicts(
            run.settings, fail_ratio, run.t_seeded_ns, run.incomplete
        )
        thresholds.log_verdicts(self.verdicts)
        code = thresholds.exit_code(run.error, self.verdicts, run.settings, run.incomplete)
        if code is not None:
            environment.process_exit_code = code

    def on_quit(self, exit_code: int, **_kwargs: object) -> None:
        # Fired after Locust's summary, with the exit code it settled on.
        run = self.run
        if run.is_worker:
            return
        logging.getLogger("locust.stats_logger").info(format_table(run.hits.rows()) + "\n")
        if run.settings.history_dir is not None:
            self.write_record(exit_code)

    def write_record(self, exit_code: int | None = None) -> None:
        """locust-run.json as the run stands (`exit_code` None until Locust quits)."""
        path = self.run.settings.history_dir / RUN_FILE
        try:
            write_json(path, record(self.run, self.verdicts, exit_code))
        except OSError as exc:
            log.error(f"could not write {path}: {exc}")

    def abort(self, message: str) -> None:
        """Stop the test before it measures anything, with `message` and exit code 2."""
        log.error(message)
        self.run.error = message
        if self.run.environment.runner is None:  # run_single_user
            sys.exit(message)
        # Not from within test_start, which runs in the greenlet that quit() would kill.
        gevent.spawn(self.stop_test)

    def stop_test(self) -> None:
        """End the test as Locust's --run-time does: headless, Locust quits; with the web UI,
        the test stops and the UI stays."""
        runner = self.run.environment.runner
        options = self.run.environment.parsed_options
        (runner.quit if options is None or options.headless else runner.stop)()
