"""GET /usage and the budget gauges of /metrics (README "Freshness and credits"), over fakes and an in-process governor."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from limits.storage import MemoryStorage

from src.adapters.budget.board import LimitsBoard
from src.adapters.budget.governor import SharedCreditGovernor
from src.domain.model import Purpose
from src.entrypoints.settings import Settings
from tests.conftest import TEST_KEY, make_client
from tests.fakes import FixedClock

NGINX_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


@pytest.fixture
def governor():
    return SharedCreditGovernor(board=LimitsBoard(MemoryStorage()), clock=FixedClock(), daily_credits=100,
                                calls_per_minute=30, max_age_seconds=300)


@pytest.fixture
def usage_client(governor, provider, repo, cache):
    settings = Settings(cmc_api_key=TEST_KEY, cmc_base_url="http://127.0.0.1:9")
    return make_client(settings, provider=provider, repository=repo, cache=cache, clock=FixedClock(),
                       governor=governor)


def test_usage_reports_the_plan_credits_by_purpose_refresh_and_freshness(usage_client, governor):
    governor.reserve(Purpose.REQUEST, 2)
    governor.reserve(Purpose.CONVERT, 1)

    body = usage_client.get("/usage").get_json()

    assert body["plan"] == {"daily_credits": 100, "calls_per_minute": 30, "source": "configured"}
    assert body["today"]["credits_used"] == 3
    assert body["today"]["credits_left"] == 97
    assert body["today"]["by_purpose"] == {"request": 2, "refresh": 0, "convert": 1}
    assert set(body["refresh"]) >= {"window_seconds", "interval_seconds", "symbols", "last_round_at"}
    # 90 credits beyond the reserve: a round every 960 s at best, not every 300 s.
    assert body["freshness"] == {"max_age_seconds": 300, "bound_held_seconds": 960,
                                 "holds_max_age": False}


def test_usage_is_documented_in_the_openapi_document(usage_client):
    paths = usage_client.get("/openapi.json").get_json()["paths"]

    assert "200" in paths["/usage"]["get"]["responses"]


def test_metrics_carry_the_same_figures_as_usage(usage_client, governor):
    governor.reserve(Purpose.REFRESH, 4)

    text = usage_client.get("/metrics").get_data(as_text=True)

    assert re.search(r'coinquote_credits_used_today\{purpose="refresh"\} 4\.0', text)
    assert re.search(r"coinquote_credits_left_today 96\.0", text)
    assert re.search(r'coinquote_credit_plan\{limit="daily_credits"\} 100\.0', text)
    assert re.search(r"coinquote_quote_max_age_seconds 300\.0", text)


def test_nginx_keeps_usage_private_like_metrics():
    block = re.search(r"location = /usage \{(.*?)\}", NGINX_CONF.read_text(), re.S)

    assert block is not None
    assert "deny all;" in block.group(1)
    assert "allow all" not in block.group(1)
