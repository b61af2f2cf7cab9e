"""The API's OpenAPI document, kept beside the service in openapi.json and served by it."""

import json
from pathlib import Path

from flask import Response
from flask_restful import Resource

from service.settings import (
    CACHE_BACKENDS,
    CACHE_STRATEGIES,
    FILLS,
    INVALIDATIONS,
    STORES,
    WORK_PHASES,
)


def _document() -> bytes:
    """openapi.json, with /health's choices filled in from the settings, whose lists derive
    from their registries: a new backend or store changes no document."""
    document = json.loads(Path(__file__).with_name("openapi.json").read_text(encoding="utf-8"))
    health = document["components"]["schemas"]["Health"]["properties"]
    choices = {
        "store": STORES,
        "cache_backend": CACHE_BACKENDS,
        "cache_strategy": CACHE_STRATEGIES,
        "cache_invalidation": INVALIDATIONS,
        "cache_fill": FILLS,
        "work_phase": WORK_PHASES,
    }
    for name, values in choices.items():
        health[name]["enum"] = list(values)
    return json.dumps(document).encode()


# Made at import: a document missing from an installed package stops the service at once.
DOCUMENT = _document()


class OpenApiDocument(Resource):
    """GET /openapi.json; a Resource, so that its errors are JSON like the API's."""

    def get(self) -> Response:
        return Response(DOCUMENT, mimetype="application/json")
