"""What a PUT body and a video id may be, and the message when they are not.

The tutorial's reqparse answered a JSON list with a 500, truncated `views: 1.7` to 1 and
stored negative counts and a 10 MB name; here each of those is a 400 naming the field.
"""

import json
from typing import Any

from service.store import Video

MAX_BODY_BYTES = 16 * 1024
NAME_MAX_CHARS = 200
# SQLite's INTEGER and PostgreSQL's BIGINT are signed 64-bit numbers.
COUNT_MAX = 2**63 - 1
ID_MAX = 2**63 - 1
FIELDS = ("name", "views", "likes")


class InvalidInput(ValueError):
    """A request the service refuses; `field` names the part at fault, if one is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def check_video_id(video_id: int) -> None:
    if video_id > ID_MAX:
        raise InvalidInput(f"video_id must be at most {ID_MAX}", "video_id")


def parse_video(body: bytes) -> Video:
    """The video in a PUT body, or InvalidInput saying what is wrong with it."""
    if not body.strip():
        raise InvalidInput("the body is empty: send a JSON object with name, views and likes")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidInput(
            f"the body must be a JSON object with name, views and likes, not {_json_type(payload)}"
        )
    for field in FIELDS:
        if field not in payload:
            raise InvalidInput(f"missing field: {field}", field)
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown field: {unknown[0]} (a video has name, views, likes)", unknown[0]
        )
    return {
        "name": _name(payload["name"]),
        "views": _count("views", payload["views"]),
        "likes": _count("likes", payload["likes"]),
    }


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"name must be a string, not {_json_type(value)}", "name")
    if not 1 <= len(value) <= NAME_MAX_CHARS:
        raise InvalidInput(
            f"name must be 1 to {NAME_MAX_CHARS} characters long, not {len(value)}", "name"
        )
    # JSON can carry a lone surrogate ("\ud800"), which no store can keep as text.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("name must be Unicode text, not a lone surrogate", "name") from None
    # SQLite keeps it, PostgreSQL's text cannot: the API is the same over every store.
    if "\x00" in value:
        raise InvalidInput("name must not contain NUL (U+0000)", "name")
    return value


def _count(field: str, value: Any) -> int:
    # bool is an int in Python but not in JSON; 1.7 or 2.0 are numbers, not counts.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number, not {_json_type(value)}", field)
    if not 0 <= value <= COUNT_MAX:
        raise InvalidInput(f"{field} must be from 0 to {COUNT_MAX}, not {value}", field)
    return value


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }
    name = names.get(type(value), type(value).__name__)
    return f"{name} ({value})" if isinstance(value, float) else name
