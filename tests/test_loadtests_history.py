"""The history writer: the shared schema, buffered rows flushed on stop, one file per process,
and write names that no other write in a run carries."""

import csv
import os
import re

import pytest

from locust_cachebench import history as history_writer
from locust_cachebench.history import HistoryWriter, NoHistory, Writer, process_id
from reports.history import history_files, read_history
from reports.history_format import FILE_PATTERN, NAME_PATTERN, WRITTEN_COLUMNS


def record_ops(history, writer, count, key=1):
    for n in range(count):
        history.record("put", key, writer.next_name(), 201, "", 10 * n, 10 * n + 5, writer.worker)
        history.record("get", key, "", 404, "MISS", 10 * n + 6, 10 * n + 9, writer.worker)


def header(path):
    with path.open(newline="") as file:
        return tuple(next(csv.reader(file)))


def test_a_history_file_has_the_shared_schema(tmp_path):
    history = HistoryWriter(tmp_path, "p1")
    record_ops(history, Writer("p1-u1"), 3)
    history.close()
    assert history.path.match(FILE_PATTERN)
    assert header(history.path) == WRITTEN_COLUMNS
    rows = read_history(tmp_path)
    assert list(rows.columns) == list(WRITTEN_COLUMNS)
    # Sent when they were due: the closed loop's operations.
    assert (rows["t_intended_ns"] == rows["t_invoke_ns"]).all()
    assert rows["op"].tolist() == ["put", "get"] * 3
    assert rows["value"].tolist()[:2] == ["p1-u1#1", ""]
    assert rows["status"].tolist()[:2] == [201, 404]
    assert rows["cache"].tolist()[:2] == ["", "MISS"]


def test_rows_wait_in_memory_until_a_flush(tmp_path):
    history = HistoryWriter(tmp_path, "p1")
    record_ops(history, Writer("p1-u1"), 5)
    assert history.path.read_text() == ""  # not even the header: nothing written per request
    history.flush()  # what the test_stop event does
    assert len(read_history(tmp_path)) == 10
    assert history.rows_written == 10
    record_ops(history, Writer("p1-u2"), 1)
    history.close()  # what the quitting event does
    assert len(read_history(tmp_path)) == 12
    history.flush()  # late, after close: harmless
    history.close()


def test_a_full_buffer_is_written_without_waiting(tmp_path, monkeypatch):
    monkeypatch.setattr(history_writer, "FLUSH_EVERY_ROWS", 4)
    history = HistoryWriter(tmp_path, "p1")
    record_ops(history, Writer("p1-u1"), 3)  # 6 rows: one batch of 4 written, 2 kept
    assert history.rows_written == 4
    assert len(read_history(tmp_path)) == 4
    history.close()
    assert len(read_history(tmp_path)) == 6


def test_two_processes_never_share_a_file(tmp_path):
    HistoryWriter(tmp_path, "p1").close()
    with pytest.raises(FileExistsError):
        HistoryWriter(tmp_path, "p1")


def test_no_history_keeps_nothing(tmp_path):
    history = NoHistory()
    record_ops(history, Writer("p1-u1"), 3)
    history.close()
    assert list(tmp_path.iterdir()) == []


def test_every_write_name_is_unique_and_names_its_writer():
    writers = [Writer(f"p{p}-u{u}") for p in (1, 2) for u in (1, 2, 3)]
    names = [w.next_name() for _ in range(50) for w in writers]
    assert len(set(names)) == len(names)
    assert all(name.rpartition("#")[0] in {w.worker for w in writers} for name in names)
    assert writers[0].next_name() == "p1-u1#51"


def test_names_are_of_the_form_the_checker_recognises_from_other_runs():
    process = process_id()
    for writer in (Writer(f"{process}-u12"), Writer(f"{process}-seed")):
        name = writer.next_name()
        match = re.fullmatch(NAME_PATTERN, name)
        assert match is not None, name
        assert match["writer"] == writer.worker


def test_names_fit_the_api(monkeypatch):
    # The service stores names of up to 200 characters; a long host name must not break that.
    monkeypatch.setattr(history_writer.socket, "gethostname", lambda: "h" * 63 + ".example.org")
    monkeypatch.setattr(history_writer, "_process_ids", {})
    name = Writer(f"{process_id()}-u{10**6}").next_name() + str(10**9)
    assert len(name) <= 200


def test_forked_processes_write_their_own_files(tmp_path):
    """What Locust's --processes does: fork after import; each child must get its own id."""
    parent = process_id()
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                history = HistoryWriter(tmp_path, process_id())
                record_ops(history, Writer(f"{process_id()}-u1"), 4)
                history.close()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

    files = history_files(tmp_path)
    assert len(files) == 3
    history = read_history(tmp_path)
    workers = set(history["worker"])
    assert len(workers) == 3
    assert not any(worker.startswith(parent) for worker in workers)
    assert history["value"][history["op"] == "put"].is_unique
    assert len(history) == 3 * 8
