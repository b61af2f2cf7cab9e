"""A TCP relay on loopback between the service and a cache server, which a test can cut off:
a network partition, with the server still running and its entries kept.

Stopping the server (SIGSTOP) is no partition: the commands sent to a stopped server wait in
its socket and run when it is continued, so a delete that the client gave up on, at its
timeout, still happens later, and the entry it meant to remove is gone all the same.
"""

import socket
import threading
from contextlib import suppress
from types import TracebackType


class Partition:
    """Relays connections on `port` to the server on `target_port` until cut()."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        # accept() is not woken by closing its socket: it looks for the end every 100 ms.
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._cut = False
        self._closed = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def cut(self) -> None:
        """Drop every connection, and each new one as it comes: nothing sent meanwhile
        reaches the server."""
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def heal(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self._closed.set()
        self.cut()
        for thread in self._threads:
            thread.join()
        self.listener.close()

    def __enter__(self) -> "Partition":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                if self._cut:
                    _close(client)
                    continue
                server = socket.create_connection(self.target)
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                thread = threading.Thread(target=_relay, args=(source, sink), daemon=True)
                self._threads.append(thread)
                thread.start()


def _relay(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    _close(source)
    _close(sink)


def _close(sock: socket.socket) -> None:
    # shutdown wakes a thread blocked in recv on it; close alone would not.
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
