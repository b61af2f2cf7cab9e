"""The history format: one row per operation a load-test client performed, as it saw it.

Written by the Locust scenarios (loadtests/_history.py) as `history-*.csv` files, read here
for checking. Nothing in it comes from the service's internals, so any server with the same
API can be judged from it.
"""

from pathlib import Path

import pandas as pd

# The columns every history file has, in this order; writers may add more after them.
COLUMNS = ("op", "key", "value", "status", "cache", "t_invoke_ns", "t_complete_ns", "worker")
DTYPES = {
    "op": "category",  # get, put, delete
    "key": "int64",  # the video id
    "value": "string",  # the name written, or the name read; empty for a 404 or an error
    "status": "int32",  # HTTP status; 0 for a transport error or timeout
    "cache": "string",  # the X-Cache header, empty if absent
    "t_invoke_ns": "int64",  # time.time_ns() just before sending
    "t_complete_ns": "int64",  # time.time_ns() just after the full response
    "worker": "string",  # a stable id of the Locust process and user
}
OPS = ("get", "put", "delete")
FILE_PATTERN = "history-*.csv"
INITIAL_VALUES = {1: "HelloWorld"}  # what the service holds before any write


class HistoryError(ValueError):
    """A history directory that cannot be read as one."""


def history_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob(FILE_PATTERN))


def read_history(directory: Path) -> pd.DataFrame:
    """Every operation in `directory`'s history files, in one frame sorted by t_invoke_ns."""
    files = history_files(directory)
    if not files:
        raise HistoryError(f"no {FILE_PATTERN} files in {directory}")
    frames = []
    for path in files:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise HistoryError(f"{path} lacks the columns {', '.join(missing)}")
        frames.append(frame)
    history = pd.concat(frames, ignore_index=True)
    try:
        history = history.astype({c: t for c, t in DTYPES.items() if t != "category"})
    except (ValueError, TypeError) as exc:
        raise HistoryError(f"{directory}: a history file has a malformed value: {exc}") from None
    history["op"] = pd.Categorical(history["op"], categories=OPS)
    if history["op"].isna().any():
        raise HistoryError(f"{directory}: an op other than {', '.join(OPS)}")
    return history.sort_values("t_invoke_ns", kind="stable", ignore_index=True)
