"""Malformed requests get a 4xx with a JSON message naming the problem, and change nothing."""

import json

import pytest

from service.validation import COUNT_MAX, MAX_BODY_BYTES, NAME_MAX_CHARS

SEED = {"name": "HelloWorld", "views": 147, "likes": 3}
GOOD = {"name": "Cats", "views": 10, "likes": 2}


def with_(**changes):
    return json.dumps({**GOOD, **changes})


BAD_JSON_BODIES = [
    pytest.param("[1, 2]", "object", None, id="list"),
    pytest.param('"Cats"', "object", None, id="string"),
    pytest.param("null", "object", None, id="null"),
    pytest.param("", "empty", None, id="empty"),
    pytest.param("{'name': 1}", "not valid JSON", None, id="not-json"),
    pytest.param(b"\xff\xfe{", "not valid JSON", None, id="not-utf8"),
    pytest.param("[" * 5000 + "]" * 5000, None, None, id="deeply-nested"),
    pytest.param(json.dumps({"views": 1, "likes": 1}), "missing field: name", "name", id="no-name"),
    pytest.param(
        json.dumps({"name": "a", "likes": 1}), "missing field: views", "views", id="no-views"
    ),
    pytest.param(with_(view=3), "unknown field: view", "view", id="unknown-field"),
    pytest.param(with_(views=1.7), "views must be a whole number", "views", id="float"),
    pytest.param(with_(views=2.0), "views must be a whole number", "views", id="float-integral"),
    pytest.param(with_(likes="5"), "likes must be a whole number", "likes", id="numeric-string"),
    pytest.param(with_(likes=True), "likes must be a whole number", "likes", id="boolean"),
    pytest.param(with_(likes=None), "likes must be a whole number", "likes", id="null-count"),
    pytest.param(with_(views=-1), "views must be from 0", "views", id="negative"),
    pytest.param(with_(views=COUNT_MAX + 1), "views must be from 0", "views", id="too-large"),
    pytest.param('{"name": "a", "views": NaN, "likes": 1}', "views", "views", id="nan"),
    pytest.param(with_(name=7), "name must be a string", "name", id="name-number"),
    pytest.param(with_(name=""), "name must be 1 to", "name", id="name-empty"),
    pytest.param(
        '{"name": "\\ud800", "views": 1, "likes": 1}',
        "lone surrogate",
        "name",
        id="name-lone-surrogate",
    ),
    pytest.param(with_(name="a\x00b"), "must not contain NUL", "name", id="name-nul"),
    pytest.param(
        with_(name="x" * (NAME_MAX_CHARS + 1)), "name must be 1 to", "name", id="name-too-long"
    ),
]


def assert_unchanged(client):
    assert client.get("/videos/1").get_json() == SEED


@pytest.mark.parametrize(("body", "says", "field"), BAD_JSON_BODIES)
def test_bad_json_body_is_400_naming_the_problem(client, body, says, field):
    response = client.put("/videos/1", data=body, content_type="application/json")
    assert response.status_code == 400
    message = response.get_json()
    if says:
        assert says in message["message"]
    assert message.get("field") == field
    assert_unchanged(client)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        pytest.param({"data": {"name": "a", "views": "1", "likes": "1"}}, 415, id="form"),
        pytest.param({}, 415, id="no-body-no-type"),
        pytest.param({"data": with_(), "content_type": "text/plain"}, 415, id="text-plain"),
        pytest.param(
            {"data": with_(name="x" * MAX_BODY_BYTES), "content_type": "application/json"},
            413,
            id="oversized",
        ),
        pytest.param(
            {"data": with_(name="x" * 10_000_000), "content_type": "application/json"},
            413,
            id="10MB-name",
        ),
    ],
)
def test_wrong_type_or_size_is_4xx_json(client, kwargs, status):
    response = client.put("/videos/1", **kwargs)
    assert response.status_code == status
    assert response.get_json()["message"]
    assert_unchanged(client)


def test_body_of_exactly_the_limit_is_accepted_one_more_byte_is_413(client):
    body = with_()
    exact = body + " " * (MAX_BODY_BYTES - len(body))
    assert client.put("/videos/1", data=exact, content_type="application/json").status_code == 201
    over = exact + " "
    response = client.put("/videos/2", data=over, content_type="application/json")
    assert response.status_code == 413
    assert client.get("/videos/2").status_code == 404


def test_largest_valid_values_are_stored(client):
    video = {"name": "x" * NAME_MAX_CHARS, "views": COUNT_MAX, "likes": 0}
    assert client.put("/videos/1", json=video).status_code == 201
    assert client.get("/videos/1").get_json() == video


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_video_id_out_of_range_is_400(client, method):
    response = getattr(client, method)(f"/videos/{2**63}", json=GOOD)
    assert response.status_code == 400
    assert response.get_json()["field"] == "video_id"
    assert_unchanged(client)


@pytest.mark.parametrize(
    "path",
    ["/videos/-1", "/videos/abc", "/videos/1.5", "/videos/01", "/videos/\uff11", "/videos/\u0661"],
    ids=["negative", "letters", "decimal", "leading-zero", "full-width-1", "arabic-indic-1"],
)
def test_malformed_video_id_is_404_json_and_no_other_path_to_a_video(client, path):
    """Only /videos/1 reaches video 1: another spelling would be another cache key."""
    for method in (client.get, client.put, client.delete):
        response = method(path, json=GOOD)
        assert response.status_code == 404
        assert response.get_json()["message"]
    assert_unchanged(client)
