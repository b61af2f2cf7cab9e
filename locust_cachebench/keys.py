"""Which video id an operation touches: uniform over the keyspace, or Zipf-skewed toward
a few hot ids (what a cache is for). Ids are 1 … n; under Zipf, id 1 is the hottest."""

import math
import random
from collections.abc import Callable

KEY_DISTRIBUTIONS = ("uniform", "zipf")

KeyChooser = Callable[[], int]


def uniform_keys(n: int, rng: random.Random) -> KeyChooser:
    """Every id of 1 … n equally likely."""
    return lambda: rng.randint(1, n)


def zipf_keys(n: int, s: float, rng: random.Random) -> KeyChooser:
    """Id k of 1 … n with probability proportional to 1/k^s (s = 0 is uniform).

    Rejection-inversion (Hörmann and Derflinger, 1996, as Apache Commons Math samples Zipf):
    exact, a few floating-point operations a draw, and no table, whatever n is. It inverts
    the integral H of h(x) = x^-s, whose areas over [k - 1/2, k + 1/2] approximate the ids'
    weights, and rejects the rare draws where they differ.
    """

    def h(x: float) -> float:
        return math.exp(-s * math.log(x))

    def h_integral(x: float) -> float:  # (x^(1-s) - 1) / (1 - s), log x at s = 1
        log_x = math.log(x)
        return _expm1_over((1 - s) * log_x) * log_x

    def h_integral_inverse(y: float) -> float:
        t = max(y * (1 - s), -1.0)  # rounding may push it just below -1
        return math.exp(_log1p_over(t) * y)

    low = h_integral(1.5) - 1  # H's value below id 1, so that id 1 gets its weight h(1)
    high = h_integral(n + 0.5)
    # A draw that falls this close to its id is inside the id's share: no H to compute.
    squeeze = 2 - h_integral_inverse(h_integral(2.5) - h(2))

    def choose() -> int:
        while True:
            # random() < 1, so y < high: the top of its range gives id n, never n + 1.
            y = low + rng.random() * (high - low)
            x = h_integral_inverse(y)
            k = min(max(int(x + 0.5), 1), n)
            if k - x <= squeeze or y >= h_integral(k + 0.5) - h(k):
                return k

    return choose


def _expm1_over(x: float) -> float:
    """(e^x - 1) / x, and its limit 1 at x = 0."""
    return math.expm1(x) / x if abs(x) > 1e-8 else 1 + x / 2 * (1 + x / 3 * (1 + x / 4))


def _log1p_over(x: float) -> float:
    """log(1 + x) / x, and its limit 1 at x = 0."""
    return math.log1p(x) / x if abs(x) > 1e-8 else 1 - x * (1 / 2 - x * (1 / 3 - x / 4))


def key_chooser(distribution: str, n: int, s: float, rng: random.Random) -> KeyChooser:
    """The chooser for `distribution` (one of KEY_DISTRIBUTIONS) over ids 1 … n."""
    if distribution == "uniform":
        return uniform_keys(n, rng)
    if distribution == "zipf":
        return zipf_keys(n, s, rng)
    raise ValueError(f"unknown key distribution {distribution!r}")
