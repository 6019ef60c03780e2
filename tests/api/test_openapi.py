"""GET /openapi.json is a valid OpenAPI 3.1 document that matches the app's routes."""

from __future__ import annotations

import re

from flask import Flask
from openapi_spec_validator import validate

_IGNORED = {"static"}


def _app_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in _IGNORED or rule.endpoint.startswith("web."):
            continue  # the HTML pages and their static files are not part of the JSON API
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in {"HEAD", "OPTIONS"}:
                routes.add((method.lower(), path))
    return routes


def test_document_is_valid_openapi_3_1(client) -> None:
    document = client.get("/openapi.json").json
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_every_documented_route_exists(app, client) -> None:
    document = client.get("/openapi.json").json
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert documented == _app_routes(app)


def test_request_schemas_are_the_validation_models(client) -> None:
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    project = schemas["ProjectIn"]
    assert project["properties"]["labels"]["minItems"] == 2
    assert project["properties"]["labels"]["maxItems"] == 1000
    assert project["additionalProperties"] is False
