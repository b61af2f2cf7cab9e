"""How long until a write is visible: t-visibility (Bailis et al., "Probabilistically Bounded
Staleness", VLDB 2012), measured black-box from a history the checker judges.

Which (write, read) pairs count: each GET the checker judged ok or stale (a phantom, a future
read or an unjudged one says nothing about visibility), paired with the last write on its key
that surely happened (a PUT or DELETE answered 2xx) and completed more than the clock skew S
before the GET was invoked; t is the GET's invocation minus that write's completion, as the
clocks say it. A GET with no such write (nothing written before it) is left out. The GET
"still returns an older value" when the checker judged it stale: what it returned had been
superseded, by that write or an earlier one, more than S before it was invoked.

The curve: for each interval of t (EDGES_MS), the reads in it and the share of them stale:
the probability that a read invoked t after a write completed still returns an older value.
Its figures: the t at which that probability falls under 1 % and 0.1 % (`visibility_1pct_ms`,
`visibility_01pct_ms`): the lower edge of the first interval from which on no interval's share
is at or above it, provided at least 3/p reads (300 for 1 %, 3,000 for 0.1 %) were invoked
that late or later — with none stale among n reads, 3/n is about the 95 % upper bound of the
probability (the "rule of three"), so fewer cannot show that it is under p. Else None: too
few reads to say, or the last interval is still at or above it.
"""

import numpy as np
import pandas as pd

from reports.checker import BEFORE_ALL, READS_AT_ONCE, VERDICTS, Judge, Judged

# The intervals of t, in ms: [0, 0.1), [0.1, 0.2), … [100000, ∞).
EDGES_MS = (0, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)
EDGES_MS += (20_000, 50_000, 100_000)
# The figures and the probability each one's t is under.
THRESHOLDS = {"visibility_1pct_ms": 0.01, "visibility_01pct_ms": 0.001}
# In a run's directory of `cachebench run`: its curve, for the report's chart.
VISIBILITY_FILE = "visibility.csv"


def visibility_curve(
    history: pd.DataFrame,
    in_window: np.ndarray | None = None,
    clock_skew_ms: float = 0.0,
    edges_ms: tuple[float, ...] = EDGES_MS,
) -> pd.DataFrame:
    """The t-visibility curve of `history` (a read_history frame; see the module's docstring),
    from the GETs where `in_window` (a boolean per row, e.g. reports.figures.window_mask's;
    None: every GET), with clocks up to `clock_skew_ms` apart, over the intervals that start
    at `edges_ms` (increasing, the first 0).

    Returns one row per interval: `t_ms` and `t_end_ms` (its edges; inf for the last),
    `reads` (the GETs invoked that long after the last write on their key completed),
    `stale` (those of them stale) and `probability` (stale ÷ reads; NaN without reads).
    """
    judge = Judge(history, round(clock_skew_ms * 1e6))
    judged = judge.reads()
    counted = np.ones(len(judged.positions), dtype=bool)
    if in_window is not None:
        counted = np.asarray(in_window)[judged.positions]
    return curve(judge, judged, counted, edges_ms)


def curve(
    judge: Judge, judged: Judged, counted: np.ndarray, edges_ms: tuple[float, ...] = EDGES_MS
) -> pd.DataFrame:
    """visibility_curve's result from a judge of the history and its GETs' verdicts, counting
    the GETs where `counted` (aligned with `judged.positions`)."""
    verdict = judged.verdict
    stale = verdict == VERDICTS.index("stale")
    counted = np.flatnonzero(counted & (stale | (verdict == VERDICTS.index("ok"))))
    # The writes by completion, to find the last on each read's key before its invocation.
    by_completion = np.argsort(judge.w_definite_done, kind="stable")
    writes = pd.DataFrame(
        {
            "key": judge.w_definite_key[by_completion],
            "done": judge.w_definite_done[by_completion],
            # The same, nullable: what a read after no write finds is NA, the rest exact.
            "completed": pd.array(judge.w_definite_done[by_completion], dtype="Int64"),
        }
    )
    edges_ns = np.asarray(edges_ms, dtype=float) * 1e6
    reads = np.zeros(len(edges_ns), dtype=np.int64)
    stale_reads = np.zeros(len(edges_ns), dtype=np.int64)
    # A million reads at a time, in order of invocation: the merge's frames stay small.
    for i in range(0, len(counted), READS_AT_ONCE):
        chunk = counted[i : i + READS_AT_ONCE]
        positions = judged.positions[chunk]
        t_invoke = judge.history["t_invoke_ns"].to_numpy()[positions]
        done = _last_done(judge.key_codes[positions], t_invoke - judge.skew_ns, writes)
        after = done > BEFORE_ALL
        t_ns = t_invoke[after] - done[after]
        interval = np.searchsorted(edges_ns, t_ns, side="right") - 1
        reads += np.bincount(interval, minlength=len(edges_ns))
        stale_reads += np.bincount(interval[stale[chunk][after]], minlength=len(edges_ns))
    with np.errstate(invalid="ignore", divide="ignore"):
        probability = stale_reads / reads
    return pd.DataFrame(
        {
            "t_ms": np.asarray(edges_ms, dtype=float),
            "t_end_ms": [*edges_ms[1:], np.inf],
            "reads": reads,
            "stale": stale_reads,
            "probability": probability,
        }
    )


def _last_done(keys: np.ndarray, at: np.ndarray, writes: pd.DataFrame) -> np.ndarray:
    """For each (key, at), `at` increasing, the completion of the last of `writes` (sorted by
    `done`) on that key done before `at`, or BEFORE_ALL."""
    reads = pd.DataFrame({"key": keys, "at": at})
    done = pd.merge_asof(
        reads,
        writes,
        left_on="at",
        right_on="done",
        by="key",
        allow_exact_matches=False,
    )["completed"]
    return done.fillna(BEFORE_ALL).to_numpy(np.int64)


def visibility_figures(visibility: pd.DataFrame) -> dict[str, float | None]:
    """THRESHOLDS' figures of a curve (visibility_curve's)."""
    return {name: falls_under(visibility, p) for name, p in THRESHOLDS.items()}


def falls_under(visibility: pd.DataFrame, p: float) -> float | None:
    """The t (ms) from which on the curve's probability stays under `p`, or None when fewer
    than 3/p reads were invoked that late or later, or it never does (module docstring)."""
    at_or_above = np.flatnonzero(visibility["probability"].to_numpy() >= p)
    first = at_or_above[-1] + 1 if len(at_or_above) else 0
    if first == len(visibility) or visibility["reads"].to_numpy()[first:].sum() < 3 / p:
        return None
    return float(visibility["t_ms"].iloc[first])


def pooled(curves: list[pd.DataFrame]) -> pd.DataFrame:
    """Curves over the same intervals (repeats of one configuration) as one: their reads and
    stale reads added up, the probability of the sums."""
    total = pd.concat(curves).groupby(["t_ms", "t_end_ms"], as_index=False)[["reads", "stale"]]
    summed = total.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        summed["probability"] = summed["stale"] / summed["reads"]
    return summed
