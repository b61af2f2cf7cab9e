"""The open loop: operations sent on a schedule of arrivals, whether or not earlier ones were
answered, as wrk2 sends them, on Locust (whose own users are a closed loop: each sends its next
request when it has the answer to the last).

Each load-generating process runs one scheduler from the start of the test to its stop. It
draws arrival times at its share of --arrival-rate, sleeps until each one's intended time and
spawns it; the arrival takes one of --max-in-flight slots (waiting for one if all are taken),
then runs one task of a scenario's user on a user instance of its own for that time, so a
scenario's tasks pick the operation and key as in the closed loop. The intended time goes
with the first operation into the history, where latency is measured from it: a stalled
server cannot hide the operations it kept from being sent (coordinated omission).
"""

import itertools
import logging
import random
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import gevent
import gevent.lock
import gevent.pool
from locust import User
from locust.env import Environment
from locust.stats import calculate_response_time_percentile
from locust.user.task import DefaultTaskSet

log = logging.getLogger("loadtests")

# What locust-run.json says of the arrivals: their counts (see Arrivals), then the send lag.
COUNTS = ("arrivals_scheduled", "arrivals_sent", "arrivals_waited")
LAG_QUANTILES = {"p50": 0.5, "p99": 0.99, "max": 1.0}


def arrival_offsets(rate: float, arrival: str, rng: random.Random) -> Iterator[float]:
    """Seconds from the start of the schedule to each arrival, without end, `rate` a second:
    a Poisson process (exponential gaps) or even gaps."""
    if arrival == "constant":
        # Multiplied, not summed: no rounding error builds up over a long run.
        return (n / rate for n in itertools.count(1))
    return itertools.accumulate(rng.expovariate(rate) for _ in itertools.count())


class SendLag:
    """How late arrivals started, from their intended time, in µs rounded to two significant
    digits: counts that add up across processes, as Locust's response times do."""

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = dict(counts or {})

    def add(self, lag_ns: int) -> None:
        us = max(lag_ns, 0) // 1000
        rounded = us if us < 100 else round(us, 2 - len(str(us)))
        self.counts[rounded] = self.counts.get(rounded, 0) + 1

    def merge(self, counts: dict[int, int]) -> None:
        for us, count in counts.items():
            # Sent as a worker's report, the keys may come back as strings.
            self.counts[int(us)] = self.counts.get(int(us), 0) + count

    def figures(self) -> dict[str, float | None]:
        """send_lag_{p50,p99,max}_ms (None without arrivals)."""
        total = sum(self.counts.values())
        return {
            f"send_lag_{name}_ms": (
                calculate_response_time_percentile(self.counts, total, q) / 1000 if total else None
            )
            for name, q in LAG_QUANTILES.items()
        }


class Arrivals:
    """One process's scheduler, its arrivals and their user instances: of the scenarios'
    classes, VideosUser's (users.py, not imported: it imports the plugin, which makes this),
    whose `serves_arrivals` and `videos.intend` are used here."""

    def __init__(
        self,
        environment: Environment,
        rng: random.Random,
        max_in_flight: int,
    ) -> None:
        self.environment = environment
        self.rng = rng
        self.max_in_flight = max_in_flight
        self.slots = gevent.lock.BoundedSemaphore(max_in_flight)
        self.greenlets = gevent.pool.Group()
        # Idle user instances of each scenario: one serves one arrival at a time, so that its
        # per-user state (a tutorial user's sequence, a writer's names) stays its own.
        self.idle: dict[type[User], list[tuple[User, DefaultTaskSet]]] = {}
        self.scheduled = 0  # arrivals whose intended time came
        self.sent = 0  # of those, arrivals that got a slot and started their task
        self.waited = 0  # of those, arrivals that found every slot taken
        self.lag = SendLag()
        self.stopped = False

    def start(self, rate: float, arrival: str, user_classes: Sequence[type[User]]) -> None:
        """Schedule `rate` arrivals a second from now on, each running a task of one of
        `user_classes` (chosen by their weight, as Locust spreads its users)."""
        self.greenlets.spawn(self._schedule, rate, arrival, list(user_classes))

    def stop(self) -> None:
        """Stop scheduling, and cut off the arrivals in flight (their rows say so: status 0)."""
        # Each arrival killed frees its slot, which an arrival still waiting may take before
        # its own turn to be killed: it must not send then.
        self.stopped = True
        self.greenlets.kill(block=True)

    def report(self) -> dict[str, Any]:
        """The counts so far (COUNTS) and the send lag's, as a worker sends them."""
        counts = (self.scheduled, self.sent, self.waited)
        return dict(zip(COUNTS, counts, strict=True)) | {"send_lag": self.lag.counts}

    def _schedule(self, rate: float, arrival: str, user_classes: list[type[User]]) -> None:
        weights = [cls.weight for cls in user_classes]
        start_ns, start_wall_ns = time.monotonic_ns(), time.time_ns()
        for offset in arrival_offsets(rate, arrival, self.rng):
            due_ns = start_ns + round(offset * 1e9)
            wait_ns = due_ns - time.monotonic_ns()
            if wait_ns > 0:
                gevent.sleep(wait_ns / 1e9)
            # Late (a busy process): spawned at once, its lag in the history.
            self.scheduled += 1
            user_class = self.rng.choices(user_classes, weights)[0]
            self.greenlets.spawn(self._arrive, start_wall_ns + (due_ns - start_ns), user_class)

    def _arrive(self, t_intended_ns: int, user_class: type[User]) -> None:
        self.waited += self.slots.locked()
        with self.slots:
            if self.stopped:
                return
            idle = self.idle.setdefault(user_class, [])
            user = None
            try:
                user, taskset = idle.pop() if idle else self._new_user(user_class)
                self.sent += 1
                self.lag.add(time.time_ns() - t_intended_ns)
                user.videos.intend(t_intended_ns)
                taskset.execute_task(self.rng.choice(user_class.tasks))
            except Exception as exc:
                # As Locust's TaskSet does with a task's exception: logged, and the run goes on.
                self.environment.events.user_error.fire(
                    user_instance=user, exception=exc, tb=exc.__traceback__
                )
                log.error(f"{exc}\n{traceback.format_exc()}")
                return
            idle.append((user, taskset))

    def _new_user(self, user_class: type[User]) -> tuple[User, DefaultTaskSet]:
        user = user_class(self.environment)
        user.serves_arrivals = True
        user.on_start()
        return user, DefaultTaskSet(user)


def combined(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The COUNTS and send lag figures of several processes' reports (None for none: a
    closed loop)."""
    lag = SendLag()
    for report in reports:
        lag.merge(report["send_lag"])
    if not reports:
        return dict.fromkeys([*COUNTS, *lag.figures()])
    return {name: sum(r[name] for r in reports) for name in COUNTS} | lag.figures()
