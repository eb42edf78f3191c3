"""CoinMarketCapProvider: the QuoteProvider port over CoinMarketCap's HTTP API, in a deadline."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import requests

from src.adapters.coinmarketcap import wire
from src.adapters.coinmarketcap.answers import (
    BadRequest,
    Transient,
    TransientTimeout,
    classify,
)
from src.adapters.coinmarketcap.breaker import CircuitBreaker
from src.adapters.coinmarketcap.retry import MIN_ATTEMPT_SECONDS, retrying
from src.adapters.coinmarketcap.watchdog import Watchdog, watch
from src.adapters.metrics import UPSTREAM_CALLS, UPSTREAM_CREDITS
from src.domain.deadline import Deadline
from src.domain.errors import (
    InvalidCurrency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from src.domain.model import CoinQuote, Fetched, Quote
from src.domain.ports import QuoteProvider

logger = logging.getLogger(__name__)

PRODUCTION_URL = "https://pro-api.coinmarketcap.com"
SANDBOX_URL = "https://sandbox-api.coinmarketcap.com"
# Published by CoinMarketCap for its sandbox host only.
SANDBOX_KEY = "b54bcf4d-1bca-4e8e-9a24-22ff2c3d462c"
QUOTES_PATH = "/v2/cryptocurrency/quotes/latest"

MAX_BODY_BYTES = 8 * 1024 * 1024  # 100 symbols with every namesake coin stay far below this
_CHUNK_BYTES = 16 * 1024
_T = TypeVar("_T")


class CoinMarketCapProvider(QuoteProvider):
    """Latest quotes from CoinMarketCap's v2 `quotes/latest`, authenticated by header.

    The key is sent only as the `X-CMC_PRO_API_KEY` header (never in a URL, a log line or an
    error). Transient failures are retried with exponential backoff and jitter, honouring
    `Retry-After`; every call, wait and body read ends before the caller's deadline (or
    `budget_seconds` from the call when none is given). Other failures are raised at once as
    domain errors in our own words, with CoinMarketCap's error code; its text is only logged.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 5.0,
        budget_seconds: float = 8.0,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        breaker: CircuitBreaker | None = None,
        before_retry: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = watch(session or requests.Session())
        self.session.headers.update(
            {
                "X-CMC_PRO_API_KEY": api_key,
                "Accept": "application/json",
                "Accept-Encoding": "deflate, gzip",
                "User-Agent": "coinquote/0.1",
            }
        )
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.budget_seconds = budget_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.clock = clock
        self.breaker = breaker or CircuitBreaker()
        # Called before every attempt after the first, with the failure of the attempt before:
        # a retry is one more call against the plan's per-minute limit, and after a timeout
        # (which CoinMarketCap may have answered, and charged, after we gave up) one more
        # call's credits, so the composition root lets the credit governor count it (and refuse
        # it by raising BudgetSpent, which ends the retries).
        self.before_retry = before_retry

    def __repr__(self) -> str:  # never show the session headers (the key) in a repr
        return f"CoinMarketCapProvider(base_url={self.base_url!r})"

    def fetch_by_symbols(self, symbols: Sequence[str], currency: str, *,
                         deadline: Deadline | None = None) -> Fetched[str, CoinQuote]:
        params = {"symbol": ",".join(symbols), "convert": currency, "skip_invalid": "true"}
        try:
            body = self._get(QUOTES_PATH, params, deadline)
        except BadRequest as exc:
            # With skip_invalid=true CoinMarketCap still answers 400 when *no* symbol is valid;
            # an error answer is never charged.
            if exc.parameter == "symbol":
                return Fetched(credits=0)
            raise
        return self._read(wire.quotes_by_symbol, body, symbols, currency)

    def fetch_by_ids(self, coin_ids: Sequence[int], currency: str, *,
                     deadline: Deadline | None = None) -> Fetched[int, Quote]:
        params = {
            "id": ",".join(str(i) for i in coin_ids),
            "convert": currency,
            "skip_invalid": "true",
        }
        try:
            body = self._get(QUOTES_PATH, params, deadline)
        except BadRequest as exc:
            if exc.parameter == "convert":
                raise InvalidCurrency(f"unknown convert currency {currency}") from None
            raise
        return self._read(wire.quotes_by_id, body, currency)

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "[redacted]") if self._api_key else text

    def _read(self, parse: Callable[..., _T], body: dict[str, Any], *args: Any) -> _T:
        """Run a wire parser; a surprise in the answer is a 502, never a 500."""
        try:
            return parse(body, *args)
        except ProviderError:
            raise
        except Exception as exc:
            self._log_unexpected(exc, "reading CoinMarketCap's answer")
            raise ProviderError("CoinMarketCap's answer could not be read") from None

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str],
             deadline: Deadline | None) -> dict[str, Any]:
        deadline = deadline or Deadline(self.budget_seconds, clock=self.clock)
        if deadline.remaining() < MIN_ATTEMPT_SECONDS:
            # Spent before we start (e.g. waiting for another process's fetch): no call, and
            # nothing for the breaker to count.
            raise ProviderTimeout("CoinMarketCap did not answer in time")
        try:
            with self.breaker.guard():
                return retrying(deadline, max_attempts=self.max_attempts,
                                backoff_seconds=self.backoff_seconds, sleep=self.sleep)(
                    self._get_once, path, params, deadline, _Attempts())
        except (ProviderUnavailable, ProviderError):
            raise
        except Exception as exc:  # a bug of ours: the breaker has ended any trial; a 502
            self._log_unexpected(exc, "calling CoinMarketCap")
            raise ProviderError("CoinMarketCap could not be called") from None

    def _get_once(self, path: str, params: Mapping[str, str], deadline: Deadline,
                  attempts: _Attempts | None = None) -> dict[str, Any]:
        if attempts is not None:
            attempts.made += 1
            if attempts.made > 1 and self.before_retry is not None:
                self.before_retry(attempts.last_failure)
        outcome = "ok"
        try:
            body = self._attempt(path, params, deadline)
        except Exception as exc:
            outcome = _outcome(exc)
            if attempts is not None:
                attempts.last_failure = exc
            raise
        finally:
            UPSTREAM_CALLS.labels(outcome).inc()
        if credits := wire.credit_count(body):
            UPSTREAM_CREDITS.inc(credits)
        return body

    def _attempt(self, path: str, params: Mapping[str, str], deadline: Deadline) -> dict[str, Any]:
        remaining = deadline.remaining()
        if remaining < MIN_ATTEMPT_SECONDS:
            raise TransientTimeout("CoinMarketCap did not answer in time")
        # requests' timeouts are per connect and per socket read: both are capped by what
        # remains, and the watchdog cuts the exchange (headers and body) at the deadline.
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        watchdog = Watchdog(deadline)
        try:
            with watchdog:
                # No redirects: requests would send our key header to wherever one points.
                response = self.session.get(self.base_url + path, params=params,
                                            timeout=timeout, stream=True, allow_redirects=False)
                content = _read_body(response, deadline)
            if watchdog.cut_off:  # what was read before the cut is a fragment, not an answer
                raise TransientTimeout("CoinMarketCap did not answer in time")
            return classify(response.status_code, response.headers.get("Retry-After"), content,
                            self._redact)
        except (ProviderUnavailable, ProviderError):
            raise
        except requests.Timeout:
            logger.warning("CoinMarketCap did not answer within %.2f s", remaining)
            raise TransientTimeout("CoinMarketCap did not answer in time") from None
        except Exception as exc:
            if not watchdog.cut_off:
                raise self._failure(exc, deadline) from None
            # Whatever the library made of the cut (a reset, an SSL or parsing error).
            logger.warning("CoinMarketCap's answer was still arriving at the deadline")
            raise TransientTimeout("CoinMarketCap did not answer in time") from None

    def _failure(self, exc: Exception, deadline: Deadline) -> Exception:
        """The domain error for an exception of an attempt the watchdog did not cut."""
        if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            if deadline.expired:
                return TransientTimeout("CoinMarketCap did not answer in time")
            logger.warning("CoinMarketCap cannot be reached or hung up (%s)", type(exc).__name__)
            return Transient("CoinMarketCap cannot be reached")
        if isinstance(exc, requests.RequestException):
            logger.warning("request to CoinMarketCap failed (%s)", type(exc).__name__)
            return ProviderError("request to CoinMarketCap failed")
        # Anything else (a bug, a library surprise) is an unusable answer: a 502, never a 500,
        # and the breaker's trial still ends.
        self._log_unexpected(exc, "calling CoinMarketCap")
        return ProviderError("CoinMarketCap's answer could not be handled")

    def _log_unexpected(self, exc: BaseException, doing: str) -> None:
        # The message and the last frames only: upstream text may hold anything (the key too),
        # and a RecursionError's full traceback is a thousand frames long.
        where = "".join(traceback.format_tb(exc.__traceback__, limit=-3))
        logger.error("unexpected %s while %s: %r\n%s", type(exc).__name__, doing,
                     self._redact(str(exc))[:300], where)


class _Attempts:
    """The attempts of one call so far, and how the last one failed."""

    def __init__(self) -> None:
        self.made = 0
        self.last_failure: BaseException | None = None


def _read_body(response: requests.Response, deadline: Deadline) -> bytes:
    """The whole body (bounded in size), or raise once the deadline passes."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(_CHUNK_BYTES):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ProviderError("CoinMarketCap's answer is too large")
            if deadline.expired:
                raise TransientTimeout("CoinMarketCap did not answer in time")
    finally:
        response.close()
    return b"".join(chunks)


def _outcome(exc: BaseException) -> str:
    """A metrics label for a failed call."""
    if isinstance(exc, ProviderTimeout):
        return "timeout"
    if isinstance(exc, Transient):
        return "unavailable"
    if isinstance(exc, ProviderUnavailable):
        return "quota_spent"
    if isinstance(exc, BadRequest):
        return "bad_request"
    return "unusable"
