"""Refresh-ahead as the app sees it: the request log buffer and the refresher, from create_app."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app

from src.adapters.buffered_request_log import BufferedRequestLog
from src.domain.model import QuoteAnswer
from src.domain.refresh import Refresher, refresh_status


@dataclass(frozen=True)
class RefreshAhead:
    """`app.extensions["refresh"]`: None parts when refresh-ahead is off or has no database."""

    demand: BufferedRequestLog | None = None
    refresher: Refresher | None = None


def note_requested(answer: QuoteAnswer) -> None:
    """Note the symbols just served, so the refresher keeps them fresh (memory only: no I/O)."""
    ahead: RefreshAhead | None = current_app.extensions.get("refresh")
    if ahead is not None and ahead.demand is not None:
        ahead.demand.note(answer.quotes)


def refresh_usage() -> dict[str, Any]:
    """The "refresh" part of /usage and /metrics: window, interval, symbols, last round."""
    ahead: RefreshAhead | None = current_app.extensions.get("refresh")
    return refresh_status(ahead.refresher if ahead is not None else None)
