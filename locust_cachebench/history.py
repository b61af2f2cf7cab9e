"""Writing the operation history (format: reports/history_format.py), and the names that make
every write recognisable in it.

One file per Locust process, `history-<process id>.csv`. Rows are buffered in memory and
written in batches, so that recording costs a list append per request, not a write: when
FLUSH_EVERY_ROWS are waiting, and every FLUSH_EVERY_S by a timer of the plugin's (this module
knows nothing of gevent), so that a process killed mid-run loses at most the last second.
"""

import csv
import os
import re
import secrets
import socket
from pathlib import Path

from reports.history_format import FILE_PATTERN, WRITTEN_COLUMNS

# Rows kept in memory before a write: about a megabyte, a few seconds of a busy process.
FLUSH_EVERY_ROWS = 10_000
# Seconds between two writes of whatever is waiting, however little (locust_cachebench/plugin.py).
FLUSH_EVERY_S = 1.0

_process_ids: dict[int, str] = {}


def process_id() -> str:
    """An id of this process, unique across machines, processes and runs: host, pid, token.

    Computed per pid, because `--processes` forks after this module is imported.
    """
    pid = os.getpid()
    if pid not in _process_ids:
        host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "host"
        _process_ids[pid] = f"{host}-{pid}-{secrets.token_hex(3)}"
    return _process_ids[pid]


class Writer:
    """One writer of the history (a Locust user, or the seeding): its id and its names.

    A PUT's name is `<worker>#<n>`, n counting this writer's PUTs from 1, so no two writes
    in a run carry the same name and a read's value tells which write it saw.
    """

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._writes = 0

    def next_name(self) -> str:
        self._writes += 1
        return f"{self.worker}#{self._writes}"


class HistoryWriter:
    """Rows of one process, buffered and appended to `history-<process>.csv` in `directory`."""

    def __init__(self, directory: Path, process: str) -> None:
        self.path = Path(directory) / FILE_PATTERN.replace("*", process)
        # "x": two processes must never share a file, even if a run reuses a directory.
        self._file = self.path.open("x", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(WRITTEN_COLUMNS)
        self._rows: list[tuple] = []
        self.rows_written = 0

    def record(
        self,
        op: str,
        key: int,
        value: str,
        status: int,
        cache: str,
        t_invoke_ns: int,
        t_complete_ns: int,
        worker: str,
        t_intended_ns: int | None = None,
    ) -> None:
        """Keep one operation (the columns of WRITTEN_COLUMNS, in order); one without an
        intended time was due when it was sent."""
        t_intended_ns = t_invoke_ns if t_intended_ns is None else t_intended_ns
        self._rows.append(
            (op, key, value, status, cache, t_invoke_ns, t_complete_ns, worker, t_intended_ns)
        )
        if len(self._rows) >= FLUSH_EVERY_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows and hand them to the OS (they survive a crash of Locust)."""
        if self._file.closed:
            return
        self._csv.writerows(self._rows)
        self.rows_written += len(self._rows)
        self._rows.clear()
        self._file.flush()

    def close(self) -> None:
        self.flush()
        self._file.close()


class NoHistory:
    """What records when no --history-dir was given: nothing."""

    rows_written = 0

    def record(self, *row: object) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
