"""Request ids, the per-request log line, and /metrics."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from src.domain.errors import ProviderUnavailable
from src.entrypoints.logs import JsonFormatter, RedactingFilter
from tests.conftest import TEST_KEY


def samples(client) -> dict[tuple[str, tuple], float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def delta(before, after, name, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


class TestRequestId:
    def test_a_plain_client_id_is_echoed(self, client):
        response = client.get("/healthz", headers={"X-Request-ID": "abc-123.x"})

        assert response.headers["X-Request-ID"] == "abc-123.x"

    @pytest.mark.parametrize("given", [None, "", "has space", "x" * 200, "semi;colon", "é"])
    def test_a_missing_or_unsafe_id_is_replaced(self, client, given):
        headers = {} if given is None else {"X-Request-ID": given}

        returned = client.get("/healthz", headers=headers).headers["X-Request-ID"]

        assert returned != given and len(returned) == 32


class TestAccessLog:
    def test_one_line_per_request_with_symbols_sources_and_request_id(self, client, cache, caplog):
        caplog.set_level(logging.INFO, logger="coinquote.access")
        client.get("/api/v1/quotes?symbol=BTC")

        client.get("/api/v1/quotes?symbol=BTC,ETH,NOPE", headers={"X-Request-ID": "req-42"})

        record = caplog.records[-1]
        assert (record.method, record.path, record.status, record.request_id) == ("GET", "/api/v1/quotes", 200, "req-42")
        assert record.symbols == 3
        assert record.sources == {"cache": 1, "provider": 1}
        assert record.duration_ms >= 0

    def test_json_format_renders_the_fields(self, client, caplog):
        caplog.set_level(logging.INFO, logger="coinquote.access")
        client.get("/api/v1/quotes?symbol=ETH", headers={"X-Request-ID": "req-7"})

        line = json.loads(JsonFormatter().format(caplog.records[-1]))

        assert line["request_id"] == "req-7" and line["status"] == 200 and line["sources"] == {"provider": 1}
        assert line["level"] == "INFO" and line["logger"] == "coinquote.access"

    def test_healthz_is_not_logged(self, client, caplog):
        caplog.set_level(logging.INFO, logger="coinquote.access")

        client.get("/healthz")

        assert caplog.records == []

    def test_the_key_is_redacted_from_any_record(self):
        record = logging.makeLogRecord({"msg": "oops %s", "args": (f"key={TEST_KEY}",)})

        RedactingFilter(TEST_KEY).filter(record)

        assert TEST_KEY not in record.getMessage()


class TestMetrics:
    def test_counts_provider_cache_and_database_quotes(self, client, cache):
        before = samples(client)

        client.get("/api/v1/quotes?symbol=BTC")
        client.get("/api/v1/quotes?symbol=BTC")
        cache.entries.clear()
        client.get("/api/v1/quotes?symbol=BTC")

        after = samples(client)
        for source in ("provider", "cache", "database"):
            assert delta(before, after, "coinquote_quotes_served_total", source=source) == 1
        assert delta(before, after, "coinquote_http_requests_total",
                     route="/api/v1/quotes", method="GET", status="200") == 3

    def test_counts_errors_by_status(self, client, provider):
        before = samples(client)
        provider.fail_with = ProviderUnavailable("busy")

        client.get("/api/v1/quotes?symbol=ETH")

        after = samples(client)
        assert delta(before, after, "coinquote_http_requests_total",
                     route="/api/v1/quotes", method="GET", status="503") == 1

    def test_made_up_methods_share_one_label(self, client):
        before = samples(client)

        for method in ("FOOA", "FOOB", "BREW"):
            client.open("/api/v1/quotes?symbol=BTC", method=method)
        client.open("/api/v1/quotes?symbol=BTC", method="OPTIONS")

        after = samples(client)
        methods = {dict(labels).get("method") for name, labels in after
                   if name == "coinquote_http_requests_total"}
        assert not methods & {"FOOA", "FOOB", "BREW"}
        assert delta(before, after, "coinquote_http_requests_total",
                     route="(unmatched)", method="other", status="405") == 3
        assert delta(before, after, "coinquote_http_requests_total",
                     route="/api/v1/quotes", method="OPTIONS", status="200") == 1

    def test_latency_histogram_is_exposed(self, client):
        client.get("/api/v1/quotes?symbol=BTC")

        after = samples(client)

        assert after[("coinquote_http_request_duration_seconds_count", (("route", "/api/v1/quotes"),))] >= 1
