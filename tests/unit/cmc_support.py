"""Shared pieces of the CoinMarketCap adapter's unit tests: bodies, a clock, an echoing upstream."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cmc"
BASE = "https://pro-api.example.test"
URL = BASE + "/v2/cryptocurrency/quotes/latest"
KEY = "unit-test-key-5f1c0e7a"


def body(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def status(code: int, message: str = "x") -> dict:
    return {"status": {"timestamp": "2026-11-26T03:29:14.716Z", "error_code": code,
                       "error_message": message, "elapsed": 0, "credit_count": 0}}


class FakeClock:
    """A monotonic clock that moves only when told to, or when the provider sleeps on it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# Every way CoinMarketCap (or a proxy in front of it) can fail, each echoing the key it got in
# its text and headers, as a careless or hostile upstream might.
ECHO_FAULTS = {
    "401": (401, "json", 1001, "This API Key is invalid: {key}"),
    "401-missing": (401, "json", 1002, "API key missing: {key}"),
    "402": (402, "json", 1003, "Your API Key {key} must be activated."),
    "403": (403, "json", 1006, "Plan of {key} does not support this endpoint."),
    "429-minute": (429, "json", 1008, "Minute limit of {key} reached."),
    "429-daily": (429, "json", 1009, "Daily credits of {key} spent."),
    "429-monthly": (429, "json", 1010, "Monthly credits of {key} spent."),
    "429-ip": (429, "json", 1011, "IP limit reached for {key}."),
    "400-symbol": (400, "json", 400, 'Invalid value for "symbol": "{key}"'),
    "400-convert": (400, "json", 400, 'Invalid value for "convert": "{key}"'),
    "400-other": (400, "json", 400, '"{key}" is not allowed'),
    "500": (500, "json", 500, "An internal server error occurred for {key}"),
    "200-error": (200, "json", 1001, "This API Key is invalid: {key}"),
    "html-502": (502, "html", None, "<html><h1>502 Bad Gateway</h1><p>{key}</p></html>"),
    "html-403": (403, "html", None, "<html><h1>Forbidden</h1><p>{key}</p></html>"),
    "malformed": (200, "text", None, '{{"status": {{"error_code": 0, "data": ["{key}"'),
    "timeout": (None, "exc", None, "HTTPSConnectionPool: Read timed out ({key})"),
    "connection": (None, "exc-connection", None, "Connection refused ({key})"),
}


def echo_fault(requests_mock, url: str, name: str) -> None:
    """Make `url` answer with the fault `name`, echoing the key it receives."""
    http, kind, code, template = ECHO_FAULTS[name]

    def answer(request, context):
        key = request.headers.get("X-CMC_PRO_API_KEY", "")
        text = template.format(key=key)
        if kind == "exc":
            raise requests.ReadTimeout(text)
        if kind == "exc-connection":
            raise requests.ConnectionError(text)
        context.status_code = http
        context.headers.update({"X-Echo-Key": key, "Retry-After": key, "Server": f"cmc {key}"})
        if kind == "json":
            context.headers["Content-Type"] = "application/json"
            return json.dumps({"status": {"timestamp": "2026-11-26T03:29:14.716Z", "error_code": code,
                                          "error_message": text, "elapsed": 0, "credit_count": 0,
                                          "notice": text}})
        context.headers["Content-Type"] = "text/html" if kind == "html" else "application/json"
        return text

    requests_mock.get(url, text=answer)


@pytest.fixture
def adapter_log() -> Iterator[io.StringIO]:
    """Every record of the app's loggers, formatted (traceback included) before any handler of
    the root logger (such as the app's redacting one) can alter it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("src")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)
