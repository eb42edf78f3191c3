"""marshmallow schemas of GET /api/v1/quotes/history: query arguments and the answer. No rules."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from webargs.fields import DelimitedList

from src.domain.errors import InvalidRequest
from src.domain.history import (
    DEFAULT_COUNT,
    DEFAULT_INTERVAL,
    INTERVALS,
    MAX_COUNT,
    MAX_HISTORY_SYMBOLS,
    InvalidHistoryParameter,
    parse_time,
)
from src.domain.model import MAX_SYMBOL_LENGTH, parse_symbols
from src.entrypoints.schemas import Timestamp

_SYMBOL_PATTERN = f"^[A-Za-z0-9]{{1,{MAX_SYMBOL_LENGTH}}}$"
_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)


class HistorySymbolList(DelimitedList):
    """Comma-separated symbols, normalised and distinct, at most MAX_HISTORY_SYMBOLS."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            fields.String(validate=validate.Length(min=1, max=MAX_SYMBOL_LENGTH),
                          metadata={"pattern": _SYMBOL_PATTERN, "example": "BTC"}),
            validate=validate.Length(min=1, max=MAX_HISTORY_SYMBOLS),
            **kwargs,
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[str, ...]:
        if not isinstance(value, str):
            raise ValidationError("symbol must be a comma-separated string, e.g. BTC,ETH")
        try:
            symbols = parse_symbols(value)
        except InvalidRequest as exc:
            raise ValidationError(str(exc)) from None
        if len(symbols) > MAX_HISTORY_SYMBOLS:
            raise ValidationError(f"at most {MAX_HISTORY_SYMBOLS} symbols per history request")
        return symbols


class HistoryCount(fields.Integer):
    """A whole number written in ASCII digits only."""

    def _validated(self, value: Any) -> int:
        # int() alone also takes '1_000', ' 5', '+5' and non-ASCII (e.g. Arabic-Indic) digits.
        if isinstance(value, str) and not _DIGITS_RE.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class HistoryTime(fields.String):
    """ISO 8601 (UTC when no offset is given) or Unix seconds, loaded as an aware UTC datetime."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_time(text, attr or "time")
        except InvalidHistoryParameter as exc:
            raise ValidationError(exc.problem) from None


_TIME_HELP = (" ISO 8601 with or without an offset (UTC when none), e.g. `2026-11-25T03:00:00Z`,"
              " or Unix seconds, e.g. `1795575600`.")


class HistoryQueryArgsSchema(Schema):
    """Query arguments of GET /api/v1/quotes/history."""

    symbol = HistorySymbolList(
        required=True,
        metadata={
            "description": (
                "One or more comma-separated cryptocurrency symbols, case-insensitive; duplicates"
                f" collapse. At most {MAX_HISTORY_SYMBOLS}. A symbol shared by several coins means"
                " the coin `/api/v1/quotes` serves."
            ),
            "example": ["BTC"],
        },
    )
    time_start = HistoryTime(
        metadata={"description": "The oldest point returned is at or after this time." + _TIME_HELP,
                  "example": "2026-11-25T03:00:00Z"},
    )
    time_end = HistoryTime(
        metadata={"description": "No point returned is after this time (default: now)." + _TIME_HELP,
                  "example": "2026-11-26T03:00:00Z"},
    )
    interval = fields.String(
        load_default=DEFAULT_INTERVAL,
        validate=validate.OneOf(list(INTERVALS)),
        metadata={
            "description": (
                "Intervals aligned on the Unix epoch (UTC); each that holds stored quotes gives"
                " one point, its newest quote. `all` gives every stored fetch."
            ),
            "example": "1h",
        },
    )
    count = HistoryCount(
        load_default=DEFAULT_COUNT,
        validate=validate.Range(min=1, max=MAX_COUNT),
        metadata={"description": f"At most this many points per coin, the newest kept (1 to {MAX_COUNT}).",
                  "example": 24},
    )
    @validates_schema(pass_original=True)
    def refuse_convert(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        # Not a documented parameter (Swagger UI would fill in its example and fail), but
        # refused by name rather than silently ignored like other unknown parameters.
        if hasattr(original, "__contains__") and "convert" in original:
            raise ValidationError(
                "convert is not supported by the history: it is kept in the base currency only",
                field_name="convert",
            )


class HistoryQuoteSchema(Schema):
    """A stored quote's figures in the base currency."""

    price = fields.Decimal(required=True, metadata={"example": 97000.12})
    volume_24h = fields.Decimal(allow_none=True, metadata={"example": 1.0e10})
    market_cap = fields.Decimal(allow_none=True, metadata={"example": 1.9e12})
    last_updated = Timestamp(
        required=True,
        metadata={"description": "When CoinMarketCap last updated this quote.",
                  "example": "2026-11-26T02:59:00.000Z"},
    )


class HistoryPointSchema(Schema):
    """The newest stored quote of one interval."""

    timestamp = Timestamp(
        required=True,
        metadata={"description": "When coinquote fetched this quote.", "example": "2026-11-26T03:00:00.000Z"},
    )
    quote = fields.Dict(required=True, keys=fields.String(), values=fields.Nested(HistoryQuoteSchema),
                        metadata={"description": "The quote keyed by the base currency."})


class CoinHistorySchema(Schema):
    """One coin and its points, oldest first."""

    id = fields.Integer(required=True, metadata={"description": "Permanent CoinMarketCap id.", "example": 1})
    name = fields.String(required=True, metadata={"example": "Bitcoin"})
    symbol = fields.String(required=True, metadata={"description": "The coin's own symbol.", "example": "BTC"})
    quotes = fields.List(fields.Nested(HistoryPointSchema), required=True,
                         metadata={"description": "Points, oldest first; empty when none is in the range."})


class HistoryResponseSchema(Schema):
    """The answer of GET /api/v1/quotes/history."""

    data = fields.Dict(required=True, keys=fields.String(), values=fields.Nested(CoinHistorySchema),
                       metadata={"description": "Coins keyed by requested symbol (upper-case), in request order."})
    unknown_symbols = fields.List(fields.String(), required=True,
                                  metadata={"description": "Requested symbols never stored.", "example": []})
