"""The app's side of refresh-ahead: the quotes view notes what it served; the refresh command."""

from __future__ import annotations

from src.entrypoints.app import create_app
from src.entrypoints.settings import Settings
from src.entrypoints.wiring import wiring
from tests.conftest import NoServerErrorClient
from tests.fakes_refresh import FakeCreditGovernor


def build(settings, provider, repo, cache, clock, log, lease, **overrides):
    app = create_app(Settings(**{**settings.__dict__, **overrides}), provider=provider, repository=repo,
                     cache=cache, clock=clock, request_log=log, refresh_lease=lease,
                     governor=FakeCreditGovernor())
    app.test_client_class = NoServerErrorClient
    return app


def test_the_symbols_a_request_was_served_are_noted_and_unknown_ones_are_not(settings, provider, repo, cache,
                                                                              clock, log, lease):
    app = build(settings, provider, repo, cache, clock, log, lease)

    app.test_client().get("/api/v1/quotes?symbol=BTC,NOPE")
    app.test_client().get("/api/v1/quotes?symbol=eth&convert=EUR")
    wiring(app).refresh.demand.flush()

    assert log.last_requested == {"BTC": clock.now(), "ETH": clock.now()}


def test_nothing_is_noted_when_refresh_ahead_is_off(settings, provider, repo, cache, clock, log, lease):
    app = build(settings, provider, repo, cache, clock, log, lease, refresh_window_seconds=0)

    app.test_client().get("/api/v1/quotes?symbol=BTC")

    assert wiring(app).refresh.demand is None
    assert log.writes == []


def test_refresh_once_runs_a_round_over_the_noted_symbols(settings, provider, repo, cache, clock, log, lease):
    app = build(settings, provider, repo, cache, clock, log, lease)
    app.test_client().get("/api/v1/quotes?symbol=BTC,ETH")
    wiring(app).refresh.demand.flush()
    provider.calls.clear()
    clock.advance(settings.quote_max_age_seconds / 2)  # the quotes are due for a refresh

    result = app.test_cli_runner().invoke(args=["refresh", "--once"])

    assert result.exit_code == 0, result.output
    assert "2 of 2 symbol(s) refreshed in 1 call(s)" in result.output
    assert [set(call[1]) for call in provider.calls] == [{"BTC", "ETH"}]
