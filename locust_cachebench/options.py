"""The load tests' own command-line options, and the checked settings made from them.

Each option has a LOCUST_* environment variable too. A bad value stops Locust with one line
(`locust: error: argument --keys: ...`): the checks are argparse types, and the same checks
run again when a test starts, since the web UI's form bypasses argparse.
"""

import argparse
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locust_cachebench.keys import KEY_DISTRIBUTIONS

if TYPE_CHECKING:
    # Importing locust monkey-patches the standard library: only Locust itself should.
    from locust.argument_parser import LocustArgumentParser

DEFAULT_KEYS = 100
DEFAULT_KEY_DIST = "zipf"
DEFAULT_ZIPF_S = 1.0
# all: PUT every id before the measured period; warm: then GET every id once, so that the
# measured period starts with every id cached instead of with the cache's cold start; none:
# leave the keyspace as the store has it, so an id never written reads as absent (404), which
# a large keyspace needs.
SEED_CHOICES = ("all", "warm", "none")
DEFAULT_SEED = "all"
# Open loop: how arrivals are spaced, and the operations a process keeps outstanding at most.
ARRIVALS = ("poisson", "constant")
DEFAULT_ARRIVAL = "poisson"
DEFAULT_MAX_IN_FLIGHT = 256
# Choosing a key costs no memory per id; seeding all of them costs a PUT and a history row per
# id (1,000,000: some 20 minutes at the 800 PUT/s measured here, 100 MB): --seed none skips it.
MAX_KEYS = 1_000_000
# Where Locust's web UI and master listen unless told otherwise (Locust's own default is every
# interface, and its web UI, which has no login, lets anyone load any host).
LOOPBACK = "127.0.0.1"


def _whole_number(value: Any) -> int:
    """`value` as an int; 0 for anything but an int or its digits (bool is an int in Python,
    and int(2.5) would quietly be 2)."""
    try:
        return int(value) if isinstance(value, int | str) and not isinstance(value, bool) else 0
    except ValueError:
        return 0


