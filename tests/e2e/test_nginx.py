"""Real nginx (deploy/nginx.conf) in front of two gunicorn instances sharing PostgreSQL and memcached."""

from __future__ import annotations

import gzip
import time
import uuid

from tests.e2e.browser import local_only_page, screenshot


def eventually(check, timeout: float = 5.0) -> bool:
    """Logs are written just after the response is sent: give them a moment."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def served_by(replicas, request_id: str) -> int:
    """Which replica logged `request_id` (the app logs it on its access line)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [i for i, r in enumerate(replicas) if f"rid={request_id}" in r.output()]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no replica logged request {request_id}")


def test_a_quote_fetched_by_one_replica_is_served_from_cache_by_the_other(nginx, replicas, http):
    answers = []
    for _ in range(6):
        rid = f"e2e-{uuid.uuid4().hex[:12]}"
        response = http.get(nginx.url + "/api/v1/quotes?symbol=SOL", headers={"X-Request-ID": rid})
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] == rid
        answers.append((served_by(replicas, rid), response.json()["data"]["SOL"]["source"]))

    first_replica, first_source = answers[0]
    assert first_source == "provider"
    others = [source for replica, source in answers[1:] if replica != first_replica]
    assert others, f"nginx sent every request to one replica: {answers}"
    assert set(source for _, source in answers[1:]) == {"cache"}


def test_nginx_makes_a_request_id_when_the_client_sends_none(nginx, replicas, http):
    response = http.get(nginx.url + "/api/v1/quotes?symbol=BTC")

    rid = response.headers["X-Request-ID"]
    assert len(rid) == 32
    served_by(replicas, rid)  # the same id reached the app and its log
    assert eventually(lambda: f"rid={rid}" in nginx.extra["access_log"].read_text())


def test_json_is_gzipped_and_healthz_is_not_logged(nginx, http):
    marker = uuid.uuid4().hex
    raw = http.get(nginx.url + "/api/v1/quotes?symbol=BTC,ETH", headers={"Accept-Encoding": "gzip"}, stream=True)
    body = raw.raw.read()
    http.get(nginx.url + "/healthz", headers={"X-Request-ID": marker})

    assert raw.headers["Content-Encoding"] == "gzip"
    assert b'"BTC"' in gzip.decompress(body)
    http.get(nginx.url + "/openapi.json", headers={"X-Request-ID": marker + "-later"})
    assert eventually(lambda: f"{marker}-later" in nginx.extra["access_log"].read_text())
    assert f"rid={marker} " not in nginx.extra["access_log"].read_text()


def test_forwarded_headers_reach_the_app(nginx, http):
    spec = http.get(nginx.url + "/coinquote/openapi.json").json()

    assert spec["servers"][0]["url"] == "/coinquote"


def test_docs_work_through_nginx_at_the_root_and_under_a_prefix(nginx):
    with local_only_page() as (page, outside):
        for prefix, name in (("", "nginx-swagger-ui"), ("/coinquote", "nginx-prefix-swagger-ui")):
            page.goto(nginx.url + prefix + "/swagger-ui")
            operation = page.locator(".opblock-summary-path", has_text="/api/v1/quotes")
            operation.wait_for(timeout=20000)
            operation.click()
            page.get_by_role("button", name="Try it out").click()
            page.get_by_role("button", name="Execute").click()
            status = page.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=20000)
            request_url = page.locator(".request-url pre").first.inner_text()
            code = status.inner_text().strip()
            screenshot(page, name)
            page.goto("about:blank")
            assert code.startswith("200"), (prefix, code)
            assert request_url.startswith(nginx.url + prefix + "/api/v1/quotes"), request_url
        page.goto(nginx.url + "/coinquote/redoc")
        page.locator("h2", has_text="Get the latest quotes of one or more coins").wait_for(timeout=20000)
        screenshot(page, "nginx-prefix-redoc")

    assert outside == []


def test_metrics_are_reachable_from_inside(nginx, http):
    assert "coinquote_http_requests_total" in http.get(nginx.url + "/metrics").text
