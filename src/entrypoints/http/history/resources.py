"""The history resource: GET /api/v1/quotes/history, served from stored quotes only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from src.domain.history import HistoryAnswer, HistoryPoint
from src.entrypoints.http.errors import ErrorSchema
from src.entrypoints.http.fields import error_example
from src.entrypoints.http.history.schemas import (
    HistoryQueryArgsSchema,
    HistoryResponseSchema,
)
from src.entrypoints.wiring import wiring

blp = Blueprint(
    "history",
    __name__,
    url_prefix="/api/v1",
    # The link is relative to /swagger-ui and /redoc, so it stays under a proxy's path prefix.
    description=(
        "Price history from the quotes coinquote has stored (every fetch is kept, older ones"
        " thinned to one per hour, then one per day). Never calls CoinMarketCap; costs no"
        " credits. See it drawn at [/chart?symbol=BTC](chart?symbol=BTC)."
    ),
)

HISTORY_EXAMPLE = {
    "data": {
        "BTC": {
            "id": 1, "name": "Bitcoin", "symbol": "BTC",
            "quotes": [
                {"timestamp": "2026-11-26T02:00:00.000Z",
                 "quote": {"USD": {"price": 96850.4, "volume_24h": 1.02e10, "market_cap": 1.91e12,
                                   "last_updated": "2026-11-26T01:59:00.000Z"}}},
                {"timestamp": "2026-11-26T03:00:00.000Z",
                 "quote": {"USD": {"price": 97000.12, "volume_24h": 1.0e10, "market_cap": 1.9e12,
                                   "last_updated": "2026-11-26T02:59:00.000Z"}}},
            ],
        }
    },
    "unknown_symbols": ["NOPE"],
}


@blp.route("/quotes/history")
class QuoteHistory(MethodView):
    @blp.doc(operationId="get_quote_history")
    @blp.arguments(HistoryQueryArgsSchema(), location="query", as_kwargs=True)
    @blp.response(200, HistoryResponseSchema, description="The history of each coin ever stored.",
                  example=HISTORY_EXAMPLE)
    @blp.alt_response(
        404, schema=ErrorSchema, description="None of the requested symbols has any stored quote.",
        example=error_example(404, "Not Found", "unknown symbol(s): NOPE",
                               errors={"unknown_symbols": ["NOPE"]}),
    )
    @blp.alt_response(
        422, schema=ErrorSchema,
        description="A bad parameter: bad symbols or more than 10, an unparsable time, `time_start`"
        " after `time_end`, an unknown interval, `count` outside 1 to 10,000, or `convert`.",
        example=error_example(
            422, "Unprocessable Entity",
            "Invalid query parameter 'interval': Must be one of: 5m, 15m, 30m, 1h, 2h, 6h, 12h,"
            " 1d, 7d, all.",
            errors={"query": {"interval": ["Must be one of: 5m, 15m, 30m, 1h, 2h, 6h, 12h, 1d,"
                                           " 7d, all."]}},
        ),
    )
    @blp.alt_response(
        503, schema=ErrorSchema, description="The stored history cannot be read now.",
        headers={"Retry-After": {"description": "Seconds to wait before retrying.",
                                 "schema": {"type": "integer"}}},
        example=error_example(503, "Service Unavailable", "stored history cannot be read now"),
    )
    def get(self, symbol: tuple[str, ...], interval: str, count: int,
            time_start: datetime | None = None, time_end: datetime | None = None) -> Response:
        """Get the stored price history of one or more coins

        Per coin, time is cut into intervals aligned on the Unix epoch (UTC); each interval
        holding stored quotes gives one point, the newest quote in it. Points are oldest first;
        `count` keeps the newest. `timestamp` is when coinquote fetched the quote,
        `last_updated` when CoinMarketCap updated it. A coin with no point in the range has an
        empty list. Base currency only: a `convert` parameter is a 422.
        ---
        Parse (the schema), ask the history service, render.
        """
        answer = wiring().history.get_history(
            symbol, time_start=time_start, time_end=time_end, interval=interval, count=count)
        return Response(render_history(answer), mimetype="application/json")


def render_history(answer: HistoryAnswer) -> str:
    """The response body, as text: Decimals as exact JSON numbers, times as CoinMarketCap writes
    them. Written out rather than through a JSON encoder: with hundreds of points per coin, the
    encoder's generic walk was a third of the request's CPU."""
    coins = ",".join(
        f'"{symbol}":{{"id":{int(history.coin.id)},"name":{json.dumps(history.coin.name)},'
        f'"symbol":{json.dumps(history.coin.symbol)},'
        f'"quotes":[{",".join(map(_point, history.points))}]}}'
        for symbol, history in answer.data.items()  # symbols are [A-Z0-9] by construction
    )
    unknown = ",".join(f'"{symbol}"' for symbol in answer.unknown_symbols)
    return f'{{"data":{{{coins}}},"unknown_symbols":[{unknown}]}}'


def _point(point: HistoryPoint) -> str:
    return (
        f'{{"timestamp":"{_time(point.fetched_at)}","quote":{{"{point.currency}":{{'
        f'"price":{_number(point.price)},"volume_24h":{_number(point.volume_24h)},'
        f'"market_cap":{_number(point.market_cap)},'
        f'"last_updated":"{_time(point.last_updated)}"}}}}}}'
    )


def _number(value: Decimal | None) -> str:
    # str(Decimal) is a valid JSON number for every finite value (1E+10, 0E-8, -0 included).
    return str(value) if value is not None and value.is_finite() else "null"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
