"""`pytest -m "not redis"` leaves out every test that needs Redis, and only those."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Its tests get Redis every way there is: the backend fixture, a backend parameter, and
# cache_server and stoppable_server.
FILES = ("tests/test_cache.py",)


def selected(*expressions: str) -> list[set[str]]:
    """The tests of FILES that each `-m` expression selects, collected side by side."""
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    processes = [
        subprocess.Popen(
            [*command, "-m", expression, *FILES],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for expression in expressions
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return [{line for line in output.splitlines() if "::" in line} for output in outputs]


def test_not_redis_leaves_out_the_tests_that_need_redis_and_keeps_the_others():
    marked, kept = selected("redis", "not redis")
    needing = {
        "tests/test_cache.py::test_first_get_misses_next_hits_get_after_put_misses[redis-cached]",
        "tests/test_cache.py::test_memoize_almost_never_hits_and_fixed_always_does[redis]",
        "tests/test_cache.py::test_server_keys_carry_a_prefix_per_deployment[redis]",
        "tests/test_cache.py::test_server_down_serves_from_the_store_with_bypass[redis]",
    }
    assert needing <= marked
    assert not needing & kept
    assert {
        "tests/test_cache.py::test_first_get_misses_next_hits_get_after_put_misses[simple-cached]",
        "tests/test_cache.py::test_memoize_almost_never_hits_and_fixed_always_does[simple]",
        "tests/test_cache.py::test_filesystem_cache_directory_is_private",
    } <= kept
