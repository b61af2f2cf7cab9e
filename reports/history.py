"""Reading histories (format: reports/history_format.py) into pandas for checking.

The files are parsed typed, column by column as DTYPES says, by pyarrow's CSV reader: ten
million operations are read in seconds, their text columns as categories (few workers, three
cache verdicts) or as Arrow strings (the names), never as Python objects.
"""

import json
import mmap
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as arrow_csv

from reports.history_format import (
    ADDED_COLUMNS,
    COLUMNS,
    DTYPES,
    FILE_PATTERN,
    FINAL_READS_FILE,
    OPS,
    RUN_FILE,
)


class HistoryError(ValueError):
    """A history directory that cannot be read as one."""


def history_files(directory: Path) -> list[Path]:
    return sorted(Path(directory).glob(FILE_PATTERN))


def read_history(directory: Path) -> pd.DataFrame:
    """Every operation in `directory`'s history files, in one frame sorted by t_invoke_ns,
    with the columns of DTYPES.

    When the directory holds its run's RUN_FILE, every file the run record lists must be
    there whole (see `expected_histories`): else a HistoryError names what is missing, since
    figures from part of the load are not the run's.
    """
    if not Path(directory).is_dir():
        raise HistoryError(f"{directory} is not a directory")
    expected = expected_histories(directory)
    _refuse_incomplete(directory, [_unfinished(directory, n, a) for n, a in expected.items()])
    files = history_files(directory)
    if not files:
        raise HistoryError(f"no {FILE_PATTERN} files in {directory}")
    tables = [_read_csv(path) for path in files]
    rows = {path.name: table.num_rows for path, table in zip(files, tables, strict=True)}
    _refuse_incomplete(
        directory,
        [
            f"{name} truncated: {rows[name]} rows of the {about['rows']} its writer reported"
            for name, about in expected.items()
            if rows[name] != about["rows"]
        ],
    )
    return _to_frame(tables, directory)


def expected_histories(directory: Path) -> dict[str, dict]:
    """The history files of the run in `directory` as its RUN_FILE lists them (`histories`):
    each with `rows`, as many as its writer reported when it was done (None: never reported),
    and `problem`, what the run knows of why it is not. Empty for a directory without a run
    record, or with one from before run records listed their files."""
    path = Path(directory) / RUN_FILE
    if not path.exists():
        return {}
    histories = _run_record(path).get("histories", {})
    valid = isinstance(histories, dict) and all(
        fnmatch(name, FILE_PATTERN)
        and Path(name).name == name
        and isinstance(about, dict)
        and (about.get("rows") is None or type(about.get("rows")) is int)
        for name, about in histories.items()
    )
    if not valid:
        raise HistoryError(f"{path}: `histories` is not a map of history files to their rows")
    return histories


def read_final_reads(directory: Path) -> pd.DataFrame | None:
    """The final reads of `directory` (see FINAL_READS_FILE), or None if the run made none."""
    path = Path(directory) / FINAL_READS_FILE
    if not path.exists():
        return None
    final_reads = _to_frame([_read_csv(path)], path)
    if (final_reads["op"] != "get").any():
        raise HistoryError(f"{path}: an op other than get")
    return final_reads


def run_window(
    directory: Path, warmup_s: float = 0.0, duration_s: float | None = None
) -> tuple[int, int]:
    """The measurement window of the run in `directory`, from its RUN_FILE: `warmup_s` after
    seeding finished, to `duration_s` later or to the stop of the load, whichever is first.

    Raises HistoryError when the run has no RUN_FILE or measured nothing.
    """
    path = Path(directory) / RUN_FILE
    run = _run_record(path)
    times = [run.get(name) for name in ("t_seeded_ns", "t_stop_ns")]
    if None in times:
        raise HistoryError(f"{directory}: the run stopped before it measured anything")
    if not all(type(t) is int for t in times):  # bool is an int in Python, not here
        raise HistoryError(f"{path}: t_seeded_ns and t_stop_ns must be whole nanoseconds")
    start = times[0] + round(warmup_s * 1e9)
    end = times[1]
    if duration_s is not None:
        end = min(end, start + round(duration_s * 1e9))
    if end <= start:
        raise HistoryError(
            f"{directory}: the run stopped before its warm-up of {warmup_s:g} s ended"
        )
    return start, end


def write_final_reads(directory: Path, rows: list[dict]) -> Path:
    """Write the runner's final reads (dicts with COLUMNS) as FINAL_READS_FILE."""
    path = Path(directory) / FINAL_READS_FILE
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(path, index=False)
    return path


def to_history(frame: pd.DataFrame, source: object = "the history") -> pd.DataFrame:
    """`frame` (with at least COLUMNS, any dtypes) typed and sorted as read_history returns it,
    with every column of DTYPES (an ADDED_COLUMNS missing is filled from its stand-in).

    `source` names where the rows came from in the HistoryError raised for a malformed value.
    """
    # Missing from a file, or from some of the files read together (then NaN in those rows).
    added = {
        c: frame[c].fillna(frame[stand_in]) if c in frame else frame[stand_in]
        for c, stand_in in ADDED_COLUMNS.items()
    }
    try:
        history = frame.assign(**added).astype({c: t for c, t in DTYPES.items() if c != "op"})
    except (ValueError, TypeError, OverflowError) as exc:
        raise HistoryError(f"{source}: a malformed value: {exc}") from None
    # Checked first: pandas deprecates building a Categorical from values outside it.
    if not history["op"].isin(OPS).all():
        raise HistoryError(f"{source}: an op other than {', '.join(OPS)}")
    history["op"] = pd.Categorical(history["op"], categories=OPS)
    return history.sort_values("t_invoke_ns", kind="stable", ignore_index=True)


