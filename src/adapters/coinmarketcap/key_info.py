"""CoinMarketCap's `/v1/key/info`: the plan's limits and reset times (free, but a call)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from src.adapters.coinmarketcap.watchdog import Watchdog, watch
from src.adapters.coinmarketcap.wire import parse_time
from src.domain.deadline import Deadline
from src.domain.errors import ProviderError, ProviderUnavailable

logger = logging.getLogger(__name__)

KEY_INFO_PATH = "/v1/key/info"


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `/v1/key/info` says of the key's plan; a figure it does not give is None."""

    daily_credits: int | None
    calls_per_minute: int | None
    monthly_credits: int | None = None
    daily_reset: datetime | None = None
    monthly_reset: datetime | None = None
    credits_used_today: int | None = None


class CoinMarketCapKeyInfo:
    """Reads `/v1/key/info` (CoinMarketCap API documentation, "Key Info"): 0 credits, but one
    call against the minute's limit, so callers read it every few minutes, never per request.

    `read()` raises ProviderUnavailable (no answer, 429, 5xx) or ProviderError (an unusable
    answer, rejected credentials), with CoinMarketCap's error code when it gave one.
    """

    def __init__(self, *, base_url: str, api_key: str, session: requests.Session | None = None,
                 timeout: tuple[float, float] = (2.0, 3.0), budget_seconds: float = 3.0) -> None:
        self.url = base_url.rstrip("/") + KEY_INFO_PATH
        # The read can happen on a request's path (the governor's plan): the watchdog bounds
        # the whole exchange, not each socket read, so a trickling answer cannot hold it.
        self.session = watch(session or requests.Session())
        self.session.headers.update({"X-CMC_PRO_API_KEY": api_key, "Accept": "application/json"})
        self.timeout = timeout
        self.budget_seconds = budget_seconds

    def __repr__(self) -> str:  # never show the session headers (the key) in a repr
        return f"CoinMarketCapKeyInfo(url={self.url!r})"

    def read(self) -> KeyInfo:
        """The key's plan and today's usage, read now."""
        watchdog = Watchdog(Deadline(self.budget_seconds))
        try:
            with watchdog:
                # No redirects: requests would send our key header to wherever one points.
                response = self.session.get(self.url, timeout=self.timeout, allow_redirects=False)
        except Exception as exc:  # requests' errors, or whatever the watchdog's cut left
            logger.warning("CoinMarketCap key info unreachable: %s", type(exc).__name__)
            raise ProviderUnavailable("CoinMarketCap's key info could not be read") from None
        if watchdog.cut_off:
            raise ProviderUnavailable("CoinMarketCap's key info could not be read in time")
        body = _json(response)
        code = _int(_get(body, "status", "error_code"))
        if response.status_code != 200 or code:
            logger.warning("CoinMarketCap key info answered HTTP %d, error code %s",
                           response.status_code, code)
            if response.status_code == 429 or response.status_code >= 500:
                raise ProviderUnavailable("CoinMarketCap's key info is unavailable",
                                          upstream_code=code)
            raise ProviderError("CoinMarketCap refused to tell the key's plan", upstream_code=code)
        plan, usage = _section(body, "data", "plan"), _section(body, "data", "usage")
        return KeyInfo(
            daily_credits=_int(plan.get("credit_limit_daily")),
            calls_per_minute=_int(plan.get("rate_limit_minute")),
            monthly_credits=_int(plan.get("credit_limit_monthly")),
            daily_reset=parse_time(plan.get("credit_limit_daily_reset_timestamp")),
            monthly_reset=parse_time(plan.get("credit_limit_monthly_reset_timestamp")),
            credits_used_today=_int(_get(usage, "current_day", "credits_used")),
        )


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _get(body: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(body, dict):
            return None
        body = body.get(name)
    return body


def _section(body: Any, *path: str) -> dict[str, Any]:
    """An object of the answer; {} when absent or not an object."""
    section = _get(body, *path)
    return section if isinstance(section, dict) else {}


def _int(value: Any) -> int | None:
    # bool is an int in Python; CoinMarketCap never means a limit by true/false.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return int(value) if math.isfinite(value) else None
