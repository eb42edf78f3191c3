"""Per-request observability: request ids, one access log line, HTTP metrics, /metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST

from src.adapters.metrics import (
    HTTP_LATENCY,
    HTTP_REQUESTS,
    QUOTES_SERVED,
    render_latest,
)
from src.domain.model import QuoteAnswer

access_log = logging.getLogger("coinquote.access")

# A client's id is kept only if it is short and plain: it goes into logs and response headers.
# deploy/nginx.conf applies the same rule (one id per request in its log, ours and the response).
REQUEST_ID_PATTERN = r"[A-Za-z0-9._:-]{1,128}"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_QUIET_ROUTES = {"/healthz", "/metrics"}
# The methods of HTTP (RFC 9110) and PATCH; any other is one label, so that no client can
# grow /metrics with made-up methods.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                            "TRACE", "PATCH"})


def observe_answer(answer: QuoteAnswer) -> None:
    """Count the quotes served by source, and keep the counts for the access log line."""
    sources = Counter(served.source.value for served in answer.quotes.values())
    for source, count in sources.items():
        QUOTES_SERVED.labels(source).inc(count)
    g.quote_counts = (len(answer.quotes) + len(answer.unknown_symbols), sources)


def register_observability(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex

    @app.after_request
    def finish_request(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        request_id = g.get("request_id") or uuid.uuid4().hex
        response.headers["X-Request-ID"] = request_id
        method = request.method if request.method in _KNOWN_METHODS else "other"
        HTTP_REQUESTS.labels(route, method, str(response.status_code)).inc()
        HTTP_LATENCY.labels(route).observe(elapsed)
        if route not in _QUIET_ROUTES:
            _log_request(response.status_code, elapsed, request_id)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render_latest(), mimetype=CONTENT_TYPE_LATEST)


def _log_request(status: int, elapsed: float, request_id: str) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    method, path, duration_ms = request.method, request.path, round(elapsed * 1000, 2)
    fields: dict[str, object] = {"method": method, "path": path, "status": status,
                                 "duration_ms": duration_ms, "request_id": request_id}
    message = f"{method} {path} {status} {duration_ms}ms rid={request_id}"
    counts = g.get("quote_counts")
    if counts is not None:
        fields["symbols"], sources = counts
        fields["sources"] = dict(sources)
        message += f" symbols={counts[0]} sources=" + ",".join(
            f"{k}:{v}" for k, v in sources.items())
    access_log.info(message, extra=fields)
