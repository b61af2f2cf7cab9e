"""Reading history and final-reads files, and refusing malformed ones with a HistoryError."""

import json

import pandas as pd
import pytest
from histories import get, history, put

from reports.history import HistoryError, read_final_reads, read_history, run_window, to_history
from reports.history_format import COLUMNS, FINAL_READS_FILE, RUN_FILE

HEADER = ",".join(COLUMNS) + "\n"


def test_history_files_are_merged_in_order_of_invocation(tmp_path):
    history(put(2, "A", 30, 40)).to_csv(tmp_path / "history-a.csv", index=False)
    history(get(2, None, 10, 20), get(2, "A", 50, 60)).to_csv(
        tmp_path / "history-b.csv", index=False
    )
    h = read_history(tmp_path)
    assert list(h["t_invoke_ns"]) == [10, 30, 50]
    assert list(h["value"]) == ["", "A", "A"]
    assert h["status"].dtype == "int32"


def test_a_name_the_writer_quoted_is_read_whole(tmp_path):
    """Names are the client's: one may hold a comma, a quote or a newline, which the CSV
    writer quotes."""
    name = 'a,"b"\nc'
    history(put(2, name, 30, 40), get(2, name, 50, 60)).to_csv(
        tmp_path / "history-a.csv", index=False
    )
    assert list(read_history(tmp_path)["value"]) == [name, name]


def test_a_history_without_intended_times_was_sent_when_due(tmp_path):
    """Histories written before t_intended_ns (or by another writer) still read, beside new
    ones: each operation of theirs was intended when it was invoked."""
    (tmp_path / "history-old.csv").write_text(HEADER + "get,1,,404,MISS,10,20,w\n")
    history(get(1, None, 30, 40, t_intended=25)).to_csv(tmp_path / "history-new.csv", index=False)
    h = read_history(tmp_path)
    assert list(h["t_intended_ns"]) == [10, 25]
    assert h["t_intended_ns"].dtype == "int64"


def test_final_reads_are_read_when_the_run_made_them(tmp_path):
    assert read_final_reads(tmp_path) is None
    history(get(2, "A", 50, 60), get(3, None, 50, 60)).to_csv(
        tmp_path / FINAL_READS_FILE, index=False
    )
    final_reads = read_final_reads(tmp_path)
    assert list(final_reads["key"]) == [2, 3]
    assert list(final_reads["status"]) == [200, 404]


def test_final_reads_are_gets_only(tmp_path):
    history(put(2, "A", 50, 60)).to_csv(tmp_path / FINAL_READS_FILE, index=False)
    with pytest.raises(HistoryError, match="other than get"):
        read_final_reads(tmp_path)


def test_to_history_types_and_sorts_a_frame():
    frame = pd.DataFrame([put(2, "A", 30, 40), get(2, "A", 10, 20)], columns=COLUMNS)
    h = to_history(frame.astype(str))
    assert list(h["op"]) == ["get", "put"]
    assert h["key"].dtype == "int64"
    assert list(h["op"].cat.categories) == ["get", "put", "delete"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("", "not a readable CSV"),
        ('get,1,"x\n', "not a readable CSV"),
        ("a,b\n1,2\n", "lacks the columns"),
        (HEADER + "get,1,x,200,,1.5,2,w\n", "malformed value"),
        (HEADER + "get,1,x,200,,,2,w\n", "malformed value"),
        (HEADER + "get,1,x,99999999999,,1,2,w\n", "malformed value"),
        (HEADER + "post,1,x,200,,1,2,w\n", "an op other than"),
        (HEADER.replace("\n", ",t_intended_ns\n") + "get,1,x,200,,1,2,w,\n", "malformed value"),
    ],
)
def test_a_malformed_history_file_is_a_history_error(tmp_path, content, match):
    (tmp_path / "history-a.csv").write_text(content)
    with pytest.raises(HistoryError, match=match):
        read_history(tmp_path)


