"""The key choosers: Zipf really skewed, uniform really flat (statistically, fixed seeds)."""

import math
import random
import tracemalloc
from collections import Counter

import pytest

from locust_cachebench.keys import key_chooser, uniform_keys, zipf_keys
from locust_cachebench.options import MAX_KEYS

SAMPLES = 200_000
N = 100


def zipf_weights(n, s):
    """The probability of each id 1 … n under Zipf's law with exponent `s` (rank k ∝ 1/k^s)."""
    weights = [1 / k**s for k in range(1, n + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def frequencies(choose, samples=SAMPLES):
    counts = Counter(choose() for _ in range(samples))
    return [counts[k] for k in range(1, N + 1)], counts


def chi_square(observed, probabilities):
    total = sum(observed)
    return sum(
        (o - total * p) ** 2 / (total * p) for o, p in zip(observed, probabilities, strict=True)
    )


# Chi-square with N - 1 = 99 degrees of freedom has mean 99 and standard deviation ~14:
# a right distribution lands far below this bound, a wrong one (flat vs Zipf) far above.
CHI_SQUARE_BOUND = 99 + 5 * math.sqrt(2 * 99)


def test_zipf_follows_zipfs_law():
    observed, _ = frequencies(zipf_keys(N, 1.0, random.Random(1)))
    assert chi_square(observed, zipf_weights(N, 1.0)) < CHI_SQUARE_BOUND
    # and is nothing like flat
    assert chi_square(observed, [1 / N] * N) > 100 * CHI_SQUARE_BOUND


def test_zipf_is_skewed_toward_the_first_ids():
    observed, _ = frequencies(zipf_keys(N, 1.0, random.Random(2)))
    harmonic = sum(1 / k for k in range(1, N + 1))
    # id 1 takes 1/H(100) ~ 19 % of the choices (here within 5 standard deviations) ...
    p1 = 1 / harmonic
    assert observed[0] / SAMPLES == pytest.approx(p1, abs=5 * math.sqrt(p1 * (1 - p1) / SAMPLES))
    # ... the ten hottest ids more than half, and id k about 1/k as often as id 1.
    assert sum(observed[:10]) / SAMPLES > 0.5
    assert observed[0] / observed[1] == pytest.approx(2, rel=0.05)
    assert observed[0] / observed[9] == pytest.approx(10, rel=0.15)


def test_a_larger_exponent_is_more_skewed():
    mild, _ = frequencies(zipf_keys(N, 0.5, random.Random(3)))
    steep, _ = frequencies(zipf_keys(N, 2.0, random.Random(3)))
    assert chi_square(mild, zipf_weights(N, 0.5)) < CHI_SQUARE_BOUND
    assert chi_square(steep, zipf_weights(N, 2.0)) < CHI_SQUARE_BOUND
    assert steep[0] > 3 * mild[0]


@pytest.mark.parametrize(
    "choose",
    [uniform_keys(N, random.Random(4)), zipf_keys(N, 0.0, random.Random(4))],
    ids=["uniform", "zipf-s-0"],
)
def test_uniform_is_flat(choose):
    observed, _ = frequencies(choose)
    assert chi_square(observed, [1 / N] * N) < CHI_SQUARE_BOUND
    expected = SAMPLES / N
    assert max(observed) < 1.1 * expected
    assert min(observed) > 0.9 * expected


@pytest.mark.parametrize("distribution", ["uniform", "zipf"])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_every_choice_is_an_id_of_the_keyspace(distribution, n):
    _, counts = frequencies(key_chooser(distribution, n, 1.0, random.Random(5)), samples=5_000)
    assert set(counts) == set(range(1, n + 1))


def test_the_last_id_is_reachable_when_the_weights_round_down():
    # A random() at the very top of [0, 1) must still give an id of the keyspace.
    class Top(random.Random):
        def random(self):
            return 1 - 2**-53

    assert zipf_keys(N, 1.0, Top())() == N


def test_weights_are_probabilities_decreasing_with_the_rank():
    weights = zipf_weights(N, 1.2)
    assert sum(weights) == pytest.approx(1)
    assert weights == sorted(weights, reverse=True)


def test_an_unknown_distribution_is_refused():
    with pytest.raises(ValueError, match="pareto"):
        key_chooser("pareto", N, 1.0, random.Random())


@pytest.mark.parametrize("distribution", ["uniform", "zipf"])
def test_the_largest_keyspace_costs_no_memory_per_id(distribution):
    tracemalloc.start()
    try:
        choose = key_chooser(distribution, MAX_KEYS, 1.0, random.Random(6))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"{peak} bytes to make the chooser"
    ids = [choose() for _ in range(20_000)]
    assert min(ids) >= 1
    assert MAX_KEYS // 2 < max(ids) <= MAX_KEYS, "the far end of the keyspace is drawn too"


def test_zipf_follows_zipfs_law_over_the_largest_keyspace():
    choose = zipf_keys(MAX_KEYS, 1.0, random.Random(7))
    samples = 50_000
    counts = Counter(choose() for _ in range(samples))
    harmonic = math.fsum(1 / k for k in range(1, MAX_KEYS + 1))
    # Id 1, and the thousand hottest ids, as often as the law says (within 5 standard deviations).
    for share, p in [
        (counts[1] / samples, 1 / harmonic),
        (sum(c for k, c in counts.items() if k <= 1000) / samples,
         math.fsum(1 / k for k in range(1, 1001)) / harmonic),
    ]:  # fmt: skip
        assert share == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / samples))
