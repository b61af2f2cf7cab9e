"""A worker's history on its way to the master: chunked, reassembled whole or not at all, never
written outside the master's directory; and the master's list of the files a run must have."""

import pytest

from locust_cachebench.history import HistoryWriter, Writer
from locust_cachebench.transfer import Histories, TransferError, history_messages
from reports.history import read_history

WORKER = "host-7-abcdef"
NAME = f"history-{WORKER}.csv"


def worker_file(directory, rows):
    """A worker's closed history file of `rows` rows in `directory`."""
    directory.mkdir()
    history = HistoryWriter(directory, WORKER)
    writer = Writer(f"{WORKER}-u1")
    for n in range(rows):
        history.record("put", n % 5 + 1, writer.next_name(), 201, "", n, n + 1, writer.worker)
    history.close()
    return history


@pytest.fixture
def master(tmp_path):
    """The master's list, expecting this worker's file from sender "w1"."""
    histories = Histories(tmp_path / "master")
    histories.directory.mkdir()
    histories.expect(NAME, WORKER, "w1")
    return histories


def test_a_history_arrives_whole_in_chunks(tmp_path, master):
    history = worker_file(tmp_path / "worker", 300)
    messages = list(history_messages(history.path, history.rows_written, False, chunk_bytes=1000))
    assert len(messages) == -(-history.path.stat().st_size // 1000) > 10
    assert [master.receive("w1", m) for m in messages] == [False] * (len(messages) - 1) + [True]

    received = master.directory / NAME
    assert received.read_bytes() == history.path.read_bytes()
    assert received.stat().st_mode & 0o777 == 0o600
    assert master.record()[NAME] == {
        "process": WORKER,
        "sender": "w1",
        "rows": 300,
        "delivery": "sent",
        "problem": None,
    }
    assert master.incomplete() is None
    assert len(read_history(master.directory)) == 300


def test_half_a_history_is_never_seen_under_its_name(tmp_path, master):
    history = worker_file(tmp_path / "worker", 300)
    first, *_ = history_messages(history.path, 300, False, chunk_bytes=1000)
    assert master.receive("w1", first) is False
    assert not (master.directory / NAME).exists()
    assert master.pending() == [NAME]
    master.give_up(NAME, "the worker disappeared without sending it")
    assert list(master.directory.iterdir()) == []


def test_a_chunk_out_of_order_breaks_the_transfer(tmp_path, master):
    history = worker_file(tmp_path / "worker", 300)
    first, _, third, *_ = history_messages(history.path, 300, False, chunk_bytes=1000)
    master.receive("w1", first)
    with pytest.raises(TransferError, match=r"bytes 2000\+1000 of .* came after 1000"):
        master.receive("w1", third)
    assert list(master.directory.iterdir()) == [], "the partial file is gone"
    assert master.pending() == []
    assert master.incomplete() == (
        f"history of worker {WORKER} missing: {NAME} (bytes 2000+1000 of "
        f"{history.path.stat().st_size} came after 1000)"
    )


def test_a_file_already_in_the_masters_directory_is_not_sent_again(tmp_path):
    shared = tmp_path / "shared"
    history = worker_file(shared, 10)
    (message,) = history_messages(history.path, 10, True)
    assert message["data"] is None
    histories = Histories(shared)
    histories.expect(NAME, WORKER, "w1")
    assert histories.receive("w1", message) is True
    assert histories.files[NAME].delivery == "in place"


def test_a_file_said_to_be_in_place_that_is_not_there_is_missing(tmp_path, master):
    history = worker_file(tmp_path / "worker", 10)
    (message,) = history_messages(history.path, 10, True)
    assert master.receive("w1", message) is False
    assert master.incomplete().endswith(
        f"(reported as written here, {history.path.stat().st_size} bytes, but None)"
    )


@pytest.mark.parametrize(
    ("name", "process"),
    [
        ("../history-x.csv", "x"),
        ("history-../../etc/x.csv", "../../etc/x"),
        ("history-x.csv.sh", "x.csv.sh"),
        ("history-y.csv", "x"),  # another process's name
        ("locust-run.json", "x"),
        (None, "x"),
        ("history-x.csv", None),
    ],
)
def test_a_worker_can_name_no_file_but_its_own_history(master, name, process):
    with pytest.raises(TransferError):
        master.expect(name, process, "w2")


def test_a_worker_cannot_take_the_masters_own_file(master):
    master.expect_own("history-master-1-aaaaaa.csv", "master-1-aaaaaa")
    with pytest.raises(TransferError, match="the master's own history file"):
        master.expect("history-master-1-aaaaaa.csv", "master-1-aaaaaa", "w2")


def test_only_the_worker_that_announced_a_file_may_send_it(tmp_path, master):
    history = worker_file(tmp_path / "worker", 10)
    (message,) = history_messages(history.path, 10, False)
    with pytest.raises(TransferError, match="not a history file it took part with"):
        master.receive("w2", message)
    with pytest.raises(TransferError, match="a malformed message"):
        master.receive("w1", message | {"rows": "10"})


def test_the_run_is_incomplete_until_every_file_is_done(master):
    master.expect_own("history-master-1-aaaaaa.csv", "master-1-aaaaaa")
    assert master.incomplete() == (
        f"history of worker {WORKER} missing: {NAME} (not received); "
        "history of master-1-aaaaaa not closed: history-master-1-aaaaaa.csv"
    )
    master.closed_own("history-master-1-aaaaaa.csv", 20)
    master.give_up(NAME, "the worker disappeared without sending it")
    assert master.pending() == []
    assert master.incomplete() == (
        f"history of worker {WORKER} missing: {NAME} (the worker disappeared without sending it)"
    )
