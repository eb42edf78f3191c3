"""Upstream faults injected into a real fake CoinMarketCap, seen through gunicorn."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import E2E_KEY

BOUND_SECONDS = 8.0  # the provider's budget for one request, all retries included
SLACK = 1.5


@pytest.fixture
def stack(faulty, http):
    faulty.reset(http)
    return faulty


_counter = iter(range(9000, 10000))


def fresh_symbol() -> str:
    """A synthetic coin the fake knows and nothing has cached yet."""
    return f"SYN{next(_counter)}"


@pytest.mark.parametrize(
    "failure, status, calls, retry_after",
    [
        (dict(status=500, error_code=500, message="An internal server error occurred", times=5), 503, (3, 3), False),
        # A minute-limit verdict is never asked again within its window (no retry).
        (dict(status=429, error_code=1008, message="rate limit", retry_after="1", times=5), 503, (1, 1), True),
        (dict(status=429, error_code=1008, message="rate limit", times=5), 503, (1, 1), True),
        (dict(status=200, error_code=0, body="malformed", times=5), 502, (1, 1), False),
        (dict(status=502, body="html", times=5), 503, (3, 3), False),
        (dict(status=401, error_code=1001, message="This API Key is invalid.", times=5), 502, (1, 1), False),
        (dict(status=429, error_code=1009, message="daily cap", times=5), 503, (1, 1), False),
        (dict(status=200, error_code=0, delay=6.0, times=5), 504, (2, 2), False),
    ],
    ids=["500", "429-retry-after", "429-no-header", "malformed-json", "html-page", "401", "quota-spent", "timeout"],
)
def test_upstream_faults_map_to_gateway_statuses_within_the_bound(stack, http, failure, status, calls, retry_after):
    stack.script(http, **failure)

    started = time.monotonic()
    response = http.get(stack.service.url + f"/api/v1/quotes?symbol={fresh_symbol()}", timeout=30)
    elapsed = time.monotonic() - started

    assert response.status_code == status
    body = response.json()
    assert body["code"] == status and body["message"]
    assert elapsed <= BOUND_SECONDS + SLACK
    low, high = calls
    assert low <= len(stack.calls(http)) <= high
    assert ("Retry-After" in response.headers) is retry_after
    if retry_after:
        assert int(response.headers["Retry-After"]) >= 1


def test_after_the_fault_clears_the_service_answers_again(stack, http):
    stack.script(http, status=500, error_code=500, message="down", times=3)
    symbol = fresh_symbol()
    assert http.get(stack.service.url + f"/api/v1/quotes?symbol={symbol}").status_code == 503

    # Waiters share the failed fetch's note for a few seconds (the service's failure note), then
    # the symbol is fetched again: poll past that, well within the note's lifetime plus slack.
    give_up = time.monotonic() + 10
    while (response := http.get(stack.service.url + f"/api/v1/quotes?symbol={symbol}")).status_code != 200:
        assert time.monotonic() < give_up, response.text
        time.sleep(0.5)

    assert response.status_code == 200
    assert response.json()["data"][symbol]["source"] == "provider"


def test_a_cdn_html_502_is_retried_and_reported_as_503_in_our_own_words(stack, http):
    stack.script(http, status=502, body="html", times=3)

    response = http.get(stack.service.url + f"/api/v1/quotes?symbol={fresh_symbol()}", timeout=30)

    assert response.status_code == 503
    assert response.json()["message"] == "CoinMarketCap is unavailable (HTTP 502)"
    assert "<html>" not in response.text and "Bad Gateway" not in response.text
    assert len(stack.calls(http)) == 3  # retried like any 5xx, not taken as an answer


def test_upstream_error_text_and_the_key_stay_out_of_the_response(stack, http):
    upstream_text = "Key e2e-upstream-only-text is invalid"
    stack.script(http, status=401, error_code=1001, message=f"{upstream_text}: {E2E_KEY}",
                 retry_after=E2E_KEY, times=1)

    response = http.get(stack.service.url + f"/api/v1/quotes?symbol={fresh_symbol()}", timeout=30)

    assert response.status_code == 502
    assert response.json()["message"] == "CoinMarketCap rejected our credentials or plan"
    assert response.json()["errors"] == {"upstream_error_code": 1001}
    shown = response.text + repr(dict(response.headers))
    assert upstream_text not in shown and E2E_KEY not in shown
    assert upstream_text in stack.service.output()  # the full text went to the log...
    assert E2E_KEY not in stack.service.output()  # ...without the key
