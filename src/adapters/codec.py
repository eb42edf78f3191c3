"""Plain-data form of domain values (str, int, bool, None), for caches and other wire formats.

Decimals travel as strings and times as ISO-8601 text, so no digit is lost and no pickled
domain class is ever stored (a deploy that changes a class cannot break reading old entries).
Reading is strict: the data may come from anyone who can reach the cache, so every field is
checked for its type and every amount for being a finite number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from src.domain.model import Coin, CoinQuote, Quote

MAX_AMOUNT_CHARS = 100  # far more digits than any CoinMarketCap figure has


class UnreadableData(ValueError):
    """The data is not what `*_to_data` writes (wrong shape, type or value)."""


def _dump_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _load_str(raw: Any) -> str:
    if not isinstance(raw, str):
        raise UnreadableData("not a string")
    return raw


def _load_int(raw: Any) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise UnreadableData("not an integer")
    return raw


def _load_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise UnreadableData("not a boolean")
    return raw


def _load_decimal(raw: Any) -> Decimal:
    if not isinstance(raw, str) or len(raw) > MAX_AMOUNT_CHARS:
        raise UnreadableData("an amount must be a short string")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise UnreadableData("not a number") from None
    if not value.is_finite():
        raise UnreadableData("not a finite number")
    return value


def _load_datetime(raw: Any) -> datetime:
    if not isinstance(raw, str):
        raise UnreadableData("a time must be a string")
    value = datetime.fromisoformat(raw)  # ValueError is UnreadableData's base
    if value.tzinfo is None:
        raise UnreadableData("a time must carry its offset")
    return value


_LOADERS: dict[str, Callable[[Any], Any]] = {
    "str": _load_str, "int": _load_int, "bool": _load_bool,
    "Decimal": _load_decimal, "datetime": _load_datetime,
}


def _load_field(type_name: str, raw: Any) -> Any:
    base = type_name.removesuffix(" | None")
    if raw is None:
        if base != type_name:
            return None
        raise UnreadableData("a required field is null")
    return _LOADERS[base](raw)


def _load_fields(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise UnreadableData(f"{cls.__name__} must be an object")
    values = {
        # absent: the dataclass default applies (a newer field, an older entry)
        f.name: _load_field(f.type, data[f.name]) for f in dataclasses.fields(cls) if f.name in data  # type: ignore[arg-type]
    }
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise UnreadableData(f"{cls.__name__}: {exc}") from None


def _dump_fields(obj: Any) -> dict[str, Any]:
    return {f.name: _dump_value(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def coin_quote_to_data(coin_quote: CoinQuote) -> dict[str, Any]:
    """Return `coin_quote` as plain data."""
    return {
        "coin": _dump_fields(coin_quote.coin),
        "quote": _dump_fields(coin_quote.quote),
        "fetched_at": coin_quote.fetched_at.isoformat(),
    }


def coin_quote_from_data(data: Any) -> CoinQuote:
    """Rebuild a CoinQuote from `coin_quote_to_data` output; raises UnreadableData otherwise."""
    if not isinstance(data, dict) or not {"coin", "quote", "fetched_at"} <= data.keys():
        raise UnreadableData("not a coin quote")
    return CoinQuote(
        coin=_load_fields(Coin, data["coin"]),
        quote=_load_fields(Quote, data["quote"]),
        fetched_at=_load_datetime(data["fetched_at"]),
    )
