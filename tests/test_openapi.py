"""The OpenAPI document kept with the service: valid, served as kept, and its bounds are the
service's own (the fuzzer, test_api_fuzz.py, checks the answers against it)."""

import json
import re

import schemathesis

from service.openapi import DOCUMENT
from service.settings import (
    CACHE_BACKENDS,
    CACHE_STRATEGIES,
    FILLS,
    INVALIDATIONS,
    STORES,
    WORK_PHASES,
)
from service.validation import COUNT_MAX, FIELDS, ID_MAX, MAX_BODY_BYTES, NAME_MAX_CHARS
from service.videos import VideoIdConverter

document = json.loads(DOCUMENT)
components = document["components"]


def test_document_is_valid_openapi():
    schemathesis.openapi.from_dict(json.loads(DOCUMENT)).validate()


def test_service_serves_the_document_it_keeps(make_app):
    response = make_app().test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == document


def test_video_bounds_are_the_services():
    video = components["schemas"]["Video"]
    assert video["required"] == list(FIELDS)
    assert video["additionalProperties"] is False
    name = video["properties"]["name"]
    assert (name["minLength"], name["maxLength"]) == (1, NAME_MAX_CHARS)
    assert re.fullmatch(name["pattern"], "a\x00b") is None
    count = components["schemas"]["Count"]
    assert (count["minimum"], count["maximum"]) == (0, COUNT_MAX)
    put = document["paths"]["/videos/{video_id}"]["put"]
    assert f"At most {MAX_BODY_BYTES} bytes" in put["requestBody"]["description"]


def test_video_id_is_the_routes():
    video_id = components["parameters"]["VideoId"]
    assert (video_id["schema"]["minimum"], video_id["schema"]["maximum"]) == (0, ID_MAX)
    assert f"`{VideoIdConverter.regex}`" in video_id["description"]


def test_health_lists_every_setting_value():
    health = components["schemas"]["Health"]["properties"]
    assert health["store"]["enum"] == list(STORES)
    assert health["cache_backend"]["enum"] == list(CACHE_BACKENDS)
    assert health["cache_strategy"]["enum"] == list(CACHE_STRATEGIES)
    assert health["cache_invalidation"]["enum"] == list(INVALIDATIONS)
    assert health["cache_fill"]["enum"] == list(FILLS)
    assert health["work_phase"]["enum"] == list(WORK_PHASES)
