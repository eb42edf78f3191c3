"""Prometheus metrics of the adapters and the HTTP layer (the domain stays free of them).

Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` (set by gunicorn.conf.py) makes every worker write
its samples to shared files, so /metrics reports the whole server, not one worker.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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


# The credit budget and refresh-ahead, as /usage reports them (set when /metrics is read; under
# gunicorn every worker sees the same shared counters, so the most recent value is the truth).
CREDIT_PLAN = Gauge("coinquote_credit_plan", "The CoinMarketCap plan in force, by limit.",
                    ["limit"], multiprocess_mode="mostrecent")
CREDITS_USED_TODAY = Gauge("coinquote_credits_used_today",
                           "CoinMarketCap credits spent today (UTC), by purpose.", ["purpose"],
                           multiprocess_mode="mostrecent")
CREDITS_LEFT_TODAY = Gauge("coinquote_credits_left_today",
                           "CoinMarketCap credits left today (UTC).",
                           multiprocess_mode="mostrecent")
REFRESH_FIGURES = Gauge("coinquote_refresh",
                        "Refresh-ahead: window and interval (seconds), symbols,"
                        " last round (Unix time).", ["figure"], multiprocess_mode="mostrecent")
QUOTE_MAX_AGE = Gauge("coinquote_quote_max_age_seconds",
                      "No quote older than this is served as fresh.",
                      multiprocess_mode="mostrecent")
FRESHNESS_BOUND_HELD = Gauge("coinquote_freshness_bound_held_seconds",
                             "The age the plan keeps hot quotes within at best, all day.",
                             multiprocess_mode="mostrecent")


def record_usage(usage: dict) -> None:
    """Set the budget gauges from a /usage report."""
    CREDIT_PLAN.labels("daily_credits").set(usage["plan"]["daily_credits"])
    CREDIT_PLAN.labels("calls_per_minute").set(usage["plan"]["calls_per_minute"])
    for purpose, used in usage["today"]["by_purpose"].items():
        CREDITS_USED_TODAY.labels(purpose).set(used)
    CREDITS_LEFT_TODAY.set(usage["today"]["credits_left"])
    refresh = usage["refresh"]
    last = refresh.get("last_round_at")
    for figure, value in (("window_seconds", refresh.get("window_seconds")),
                          ("interval_seconds", refresh.get("interval_seconds")),
                          ("symbols", refresh.get("symbols")),
                          ("last_round_timestamp", last.timestamp() if last is not None else None)):
        if value is not None:
            REFRESH_FIGURES.labels(figure).set(value)
    QUOTE_MAX_AGE.set(usage["freshness"]["max_age_seconds"])
    if (bound := usage["freshness"].get("bound_held_seconds")) is not None:
        FRESHNESS_BOUND_HELD.set(bound)
