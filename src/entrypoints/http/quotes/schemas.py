"""marshmallow schemas of GET /api/v1/quotes: query arguments and the answer. No business rules."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate
from werkzeug.datastructures import MultiDict

from src.domain.model import (
    MAX_SYMBOL_LENGTH,
    MAX_SYMBOLS_PER_REQUEST,
    Source,
)
from src.entrypoints.http.fields import (
    REPEATED_SYMBOL_HELP,
    SYMBOL_PATTERN,
    Currency,
    OneValueEach,
    SymbolList,
    Timestamp,
)


def _amount(description: str, example: float | int | None = None) -> fields.Decimal:
    metadata: dict[str, Any] = {"description": description}
    if example is not None:
        metadata["example"] = example
    # Dumped as a JSON number with every digit the provider sent (see entrypoints.jsonio).
    return fields.Decimal(allow_none=True, metadata=metadata)


class QuoteQueryArgsSchema(OneValueEach):
    """Query arguments of GET /api/v1/quotes.

    Loading is a pure function of the raw query arguments, and the same few queries make most
    of the traffic: a successful load is remembered by its raw arguments (bounded), so a
    repeated query costs a lookup instead of marshmallow's field machinery (8 % of a cache
    hit's CPU, found by profiling). Every query is still checked in full the first time, and
    an invalid one every time (errors are not remembered).
    """

    _MAX_REMEMBERED = 1_024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[tuple, dict[str, Any]] = {}

    def load(self, data: Any, *, many: bool | None = None, partial: Any = None,
             unknown: str | None = None) -> Any:
        raw = getattr(data, "data", None)  # webargs' MultiDictProxy over request.args
        if many or partial or not isinstance(raw, MultiDict):
            return super().load(data, many=many, partial=partial, unknown=unknown)  # type: ignore[arg-type]
        key = (tuple(raw.items(multi=True)), unknown)
        loaded = self._loaded.get(key)
        if loaded is None:
            loaded = super().load(data, many=many, partial=partial, unknown=unknown)  # type: ignore[arg-type]
            if len(self._loaded) >= self._MAX_REMEMBERED:
                self._loaded.clear()
            self._loaded[key] = loaded
        return dict(loaded)  # the caller's own copy; its values are immutable

    symbol = SymbolList(
        required=True,
        metadata={
            "description": (
                "One or more comma-separated cryptocurrency symbols, case-insensitive; duplicates"
                f" collapse. At most {MAX_SYMBOLS_PER_REQUEST} symbols of 1 to"
                f" {MAX_SYMBOL_LENGTH} letters or digits." + REPEATED_SYMBOL_HELP
            ),
            "example": ["BTC", "ETH"],
        },
    )
    convert = Currency(
        validate=validate.Length(min=1, max=MAX_SYMBOL_LENGTH),
        metadata={
            "description": (
                "One fiat or cryptocurrency symbol (e.g. EUR, GBP, JPY, ETH): adds each coin's"
                " quote in that currency. Converted quotes are fetched live for every request"
                " and never cached or stored."
            ),
            "example": "EUR",
            "pattern": SYMBOL_PATTERN,
        },
    )


class MarketQuoteSchema(Schema):
    """A coin's market figures in one currency."""

    price = fields.Decimal(required=True, metadata={
        "description": "Price of one coin in this currency.", "example": 67250.12})
    volume_24h = _amount("Rolling 24 h adjusted trading volume.", 28514220110.4)
    volume_change_24h = _amount("24 h change of the volume, in percent.", -3.12)
    market_cap = _amount("Market capitalisation.", 1325670882255.16)
    market_cap_dominance = _amount("Share of the total market cap, in percent.", 54.66)
    fully_diluted_market_cap = _amount("Market cap at maximum supply.", 1412252520000)
    percent_change_1h = _amount("Price change over 1 hour, in percent.", 0.12)
    percent_change_24h = _amount("Price change over 24 hours, in percent.", 1.85)
    percent_change_7d = _amount("Price change over 7 days, in percent.", 4.21)
    percent_change_30d = _amount("Price change over 30 days, in percent.", 9.73)
    percent_change_60d = _amount("Price change over 60 days, in percent.", 12.4)
    percent_change_90d = _amount("Price change over 90 days, in percent.", 18.9)
    last_updated = Timestamp(
        required=True,
        metadata={"description": "When this currency's rate was taken.",
                  "example": "2026-11-26T03:29:00.000Z"},
    )


class CoinQuoteSchema(Schema):
    """One coin: its metadata and its quote in the base currency (and the convert currency)."""

    id = fields.Integer(required=True,
                        metadata={"description": "Permanent CoinMarketCap id.", "example": 1})
    name = fields.String(required=True, metadata={"example": "Bitcoin"})
    symbol = fields.String(required=True,
                           metadata={"description": "The coin's own symbol.", "example": "BTC"})
    slug = fields.String(required=True, metadata={"example": "bitcoin"})
    cmc_rank = fields.Integer(allow_none=True, metadata={"example": 1})
    is_active = fields.Boolean(required=True, metadata={
        "description": "Whether the coin has an active market.", "example": True})
    num_market_pairs = fields.Integer(allow_none=True, metadata={"example": 11842})
    circulating_supply = _amount("Coins in circulation.", 19712543)
    total_supply = _amount("Coins in existence.", 19712543)
    max_supply = _amount("Maximum supply; null when unlimited or unknown.", 21000000)
    date_added = Timestamp(allow_none=True, metadata={"example": "2010-07-13T00:00:00.000Z"})
    last_updated = Timestamp(
        allow_none=True,
        metadata={"description": "Time of the coin's last market data update.",
                  "example": "2026-11-26T03:29:00.000Z"},
    )
    source = fields.String(
        required=True,
        metadata={
            "description": "Where the base quote came from for this request.",
            "enum": [s.value for s in Source],
            "example": "cache",
        }
    )
    stale = fields.Boolean(
        required=True,
        metadata={
            "example": False,
            "description": (
                "True when CoinMarketCap failed and an older stored quote is served instead."
            )
        }
    )
    quote = fields.Dict(
        required=True,
        keys=fields.String(),
        values=fields.Nested(MarketQuoteSchema, allow_none=True),
        metadata={
            "description": (
                "Quotes keyed by currency: the base currency, and `convert` when given. The"
                " `convert` currency's value is null when CoinMarketCap's conversion answer had"
                " no quote for this coin (the symbol is then also listed in"
                " `unconverted_symbols`); the base currency's is never null."
            ),
        },
    )


class QuotesResponseSchema(Schema):
    """The answer of GET /api/v1/quotes."""

    data = fields.Dict(
        required=True,
        keys=fields.String(),
        values=fields.Nested(CoinQuoteSchema),
        metadata={"description": "Coins keyed by requested symbol (upper-case), in request order."},
    )
    unknown_symbols = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "Requested symbols that do not exist.", "example": ["NOPE"]},
    )
    unconverted_symbols = fields.List(
        fields.String(),
        metadata={
            "description": (
                "Present only with `convert`: the served symbols that have no quote in the"
                " `convert` currency (CoinMarketCap's conversion answer lacked them), whose"
                " `quote` holds null under that currency. Empty when every coin was converted."
            ),
            "example": [],
        },
    )
