"""What the scenarios accept from the videos API, judged from the outside."""

import json

import pytest

from locust_cachebench.contract import Expect, check_delete, check_get, check_put

VIDEO = {"name": "w#1", "views": 3, "likes": 0}
MISSING = json.dumps({"message": "video doesn't exist"}).encode()


def body(value):
    return json.dumps(value).encode()


def test_a_video_is_read():
    assert check_get(200, body(VIDEO)) == ("w#1", None)


def test_a_404_for_a_missing_video_is_an_answer_not_a_failure():
    assert check_get(404, MISSING) == ("", None)
    assert check_delete(404, MISSING) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"<html>oops</html>",
        body([VIDEO]),
        body({"name": "w#1", "views": 3}),
        body({"name": 1, "views": 3, "likes": 0}),
        body({"name": "w#1", "views": "3", "likes": 0}),
        body({"name": "w#1", "views": True, "likes": 0}),
        body({"name": "w#1", "views": 1.5, "likes": 0}),
    ],
)
def test_a_malformed_video_is_a_failure(content):
    name, failure = check_get(200, content)
    assert name == ""
    assert failure == "GET 200: malformed body, not a video"


@pytest.mark.parametrize("status", [500, 502, 503, 400, 405])
def test_an_error_status_is_a_failure(status):
    assert check_get(status, MISSING) == ("", f"GET: unexpected status {status}")
    assert check_put(status, MISSING, VIDEO) == f"PUT: unexpected status {status}"
    assert check_delete(status, MISSING) == f"DELETE: unexpected status {status}"


def test_another_methods_success_status_is_a_failure():
    assert check_get(201, body(VIDEO)) == ("", "GET: unexpected status 201")
    assert check_put(200, body(VIDEO), VIDEO) == "PUT: unexpected status 200"
    assert check_delete(200, b"") == "DELETE: unexpected status 200"


def test_a_404_without_the_apis_message_is_a_failure():
    assert check_get(404, b"Not Found")[1] == "GET 404: malformed body, not a message"
    assert check_delete(404, b"") == "DELETE 404: malformed body, not a message"


def test_a_put_must_echo_the_video():
    assert check_put(201, body(VIDEO), VIDEO) is None
    assert check_put(201, body({**VIDEO, "name": "other"}), VIDEO) == (
        "PUT 201: malformed body, not the video sent"
    )


def test_read_your_writes_after_a_put():
    expect = Expect("get-put-get", "w#1")
    assert check_get(200, body(VIDEO), expect) == ("w#1", None)
    name, failure = check_get(200, body({**VIDEO, "name": "w#0"}), expect)
    assert name == "w#0"
    assert failure == (
        "read-your-writes broken in get-put-get: "
        "the last request showed another name than the one just written"
    )
    assert check_get(404, MISSING, expect)[1] == (
        "read-your-writes broken in get-put-get: "
        "the last request answered 404 for the video just written"
    )


def test_read_your_writes_after_a_delete():
    expect = Expect("get-delete-get", None)
    assert check_delete(204, b"", expect) is None
    assert check_delete(404, MISSING, expect) == (
        "read-your-writes broken in get-delete-get: "
        "the last request answered 404 for the video just written"
    )
    assert check_get(404, MISSING, expect) == ("", None)
    assert check_get(200, body(VIDEO), expect) == (
        "w#1",
        "read-your-writes broken in get-delete-get: "
        "the last request still showed the video just deleted",
    )
