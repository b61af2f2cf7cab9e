"""Hand-built histories for the checker's tests: one call per operation, times in ns."""

import pandas as pd

from reports.checker import classify_reads
from reports.history import to_history
from reports.history_format import WRITTEN_COLUMNS


def put(key: int, name: str, t_invoke: int, t_complete: int, status: int = 201, **more) -> dict:
    return _op("put", key, name, status, t_invoke, t_complete, **more)


def delete(key: int, t_invoke: int, t_complete: int, status: int = 204, **more) -> dict:
    return _op("delete", key, "", status, t_invoke, t_complete, **more)


def get(key: int, name: str | None, t_invoke: int, t_complete: int, status=None, **more) -> dict:
    """A GET that returned `name`, or a 404 for None (or `status`, e.g. 0 for a timeout)."""
    if status is None:
        status = 404 if name is None else 200
    return _op("get", key, name or "", status, t_invoke, t_complete, **{"cache": "MISS", **more})


def history(*ops: dict) -> pd.DataFrame:
    return to_history(pd.DataFrame(list(ops), columns=WRITTEN_COLUMNS))


def verdicts(frame: pd.DataFrame, skew_ns: int = 0) -> list[tuple[str, int | None]]:
    """(verdict, staleness age) of each GET of `frame`, in order of invocation."""
    reads = classify_reads(frame, skew_ns)
    ages = [None if pd.isna(age) else int(age) for age in reads["staleness_ns"]]
    return list(zip(reads["verdict"].astype(str), ages, strict=True))


def _op(
    op, key, value, status, t_invoke, t_complete, worker="w1", cache="", t_intended=None
) -> dict:
    """One row; an operation without `t_intended` was sent when it was due."""
    return {
        "op": op,
        "key": key,
        "value": value,
        "status": status,
        "cache": cache,
        "t_invoke_ns": t_invoke,
        "t_complete_ns": t_complete,
        "worker": worker,
        "t_intended_ns": t_invoke if t_intended is None else t_intended,
    }
