"""Means, intervals and changes over repeats."""

import math

import pytest

from reports.stats import change, estimate


def test_estimate_of_repeats_has_a_t_interval_and_cv():
    e = estimate([10.0, 12.0, 14.0])
    assert e.mean == pytest.approx(12.0)
    # sd 2, n 3, t(0.975, 2) = 4.3027
    assert e.high - e.mean == pytest.approx(4.3027 * 2 / math.sqrt(3), rel=1e-3)
    assert e.cv == pytest.approx(2 / 12)
    assert e.unstable


def test_estimate_ignores_missing_values_and_says_when_it_cannot_interval():
    e = estimate([5.0, float("nan")])
    assert (e.mean, e.n) == (5.0, 1)
    assert math.isnan(e.low)
    assert not e.unstable
    assert estimate([]).n == 0


def test_change_beyond_noise_only_when_the_interval_excludes_zero():
    clear = change([100, 101, 99], [150, 151, 149])
    assert clear.beyond_noise
    assert clear.relative == pytest.approx(0.5)
    noisy = change([100, 140, 60], [110, 150, 70])
    assert not noisy.beyond_noise
    assert not change([100], [200]).beyond_noise


def test_change_has_welchs_interval():
    # se = sqrt(1/3 + 1/3), 4 degrees of freedom, t(0.975, 4) = 2.7764
    welch = change([100, 101, 99], [150, 151, 149])
    assert (welch.low, welch.high) == pytest.approx((50 - 2.2669, 50 + 2.2669), rel=1e-4)


def test_change_against_identical_repeats_keeps_the_other_sides_spread():
    # A's variance is exactly 0: the interval is B's alone, t(0.975, 2) = 4.3027.
    steady = change([100, 100, 100], [150, 149, 151])
    assert (steady.low, steady.high) == pytest.approx((50 - 2.4842, 50 + 2.4842), rel=1e-4)


@pytest.mark.parametrize(
    ("a", "b", "interval", "beyond_noise"),
    [
        ([100, 100, 100], [150, 150, 150], (50, 50), True),  # no spread: exactly the difference
        ([100, 100], [100, 100, 100], (0, 0), False),  # an exact 0 is no change
        ([0.1, 0.1, 0.1], [0.2, 0.2], (0.1, 0.1), True),  # identical, however they round
        ([100], [150, 150], (math.nan, math.nan), False),  # one repeat: no interval
        ([100, float("nan")], [150, 151], (math.nan, math.nan), False),  # one measured
    ],
)
def test_change_without_spread_is_the_exact_difference(a, b, interval, beyond_noise):
    delta = change(a, b)
    assert (delta.low, delta.high) == pytest.approx(interval, nan_ok=True)
    assert delta.beyond_noise is beyond_noise
