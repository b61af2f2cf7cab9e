"""The thresholds a run is judged by when it ends (--max-failure-rate, --max-stale-rate), and
the exit code its outcome sets.

As locust-plugins' checks do, a failed threshold exits with its own code, 3, apart from Locust's
1 for failed requests; 2 is a run that measured nothing, or whose history is incomplete.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import locust.log

from locust_cachebench.options import Settings

log = logging.getLogger("loadtests")

MEASURED_NOTHING = 2
THRESHOLD_FAILED = 3


@dataclass(frozen=True)
class Verdict:
    """One threshold applied at the end of a run."""

    option: str
    limit: float
    value: float

    @property
    def passed(self) -> bool:
        return self.value <= self.limit


def _thresholds(
    settings: Settings, fail_ratio: float, start_ns: int | None
) -> list[tuple[str, float | None, Callable[[], float]]]:
    """Each threshold option, its limit (None: not set) and how to measure its value."""
    return [
        ("--max-failure-rate", settings.max_failure_rate, lambda: fail_ratio),
        (
            "--max-stale-rate",
            settings.max_stale_rate,
            lambda: stale_rate(settings.history_dir, start_ns),
        ),
    ]


def stale_rate(history_dir: Path | None, start_ns: int | None) -> float:
    """The share of the GETs from `start_ns` on that were stale reads, judged from the history."""
    # Imported here: pandas and the checker cost a Locust process that never asks.
    from reports.figures import figures
    from reports.history import read_history

    history = read_history(history_dir)
    return figures(history, start_ns=start_ns)["stale_rate"] or 0.0


def verdicts(
    settings: Settings, fail_ratio: float, start_ns: int | None, incomplete: str | None = None
) -> list[Verdict]:
    """The verdict of each threshold set; a value is measured only if its threshold is set.

    With an `incomplete` history, the stale reads are not judged: part of the load is missing.
    """
    found = []
    for option, limit, measure in _thresholds(settings, fail_ratio, start_ns):
        if limit is None:
            continue
        if incomplete is not None and option == "--max-stale-rate":
            log.error(f"{option} {limit:g}: not judged, the history is incomplete")
            continue
        found.append(Verdict(option, limit, measure()))
    return found


def log_verdicts(verdicts: list[Verdict]) -> None:
    for verdict in verdicts:
        outcome = "passed" if verdict.passed else "FAILED"
        log.log(
            logging.INFO if verdict.passed else logging.ERROR,
            f"{verdict.option} {verdict.limit:g}: {outcome} ({verdict.value:.4g})",
        )


def exit_code(
    error: str | None, verdicts: list[Verdict], settings: Settings, incomplete: str | None = None
) -> int | None:
    """The exit code of a run's outcome; None leaves Locust's own rule (1 if a request failed)."""
    if error is not None or incomplete is not None:
        # Not 1, Locust's "some requests failed": this run measured nothing at all, or its
        # history lacks part of the load.
        return MEASURED_NOTHING
    if not all(v.passed for v in verdicts):
        return THRESHOLD_FAILED
    if settings.max_failure_rate is not None and not locust.log.unhandled_greenlet_exception:
        # The failure threshold replaces Locust's own rule (any failure exits with 1).
        return 0
    return None
