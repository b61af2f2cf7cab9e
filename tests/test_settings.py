"""Settings come from the environment or a mapping; a bad one is one clear error."""

import re
from pathlib import Path

import pytest

from service import create_app
from service.settings import CACHE_BACKENDS, SETTINGS, SettingError, defaults, parse_settings

README = Path(__file__).parents[1] / "README.md"


def test_environment_configures_the_app(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHE_BACKEND", "none")
    monkeypatch.setenv("VIDEOS_WORK_MS", "7")
    monkeypatch.setenv("VIDEOS_DATABASE", str(tmp_path / "v.sqlite"))
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = create_app()
    assert app.config["CACHE_BACKEND"] == "none"
    assert app.config["VIDEOS_WORK_MS"] == 7
    assert app.debug is False


def test_defaults_follow_the_tutorial():
    config = defaults()
    assert config["CACHE_BACKEND"] == "simple"
    assert config["CACHE_STRATEGY"] == "cached"
    assert config["CACHE_DEFAULT_TIMEOUT"] == 300
    assert config["VIDEOS_WORK_MS"] == 1000
    assert config["VIDEOS_WORK_PHASE"] == "before-read"
    assert defaults("gunicorn")["SERVICE_BIND"].startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CACHE_BACKEND", "couchbase", f"must be one of {', '.join(CACHE_BACKENDS)}"),
        ("CACHE_MEMCACHED_SERVERS", "127.0.0.1", "must be one server as host:port"),
        ("CACHE_MEMCACHED_SERVERS", "a:1,b:2", "must be one server as host:port"),
        ("CACHE_MEMCACHED_SERVERS", "127.0.0.1:65536", "must be one server as host:port"),
        ("CACHE_REDIS_URL", "redis://:bad", "must be a Redis URL"),
        ("CACHE_REDIS_URL", "http://x", "must be a Redis URL"),
        ("CACHE_REDIS_URL", "redis://host:notaport", "must be a Redis URL"),
        ("CACHE_REDIS_URL", "redis://host:65536/0", "must be a Redis URL"),
        ("CACHE_SOCKET_TIMEOUT_MS", "0", "must be a whole number from 1 to 60000"),
        ("CACHE_CONNECT_TIMEOUT_MS", "0.5", "must be a whole number"),
        ("CACHE_STRATEGY", "lru", "must be one of cached, memoize, memoize-fixed"),
        ("VIDEOS_WORK_MS", "fast", "must be a whole number"),
        ("VIDEOS_WORK_MS", "-1", "must be a whole number from 0"),
        ("CACHE_DEFAULT_TIMEOUT", "1.5", "must be a whole number"),
        ("VIDEOS_WORK_PHASE", "during", "must be one of before-read, after-read"),
        ("VIDEOS_STORE", "mongodb", "must be one of sqlite, postgres, memory"),
        ("VIDEOS_STORE", "postgres", "needs VIDEOS_DATABASE_URL"),
        ("VIDEOS_SCHEMA", "Videos", "lower-case letters, digits and _"),
        ("VIDEOS_SCHEMA", "a" * 64, "must be 1 to 63"),
        ("VIDEOS_SCHEMA", "pg_videos", "must not start with pg_"),
    ],
)
def test_bad_setting_is_one_line_naming_it(name, value, says, tmp_path):
    with pytest.raises(SettingError) as error:
        create_app({name: value, "VIDEOS_DATABASE": str(tmp_path / "v.sqlite")})
    message = str(error.value)
    assert message.startswith(f"{name}=")
    assert says in message
    assert "\n" not in message
    assert not list(tmp_path.iterdir())


def test_gunicorn_settings_are_apart_from_the_app():
    assert "SERVICE_WORKERS" not in parse_settings({"SERVICE_WORKERS": "3"})
    assert parse_settings({"SERVICE_WORKERS": "3"}, "gunicorn") == {"SERVICE_WORKERS": 3}


def test_readme_documents_every_setting_as_the_code_does():
    rows = re.findall(r"^\| `([A-Z_]+)` \| [^|]+ \| (.+) \|$", README.read_text(), re.MULTILINE)
    documented = dict(rows)
    for setting in SETTINGS:
        assert documented.get(setting.name) == setting.help, setting.name
