"""The strategies as dimensions of the matrix: --invalidations, --fills and --work-ms in the
plan, where each applies (the service's own rule), and what a run of one is given."""

import re
from dataclasses import replace

import pytest
from summaries import run_row

from cachebench.cli import build_parser, options_from
from cachebench.matrix import run_matrix
from cachebench.one_run import service_settings
from cachebench.plan import Options, OptionsError, plan, run_work_ms, validate
from cachebench.strategies import applies_to, extra_store_reads
from service.settings import CACHING


def names(runs):
    return [run.name for run in runs]


def test_strategies_and_work_times_are_dimensions_of_the_caches_they_apply_to():
    options = Options(
        repeats=1, scenarios=("mixed",), work_ms=(10, 50), invalidations=("delete", "lease"),
        fills=("plain",),
    )  # fmt: skip
    runs = plan(options, ("none", "redis"))
    # `none` caches nothing: once per work time, without a strategy.
    assert names(runs) == [
        "none-mixed-10-r1",
        "none-mixed-50-r1",
        "redis-mixed-10-delete-plain-r1",
        "redis-mixed-10-lease-plain-r1",
        "redis-mixed-50-delete-plain-r1",
        "redis-mixed-50-lease-plain-r1",
    ]
    assert runs[3].variant_label == "work_ms=10,invalidation=lease,fill=plain"
    assert runs[0].variant_label == "work_ms=10"


def test_one_work_time_is_no_dimension():
    assert Options(work_ms=(30,)).dimensions() == []
    assert plan(Options(repeats=1, scenarios=("mixed",)), ("redis",))[0].variant == ()


def test_the_strategies_apply_where_the_service_says():
    assert applies_to("invalidation") == CACHING
    assert applies_to("fill") == CACHING
    assert "none" not in CACHING


def test_a_run_gets_its_own_work_time_and_strategies(tmp_path):
    options = Options(work_ms=(10, 50), invalidations=("versioned",), fills=("xfetch",))
    run = plan(replace_scenarios(options), ("redis",))[1]
    settings = service_settings(options, run, tmp_path, {})
    assert (settings["VIDEOS_WORK_MS"], settings["CACHE_INVALIDATION"]) == (50, "versioned")
    assert settings["CACHE_FILL"] == "xfetch"
    assert extra_store_reads("redis", dict(run.variant)) == 1
    assert extra_store_reads("redis", {}) == 0
    assert extra_store_reads("none", {}) is None


def replace_scenarios(options):
    return replace(options, repeats=1, scenarios=("mixed",))


class Asked:
    """A cell runner that records the runs it was asked for, each a quotable row."""

    def __init__(self):
        self.names = []

    def __call__(self, run, options, addresses, progress):
        self.names.append(run.name)
        return run_row(run.cache, run.scenario, run.repeat, 100.0, variant=run.variant_label)


class Quiet:
    def running(self, run, elapsed_s, rps):
        pass

    def finished(self, run, row, error):
        pass


def test_a_combination_that_does_not_apply_is_listed_and_not_run(tmp_path):
    options = Options(
        caches=("simple", "filesystem"), scenarios=("mixed",), repeats=1,
        invalidations=("delete", "lease"), fills=("plain", "lock"), out=tmp_path,
    )  # fmt: skip
    asked = Asked()
    result = run_matrix(options, Quiet(), asked)
    assert asked.names == [
        "simple-mixed-delete-plain-r1",
        "simple-mixed-delete-lock-r1",
        "filesystem-mixed-delete-plain-r1",
    ]
    assert result.not_applicable == {
        "simple [invalidation=lease,fill=plain]": "CACHE_INVALIDATION='lease' does not apply to "
        "CACHE_BACKEND='simple': it needs an atomic compare-and-set on a server (redis, "
        "memcached)",
        "simple [invalidation=lease,fill=lock]": "CACHE_INVALIDATION='lease' does not apply to "
        "CACHE_BACKEND='simple': it needs an atomic compare-and-set on a server (redis, "
        "memcached)",
        "filesystem [invalidation=delete,fill=lock]": "CACHE_FILL='lock' does not apply to "
        "CACHE_BACKEND='filesystem': it needs an atomic add (simple, memcached, redis)",
        "filesystem [invalidation=lease,fill=plain]": "CACHE_INVALIDATION='lease' does not "
        "apply to CACHE_BACKEND='filesystem': it needs an atomic compare-and-set on a server "
        "(redis, memcached)",
        "filesystem [invalidation=lease,fill=lock]": "CACHE_INVALIDATION='lease' does not "
        "apply to CACHE_BACKEND='filesystem': it needs an atomic compare-and-set on a server "
        "(redis, memcached)",
    }
    assert len(result.summary) == 3


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"invalidations": ("purge",)}, "--invalidations 'purge': must be one of delete"),
        ({"fills": ("lock", "lock")}, "--fills: a value is given twice"),
        ({"fills": ("lock",), "host": "http://127.0.0.1:8000"},
         "--fills needs the runner's own service, not --host"),
        ({"invalidations": ("lease",), "strategy": "memoize"},
         "--invalidations applies to --strategy cached only, not memoize"),
        ({"work_ms": ()}, "--work-ms needs at least one work time"),
        ({"work_ms": (10, 60_001)}, "--work-ms 60001: must be a whole number from 0 to 60000"),
    ],
)  # fmt: skip
def test_bad_strategy_options_say_what_to_change(changes, says):
    with pytest.raises(OptionsError, match=re.escape(says)):
        validate(Options(**changes))


def test_the_command_line_takes_lists():
    args = build_parser().parse_args(
        ["run", "--work-ms", "5,50", "--invalidations", "lease,outbox", "--fills", "xfetch"]
    )
    options = options_from(args)
    assert (options.work_ms, options.invalidations, options.fills) == (
        (5, 50), ("lease", "outbox"), ("xfetch",),
    )  # fmt: skip
    assert options_from(build_parser().parse_args(["run"])).work_ms == (50,)
    assert options_from(build_parser().parse_args(["run", "--quick"])).work_ms == (10,)


def test_a_bad_strategy_on_the_command_line_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--fills", "eager"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'eager' is not one of plain, lock, xfetch" in err


def test_the_bounds_of_a_run_use_its_own_work_time():
    # What run_one gives RunShape and summary.csv: the run's work time, not the list's first.
    options = Options(work_ms=(10, 50))
    runs = plan(replace_scenarios(options), ("redis",))
    assert [run_work_ms(r, options) for r in runs] == [10, 50]
