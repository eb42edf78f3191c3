"""CoinMarketCap's JSON (v2 quotes/latest, v1 tolerated) read into domain values, defensively."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from src.adapters.codec import MAX_AMOUNT_CHARS
from src.domain.model import QUOTE_FIGURES, Coin, CoinQuote, Fetched, Quote

logger = logging.getLogger(__name__)

# The documented 400 forms (README "Resilience"): `Invalid value for "symbol": "XYZ"` and
# `Invalid values for "symbol": "XYZ,ABC"`. Only these name a parameter whose *value* is bad.
_INVALID_VALUE_RE = re.compile(r'Invalid values? for "([A-Za-z_]{1,32})"', re.ASCII)

# What the history tables (sql/orm.py) and the cache (codec.py) hold. A value beyond them would make
# PostgreSQL refuse the whole batch (every coin's history row lost) or the cache entry unreadable.
_TEXT_LIMITS = {"name": 255, "slug": 255, "symbol": 64}
_INT_RANGE = range(-2**31, 2**31)  # INTEGER columns (cmc_rank, num_market_pairs)
_MAX_AMOUNT_EXPONENT = 100  # far beyond any price or supply; NUMERIC holds it exactly


class MalformedCoin(ValueError):
    """One coin object cannot be read; the coin is skipped, the rest of the answer is served."""


def invalid_parameter(message: Any) -> str | None:
    """The parameter a CoinMarketCap 400 says has an invalid value (`symbol`, `convert`, ...)."""
    if not isinstance(message, str):
        return None
    match = _INVALID_VALUE_RE.match(message.strip())
    return match.group(1) if match else None


def quotes_by_symbol(body: Mapping[str, Any], symbols: Sequence[str],
                     currency: str) -> Fetched[str, CoinQuote]:
    """The chosen coin of each requested symbol present in `body`, with its quote in `currency`;
    how many coins each symbol returned; what the call was charged.

    A symbol whose coins are all malformed, or have no price in `currency`, is `unreadable`
    (each malformed coin logged): not unknown (it exists), and failing the whole answer would
    fail every symbol fetched with it.
    """
    # When coinquote fetched the quotes, by our clock: the history's `timestamp`. CoinMarketCap's
    # status.timestamp is its own clock's, which may be behind or ahead of ours.
    fetched_at = datetime.now(UTC)
    data = {str(key).upper(): value for key, value in body["data"].items()}
    found: dict[str, CoinQuote] = {}
    coins: dict[str, int] = {}
    unreadable: list[str] = []
    for symbol in symbols:
        entry = data.get(symbol)
        if entry is None:
            continue
        candidates, _ = _read_coins(entry, currency)
        coins[symbol] = sum(1 for _ in _items(entry))
        if candidates:
            found[symbol] = _pick(candidates, fetched_at)
        else:
            unreadable.append(symbol)
    return Fetched(found, credit_count(body), coins, tuple(unreadable))


def credit_count(body: Mapping[str, Any]) -> int | None:
    """The credits CoinMarketCap says it charged for the call (`status.credit_count`), or None
    when it says nothing usable."""
    status = body.get("status")
    credits = status.get("credit_count") if isinstance(status, Mapping) else None
    if isinstance(credits, int) and not isinstance(credits, bool) and 0 <= credits < 10_000:
        return credits
    return None


def quotes_by_id(body: Mapping[str, Any], currency: str) -> Fetched[int, Quote]:
    """The quote in `currency` of each well-formed coin in `body`, keyed by coin id."""
    converted: dict[int, Quote] = {}
    for entry in body["data"].values():
        candidates, _ = _read_coins(entry, currency)
        for coin, quote in candidates:
            converted[coin.id] = quote
    return Fetched(converted, credit_count(body), {i: 1 for i in converted})


def _read_coins(entry: Any, currency: str) -> tuple[list[tuple[Coin, Quote]], int]:
    """The coins of one `data` entry that have a price in `currency`, and how many were skipped
    as malformed (each logged)."""
    candidates = []
    malformed = 0
    for item in _items(entry):
        try:
            coin, quote = parse_coin(item, currency)
        except MalformedCoin as exc:
            malformed += 1
            logger.warning("CoinMarketCap coin skipped as malformed (%s): id=%.40r symbol=%.40r",
                           exc, _field(item, "id"), _field(item, "symbol"))
            continue
        if quote is not None:
            candidates.append((coin, quote))
    return candidates, malformed


def _items(entry: Any) -> Iterator[Any]:
    """v2 lists every coin sharing a symbol; v1 and id-keyed answers hold one object."""
    yield from entry if isinstance(entry, list) else [entry]


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else None


def _pick(candidates: list[tuple[Coin, Quote]], fetched_at: datetime) -> CoinQuote:
    """Choose among the coins sharing a symbol: active first, then the best (lowest) rank.

    v2 lists every coin with the symbol in no useful order (a dead coin can come first).
    """

    def preference(candidate: tuple[Coin, Quote]) -> tuple[int, float, Decimal]:
        coin, quote = candidate
        rank = coin.cmc_rank if coin.cmc_rank is not None else float("inf")
        return (0 if coin.is_active else 1, rank, -(quote.market_cap or Decimal(0)))

    coin, quote = min(candidates, key=preference)
    return CoinQuote(coin=coin, quote=quote, fetched_at=fetched_at)


def parse_coin(item: Any, currency: str) -> tuple[Coin, Quote | None]:
    """One coin object and its quote in `currency` (None when it has no price there).

    Unknown fields are ignored and missing optional ones become None; a wrong type or a
    non-numeric amount anywhere raises MalformedCoin.
    """
    if not isinstance(item, dict):
        raise MalformedCoin("not an object")
    coin = Coin(
        id=_identity(item.get("id")),
        name=_text(item, "name"),
        symbol=_text(item, "symbol"),
        slug=_text(item, "slug"),
        cmc_rank=_as_int(item.get("cmc_rank")),
        is_active=item.get("is_active", 1) in (1, True, "1"),
        num_market_pairs=_as_int(item.get("num_market_pairs")),
        circulating_supply=_decimal(item.get("circulating_supply"), "circulating_supply"),
        total_supply=_decimal(item.get("total_supply"), "total_supply"),
        max_supply=_decimal(item.get("max_supply"), "max_supply"),
        date_added=parse_time(item.get("date_added")),
        last_updated=parse_time(item.get("last_updated")),
    )
    quotes = item.get("quote")
    if quotes is None:
        return coin, None
    if not isinstance(quotes, dict):
        raise MalformedCoin("quote is not an object")
    raw = quotes.get(currency)
    if raw is None:
        return coin, None  # no price in this currency: nothing to serve for this coin
    if not isinstance(raw, dict):
        raise MalformedCoin(f"quote.{currency} is not an object")
    price = _decimal(raw.get("price"), "price")
    if price is None:
        return coin, None
    return coin, Quote(
        currency=currency,
        price=price,
        last_updated=parse_time(raw.get("last_updated")) or coin.last_updated or _epoch(),
        **{name: _decimal(raw.get(name), name) for name in QUOTE_FIGURES},
    )


def _identity(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    raise MalformedCoin("id is not a positive integer")


def _text(item: dict[str, Any], name: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedCoin(f"{name} is not a non-empty string")
    # PostgreSQL refuses NUL in text (psycopg2 raises before sending), lone surrogates (not
    # UTF-8) and over-long values; no name holds a control character either.
    if len(value) > _TEXT_LIMITS[name] or any(
            unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise MalformedCoin(f"{name} is too long or holds control characters")
    return value


def _decimal(value: Any, name: str) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if _storable(value) else None
    if isinstance(value, (int, str)):
        try:
            number = Decimal(value)
        except (InvalidOperation, ValueError):
            raise MalformedCoin(f"{name} is not a number") from None
        return number if _storable(number) else None
    if isinstance(value, float):  # only if a caller parsed floats (ours arrive as Decimal)
        return Decimal(str(value)) if value == value and abs(value) != float("inf") else None
    raise MalformedCoin(f"{name} is not a number")


def _storable(number: Decimal) -> bool:
    """Finite, and within what the history (NUMERIC) and the cache (short text) hold; an
    amount beyond that is treated like a missing one, as non-finite ones are."""
    return (number.is_finite() and abs(number.adjusted()) <= _MAX_AMOUNT_EXPONENT
            and len(str(number)) <= MAX_AMOUNT_CHARS)


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal) and not (value.is_finite() and abs(value) < 10**15):
        return None  # int(Decimal("1e999999")) would build a million-digit number
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number in _INT_RANGE else None


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 time as aware UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 moved to UTC
        return None


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)
