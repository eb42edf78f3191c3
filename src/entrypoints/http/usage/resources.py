"""GET /usage: the CoinMarketCap credit budget, refresh-ahead and freshness (README "Freshness
and credits")."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask.views import MethodView
from flask_smorest import Blueprint

from src.adapters.metrics import record_usage
from src.entrypoints.http.usage.schemas import UsageSchema
from src.entrypoints.refresh_ahead import refresh_usage
from src.entrypoints.wiring import wiring

blp = Blueprint("usage", __name__,
                description="The CoinMarketCap credit budget (private, like /metrics).")

EXAMPLE = {
    "plan": {"daily_credits": 333, "calls_per_minute": 30, "source": "key_info"},
    "today": {"date": "2026-11-26", "credits_used": 120, "credits_left": 213,
              "by_purpose": {"request": 12, "refresh": 100, "convert": 8}, "spent_elsewhere": 0,
              "request_reserve": 34, "refresh_need": 144, "convert_cap": 11,
              "resets_at": "2026-11-27T00:00:00.000Z"},
    "minute": {"calls": 1, "calls_left": 29},
    "blocked": None,
    "refresh": {"window_seconds": 900, "interval_seconds": 289.0, "symbols": 42,
                "last_round_at": "2026-11-26T12:00:01.000Z"},
    "freshness": {"max_age_seconds": 300, "bound_held_seconds": 289, "holds_max_age": True},
}


def usage_report() -> dict[str, Any]:
    """The /usage body: the governor's figures, the refresher's, and the freshness bound."""
    built = wiring()
    report = dict(built.governor.usage())
    report["refresh"] = refresh_usage()
    settings = built.settings
    report["freshness"] = {"max_age_seconds": settings.quote_max_age_seconds,
                           **report.get("freshness", {})}
    return report


@blp.route("/usage")
class Usage(MethodView):
    @blp.doc(operationId="get_usage")
    @blp.response(200, UsageSchema, example=EXAMPLE,
                  description="The plan, today's credits by purpose, the refresher.")
    def get(self) -> dict[str, Any]:
        """The CoinMarketCap credit budget: plan, credits used and left today, refresh-ahead
        ---
        Kept private by the bundled nginx, like /metrics. Credits are counted by every process and
        replica together (memcached); `blocked` shows a CoinMarketCap verdict (1008-1011) in force.
        """
        return usage_report()


def register_usage_gauges(app: Flask) -> None:
    """Put /usage's figures into the /metrics gauges when /metrics is read."""

    @app.before_request
    def fill_usage_gauges() -> None:
        if request.path == "/metrics":
            record_usage(usage_report())
