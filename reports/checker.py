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

How it is computed: on integer codes (of keys, of (key, value) pairs) and sorted arrays, no
text compared after the names are coded once; every look-up of "the last write of this pair
invoked by then" or "the first write of this key invoked after that" is a binary search, so a
history of ten million operations is judged in seconds and in a few arrays of its length.
"""

from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reports.history_format import INITIAL_VALUES, NAME_PATTERN

VERDICTS = ("ok", "stale", "phantom", "future", "unjudged")
# A final read is judged as a read after everything: a stale one means a lost write.
FINAL_VERDICTS = ("ok", "lost", "phantom", "unjudged")

BEFORE_ALL = np.iinfo(np.int64).min  # when the initial state was written
NEVER = np.iinfo(np.int64).max  # when a write no later write supersedes is superseded

READS_AT_ONCE = 1_000_000
ABSENT = -1  # the value code of "absent": a DELETE's, a 404's, the initial state's


class Judged(NamedTuple):
    """The verdicts of a history's GETs, as arrays aligned with `positions`, their rows'
    positions in the history: `verdict` (codes into VERDICTS), `staleness_ns` (the age of a
    stale read, 0 for any other) and `earlier_run` (it returned a name an earlier run wrote)."""

    positions: np.ndarray
    verdict: np.ndarray
    staleness_ns: np.ndarray
    earlier_run: np.ndarray


def classify_reads(history: pd.DataFrame, skew_ns: int = 0) -> pd.DataFrame:
    """Every GET of `history` (a read_history frame), judged against the whole history, with
    clocks that may be `skew_ns` apart (see the module's docstring).

    Returns the GET rows, with their index in `history`, and three more columns: `verdict`
    (categorical, one of VERDICTS), `staleness_ns` (Int64: the staleness age of a stale
    read, NA for any other) and `earlier_run` (it returned a name an earlier run wrote).
    """
    judged = Judge(history, skew_ns).reads()
    stale = judged.verdict == VERDICTS.index("stale")
    return history.iloc[judged.positions].assign(
        verdict=pd.Categorical.from_codes(judged.verdict, categories=VERDICTS),
        staleness_ns=pd.arrays.IntegerArray(judged.staleness_ns, mask=~stale),
        earlier_run=judged.earlier_run,
    )


def classify_final_reads(
    history: pd.DataFrame, final_reads: pd.DataFrame, skew_ns: int = 0
) -> pd.DataFrame:
    """Each final read (read_final_reads) judged as a read after every operation of `history`,
    whose clocks may be `skew_ns` apart.

    Returns `final_reads` with a `verdict` column (categorical, one of FINAL_VERDICTS): `lost`
    when the write it returned was superseded, so that a later write was lost.
    """
    verdict = Judge(history, skew_ns).final_reads(final_reads)
    return final_reads.assign(verdict=pd.Categorical.from_codes(verdict, FINAL_VERDICTS))


class Judge:
    """The writes of one history, coded and sorted once, to judge its reads and any others
    (final reads) against, with clocks that may be `skew_ns` apart."""

    def __init__(self, history: pd.DataFrame, skew_ns: int = 0) -> None:
        self.history = history
        self.skew_ns = skew_ns
        self.is_get = (history["op"].cat.codes == 0).to_numpy()  # OPS[0]
        self.key_codes, self.keys = _factorized(history["key"])
        self.value_codes, self.values = _factorized(history["value"])
        self.earlier_names = _earlier_run_names(pd.Series(self.values), history["worker"])
        self.status = history["status"].to_numpy()

        # Every write that may have happened: key, value (ABSENT for a DELETE), invocation,
        # whether it surely happened (definite), and done: when it had taken effect if it
        # did: its completion, or NEVER for a timeout, which the server may still carry out
        # after the client gave up.
        status = self.status
        succeeded = (status >= 200) & (status <= 299)
        failed = (status == 0) | (status >= 500)
        op = history["op"].cat.codes.to_numpy()
        rows = np.flatnonzero((op != 0) & (succeeded | failed))
        self.w_key = self.key_codes[rows]
        self.w_value = np.where(op[rows] == 1, self.value_codes[rows], ABSENT)  # OPS[1]: put
        self.w_invoke = history["t_invoke_ns"].to_numpy()[rows]
        w_done = history["t_complete_ns"].to_numpy()[rows]
        self.w_done = np.where(status[rows] == 0, NEVER, w_done)
        definite = succeeded[rows]
        self.w_definite_done = w_done[definite]  # for visibility: when each surely took effect
        self.w_definite_key = self.w_key[definite]

        # The earliest completion among each definite write and those invoked after it on its
        # key, to find when any write was superseded (the initial state supersedes nothing).
        self.superseders = Timeline(self.w_key[definite], self.w_invoke[definite])
        done = self.w_done[definite][self.superseders.order]
        self.earliest = _by_group(done[::-1], self.superseders.group[::-1]).cummin()
        self.earliest = self.earliest.to_numpy()[::-1]
        self.w_superseded = self.superseded_at(self.w_key, self.w_done)

    def superseded_at(self, keys: np.ndarray, done: np.ndarray) -> np.ndarray:
        """When writes on `keys` done at `done` were superseded: the earliest completion of a
        definite write on its key invoked more than the skew after (NEVER if there is none)."""
        # NEVER stays NEVER: a write that may yet take effect is never superseded.
        after = np.where(done > NEVER - self.skew_ns, NEVER, done + self.skew_ns)
        first = self.superseders.first_after(keys, after)
        return _pick(self.earliest, first, NEVER)

    def reads(self) -> Judged:
        """The verdicts of the history's own GETs (see classify_reads)."""
        positions = np.flatnonzero(self.is_get)
        status = self.status[positions]
        values = self.value_codes[positions]
        earlier = self._earlier(values, status)
        candidates = self._candidates(
            (self.key_codes[positions], self.keys), (_read_values(values, status), self.values),
            earlier,
        )  # fmt: skip
        # A million reads at a time: each is judged on its own, and the arrays of each step
        # stay a few tens of MB whatever the history's length.
        parts = [
            self._reads(positions[i : i + READS_AT_ONCE], candidates)
            for i in range(0, len(positions), READS_AT_ONCE)
        ] or [self._reads(positions, candidates)]
        verdict, age = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        return Judged(positions, verdict, age, earlier)

    def _reads(self, positions: np.ndarray, candidates: "_Candidates") -> tuple[np.ndarray, ...]:
        history, skew_ns = self.history, self.skew_ns
        status = self.status[positions]
        values = self.value_codes[positions]
        t_invoke = history["t_invoke_ns"].to_numpy()[positions]
        t_complete = history["t_complete_ns"].to_numpy()[positions]
        latest, found, explained = candidates.latest_supersession(
            self.key_codes[positions], _read_values(values, status), t_complete + skew_ns
        )
        judged = _judged(status, values != _code_of(self.values, ""))
        stale = judged & found & (latest < t_invoke - skew_ns)
        verdict = np.zeros(len(positions), dtype=np.int8)
        verdict[stale] = VERDICTS.index("stale")
        verdict[~found] = VERDICTS.index("future")
        verdict[~explained] = VERDICTS.index("phantom")
        verdict[~judged] = VERDICTS.index("unjudged")
        return verdict, np.where(stale, t_invoke - latest, 0)

    def final_reads(self, final_reads: pd.DataFrame) -> np.ndarray:
        """The verdict of each final read (codes into FINAL_VERDICTS; see classify_final_reads)."""
        status = final_reads["status"].to_numpy()
        keys = _extended(self.keys, final_reads["key"])
        names = _extended(self.values, final_reads["value"])
        values = names.get_indexer(final_reads["value"])  # NA: -1, ABSENT
        earlier = self._earlier(values, status, names[len(self.values) :])
        keys = (keys.get_indexer(final_reads["key"]), keys)
        values = (_read_values(values, status), names)
        latest, _, explained = self._candidates(keys, values, earlier).latest_supersession(
            keys[0], values[0], np.full(len(final_reads), NEVER)
        )
        verdict = np.zeros(len(final_reads), dtype=np.int8)
        verdict[latest < NEVER] = FINAL_VERDICTS.index("lost")
        verdict[~explained] = FINAL_VERDICTS.index("phantom")
        nonempty = (final_reads["value"] != "").fillna(False).to_numpy(bool)
        verdict[~_judged(status, nonempty)] = FINAL_VERDICTS.index("unjudged")
        return verdict

    def _earlier(
        self, values: np.ndarray, status: np.ndarray, new_names: pd.Index | None = None
    ) -> np.ndarray:
        """Which reads of value codes `values` returned a name an earlier run wrote; codes past
        the history's own values are those of `new_names`, in order."""
        earlier_names = self.earlier_names
        if new_names is not None:
            new = _earlier_run_names(pd.Series(new_names, dtype="string"), self.history["worker"])
            earlier_names = np.concatenate([earlier_names, new])
        if not earlier_names.any():  # as in most histories: not a look-up per read
            return np.zeros(len(values), dtype=bool)
        return (status != 404) & (_pick(earlier_names, values, 0) == 1)

    def _candidates(
        self, keys: tuple[np.ndarray, pd.Index], values: tuple[np.ndarray, pd.Index],
        earlier: np.ndarray,
    ) -> "_Candidates":  # fmt: skip
        """The writes that reads could have returned, for reads of `keys` (codes, and the
        keys they code, the history's first) and `values` (codes, ABSENT for a 404, and the
        names they code, the history's first), `earlier` those of a name an earlier run wrote:
        the history's writes, and the initial state of each key read: absent or its
        INITIAL_VALUES name, and any name an earlier run wrote there."""
        (keys, key_index), (values, names) = keys, values
        initial_keys = np.flatnonzero(np.bincount(keys, minlength=len(key_index)))
        initial_values = np.array(
            [
                _code_of(names, INITIAL_VALUES[k]) if k in INITIAL_VALUES else ABSENT
                for k in key_index[initial_keys]
            ],
            dtype=np.int64,
        )
        earlier_pairs = np.unique(np.stack([keys[earlier], values[earlier]]), axis=1)
        initial = np.concatenate([initial_keys, earlier_pairs[0]])
        return _Candidates(
            np.concatenate([self.w_key, initial]),
            np.concatenate([self.w_value, initial_values, earlier_pairs[1]]),
            np.concatenate([self.w_invoke, np.full(len(initial), BEFORE_ALL)]),
            np.concatenate(
                [self.w_superseded, self.superseded_at(initial, np.full(len(initial), BEFORE_ALL))]
            ),
            slots=max(len(names), values.max(initial=0)) + 2,
        )


class _Candidates:
    """The writes reads could have returned (Judge._candidates): key, value, invocation and
    supersession of each, arranged to find, for a read, the latest supersession among those
    of its key and value invoked by a time."""

    def __init__(
        self, keys: np.ndarray, values: np.ndarray, invoked: np.ndarray,
        superseded: np.ndarray, slots: int,
    ) -> None:  # fmt: skip
        # Most names are written once: a read of such a name (or of one never written) has
        # one candidate at most, looked up directly. The others (absent, a name written
        # twice) are searched for among the candidates of a value written more than once.
        self.slots = slots
        self.per_value = np.bincount(values + 1, minlength=slots)
        shared = self.per_value[values + 1] > 1
        self.only = np.full(slots, -1)
        self.only[values[~shared] + 1] = np.flatnonzero(~shared)
        self.keys, self.invoked, self.superseded = keys, invoked, superseded
        # One integer per (key, value), equal exactly when both are.
        pairs = keys[shared].astype(np.int64) * slots + values[shared] + 1
        self.pairs = np.unique(pairs)
        # The shared ones by pair and time of invocation, each carrying the latest
        # supersession among itself and those of its pair invoked before it.
        self.timeline = Timeline(np.searchsorted(self.pairs, pairs), invoked[shared])
        self.latest = _by_group(superseded[shared][self.timeline.order], self.timeline.group)
        self.latest = self.latest.cummax().to_numpy()

    def latest_supersession(
        self, keys: np.ndarray, values: np.ndarray, t_complete: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each read of `keys` and `values` (codes; ABSENT for a 404), the latest
        supersession among the candidates of its key and value invoked by its `t_complete`
        (the skew already added: the latest invocation that may still precede it). Returns
        three arrays aligned with the reads: latest (NEVER where no such write was
        superseded), found (there is such a write) and explained (some write on its key wrote
        its value, whenever it was invoked)."""
        explained = np.zeros(len(keys), dtype=bool)
        found = np.zeros(len(keys), dtype=bool)
        latest = np.full(len(keys), NEVER)

        direct = self.per_value[values + 1] <= 1
        candidate = self.only[values[direct] + 1]
        explained[direct] = _pick(self.keys, candidate, -1) == keys[direct]
        found[direct] = explained[direct] & (
            _pick(self.invoked, candidate, NEVER) <= t_complete[direct]
        )
        latest[direct] = _pick(self.superseded, np.where(found[direct], candidate, -1), NEVER)

        searched = ~direct
        pairs = keys[searched].astype(np.int64) * self.slots + values[searched] + 1
        pair = np.searchsorted(self.pairs, pairs)
        known = pair < len(self.pairs)
        known[known] = self.pairs[pair[known]] == pairs[known]
        explained[searched] = known
        last = self.timeline.last_by(np.where(known, pair, -1), t_complete[searched])
        found[searched] = last >= 0
        latest[searched] = _pick(self.latest, last, NEVER)
        return latest, found, explained


class Timeline:
    """Events (group, time), sorted by group then time, for binary searches per group: the
    last event of a group at or before a time, and the first one after a time.

    Times are replaced by their ranks, so that (group, rank) is one integer: group × (n + 1)
    + rank, in the order of (group, time); events at the same time keep their given order.
    """

    def __init__(self, group: np.ndarray, time: np.ndarray) -> None:
        n = len(time)
        by_time = np.argsort(time, kind="stable")
        self.times = time[by_time]
        rank = np.empty(n, dtype=np.int64)
        rank[by_time] = np.arange(n)
        self.width = n + 1
        composite = self._composite(group, rank)
        self.order = np.argsort(composite)  # no two are equal: any sort is stable
        self.composite = composite[self.order]
        self.group = group[self.order]

    def last_by(self, group: np.ndarray, time: np.ndarray, strict: bool = False) -> np.ndarray:
        """For each (group, time), the position (in sorted order) of the last event of that
        group at or before `time` (before it if `strict`), or -1."""
        below = np.searchsorted(self.times, time, side="left" if strict else "right")
        last = np.searchsorted(self.composite, self._composite(group, below)) - 1
        return self._of(last, group)

    def first_after(self, group: np.ndarray, time: np.ndarray) -> np.ndarray:
        """For each (group, time), the position of the first event of that group after
        `time`, or -1."""
        at_most = np.searchsorted(self.times, time, side="right")
        return self._of(np.searchsorted(self.composite, self._composite(group, at_most)), group)

    def _composite(self, group: np.ndarray, rank: np.ndarray) -> np.ndarray:
        # In 64 bits whatever the groups' type: the history's codes are 32.
        return group.astype(np.int64) * self.width + rank

    def _of(self, position: np.ndarray, group: np.ndarray) -> np.ndarray:
        inside = (position >= 0) & (position < len(self.group))
        inside[inside] = self.group[position[inside]] == group[inside]
        return np.where(inside, position, -1)


def _pick(values: np.ndarray, positions: np.ndarray, missing: int) -> np.ndarray:
    """`values` at `positions`, `missing` where a position is -1."""
    picked = np.full(len(positions), missing, dtype=np.int64)
    found = positions >= 0
    picked[found] = values[positions[found]]
    return picked


def _by_group(values: np.ndarray, groups: np.ndarray) -> "pd.core.groupby.SeriesGroupBy":
    return pd.Series(values).groupby(groups, sort=False)


def _judged(status: np.ndarray, has_name: np.ndarray) -> np.ndarray:
    # A 2xx without a name read nothing: its body was not a video (a worker killed while
    # answering cuts the body short after the headers), and the client failed it.
    return ((status >= 200) & (status <= 299) & has_name) | (status == 404)


def _read_values(values: np.ndarray, status: np.ndarray) -> np.ndarray:
    """What each read returned: its name's code, or ABSENT for a 404."""
    return np.where(status == 404, ABSENT, values)


def _factorized(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """pd.factorize(column), with codes in 32 bits: the code of each value (-1 for NA) and
    the values coded, in order of first appearance. By Arrow's dictionary encoding, as pandas
    does for Arrow's strings, but without pandas' two copies of the codes, each in 64 bits:
    every fresh page of memory costs system time, more than the work on it here."""
    encoded = pa.chunked_array(pa.array(column)).dictionary_encode().combine_chunks()
    codes = encoded.indices.fill_null(-1).to_numpy()
    return codes, pd.Index(encoded.dictionary, dtype=column.dtype)


def _extended(uniques: pd.Index, values: pd.Series) -> pd.Index:
    """`uniques` (from _factorized), then each of `values` not among them, once."""
    new = values[uniques.get_indexer(values) < 0].dropna().unique()
    return uniques.append(pd.Index(new, dtype=uniques.dtype))


def _code_of(names: pd.Index, name: str) -> int:
    """The code of `name` among `names` (each once), or one that no name has."""
    code = np.flatnonzero(np.asarray(names == name, dtype=bool))
    return int(code[0]) if len(code) else len(names)


def _earlier_run_names(names: pd.Series, workers: pd.Series) -> np.ndarray:
    """Which of `names` (each read once) an earlier run wrote: the harness's form, by a
    writer that is not among `workers`."""
    writer = names.str.fullmatch(NAME_PATTERN).fillna(False).to_numpy(bool)
    # A name of that form is its writer, "#", digits: the writer is what precedes the "#"
    # (split by Arrow: a regular expression's extraction takes seconds on a million names).
    parts = pc.split_pattern(pa.array(names[writer], type=pa.string()), "#", max_splits=1)
    writers = pd.array(pc.list_element(parts, 0), dtype=pd.StringDtype("pyarrow"))
    writer[writer] = ~pd.Series(writers).isin(workers.unique()).to_numpy(bool)
    return writer
