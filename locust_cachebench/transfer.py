"""The history files a run must have, and how a worker's reaches the master: in chunks of
Locust's messages (the protocol: README's "Several processes").

No gevent and no Locust here: the master's ledger and the chunking are plain file work that
the plugin (locust_cachebench/plugin.py) drives from Locust's events and messages.
"""

import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from reports.history_format import FILE_PATTERN

# A message's worth of CSV text: a history of a million rows (about 100 MB) is a hundred.
CHUNK_BYTES = 1_000_000
# The only names a worker may send: a process id's characters, no path separator.
HISTORY_NAME = re.compile(re.escape(FILE_PATTERN).replace(r"\*", "[A-Za-z0-9.-]+"))


class TransferError(ValueError):
    """A message about a history that the master refuses."""


def history_messages(
    path: Path, rows: int, in_place: bool, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[dict[str, Any]]:
    """The messages that hand the history file at `path` (`rows` rows) to the master: its
    bytes in order, or one message without them when the file is `in_place`, already in the
    master's directory."""
    size = path.stat().st_size
    header = {"name": path.name, "rows": rows, "size": size}
    if in_place:
        yield header | {"offset": 0, "data": None}
        return
    with path.open("rb") as file:
        offset = 0
        while offset < size:
            data = file.read(min(chunk_bytes, size - offset))
            if not data:  # shorter than it was a moment ago: the message says so
                raise OSError(f"{path} shrank while it was being sent")
            yield header | {"offset": offset, "data": data}
            offset += len(data)


@dataclass
class Expected:
    """One history file the run must have."""

    process: str  # the process that writes it
    sender: str | None  # the Locust worker that sends it; None for the master's own file
    rows: int | None = None  # as its writer reported them once done; None: not (yet) done
    delivery: str | None = None  # own, sent, in place
    problem: str | None = None  # why it is not complete, once that is known


class Histories:
    """The master's (or single process's) list of the history files of a run: its own and one
    per worker process that took part, each complete or not; and the files being received."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.files: dict[str, Expected] = {}
        self._receiving: dict[str, tuple[BinaryIO, int]] = {}  # name -> (partial, bytes so far)

    def expect_own(self, name: str, process: str) -> None:
        self.files[name] = Expected(process, None)

    def closed_own(self, name: str, rows: int) -> None:
        self.files[name].rows = rows
        self.files[name].delivery = "own"

    def expect(self, name: str, process: str, sender: str) -> None:
        """A worker took part in the test: its file is due (again, after another test)."""
        own_name = isinstance(process, str) and FILE_PATTERN.replace("*", process)
        if not isinstance(name, str) or not HISTORY_NAME.fullmatch(name) or name != own_name:
            raise TransferError(f"{sender}: {name!r} is not the history file of {process!r}")
        known = self.files.get(name)
        if known is not None and known.sender is None:
            raise TransferError(f"{sender}: {name} is the master's own history file")
        self.files[name] = Expected(process, sender)

    def receive(self, sender: str, message: dict[str, Any]) -> bool:
        """Take one message of `history_messages` from `sender`: True when its file is complete.

        The bytes go to a hidden partial file that replaces the file of that name once whole,
        so a reader never sees half a history. Raises TransferError for a message that is not
        the next of a file this sender took part with.
        """
        name, rows, size, offset, data = (
            message.get(k) for k in ("name", "rows", "size", "offset", "data")
        )
        expected = self.files.get(name) if isinstance(name, str) else None
        if expected is None or expected.sender != sender:
            raise TransferError(f"{sender}: sent {name!r}, not a history file it took part with")
        whole_numbers = all(type(n) is int and n >= 0 for n in (rows, size, offset))
        if not whole_numbers or not (data is None or isinstance(data, bytes)):
            self.give_up(name, "a malformed message")
            raise TransferError(f"{sender}: {name}: a malformed message")
        if data is None:
            return self._in_place(name, rows, size)
        try:
            return self._write(name, rows, size, offset, data)
        except OSError as exc:  # a full disk, say: the file will not be whole
            self.give_up(name, f"cannot be written here: {exc}")
            raise TransferError(f"{sender}: {name}: {self.files[name].problem}") from None

    def give_up(self, name: str, problem: str) -> None:
        """`name` will not come: say why."""
        self._abandon(name)
        self.files[name].problem = problem

    def pending(self) -> list[str]:
        """The files not complete whose problem is not known yet."""
        return [n for n, f in self.files.items() if f.rows is None and f.problem is None]

    def incomplete(self) -> str | None:
        """Why the run's history is not whole (one line), or None when it is."""
        problems = [
            f"history of worker {f.process} missing: {name} ({f.problem or 'not received'})"
            if f.sender
            else f"history of {f.process} not closed: {name}"
            for name, f in sorted(self.files.items())
            if f.rows is None
        ]
        return "; ".join(problems) or None

    def record(self) -> dict[str, dict[str, Any]]:
        """Every file and what is known of it, as locust-run.json's `histories`."""
        return {name: asdict(f) for name, f in sorted(self.files.items())}

    def _write(self, name: str, rows: int, size: int, offset: int, data: bytes) -> bool:
        if offset == 0:
            self._abandon(name)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
            partial = open(os.open(self._partial(name), flags, 0o600), "wb")  # noqa: SIM115
            self._receiving[name] = (partial, 0)
        partial, received = self._receiving.get(name, (None, 0))
        if partial is None or offset != received or received + len(data) > size:
            self.give_up(name, f"bytes {offset}+{len(data)} of {size} came after {received}")
            raise TransferError(f"{self.files[name].sender}: {name}: {self.files[name].problem}")
        partial.write(data)
        received += len(data)
        self._receiving[name] = (partial, received)
        if received < size:
            return False
        del self._receiving[name]
        partial.close()
        os.replace(self._partial(name), self.directory / name)
        self._done(name, rows, "sent")
        return True

    def _in_place(self, name: str, rows: int, size: int) -> bool:
        # The worker wrote into this very directory (same machine, same path): nothing to
        # copy, but the file must be there, whole.
        try:
            there = (self.directory / name).stat().st_size
        except OSError:
            there = None
        if there != size:
            self.files[name].problem = f"reported as written here, {size} bytes, but {there}"
            return False
        self._done(name, rows, "in place")
        return True

    def _done(self, name: str, rows: int, delivery: str) -> None:
        self.files[name].rows = rows
        self.files[name].delivery = delivery
        self.files[name].problem = None

    def _partial(self, name: str) -> Path:
        return self.directory / f".{name}.part"

    def _abandon(self, name: str) -> None:
        partial, _ = self._receiving.pop(name, (None, 0))
        if partial is not None:
            partial.close()
            self._partial(name).unlink(missing_ok=True)
