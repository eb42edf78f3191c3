"""HTTP caching of quote answers (README "Deploy", HTTP caching): Cache-Control, ETag, 304;
errors no-store."""

from __future__ import annotations

import hashlib
import re

from flask import Flask, Request, Response

from src.domain.model import QuoteAnswer

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
        "description": "A strong validator of the quotes in this body, whichever of the cache,"
        " the database or CoinMarketCap they came from (`source`): send it back in"
        " `If-None-Match` to get a 304 while they are unchanged.",
        "schema": {"type": "string"},
    },
}


# Where each quote was found: the one part of a body that changes while its quotes do not.
# A coin's name is JSON-escaped, so it can never hold this text unescaped.
_SOURCE = re.compile(rb'"source":"[a-z]+"')


def etag_of(body: bytes) -> str:
    """The strong entity tag of the quotes in `body` (quoted, as the header carries it).

    It leaves out each quote's `source`: when a cache entry expires and the same stored quote
    comes from the database, a client revalidating what it holds gets a 304, not a new copy.
    """
    quotes = _SOURCE.sub(b'"source":""', body)
    return '"' + hashlib.blake2b(quotes, digest_size=16).hexdigest() + '"'


def quotes_response(body: str, answer: QuoteAnswer, request: Request) -> Response:
    """The 200 (or 304) of GET /api/v1/quotes with its caching headers; `max-age` is how long
    the domain says the answer may be reused (src/domain/freshness.py)."""
    if answer.convert is not None:  # a live conversion is never reused
        return Response(body, mimetype="application/json", headers={"Cache-Control": NO_STORE})
    data = body.encode()
    etag = etag_of(data)
    headers = {"Cache-Control": f"public, max-age={answer.reuse_seconds}", "ETag": etag}
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
