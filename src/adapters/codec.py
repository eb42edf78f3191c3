"""Plain-data form of domain values (str, int, bool, None), for caches and other wire formats.

Decimals travel as strings and times as ISO-8601 text, so no digit is lost and no pickled
domain class is ever stored (a deploy that changes a class cannot break reading old entries).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any

from src.domain.model import Coin, CoinQuote, Quote


def _dump_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _load_fields(cls: type, data: dict[str, Any]) -> Any:
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue  # absent: the dataclass default applies (a newer field, an older entry)
        raw = data[f.name]
        if raw is not None and "Decimal" in f.type:
            raw = Decimal(raw)
        elif raw is not None and "datetime" in f.type:
            raw = datetime.fromisoformat(raw)
        values[f.name] = raw
    return cls(**values)


def _dump_fields(obj: Any) -> dict[str, Any]:
    return {f.name: _dump_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def coin_quote_to_data(coin_quote: CoinQuote) -> dict[str, Any]:
    """Return `coin_quote` as plain data."""
    return {
        "coin": _dump_fields(coin_quote.coin),
        "quote": _dump_fields(coin_quote.quote),
        "fetched_at": coin_quote.fetched_at.isoformat(),
    }


def coin_quote_from_data(data: dict[str, Any]) -> CoinQuote:
    """Rebuild a CoinQuote from `coin_quote_to_data` output; raises KeyError/ValueError/TypeError."""
    return CoinQuote(
        coin=_load_fields(Coin, data["coin"]),
        quote=_load_fields(Quote, data["quote"]),
        fetched_at=datetime.fromisoformat(data["fetched_at"]),
    )
