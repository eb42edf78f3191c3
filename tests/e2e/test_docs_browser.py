"""The docs pages in real headless Chromium, with no internet: they render and Try it out works."""

from __future__ import annotations

from tests.e2e.browser import local_only_page, screenshot


def test_swagger_ui_renders_and_try_it_out_returns_a_price(service):
    with local_only_page() as (page, outside):
        page.goto(service.url + "/swagger-ui")
        operation = page.locator('.opblock-summary-path[data-path="/api/v1/quotes"]')
        operation.wait_for(timeout=20000)
        screenshot(page, "swagger-ui")

        operation.click()
        page.get_by_role("button", name="Try it out").click()
        page.get_by_role("button", name="Execute").click()
        status = page.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=20000)
        code = status.inner_text().strip()
        body = page.locator(".live-responses-table .response-col_description pre").first.inner_text()
        screenshot(page, "swagger-ui-try-it-out")

    assert code.startswith("200")
    assert '"price"' in body and '"BTC"' in body
    assert outside == []


def test_redoc_renders_the_quotes_operation(service):
    with local_only_page() as (page, outside):
        page.goto(service.url + "/redoc")
        page.locator("h2", has_text="Get the latest quotes of one or more coins").wait_for(timeout=20000)
        page.locator("td", has_text="convert").first.wait_for(timeout=10000)
        screenshot(page, "redoc")

    assert outside == []

