"""What a cache of C entries can hit when requests are independent draws of known popularity
(the independent reference model): Che's approximation for LRU, and the top-C bound no cache
can pass. Reads only: a write that invalidates an entry lowers the measured rate below both.
"""

import numpy as np
from scipy.optimize import brentq


def popularity(n: int, distribution: str, s: float = 1.0) -> np.ndarray:
    """p_k of ids 1 … n, hottest first: ∝ 1/k^s for zipf, 1/n for uniform (as the load
    tests draw them, locust_cachebench/keys.py)."""
    if distribution == "uniform":
        return np.full(n, 1 / n)
    if distribution == "zipf":
        weights = np.arange(1, n + 1, dtype=float) ** -s
        return weights / weights.sum()
    raise ValueError(f"unknown key distribution {distribution!r}")


def top_c_hit_rate(p: np.ndarray, capacity: int) -> float:
    """The best hit rate of any cache holding `capacity` entries: the C likeliest ids always
    held, the sum of their probabilities."""
    if capacity >= len(p):
        return 1.0
    return float(np.sort(p)[::-1][:capacity].sum())


def che_hit_rate(p: np.ndarray, capacity: int) -> float:
    """LRU's hit rate by Che's approximation: the characteristic time T solves
    Σ (1 − e^{−p_k T}) = C, and the hit rate is Σ p_k (1 − e^{−p_k T})."""
    if capacity >= len(p):
        return 1.0
    if capacity <= 0:
        return 0.0

    def held(t: float) -> float:
        return float(-np.expm1(-p * t).sum()) - capacity

    # held grows from −C at 0 to n − C: widen the bracket until it changes sign.
    high = capacity / p.max()
    while held(high) < 0:
        high *= 2
    t = brentq(held, 0.0, high, xtol=1e-12 * high)
    return float((p * -np.expm1(-p * t)).sum())
