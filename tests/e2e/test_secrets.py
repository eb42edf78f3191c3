"""The CoinMarketCap key appears in no response, header, log line, metric or document."""

from __future__ import annotations

from tests.e2e.conftest import E2E_KEY

# Each fault echoes the key in CoinMarketCap's error text and in a header, as a careless or
# hostile upstream might; none of it may come back to a client.
ECHO = f"(key {E2E_KEY})"
FAULTS = [
    dict(status=500, error_code=500, message=f"An internal server error occurred {ECHO}", times=3),
    dict(status=429, error_code=1008, message=f"rate limit {ECHO}", retry_after="1", times=3),
    dict(status=429, error_code=1008, message=f"rate limit {ECHO}", retry_after=E2E_KEY, times=1),
    dict(status=200, error_code=0, body="malformed", times=1),
    dict(status=502, body="html", retry_after=E2E_KEY, times=3),
    dict(status=401, error_code=1001, message=f"This API Key is invalid. {ECHO}", times=1),
    dict(status=403, error_code=1006, message=f"plan {ECHO}", retry_after=E2E_KEY, times=1),
    dict(status=429, error_code=1010, message=f"monthly cap {ECHO}", times=1),
    dict(status=400, error_code=400, message=f'"id" is not allowed {ECHO}', times=1),
    dict(status=400, error_code=400, message=f'Invalid value for "convert": "{E2E_KEY}"', times=1),
]
QUERIES = ["symbol=SYN77", "symbol=BTC,NOPE&convert=EUR", "symbol=BTC&convert=XYZ", "symbol=%0D%0A",
           "symbol=NOPE"]


def test_no_output_of_any_path_holds_the_key(faulty, http):
    faulty.reset(http)
    captured = []
    for n, failure in enumerate(FAULTS):
        faulty.script(http, **failure)
        response = http.get(faulty.service.url + f"/api/v1/quotes?symbol=SYN{800 + n}")
        captured.append(response.text + repr(dict(response.headers)))
    for query in QUERIES:
        response = http.get(faulty.service.url + "/api/v1/quotes?" + query)
        captured.append(response.text + repr(dict(response.headers)))
    for path in ("/metrics", "/openapi.json", "/readyz", "/healthz", "/swagger-ui", "/redoc", "/nope"):
        captured.append(http.get(faulty.service.url + path).text)

    assert any("rejected our credentials" in text for text in captured)  # the 401 path did run
    assert "upstream_error_code" in "".join(captured)
    assert all(E2E_KEY not in text for text in captured)
    assert E2E_KEY not in faulty.service.output()
    assert "CoinMarketCap" in faulty.service.output()  # the fault paths were logged
