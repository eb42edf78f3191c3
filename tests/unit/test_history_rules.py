"""The history rules: parameters, epoch-aligned intervals, retention, the service over a fake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from src.domain.errors import ProviderUnavailable, StorageError, UnknownSymbols
from src.domain.history import (
    HistoryQuery,
    HistoryService,
    HistoryUnavailable,
    InvalidHistoryParameter,
    RetentionPolicy,
    bucket_of,
    parse_interval,
    parse_time,
)
from tests.fakes import FixedClock, InMemoryHistoryRepository, coin_quote

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw, expected", [
    ("2026-11-26T03:00:00Z", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
    ("2026-11-26T03:00:00.250+00:00", datetime(2026, 11, 26, 3, 0, 0, 250000, tzinfo=UTC)),
    ("2026-11-26T04:00:00+01:00", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
    ("2026-11-26T03:00:00", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),  # no offset: UTC
    ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC)),
    ("1795662000", datetime(2026, 11, 26, 3, 0, tzinfo=UTC)),
    ("1795662000.5", datetime(2026, 11, 26, 3, 0, 0, 500000, tzinfo=UTC)),
    ("0", datetime(1970, 1, 1, tzinfo=UTC)),
])
def test_times_are_iso_8601_or_unix_seconds_read_as_utc(raw, expected):
    assert parse_time(raw, "time_start") == expected


@pytest.mark.parametrize("raw", [
    "", " ", "yesterday", "2026-13-01", "2026-11-26T25:00", "-5", "1e9", "1795662000.1234567",
    "9" * 13, "２０２６-11-26", "2026-11-26T03:00:00.000000+00:00" + "0" * 10, "0001-01-01T00:00:00+01:00",
    "NaN", "inf",
])
def test_bad_times_are_invalid_and_name_the_parameter(raw):
    with pytest.raises(InvalidHistoryParameter) as caught:
        parse_time(raw, "time_end")

    assert caught.value.parameter == "time_end"
    assert str(caught.value).startswith("time_end: ")


def test_an_offset_whose_plus_became_a_space_in_the_url_gets_a_hint():
    with pytest.raises(InvalidHistoryParameter, match="%2B"):
        parse_time("2026-11-26T03:00:00 01:00", "time_start")


def test_intervals_are_the_contracts_list():
    assert [parse_interval(name) for name in ("5m", "1h", "1d", "7d", "all")] == [300, 3600, 86400, 604800, None]
    for bad in ("", "5M", "1w", "60", "all "):
        with pytest.raises(InvalidHistoryParameter):
            parse_interval(bad)


def test_intervals_are_aligned_on_the_unix_epoch():
    assert bucket_of(datetime(2026, 11, 26, 10, 4, 59, 999999, tzinfo=UTC), 300) == \
        bucket_of(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), 300)
    assert bucket_of(datetime(2026, 11, 26, 10, 5, tzinfo=UTC), 300) == \
        bucket_of(datetime(2026, 11, 26, 10, 0, tzinfo=UTC), 300) + 1
    # 7-day intervals start on Thursdays, as 1970-01-01 did.
    assert bucket_of(datetime(2026, 11, 26, tzinfo=UTC), 604800) != \
        bucket_of(datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC), 604800)


def test_retention_needs_the_hourly_tier_to_reach_past_the_full_one():
    with pytest.raises(ValueError):
        RetentionPolicy(full_days=10, hourly_days=5)
    with pytest.raises(ValueError):
        RetentionPolicy(full_days=0, hourly_days=5)

    assert RetentionPolicy(7, 90).cutoffs(NOW) == (NOW - timedelta(days=7), NOW - timedelta(days=90))


@pytest.fixture
def repo():
    return InMemoryHistoryRepository(rows=[
        ("BTC", coin_quote("BTC", 1, str(60000 + i), fetched_at=NOW - timedelta(minutes=2 * i)))
        for i in range(100)
    ])


@pytest.fixture
def service(repo):
    return HistoryService(repo, FixedClock(NOW), "USD")


def test_time_end_defaults_to_now_and_the_query_carries_the_parameters(service, repo):
    answer = service.get_history(("BTC",), interval="1h", count=3)

    # Bounded by what count and interval can return: the 3 hours ending with NOW's.
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    assert repo.queries == [HistoryQuery(("BTC",), "USD", NOW, hour - timedelta(hours=2), 3600, 3)]
    assert [p.fetched_at for p in answer.data["BTC"].points] == [
        NOW - timedelta(minutes=62), NOW - timedelta(minutes=2), NOW]


def test_a_request_reads_only_the_count_newest_intervals_whatever_its_time_start(service, repo):
    service.get_history(("BTC",))
    service.get_history(("BTC",), time_start=NOW - timedelta(days=3650), interval="1d", count=2)
    service.get_history(("BTC",), time_start=NOW - timedelta(minutes=7))
    service.get_history(("BTC",), interval="all", count=5)

    five_minutes = NOW.replace(minute=NOW.minute // 5 * 5, second=0, microsecond=0)
    day = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    assert [q.time_start for q in repo.queries] == [
        five_minutes - timedelta(minutes=45),  # the default: 10 five-minute intervals
        day - timedelta(days=1),
        NOW - timedelta(minutes=7),  # a later time_start stands
        None,  # `all`: the repository reads each coin's count newest fetches only
    ]


def test_a_coin_silent_for_longer_than_the_intervals_asked_has_no_point():
    repo = InMemoryHistoryRepository(rows=[
        ("BTC", coin_quote("BTC", 1, "60000", fetched_at=NOW - timedelta(hours=5)))])
    service = HistoryService(repo, FixedClock(NOW), "USD")

    assert service.get_history(("BTC",)).data["BTC"].points == ()
    assert len(service.get_history(("BTC",), interval="1h").data["BTC"].points) == 1


def test_time_start_after_time_end_is_invalid(service, repo):
    with pytest.raises(InvalidHistoryParameter) as caught:
        service.get_history(("BTC",), time_start=NOW, time_end=NOW - timedelta(seconds=1))

    assert caught.value.parameter == "time_start"
    assert repo.queries == []


def test_time_start_in_the_future_is_after_the_default_end(service):
    with pytest.raises(InvalidHistoryParameter, match="after time_end \\(now\\)"):
        service.get_history(("BTC",), time_start=NOW + timedelta(minutes=1))


def test_unknown_symbols_are_listed_and_none_known_is_unknown_symbols(service):
    answer = service.get_history(("NOPE", "BTC"))

    assert list(answer.data) == ["BTC"] and answer.unknown_symbols == ("NOPE",)
    with pytest.raises(UnknownSymbols):
        service.get_history(("NOPE",))


def test_storage_failure_is_history_unavailable(service, repo):
    repo.fail_with = StorageError("down")

    with pytest.raises(HistoryUnavailable) as raised:
        service.get_history(("BTC",))
    # A database failure, not an upstream one: nothing that handles CoinMarketCap's outages
    # (the breaker, the credit refunds) may take it for one.
    assert not isinstance(raised.value, ProviderUnavailable)


def test_prune_runs_the_policy_as_of_now(repo):
    service = HistoryService(repo, FixedClock(NOW), "USD", RetentionPolicy(3, 30))

    service.prune(batch_size=100)

    assert repo.prunes == [(NOW, RetentionPolicy(3, 30), 100)]
