"""The load tests' options: what each accepts, and the settings a test starts with."""

import argparse
from pathlib import Path

import pytest

from locust_cachebench.options import (
    Settings,
    SettingsError,
    key_distribution,
    keys_count,
    rate,
    zipf_exponent,
)


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (keys_count, "1", 1),
        (keys_count, " 250 ", 250),
        (keys_count, 7, 7),
        (zipf_exponent, "0", 0.0),
        (zipf_exponent, "1.2", 1.2),
        (rate, "0", 0.0),
        (rate, "0.05", 0.05),
        (rate, "1", 1.0),
        (key_distribution, "uniform", "uniform"),
        (key_distribution, "zipf", "zipf"),
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
