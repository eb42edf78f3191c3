"""CoinMarketCap's HTTP answers classified: a usable JSON body, or the domain error it stands for.

The errors carry our own message and CoinMarketCap's numeric `error_code` (`upstream_code`),
never its text: that goes to the log only, with the key redacted.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

from src.adapters.coinmarketcap.wire import invalid_parameter, parse_time
from src.domain.errors import (
    LimitVerdict,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)

logger = logging.getLogger(__name__)

# CoinMarketCap's limit verdicts, the only place their codes are written: each is a LimitVerdict
# of its scope, which every process honours (src/domain/spending.py, the credit governor).
LIMIT_SCOPES = {
    1008: "minute",  # too many calls this minute: the window resets each minute
    1011: "minute",  # too many calls from this address
    1009: "day",  # the day's credits are spent: retrying only burns time
    1010: "month",  # the month's credits are spent
}
CREDENTIAL_CODES = frozenset({1001, 1002, 1003, 1004, 1005, 1006, 1007})
# A Retry-After above this is capped: a 1009 (daily credits spent) resets within a day at most,
# and no client should be told to wait longer than that for anything we proxy.
MAX_RETRY_AFTER_SECONDS = 86_400
_DELTA_SECONDS_RE = re.compile(r"[0-9]+")  # ASCII digits only: "²" or "٣" are junk
_LOGGED_TEXT_LIMIT = 300


class Transient(ProviderUnavailable):
    """A failure worth another attempt (timeouts, connection errors, 5xx, per-minute limits)."""


class TransientTimeout(ProviderTimeout, Transient):
    """A timeout worth another attempt (while the deadline allows one)."""


class BadRequest(ProviderError):
    """CoinMarketCap rejected a parameter (HTTP 400); `parameter` names it when its message
    says which value is invalid (`symbol`, `convert`, `id`), else None."""

    def __init__(self, message: str, parameter: str | None,
                 upstream_code: int | None = 400) -> None:
        super().__init__(message, upstream_code)
        self.parameter = parameter


def classify(http: int, retry_after_header: str | None, content: bytes,
             redact: Callable[[str], str]) -> dict[str, Any]:
    """Return the JSON body of a successful answer, or raise the matching domain error.

    `redact` removes secrets from upstream text before it is logged.
    """
    retry_after = parse_retry_after(retry_after_header)
    body = _json(content)
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, dict):
        logger.warning("CoinMarketCap answered HTTP %d without its JSON status: %r", http,
                       _shown(content.decode("utf-8", "replace"), redact))
        # Not CoinMarketCap's JSON: a proxy's or CDN's page, or garbage. Any 5xx is an outage.
        if http == 504:
            raise TransientTimeout("CoinMarketCap's gateway timed out", retry_after)
        if http >= 500 or http == 429:
            raise Transient(f"CoinMarketCap is unavailable (HTTP {http})", retry_after)
        raise ProviderError(f"CoinMarketCap answered HTTP {http} without a usable body")

    raw_code = status.get("error_code")
    if http == 200 and raw_code in (0, None, "0"):
        if not isinstance(body.get("data"), dict):
            raise ProviderError("CoinMarketCap answered without data")
        return body

    code = upstream_code(raw_code)
    message = status.get("error_message")
    logger.warning("CoinMarketCap answered HTTP %d, error_code %s: %r", http, code,
                   _shown(str(message) if message is not None else "", redact))
    scope = LIMIT_SCOPES.get(code) if code is not None else None
    if scope is None and http == 429:
        scope = "minute"  # a 429 without a known code: a rate limit, by HTTP's own meaning
    if scope == "minute":
        if retry_after is None and code == 1008:
            retry_after = seconds_to_next_minute(status.get("timestamp"))
        # A limit verdict, not an outage: asking again within the window is refused again and
        # counts against the same minute. The caller's credit governor makes every process
        # wait for the window instead.
        raise LimitVerdict("CoinMarketCap rate limit reached", scope, retry_after, code)
    if scope is not None:
        raise LimitVerdict("CoinMarketCap credits are used up", scope, retry_after, code)
    if code in CREDENTIAL_CODES or http in (401, 402, 403):
        raise ProviderError("CoinMarketCap rejected our credentials or plan", code)
    if http == 400 or code == 400:
        raise BadRequest("CoinMarketCap rejected a request parameter",
                         invalid_parameter(message), code)
    if http >= 500:
        raise Transient(f"CoinMarketCap is unavailable (HTTP {http})", retry_after, code)
    raise ProviderError(f"CoinMarketCap answered HTTP {http} with an error", code)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content, parse_float=Decimal)
    except (ValueError, RecursionError):  # RecursionError: a deeply nested body
        return None


def upstream_code(value: Any) -> int | None:
    """CoinMarketCap's numeric error code, or None when it sent none or something else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 6:
        value = int(value)
    if isinstance(value, int) and 0 < value < 1_000_000:
        return value
    return None


def parse_retry_after(header: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (RFC 9110: delta-seconds or an HTTP-date), capped at
    MAX_RETRY_AFTER_SECONDS; 0 for a date in the past; None when absent or junk."""
    if not header or not isinstance(header, str):
        return None
    header = header.strip()
    if _DELTA_SECONDS_RE.fullmatch(header):
        # Compared as text first: float("9" * 309) is inf, and int() refuses 4,300+ digits.
        seconds = int(header) if len(header) <= 6 else MAX_RETRY_AFTER_SECONDS
        return float(min(seconds, MAX_RETRY_AFTER_SECONDS))
    if not header.isascii():
        return None
    try:
        when = parsedate_to_datetime(header)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()  # type: ignore[assignment]
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), float(MAX_RETRY_AFTER_SECONDS))


def seconds_to_next_minute(timestamp: Any) -> float | None:
    """CoinMarketCap's per-minute window resets on the minute of its own clock."""
    now = parse_time(timestamp)
    if now is None:
        return None
    return float(60 - now.second) - now.microsecond / 1_000_000


def _shown(text: str, redact: Callable[[str], str]) -> str:
    """Upstream text fit for a log line: secrets removed, length bounded."""
    text = redact(text)
    return text if len(text) <= _LOGGED_TEXT_LIMIT else text[:_LOGGED_TEXT_LIMIT] + "..."
