"""Prometheus metrics of the adapters and the HTTP layer (the domain stays free of them).

Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` (set by gunicorn.conf.py) makes every worker write
its samples to shared files, so /metrics reports the whole server, not one worker.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

HTTP_REQUESTS = Counter(
    "coinquote_http_requests", "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "coinquote_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
    ["route"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUOTES_SERVED = Counter(
    "coinquote_quotes_served", "Coin quotes served, by where the base quote came from.", ["source"]
)
UPSTREAM_CALLS = Counter(
    "coinquote_upstream_calls", "HTTP calls to CoinMarketCap, by outcome.", ["outcome"]
)
UPSTREAM_SHORT_CIRCUITS = Counter(
    "coinquote_upstream_short_circuits", "Calls refused at once because the circuit was open."
)
UPSTREAM_CREDITS = Counter(
    "coinquote_upstream_credits", "CoinMarketCap credits spent (status.credit_count)."
)
CACHE_ERRORS = Counter("coinquote_cache_errors", "Cache operations that failed.", ["operation"])
DATABASE_ERRORS = Counter(
    "coinquote_database_errors", "Database operations that failed.", ["operation"]
)


def render_latest() -> bytes:
    """The exposition text: all workers' samples under gunicorn, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
