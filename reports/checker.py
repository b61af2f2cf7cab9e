"""The stale-read checker: judge every read of a history against its writes, per key.

A write is a PUT (it writes its name) or a DELETE (it writes "absent"). One answered 2xx
happened; one that failed (status 0 or 5xx) may or may not have happened, so it can explain a
read but never supersedes one; any other answer (4xx, and a DELETE's 404, which changed
nothing) did not happen. A write W is superseded at the earliest completion of a write that
happened and was invoked after W completed. A GET returns a write through its value (names
are unique; a 404 returns "absent", written by every DELETE and by the initial state of every
key but those in INITIAL_VALUES); it is

- a phantom when no write on its key wrote that value,
- a future read when every such write was invoked after the GET completed,
- stale when every such write invoked by then was superseded before the GET was
  invoked; its staleness age is the GET's invocation minus the latest of those
  supersessions,
- ok otherwise. A GET that failed (status 0 or 5xx, or an unexpected status) is unjudged.

A read that more than one write could have returned (a 404, or a name written twice) is
judged in its favour: stale only if all of them were superseded, aged from the last.

A name the harness writes (NAME_PATTERN) by a writer that is not in the history was written
by an earlier run against the same server (one that keeps its state, under --host): it is
taken as part of the key's state before the history began, like INITIAL_VALUES, so a read
of it is ok until a write of this history supersedes it, and stale after; never a phantom.

Clocks: with a clock skew S (`skew_ns`: a bound on how far apart the clocks of the processes
that wrote the history may be), every "before" and "after" above between two operations
means "by more than S"; times closer than S are concurrent, which is judged in the read's
favour. A write is superseded only by a write invoked more than S after it completed, a
read may return any write invoked up to S after it completed, and a read is stale only when
the supersession came more than S before its invocation. Its staleness age is still the
invocation minus the supersession, as the clocks say it.
"""

import numpy as np
import pandas as pd

from reports.history_format import INITIAL_VALUES, NAME_PATTERN

VERDICTS = ("ok", "stale", "phantom", "future", "unjudged")
# A final read is judged as a read after everything: a stale one means a lost write.
FINAL_VERDICTS = ("ok", "lost", "phantom", "unjudged")

BEFORE_ALL = np.iinfo(np.int64).min  # when the initial state was written
NEVER = np.iinfo(np.int64).max  # when a write no later write supersedes is superseded


def classify_reads(history: pd.DataFrame, skew_ns: int = 0) -> pd.DataFrame:
    """Every GET of `history` (a read_history frame), judged against the whole history, with
    clocks that may be `skew_ns` apart (see the module's docstring).

    Returns the GET rows, with their index in `history`, and three more columns: `verdict`
    (categorical, one of VERDICTS), `staleness_ns` (Int64: the staleness age of a stale
    read, NA for any other) and `earlier_run` (it returned a name an earlier run wrote).
    """
    gets = history[history["op"] == "get"]
    latest, found, explained = _latest_supersession(
        history, gets, gets["t_complete_ns"] + skew_ns, skew_ns
    )
    t_invoke = gets["t_invoke_ns"].to_numpy()
    judged = _judged(gets)
    stale = judged & found & (latest < t_invoke - skew_ns)
    verdict = np.full(len(gets), "ok", dtype=object)
    verdict[stale] = "stale"
    verdict[~found] = "future"
    verdict[~explained] = "phantom"
    verdict[~judged] = "unjudged"
    age = np.zeros(len(gets), dtype=np.int64)
    age[stale] = t_invoke[stale] - latest[stale]
    return gets.assign(
        verdict=pd.Categorical(verdict, categories=VERDICTS),
        staleness_ns=pd.arrays.IntegerArray(age, mask=~stale),
        earlier_run=_earlier_run(history, gets),
    )


def classify_final_reads(
    history: pd.DataFrame, final_reads: pd.DataFrame, skew_ns: int = 0
) -> pd.DataFrame:
    """Each final read (read_final_reads) judged as a read after every operation of `history`,
    whose clocks may be `skew_ns` apart.

    Returns `final_reads` with a `verdict` column (categorical, one of FINAL_VERDICTS): `lost`
    when the write it returned was superseded, so that a later write was lost.
    """
    after_everything = pd.Series(NEVER, index=final_reads.index)
    latest, _, explained = _latest_supersession(history, final_reads, after_everything, skew_ns)
    verdict = np.full(len(final_reads), "ok", dtype=object)
    verdict[latest < NEVER] = "lost"
    verdict[~explained] = "phantom"
    verdict[~_judged(final_reads)] = "unjudged"
    return final_reads.assign(verdict=pd.Categorical(verdict, categories=FINAL_VERDICTS))


def _judged(reads: pd.DataFrame) -> np.ndarray:
    # A 2xx without a name read nothing: its body was not a video (a worker killed while
    # answering cuts the body short after the headers), and the client failed it.
    status = reads["status"]
    read_a_name = status.between(200, 299) & (reads["value"] != "")
    return (read_a_name | (status == 404)).to_numpy()


