"""Each worker's history, sent to the master over Locust's own messages when the test stops.

A worker announces its file when its test starts; the master answers with its own file's name,
which tells the worker whether they share a directory. When the worker's test stops (the
master's "stop", or its own Ctrl-C), or when the master asks, it sends its file in chunks, or
only its size and rows when the master's directory already holds it. The master asks, and
waits, when its own test stops: before it quits its workers, and before it judges the run.
The files themselves: locust_cachebench/transfer.py.
"""

import logging
import time
from collections.abc import Callable

import gevent
import gevent.event
from locust.env import Environment
from locust.rpc.protocol import Message
from locust.runners import STATE_MISSING

from locust_cachebench.history import HistoryWriter
from locust_cachebench.run import LoadRun
from locust_cachebench.transfer import TransferError, history_messages

log = logging.getLogger("loadtests")

STARTED = "cachebench_history_started"  # worker -> master: its process and file name
MASTER_FILE = "cachebench_master_history"  # master -> worker: the name of the master's own file
SEND = "cachebench_send_history"  # master -> worker: stop, and send the history
CHUNK = "cachebench_history"  # worker -> master: one of transfer.history_messages
RECEIVED = "cachebench_history_received"  # master -> worker: the file is whole on the master

# How long a master waits for a history while its worker sends nothing, and a quitting worker
# for the master's receipt: far longer than a chunk takes, however slow the link.
SILENCE_S = 10.0


class HistorySender:
    """What a worker does to get its history to the master."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.master_file: str | None = None
        self.due = False  # the test started, and its history was not sent since
        self.sent = False
        self.received = gevent.event.Event()

    def attach(self) -> None:
        runner = self.run.environment.runner
        runner.register_message(MASTER_FILE, self.on_master_file)
        runner.register_message(SEND, self.on_send)
        runner.register_message(RECEIVED, self.on_received)

    def announce(self) -> None:
        """The test started: say which file to expect (a `test_start` listener's part)."""
        history = self.run.history
        if isinstance(history, HistoryWriter):
            self.due, self.sent = True, False
            self.received.clear()
            data = {"process": self.run.process, "history_file": history.path.name}
            self.run.environment.runner.send_message(STARTED, data)

    def send(self) -> None:
        """Send the history written so far, once per test (a `test_stop` listener's part)."""
        history = self.run.history
        if not self.due or not isinstance(history, HistoryWriter):
            return
        self.due = False
        history.flush()
        master_file = self.master_file and history.path.parent / self.master_file
        in_place = bool(master_file and master_file.exists())
        try:
            for message in history_messages(history.path, history.rows_written, in_place):
                self.run.environment.runner.send_message(CHUNK, message)
        except OSError as exc:
            log.error(f"could not send {history.path} to the master: {exc}")
            return
        self.sent = True

    def wait_for_receipt(self) -> None:
        """Before this process exits with messages still queued: until the master has the file."""
        if self.sent and not self.received.wait(SILENCE_S):
            log.error(f"the master did not confirm it received {self.run.history_file()}")

    def on_master_file(self, environment: Environment, msg: Message, **_kwargs: object) -> None:
        self.master_file = (msg.data or {}).get("history_file")

    def on_send(self, environment: Environment, msg: Message, **_kwargs: object) -> None:
        # The master quits its workers once it has their histories: their users must stop
        # first, so that the file holds every operation they made.
        environment.runner.stop()
        self.send()

    def on_received(self, environment: Environment, msg: Message, **_kwargs: object) -> None:
        self.received.set()


class HistoryGatherer:
    """What a master does to get its workers' histories into its --history-dir."""

    def __init__(self, run: LoadRun, changed: Callable[[], None]) -> None:
        self.run = run
        self.changed = changed  # called when a worker joins: the run record says so at once
        self.last_heard = time.monotonic()

    def attach(self) -> None:
        runner = self.run.environment.runner
        runner.register_message(STARTED, self.on_started)
        runner.register_message(CHUNK, self.on_chunk)

    def on_started(self, environment: Environment, msg: Message, **_kwargs: object) -> None:
        histories = self.run.histories
        if histories is None:  # no history is kept
            return
        data = msg.data if isinstance(msg.data, dict) else {}
        try:
            histories.expect(data.get("history_file"), data.get("process"), msg.node_id)
        except TransferError as exc:
            log.error(f"history refused: {exc}")
            return
        reply = {"history_file": self.run.history_file()}
        environment.runner.send_message(MASTER_FILE, reply, client_id=msg.node_id)
        self.changed()

    def on_chunk(self, environment: Environment, msg: Message, **_kwargs: object) -> None:
        self.last_heard = time.monotonic()
        histories = self.run.histories
        data = msg.data if isinstance(msg.data, dict) else {}
        try:
            whole = histories is not None and histories.receive(msg.node_id, data)
        except TransferError as exc:
            log.error(f"history refused: {exc}")
            return
        if whole:
            reply = {"name": data["name"]}
            environment.runner.send_message(RECEIVED, reply, client_id=msg.node_id)

    def request(self) -> None:
        """The test stopped: ask every worker whose history is due for it, and wait for them
        unless this is one of the greenlets that receive the histories."""
        histories = self.run.histories
        runner = self.run.environment.runner
        if histories is None:
            return
        for name in histories.pending():
            sender = histories.files[name].sender
            if sender is not None:
                runner.send_message(SEND, None, client_id=sender)
        if gevent.getcurrent() not in runner.greenlet:
            self.wait()

    def wait(self) -> None:
        """Until every worker that took part has sent its history, or cannot: it is gone from
        Locust's workers (its heartbeats stopped, or it quit), or sent nothing for SILENCE_S."""
        histories = self.run.histories
        clients = self.run.environment.runner.clients
        if histories is None:
            return
        self.last_heard = time.monotonic()
        while pending := [n for n in histories.pending() if histories.files[n].sender]:
            for name in pending:
                client = clients.get(histories.files[name].sender)
                if client is None or client.state == STATE_MISSING:
                    histories.give_up(name, "the worker disappeared without sending it")
                elif time.monotonic() - self.last_heard > SILENCE_S:
                    histories.give_up(name, f"the worker sent nothing for {SILENCE_S:g} s")
            gevent.sleep(0.1)
