"""How fast the checker judges a history, from 10 000 to 1 000 000 operations.

The issue asks for a 1 000 000-operation history in seconds, and for growth near-linear in
its size: compare the per-operation time across the three sizes.
"""

import pytest

from reports.figures import figures
from reports.synthetic import make_history

pytestmark = pytest.mark.benchmark(group="checker")

KEYS = 100


@pytest.fixture(scope="module", params=[10_000, 100_000, 1_000_000], ids=["10k", "100k", "1M"])
def history(request):
    """A synthetic history of that many operations on 100 keys, 1 % of reads planted stale."""
    return make_history(request.param, KEYS)


def test_figures(benchmark, history):
    benchmark.extra_info.update(ops=len(history), keys=KEYS)
    # A 1M-operation check takes about half a second: a few rounds are enough for a median.
    result = benchmark.pedantic(figures, args=(history,), rounds=3, iterations=1)
    assert result["ops"] == len(history)
    assert result["stale_reads"] == (history["expected"] == "stale").sum()
    assert result["phantoms"] == result["future_reads"] == 0
