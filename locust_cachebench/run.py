"""What one Locust process knows of the run: its settings and key choice, its history file (and
on a master, those of its workers), hit counts and CPU meter, what its workers reported, and
when seeding and stopping happened.

The `init` listener (locust_cachebench/plugin.py) makes one per environment and hangs it on the
environment, `environment.cachebench`, where users and listeners read it.
"""

import atexit
import itertools
import random
from typing import Any

from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locust_cachebench.arrivals import Arrivals, combined
from locust_cachebench.cpu import CpuMeter
from locust_cachebench.history import HistoryWriter, NoHistory, process_id
from locust_cachebench.hits import HitCounter
from locust_cachebench.keys import KeyChooser, key_chooser
from locust_cachebench.options import Settings
from locust_cachebench.transfer import Histories

DEFAULT_HOST = "http://127.0.0.1:8000"  # where `tox -e serve` listens
# Tutorial ids lie above the keyspace, one block of 2^32 per Locust worker.
PRIVATE_IDS_PER_PROCESS = 2**32
# The load-generating processes a master starts a test with, handed to its workers with its
# options: each sends its share of --arrival-rate.
PROCESSES_OPTION = "cachebench_processes"


class LoadRun:
    """What this Locust process knows of the run."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment
        self.rng = random.Random()
        self.configure(Settings.from_options(environment.parsed_options))
        # A worker's own --history-dir (from its command line, or its master's under
        # --processes): where it writes its file, whichever directory the master names.
        self.own_history_dir = self.settings.history_dir
        self.process = process_id()
        self.history: HistoryWriter | NoHistory = NoHistory()
        # On a master or a single process with a history: the files the run must have.
        self.histories: Histories | None = None
        self.incomplete: str | None = None  # why the run's history is not whole
        self.deleted: set[int] = set()  # ids this process deleted and has not PUT back yet
        self.hits = HitCounter()
        self.cpu = CpuMeter()
        self.arrivals: Arrivals | None = None  # the open loop's, on a load-generating process
        # On a master: what each worker process that took part in the test reported last.
        self.workers: dict[str, dict[str, Any]] = {}
        self.error: str | None = None
        self.test_started = False
        self.t_seeded_ns: int | None = None
        self.t_stop_ns: int | None = None
        self._users = itertools.count(1)
        self._private_ids = itertools.count(0)

    def configure(self, settings: Settings) -> None:
        self.settings = settings
        if settings.random_seed is not None:
            # Locust picks each user's next task with the random module, and the run draws
            # ids (and an open loop's arrivals) from self.rng: seeding both makes the test's
            # sequence of operations the same each time. Each process draws its own sequence.
            random.seed(f"{settings.random_seed}/{self.process_index}/tasks")
            self.rng.seed(f"{settings.random_seed}/{self.process_index}/ids")
        self.choose_key: KeyChooser = key_chooser(
            settings.key_dist, settings.keys, settings.zipf_s, self.rng
        )

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    @property
    def is_master(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    @property
    def process_index(self) -> int:
        """This process's place among the load generators: a worker's index, else 0."""
        return max(getattr(self.environment.runner, "worker_index", 0), 0)

    @property
    def open_loop(self) -> bool:
        return self.settings.arrival_rate is not None

    def start_arrivals(self) -> None:
        """Send this process's share of --arrival-rate from now on (open loop)."""
        settings = self.settings
        processes = 1
        if self.is_worker:
            processes = getattr(self.environment.parsed_options, PROCESSES_OPTION, 1)
        self.arrivals = Arrivals(self.environment, self.rng, settings.max_in_flight)
        self.arrivals.start(
            settings.arrival_rate / processes, settings.arrival, self.environment.user_classes
        )

    def tell_workers_their_share(self) -> None:
        """On a master: how many processes share --arrival-rate, sent to the workers with the
        options that start the test (after the `test_start` listeners)."""
        workers = self.environment.runner.worker_count
        setattr(self.environment.parsed_options, PROCESSES_OPTION, workers)

    def stop_arrivals(self) -> None:
        if self.arrivals is not None:
            self.arrivals.stop()

    # What users ask of the run.

    def next_worker_id(self) -> str:
        return f"{self.process}-u{next(self._users)}"

    def key_to_write(self) -> int:
        """A deleted id first, so that the keyspace stays live; else a chosen id."""
        return self.deleted.pop() if self.deleted else self.choose_key()

    def private_id(self) -> int:
        """An id no other user of any process touches (the tutorial's own video)."""
        return (
            self.settings.keys
            + 1
            + self.process_index * PRIVATE_IDS_PER_PROCESS
            + next(self._private_ids)
        )

    # The history file and what the processes measured.

    def open_history(self) -> None:
        """Open this process's history file, if the run keeps a history (the master's options
        decide) and it is not open yet."""
        directory = self.settings.history_dir
        if directory is None or not isinstance(self.history, NoHistory):
            return
        if self.is_worker:
            directory = self.own_history_dir or directory
        directory.mkdir(parents=True, exist_ok=True)
        self.history = HistoryWriter(directory, self.process)
        # For the exits that fire no `quitting` (run_single_user, an error in Locust).
        atexit.register(self.history.close)
        if not self.is_worker:
            self.histories = Histories(directory)
            self.histories.expect_own(self.history.path.name, self.process)
            self.incomplete = "the run has not finished"  # what a killed run's record says

    def history_file(self) -> str | None:
        path = getattr(self.history, "path", None)
        return path.name if path is not None else None

    def report(self) -> dict[str, Any]:
        """What a worker sends the master with each of its stats reports (the hits: those
        counted since the last report)."""
        return {
            "process": self.process,
            "history_file": self.history_file(),
            "cpu_percent": self.cpu.current(),
            "hits": self.hits.take(),
            "test_started": self.test_started,
            "arrivals": self.arrivals and self.arrivals.report(),
        }

    def add_worker_report(self, report: dict[str, Any]) -> None:
        """Take in a worker's `report()`."""
        self.hits.add(report["hits"])
        # A worker that never started the test generated no load: it may even be another
        # run's, whose master could not bind the port this master holds (then Locust counts
        # it among its workers).
        if report["test_started"]:
            self.workers[report["process"]] = {k: v for k, v in report.items() if k != "hits"}

    def processes(self) -> int:
        """The load-generating processes: this one, or the workers that took part in the test
        (as they reported, or announced their history: a worker may die before its report)."""
        if not self.is_master:
            return 1
        took_part = set(self.workers)
        if self.histories is not None:
            took_part |= {f.process for f in self.histories.files.values() if f.sender}
        return len(took_part)

    def cpu_percent(self) -> dict[str, float | None]:
        own = {self.process: self.cpu.percent}
        return own | {w["process"]: w["cpu_percent"] for w in self.workers.values()}

    def arrivals_record(self) -> dict[str, Any]:
        """The open loop's arrival counts and send lag, over this process and its workers."""
        reports = [self.arrivals and self.arrivals.report()]
        reports += [w.get("arrivals") for w in self.workers.values()]
        return combined([r for r in reports if r])

    def history_files(self) -> list[str]:
        """This process's history file, then those of its workers."""
        own = self.history_file()
        workers = {w["history_file"] for w in self.workers.values() if w["history_file"]}
        if self.histories is not None:
            workers |= set(self.histories.files)
        return ([own] if own else []) + sorted(workers - {own})
