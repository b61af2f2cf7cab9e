"""GET, PUT and DELETE on /videos/<id> through a Locust session: each response validated
(locust_cachebench/contract.py) and reported to Locust, then recorded in the history."""

import time
from collections.abc import Callable

from locust.contrib.fasthttp import FastHttpSession, ResponseContextManager

from locust_cachebench.contract import Expect, check_delete, check_get, check_put
from locust_cachebench.history import HistoryWriter, NoHistory, Writer

# One stats row per method for every /videos/<id>.
STATS_NAME = "/videos/[id]"


class VideosClient:
    """The videos API as seen by one writer (a user, or the seeding)."""

    def __init__(
        self,
        session: FastHttpSession,
        history: HistoryWriter | NoHistory,
        writer: Writer,
    ) -> None:
        self.session = session
        self.history = history
        self.writer = writer
        self._intended_ns: int | None = None

    def intend(self, t_intended_ns: int) -> None:
        """Say when the next operation should have been sent (an open loop's arrival): its
        history row keeps that time. An operation without one was due when it was sent."""
        self._intended_ns = t_intended_ns

    def get(self, key: int, expect: Expect | None = None) -> tuple[int, str]:
        """GET video `key`: (status, the name read or "")."""
        return self._call("get", key, "", lambda s, b: check_get(s, b, expect))

    def put(self, key: int) -> tuple[int, str]:
        """PUT a video under a name no other write uses: (status, that name)."""
        name = self.writer.next_name()
        video = {"name": name, "views": key, "likes": 0}
        # The name is recorded whatever the status: a failed PUT may still have been applied.
        status, _ = self._call("put", key, name, lambda s, b: (name, check_put(s, b, video)), video)
        return status, name

    def delete(self, key: int, expect: Expect | None = None) -> int:
        """DELETE video `key`: its status (204 deleted, 404 it was not there)."""
        status, _ = self._call("delete", key, "", lambda s, b: ("", check_delete(s, b, expect)))
        return status

    def _call(
        self,
        op: str,
        key: int,
        sent: str,
        check: Callable[[int, bytes], tuple[str, str | None]],
        video: dict | None = None,
    ) -> tuple[int, str]:
        """Send, validate, report and record one operation: (status, value)."""
        t_invoke = time.time_ns()
        # Only the arrival's first operation: the next of its task is due when this one ends.
        t_intended, self._intended_ns = self._intended_ns or t_invoke, None
        response = self._send(op, key, sent, video, t_invoke, t_intended)
        t_complete = time.time_ns()
        status = response.status_code
        headers = response.headers
        cache = (headers.get("X-Cache") or "") if headers is not None else ""
        with response:
            if status == 0:
                value = sent
                # A transport error or timeout: Locust's exception says which.
                response.failure(response.error or "no response")
            else:
                value, failure = check(status, response.content)
                if failure is None:
                    response.success()
                else:
                    response.failure(failure)
        worker = self.writer.worker
        self.history.record(op, key, value, status, cache, t_invoke, t_complete, worker, t_intended)
        return status, value

    def _send(
        self, op: str, key: int, sent: str, video: dict | None, t_invoke: int, t_intended: int
    ) -> ResponseContextManager:
        try:
            return self.session.request(
                op.upper(),
                f"/videos/{key}",
                name=STATS_NAME,
                json=video,
                catch_response=True,
            )
        except BaseException:
            # Killed while waiting (the run is stopping): the server may still apply it, so
            # it is recorded like a timeout, with an unknown outcome (status 0).
            worker = self.writer.worker
            self.history.record(op, key, sent, 0, "", t_invoke, time.time_ns(), worker, t_intended)
            raise
