"""The load tests' options: what each accepts, and the settings a test starts with."""

import argparse
import os
import sys
from pathlib import Path

import pytest

from locust_cachebench.options import (
    MAX_KEYS,
    Settings,
    SettingsError,
    arrival_kind,
    arrival_rate,
    in_flight_cap,
    key_distribution,
    keys_count,
    random_seed,
    rate,
    seconds,
    zipf_exponent,
)


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (keys_count, "1", 1),
        (keys_count, " 250 ", 250),
        (keys_count, 7, 7),
        (keys_count, str(MAX_KEYS), MAX_KEYS),
        (zipf_exponent, "0", 0.0),
        (zipf_exponent, "1.2", 1.2),
        (rate, "0", 0.0),
        (rate, "0.05", 0.05),
        (rate, "1", 1.0),
        (key_distribution, "uniform", "uniform"),
        (key_distribution, "zipf", "zipf"),
        (arrival_rate, "100", 100.0),
        (arrival_rate, "0.5", 0.5),
        (arrival_kind, "poisson", "poisson"),
        (arrival_kind, "constant", "constant"),
        (in_flight_cap, "1", 1),
        (in_flight_cap, 256, 256),
        (random_seed, "0", 0),
        (random_seed, 0, 0),
        (random_seed, "42", 42),
        (seconds, "5", 5.0),
        (seconds, "0.25", 0.25),
    ],
)
def test_good_values(check, value, expected):
    assert check(value) == expected


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (keys_count, "0"),
        (keys_count, "-3"),
        (keys_count, "2.5"),
        (keys_count, "ten"),
        (keys_count, ""),
        (keys_count, True),
        (keys_count, 2.0),
        (keys_count, str(MAX_KEYS + 1)),
        (zipf_exponent, "-0.1"),
        (zipf_exponent, "nan"),
        (zipf_exponent, "inf"),
        (zipf_exponent, "steep"),
        (rate, "-0.01"),
        (rate, "1.5"),
        (rate, "nan"),
        (rate, "5%"),
        (key_distribution, "Zipf"),
        (key_distribution, "pareto"),
        (arrival_rate, "0"),
        (arrival_rate, "-5"),
        (arrival_rate, "inf"),
        (arrival_rate, "fast"),
        (arrival_kind, "uniform"),
        (in_flight_cap, "0"),
        (in_flight_cap, "2.5"),
        (in_flight_cap, True),
        (random_seed, "-1"),
        (random_seed, "2.5"),
        (random_seed, "lucky"),
        (random_seed, True),
        (seconds, "0"),
        (seconds, "-1"),
        (seconds, "inf"),
        (seconds, "10s"),
    ],
)
def test_bad_values_say_what_is_accepted(check, value):
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be .*, not "):
        check(value)


def test_settings_from_parsed_options():
    options = argparse.Namespace(
        keys=20, key_dist="uniform", zipf_s=0.5, history_dir="runs/1", max_failure_rate=0.01
    )
    assert Settings.from_options(options) == Settings(20, "uniform", 0.5, Path("runs/1"), 0.01)


def test_settings_without_options_are_the_defaults():
    assert Settings.from_options(None) == Settings(100, "zipf", 1.0, None, None)
    assert Settings.from_options(argparse.Namespace()) == Settings()
    # The closed loop, unless an arrival rate is given.
    assert (Settings().arrival_rate, Settings().arrival, Settings().max_in_flight) == (
        None,
        "poisson",
        256,
    )


def test_the_open_loop_settings():
    options = argparse.Namespace(arrival_rate="50", arrival="constant", max_in_flight="4")
    settings = Settings.from_options(options)
    assert settings.arrival_rate == 50.0
    assert (settings.arrival, settings.max_in_flight) == ("constant", 4)
    # The web UI's form leaves an option without a default empty: the closed loop, no seed.
    assert Settings.from_options(argparse.Namespace(arrival_rate="")).arrival_rate is None
    assert Settings.from_options(argparse.Namespace(random_seed="")).random_seed is None
    assert Settings.from_options(argparse.Namespace(measure_time="")).measure_time is None
    with pytest.raises(SettingsError, match=r"^--max-in-flight: must be a whole number >= 1"):
        Settings.from_options(argparse.Namespace(max_in_flight=0))


def test_a_stale_threshold_needs_a_history():
    options = argparse.Namespace(max_stale_rate="0.1")
    with pytest.raises(SettingsError, match=r"^--max-stale-rate: needs --history-dir"):
        Settings.from_options(options)
    options.history_dir = "runs/1"
    assert Settings.from_options(options).max_stale_rate == 0.1


def test_a_bad_value_from_the_web_ui_form_names_the_option():
    # The web UI's form converts with the option's type (int("0") is fine) and skips the check.
    options = argparse.Namespace(keys=0, history_dir="", max_failure_rate="")
    with pytest.raises(SettingsError, match=r"^--keys: must be a whole number >= 1, not 0$"):
        Settings.from_options(options)
    assert Settings.from_options(argparse.Namespace(history_dir="", max_failure_rate="")) == (
        Settings()
    )


@pytest.fixture
def parse_locust_options(tmp_path, monkeypatch):
    """Parse a command line with Locust's own parser and the load tests' options, as `locust`
    does when started from an empty directory: no config file, no LOCUST_* variable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.locust.conf either
    for name in [name for name in os.environ if name.startswith("LOCUST_")]:
        monkeypatch.delenv(name)
    # Importing Locust monkey-patches the standard library, the rest of the session included.
    monkeypatch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
    monkeypatch.setattr(sys, "argv", ["locust"])  # the name its messages begin with
    from locust.argument_parser import get_parser

    import locust_cachebench.plugin  # noqa: F401  (registers the listener that adds the options)

    def parse(*args, **env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return get_parser().parse_args(["-f", "loadtests/", *args])

    return parse


def test_locust_listens_on_loopback_wherever_it_is_started(parse_locust_options):
    options = parse_locust_options()
    assert (options.web_host, options.master_bind_host) == ("127.0.0.1", "127.0.0.1")


@pytest.mark.parametrize(
    ("args", "env", "config"),
    [
        (["--web-host", "0.0.0.0", "--master-bind-host", "0.0.0.0"], {}, None),
        ([], {"LOCUST_WEB_HOST": "0.0.0.0", "LOCUST_MASTER_BIND_HOST": "0.0.0.0"}, None),
        ([], {}, "web-host = 0.0.0.0\nmaster-bind-host = 0.0.0.0\n"),
    ],
    ids=["options", "environment", "locust.conf"],
)
def test_a_wider_bind_asked_for_is_kept(parse_locust_options, tmp_path, args, env, config):
    if config is not None:
        (tmp_path / "locust.conf").write_text(config)
    options = parse_locust_options(*args, **env)
    assert (options.web_host, options.master_bind_host) == ("0.0.0.0", "0.0.0.0")


def test_locust_refuses_a_keyspace_over_the_limit_in_one_line(parse_locust_options, capsys):
    assert parse_locust_options("--keys", str(MAX_KEYS)).keys == MAX_KEYS
    with pytest.raises(SystemExit) as exit_:
        parse_locust_options("--keys", str(MAX_KEYS + 1))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        f"locust: error: argument --keys: must be a whole number <= {MAX_KEYS}, "
        f"not '{MAX_KEYS + 1}'\n"
    )
