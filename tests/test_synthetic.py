"""The checker at scale, on synthetic histories: exactly the planted stale reads are found."""

import pandas as pd
import pytest

from reports.checker import classify_reads
from reports.figures import figures
from reports.synthetic import make_history


def assert_found_as_planted(h: pd.DataFrame) -> pd.DataFrame:
    reads = classify_reads(h)
    assert (reads["verdict"].astype(str) == reads["expected"]).all()
    assert reads["staleness_ns"].equals(reads["expected_staleness_ns"])
    return reads


@pytest.mark.parametrize("n_keys", [1, 37, 5_000])
def test_few_keys_with_many_operations_or_many_keys_with_few(n_keys):
    reads = assert_found_as_planted(make_history(20_000, n_keys, stale_share=0.1))
    assert (reads["verdict"] == "stale").sum() > 0
    assert (reads["status"] == 404).sum() > 0  # reads after DELETEs are in the mix


def test_a_million_operations_on_a_hundred_thousand_keys():
    h = make_history(1_000_000, 100_000)
    result = figures(h)
    assert result["ops"] == 1_000_000
    assert result["reads"] == (h["op"] == "get").sum()
    assert result["stale_reads"] == (h["expected"] == "stale").sum() > 0
    assert result["phantoms"] == result["future_reads"] == 0
