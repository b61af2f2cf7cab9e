"""What Linux's /proc says of the processes a test started, and waiting on them."""

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def state(pid: int) -> str | None:
    """The state letter of process or thread `pid` (T: stopped), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def threads(pid: int) -> list[int]:
    """The thread ids of process `pid`."""
    return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]


def wait_for(
    condition: Callable[[], T],
    process: subprocess.Popen,
    output: Path,
    timeout: float = 60,
    every: float = 0.05,
) -> T:
    """Wait until `condition()` holds and return what it gave, failing with `output` if
    `process` exits or nothing happens in time."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert process.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(every)
    return value


@contextmanager
def spawned(command: list[str], output: Path, **popen) -> Iterator[subprocess.Popen]:
    """`command` in a session of its own, its standard error into `output`; killed if the
    block leaves it running."""
    with output.open("w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True, **popen
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()


def interrupted(process: subprocess.Popen, signum: int, output: Path) -> None:
    """Stop a runner with `signum` (Ctrl-C's SIGINT, or SIGTERM), and see it exit as an
    interrupted run does, with 130."""
    process.send_signal(signum)
    assert process.wait(timeout=60) == 130, output.read_text()
