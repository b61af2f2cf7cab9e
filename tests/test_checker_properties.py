"""Property tests of the checker: no false positive on any history a single-copy register
could produce, even with clocks apart by less than the skew allowed; every planted stale read
found; and the same verdicts as a plain reading of the definitions on any history at all."""

import math

import pandas as pd
from histories import get, history, verdicts
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reports.checker import classify_final_reads, classify_reads
from reports.history_format import INITIAL_VALUES

# Examples run pandas end to end: give them time, this is no timing test.
untimed = settings(deadline=None)

KEYS = (1, 2, 3)
KINDS = (
    "get",
    "get",
    "get-timeout",
    "put",
    "put",
    "put-timeout",
    "put-5xx",
    "put-4xx",
    "delete",
    "delete-timeout",
)
FAILED_STATUS = {"timeout": 0, "5xx": 503, "4xx": 400}


@st.composite
def register_histories(draw, min_ops: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, final reads) of clients using one correct register, concurrently.

    Each client runs its operations one after another; each operation takes effect at one
    point inside its interval, except that a failed write may not take effect at all, and
    a timed-out one may take effect after the client gave up. Keys start as INITIAL_VALUES.
    """
    n_clients = draw(st.integers(1, 5))
    ops = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_clients - 1),  # client
                st.sampled_from(KEYS),
                st.sampled_from(KINDS),
                st.integers(0, 10),  # pause before the invocation
                st.integers(0, 20),  # duration
                st.integers(0, 100),  # where in its interval it took effect, in percent
                st.booleans(),  # whether a failed write took effect
                st.integers(0, 30),  # how late after its timeout a write may take effect
            ),
            min_size=min_ops,
            max_size=40,
        )
    )
    clock = [0] * n_clients
    effects = []
    for seq, (client, key, kind, pause, duration, where, takes_effect, late) in enumerate(ops):
        op, _, failure = kind.partition("-")
        t_invoke = clock[client] + pause
        clock[client] = t_invoke + duration
        reach = duration + (late if failure == "timeout" else 0)
        record = {
            "op": op,
            "key": key,
            "value": f"n{seq}" if op == "put" else "",
            "status": FAILED_STATUS.get(failure),
            "cache": "",
            "t_invoke_ns": t_invoke,
            "t_complete_ns": t_invoke + duration,
            "worker": f"w{client}",
        }
        happens = not failure or (failure != "4xx" and takes_effect)
        effects.append((t_invoke + reach * where // 100, seq, happens, record))

    state = dict(INITIAL_VALUES)
    for _, _, happens, record in sorted(effects, key=lambda e: e[:2]):
        key, answered = record["key"], record["status"] is None
        if record["op"] == "get":
            if answered:
                record["value"] = state.get(key, "")
                record["status"] = 200 if key in state else 404
        elif record["op"] == "put":
            if answered:
                record["status"] = 201
            if happens:
                state[key] = record["value"]
        else:
            if answered:
                record["status"] = 204 if key in state else 404
            if happens:
                state.pop(key, None)
    after = max([point for point, *_ in effects] + clock) + 1
    final_reads = [get(key, state.get(key), after, after + 1) for key in KEYS]
    return history(*(record for *_, record in effects)), history(*final_reads)


@untimed
@given(register_histories())
def test_a_register_history_has_no_stale_phantom_or_future_read_and_no_lost_write(case):
    h, final_reads = case
    assert set(classify_reads(h)["verdict"]) <= {"ok", "unjudged"}
    assert set(classify_final_reads(h, final_reads)["verdict"]) == {"ok"}


@untimed
@given(register_histories(), st.integers(0, 40), st.data())
def test_clocks_apart_by_less_than_the_skew_never_make_a_stale_read(case, skew, data):
    """Each client's clock off by up to half the skew, so any two are at most `skew` apart."""
    h, final_reads = case
    offsets = {w: data.draw(st.integers(-(skew // 2), skew // 2)) for w in set(h["worker"])}
    shift = h["worker"].map(offsets).astype("int64")
    skewed = history(
        *h.assign(
            t_invoke_ns=h["t_invoke_ns"] + shift, t_complete_ns=h["t_complete_ns"] + shift
        ).to_dict("records")
    )
    assert set(classify_reads(skewed, skew)["verdict"]) <= {"ok", "unjudged"}
    assert set(classify_final_reads(skewed, final_reads, skew)["verdict"]) == {"ok"}


@untimed
@given(register_histories(min_ops=10), st.data())
def test_a_stale_read_planted_in_a_register_history_is_found_with_its_age(case, data):
    h, _ = case
    writes = h[h["op"].isin(["put", "delete"]) & h["status"].between(200, 299)]
    superseded_at = {
        w.Index: min(
            (w2.t_complete_ns for w2 in writes.itertuples() if _supersedes(w2, w)),
            default=math.inf,
        )
        for w in writes[writes["op"] == "put"].itertuples()
    }
    superseded = [i for i, at in superseded_at.items() if at < math.inf]
    assume(superseded)
    written = h.loc[data.draw(st.sampled_from(superseded))]
    t_invoke = superseded_at[written.name] + data.draw(st.integers(1, 50))
    planted = get(written["key"], written["value"], t_invoke, t_invoke + 5, worker="planter")

    reads = classify_reads(history(*h.to_dict("records"), planted))
    verdict = reads[reads["worker"] == "planter"].iloc[0]
    assert verdict["verdict"] == "stale"
    assert verdict["staleness_ns"] == t_invoke - superseded_at[written.name]
    lost = classify_final_reads(h, history(planted))
    assert list(lost["verdict"]) == ["lost"]


def _supersedes(w2: tuple, w: tuple) -> bool:
    return w2.key == w.key and w2.t_invoke_ns > w.t_complete_ns


# Any history at all, however impossible, against the definitions read plainly.

NAMES = ("a", "b", "c", "HelloWorld", "")
STATUSES = (200, 201, 204, 404, 400, 0, 500, 503)


@st.composite
def arbitrary_histories(draw) -> pd.DataFrame:
    ops = draw(
        st.lists(
            st.tuples(
                st.sampled_from(("get", "put", "delete")),
                st.sampled_from(KEYS),
                st.sampled_from(NAMES),
                st.sampled_from(STATUSES),
                st.integers(0, 100),
                st.integers(0, 50),
            ),
            max_size=30,
        )
    )
    return history(
        *(
            {
                "op": op,
                "key": key,
                "value": "" if status == 404 or op == "delete" else name,
                "status": status,
                "cache": "",
                "t_invoke_ns": t,
                "t_complete_ns": t + duration,
                "worker": "w",
            }
            for op, key, name, status, t, duration in ops
        )
    )


def reference_verdicts(h: pd.DataFrame, skew: int = 0) -> list[tuple[str, int | None]]:
    """The verdict of each GET, straight from the definitions, one pair of operations at a time,
    "before" meaning "before by more than `skew`"."""
    # (key, value or None for absent, t_invoke, when it surely took effect if it did, definite)
    writes = [(key, INITIAL_VALUES.get(key), -math.inf, -math.inf, True) for key in KEYS]
    for op in h.itertuples():
        failed = op.status == 0 or op.status >= 500
        if op.op != "get" and (200 <= op.status < 300 or failed):
            value = op.value if op.op == "put" else None
            done = math.inf if op.status == 0 else op.t_complete_ns
            writes.append((op.key, value, op.t_invoke_ns, done, not failed))

    def superseded_at(write: tuple) -> float:
        key, _, _, done, _ = write
        return min(
            (
                w[3]
                for w in writes
                if w[4] and w[0] == key and w[2] - done > skew and w[2] > -math.inf
            ),
            default=math.inf,
        )

    result = []
    for read in h[h["op"] == "get"].itertuples():
        # A 2xx without a name read nothing (its body was not a video).
        if not ((200 <= read.status < 300 and read.value != "") or read.status == 404):
            result.append(("unjudged", None))
            continue
        value = None if read.status == 404 else read.value
        candidates = [w for w in writes if w[0] == read.key and w[1] == value]
        feasible = [w for w in candidates if w[2] - read.t_complete_ns <= skew]
        latest = max((superseded_at(w) for w in feasible), default=None)
        if not candidates:
            result.append(("phantom", None))
        elif not feasible:
            result.append(("future", None))
        elif read.t_invoke_ns - latest > skew:
            result.append(("stale", int(read.t_invoke_ns - latest)))
        else:
            result.append(("ok", None))
    return result


@untimed
@given(arbitrary_histories(), st.sampled_from([0, 0, 1, 5, 30]))
def test_the_checker_agrees_with_the_definitions_on_any_history(h, skew):
    assert verdicts(h, skew) == reference_verdicts(h, skew)
