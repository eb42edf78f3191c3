"""CoinMarketCap Pro API adapter: the QuoteProvider port over HTTP, with its resilience policy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from src.adapters.metrics import UPSTREAM_CALLS, UPSTREAM_CREDITS, UPSTREAM_SHORT_CIRCUITS
from src.domain.errors import (
    InvalidCurrency,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from src.domain.model import QUOTE_FIGURES, Coin, CoinQuote, Quote
from src.domain.ports import QuoteProvider

logger = logging.getLogger(__name__)

PRODUCTION_URL = "https://pro-api.coinmarketcap.com"
SANDBOX_URL = "https://sandbox-api.coinmarketcap.com"
# Published by CoinMarketCap for its sandbox host only (spec/cmc-api.md §1).
SANDBOX_KEY = "b54bcf4d-1bca-4e8e-9a24-22ff2c3d462c"
QUOTES_PATH = "/v2/cryptocurrency/quotes/latest"

_RETRYABLE_LIMIT_CODES = {1008, 1011}  # per-minute and per-IP limits reset quickly
_QUOTA_CODES = {1009, 1010}  # daily/monthly credits spent: retrying only burns time
_CREDENTIAL_CODES = {1001, 1002, 1003, 1004, 1005, 1006, 1007}


class _Transient(ProviderUnavailable):
    """A failure worth another attempt (timeouts, connection errors, 5xx, per-minute limits)."""


class _TransientTimeout(ProviderTimeout, _Transient):
    """A timeout worth another attempt."""


class _BadRequest(ProviderError):
    """CoinMarketCap rejected a parameter (HTTP 400); the caller knows which one it sent."""


class _wait_retry_after(wait_base):
    """Honour the server's Retry-After hint (capped); otherwise use the fallback backoff."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = getattr(exc, "retry_after", None)
        return min(hinted, self.cap) if hinted is not None else self.fallback(retry_state)


