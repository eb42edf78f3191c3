"""Settings at the bounds Settings allows (issue 21, defect 8): the real app on real memcached
and PostgreSQL still caches and serves, so a value that start-up accepts is one that works."""

from __future__ import annotations

from dataclasses import replace

from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from src.entrypoints.wiring import wiring
from tests.conftest import NoServerErrorClient

LONGEST = {"CACHE_TTL_SECONDS": "2592000", "QUOTE_MAX_AGE_SECONDS": "31536000",
           "REFRESH_WINDOW_SECONDS": "31536000", "REFRESH_INTERVAL_SECONDS": "86400",
           "HISTORY_FULL_DAYS": "36500", "HISTORY_HOURLY_DAYS": "36500",
           "RATE_LIMIT": "100000/30 days"}


def test_at_the_longest_lifetimes_quotes_are_cached_served_and_rate_limited(wired_settings):
    bounded = Settings.from_env(LONGEST)
    settings = replace(wired_settings, **{name: getattr(bounded, name) for name in (
        "cache_ttl_seconds", "quote_max_age_seconds", "refresh_window_seconds",
        "refresh_interval_seconds", "history_full_days", "history_hourly_days", "rate_limit")})
    app = create_app(settings)
    app.test_client_class = NoServerErrorClient
    client = app.test_client()

    fetched = client.get("/api/v1/quotes?symbol=BTC")
    hit = client.get("/api/v1/quotes?symbol=BTC")  # memcached kept the 30-day entry

    assert fetched.status_code == 200 and hit.status_code == 200
    assert hit.get_json()["data"]["BTC"]["source"] == "cache"
    assert hit.headers["Cache-Control"].startswith("public, max-age=")
    assert int(hit.headers["X-RateLimit-Remaining"]) == 100000 - 2  # the counter did not expire
    assert client.get("/api/v1/quotes/history?symbol=BTC").status_code == 200
    with app.app_context():
        wiring(app).history.prune()  # a century back: no date arithmetic overflows
