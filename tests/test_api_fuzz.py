"""The API against its OpenAPI document (service/openapi.json): schemathesis generates requests,
valid and not, and every answer must be documented, never a 5xx."""

import itertools
import json

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.openapi import DOCUMENT

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"deterministic": True},
        "checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 415]}},
    }
)
schema = schemathesis.openapi.from_dict(json.loads(DOCUMENT), config=CONFIG)


@schema.hook
def map_body(context, body):
    """Send a whole float as the integer it equals.

    JSON Schema cannot tell 2 from 2.0, and schemathesis sends both for an integer; the service
    refuses 2.0 as a count on purpose (README's Bad input), which test_bad_input checks.
    """
    if not isinstance(body, dict):
        return body
    return {
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in body.items()
    }


@pytest.fixture(params=["simple", "filesystem"])
def fuzzed_backend(request):
    """The cache backends fuzzed: one per process, one shared by processes."""
    return request.param


@pytest.fixture
def fuzzed_app(make_app, fuzzed_backend):
    """One deployment of the tutorial's `cached` strategy, for all of a test's examples."""
    return make_app(CACHE_BACKEND=fuzzed_backend, CACHE_STRATEGY="cached")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    # fuzzed_app is one deployment for all the examples on purpose: hits and invalidations
    # carry over from one example to the next, as on a server.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_document(case, fuzzed_app):
    case.call_and_validate(app=fuzzed_app)


def test_sequences_along_the_documents_links_conform(make_app, fuzzed_backend, tmp_path):
    """PUT, GET and DELETE of one id in turn, as the links say: the GET after a PUT finds the
    video, the GET after a DELETE does not, whatever the cache held."""
    scenarios = itertools.count()

    class Sequences(schema.as_state_machine()):
        def setup(self):
            # A fresh deployment per scenario, so that Hypothesis can replay one.
            database = tmp_path / f"videos-{next(scenarios)}.sqlite"
            self.app = make_app(
                CACHE_BACKEND=fuzzed_backend, CACHE_STRATEGY="cached", VIDEOS_DATABASE=str(database)
            )

        def get_call_kwargs(self, case):
            return {"app": self.app}

    Sequences.run(
        settings=settings(max_examples=20, stateful_step_count=6, deadline=None, derandomize=True)
    )
