"""marshmallow schemas of the HTTP API: query arguments, quotes, errors. No business rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, pre_load, validate
from webargs.fields import DelimitedList
from werkzeug.datastructures import MultiDict

from src.domain.errors import InvalidRequest
from src.domain.model import (
    MAX_SYMBOL_LENGTH,
    MAX_SYMBOLS_PER_REQUEST,
    Source,
    normalise_currency,
    parse_symbols,
)

_SYMBOL_PATTERN = f"^[A-Za-z0-9]{{1,{MAX_SYMBOL_LENGTH}}}$"


def _symbol_field(**metadata: Any) -> fields.String:
    return fields.String(
        validate=validate.Length(min=1, max=MAX_SYMBOL_LENGTH),
        metadata={"pattern": _SYMBOL_PATTERN, **metadata},
    )


class SymbolList(DelimitedList):
    """Comma-separated symbols (OpenAPI: a form-style array), loaded normalised and distinct.

    The domain's parse_symbols does all the checking, so every rule and message lives in one
    place; the inner field and the Length validator only describe those rules in the document.
    Sent repeated (`symbol=BTC&symbol=ETH,SOL`), the values are one list, in order
    (see OneValueEach).
    """

    merges_repeats = True

    def __init__(self, max_symbols: int = MAX_SYMBOLS_PER_REQUEST, **kwargs: Any) -> None:
        super().__init__(
            _symbol_field(example="BTC"),
            validate=validate.Length(min=1, max=max_symbols),
            **kwargs,
        )
        self.max_symbols = max_symbols

    def _deserialize(self, value: Any, attr: str | None, data: Any,
                     **kwargs: Any) -> tuple[str, ...]:
        if not isinstance(value, str):
            raise ValidationError("symbol must be a comma-separated string, e.g. BTC,ETH")
        try:
            symbols = parse_symbols(value)
        except InvalidRequest as exc:
            raise ValidationError(str(exc)) from None
        if len(symbols) > self.max_symbols:
            raise ValidationError(f"at most {self.max_symbols} symbols per request")
        return symbols


REPEATED_SYMBOL_HELP = (
    " Repeating the parameter (`symbol=BTC&symbol=ETH`, as generated clients send a list) means"
    " the same as a comma list: the values are merged, in order. Any other parameter sent twice"
    " is a 422 naming it."
)


class OneValueEach(Schema):
    """Query arguments in which no parameter sent twice is silently cut to its first value.

    A list parameter (`merges_repeats`) sent several times is the comma-joined list of its
    values, in order; any other declared parameter sent twice is a 422 naming it.
    """

    @pre_load
    def merge_or_refuse_repeats(self, data: Any, **kwargs: Any) -> Any:
        raw = getattr(data, "data", None)  # webargs' MultiDictProxy over request.args
        if not isinstance(raw, MultiDict):
            return data
        loaded: dict[str, Any] = {}
        refused: dict[str, list[str]] = {}
        for name, values in raw.lists():
            field = self.fields.get(name)
            if len(values) == 1 or field is None:
                loaded[name] = values[0]  # an undeclared parameter is ignored anyway
            elif getattr(field, "merges_repeats", False):
                loaded[name] = ",".join(values)
            else:
                refused[name] = [f"{name} was sent {len(values)} times; send it once"]
        if refused:
            raise ValidationError(refused)
        return loaded


class Currency(fields.String):
    """One currency symbol (fiat or crypto), loaded upper-case."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_currency(text)
        except InvalidRequest as exc:
            raise ValidationError(str(exc)) from None


class Timestamp(fields.DateTime):
    """UTC time as CoinMarketCap writes it: 2026-11-26T03:00:00.000Z."""

    def _serialize(self, value: datetime | None, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
            return super().load(data, many=many, partial=partial, unknown=unknown)
        key = (tuple(raw.items(multi=True)), unknown)
        loaded = self._loaded.get(key)
        if loaded is None:
            loaded = super().load(data, many=many, partial=partial, unknown=unknown)
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
            "pattern": _SYMBOL_PATTERN,
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


class HealthSchema(Schema):
    """Liveness or readiness, with each component's state."""

    status = fields.String(required=True, metadata={
        "description": "`ok`, or `failing: ` and the failing components.", "example": "ok"})
    checks = fields.Dict(required=True, keys=fields.String(), values=fields.String(),
                         metadata={"description": "Each component checked and its state (none"
                                   " for liveness).",
                                   "example": {"database": "ok", "cache": "ok"}})
