"""The OpenAPI document: valid, complete, and true to what the API answers."""

from __future__ import annotations

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from src.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable





@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def resolve(node, spec):
    """Inline every local $ref (the document has no recursive schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(target, spec)
        return {k: resolve(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, spec) for v in node]
    return node


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, resolve(operation, spec)


def test_the_document_is_valid_openapi(spec):
    validate(spec)

    assert spec["openapi"].startswith("3.")
    assert spec["security"] == []
    assert "key stays on the server" in spec["info"]["description"]
    assert spec["servers"] == [{"url": "/", "description": "This server"}]


def test_every_parameter_has_a_description_and_an_example(spec):
    parameters = [p for _, _, op in operations(spec) for p in op.get("parameters", [])]

    assert parameters
    for parameter in parameters:
        assert parameter.get("description"), parameter["name"]
        assert "example" in parameter["schema"] or "example" in parameter, parameter["name"]


def test_every_response_has_a_description_and_an_example(spec):
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            assert response.get("description"), (path, status)
            if status == "304":  # Not Modified has no body to exemplify
                assert "content" not in response, (path, method)
                continue
            content = response["content"]["application/json"]
            assert "example" in content or "examples" in content, (path, method, status)


def test_symbol_is_documented_as_a_bounded_comma_separated_array(spec):
    symbol = next(p for p in spec["paths"]["/api/v1/quotes"]["get"]["parameters"] if p["name"] == "symbol")

    assert (symbol["style"], symbol["explode"], symbol["required"]) == ("form", False, True)
    assert (symbol["schema"]["minItems"], symbol["schema"]["maxItems"]) == (1, 100)
    assert symbol["schema"]["items"]["pattern"] == "^[A-Za-z0-9]{1,20}$"


def test_documented_examples_match_their_own_schemas(spec):
    for path, method, operation in operations(spec):
        for status, response in operation["responses"].items():
            if status == "304":
                continue
            content = response["content"]["application/json"]
            OAS30Validator(content["schema"]).validate(content["example"])


def test_the_503_documents_retry_after(spec):
    response = spec["paths"]["/api/v1/quotes"]["get"]["responses"]["503"]

    assert "Retry-After" in response["headers"]


@pytest.mark.parametrize(
    "query, failure, status",
    [
        ("symbol=BTC,ETH,NOPE&convert=EUR", None, 200),
        ("symbol=BTC", None, 200),
        ("symbol=NOPE", None, 404),
        ("symbol=B$C", None, 422),
        ("convert=EUR", None, 422),
        ("symbol=BTC&convert=XYZ", None, 422),
        ("symbol=BTC", ProviderError("junk"), 502),
        ("symbol=BTC", ProviderUnavailable("busy", 30), 503),
        ("symbol=BTC", ProviderTimeout("slow"), 504),
    ],
)
def test_live_responses_match_the_documented_schema(client, provider, spec, query, failure, status):
    provider.fail_with = failure

    response = client.get("/api/v1/quotes?" + query)

    assert response.status_code == status
    documented = resolve(spec["paths"]["/api/v1/quotes"]["get"]["responses"][str(status)], spec)
    OAS30Validator(documented["content"]["application/json"]["schema"]).validate(response.get_json())
    for header in documented.get("headers", {}):
        if failure is not None and getattr(failure, "retry_after", None):
            assert header in response.headers


@pytest.mark.parametrize("path, status", [("/healthz", 200), ("/readyz", 200), ("/readyz", 503)])
def test_probe_responses_match_the_documented_schema(client, cache, spec, path, status):
    cache.down = status == 503

    response = client.get(path)

    assert response.status_code == status
    documented = resolve(spec["paths"][path]["get"]["responses"][str(status)], spec)
    OAS30Validator(documented["content"]["application/json"]["schema"]).validate(response.get_json())
