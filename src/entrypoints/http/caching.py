"""HTTP caching of quote answers (README "Deploy", HTTP caching): Cache-Control, ETag, 304;
errors no-store."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from flask import Flask, Request, Response

from src.domain.model import QuoteAnswer, Source

NO_STORE = "no-store"

# The headers of a cacheable answer and of its 304, for the OpenAPI document.
CACHE_HEADERS = {
    "Cache-Control": {
        "description": "`public, max-age=N`: N seconds is the shortest time any of the answer's"
        " quotes stays in the shared cache (0 for a stale quote). `no-store` on an answer with"
        " `convert` and on every error.",
        "schema": {"type": "string"},
    },
    "ETag": {
        "description": "A strong validator of this exact body: send it back in `If-None-Match`"
        " to get a 304 while it is unchanged.",
        "schema": {"type": "string"},
    },
}


def etag_of(body: bytes) -> str:
    """The strong entity tag of `body` (quoted, as the header carries it)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def max_age(answer: QuoteAnswer, now: datetime, cache_ttl_seconds: int,
            quote_max_age: timedelta | None = None) -> int:
    """Seconds a client may reuse `answer`: the shortest remaining cache lifetime of its quotes.

    A quote read from the cache lives until its entry's recorded expiry (0 when the entry has
    none) or the end of its `quote_max_age`, whichever comes first (the refresher's entries may
    outlive it; the app then refetches). One just read from the database or fetched was cached
    moments ago for `cache_ttl_seconds`, or less when its `quote_max_age` ends sooner (the service
    shortens the entry's TTL so); a second is taken off for the moments already gone. A stale
    quote is 0.
    """
    seconds = float(cache_ttl_seconds)
    for served in answer.quotes.values():
        if served.stale:
            return 0
        quote = served.coin_quote
        fresh_for = cache_ttl_seconds if quote_max_age is None else math.floor(
            (quote.fetched_at + quote_max_age - now).total_seconds())
        if served.source is Source.CACHE:
            if quote.cached_until is None:
                return 0
            seconds = min(seconds, fresh_for,
                          math.floor((quote.cached_until - now).total_seconds()))
        else:
            seconds = min(seconds, min(cache_ttl_seconds, fresh_for) - 1)
    return max(0, int(seconds))


def quotes_response(body: str, answer: QuoteAnswer, request: Request, now: datetime,
                    cache_ttl_seconds: int, quote_max_age: timedelta | None = None) -> Response:
    """The 200 (or 304) of GET /api/v1/quotes with its caching headers."""
    if answer.convert is not None:  # a live conversion is never reused
        return Response(body, mimetype="application/json", headers={"Cache-Control": NO_STORE})
    data = body.encode()
    etag = etag_of(data)
    seconds = max_age(answer, now, cache_ttl_seconds, quote_max_age)
    headers = {"Cache-Control": f"public, max-age={seconds}", "ETag": etag}
    # If-None-Match compares weakly (RFC 9110): nginx weakens the ETag when it gzips.
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(etag[1:-1]):
        return Response(status=304, headers=headers)
    return Response(data, mimetype="application/json", headers=headers)


def register_http_caching(app: Flask) -> None:
    """Every error, whichever handler rendered it, carries `Cache-Control: no-store`."""

    @app.after_request
    def errors_are_never_stored(response: Response) -> Response:
        if response.status_code >= 400:
            response.headers["Cache-Control"] = NO_STORE
        return response
