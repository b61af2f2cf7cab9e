"""What the videos API must answer, judged from the outside (any implementation can be tested).

Each function takes a response's status and body and returns what was read and why the
response fails, if it does. A 404 for a missing video is an answer, not a failure; a 5xx,
an unexpected status or a malformed body is. Transport errors (status 0) never get here.
"""

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Expect:
    """What the last step of a tutorial sequence must see: the name just written, or None
    for the 404 after a DELETE."""

    sequence: str
    name: str | None


def check_get(status: int, body: bytes, expect: Expect | None = None) -> tuple[str, str | None]:
    """(the name read, "" if none; the failure, None if the answer is right)."""
    if status == 200:
        video = _json(body)
        if not _is_video(video):
            return "", "GET 200: malformed body, not a video"
        name = video["name"]
        if expect is not None and expect.name is None:
            return name, _broken(expect, "still showed the video just deleted")
        if expect is not None and name != expect.name:
            return name, _broken(expect, "showed another name than the one just written")
        return name, None
    if status == 404:
        if not _is_message(_json(body)):
            return "", "GET 404: malformed body, not a message"
        if expect is not None and expect.name is not None:
            return "", _broken(expect, "answered 404 for the video just written")
        return "", None
    return "", f"GET: unexpected status {status}"


def check_put(status: int, body: bytes, video: dict) -> str | None:
    """The failure of a PUT of `video`, None if it was stored (201 echoing the video)."""
    if status != 201:
        return f"PUT: unexpected status {status}"
    if _json(body) != video:
        return "PUT 201: malformed body, not the video sent"
    return None


def check_delete(status: int, body: bytes, expect: Expect | None = None) -> str | None:
    """The failure of a DELETE, None for 204 and for 404 (unless `expect` says it exists)."""
    if status == 204:
        return None
    if status == 404:
        if not _is_message(_json(body)):
            return "DELETE 404: malformed body, not a message"
        if expect is not None:
            return _broken(expect, "answered 404 for the video just written")
        return None
    return f"DELETE: unexpected status {status}"


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (TypeError, ValueError):
        return None


def _is_video(body: object) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("name"), str)
        # bool is an int in Python, not in JSON
        and all(type(body.get(field)) is int for field in ("views", "likes"))
    )


def _is_message(body: object) -> bool:
    return isinstance(body, dict) and isinstance(body.get("message"), str)


def _broken(expect: Expect, saw: str) -> str:
    return f"read-your-writes broken in {expect.sequence}: the last request {saw}"
