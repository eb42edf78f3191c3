"""The text of every cache entry: quotes, negative entries, fetch claims, failure notes, currencies.

All values are compact JSON text written by us. Reading accepts nothing else: anything under
our keys that is not our JSON raises UnreadableData (memcached has no authentication).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from src.adapters.codec import UnreadableData, coin_quote_from_data, coin_quote_to_data
from src.domain.model import CoinQuote, FetchFailure

NEGATIVE_ENTRY = '{"unknown":true}'
_KNOWN_CURRENCY, _UNKNOWN_CURRENCY = '{"currency":true}', '{"currency":false}'
_FAILURE_KINDS = frozenset({"unavailable", "timeout", "error"})
_LATEST_EXPIRY = 253_402_300_800  # 10000-01-01: beyond what datetime can hold
_MAX_RETRY_AFTER = 86_400  # seconds; no client is told to wait longer (entrypoints/errors.py)

__all__ = [
    "NEGATIVE_ENTRY", "UnreadableData", "decode_claim", "decode_currency", "decode_quote",
    "encode_claim", "encode_currency", "encode_failure", "encode_quote", "quote_text",
]


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        raise UnreadableData("not text")
    try:
        return json.loads(text)
    except RecursionError:  # deeply nested JSON
        raise UnreadableData("nested too deeply") from None
    # json.JSONDecodeError is a ValueError, as is UnreadableData: callers catch ValueError


def quote_text(entry: CoinQuote) -> str:
    """A quote's entry without its expiry: the same for equal quotes, so callers may keep it."""
    return _dumps(coin_quote_to_data(entry))


def encode_quote(entry: CoinQuote | None, expires_at: float | None = None,
                 text: str | None = None) -> str:
    """A quote, or the negative entry (None: the symbol does not exist).

    `expires_at` (Unix seconds) records when the entry expires, so that a reader knows how long
    it may still be served (HTTP `max-age`); memcached itself does not tell. `text`: the quote's
    `quote_text`, when the caller kept it.
    """
    if entry is None:
        return NEGATIVE_ENTRY
    text = text or quote_text(entry)
    if expires_at is None:
        return text
    return f'{text[:-1]},"expires":{round(expires_at, 3)!r}}}'  # the last member of the object


def decode_quote(text: Any) -> CoinQuote | None:
    """The quote or None (negative entry) that `encode_quote` wrote; raises UnreadableData.

    The quote's `cached_until` is the recorded expiry (None for an entry without one).
    """
    if text == NEGATIVE_ENTRY:
        return None
    try:
        data = _loads(text)
        coin_quote = coin_quote_from_data(data)
        expires = data.get("expires")
    except UnreadableData:
        raise
    except ValueError as exc:
        raise UnreadableData(str(exc)) from None
    if expires is None:
        return coin_quote
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) \
            or not 0 < expires < _LATEST_EXPIRY:
        raise UnreadableData("expires is a time in Unix seconds")
    return replace(coin_quote, cached_until=datetime.fromtimestamp(expires, UTC))


def encode_claim(owner: str) -> str:
    """A claim on a fetch, held by `owner` (compared as exact text to release it)."""
    return _dumps({"owner": owner})


def encode_failure(owner: str, failure: FetchFailure) -> str:
    """The note `owner` leaves in place of its claim when its fetch failed.

    `retry_after` is capped at a day, as clients are told (a spent monthly quota says weeks):
    beyond that `decode_claim` would take our own note for junk.
    """
    retry_after = failure.retry_after
    if retry_after is not None:
        retry_after = min(retry_after, _MAX_RETRY_AFTER)
    return _dumps({"owner": owner, "failure": {
        "kind": failure.kind, "message": failure.message,
        "retry_after": retry_after, "upstream_code": failure.upstream_code,
    }})


def decode_claim(text: Any) -> FetchFailure | None:
    """None for a claim under way, the FetchFailure of a failure note; raises UnreadableData."""
    data = _loads_object(text)
    if not isinstance(data.get("owner"), str):
        raise UnreadableData("a claim names its owner")
    if "failure" not in data:
        return None
    note = data["failure"]
    if not isinstance(note, dict):
        raise UnreadableData("a failure note is an object")
    kind, message = note.get("kind"), note.get("message")
    retry_after, code = note.get("retry_after"), note.get("upstream_code")
    if kind not in _FAILURE_KINDS or not isinstance(message, str):
        raise UnreadableData("a failure note has a kind and a message")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, (int, float))
        or not 0 <= retry_after <= _MAX_RETRY_AFTER
    ):
        raise UnreadableData("retry_after is a number of seconds")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
        raise UnreadableData("upstream_code is an integer")
    return FetchFailure(kind, message, None if retry_after is None else float(retry_after), code)


def encode_currency(known: bool) -> str:
    return _KNOWN_CURRENCY if known else _UNKNOWN_CURRENCY


def decode_currency(text: Any) -> bool:
    """Whether the remembered currency exists; raises UnreadableData."""
    if text == _KNOWN_CURRENCY:
        return True
    if text == _UNKNOWN_CURRENCY:
        return False
    raise UnreadableData("not a remembered currency")


def _loads_object(text: Any) -> dict[str, Any]:
    try:
        data = _loads(text)
    except UnreadableData:
        raise
    except ValueError as exc:
        raise UnreadableData(str(exc)) from None
    if not isinstance(data, dict):
        raise UnreadableData("not an object")
    return data


# The in-process cache's partitions and their limits (LocalCache): junk symbols' negative
# entries, however many, never push out real quotes, and junk currencies never push out claims.
LOCAL_LIMITS = {"quote": 10_000, "negative": 2_000, "claim": 2_000, "other": 2_000}


def partition_of(key: str, value: Any) -> str:
    """The LocalCache partition an entry belongs to."""
    if key.startswith("quote:"):
        return "negative" if value == NEGATIVE_ENTRY else "quote"
    return "claim" if key.startswith("fetch:") else "other"
