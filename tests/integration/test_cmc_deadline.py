"""One deadline bounds a whole CoinMarketCap call, against real slow sockets (no mocks)."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from src.adapters.coinmarketcap import CircuitBreaker, CoinMarketCapProvider
from src.adapters.coinmarketcap.key_info import CoinMarketCapKeyInfo
from src.domain.deadline import Deadline
from src.domain.errors import ProviderTimeout, ProviderUnavailable

MARGIN = 0.5  # thread scheduling and the last socket wake-up, on a busy 2-core machine


class SlowUpstream(socketserver.ThreadingTCPServer):
    """A loopback HTTP server misbehaving as `mode` says, one thread per connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.stopped = threading.Event()
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.BaseRequestHandler):
    server: SlowUpstream

    def handle(self) -> None:
        self.server.connections += 1
        self.request.recv(65536)
        mode = self.server.mode
        try:
            if mode == "trickle-body":
                # Headers at once, then a byte a second: each read succeeds, none times out.
                self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: 1000\r\n\r\n{")
                while not self.server.stopped.wait(1.0):
                    self.request.sendall(b" ")
            elif mode == "trickle-headers":
                # The status line, then a header a byte a second: the headers never end.
                self.request.sendall(b"HTTP/1.1 200 OK\r\n")
                while not self.server.stopped.wait(1.0):
                    self.request.sendall(b"X")
            elif mode == "silent":
                self.server.stopped.wait(30)
            elif mode == "busy":
                self.request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                                     b"Content-Type: text/html\r\nContent-Length: 9\r\n"
                                     b"Connection: close\r\n\r\n<h1>503\r\n")
        except OSError:
            pass  # the client hung up: what the deadline is for


@pytest.fixture
def upstream(request) -> Iterator[SlowUpstream]:
    server = SlowUpstream(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stopped.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def provider_for(upstream: SlowUpstream) -> CoinMarketCapProvider:
    return CoinMarketCapProvider(base_url=upstream.url, api_key="deadline-test-key", read_timeout=5.0,
                                 max_attempts=3, breaker=CircuitBreaker(failure_threshold=100))


def seconds_until_timeout(provider: CoinMarketCapProvider, deadline: Deadline) -> float:
    """How long a quotes call took to end in ProviderTimeout (it must)."""
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        provider.latest_by_symbols(["BTC"], "USD", deadline=deadline)
    return time.monotonic() - started


@pytest.mark.parametrize("upstream", ["trickle-body"], indirect=True)
def test_a_body_trickling_a_byte_a_second_ends_at_the_deadline(upstream):
    assert seconds_until_timeout(provider_for(upstream), Deadline(2.5)) <= 2.5 + MARGIN
    assert upstream.connections == 1  # no time was left for another attempt


@pytest.mark.parametrize("upstream", ["trickle-headers"], indirect=True)
def test_headers_trickling_a_byte_a_second_end_at_the_deadline(upstream):
    assert seconds_until_timeout(provider_for(upstream), Deadline(2.5)) <= 2.5 + MARGIN


@pytest.mark.parametrize("upstream", ["silent"], indirect=True)
def test_an_upstream_that_never_answers_ends_at_the_deadline_not_the_read_timeout(upstream):
    elapsed = seconds_until_timeout(provider_for(upstream), Deadline(2.0))

    assert 2.0 - MARGIN <= elapsed <= 2.0 + MARGIN


@pytest.mark.parametrize("upstream", ["busy"], indirect=True)
def test_retries_and_their_waits_end_within_the_deadline(upstream):
    provider = provider_for(upstream)
    provider.max_attempts = 10

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        provider.latest_by_symbols(["BTC"], "USD", deadline=Deadline(2.5))
    elapsed = time.monotonic() - started

    assert elapsed <= 2.5 + MARGIN
    assert 2 <= upstream.connections <= 3  # Retry-After: 1 honoured, no attempt started too late


@pytest.mark.parametrize("upstream", ["trickle-body"], indirect=True)
def test_the_convert_call_is_bounded_by_the_same_deadline(upstream):
    provider = provider_for(upstream)
    deadline = Deadline(3.0)
    time.sleep(1.5)  # the request spent half its time before converting

    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        provider.latest_by_ids([1], "EUR", deadline=deadline)

    assert time.monotonic() - started <= 1.5 + MARGIN


@pytest.mark.parametrize("upstream", ["trickle-body", "trickle-headers"], indirect=True)
def test_a_trickling_key_info_answer_is_cut_at_its_budget(upstream):
    # The governor may read key info on a request's path: it must not hold that request.
    reader = CoinMarketCapKeyInfo(base_url=upstream.url, api_key="deadline-test-key",
                                  budget_seconds=1.5)

    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        reader.read()

    assert time.monotonic() - started <= 1.5 + MARGIN