class CircuitOpen(ProviderUnavailable):
    """CoinMarketCap failed repeatedly; calls are refused until the cool-down ends."""


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive unavailable answers; while open, calls fail at
    once with the time left as `retry_after`. After `cooldown_seconds` one trial call goes
    through (half-open): an answer closes the circuit, a failure opens it again.
    """

    def __init__(self, failure_threshold: int = 5, cooldown_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False
        self._lock = threading.Lock()

    def before_call(self) -> None:
        with self._lock:
            if self.opened_at is None:
                return
            remaining = self.opened_at + self.cooldown_seconds - self.clock()
            if remaining > 0 or self._trial_running:
                UPSTREAM_SHORT_CIRCUITS.inc()
                raise CircuitOpen("CoinMarketCap is failing; not calling it for a while",
                                  retry_after=max(remaining, 1.0))
            self._trial_running = True

    def record_answer(self) -> None:
        with self._lock:
            if self.opened_at is not None:
                logger.warning("CoinMarketCap answers again; circuit closed")
            self.failures, self.opened_at, self._trial_running = 0, None, False

    def record_failure(self) -> None:
        with self._lock:
            self.failures += 1
            half_open = self._trial_running
            self._trial_running = False
            if half_open or (self.opened_at is None and self.failures >= self.failure_threshold):
                self.opened_at = self.clock()
                logger.warning("CoinMarketCap failed %d time(s) in a row; circuit open for %.0f s",
                               self.failures, self.cooldown_seconds)


def _stop_when_waits_exceed(budget: float) -> Callable[[Any], bool]:
    """Stop when the waits alone would pass the budget (holds with an injected `sleep` too)."""

    def stop(retry_state: Any) -> bool:
        return retry_state.idle_for + (retry_state.upcoming_sleep or 0) > budget

    return stop


class CoinMarketCapProvider(QuoteProvider):
    """Latest quotes from CoinMarketCap's v2 `quotes/latest`, authenticated by header.

    The key is sent only as the `X-CMC_PRO_API_KEY` header (never in a URL, a log line or an
    error). Transient failures are retried with exponential backoff and jitter, honouring
    `Retry-After`, within `budget_seconds` for the whole call; other failures are raised at once
    as domain errors.
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
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update(
            {
                "X-CMC_PRO_API_KEY": api_key,
                "Accept": "application/json",
                "Accept-Encoding": "deflate, gzip",
                "User-Agent": "coinquote/0.1",
            }
        )
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.budget_seconds = budget_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        self.breaker = breaker or CircuitBreaker()

    def __repr__(self) -> str:  # never show the session headers (the key) in a repr
        return f"CoinMarketCapProvider(base_url={self.base_url!r})"

    def latest_by_symbols(self, symbols: Sequence[str], currency: str) -> dict[str, CoinQuote]:
        params = {"symbol": ",".join(symbols), "convert": currency, "skip_invalid": "true"}
        try:
            body = self._get(QUOTES_PATH, params)
        except _BadRequest as exc:
            # With skip_invalid=true CoinMarketCap still answers 400 when *no* symbol is valid.
            if '"symbol"' in str(exc):
                return {}
            raise ProviderError(str(exc)) from None
        fetched_at = _parse_time(body["status"].get("timestamp")) or datetime.now(UTC)
        data = {str(key).upper(): value for key, value in body["data"].items()}
        found: dict[str, CoinQuote] = {}
        for symbol in symbols:
            coin_quote = _pick(data.get(symbol), currency, fetched_at)
            if coin_quote is not None:
                found[symbol] = coin_quote
        return found

    def latest_by_ids(self, coin_ids: Sequence[int], currency: str) -> dict[int, Quote]:
        params = {
            "id": ",".join(str(i) for i in coin_ids),
            "convert": currency,
            "skip_invalid": "true",
        }
        try:
            body = self._get(QUOTES_PATH, params)
        except _BadRequest as exc:
            if '"convert"' in str(exc):
                raise InvalidCurrency(f"unknown convert currency {currency}") from None
            raise ProviderError(str(exc)) from None
        converted: dict[int, Quote] = {}
        for entry in body["data"].values():
            entries = entry if isinstance(entry, list) else [entry]
            for item in entries:
                coin, quote = _parse_coin(item, currency)
                if quote is not None:
                    converted[coin.id] = quote
        return converted

    # -- HTTP ---------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        self.breaker.before_call()
        try:
            body = self._get_with_retries(path, params)
        except ProviderUnavailable:
            self.breaker.record_failure()
            raise
        except ProviderError:
            self.breaker.record_answer()  # an unusable answer is still an answer
            raise
        self.breaker.record_answer()
        return body

    def _get_with_retries(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        deadline = time.monotonic() + self.budget_seconds
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=_wait_retry_after(
                wait_exponential_jitter(multiplier=self.backoff_seconds, max=4, jitter=0.25),
                cap=self.budget_seconds,
            ),
            stop=(
                stop_after_attempt(self.max_attempts)
                | stop_before_delay(self.budget_seconds)
                | _stop_when_waits_exceed(self.budget_seconds)
            ),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(self._get_once, path, params, deadline)
        except ProviderUnavailable as exc:
            logger.warning("CoinMarketCap unavailable: %s", exc)
            raise
        except ProviderError as exc:
            logger.warning("CoinMarketCap answer unusable: %s", exc)
            raise

    def _get_once(self, path: str, params: Mapping[str, str], deadline: float) -> dict[str, Any]:
        remaining = max(0.1, deadline - time.monotonic())
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        outcome = "ok"
        try:
            response = self.session.get(self.base_url + path, params=params, timeout=timeout)
            body = _check(response)
        except requests.Timeout:
            outcome = "timeout"
            raise _TransientTimeout("CoinMarketCap did not answer in time") from None
        except requests.ConnectionError:
            outcome = "connection_error"
            raise _Transient("CoinMarketCap cannot be reached") from None
        except requests.RequestException as exc:
            outcome = "request_error"
            raise ProviderError(f"request to CoinMarketCap failed ({type(exc).__name__})") from None
        except (ProviderUnavailable, ProviderError) as exc:
            outcome = _outcome(exc)
            raise
        finally:
            UPSTREAM_CALLS.labels(outcome).inc()
        credits = body["status"].get("credit_count")
        if isinstance(credits, int) and credits > 0:
            UPSTREAM_CREDITS.inc(credits)
        return body


def _outcome(exc: Exception) -> str:
    """A metrics label for a failed call."""
    if isinstance(exc, ProviderTimeout):
        return "timeout"
    if isinstance(exc, _Transient):
        return "unavailable"
    if isinstance(exc, ProviderUnavailable):
        return "quota_spent"
    if isinstance(exc, _BadRequest):
        return "bad_request"
    return "unusable"


def _check(response: requests.Response) -> dict[str, Any]:
    """Return the JSON body of a successful answer, or raise the matching domain error."""
    http = response.status_code
    retry_after = _retry_after(response.headers.get("Retry-After"))
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        body = None
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, dict):
        # Not CoinMarketCap's JSON: a proxy page or garbage. Only an explicit "busy" is retried.
        if http == 504:
            raise _TransientTimeout(f"CoinMarketCap's gateway timed out (HTTP {http})")
        if http in (429, 503):
            raise _Transient(f"CoinMarketCap answered HTTP {http}", retry_after)
        raise ProviderError(f"CoinMarketCap answered HTTP {http} without a usable body")

    code = status.get("error_code")
    message = str(status.get("error_message") or "").strip()
    if http == 200 and code in (0, None, "0"):
        if not isinstance(body.get("data"), dict):
            raise ProviderError("CoinMarketCap answered without data")
        return body

    code = _as_int(code)
    detail = f"CoinMarketCap error {code}: {message}" if message else f"CoinMarketCap error {code}"
    if code in _RETRYABLE_LIMIT_CODES or (http == 429 and code not in _QUOTA_CODES):
        if retry_after is None and code == 1008:
            retry_after = _seconds_to_next_minute(status.get("timestamp"))
        raise _Transient(f"CoinMarketCap rate limit reached ({detail})", retry_after)
    if code in _QUOTA_CODES:
        raise ProviderUnavailable(f"CoinMarketCap credits are used up ({detail})", retry_after)
    if code in _CREDENTIAL_CODES or http in (401, 402, 403):
        raise ProviderError(f"CoinMarketCap rejected our credentials or plan ({detail})")
    if http == 400 or code == 400:
        raise _BadRequest(detail)
    if http >= 500:
        raise _Transient(f"CoinMarketCap answered HTTP {http} ({detail})", retry_after)
    raise ProviderError(f"CoinMarketCap answered HTTP {http} ({detail})")


