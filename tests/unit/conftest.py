"""The unit tier never opens a socket (any attempt fails the test); the app over fakes."""

from __future__ import annotations

import socket

import pytest

from src.entrypoints.app import create_app
from tests.conftest import NoServerErrorClient
from tests.fakes import (
    FakeQuoteProvider,
    FixedClock,
    InMemoryQuoteCache,
    InMemoryQuoteRepository,
    coin_quote,
)
from tests.fakes_refresh import InMemoryRefreshLease, InMemoryRequestLog

BTC = coin_quote("BTC", 1, "67250.123456789012345678")
ETH = coin_quote("ETH", 1027, "3512.44")


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unit tests must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def provider():
    return FakeQuoteProvider({"BTC": BTC, "ETH": ETH})


@pytest.fixture
def repo():
    return InMemoryQuoteRepository()


@pytest.fixture
def clock():
    return FixedClock()


@pytest.fixture
def cache(clock):
    return InMemoryQuoteCache(clock=clock)


@pytest.fixture
def log():
    return InMemoryRequestLog()


@pytest.fixture
def lease(clock):
    return InMemoryRefreshLease(clock=clock)


@pytest.fixture
def app(settings, provider, repo, cache):
    """The real app (create_app), every port a fake; any 500 fails the test."""
    app = create_app(settings, provider=provider, repository=repo, cache=cache, clock=FixedClock())
    app.test_client_class = NoServerErrorClient
    return app


@pytest.fixture
def client(app):
    return app.test_client()
