"""Which video id an operation touches: uniform over the keyspace, or Zipf-skewed toward
a few hot ids (what a cache is for). Ids are 1 … n; under Zipf, id 1 is the hottest."""

import bisect
import itertools
import random
from collections.abc import Callable

KEY_DISTRIBUTIONS = ("uniform", "zipf")

KeyChooser = Callable[[], int]


def uniform_keys(n: int, rng: random.Random) -> KeyChooser:
    """Every id of 1 … n equally likely."""
    return lambda: rng.randint(1, n)


def zipf_weights(n: int, s: float) -> list[float]:
    """The probability of each id 1 … n under Zipf's law with exponent `s` (rank k ∝ 1/k^s)."""
    weights = [1 / k**s for k in range(1, n + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def zipf_keys(n: int, s: float, rng: random.Random) -> KeyChooser:
    """Id k of 1 … n with probability proportional to 1/k^s (s = 0 is uniform)."""
    cumulative = list(itertools.accumulate(zipf_weights(n, s)))
    last = n - 1

    # The last cumulative weight may round to just under 1.0: clamp rather than step past it.
    return lambda: min(bisect.bisect(cumulative, rng.random()), last) + 1


def key_chooser(distribution: str, n: int, s: float, rng: random.Random) -> KeyChooser:
    """The chooser for `distribution` (one of KEY_DISTRIBUTIONS) over ids 1 … n."""
    if distribution == "uniform":
        return uniform_keys(n, rng)
    if distribution == "zipf":
        return zipf_keys(n, s, rng)
    raise ValueError(f"unknown key distribution {distribution!r}")
