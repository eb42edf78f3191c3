"""HTTP caching of quote answers (README "Deploy", HTTP caching): max-age from the cache's own lifetimes, ETag/304,
no-store on conversions and errors; documented in OpenAPI."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from src.adapters.cache import values as cache_values
from src.adapters.codec import coin_quote_to_data
from src.domain.errors import ProviderUnavailable
from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.fakes import T0, FixedClock, InMemoryQuoteRepository, coin_quote
from tests.unit.conftest import BTC


def cache_control(response) -> str:
    return response.headers["Cache-Control"]


def max_age_of(response) -> int:
    parts = cache_control(response).split(",")
    directives = dict(part.strip().partition("=")[::2] for part in parts)
    assert "public" in directives
    return int(directives["max-age"])


def test_a_matching_if_none_match_gets_a_304_without_a_body(client):
    client.get("/api/v1/quotes?symbol=BTC")  # fetched and cached: the answers below are hits
    first = client.get("/api/v1/quotes?symbol=BTC")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith('W/')  # strong

    unchanged = client.get("/api/v1/quotes?symbol=BTC", headers={"If-None-Match": etag})
    weakened = client.get("/api/v1/quotes?symbol=btc", headers={"If-None-Match": f'"x", W/{etag}'})
    other = client.get("/api/v1/quotes?symbol=BTC", headers={"If-None-Match": '"something-else"'})

    assert (unchanged.status_code, unchanged.data) == (304, b"")
    assert unchanged.headers["ETag"] == etag
    assert cache_control(unchanged).startswith("public, max-age=")
    assert "Content-Type" not in unchanged.headers
    assert weakened.status_code == 304  # nginx weakens the tag when it gzips; still a match
    assert (other.status_code, other.data) == (200, first.data)


def test_the_etag_follows_the_quotes_not_where_they_were_found(client, cache):
    fetched = client.get("/api/v1/quotes?symbol=BTC")  # "source":"provider"
    hit = client.get("/api/v1/quotes?symbol=BTC")  # "source":"cache"
    cache.entries.clear()
    from_database = client.get("/api/v1/quotes?symbol=BTC")  # "source":"database"
    both = client.get("/api/v1/quotes?symbol=BTC,ETH")

    assert [r.json["data"]["BTC"]["source"] for r in (fetched, hit, from_database)] == [
        "provider", "cache", "database"]
    assert fetched.headers["ETag"] == hit.headers["ETag"] == from_database.headers["ETag"]
    assert both.headers["ETag"] != hit.headers["ETag"]
    assert client.get("/api/v1/quotes?symbol=btc").headers["ETag"] == hit.headers["ETag"]


def test_revalidation_after_the_cache_entry_expired_is_a_304(client, cache):
    cached = client.get("/api/v1/quotes?symbol=BTC")
    cache.entries.clear()  # the entry expired: the same quote now comes from the database

    again = client.get("/api/v1/quotes?symbol=BTC",
                       headers={"If-None-Match": cached.headers["ETag"]})

    assert (again.status_code, again.data) == (304, b"")


@pytest.mark.parametrize("query, status", [
    ("symbol=BTC&convert=EUR", 200),
    ("symbol=BTC&convert=USD", 200),
    ("symbol=NOPE", 404),
    ("symbol=B$C", 422),
    ("convert=EUR", 422),
])
def test_conversions_and_errors_carry_no_store(client, query, status):
    response = client.get("/api/v1/quotes?" + query)

    assert response.status_code == status
    assert cache_control(response) == "no-store"
    assert "ETag" not in response.headers


def test_a_conversion_is_never_answered_304(client):
    converted = client.get("/api/v1/quotes?symbol=BTC&convert=EUR", headers={"If-None-Match": "*"})

    assert converted.status_code == 200


def test_provider_failures_and_unknown_paths_carry_no_store(client, provider):
    provider.fail_with = ProviderUnavailable("busy", 30)

    failed = client.get("/api/v1/quotes?symbol=BTC")
    missing = client.get("/no/such/path")

    assert (failed.status_code, cache_control(failed)) == (503, "no-store")
    assert (missing.status_code, cache_control(missing)) == (404, "no-store")


@pytest.fixture
def short_ttl_app(provider, repo, cache):
    clock = FixedClock()
    cache.clock = clock
    app = create_app(Settings(cmc_api_key="k", cmc_base_url="http://127.0.0.1:9",
                              cache_ttl_seconds=10),
                     provider=provider, repository=repo, cache=cache, clock=clock)
    app.test_client_class = NoServerErrorClient
    return app, clock


def test_max_age_is_never_longer_than_what_remains_of_the_cache_entry(short_ttl_app):
    app, clock = short_ttl_app
    client = app.test_client()

    fetched = client.get("/api/v1/quotes?symbol=BTC")  # cached just now for 10 s
    clock.advance(4)
    hit = client.get("/api/v1/quotes?symbol=BTC")
    clock.advance(5.5)
    late_hit = client.get("/api/v1/quotes?symbol=BTC")
    clock.advance(1)
    refetched = client.get("/api/v1/quotes?symbol=BTC")

    assert fetched.get_json()["data"]["BTC"]["source"] == "provider"
    assert max_age_of(fetched) == 9  # less than 10 whole seconds remain
    assert hit.get_json()["data"]["BTC"]["source"] == "cache"
    assert max_age_of(hit) == 6
    assert max_age_of(late_hit) == 0  # half a second left: no whole second to promise
    assert refetched.get_json()["data"]["BTC"]["source"] == "database"  # cached again now
    assert max_age_of(refetched) == 9


def test_the_shortest_lifetime_among_the_quotes_wins(short_ttl_app, cache):
    app, clock = short_ttl_app
    client = app.test_client()
    client.get("/api/v1/quotes?symbol=BTC")
    clock.advance(7)

    both = client.get("/api/v1/quotes?symbol=BTC,ETH")  # BTC from the cache, ETH fetched now

    sources = {s: c["source"] for s, c in both.get_json()["data"].items()}
    assert sources == {"BTC": "cache", "ETH": "provider"}
    assert max_age_of(both) == 3


def test_a_stale_quote_is_served_with_max_age_0(provider, cache):
    clock = FixedClock(T0 + timedelta(hours=2))
    cache.clock = clock
    repo = InMemoryQuoteRepository(rows=[("BTC", coin_quote("BTC", 1, "60000"))])
    app = create_app(Settings(cmc_api_key="k", cmc_base_url="http://127.0.0.1:9",
                              quote_max_age_seconds=600),
                     provider=provider, repository=repo, cache=cache, clock=clock)
    app.test_client_class = NoServerErrorClient
    provider.fail_with = ProviderUnavailable("busy", 30)

    response = app.test_client().get("/api/v1/quotes?symbol=BTC")

    assert response.get_json()["data"]["BTC"]["stale"] is True
    assert cache_control(response) == "public, max-age=0"


def test_the_real_cache_adapter_records_each_entry_expiry(provider, repo):
    """Through FlaskCachingQuoteCache (in-process backend): the expiry travels in the value."""
    clock = FixedClock()
    app = create_app(Settings(cmc_api_key="k", cmc_base_url="http://127.0.0.1:9",
                              cache_ttl_seconds=30),
                     provider=provider, repository=repo, clock=clock)
    app.test_client_class = NoServerErrorClient
    client = app.test_client()
    client.get("/api/v1/quotes?symbol=BTC")
    clock.advance(12)

    hit = client.get("/api/v1/quotes?symbol=BTC")

    assert hit.get_json()["data"]["BTC"]["source"] == "cache"
    assert max_age_of(hit) == 18


def test_an_entry_without_a_recorded_expiry_is_served_with_max_age_0():
    """Entries written before expiries were recorded (a rolling deploy) promise nothing."""
    old_text = cache_values.encode_quote(BTC)
    new_text = cache_values.encode_quote(BTC, expires_at=T0.timestamp() + 60)

    assert cache_values.decode_quote(old_text).cached_until is None
    assert cache_values.decode_quote(new_text).cached_until == T0 + timedelta(seconds=60)
    assert cache_values.decode_quote(new_text) == BTC


@pytest.mark.parametrize("expires", ["soon", True, -5, 1e300, None])
def test_a_cached_quote_with_a_bad_expiry_is_unreadable(expires):
    data = {**coin_quote_to_data(BTC), "expires": expires}
    text = cache_values._dumps(data)

    if expires is None:
        assert cache_values.decode_quote(text) == BTC
    else:
        with pytest.raises(cache_values.UnreadableData):
            cache_values.decode_quote(text)


def test_openapi_documents_the_caching_headers_of_the_200_and_the_304(client):
    spec = client.get("/openapi.json").get_json()
    responses = spec["paths"]["/api/v1/quotes"]["get"]["responses"]

    for status in ("200", "304"):
        assert {"Cache-Control", "ETag"} <= responses[status]["headers"].keys(), status
    assert "content" not in responses["304"]


def test_a_cached_quote_keeps_its_value_whatever_its_expiry():
    later = replace(BTC, cached_until=T0)

    assert later == BTC  # the expiry is about the entry, not the quote


def test_a_stored_quote_near_its_max_age_promises_only_what_freshness_remains(provider, cache):
    """The service caches such a quote only until its max age ends; max-age says no more."""
    clock = FixedClock(T0 + timedelta(seconds=250))
    cache.clock = clock
    repo = InMemoryQuoteRepository(rows=[("BTC", coin_quote("BTC", 1, "60000"))])  # at T0
    app = create_app(Settings(cmc_api_key="k", cmc_base_url="http://127.0.0.1:9",
                              cache_ttl_seconds=60, quote_max_age_seconds=300),
                     provider=provider, repository=repo, cache=cache, clock=clock)
    app.test_client_class = NoServerErrorClient
    client = app.test_client()

    stored = client.get("/api/v1/quotes?symbol=BTC")
    clock.advance(20)
    hit = client.get("/api/v1/quotes?symbol=BTC")

    assert stored.get_json()["data"]["BTC"]["source"] == "database"
    assert cache.sets[-1][1] == 50  # the entry lives 50 s, not 60
    assert max_age_of(stored) == 49
    assert (hit.get_json()["data"]["BTC"]["source"], max_age_of(hit)) == ("cache", 30)


def test_a_cache_hit_whose_entry_outlives_its_freshness_promises_only_the_freshness(provider,
                                                                                    cache):
    """The refresher caches for CACHE_TTL_SECONDS whatever QUOTE_MAX_AGE_SECONDS says; past its
    max age the app refetches such a quote, so a client may not reuse it longer either."""
    clock = FixedClock(T0)
    cache.clock = clock
    app = create_app(Settings(cmc_api_key="k", cmc_base_url="http://127.0.0.1:9",
                              cache_ttl_seconds=600, quote_max_age_seconds=300),
                     provider=provider, repository=InMemoryQuoteRepository(), cache=cache,
                     clock=clock)
    app.test_client_class = NoServerErrorClient
    cache.set_many({"BTC": coin_quote("BTC", 1, "60000")}, "USD", 600)  # as the refresher does
    clock.advance(290)

    hit = app.test_client().get("/api/v1/quotes?symbol=BTC")

    assert hit.get_json()["data"]["BTC"]["source"] == "cache"
    assert max_age_of(hit) == 10  # not the entry's 310
