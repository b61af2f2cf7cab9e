"""Credentials in a URL are hidden wherever a run records them."""

import pytest

from reports.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:secret@127.0.0.1:8000", "http://***@127.0.0.1:8000"),
        ("https://token@[::1]/videos?x=a@b", "https://***@[::1]/videos?x=a@b"),
        ("http://user:p@ss@host/", "http://***@host/"),
        ("--host=http://u:s@h", "--host=http://***@h"),
        ("seeding http://u:s@h failed", "seeding http://***@h failed"),
        ("http://127.0.0.1:8000/videos/1@2", "http://127.0.0.1:8000/videos/1@2"),
        ("user@example.org", "user@example.org"),
    ],
)
def test_userinfo_is_hidden_and_nothing_else(text, expected):
    assert redact(text) == expected
