"""marshmallow schemas of GET /api/v1/quotes/history: query arguments and the answer. No rules."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.domain.history import (
    DEFAULT_COUNT,
    DEFAULT_INTERVAL,
    INTERVALS,
    MAX_COUNT,
    MAX_HISTORY_SYMBOLS,
    InvalidHistoryParameter,
    parse_time,
)
from src.entrypoints.http.fields import (
    REPEATED_SYMBOL_HELP,
    OneValueEach,
    SymbolList,
    Timestamp,
)

_DIGITS_RE = re.compile(r"[0-9]+", re.ASCII)


class HistoryCount(fields.Integer):
    """A whole number written in ASCII digits only."""

    def _validated(self, value: Any) -> int:
        # int() alone also takes '1_000', ' 5', '+5' and non-ASCII (e.g. Arabic-Indic) digits.
        if isinstance(value, str) and not _DIGITS_RE.fullmatch(value):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


# The forms the document promises, as a pattern clients and Schemathesis can read: a date, or
# a date and time (minutes, seconds, microseconds optional) with or without `Z` or an offset,
# or Unix seconds. Only calendar facts (no 30 February) are left to parse_time.
_ISO_TIME = (r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
             r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
             r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?")
_UNIX_TIME = r"[0-9]{1,11}(\.[0-9]{1,6})?"
TIME_PATTERN = f"^({_ISO_TIME}|{_UNIX_TIME})$"
_TIME_RE = re.compile(TIME_PATTERN, re.ASCII)


class HistoryTime(fields.String):
    """ISO 8601 (UTC when no offset is given) or Unix seconds, loaded as an aware UTC datetime;
    only in the forms TIME_PATTERN documents."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = parse_time(text, attr or "time")
        except InvalidHistoryParameter as exc:
            raise ValidationError(exc.problem) from None
        if not _TIME_RE.fullmatch(text):
            raise ValidationError("must be an ISO 8601 time (e.g. 2026-11-26T03:00:00Z, or"
                                  " 2026-11-26) or Unix seconds (at most 11 digits)")
        return moment


_TIME_HELP = (" ISO 8601 with or without an offset (UTC when none), e.g. `2026-11-25T03:00:00Z`,"
              " `2026-11-25T04:00:00+01:00` or `2026-11-25`, or Unix seconds, e.g. `1795575600`.")

# Member names for generated clients (`x-enum-varnames`): `1h` is not an identifier.
INTERVAL_NAMES = {
    "5m": "FIVE_MINUTES", "15m": "FIFTEEN_MINUTES", "30m": "THIRTY_MINUTES", "1h": "ONE_HOUR",
    "2h": "TWO_HOURS", "6h": "SIX_HOURS", "12h": "TWELVE_HOURS", "1d": "ONE_DAY",
    "7d": "SEVEN_DAYS", "all": "ALL",
}


class HistoryQueryArgsSchema(OneValueEach):
    """Query arguments of GET /api/v1/quotes/history."""

    symbol = SymbolList(
        max_symbols=MAX_HISTORY_SYMBOLS,
        required=True,
        metadata={
            "description": (
                "One or more comma-separated cryptocurrency symbols, case-insensitive; duplicates"
                f" collapse. At most {MAX_HISTORY_SYMBOLS}. A symbol shared by several coins means"
                " the coin `/api/v1/quotes` serves." + REPEATED_SYMBOL_HELP
            ),
            "example": ["BTC"],
        },
    )
    time_start = HistoryTime(
        metadata={"description": "The oldest point returned is at or after this time." + _TIME_HELP,
                  "example": "2026-11-25T03:00:00Z", "pattern": TIME_PATTERN},
    )
    time_end = HistoryTime(
        metadata={"description": "No point returned is after this time (default: now)."
                                 + _TIME_HELP,
                  "example": "2026-11-26T03:00:00Z", "pattern": TIME_PATTERN},
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
            "x-enum-varnames": [INTERVAL_NAMES[name] for name in INTERVALS],
        },
    )
    count = HistoryCount(
        load_default=DEFAULT_COUNT,
        validate=validate.Range(min=1, max=MAX_COUNT),
        metadata={"description": "At most this many points per coin, the newest kept"
                                 f" (1 to {MAX_COUNT}).",
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
        metadata={"description": "When coinquote fetched this quote.",
                  "example": "2026-11-26T03:00:00.000Z"},
    )
    quote = fields.Dict(required=True, keys=fields.String(),
                        values=fields.Nested(HistoryQuoteSchema),
                        metadata={"description": "The quote keyed by the base currency."})


class CoinHistorySchema(Schema):
    """One coin and its points, oldest first."""

    id = fields.Integer(required=True,
                        metadata={"description": "Permanent CoinMarketCap id.", "example": 1})
    name = fields.String(required=True, metadata={"example": "Bitcoin"})
    symbol = fields.String(required=True,
                           metadata={"description": "The coin's own symbol.", "example": "BTC"})
    quotes = fields.List(fields.Nested(HistoryPointSchema), required=True,
                         metadata={"description": "Points, oldest first; empty when none is in"
                                                  " the range."})


class HistoryResponseSchema(Schema):
    """The answer of GET /api/v1/quotes/history."""

    data = fields.Dict(required=True, keys=fields.String(), values=fields.Nested(CoinHistorySchema),
                       metadata={"description": "Coins keyed by requested symbol (upper-case),"
                                                " in request order."})
    unknown_symbols = fields.List(fields.String(), required=True,
                                  metadata={"description": "Requested symbols never stored.",
                                            "example": []})
