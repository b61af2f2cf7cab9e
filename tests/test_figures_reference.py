"""figures() works on masks over the history's arrays, for speed: on any history, window and
skew it gives what subsets of the frames say, computed the plain way (as it did before)."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from test_checker_properties import arbitrary_histories

from reports.checker import classify_final_reads, classify_reads
from reports.figures import PERCENTILES, figures


def reference(h: pd.DataFrame, final: pd.DataFrame, start: int, end: int, skew: int) -> dict:
    in_window = (h["t_complete_ns"] > start) & (h["t_complete_ns"] <= end)
    ops = h[in_window]
    reads = classify_reads(h, skew)
    reads = reads[in_window[reads.index]]
    verdicts = reads["verdict"].value_counts()
    judged = len(reads) - int(verdicts["unjudged"])
    staleness = reads["staleness_ns"].dropna().to_numpy(np.int64) / 1e6
    answered = ops[ops["status"] != 0]
    gets = answered[answered["op"] == "get"]
    final_verdicts = classify_final_reads(h, final, skew)["verdict"].value_counts()
    result = {
        "ops": len(ops),
        "reads": int((ops["op"] == "get").sum()),
        "writes": int(ops["op"].isin(("put", "delete")).sum()),
        "errors": int(((ops["status"] == 0) | (ops["status"] >= 500)).sum()),
        "hit_rate": float((gets["cache"] == "HIT").sum()) / len(gets)
        if (gets["cache"] != "").any()
        else None,
        "judged_reads": judged,
        "stale_reads": int(verdicts["stale"]),
        "staleness_median_ms": float(np.median(staleness)) if len(staleness) else None,
        "staleness_max_ms": float(staleness.max()) if len(staleness) else None,
        "phantoms": int(verdicts["phantom"]),
        "future_reads": int(verdicts["future"]),
        "earlier_run_reads": int(reads["earlier_run"].sum()),
        "final_reads": len(final) - int(final_verdicts["unjudged"]),
        "lost_writes": int(final_verdicts["lost"] + final_verdicts["phantom"]),
    }
    latency = (answered["t_complete_ns"] - answered["t_invoke_ns"]) / 1e6
    groups = {
        "all": np.ones(len(answered), dtype=bool),
        "get_hit": (answered["op"] == "get") & (answered["cache"] == "HIT"),
        "get_miss": (answered["op"] == "get") & (answered["cache"] == "MISS"),
        "put": answered["op"] == "put",
    }
    for group, members in groups.items():
        values = latency[members].to_numpy()
        for name, p in PERCENTILES.items():
            result[f"{group}_{name}_ms"] = float(np.percentile(values, p)) if len(values) else None
    return result


@settings(deadline=None)
@given(
    arbitrary_histories(),
    arbitrary_histories(),
    st.integers(-1, 160),
    st.integers(0, 160),
    st.sampled_from([0, 1, 5, 30]),
    st.lists(st.sampled_from(["HIT", "MISS", "BYPASS", ""]), min_size=30, max_size=30),
)
def test_figures_agree_with_the_frames_subsets(h, others, start, length, skew, caches):
    h = h.assign(cache=pd.Categorical(caches[: len(h)]))
    final = others[others["op"] == "get"]
    result = figures(h, final, start_ns=start, end_ns=start + length, clock_skew_ms=skew / 1e6)
    expected = reference(h, final, start, start + length, skew)
    assert {name: result[name] for name in expected} == expected
