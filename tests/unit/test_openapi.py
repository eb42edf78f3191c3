"""The OpenAPI document: valid, complete, and true to what the API answers."""

from __future__ import annotations

import json

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from src.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from src.domain.history import INTERVALS


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def resolve(node, spec):
    """Inline every local $ref (the document has no recursive schemas).

    A nullable reference (`allOf: [$ref]` + `nullable`, no `type`) becomes "null or the
    referenced schema", as openapi-python-client and Schemathesis read it; a strict OpenAPI
    3.0.3 validator ignores `nullable` without `type` and would refuse the null.
    """
    if isinstance(node, dict):
        if "$ref" in node:
            target = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(target, spec)
        if node.get("nullable") and "allOf" in node and "type" not in node:
            rest = {k: v for k, v in node.items() if k != "nullable"}
            return {"anyOf": [resolve(rest, spec), {"enum": [None]}]}
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


@pytest.mark.parametrize("path, most", [("/api/v1/quotes", 100), ("/api/v1/quotes/history", 10)])
def test_symbol_is_documented_as_a_bounded_comma_separated_array_also_taken_repeated(
        spec, path, most):
    symbol = next(p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "symbol")

    assert (symbol["style"], symbol["explode"], symbol["required"]) == ("form", False, True)
    assert (symbol["schema"]["minItems"], symbol["schema"]["maxItems"]) == (1, most)
    assert symbol["schema"]["items"]["pattern"] == "^[A-Za-z0-9]{1,20}$"
    assert "`symbol=BTC&symbol=ETH`" in symbol["description"]
    assert "merged, in order" in symbol["description"]


def test_operations_are_named_as_verbs_for_generated_clients(spec):
    names = {path: item["get"]["operationId"] for path, item in spec["paths"].items()}

    assert names == {"/api/v1/quotes": "get_quotes", "/api/v1/quotes/history": "get_quote_history",
                     "/usage": "get_usage", "/healthz": "get_liveness", "/readyz": "get_readiness"}


def test_the_interval_enum_names_its_members(spec):
    interval = next(p for p in spec["paths"]["/api/v1/quotes/history"]["get"]["parameters"]
                    if p["name"] == "interval")["schema"]

    assert list(INTERVALS) == interval["enum"]
    names = dict(zip(interval["enum"], interval["x-enum-varnames"], strict=True))
    assert (names["1h"], names["5m"], names["all"]) == ("ONE_HOUR", "FIVE_MINUTES", "ALL")
    assert all(name.isidentifier() for name in names.values())


def test_a_coins_quotes_are_typed_market_quotes_that_may_be_null(spec):
    quote = spec["components"]["schemas"]["CoinQuote"]["properties"]["quote"]
    values = quote["additionalProperties"]

    assert values == {"allOf": [{"$ref": "#/components/schemas/MarketQuote"}], "nullable": True}


def test_every_nullable_schema_keeps_its_type(spec):
    def loose(node):
        if isinstance(node, dict):
            if any(b == {"type": "object", "nullable": True} for b in node.get("anyOf", [])):
                yield node
            for value in node.values():
                yield from loose(value)
        elif isinstance(node, list):
            for value in node:
                yield from loose(value)

    assert list(loose(spec)) == []


def test_the_error_schema_requires_code_status_and_message(spec):
    error = spec["components"]["schemas"]["Error"]

    assert sorted(error["required"]) == ["code", "message", "status"]


def test_every_component_schema_is_used(spec):
    text = json.dumps(spec["paths"]) + json.dumps(spec["components"].get("responses", {}))
    schemas = spec["components"]["schemas"]
    used = {name for name in schemas if f'"#/components/schemas/{name}"' in text}
    for _ in range(5):  # schemas reached through other schemas
        text += json.dumps([schemas[name] for name in used])
        used = {name for name in schemas if f'"#/components/schemas/{name}"' in text}

    assert "PaginationMetadata" not in schemas
    assert set(schemas) == used


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
        ("symbol=BTC&symbol=ETH", None, 200),
        ("symbol=BTC&convert=EUR&convert=JPY", None, 422),
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


def test_an_unknown_convert_422_names_the_parameter_like_every_other_422(client):
    response = client.get("/api/v1/quotes?symbol=BTC&convert=XYZ")

    assert response.status_code == 422
    assert response.get_json()["errors"] == {"query": {"convert": ["unknown convert currency XYZ"]}}
