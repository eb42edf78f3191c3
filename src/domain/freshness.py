"""Freshness arithmetic, in one place: which quotes are young enough to serve, how long a cache
entry may live, when refresh-ahead refreshes a quote, and how long an HTTP client may reuse an
answer. The service, the refresher and the HTTP layer all ask here.

`max_age` is QUOTE_MAX_AGE_SECONDS (None: no bound), the age past which a quote is served only
as a stale stand-in; `cache_ttl_seconds` is CACHE_TTL_SECONDS (README "Freshness and credits").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from src.domain.model import CoinQuote, ServedQuote, Source

MIN_REFRESH_INTERVAL_SECONDS = 60.0  # CoinMarketCap updates a quote about once a minute


def due_after_seconds(max_age_seconds: float | None) -> float:
    """How old a stored quote is before a call refreshes it unasked (a round, or the spare room
    of another call): half its max age, so that one call in time keeps it under the bound; a
    minute without a bound (CoinMarketCap updates a quote about once a minute)."""
    return max_age_seconds / 2 if max_age_seconds else MIN_REFRESH_INTERVAL_SECONDS


def split_by_age(quotes: Mapping[str, CoinQuote], now: datetime,
                 max_age: timedelta | None) -> tuple[dict[str, CoinQuote], dict[str, CoinQuote]]:
    """`quotes` split into those young enough to serve and those past the max age."""
    if max_age is None:
        return dict(quotes), {}
    oldest_allowed = now - max_age
    fresh = {s: q for s, q in quotes.items() if q.fetched_at >= oldest_allowed}
    return fresh, {s: q for s, q in quotes.items() if s not in fresh}


def ttl_within_max_age(quotes: Iterable[CoinQuote], now: datetime, cache_ttl_seconds: int,
                       max_age: timedelta | None) -> int:
    """The cache TTL, shortened so that no entry outlives the freshness of the oldest quote."""
    ages = [q.fetched_at for q in quotes]
    if max_age is None or not ages:
        return cache_ttl_seconds
    left = (min(ages) + max_age - now).total_seconds()
    return max(1, min(cache_ttl_seconds, math.floor(left)))


def reuse_seconds(served_quotes: Iterable[ServedQuote], now: datetime, cache_ttl_seconds: int,
                  max_age: timedelta | None = None) -> int:
    """Seconds a client may reuse an answer serving `served_quotes` (its HTTP max-age): the
    shortest remaining cache lifetime of its quotes.

    A quote read from the cache lives until its entry's recorded expiry (0 when the entry has
    none) or the end of its `max_age`, whichever comes first (the refresher's entries may
    outlive it; the app then refetches). One just read from the database or fetched was cached
    moments ago for `cache_ttl_seconds`, or less when its `max_age` ends sooner
    (`ttl_within_max_age`); a second is taken off for the moments already gone. A stale quote
    is 0.
    """
    seconds = float(cache_ttl_seconds)
    for served in served_quotes:
        if served.stale:
            return 0
        quote = served.coin_quote
        fresh_for = cache_ttl_seconds if max_age is None else math.floor(
            (quote.fetched_at + max_age - now).total_seconds())
        if served.source is Source.CACHE:
            if quote.cached_until is None:
                return 0
            seconds = min(seconds, fresh_for,
                          math.floor((quote.cached_until - now).total_seconds()))
        else:
            seconds = min(seconds, min(cache_ttl_seconds, fresh_for) - 1)
    return max(0, int(seconds))