def _run_record(path: Path) -> dict:
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HistoryError(f"cannot read {path}: {exc}") from None
    if not isinstance(run, dict):
        raise HistoryError(f"{path} is not a run record: a JSON object was expected")
    return run


def _unfinished(directory: Path, name: str, about: dict) -> str | None:
    """What is wrong with the listed history file `name` before it is read, if anything."""
    why = f" ({about['problem']})" if about.get("problem") else ""
    if not (Path(directory) / name).exists():
        return f"{name} missing{why}"
    if about.get("rows") is None:
        return f"{name} truncated: its writer never reported it done{why}"
    return None


def _refuse_incomplete(directory: Path, problems: list[str | None]) -> None:
    problems = [p for p in problems if p is not None]
    if problems:
        raise HistoryError(
            f"{directory}: the history is incomplete, no figures from part of the load: "
            + "; ".join(problems)
        )


def _read_csv(path: Path) -> pa.Table:
    """The columns of DTYPES in the file at `path`, typed as DTYPES says, with every
    ADDED_COLUMNS it lacks filled from its stand-in. Any other column a writer added is not
    parsed: nothing reads it."""
    try:
        names = arrow_csv.open_csv(path).schema.names  # parses the header and one block
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise HistoryError(f"{path} lacks the columns {', '.join(missing)}")
        table = arrow_csv.read_csv(
            path,
            # Names are the client's, and may hold anything the CSV writer quoted.
            parse_options=arrow_csv.ParseOptions(newlines_in_values=_quotes(path)),
            memory_pool=_memory_pool(),
            convert_options=arrow_csv.ConvertOptions(
                include_columns=[c for c in names if c in DTYPES],
                column_types={c: _ARROW_TYPES[DTYPES[c]] for c in names if c in DTYPES},
                strings_can_be_null=False,  # an empty text is "", as the writer meant
            ),
        )
    except UnicodeDecodeError as exc:
        raise HistoryError(f"{path} is not a readable CSV file: {exc}") from None
    except pa.ArrowInvalid as exc:
        if "conversion error to int" in str(exc):
            raise HistoryError(f"{path}: a malformed value: {exc}") from None
        raise HistoryError(f"{path} is not a readable CSV file: {exc}") from None
    for column, stand_in in ADDED_COLUMNS.items():
        if column not in names:
            table = table.append_column(column, table.column(stand_in))
    return table


def _quotes(path: Path) -> bool:
    """Whether the file at `path` quotes a value: only then may one hold a newline, which the
    parser must then look for, a quarter slower. The harness's files quote none."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as text:
        return text.find(b'"') >= 0


# What each of DTYPES is read as; "op" is checked against OPS, then made a category of them.
_ARROW_TYPES = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "string": pa.large_string(),  # as pandas holds Arrow's strings: not converted again
    "category": pa.dictionary(pa.int32(), pa.string()),
}


def _memory_pool() -> pa.MemoryPool:
    """Arrow's jemalloc where Arrow has it, else Arrow's default. jemalloc keeps what is freed
    for a while, for the parser's next blocks to reuse instead of the kernel's fresh pages
    (a third fewer page faults than giving it back at once); _to_frame gives it back per
    column, for the checker's arrays to come."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a build of Arrow without jemalloc
        return pa.default_memory_pool()


def _op_codes(ops: pa.DictionaryArray) -> np.ndarray:
    """The index in OPS of each of `ops`, -1 for another."""
    of_word = pc.index_in(ops.dictionary, value_set=pa.array(OPS)).fill_null(-1)
    return of_word.to_numpy().astype(np.int8)[ops.indices.to_numpy()]


def _to_frame(tables: list[pa.Table], source: object) -> pd.DataFrame:
    """`tables` (from _read_csv) as one frame, as to_history returns it: checked, typed and
    sorted by t_invoke_ns, one column at a time, each freed once converted (the list is
    emptied: nothing else may hold them), so that the whole is never held twice."""
    # A column that only some files have (one a writer added) is null in the others' rows.
    table = pa.concat_tables(tables, promote_options="default")
    tables.clear()
    for column, dtype in DTYPES.items():
        if dtype.startswith("int") and table.column(column).null_count:
            raise HistoryError(f"{source}: a malformed value: an empty {column}")
    ops = np.concatenate([np.zeros(0, np.int8), *map(_op_codes, table.column("op").chunks)])
    if (ops < 0).any():
        raise HistoryError(f"{source}: an op other than {', '.join(OPS)}")
    t_invoke = table.column("t_invoke_ns").to_numpy()
    # Each writer's rows come in order: one file alone needs no sort.
    in_order = (t_invoke[1:] >= t_invoke[:-1]).all()
    order = None if in_order else np.argsort(t_invoke, kind="stable")
    columns = {}
    for name in table.column_names:
        if name == "op":
            column = pd.Categorical.from_codes(ops, categories=OPS)
        elif name == "t_invoke_ns":
            column = t_invoke  # converted above: not twice
        elif DTYPES[name] == "string":
            # Each of the parser's chunks holds its own names only: kept, not copied into one.
            column = pd.array(table.column(name), dtype=pd.StringDtype("pyarrow"))
        else:
            column = table.column(name).to_pandas(memory_pool=_memory_pool()).array
        columns[name] = column if order is None else column.take(order)
        table = table.drop_columns([name])
        _memory_pool().release_unused()
    return pd.DataFrame(columns, copy=False)