# -- parsing ----------------------------------------------------------------------------------


def _pick(entry: Any, currency: str, fetched_at: datetime) -> CoinQuote | None:
    """Choose among the coins sharing a symbol: active first, then the best (lowest) rank.

    v2 lists every coin with the symbol in no useful order (a dead coin can come first).
    """
    if entry is None:
        return None
    candidates = []
    for item in entry if isinstance(entry, list) else [entry]:
        coin, quote = _parse_coin(item, currency)
        if quote is not None:
            candidates.append((coin, quote))
    if not candidates:
        return None

    def preference(candidate: tuple[Coin, Quote]) -> tuple[int, float, Decimal]:
        coin, quote = candidate
        rank = coin.cmc_rank if coin.cmc_rank is not None else float("inf")
        return (0 if coin.is_active else 1, rank, -(quote.market_cap or Decimal(0)))

    coin, quote = min(candidates, key=preference)
    return CoinQuote(coin=coin, quote=quote, fetched_at=fetched_at)


def _parse_coin(item: Any, currency: str) -> tuple[Coin, Quote | None]:
    """Parse one coin object; unknown fields are ignored, missing optional ones become None."""
    if not isinstance(item, dict):
        raise ProviderError("CoinMarketCap answered with an unexpected coin entry")
    try:
        coin = Coin(
            id=int(item["id"]),
            name=str(item["name"]),
            symbol=str(item["symbol"]),
            slug=str(item["slug"]),
            cmc_rank=_as_int(item.get("cmc_rank")),
            is_active=item.get("is_active", 1) in (1, True, "1"),
            num_market_pairs=_as_int(item.get("num_market_pairs")),
            circulating_supply=_decimal(item.get("circulating_supply")),
            total_supply=_decimal(item.get("total_supply")),
            max_supply=_decimal(item.get("max_supply")),
            date_added=_parse_time(item.get("date_added")),
            last_updated=_parse_time(item.get("last_updated")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderError(f"CoinMarketCap answered with a malformed coin ({exc})") from None
    raw = (item.get("quote") or {}).get(currency)
    if not isinstance(raw, dict) or _decimal(raw.get("price")) is None:
        return coin, None  # no price in this currency: nothing to serve for this coin
    return coin, Quote(
        currency=currency,
        price=_decimal(raw["price"]),
        last_updated=_parse_time(raw.get("last_updated")) or coin.last_updated or _epoch(),
        **{name: _decimal(raw.get(name)) for name in QUOTE_FIGURES},
    )


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, (int, str)):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ProviderError(f"CoinMarketCap sent a non-numeric amount {value!r}") from None
        return number if number.is_finite() else None
    raise ProviderError(f"CoinMarketCap sent a non-numeric amount {value!r}")


def _as_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _epoch() -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC)


def _retry_after(header: str | None) -> float | None:
    """Parse Retry-After: delta-seconds or an HTTP-date (RFC 9110); None when absent or junk."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _seconds_to_next_minute(timestamp: Any) -> float | None:
    """CoinMarketCap's per-minute window resets on the minute of its own clock."""
    now = _parse_time(timestamp)
    if now is None:
        return None
    return float(60 - now.second) - now.microsecond / 1_000_000
