"""What Linux's /proc says of the processes a test started."""

from pathlib import Path


def state(pid: int) -> str | None:
    """The state letter of process or thread `pid` (T: stopped), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def threads(pid: int) -> list[int]:
    """The thread ids of process `pid`."""
    return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
