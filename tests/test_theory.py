"""The theory's hit rates against cases computed by hand."""

import numpy as np
import pytest

from reports.theory import che_hit_rate, popularity, top_c_hit_rate


def test_popularity_is_zipf_or_uniform_and_sums_to_one():
    assert popularity(3, "zipf", 1.0) == pytest.approx([6 / 11, 3 / 11, 2 / 11])
    assert popularity(4, "uniform") == pytest.approx([0.25] * 4)
    assert popularity(1_000_000, "zipf", 1.0).sum() == pytest.approx(1.0)


@pytest.mark.parametrize("capacity", [1, 2])
def test_uniform_keys_hit_in_the_share_the_cache_holds(capacity):
    # Uniform: n (1 - e^{-T/n}) = C, so each key is held with probability C/n.
    p = popularity(3, "uniform")
    assert che_hit_rate(p, capacity) == pytest.approx(capacity / 3)
    assert top_c_hit_rate(p, capacity) == pytest.approx(capacity / 3)


def test_the_top_c_bound_is_the_likeliest_keys_share():
    p = popularity(3, "zipf", 1.0)
    assert [top_c_hit_rate(p, c) for c in (0, 1, 2, 3, 4)] == pytest.approx(
        [0, 6 / 11, 9 / 11, 1, 1]
    )


def test_che_solves_its_characteristic_time_for_zipf():
    p = popularity(3, "zipf", 1.0)
    hit = che_hit_rate(p, 1)
    # Its T: Σ (1 − e^{−p_k T}) = 1, and then hit = Σ p_k (1 − e^{−p_k T}).
    t = next(t for t in np.linspace(0, 10, 1_000_001) if (-np.expm1(-p * t)).sum() >= 1)
    assert hit == pytest.approx((p * -np.expm1(-p * t)).sum(), abs=1e-5)


def test_che_never_passes_the_bound_and_both_grow_with_capacity():
    p = popularity(10_000, "zipf", 0.8)
    capacities = [1, 10, 100, 1_000, 5_000, 9_999]
    che = [che_hit_rate(p, c) for c in capacities]
    top = [top_c_hit_rate(p, c) for c in capacities]
    assert all(c <= t + 1e-12 for c, t in zip(che, top, strict=True))
    assert che == sorted(che)
    assert top == sorted(top)
