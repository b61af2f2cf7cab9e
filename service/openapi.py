"""The API's OpenAPI document, kept beside the service in openapi.json and served by it."""

from pathlib import Path

from flask import Response
from flask_restful import Resource

# Read at import: a document missing from an installed package stops the service at once.
DOCUMENT = Path(__file__).with_name("openapi.json").read_bytes()


class OpenApiDocument(Resource):
    """GET /openapi.json; a Resource, so that its errors are JSON like the API's."""

    def get(self) -> Response:
        return Response(DOCUMENT, mimetype="application/json")
