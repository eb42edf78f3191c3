"""GET /api/v1/quotes/history on real PostgreSQL and on SQLite: the same cases, the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event

from src.adapters.sql.orm import db
from src.domain.history import INTERVALS
from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from tests.conftest import NoServerErrorClient
from tests.fake_cmc.market import TEST_KEY as FAKE_CMC_KEY
from tests.fakes import FixedClock, coin_quote
from tests.integration.history_support import (
    BACKENDS,
    newest_per_interval,
    open_backend,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
EPOCH_START = datetime(1970, 1, 1, tzinfo=UTC)
# Sparse fetches over three weeks, then a dense hour with fetches on and next to the 5-minute
# boundaries (10:04:59.999999 belongs to 10:00-10:05, 10:05:00 to the next interval).
SPARSE = [NOW - timedelta(days=21) + timedelta(minutes=97 * i) for i in range(300)]
DENSE = ([datetime(2026, 11, 26, 10, m, tzinfo=UTC) for m in range(0, 60, 2)]
         + [datetime(2026, 11, 26, 10, 4, 59, 999999, tzinfo=UTC),
            datetime(2026, 11, 26, 10, 5, tzinfo=UTC), datetime(2026, 11, 26, 10, 15, 0, 1, tzinfo=UTC)])
BTC_TIMES = sorted(set(SPARSE + DENSE))
OLD_TIME = datetime(2025, 1, 1, tzinfo=UTC)


def btc(moment: datetime):
    index = BTC_TIMES.index(moment)
    quote = coin_quote("BTC", 1, f"{60000 + index}.123456789", fetched_at=moment, name="Bitcoin")
    # CoinMarketCap's own time is a little older than our fetch: both must come back as they are.
    return quote.__class__(quote.coin, quote.quote.__class__(
        currency="USD", price=quote.quote.price, last_updated=moment - timedelta(seconds=40),
        volume_24h=Decimal("1.5e10"), market_cap=quote.quote.market_cap), moment)


@pytest.fixture(scope="module", params=BACKENDS)
def stored(request, tmp_path_factory, fake_cmc):
    """A database of each dialect holding the same fetches, and the app over it."""
    backend = open_backend(request.param, request, tmp_path_factory.mktemp("history"))
    backend.store(("BTC", btc(t)) for t in BTC_TIMES)
    backend.store([("ETH", coin_quote("ETH", 1027, "3000", fetched_at=NOW - timedelta(hours=2))),
                   ("ETH", coin_quote("ETH", 1027, "3100", fetched_at=NOW - timedelta(hours=1))),
                   # A shared symbol: another coin answered ETC first, the one served now later.
                   ("ETC", coin_quote("ETC", 646, "0.0002", fetched_at=NOW - timedelta(hours=3),
                                      name="Ethercoin")),
                   ("ETC", coin_quote("ETC", 1321, "26.91", fetched_at=NOW - timedelta(hours=2),
                                      name="Ethereum Classic")),
                   ("OLD", coin_quote("OLD", 7777, "1", fetched_at=OLD_TIME))])
    app = create_app(Settings(cmc_api_key=FAKE_CMC_KEY, cmc_base_url=fake_cmc.url,
                              database_url=backend.url), clock=FixedClock(NOW))
    app.test_client_class = NoServerErrorClient
    yield app
    backend.engine.dispose()


@pytest.fixture
def client(stored, fake_cmc):
    calls_before = len(fake_cmc.market.calls)
    yield stored.test_client()
    assert len(fake_cmc.market.calls) == calls_before, "history must never call CoinMarketCap"


def history(client, **params):
    response = client.get("/api/v1/quotes/history", query_string=params)
    return response.status_code, response.get_json()


def times_of(body, symbol="BTC"):
    return [datetime.fromisoformat(p["timestamp"]) for p in body["data"][symbol]["quotes"]]


def whole_range():
    return {"time_start": BTC_TIMES[0].isoformat(), "time_end": NOW.isoformat(), "count": 10000}


@pytest.mark.parametrize("interval", list(INTERVALS))
def test_each_interval_gives_the_newest_fetch_of_each_epoch_aligned_interval_oldest_first(client, interval):
    status, body = history(client, symbol="BTC", interval=interval, **whole_range())

    assert status == 200
    expected = newest_per_interval(BTC_TIMES, INTERVALS[interval], BTC_TIMES[0], NOW, 10000)
    assert [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in expected] == times_of(body)


def test_a_fetch_on_an_interval_boundary_opens_the_next_interval(client):
    status, body = history(client, symbol="BTC", interval="5m", time_start="2026-11-26T10:00:00Z",
                           time_end="2026-11-26T10:09:59Z")

    assert [p["timestamp"] for p in body["data"]["BTC"]["quotes"]] == [
        "2026-11-26T10:04:59.999Z", "2026-11-26T10:08:00.000Z"]


def test_count_keeps_the_newest_points(client):
    _, body = history(client, symbol="BTC", interval="1d", count=3)

    assert times_of(body) == newest_per_interval(BTC_TIMES, 86400, EPOCH_START, NOW, 3)
    assert len(times_of(body)) == 3


def test_default_is_ten_five_minute_points_up_to_now(client):
    _, body = history(client, symbol="BTC")

    assert times_of(body) == newest_per_interval(BTC_TIMES, 300, EPOCH_START, NOW, 10)


def test_time_start_and_time_end_are_inclusive(client):
    first, last = DENSE[3], DENSE[6]  # 10:06 and 10:12

    _, body = history(client, symbol="BTC", interval="all", time_start=first.isoformat(),
                      time_end=last.isoformat())
    _, after = history(client, symbol="BTC", interval="all",
                       time_start=(first + timedelta(microseconds=1)).isoformat(),
                       time_end=(last - timedelta(microseconds=1)).isoformat())

    assert times_of(body)[0] == first and times_of(body)[-1] == last
    assert first not in times_of(after) and last not in times_of(after)


def test_unix_seconds_and_offsets_mean_the_same_instants(client):
    _, iso = history(client, symbol="BTC", interval="all", time_start="2026-11-26T11:06:00+01:00",
                     time_end="2026-11-26T10:20:00")
    _, unix = history(client, symbol="BTC", interval="all",
                      time_start=str(int(datetime(2026, 11, 26, 10, 6, tzinfo=UTC).timestamp())),
                      time_end=str(int(datetime(2026, 11, 26, 10, 20, tzinfo=UTC).timestamp())))

    assert times_of(iso) == times_of(unix)
    assert times_of(iso)[0] == datetime(2026, 11, 26, 10, 6, tzinfo=UTC)


def test_all_returns_every_stored_fetch(client):
    _, body = history(client, symbol="BTC", interval="all", **whole_range())

    assert len(times_of(body)) == len(BTC_TIMES)


def test_body_carries_fetch_time_and_the_providers_time_and_exact_prices(client):
    response = client.get("/api/v1/quotes/history",
                          query_string={"symbol": "btc", "interval": "all", "count": 1})

    body = response.get_json()
    assert response.mimetype == "application/json"
    point = body["data"]["BTC"]["quotes"][0]
    assert body["data"]["BTC"]["id"] == 1 and body["data"]["BTC"]["name"] == "Bitcoin"
    assert body["data"]["BTC"]["symbol"] == "BTC"
    assert point["timestamp"] == "2026-11-26T10:58:00.000Z"
    assert point["quote"]["USD"]["last_updated"] == "2026-11-26T10:57:20.000Z"
    assert f'"price":{60000 + BTC_TIMES.index(DENSE[29])}.123456789' in response.get_data(as_text=True)
    assert body["unknown_symbols"] == []


def test_unknown_symbol_is_listed_and_a_known_one_without_points_has_an_empty_list(client):
    status, body = history(client, symbol="BTC,OLD,NOPE", time_start="2026-11-26T00:00:00Z")

    assert status == 200
    assert list(body["data"]) == ["BTC", "OLD"]
    assert body["data"]["OLD"]["quotes"] == []
    assert body["unknown_symbols"] == ["NOPE"]


def test_only_never_stored_symbols_is_a_404(client):
    status, body = history(client, symbol="NOPE,NADA")

    assert status == 404
    assert body["errors"] == {"unknown_symbols": ["NOPE", "NADA"]}


def test_a_shared_symbol_means_the_coin_its_newest_fetch_answered(client):
    _, body = history(client, symbol="ETC", interval="all", count=100)

    assert body["data"]["ETC"]["id"] == 1321
    assert [p["quote"]["USD"]["price"] for p in body["data"]["ETC"]["quotes"]] == [26.91]


def test_many_symbols_cost_one_statement(stored, client):
    with stored.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        status, body = history(client, symbol="BTC,ETH,ETC,OLD,NOPE", interval="1h", count=5)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert status == 200 and set(body["data"]) == {"BTC", "ETH", "ETC", "OLD"}
    assert len(times_of(body, "ETH")) == 2
    assert len([s for s in seen if s.lstrip().upper().startswith(("SELECT", "WITH"))]) == 1


@pytest.mark.parametrize("params, parameter", [
    ({"time_start": "2026-11-26T12:00:00Z", "time_end": "2026-11-26T11:00:00Z"}, "time_start"),
    ({"time_start": "2026-11-27T00:00:00Z"}, "time_start"),  # after the default end, now
    ({"interval": "3m"}, "interval"),
    ({"count": "0"}, "count"),
    ({"convert": "EUR"}, "convert"),
])
def test_bad_parameters_are_a_422_naming_the_parameter(client, params, parameter):
    status, body = history(client, symbol="BTC", **params)

    assert status == 422
    assert parameter in body["message"]


def test_a_shared_symbol_is_the_coin_that_quotes_serves(stored, client, fake_cmc):
    # A max age beyond ETC's newest fetch: /api/v1/quotes serves it from the database.
    quotes = create_app(Settings(cmc_api_key=FAKE_CMC_KEY, cmc_base_url=fake_cmc.url,
                                 database_url=stored.config["SQLALCHEMY_DATABASE_URI"],
                                 quote_max_age_seconds=86400, refresh_window_seconds=0),
                        clock=FixedClock(NOW))
    quotes.test_client_class = NoServerErrorClient

    served = quotes.test_client().get("/api/v1/quotes", query_string={"symbol": "ETC"}).get_json()
    _, body = history(client, symbol="ETC", interval="all")

    assert served["data"]["ETC"]["id"] == body["data"]["ETC"]["id"] == 1321


# The ends of what the document's pattern takes: the year 1000 and 11 digits of Unix seconds
# (the year 0001 and 12 digits are a 422, test_history_rules); the calendar's own end, 9999.
@pytest.mark.parametrize("params, expected", [
    ({"time_start": "1000-01-01T00:00:00Z", "time_end": NOW.isoformat(),
      "interval": "7d"}, newest_per_interval(BTC_TIMES, 604800, EPOCH_START, NOW, 10000)),
    ({"time_start": "0", "time_end": "99999999999", "interval": "all"}, BTC_TIMES),
    # 10,000 days before the calendar's end: none stored.
    ({"time_start": "1900-01-01", "time_end": "9999-12-31T23:59:59.999999%2B00:00".replace("%2B", "+"),
      "interval": "1d"}, []),
    ({"time_start": "1000-01-01T00:00:00Z", "time_end": "1000-01-02T00:00:00Z"}, []),
    ({"time_end": "0"}, []),
    ({"time_start": "9999-12-31T23:59:59Z", "time_end": "9999-12-31T23:59:59.999999Z"}, []),
])
def test_times_at_the_ends_of_the_calendar_are_answered_by_the_database(client, params, expected):
    status, body = history(client, symbol="BTC", count=10000, **params)

    assert status == 200, body
    assert times_of(body) == [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in expected]
