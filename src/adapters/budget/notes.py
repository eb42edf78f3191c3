"""What the credit governor writes on its board as text: the namespace of its keys, CoinMarketCap's
verdicts (a limit answered, until when), the number of hot symbols and the last key info read.
Reading trusts nothing: memcached has no authentication, so a note that is not ours reads as no
note."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from src.adapters.coinmarketcap.key_info import KeyInfo


def budget_namespace(base_url: str, api_key: str) -> str:
    """A short, stable name for the budget of one key on one host (the key itself never shows)."""
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()[:12]


def verdict_note(until: datetime, code: int) -> str:
    return json.dumps([until.timestamp(), code])


def verdict_from_note(note: str | None) -> tuple[datetime, int] | None:
    # memcached has no authentication: a note that is not ours is no verdict.
    try:
        until, code = json.loads(note) if note else (None, None)
        return (datetime.fromtimestamp(float(until), UTC), int(code)) if until is not None else None  # type: ignore[arg-type]
    except (ValueError, TypeError, OverflowError, OSError):
        return None


def hot_count_from_note(note: str | None) -> int | None:
    """The number of hot symbols a refresher last wrote; None when there is none (or junk)."""
    return int(note) if note is not None and note.isascii() and note.isdigit() \
        and len(note) < 7 else None


def key_info_note(read_at: float, info: KeyInfo) -> str:
    return json.dumps({
        "read_at": read_at, "daily": info.daily_credits, "minute": info.calls_per_minute,
        "monthly": info.monthly_credits, "used": info.credits_used_today,
        "daily_reset": info.daily_reset.timestamp() if info.daily_reset else None,
        "monthly_reset": info.monthly_reset.timestamp() if info.monthly_reset else None,
    })


def key_info_from_note(note: str) -> tuple[float, KeyInfo] | None:
    try:
        data = json.loads(note)
        return float(data["read_at"]), KeyInfo(
            daily_credits=_count_or_none(data["daily"]),
            calls_per_minute=_count_or_none(data["minute"]),
            monthly_credits=_count_or_none(data["monthly"]),
            credits_used_today=_count_or_none(data["used"]),
            daily_reset=_time_or_none(data["daily_reset"]),
            monthly_reset=_time_or_none(data["monthly_reset"]),
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        return None


def _count_or_none(value: Any) -> int | None:
    # memcached has no authentication: a figure of the wrong type is unknown, not a crash later.
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def _time_or_none(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch else None