def _number(value: Any) -> float:
    """`value` as a float; NaN for anything that is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _one_of(value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def _count(value: Any, maximum: int | None = None) -> int:
    """A whole number from 1 to `maximum` (no upper bound when None)."""
    number = _whole_number(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {value!r}")
    if maximum is not None and number > maximum:
        raise argparse.ArgumentTypeError(f"must be a whole number <= {maximum}, not {value!r}")
    return number


def keys_count(value: Any) -> int:
    return _count(value, MAX_KEYS)


def zipf_exponent(value: Any) -> float:
    number = _number(value)
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, not {value!r}")
    return number


def rate(value: Any) -> float:
    number = _number(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(
            f"must be a fraction from 0 to 1 (0.01: 1 %), not {value!r}"
        )
    return number


def _positive(value: Any, unit: str) -> float:
    """`value` as a finite number > 0 of `unit`, which the message names."""
    number = _number(value)
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be {unit} > 0, not {value!r}")
    return number


def arrival_rate(value: Any) -> float:
    return _positive(value, "operations per second")


def seconds(value: Any) -> float:
    return _positive(value, "seconds")


def in_flight_cap(value: Any) -> int:
    return _count(value)


def random_seed(value: Any) -> int:
    number = _whole_number(value)
    # _whole_number reads what is not a whole number as 0: only a 0 given is a seed of 0.
    if number < 0 or (number == 0 and str(value) != "0"):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {value!r}")
    return number


def key_distribution(value: Any) -> str:
    return _one_of(value, KEY_DISTRIBUTIONS)


def arrival_kind(value: Any) -> str:
    return _one_of(value, ARRIVALS)


def seed_choice(value: Any) -> str:
    if value not in SEED_CHOICES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(SEED_CHOICES)}, not {value!r}")
    return value


def add_options(parser: "LocustArgumentParser") -> None:
    """Add the options to Locust's parser, in a group of their own in `locust --help` (an
    `init_command_line_parser` listener)."""
    # Defaults, so that an option, a LOCUST_* variable or a config file still binds wider.
    parser.set_defaults(web_host=LOOPBACK, master_bind_host=LOOPBACK)
    group = parser.add_argument_group(
        "cachebench",
        "The videos scenarios' options (locust_cachebench). A threshold that fails exits with "
        "code 3; a run that measured nothing, with 2.",
    )

    def option(*args: Any, include_in_web_ui: bool = True, **kwargs: Any) -> None:
        # A group's add_argument is argparse's (env_var is configargparse's, for any group),
        # not LocustArgumentParser's: mark whether the web UI's form shows it as Locust does.
        group.add_argument(*args, **kwargs).include_in_web_ui = include_in_web_ui

    option(
        "--keys",
        type=keys_count,
        default=DEFAULT_KEYS,
        env_var="LOCUST_KEYS",
        help=f"Video ids 1 … N that the scenarios read and write (default {DEFAULT_KEYS}).",
    )
    option(
        "--key-dist",
        type=key_distribution,
        choices=KEY_DISTRIBUTIONS,
        default=DEFAULT_KEY_DIST,
        env_var="LOCUST_KEY_DIST",
        help=f"How popular ids are: uniform, or zipf, id 1 hottest (default {DEFAULT_KEY_DIST}).",
    )
    option(
        "--zipf-s",
        type=zipf_exponent,
        default=DEFAULT_ZIPF_S,
        env_var="LOCUST_ZIPF_S",
        help=f"Zipf exponent: id k is chosen ∝ 1/k^s (default {DEFAULT_ZIPF_S}; 0 is uniform).",
    )
    option(
        "--seed",
        type=seed_choice,
        choices=SEED_CHOICES,
        default=DEFAULT_SEED,
        env_var="LOCUST_SEED",
        help="all: PUT every id once before measuring; warm: then GET every id once, so that "
        "a cache starts the measured period full; none: no PUT, an id never written reads as "
        f"absent, 404 (default {DEFAULT_SEED}).",
    )
    option(
        "--random-seed",
        type=random_seed,
        default=None,
        env_var="LOCUST_RANDOM_SEED",
        help="Draw the operations and ids from this seed: a test run again with it sends the "
        "same operations in the same order (each process its own sequence). Without it, a "
        "fresh draw each time.",
    )
    option(
        "--measure-time",
        type=seconds,
        default=None,
        env_var="LOCUST_MEASURE_TIME",
        help="Stop the test this many seconds after seeding finished, when the measured "
        "period began (Locust's --run-time counts the seeding too). Without it, the test runs "
        "until --run-time or until stopped.",
    )
    option(
        "--history-dir",
        default=None,
        env_var="LOCUST_HISTORY_DIR",
        include_in_web_ui=False,
        help="Write every operation to history-*.csv files and locust-run.json in this "
        "directory (created if missing). Without it, no history is kept.",
    )
    option(
        "--max-failure-rate",
        type=rate,
        default=None,
        env_var="LOCUST_MAX_FAILURE_RATE",
        help="Exit with code 3 if more than this fraction of requests failed, else 0 "
        "(default: Locust's own rule, any failure exits with 1).",
    )
    option(
        "--max-stale-rate",
        type=rate,
        default=None,
        env_var="LOCUST_MAX_STALE_RATE",
        help="Exit with code 3 if more than this fraction of the GETs were stale reads, "
        "judged from the history at the end (needs --history-dir).",
    )
    option(
        "--arrival-rate",
        type=arrival_rate,
        default=None,
        env_var="LOCUST_ARRIVAL_RATE",
        help="Open loop: this many operations per second for the whole test, split evenly "
        "over the processes, each sent at its time whether or not earlier ones were answered "
        "(the users then send nothing). Without it, the users' closed loop.",
    )
    option(
        "--arrival",
        type=arrival_kind,
        choices=ARRIVALS,
        default=DEFAULT_ARRIVAL,
        env_var="LOCUST_ARRIVAL",
        help="Open loop: poisson (exponential gaps) or constant (even gaps) "
        f"(default {DEFAULT_ARRIVAL}).",
    )
    option(
        "--max-in-flight",
        type=in_flight_cap,
        default=DEFAULT_MAX_IN_FLIGHT,
        env_var="LOCUST_MAX_IN_FLIGHT",
        help="Open loop: operations a process keeps outstanding at most; an arrival that finds "
        f"them all taken waits for one, and its wait counts (default {DEFAULT_MAX_IN_FLIGHT}).",
    )


class SettingsError(ValueError):
    """An option value a test cannot start with."""


@dataclass(frozen=True)
class Settings:
    keys: int = DEFAULT_KEYS
    key_dist: str = DEFAULT_KEY_DIST
    zipf_s: float = DEFAULT_ZIPF_S
    history_dir: Path | None = None
    max_failure_rate: float | None = None
    max_stale_rate: float | None = None
    seed: str = DEFAULT_SEED
    arrival_rate: float | None = None
    arrival: str = DEFAULT_ARRIVAL
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    random_seed: int | None = None
    measure_time: float | None = None

    @classmethod
    def from_options(cls, options: argparse.Namespace | None) -> "Settings":
        """The checked settings in Locust's parsed options (defaults when there are none)."""
        if options is None:
            return cls()
        defaults = cls()
        checked = {}
        for name, check in _CHECKS.items():
            value = getattr(options, name, getattr(defaults, name))
            try:
                # Only the options without a default may be left out ("" from the web UI).
                unset = name in _OPTIONAL and value in (None, "")
                checked[name] = None if unset else check(value)
            except argparse.ArgumentTypeError as exc:
                raise SettingsError(f"--{name.replace('_', '-')}: {exc}") from None
        if checked["max_stale_rate"] is not None and checked["history_dir"] is None:
            raise SettingsError(
                "--max-stale-rate: needs --history-dir, the stale reads are judged from it"
            )
        return cls(**checked)


_CHECKS = {
    "keys": keys_count,
    "key_dist": key_distribution,
    "zipf_s": zipf_exponent,
    "seed": seed_choice,
    "history_dir": Path,
    "max_failure_rate": rate,
    "max_stale_rate": rate,
    "arrival_rate": arrival_rate,
    "arrival": arrival_kind,
    "max_in_flight": in_flight_cap,
    "random_seed": random_seed,
    "measure_time": seconds,
}
_OPTIONAL = {
    "history_dir", "max_failure_rate", "max_stale_rate", "arrival_rate", "random_seed",
    "measure_time",
}  # fmt: skip
