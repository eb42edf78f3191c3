"""/chart in real headless Chromium over gunicorn, with no internet: the history is drawn."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from src.adapters.sql.quotes import SqlQuoteRepository
from tests.e2e.browser import local_only_page, screenshot
from tests.fakes import coin_quote

# A coin of its own: stored BTC quotes would change what the other end-to-end tests see.
SYMBOL, COIN_ID = "CHRT", 990_001


def store_a_day_of_history(database_url: str) -> int:
    """A fetch every 5 minutes over the last day, its price a wave (so the line has a shape)."""
    now = datetime.now(UTC).replace(microsecond=0)
    engine = create_engine(database_url)
    with Session(engine) as session:
        repository = SqlQuoteRepository(session)
        for step in range(288):
            price = 100 + 10 * math.sin(step / 24) + step / 20
            repository.add({SYMBOL: coin_quote(SYMBOL, COIN_ID, f"{price:.4f}", name="Chart Coin",
                                               fetched_at=now - timedelta(minutes=5 * (287 - step)))})
    engine.dispose()
    return 288


def test_chart_page_draws_the_last_day_with_nothing_from_outside(service, e2e_database_url):
    stored = store_a_day_of_history(e2e_database_url)

    with local_only_page() as (page, outside):
        page.goto(f"{service.url}/chart?symbol={SYMBOL.lower()}")
        page.locator("body[data-state=ready]").wait_for(timeout=20000)
        page.locator(".uplot canvas").first.wait_for(timeout=5000)
        status = page.locator("#status").inner_text()
        title = page.locator("#title").inner_text()
        legend = page.locator(".uplot .u-legend").inner_text()
        screenshot(page, "chart")

    assert outside == []
    assert title == f"Chart Coin ({SYMBOL}) price history"
    # 288 fetches 5 minutes apart over the last day: about one per 5-minute interval.
    points = int(status.split(" points")[0])
    assert stored - 2 <= points <= stored + 1  # 289 intervals touch a day, ends included
    assert f"{SYMBOL} in USD" in legend


def test_swagger_ui_try_it_out_returns_a_history(service, e2e_database_url):
    store_a_day_of_history(e2e_database_url)

    with local_only_page() as (page, outside):
        page.goto(service.url + "/swagger-ui")
        operation = page.locator('.opblock-summary-path[data-path="/api/v1/quotes/history"]')
        operation.wait_for(timeout=20000)
        operation.click()
        page.get_by_role("button", name="Try it out").click()
        page.locator("tr[data-param-name=symbol] input").first.fill(SYMBOL)
        # The documented example times are a fixed day; cleared, the range ends now.
        for name in ("time_start", "time_end"):
            page.locator(f"tr[data-param-name={name}] input").first.fill("")
        page.get_by_role("button", name="Execute").click()
        status = page.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=20000)
        code = status.inner_text().strip()
        url = page.locator(".request-url pre").first.inner_text()
        body = page.locator(".live-responses-table .response-col_description pre").first.inner_text()
        screenshot(page, "swagger-ui-history-try-it-out")

    assert code.startswith("200"), body
    assert f"symbol={SYMBOL}&interval=1h&count=24" in url
    assert f'"{SYMBOL}"' in body and body.count('"timestamp"') == 24
    assert outside == []


def test_chart_page_works_behind_nginx_under_a_path_prefix(nginx, e2e_database_url):
    store_a_day_of_history(e2e_database_url)

    with local_only_page() as (page, outside):
        page.goto(f"{nginx.url}/coinquote/chart?symbol={SYMBOL}")
        page.locator("body[data-state=ready]").wait_for(timeout=20000)
        requested = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
        screenshot(page, "nginx-prefix-chart")

    assert outside == []
    assert requested and all("/coinquote/" in url for url in requested), requested
