"""Synthetic histories with planted stale reads, to test and time the checker at any size.

python -m reports.synthetic OUT_DIR --ops 1000000 --keys 100   # then: cachebench check OUT_DIR
"""

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from reports.history import to_history

STEP_NS = 1_000  # between two invocations
T0_NS = 1_700_000_000_000_000_000


def make_history(n_ops: int, n_keys: int, stale_share: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """A history of `n_ops` operations on keys 1..`n_keys`, with the checker's expected verdicts.

    Operations are invoked STEP_NS apart, round robin over the keys, and each completes
    before the next one on its key is invoked, so each key's history is sequential while
    the keys overlap. Every key starts with a PUT; then 80 % GETs, 17 % PUTs, 3 % DELETEs
    (404 where the key is already absent). Each GET returns its key's latest write, except
    that a `stale_share` of those that follow two PUTs return the older one. Two columns
    follow the history's: `expected` (the verdict of each GET, empty for a write) and
    `expected_staleness_ns` (the age of each planted stale read, NA otherwise).
    """
    rng = np.random.default_rng(seed)
    index = np.arange(n_ops)
    rounds = index // n_keys
    op = rng.choice(np.array(["get", "put", "delete"]), size=n_ops, p=[0.8, 0.17, 0.03])
    op[rounds == 0] = "put"
    t_invoke = T0_NS + index * STEP_NS
    t_complete = t_invoke + rng.integers(1, n_keys * STEP_NS, size=n_ops)

    # The latest write on the same key before each operation (-1: none), found down the
    # columns of the (round, key) grid the operations fill.
    n_rounds = -(-n_ops // n_keys)
    grid = np.full(n_rounds * n_keys, -1)
    grid[:n_ops] = np.where(op != "get", index, -1)
    latest = np.maximum.accumulate(grid.reshape(n_rounds, n_keys), axis=0).ravel()
    before = np.concatenate([np.full(n_keys, -1), latest[:-n_keys]])[:n_ops]

    names = ("v" + pd.Series(index).astype(str)).to_numpy(dtype=object)
    is_put = op == "put"
    get = op == "get"
    present = (before >= 0) & is_put[np.maximum(before, 0)]  # the key holds a value
    # Planted: a GET after two PUTs returns the first; that write was superseded when the
    # second one completed.
    previous = np.where(before >= 0, before[np.maximum(before, 0)], -1)
    can_plant = get & present & (previous >= 0) & is_put[np.maximum(previous, 0)]
    planted = can_plant & (rng.random(n_ops) < stale_share)
    returned = np.where(planted, previous, before)

    reads_value = get & present
    value = np.where(is_put, names, np.where(reads_value, names[np.maximum(returned, 0)], ""))
    status = np.select([reads_value, get, is_put, present], [200, 404, 201, 204], 404)
    hit = planted | (get & (rng.random(n_ops) < 0.5))
    age = t_invoke - t_complete[np.maximum(before, 0)]
    history = pd.DataFrame(
        {
            "op": op,
            "key": index % n_keys + 1,
            "value": value,
            "status": status,
            "cache": np.select([hit, get], ["HIT", "MISS"], ""),
            "t_invoke_ns": t_invoke,
            "t_complete_ns": t_complete,
            "worker": "w" + pd.Series(index % 16).astype(str),
            "expected": np.select([planted, get], ["stale", "ok"], ""),
            "expected_staleness_ns": pd.arrays.IntegerArray(age, mask=~planted),
        }
    )
    return to_history(history)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    history = make_history(args.ops, args.keys, seed=args.seed)
    history.to_csv(args.out_dir / "history-synthetic.csv", index=False)


if __name__ == "__main__":
    main()