def test_a_file_that_is_not_text_is_a_history_error(tmp_path):
    (tmp_path / "history-a.csv").write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(HistoryError, match="not a readable CSV"):
        read_history(tmp_path)


def test_a_missing_or_empty_directory_is_a_history_error(tmp_path):
    with pytest.raises(HistoryError, match="not a directory"):
        read_history(tmp_path / "missing")
    with pytest.raises(HistoryError, match="no history"):
        read_history(tmp_path)


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ("null", "is not a run record"),
        ("[1, 2]", "is not a run record"),
        ('{"t_seeded_ns": 1, "t_stop_ns": "9"}', "must be whole nanoseconds"),
        ('{"t_seeded_ns": true, "t_stop_ns": 9}', "must be whole nanoseconds"),
        ('{"t_seeded_ns": 1}', "stopped before it measured anything"),
        ("{not json", "cannot read"),
    ],
)
def test_a_malformed_run_record_is_a_history_error(tmp_path, record, says):
    (tmp_path / RUN_FILE).write_text(record)
    with pytest.raises(HistoryError, match=says):
        run_window(tmp_path)


def run_with(tmp_path, **rows):
    """A run directory whose record lists history-<name>.csv with `rows` for each name, and
    holds two rows in history-a.csv and one in history-b.csv."""
    history(put(2, "A", 30, 40), get(2, "A", 50, 60)).to_csv(
        tmp_path / "history-a.csv", index=False
    )
    history(get(2, None, 10, 20)).to_csv(tmp_path / "history-b.csv", index=False)
    listed = {f"history-{name}.csv": {"rows": n, "problem": None} for name, n in rows.items()}
    (tmp_path / RUN_FILE).write_text(json.dumps({"histories": listed}))
    return tmp_path


def test_a_run_whose_files_are_all_whole_is_read(tmp_path):
    assert len(read_history(run_with(tmp_path, a=2, b=1))) == 3


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ({"a": 2, "b": 1, "c": 5}, "history-c.csv missing$"),
        ({"a": 3, "b": 1}, "history-a.csv truncated: 2 rows of the 3 its writer reported$"),
        ({"a": 1, "b": 1}, "history-a.csv truncated: 2 rows of the 1 its writer reported$"),
        ({"a": None, "b": 1}, "history-a.csv truncated: its writer never reported it done$"),
        (
            {"a": None, "b": None},
            "history-a.csv truncated: its writer never reported it done; "
            "history-b.csv truncated: its writer never reported it done$",
        ),
    ],
)
def test_a_run_with_part_of_its_history_is_refused_naming_the_file(tmp_path, rows, says):
    with pytest.raises(HistoryError, match="the history is incomplete, no figures from part of "):
        read_history(run_with(tmp_path, **rows))
    with pytest.raises(HistoryError, match=says):
        read_history(tmp_path)


def test_what_the_run_knows_of_a_missing_file_is_said(tmp_path):
    run_with(tmp_path, a=2, b=1)
    record = json.loads((tmp_path / RUN_FILE).read_text())
    record["histories"]["history-w.csv"] = {"rows": None, "problem": "the worker disappeared"}
    (tmp_path / RUN_FILE).write_text(json.dumps(record))
    with pytest.raises(HistoryError, match=r"history-w.csv missing \(the worker disappeared\)$"):
        read_history(tmp_path)


@pytest.mark.parametrize(
    "histories",
    [[], {"../history-a.csv": {"rows": 1}}, {"history-a.csv": {"rows": "2"}}, {"x.csv": {}}],
)
def test_a_malformed_list_of_histories_is_a_history_error(tmp_path, histories):
    run_with(tmp_path, a=2)
    (tmp_path / RUN_FILE).write_text(json.dumps({"histories": histories}))
    with pytest.raises(HistoryError, match="`histories` is not a map of history files"):
        read_history(tmp_path)
