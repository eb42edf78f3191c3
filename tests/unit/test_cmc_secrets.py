"""An upstream that echoes our key in its text and headers, through every fault path of the
adapter: the key reaches no error, no log record; the upstream text reaches only the log."""

from __future__ import annotations

import pytest

from src.adapters.coinmarketcap import CoinMarketCapProvider
from src.domain.errors import QuoteError
from tests.unit.cmc_support import (  # noqa: F401
    BASE,
    ECHO_FAULTS,
    KEY,
    URL,
    FakeClock,
    adapter_log,
    echo_fault,
)


@pytest.fixture
def provider():
    clock = FakeClock()
    return CoinMarketCapProvider(base_url=BASE, api_key=KEY, sleep=clock.sleep, clock=clock)


def everything_about(error: BaseException) -> str:
    return " ".join([str(error), repr(error), repr(error.args), repr(vars(error))])


@pytest.mark.parametrize("fault", ECHO_FAULTS)
@pytest.mark.parametrize("call", ["by_symbols", "by_ids"])
def test_an_echoed_key_reaches_no_error_and_no_log_record(provider, requests_mock, adapter_log, fault, call):
    echo_fault(requests_mock, URL, fault)

    try:
        if call == "by_symbols":
            provider.latest_by_symbols(["BTC"], "USD")
        else:
            provider.latest_by_ids([1], "EUR")
    except QuoteError as exc:
        error = exc
    else:
        error = None

    assert requests_mock.last_request.headers["X-CMC_PRO_API_KEY"] == KEY  # the upstream had it
    if error is not None:
        assert KEY not in everything_about(error)
        assert "{key}" not in str(error)
    logged = adapter_log.getvalue()
    assert KEY not in logged
    if ECHO_FAULTS[fault][1] in ("json", "html", "text"):
        assert "[redacted]" in logged  # the upstream's text was logged, without the key


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_so_the_key_goes_nowhere_else(provider, requests_mock, status):
    elsewhere = "https://collector.example.test/v2/cryptocurrency/quotes/latest"
    requests_mock.get(URL, status_code=status, headers={"Location": elsewhere})
    collector = requests_mock.get(elsewhere, json={"status": {"error_code": 0}, "data": {}})

    with pytest.raises(QuoteError) as raised:
        provider.latest_by_symbols(["BTC"], "USD")

    assert not collector.called  # requests keeps custom headers (our key) across hosts
    assert type(raised.value).__name__ == "ProviderError"
    assert KEY not in everything_about(raised.value)
