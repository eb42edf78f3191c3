"""Refresh-ahead as the views see it: note what was served, report the refresher's state."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from src.domain.model import QuoteAnswer
from src.domain.refresh import REFRESH_OFF
from src.entrypoints.wiring import wiring


def note_requested(answer: QuoteAnswer) -> None:
    """Note the symbols just served, so the refresher keeps them fresh (memory only: no I/O)."""
    demand = wiring().refresh.demand
    if demand is not None:
        demand.note(answer.quotes)


def refresh_usage() -> dict[str, Any]:
    """The "refresh" part of /usage and /metrics: window, interval, symbols, last round."""
    refresher = wiring().refresh.refresher
    return asdict(refresher.status() if refresher is not None else REFRESH_OFF)