def _latest_supersession(
    history: pd.DataFrame, reads: pd.DataFrame, t_complete: pd.Series, skew_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each read, the latest supersession among the writes it could have returned.

    Those are the writes on its key of the value it returned (see the module's docstring)
    that were invoked by its `t_complete` (the skew already added: the latest invocation
    that may still precede it). Returns three arrays aligned with `reads`:
    latest (NEVER where no such write was superseded), found (there is such a write) and
    explained (some write on its key wrote its value, whenever it was invoked).
    """
    writes = _writes(history, reads)
    write_pairs, read_pairs = _pairs(writes, reads)

    # The writes each read could have returned, by time of invocation, each carrying the
    # latest supersession among itself and those of its pair invoked before it.
    candidates = pd.DataFrame(
        {
            "pair": write_pairs,
            "t_invoke_ns": writes["t_invoke_ns"].to_numpy(),
            "latest": _superseded_at(writes, skew_ns),
        }
    ).sort_values(["pair", "t_invoke_ns"], kind="stable")
    candidates["latest"] = candidates.groupby("pair", sort=False)["latest"].cummax()
    candidates = candidates.sort_values("t_invoke_ns", kind="stable")

    lookup = pd.DataFrame(
        {
            "pair": read_pairs,
            "t_complete_ns": t_complete.to_numpy(np.int64),
            "position": np.arange(len(reads)),
        }
    ).sort_values("t_complete_ns", kind="stable")
    matched = pd.merge_asof(
        lookup,
        candidates.astype({"latest": "Int64"}),  # nullable, so that no match stays exact
        left_on="t_complete_ns",
        right_on="t_invoke_ns",
        by="pair",
        direction="backward",
    )
    latest = np.empty(len(reads), dtype=np.int64)
    found = np.empty(len(reads), dtype=bool)
    positions = matched["position"].to_numpy()
    found[positions] = matched["latest"].notna().to_numpy()
    latest[positions] = matched["latest"].fillna(NEVER).to_numpy(np.int64)
    return latest, found, pd.Series(read_pairs).isin(write_pairs).to_numpy()


def _earlier_run(history: pd.DataFrame, reads: pd.DataFrame) -> np.ndarray:
    """Which `reads` returned a name written by a writer absent from `history`."""
    writer = reads["value"].str.fullmatch(NAME_PATTERN) & (reads["status"] != 404)
    names = reads["value"].str.extract(NAME_PATTERN, expand=False)
    return (writer.fillna(False) & ~names.isin(history["worker"])).to_numpy(bool)


def _writes(history: pd.DataFrame, reads: pd.DataFrame) -> pd.DataFrame:
    """Every write that may have happened, and the initial state of every key read: absent
    or its INITIAL_VALUES name, and any name an earlier run wrote there (_earlier_run).

    Columns: key, value (NA for absent), t_invoke_ns, definite (it surely happened), and
    done_ns: when it had taken effect if it did: its completion, or NEVER for a timeout,
    which the server may still carry out after the client gave up.
    """
    status = history["status"]
    succeeded = status.between(200, 299)
    failed = (status == 0) | (status >= 500)
    rows = history[history["op"].isin(("put", "delete")) & (succeeded | failed)]
    writes = pd.DataFrame(
        {
            "key": rows["key"],
            "value": rows["value"].where(rows["op"] == "put"),
            "t_invoke_ns": rows["t_invoke_ns"],
            "definite": succeeded[rows.index],
            "done_ns": rows["t_complete_ns"].where(rows["status"] != 0, NEVER),
        }
    )
    keys = pd.Series(pd.unique(reads["key"].to_numpy(np.int64)))
    earlier = reads[_earlier_run(history, reads)].drop_duplicates(["key", "value"])
    initial = pd.DataFrame(
        {
            "key": pd.concat([keys, earlier["key"]], ignore_index=True),
            "value": pd.concat(
                [keys.map(INITIAL_VALUES).astype("string"), earlier["value"]], ignore_index=True
            ),
            "t_invoke_ns": BEFORE_ALL,
            "definite": True,
            "done_ns": BEFORE_ALL,
        }
    )
    return pd.concat([initial, writes], ignore_index=True)


def _superseded_at(writes: pd.DataFrame, skew_ns: int) -> np.ndarray:
    """When each write was superseded: the earliest completion of a definite write on its key
    invoked more than `skew_ns` after it was done (NEVER if there is none)."""
    # The initial state supersedes nothing: nothing was done before it.
    definite = writes.loc[writes["definite"] & (writes["t_invoke_ns"] > BEFORE_ALL)]
    definite = definite.sort_values(["key", "t_invoke_ns"], kind="stable")
    # The earliest completion among each definite write and those invoked after it.
    definite = definite.assign(
        earliest=definite["done_ns"]
        .iloc[::-1]
        .groupby(definite["key"].iloc[::-1], sort=False)
        .cummin()
        .iloc[::-1]
        .astype("Int64")
    )
    done = writes["done_ns"].to_numpy(np.int64)
    lookup = pd.DataFrame(
        {
            "key": writes["key"].to_numpy(),
            # NEVER stays NEVER: a write that may yet take effect is never superseded.
            "done_ns": np.where(done > NEVER - skew_ns, NEVER, done + skew_ns),
            "position": np.arange(len(writes)),
        }
    ).sort_values("done_ns", kind="stable")
    matched = pd.merge_asof(
        lookup,
        definite[["key", "t_invoke_ns", "earliest"]].sort_values("t_invoke_ns", kind="stable"),
        left_on="done_ns",
        right_on="t_invoke_ns",
        by="key",
        direction="forward",
        allow_exact_matches=False,
    )
    superseded = np.empty(len(writes), dtype=np.int64)
    superseded[matched["position"].to_numpy()] = (
        matched["earliest"].fillna(NEVER).to_numpy(np.int64)
    )
    return superseded


def _pairs(writes: pd.DataFrame, reads: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """One integer per (key, value) of each write and of each read, equal exactly when both
    are; absent (a write's NA, a read's 404) is a value of its own."""
    keys, _ = pd.factorize(pd.concat([writes["key"], reads["key"]], ignore_index=True))
    values, names = pd.factorize(pd.concat([writes["value"], reads["value"]], ignore_index=True))
    values[len(writes) :][(reads["status"] == 404).to_numpy()] = -1  # as NA is
    pairs = keys.astype(np.int64) * (len(names) + 1) + (values + 1)
    return pairs[: len(writes)], pairs[len(writes) :]
