"""The quotes resource: GET /api/v1/quotes."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import MethodNotAllowed

from src.entrypoints.http.caching import CACHE_HEADERS, quotes_response
from src.entrypoints.http.errors import ErrorSchema
from src.entrypoints.http.fields import error_example
from src.entrypoints.http.quotes.schemas import (
    QuoteQueryArgsSchema,
    QuotesResponseSchema,
)
from src.entrypoints.observability import observe_answer
from src.entrypoints.refresh_ahead import note_requested
from src.entrypoints.wiring import wiring

blp = Blueprint(
    "quotes",
    __name__,
    url_prefix="/api/v1",
    description=(
        "Latest cryptocurrency quotes. Per symbol: the shared cache (60 s) answers first, then"
        " the newest stored quote (which is cached again), then CoinMarketCap (stored, then"
        " cached). Converted quotes are fetched for each request and never cached or stored;"
        " whether a `convert` currency exists is remembered (a day when it does, an hour when"
        " it does not), so an unknown one costs no CoinMarketCap call when repeated."
    ),
)

_USD_QUOTE = {
    "price": 67250.12, "volume_24h": 28514220110.4, "volume_change_24h": -3.12,
    "market_cap": 1325670882255.16, "market_cap_dominance": 54.6627,
    "fully_diluted_market_cap": 1412252520000, "percent_change_1h": 0.12,
    "percent_change_24h": 1.85, "percent_change_7d": 4.21, "percent_change_30d": 9.73,
    "percent_change_60d": 12.4, "percent_change_90d": 18.9,
    "last_updated": "2026-11-26T03:29:00.000Z",
}
QUOTES_EXAMPLE = {
    "data": {
        "BTC": {
            "id": 1, "name": "Bitcoin", "symbol": "BTC", "slug": "bitcoin", "cmc_rank": 1,
            "is_active": True, "num_market_pairs": 11842, "circulating_supply": 19712543,
            "total_supply": 19712543, "max_supply": 21000000,
            "date_added": "2010-07-13T00:00:00.000Z", "last_updated": "2026-11-26T03:29:00.000Z",
            "source": "cache", "stale": False,
            "quote": {"USD": _USD_QUOTE, "EUR": {**_USD_QUOTE, "price": 62268.63,
                                                 "volume_24h": 26402055657.78,
                                                 "market_cap": 1227473039125.15,
                                                 "fully_diluted_market_cap": 1307641222222.22}},
        }
    },
    "unknown_symbols": ["NOPE"],
    "unconverted_symbols": [],
}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying, when known.",
        "schema": {"type": "integer"},
    }
}


def documentation_only(wrapper: Callable) -> Callable:
    """The view under flask-smorest's `alt_response` decorators, with what they document.

    Each `alt_response` wraps the view in a function that only calls the next one through
    `current_app.ensure_sync`: seven calls per request that do nothing (found by profiling).
    Their documentation is all they add, so it is kept on the view itself.
    """
    view = inspect.unwrap(wrapper)
    view._apidoc = wrapper._apidoc  # type: ignore[attr-defined]
    return view


HEAD_WITH_CONVERT = (
    "HEAD with convert is not answered: each conversion is a live CoinMarketCap call that costs"
    " a credit. Probe with HEAD without convert (served from the cache), or use GET."
)


@blp.before_request
def head_never_converts() -> None:
    """HEAD with `convert` is a 405 naming GET, before any work: a monitor probing with HEAD
    must not spend a credit a request (HEAD without `convert` is answered like GET)."""
    if request.method == "HEAD" and "convert" in request.args:
        raise MethodNotAllowed(valid_methods=["GET"], description=HEAD_WITH_CONVERT)


@blp.route("/quotes")
class Quotes(MethodView):
    @blp.doc(operationId="get_quotes")
    # One schema instance for every request, not one per request.
    @blp.arguments(QuoteQueryArgsSchema(), location="query", as_kwargs=True)
    @blp.response(200, QuotesResponseSchema, description="Quotes of the coins that exist.",
                  example=QUOTES_EXAMPLE, headers=CACHE_HEADERS)
    @documentation_only
    @blp.alt_response(
        304,
        description="The answer is unchanged since the `ETag` sent in `If-None-Match` (no body;"
        " never for an answer with `convert`).",
        headers=CACHE_HEADERS,
    )
    @blp.alt_response(
        404,
        schema=ErrorSchema,
        description="None of the requested symbols exists.",
        example=error_example(404, "Not Found", "unknown symbol(s): NOPE",
                               errors={"unknown_symbols": ["NOPE"]}),
    )
    @blp.alt_response(
        422,
        schema=ErrorSchema,
        description="Invalid `symbol` or `convert`: missing, empty, bad characters, too long,"
        " too many symbols, or an unknown `convert` currency (a 422 whatever the symbols, even"
        " when none of them exists).",
        example=error_example(
            422, "Unprocessable Entity",
            "Invalid query parameter 'symbol': symbol 'B$C' may contain only the letters A-Z,"
            " a-z and the digits 0-9",
            errors={"query": {"symbol": ["symbol 'B$C' may contain only the letters A-Z, a-z"
                                         " and the digits 0-9"]}},
        ),
    )
    @blp.alt_response(
        429,
        schema=ErrorSchema,
        description="This client sent too many requests (only when the server sets RATE_LIMIT).",
        headers=_RETRY_AFTER,
        example=error_example(429, "Too Many Requests", "Too many requests: 120 per 1 minute"),
    )
    @blp.alt_response(
        502,
        schema=ErrorSchema,
        description="CoinMarketCap answered with something unusable, or rejected our credentials.",
        example=error_example(502, "Bad Gateway", "CoinMarketCap rejected our credentials or plan",
                               errors={"upstream_error_code": 1001}),
    )
    @blp.alt_response(
        503,
        schema=ErrorSchema,
        description=("CoinMarketCap is unavailable or rate-limited, or the credit budget allows no"
                     " call now for a symbol with nothing stored or a conversion."),
        headers=_RETRY_AFTER,
        example=error_example(503, "Service Unavailable", "CoinMarketCap rate limit reached"),
    )
    @blp.alt_response(
        504,
        schema=ErrorSchema,
        description="CoinMarketCap did not answer in time.",
        example=error_example(504, "Gateway Timeout", "CoinMarketCap did not answer in time"),
    )
    def get(self, symbol: tuple[str, ...], convert: str | None = None) -> Response:
        """Get the latest quotes of one or more coins

        Returns each coin's metadata and market quote in the base currency (USD by default),
        and in the `convert` currency when one is given. `source` tells, per coin, whether the
        base quote came from the cache, the database or CoinMarketCap.

        HEAD is answered like GET without the body, except with `convert`: that is a 405
        (`Allow: GET`), since each conversion costs a CoinMarketCap credit.
        ---
        Views stay thin: parse (done by the schema), ask the service, render. The body is
        assembled by QuoteRenderer from fragments the response schema produced; the answer
        says how long it may be reused. What was served is noted for refresh-ahead and the
        metrics.
        """
        built = wiring()
        edge_ticket = built.edge_answers.ticket(symbol, convert)  # before the quotes are read
        answer = built.service.get_quotes(symbol, convert)
        note_requested(answer)
        observe_answer(answer)
        body = built.renderer.render(answer)
        built.edge_answers.publish(edge_ticket, answer, body)  # nginx's copy of the answer
        return quotes_response(body, answer, request)

