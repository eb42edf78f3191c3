"""What a generated client sees: openapi-python-client builds a client from the live
/openapi.json (a test dependency; no network), and every operation is used through it.

The generated code parses each answer into the document's models: a field the document
requires but the server leaves out, a type that differs or an undocumented status fails here.
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import requests

from tests.e2e.conftest import ROOT

PACKAGE = "coinquote_generated_client"


@pytest.fixture(scope="module")
def generated(service, tmp_path_factory) -> Iterator[ModuleType]:
    """The client package generated from the running service's document, imported."""
    workdir = tmp_path_factory.mktemp("generated-client")
    document = workdir / "openapi.json"
    document.write_bytes(requests.get(service.url + "/openapi.json", timeout=10).content)
    bin_dir = str(Path(sys.executable).parent)  # its ruff formats the output
    result = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document),
         "--meta", "none", "--output-path", str(workdir / PACKAGE)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def part(generated: ModuleType, name: str) -> ModuleType:
    return importlib.import_module(f"{generated.__name__}.{name}")


@pytest.fixture(scope="module")
def client(generated, service):
    # An answer with a status the document does not list raises instead of parsing to None.
    return generated.Client(base_url=service.url, raise_on_unexpected_status=True, timeout=30)


def test_operations_are_named_as_the_readme_says(generated):
    modules = {path.stem for path in Path(generated.__file__).parent.glob("api/*/*.py")
               if path.stem != "__init__"}

    assert modules == {"get_quotes", "get_quote_history", "get_usage", "get_liveness",
                       "get_readiness"}


def test_a_list_of_symbols_gets_every_coin_in_order_each_quote_a_market_quote(generated, client):
    get_quotes = part(generated, "api.quotes.get_quotes")
    models = part(generated, "models")

    answer = get_quotes.sync(client=client, symbol=["BTC", "ETH"])

    assert isinstance(answer, models.QuotesResponse)
    assert list(answer.data.additional_properties) == ["BTC", "ETH"]
    assert answer.unknown_symbols == []
    for coin in answer.data.additional_properties.values():
        assert list(coin.quote.additional_properties) == ["USD"]
        assert isinstance(coin.quote["USD"], models.MarketQuote)
        assert coin.quote["USD"].price > 0


def test_a_conversion_is_a_second_market_quote(generated, client):
    get_quotes = part(generated, "api.quotes.get_quotes")
    models = part(generated, "models")

    answer = get_quotes.sync(client=client, symbol=["ETH", "BTC"], convert="EUR")

    assert list(answer.data.additional_properties) == ["ETH", "BTC"]
    for coin in answer.data.additional_properties.values():
        assert isinstance(coin.quote["USD"], models.MarketQuote)
        assert isinstance(coin.quote["EUR"], models.MarketQuote)
    assert answer.unconverted_symbols == []


def test_errors_parse_into_an_error_whose_code_status_and_message_are_required(generated, client):
    get_quotes = part(generated, "api.quotes.get_quotes")
    models = part(generated, "models")
    required = [name for name, p in inspect.signature(models.Error).parameters.items()
                if p.default is inspect.Parameter.empty]

    bad_symbol = get_quotes.sync_detailed(client=client, symbol=["B$C"])
    unknown_convert = get_quotes.sync_detailed(client=client, symbol=["BTC"], convert="NOPE")
    unknown_symbol = get_quotes.sync_detailed(client=client, symbol=["NOPE"])

    assert sorted(required) == ["code", "message", "status"]
    for response, status, errors in [
        (bad_symbol, 422, "query"), (unknown_convert, 422, "query"),
        (unknown_symbol, 404, "unknown_symbols"),
    ]:
        assert response.status_code == status
        assert isinstance(response.parsed, models.Error)
        assert response.parsed.code == status and response.parsed.message
        assert errors in response.parsed.errors.additional_properties
    assert list(unknown_convert.parsed.errors["query"]) == ["convert"]


def test_history_for_a_list_of_symbols_with_a_named_interval(generated, client):
    part(generated, "api.quotes.get_quotes").sync(client=client, symbol=["BTC", "ETH"])  # stored
    get_quote_history = part(generated, "api.history.get_quote_history")
    models = part(generated, "models")

    answer = get_quote_history.sync(client=client, symbol=["BTC", "ETH"],
                                    interval=models.GetQuoteHistoryInterval.ONE_HOUR, count=24)

    assert isinstance(answer, models.HistoryResponse)
    assert list(answer.data.additional_properties) == ["BTC", "ETH"]
    point = answer.data["BTC"].quotes[-1]
    assert isinstance(point.quote["USD"], models.HistoryQuote)


def test_usage_and_the_probes(generated, client):
    models = part(generated, "models")

    usage = part(generated, "api.usage.get_usage").sync(client=client)
    liveness = part(generated, "api.health.get_liveness").sync(client=client)
    readiness = part(generated, "api.health.get_readiness").sync(client=client)

    assert isinstance(usage, models.Usage) and usage.plan.daily_credits > 0
    assert (liveness.status, readiness.status) == ("ok", "ok")
    assert readiness.checks.additional_properties == {"database": "ok", "cache": "ok"}


def quote_calls(fake, http) -> list[dict]:
    return [c for c in http.get(fake.url + "/__fake__/calls").json()["calls"]
            if c["path"].endswith("quotes/latest")]


def test_head_with_convert_is_refused_and_costs_no_coinmarketcap_call(
        service, fake_cmc_process, http):
    http.get(service.url + "/api/v1/quotes?symbol=BTC")  # cached: HEAD without convert is free
    http.delete(fake_cmc_process.url + "/__fake__/calls")

    heads = [http.head(service.url + "/api/v1/quotes?symbol=BTC&convert=EUR") for _ in range(3)]
    plain = http.head(service.url + "/api/v1/quotes?symbol=BTC")

    assert [(r.status_code, r.headers["Allow"]) for r in heads] == [(405, "GET")] * 3
    assert plain.status_code == 200
    assert quote_calls(fake_cmc_process, http) == []
    # The same conversion by GET is one call: the count above would have seen HEAD's.
    assert http.get(service.url + "/api/v1/quotes?symbol=BTC&convert=EUR").status_code == 200
    assert len(quote_calls(fake_cmc_process, http)) == 1
