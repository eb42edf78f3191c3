"""The one place cache keys are built (only A-Z 0-9 : _ -, which memcached and cachelib accept)."""

from __future__ import annotations

import re

KEY_VERSION = "v1"
_KEY_PART = re.compile(r"[A-Z0-9_-]{1,64}")


def cache_key(currency: str, symbol: str, kind: str = "quote") -> str:
    """`quote:v1:USD:BTC`, or another `kind` of entry about one symbol (`fetch:v1:USD:BTC`)."""
    if not (_KEY_PART.fullmatch(currency) and _KEY_PART.fullmatch(symbol)):
        raise ValueError("cache key parts must be normalised symbols")
    return f"{kind}:{KEY_VERSION}:{currency}:{symbol}"


def fetch_key(currency: str, symbol: str) -> str:
    """The key of the claim on fetching `symbol` in `currency` (per symbol, not per request)."""
    return cache_key(currency, symbol, kind="fetch")


def currency_key(currency: str) -> str:
    """The key remembering whether `currency` exists as a conversion target."""
    if not _KEY_PART.fullmatch(currency):
        raise ValueError("cache key parts must be normalised currencies")
    return f"currency:{KEY_VERSION}:{currency}"
