"""The system clock, the production implementation of the Clock port."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from src.domain.ports import Clock


class SystemClock(Clock):
    """Reads the system time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
