"""The CPU meter of a Locust process, and the use above which its figures are not to be trusted."""

import time

# A process busier than this is saturated (Locust's own CPU warning threshold, in %).
CPU_SATURATED = 90


class CpuMeter:
    """This process's CPU use over the measured period, in % of one core.

    Locust samples CPU every 10 s only, so its warning never fires in a shorter run; a load
    generator near 100 % of its core is what makes throughput figures untrustworthy.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float] | None = None
        self.percent: float | None = None

    def start(self) -> None:
        self._start = (time.monotonic(), time.process_time())
        self.percent = None

    def current(self) -> float | None:
        if self._start is None:
            return self.percent
        wall, cpu = time.monotonic() - self._start[0], time.process_time() - self._start[1]
        return round(100 * cpu / wall, 1) if wall > 0 else None

    def stop(self) -> None:
        self.percent = self.current()
        self._start = None
